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
)
from rarity_score.features.errors import require

EXPECTED = {
    "vgg16-fc2": (4096, 224, "images"),
    "inception-v3-pool3": (2048, 299, "images"),
    "efficientnet-lite0": (1280, 224, "images"),
    "clip-vit-b32": (512, 224, "clip"),
    "dinov2-vitl14": (1024, 224, "dinov2"),
}


def test_import_and_listing_need_no_torch() -> None:
    code = (
        "import sys\n"
        "import rarity_score.features as f\n"
        "infos = f.list_extractors()\n"
        "assert infos[0].name == 'vgg16-fc2', infos[0]\n"
        "heavy = [m for m in ('torch', 'torchvision', 'PIL', 'open_clip', 'transformers')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_entries() -> None:
    infos = list_extractors()
    assert [i.name for i in infos] == list(EXPECTED)
    for info in infos:
        assert isinstance(info, ExtractorInfo)
        assert (info.dim, info.input_size, info.extra) == EXPECTED[info.name]
        assert info.layer and info.weights
        assert f"{info.input_size}x{info.input_size}" in info.preprocessing
    vgg = infos[0]
    assert "vgg16-397923af.pth" in vgg.weights
    assert "bicubic" in vgg.preprocessing and "0.485" in vgg.preprocessing
    assert "after its ReLU" in vgg.layer


def test_preprocessing_texts_are_distinct_cache_keys() -> None:
    texts = [i.preprocessing for i in list_extractors()]
    # vgg16 and inception share a recipe at different sizes; every text still differs.
    assert len(set(texts)) == len(texts)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor 'vgg19'") as caught:
        get_extractor("vgg19")
    for name in EXPECTED:
        assert name in str(caught.value)


def test_input_size_only_where_allowed() -> None:
    with pytest.raises(ValueError, match="fixed input size of 224"):
        get_extractor("vgg16-fc2", input_size=128)


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
    ],
)
def test_each_family_describes_itself_as_the_registry_does(module: str, constant: str) -> None:
    """A family reads its description from ``features.info``, never from the registry."""
    import importlib

    from rarity_score.features import info, registry

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
