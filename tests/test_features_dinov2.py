"""dinov2-vitl14 (class token) and dinov2-vitl14-meanpatch: wiring with a tiny random transformers
Dinov2Model, loading from a folder, the offline message."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")
Image = pytest.importorskip("PIL.Image")

from rarity_score.features import WeightsUnavailable, dinov2, get_extractor, registry  # noqa: E402


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    """A two-layer, 32-wide DINOv2: the same code paths as ViT-L/14 at a tiny cost."""
    torch.manual_seed(0)
    config = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=56,
    )
    return transformers.Dinov2Model(config).eval()


def _batch(extractor: object) -> torch.Tensor:
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((300, 400), (256, 256))
    ]
    return torch.stack([extractor.preprocess(im) for im in images])  # type: ignore[attr-defined]


def test_class_token_after_layer_norm(tiny: torch.nn.Module) -> None:
    extractor = dinov2.from_model(tiny, weights_id="random")
    assert extractor.info.dim == 32  # from the model's config; 1024 for ViT-L/14
    batch = _batch(extractor)
    assert batch.shape == (2, 3, 224, 224)
    features = extractor(batch)
    assert features.shape == (2, 32) and features.dtype == torch.float32
    with torch.no_grad():
        out = tiny(pixel_values=batch)
    torch.testing.assert_close(features, out.pooler_output, rtol=0, atol=0)
    torch.testing.assert_close(features, out.last_hidden_state[:, 0], rtol=0, atol=0)


def test_mean_patch_token_after_layer_norm(tiny: torch.nn.Module) -> None:
    extractor = dinov2.from_model(tiny, weights_id="random", layer="meanpatch")
    assert extractor.info.name == "dinov2-vitl14-meanpatch"
    assert extractor.info.dim == 32
    batch = _batch(extractor)
    features = extractor(batch)
    assert features.shape == (2, 32) and features.dtype == torch.float32
    with torch.no_grad():
        out = tiny(pixel_values=batch)
    tokens = out.last_hidden_state
    assert tokens.shape == (2, 1 + 16 * 16, 32)  # the class token, then the 16x16 patches
    torch.testing.assert_close(features, tokens[:, 1:].mean(dim=1), rtol=0, atol=0)
    # after the final layer norm: recompute it from the last layer's raw output
    with torch.no_grad():
        raw = tiny(pixel_values=batch, output_hidden_states=True).hidden_states[-1]
        normed = tiny.layernorm(raw)
    torch.testing.assert_close(features, normed[:, 1:].mean(dim=1), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(features, raw[:, 1:].mean(dim=1), atol=1e-3)
    # not the class token, and the class-token layer is unchanged beside it
    assert not torch.allclose(features, out.pooler_output, atol=1e-3)
    cls = dinov2.from_model(tiny, weights_id="random")
    torch.testing.assert_close(cls(batch), out.pooler_output, rtol=0, atol=0)


def test_unknown_layer(tiny: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="unknown DINOv2 layer 'patch'; known: cls, meanpatch"):
        dinov2.from_model(tiny, weights_id="random", layer="patch")
    with pytest.raises(ValueError, match="unknown DINOv2 layer"):
        dinov2.build(layer="registers")


def test_registry_entry() -> None:
    info = registry.info("dinov2-vitl14")
    assert (info.dim, info.input_size, info.extra) == (1024, 224, "dinov2")
    config = dinov2.large_config()
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size) == (1024, 24, 14)
    mean_patch = registry.info("dinov2-vitl14-meanpatch")
    assert (mean_patch.dim, mean_patch.input_size, mean_patch.extra) == (1024, 224, "dinov2")
    assert mean_patch.preprocessing == info.preprocessing and mean_patch.family == info.family


def test_weights_folder(tiny: torch.nn.Module, tmp_path: Path) -> None:
    tiny.save_pretrained(tmp_path)
    extractor = get_extractor("dinov2-vitl14", weights=tmp_path)
    expected_id = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert extractor.weights_id == expected_id
    batch = _batch(extractor)
    torch.testing.assert_close(
        extractor(batch), dinov2.from_model(tiny, weights_id="x")(batch), rtol=1e-6, atol=1e-6
    )
    mean_patch = get_extractor("dinov2-vitl14-meanpatch", weights=tmp_path)
    assert mean_patch.weights_id == expected_id
    assert mean_patch.info.name == "dinov2-vitl14-meanpatch"
    reference = dinov2.from_model(tiny, weights_id="x", layer="meanpatch")
    torch.testing.assert_close(mean_patch(batch), reference(batch), rtol=1e-6, atol=1e-6)


def test_weights_file_of_another_model(tiny: torch.nn.Module, tmp_path: Path) -> None:
    """A bare weights file is read as ViT-L/14; a tiny model's weights do not fit it."""
    tiny.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    with pytest.raises(WeightsUnavailable) as caught:
        dinov2.build(weights=path)
    assert str(path) in str(caught.value)


def test_bare_weights_file(
    tiny: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single weights file, with bare keys or under "dinov2." (a model with a head), and
    without the training-only mask token."""
    monkeypatch.setattr(dinov2, "large_config", lambda: tiny.config)
    state = {k: v for k, v in tiny.state_dict().items() if k != "embeddings.mask_token"}
    bare, prefixed = tmp_path / "bare.pth", tmp_path / "prefixed.pth"
    torch.save(state, bare)
    torch.save(
        {f"dinov2.{k}": v for k, v in state.items()} | {"classifier.weight": torch.ones(2)},
        prefixed,
    )
    reference = dinov2.from_model(tiny, weights_id="x")
    batch = _batch(reference)
    for path in (bare, prefixed):
        extractor = dinov2.build(weights=path)
        assert extractor.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        torch.testing.assert_close(extractor(batch), reference(batch), rtol=1e-6, atol=1e-6)


def test_bad_weights_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="neither a weights file nor a folder"):
        get_extractor("dinov2-vitl14", weights=tmp_path)  # an empty folder
    with pytest.raises(WeightsUnavailable, match=r"^dinov2-vitl14-meanpatch: --weights"):
        get_extractor("dinov2-vitl14-meanpatch", weights=tmp_path)  # names the layer asked for


def test_offline_message(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def offline(repo_id: str, **kwargs: object) -> str:
        asked.append(repo_id)
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    # The hub answers the reachability check, then the download itself fails.
    monkeypatch.setattr(dinov2, "hub_unreachable", lambda *args: None)
    with pytest.raises(WeightsUnavailable) as caught:
        get_extractor("dinov2-vitl14")
    assert asked == [dinov2.HF_REPO]
    message = str(caught.value)
    assert dinov2.HF_REPO in message and "model.safetensors" in message
    assert "--weights FOLDER" in message and "HF_HUB_CACHE" in message
