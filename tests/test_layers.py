"""No arrow runs upward: the package's modules import only from their own layer and below, and no
two modules import each other, directly or around a loop.

The graph is read from the source with ``ast``, not by importing: module-level and
function-level imports, relative ones (``from . import x``), and ``importlib.import_module`` /
``__import__`` with a literal name all count; imports under ``if TYPE_CHECKING:`` do not (they
never run). An import the source spells with a computed name (an f-string) cannot be seen here,
which is why the extractor families are a sublayer of their own below the registry (the
registry loads them by computed name, so a family importing the registry would close a loop this
test could not see).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import rarity_score

PACKAGE = "rarity_score"
SOURCE = Path(rarity_score.__file__).resolve().parent

#: The layers, lowest first (the brief of issue #9 and the README's picture). A module may import
#: from its own layer and the ones before it. A name stands for that module and every module
#: under it; the longest name that fits a module decides its layer. The package itself
#: (``rarity_score/__init__.py``, the public facade) stands for itself only.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "0 base",
        (
            "rarity_score._version",
            "rarity_score.defaults",
            "rarity_score.options",
            "rarity_score._progress",
            "rarity_score._errors",
            "rarity_score._torch",
            # numpy only: what an array must be to be features (the io readers check it too)
            "rarity_score._validation",
            # where work runs: a context holding a Dask client (dask imported only when used)
            "rarity_score.cluster",
        ),
    ),
    ("1 io", ("rarity_score.io",)),
    ("2 engine", ("rarity_score.engine",)),
    ("4 metrics", ("rarity_score.metrics",)),
    ("5 results and manifold", ("rarity_score.results", "rarity_score.manifold")),
    (
        "5b above one evaluation: intervals and comparisons; the metric of a training loop",
        ("rarity_score.uncertainty", "rarity_score.training"),
    ),
    (
        "6a features: descriptions and shared pieces",
        (
            "rarity_score.features.info",
            "rarity_score.features.errors",
            "rarity_score.features.preprocess",
            "rarity_score.features.weights",
            "rarity_score.features.base",
        ),
    ),
    (
        "6b features: extractor families",
        (
            "rarity_score.features.vgg",
            "rarity_score.features.inception",
            "rarity_score.features.efficientnet",
            "rarity_score.features.clip",
            "rarity_score.features.dinov2",
            "rarity_score.features.pixels",
        ),
    ),
    (
        "6c features: registry",
        (
            "rarity_score.features.registry",
            "rarity_score.features.custom",
            "rarity_score.features",
        ),
    ),
    (
        "6d features: pipeline",
        (
            "rarity_score.features.pipeline",
            "rarity_score.features.distributed",
            "rarity_score.features.space",
            # numpy only: a feature set projected on principal directions of the real set
            "rarity_score.features.projection",
        ),
    ),
    ("7 results directory and sources", ("rarity_score.results_dir", "rarity_score.sources")),
    (
        "7b analyses of results directories: feature spaces compared, samples selected",
        ("rarity_score.spaces", "rarity_score.filtering"),
    ),
    ("8 report", ("rarity_score.report",)),
    ("9a compare", ("rarity_score.compare", "rarity_score.spaces.run")),
    ("9b demo", ("rarity_score.demo",)),
    ("10 cli", ("rarity_score.cli",)),
    ("11 entry points and facade", ("rarity_score._entry", "rarity_score.__main__", PACKAGE)),
]

#: Layers held to a narrower rule than "this layer and below": (importer, what it may import
#: beyond the base layer and itself, why).
NARROWER: list[tuple[str, tuple[str, ...], str]] = [
    (
        "rarity_score.report",
        ("rarity_score.io", "rarity_score.results_dir", "rarity_score.spaces"),
        "the report reads through results_dir, the spaces output and io only",
    ),
]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(SOURCE.parent)}:{self.line}"


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_relative(module: str, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _dynamic_name(call: ast.Call, module: str) -> str | None:
    """The literal module name of ``importlib.import_module("...")`` / ``import_module`` /
    ``__import__``, resolved when relative; None for any other call or a computed name."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    name = first.value
    if called == "import_module" and name.startswith("."):
        level = len(name) - len(name.lstrip("."))
        return _resolve_relative(module, level, name[level:] or None)
    return name


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import of the package's own modules in ``module``
    that can run (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)  # the else branch does run
            continue
        pending.extend(ast.iter_child_nodes(node))
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, node.level, node.module)
                if node.level
                else node.module or ""
            )
            # ``from pkg import sub`` imports the submodule when there is one, else a name of
            # the package's __init__.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        elif isinstance(node, ast.Call):
            dynamic = _dynamic_name(node, module)
            names = [dynamic] if dynamic else []
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                yield name, node.lineno


