"""The examples in the public API's docstrings run and print what they show."""

from __future__ import annotations

import doctest

import pytest

import rarity_score.manifold


@pytest.mark.parametrize("module", [rarity_score.manifold], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
