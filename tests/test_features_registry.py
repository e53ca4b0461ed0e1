"""The extractor registry: listing without torch, names, options, missing dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rarity_score.features import (
    ExtractorInfo,
    MissingDependency,
    WeightsUnavailable,
    get_extractor,
    list_extractors,
    registry,
)
from rarity_score.features.errors import require
from rarity_score.features.registry import families

#: name: (dim, input size, extra, family), in registry order (the default first, then each
#: family's layers together).
EXPECTED = {
    "vgg16-fc2": (4096, 224, "images", "vgg16"),
    "vgg16-fc1": (4096, 224, "images", "vgg16"),
    "vgg16-pool5": (25088, 224, "images", "vgg16"),
    "inception-v3-pool3": (2048, 299, "images", "inception-v3"),
    "inception-v3-logits": (1000, 299, "images", "inception-v3"),
    "efficientnet-lite0": (1280, 224, "images", "efficientnet-lite0"),
    **{
        f"efficientnet-lite0-stage{i}": (dim, 224, "images", "efficientnet-lite0")
        for i, dim in enumerate((16, 24, 40, 80, 112, 192, 320), start=1)
    },
    "clip-vit-b32": (512, 224, "clip", "clip-vit-b32"),
    "dinov2-vitl14": (1024, 224, "dinov2", "dinov2-vitl14"),
    "dinov2-vitl14-meanpatch": (1024, 224, "dinov2", "dinov2-vitl14"),
    "pixels": (3072, 32, "images", "pixels"),
}

#: The cache keys of the extractors that predate the layer choice: a change to any of these
#: texts would silently orphan every cached feature file (and make old results look like
#: another space).
UNCHANGED_PREPROCESSING = {
    "vgg16-fc2": (
        "PIL bicubic resize to 224x224 (no crop), [0, 1], ImageNet: mean (0.485, 0.456, 0.406), "
        "std (0.229, 0.224, 0.225)"
    ),
    "inception-v3-pool3": (
        "PIL bicubic resize to 299x299 (no crop), [0, 1], ImageNet: mean (0.485, 0.456, 0.406), "
        "std (0.229, 0.224, 0.225); the model's transform_input then maps this to "
        "(x - 0.5) / 0.5 per channel, as torchvision's pretrained Inception-V3 does"
    ),
    "efficientnet-lite0": (
        "PIL bicubic resize to 224x224 (no crop), [0, 1], EfficientNet-Lite (v - 127) / 128: "
        "mean (0.49803922, 0.49803922, 0.49803922), std (0.50196078, 0.50196078, 0.50196078)"
    ),
    "clip-vit-b32": (
        "PIL bicubic resize of the shorter side to 224, centre crop 224x224, [0, 1], OpenAI "
        "CLIP: mean (0.48145466, 0.4578275, 0.40821073), std (0.26862954, 0.26130258, "
        "0.27577711)"
    ),
    "dinov2-vitl14": (
        "PIL bicubic resize of the shorter side to 256, centre crop 224x224 (offsets floored), "
        "[0, 1], ImageNet: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"
    ),
}


def test_import_and_listing_need_no_torch() -> None:
    code = (
        "import sys\n"
        "import rarity_score.features as f\n"
        "infos = f.list_extractors()\n"
        "assert infos[0].name == 'vgg16-fc2', infos[0]\n"
        "from rarity_score.features import registry\n"
        "assert registry.info('pixels', input_size=8).dim == 192\n"
        "assert len(registry.families()) == 6\n"
        "heavy = [m for m in ('torch', 'torchvision', 'PIL', 'open_clip', 'transformers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_entries() -> None:
    infos = list_extractors()
    assert [i.name for i in infos] == list(EXPECTED) == registry.names()
    for info in infos:
        assert isinstance(info, ExtractorInfo)
        assert (info.dim, info.input_size, info.extra, info.family) == EXPECTED[info.name]
        assert info.layer and info.weights
        assert f"{info.input_size}x{info.input_size}" in info.preprocessing
        assert registry.info(info.name) is info
        assert registry.info(info.name.upper()) is info  # case-insensitive, as before
    vgg = infos[0]
    assert "vgg16-397923af.pth" in vgg.weights
    assert "bicubic" in vgg.preprocessing and "0.485" in vgg.preprocessing
    assert "after its ReLU" in vgg.layer


def test_names_follow_network_dash_layer() -> None:
    """Every name is its family's name, or the family's name, a dash and the layer."""
    for info in list_extractors():
        assert info.name == info.family or info.name.startswith(info.family + "-"), info.name
        assert info.name == info.name.strip().lower() and "+" not in info.name


def test_existing_cache_keys_are_unchanged() -> None:
    for name, text in UNCHANGED_PREPROCESSING.items():
        assert registry.info(name).preprocessing == text, name


def test_preprocessing_texts_are_distinct_cache_keys() -> None:
    """Across networks every preprocessing text differs (vgg16 and inception share a recipe at
    different sizes); the layers of one network share theirs, and the name, also part of the
    key, tells them apart."""
    texts = {family: {i.preprocessing for i in infos} for family, infos in families().items()}
    assert all(len(t) == 1 for t in texts.values()), texts
    flat = [next(iter(t)) for t in texts.values()]
    assert len(set(flat)) == len(flat)
    assert len(set(registry.names())) == len(registry.names())


def test_families_group_the_layers() -> None:
    grouped = families()
    assert list(grouped) == [
        "vgg16",
        "inception-v3",
        "efficientnet-lite0",
        "clip-vit-b32",
        "dinov2-vitl14",
        "pixels",
    ]
    assert [i.name for i in grouped["vgg16"]] == ["vgg16-fc2", "vgg16-fc1", "vgg16-pool5"]
    assert [i.name for i in grouped["efficientnet-lite0"]] == [
        "efficientnet-lite0",
        *(f"efficientnet-lite0-stage{i}" for i in range(1, 8)),
    ]
    assert [i.name for i in grouped["dinov2-vitl14"]] == [
        "dinov2-vitl14",
        "dinov2-vitl14-meanpatch",
    ]
    assert sum(len(v) for v in grouped.values()) == len(EXPECTED)
    for family, infos in grouped.items():
        assert all(i.family == family for i in infos)


def test_info_at_another_input_size() -> None:
    assert registry.info("pixels", input_size=16).dim == 3 * 16 * 16
    assert "16x16" in registry.info("pixels", input_size=16).preprocessing
    small = registry.info("efficientnet-lite0-stage3", input_size=128)
    assert (small.dim, small.input_size, small.name) == (40, 128, "efficientnet-lite0-stage3")
    assert "128x128" in small.preprocessing
    assert registry.info("vgg16-fc1", input_size=224) is registry.info("vgg16-fc1")
    with pytest.raises(ValueError, match="fixed input size of 224") as caught:
        registry.info("vgg16-pool5", input_size=128)
    for name in ("efficientnet-lite0", "efficientnet-lite0-stage7", "pixels"):
        assert name in str(caught.value)
    with pytest.raises(ValueError, match="at least 32"):
        registry.info("efficientnet-lite0-stage1", input_size=31)
    with pytest.raises(ValueError, match="at least 1"):
        registry.info("pixels", input_size=0)


@pytest.mark.parametrize("name", ["vgg19", "vgg16-fc3", "efficientnet-lite0-stage8", "pixel"])
def test_unknown_name_lists_the_known_ones(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown feature extractor '{name}'") as caught:
        get_extractor(name)
    for known in EXPECTED:
        assert known in str(caught.value)
    with pytest.raises(ValueError, match=f"unknown feature extractor '{name}'"):
        registry.info(name)


def test_input_size_only_where_allowed() -> None:
    for name in ("vgg16-fc2", "vgg16-fc1", "inception-v3-logits", "dinov2-vitl14-meanpatch"):
        with pytest.raises(ValueError, match=r"fixed input size of (224|299)"):
            get_extractor(name, input_size=128)
    with pytest.raises(ValueError, match="at least 32"):
        get_extractor("efficientnet-lite0-stage4", input_size=16)


def test_device_is_checked_first() -> None:
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="not a torch device"):
        get_extractor("vgg16-fc2", device="banana")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_extractor("vgg16-fc2", device="cuda:1")


def test_missing_extra_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` fail
    with pytest.raises(MissingDependency, match=r"pip install 'rarity-score\[clip\]'"):
        get_extractor("clip-vit-b32")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependency, match=r"dinov2-vitl14 needs transformers"):
        get_extractor("dinov2-vitl14")
    with pytest.raises(MissingDependency, match=r"dinov2-vitl14-meanpatch needs transformers"):
        get_extractor("dinov2-vitl14-meanpatch")


def test_check_available_resolves_weights_without_building(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torchvision")
    import urllib.error

    import torch.hub

    from rarity_score.features.registry import check_available

    assert check_available("pixels", input_size=8).dim == 192
    with pytest.raises(ValueError, match="pixels has no network and no weights"):
        check_available("pixels", weights=tmp_path / "w.pth")
    with pytest.raises(ValueError, match="unknown feature extractor"):
        check_available("nope")
    with pytest.raises(ValueError, match="fixed input size"):
        check_available("vgg16-fc2", input_size=32)
    # A --weights path that is not there: the builder's own one-line message.
    with pytest.raises(WeightsUnavailable, match=r"vgg16-pool5: weights file .*w\.pth not found"):
        check_available("vgg16-pool5", weights=tmp_path / "w.pth")
    with pytest.raises(WeightsUnavailable, match=r"efficientnet-lite0-stage2: weights file"):
        check_available("efficientnet-lite0-stage2", weights=tmp_path / "w.pth")
    # Offline without a local copy: the builder's message, and no network built.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    built = []
    monkeypatch.setattr(
        "rarity_score.features.inception.load_checkpoint", lambda *a, **k: built.append(1)
    )
    with pytest.raises(WeightsUnavailable, match="inception-v3-logits: cannot download"):
        check_available("inception-v3-logits")
    # A file in torch hub's folder is found there (not loaded: any bytes do).
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "inception_v3_google-0cc3c7bd.pth").write_bytes(b"not read")
    assert check_available("inception-v3-pool3").name == "inception-v3-pool3"
    assert built == []


def test_require_message() -> None:
    with pytest.raises(MissingDependency) as caught:
        require("no_such_module_xyz", what="thing", package="no-such", extra="images")
    assert str(caught.value) == "thing needs no-such: pip install 'rarity-score[images]'"
    assert isinstance(caught.value, ImportError)


def test_error_types() -> None:
    assert issubclass(WeightsUnavailable, ValueError)
    assert issubclass(MissingDependency, ImportError)


def test_the_errors_have_one_home() -> None:
    # The image readers and the report raise them without importing the extractors.
    from rarity_score import _errors
    from rarity_score.features import errors

    assert errors.MissingDependency is _errors.MissingDependency is MissingDependency
    assert errors.WeightsUnavailable is _errors.WeightsUnavailable is WeightsUnavailable
    assert errors.require is _errors.require is require


@pytest.mark.parametrize(
    ("module", "constant"),
    [
        ("vgg", "VGG16_FC2"),
        ("inception", "INCEPTION_V3_POOL3"),
        ("efficientnet", "EFFICIENTNET_LITE0"),
        ("clip", "CLIP_VIT_B32"),
        ("dinov2", "DINOV2_VITL14"),
        ("pixels", "PIXELS"),
    ],
)
def test_each_family_describes_itself_as_the_registry_does(module: str, constant: str) -> None:
    """A family reads its description from ``features.info``, never from the registry."""
    import importlib

    from rarity_score.features import info

    pytest.importorskip("torch")
    family = importlib.import_module(f"rarity_score.features.{module}")
    assert registry.info(family.NAME) is getattr(info, constant)


def test_true_float32_switches_lower_precision_off_and_back() -> None:
    """The one true-float32 context (``rarity_score._torch``) that the engine's torch backend
    and the extractors share: float32 convolutions and GEMMs in full precision inside, the
    caller's settings after."""
    torch = pytest.importorskip("torch")
    from rarity_score.engine.backend import TorchBackend
    from rarity_score.features.base import true_float32

    mkldnn = torch.backends.mkldnn
    if not hasattr(mkldnn.matmul, "fp32_precision"):
        pytest.skip("this torch has only the legacy allow_tf32 switch")
    saved = mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision
    try:
        mkldnn.matmul.fp32_precision = mkldnn.conv.fp32_precision = "bf16"
        with true_float32():
            assert (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision) == ("ieee", "ieee")
        with TorchBackend("cpu").full_precision():  # GEMMs only: convolutions left as set
            assert (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision) == ("ieee", "bf16")
        assert (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision) == ("bf16", "bf16")
    finally:
        mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision = saved


def test_checkpoints_match_torchvision() -> None:
    from torchvision.models import Inception_V3_Weights, VGG16_Weights

    from rarity_score.features import inception, vgg

    for ours, theirs in (
        (vgg.CHECKPOINT, VGG16_Weights.IMAGENET1K_V1),
        (inception.CHECKPOINT, Inception_V3_Weights.IMAGENET1K_V1),
    ):
        assert ours.url == theirs.url
        assert theirs.url.endswith("/" + ours.file_name)
        assert ours.hash_prefix is not None and ours.hash_prefix in ours.file_name