def _graph() -> tuple[list[Edge], list[str]]:
    """Every edge between the package's modules, and the imports that name no module of it."""
    edges, missing = [], []
    for module, path in MODULES.items():
        for name, line in _imports(module):
            if name not in MODULES:
                missing.append(f"{path.relative_to(SOURCE.parent)}:{line} -> {name}")
            elif name != module:
                edges.append(Edge(module, name, path, line))
    # One edge per line and target (``from x import a, b`` is one import of x).
    return sorted(set(edges), key=lambda e: (e.source, e.line, e.target)), missing


def _matches(module: str, name: str) -> bool:
    if name == PACKAGE:
        return module == PACKAGE
    return module == name or module.startswith(name + ".")


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest name that fits ``module``; None when none does."""
    best: tuple[int, int] | None = None  # (length of the name, layer)
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if _matches(module, name) and (best is None or len(name) > best[0]):
                best = (len(name), index)
    return None if best is None else best[1]


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _loop_in(component: list[str], edges: list[Edge]) -> list[Edge]:
    """One loop through the component's first module, as the edges that make it."""
    members = set(component)
    first = component[0]
    out: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.source in members and edge.target in members:
            out.setdefault(edge.source, []).append(edge)
    # Breadth-first from the first module back to itself: the shortest loop.
    paths: dict[str, list[Edge]] = {first: []}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for edge in out.get(node, []):
                if edge.target == first:
                    return [*paths[node], edge]
                if edge.target not in paths:
                    paths[edge.target] = [*paths[node], edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no loop found in {component}")  # pragma: no cover


def test_the_table_places_every_module():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    if unplaced:
        pytest.fail(f"modules without a layer in LAYERS (place them): {unplaced}", pytrace=False)


def test_every_import_names_a_module_of_the_package():
    _, missing = _graph()
    if missing:
        pytest.fail("imports of modules that do not exist:\n" + "\n".join(missing), pytrace=False)


def test_no_import_cycles():
    edges, _ = _graph()
    loops = []
    for component in _cycles(edges):
        loop = _loop_in(component, edges)
        steps = "\n".join(f"    {e.where()}: {e.source} -> {e.target}" for e in loop)
        loops.append(f"  {' -> '.join([*(e.source for e in loop), loop[0].source])}\n{steps}")
    if loops:
        pytest.fail("import cycles between modules:\n" + "\n".join(loops), pytrace=False)


def test_no_import_runs_upward():
    edges, _ = _graph()
    base = LAYERS[0][1]
    offending = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is None or target is None:
            continue  # test_the_table_places_every_module names them
        if target > source:
            offending.append(
                f"  {edge.where()}: {edge.source} ({LAYERS[source][0]}) -> {edge.target} "
                f"({LAYERS[target][0]})"
            )
            continue
        for importer, allowed, why in NARROWER:
            if _matches(edge.source, importer) and not any(
                _matches(edge.target, name) for name in (importer, *allowed, *base)
            ):
                offending.append(f"  {edge.where()}: {edge.source} -> {edge.target} ({why})")
    if offending:
        pytest.fail(
            f"{len(offending)} import(s) against the layers (a module imports only from its own "
            "layer and below; see LAYERS in tests/test_layers.py):\n" + "\n".join(offending),
            pytrace=False,
        )


# ---------------------------------------------------------------------------- the test's own


def _graph_of(sources: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Edges of a made-up package (module name -> source) laid out under ``tmp_path``."""
    modules = {}
    for name, text in sources.items():
        parts = name.split(".")
        is_package = any(other.startswith(name + ".") for other in sources)
        path = (
            tmp_path.joinpath(*parts, "__init__.py")
            if is_package
            else tmp_path.joinpath(*parts[:-1], parts[-1] + ".py")
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        modules[name] = path
    monkeypatch.setattr(sys.modules[__name__], "MODULES", modules)
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", tmp_path / PACKAGE)
    return _graph()


def test_the_walk_sees_every_form_of_import(tmp_path, monkeypatch):
    edges, missing = _graph_of(
        {
            "rarity_score": "",
            "rarity_score.a": (
                "import importlib\n"
                "from typing import TYPE_CHECKING\n"
                "from rarity_score import b\n"  # 3: a submodule
                "from . import c\n"  # 4: relative
                "if TYPE_CHECKING:\n"
                "    from rarity_score import d\n"  # never runs: no edge
                "else:\n"
                "    import rarity_score.e\n"  # 8
                "def f():\n"
                "    from .pkg.inner import name\n"  # 10: function-level, relative
                "    importlib.import_module('rarity_score.g')\n"  # 11
                "    importlib.import_module(f'rarity_score.{name}')\n"  # computed: unseen
                "    from rarity_score import __version__\n"  # 13: the package's __init__
                "    import rarity_score.gone\n"  # 14: no such module
            ),
            "rarity_score.b": "",
            "rarity_score.c": "",
            "rarity_score.d": "",
            "rarity_score.e": "",
            "rarity_score.g": "",
            "rarity_score.pkg": "",
            "rarity_score.pkg.inner": "from .. import b\nfrom . import other\n",
        },
        tmp_path,
        monkeypatch,
    )
    seen = {(e.source, e.target, e.line) for e in edges}
    assert seen == {
        ("rarity_score.a", "rarity_score.b", 3),
        ("rarity_score.a", "rarity_score.c", 4),
        ("rarity_score.a", "rarity_score.e", 8),
        ("rarity_score.a", "rarity_score.pkg.inner", 10),
        ("rarity_score.a", "rarity_score.g", 11),
        ("rarity_score.a", "rarity_score", 13),
        ("rarity_score.pkg.inner", "rarity_score.b", 1),
        # ``from . import other`` in pkg/inner.py names an attribute of pkg/__init__.py
        ("rarity_score.pkg.inner", "rarity_score.pkg", 2),
    }
    assert missing == ["rarity_score/a.py:14 -> rarity_score.gone"]


def test_a_cycle_is_named_with_its_lines(tmp_path, monkeypatch):
    edges, _ = _graph_of(
        {
            "rarity_score": "",
            "rarity_score.x": "import rarity_score.y\n",
            "rarity_score.y": "\n\ndef f():\n    from rarity_score import x\n",
            "rarity_score.z": "import rarity_score.x\n",
        },
        tmp_path,
        monkeypatch,
    )
    assert _cycles(edges) == [["rarity_score.x", "rarity_score.y"]]
    loop = _loop_in(["rarity_score.x", "rarity_score.y"], edges)
    assert [e.where() for e in loop] == ["rarity_score/x.py:1", "rarity_score/y.py:4"]


def test_the_layer_table():
    assert layer_of("rarity_score") == len(LAYERS) - 1
    assert layer_of("rarity_score.io.cache") == layer_of("rarity_score.io")
    assert layer_of("rarity_score.cli.commands") == layer_of("rarity_score.cli")
    families = layer_of("rarity_score.features.vgg")
    registry = layer_of("rarity_score.features.registry")
    assert families is not None and registry is not None and families < registry
    assert layer_of("rarity_score.features.somethingnew") == registry
    assert layer_of("rarity_score.elsewhere") is None  # a new top-level module must be placed


# ------------------------------------------------------------------------------- at run time


def _imported_after(statement: str) -> list[str]:
    """The modules loaded by ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"{statement!r} failed:\n{done.stderr}"
    return done.stdout.split()


def test_importing_the_package_imports_no_numpy():
    """The ``rarity`` command imports the package first; a Ctrl-C during a numpy import would
    land where nothing catches it (see ``_entry``)."""
    loaded = _imported_after("import rarity_score")
    heavy = [m for m in loaded if m.split(".")[0] in ("numpy", "torch", "PIL", "matplotlib")]
    assert not heavy, heavy


def test_importing_the_report_loads_no_engine_and_no_extractor():
    loaded = _imported_after("import rarity_score.report")
    upper = [
        m
        for m in loaded
        if m.startswith(("rarity_score.engine", "rarity_score.features", "rarity_score.manifold"))
        or m.split(".")[0] == "torch"
    ]
    assert not upper, upper
