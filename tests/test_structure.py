"""The packages' shape, over the whole ``src/part`` tree: no import cycles, imports only downward through the
layers of docs/architecture.md, no private names across modules, no guarded first-party imports, every
module reachable by its name (a function never hides it), and no module over :data:`MAX_LINES` lines
unless docs/architecture.md names it with its one idea."""

import importlib
import re
import types
from pathlib import Path

import pytest

from .import_graph import SRC, cycles, guarded_imports, imports, module_files, private_imports

PACKAGES = ["part"]
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
MAX_LINES = 500

# docs/architecture.md "Import direction", lowest first: a unit imports its own modules and lower layers only
LAYERS = [
    ("part.io",),
    ("part.sampling", "part.targets", "part.data", "part.cliargs"),
    ("part.models",),
    ("part.objectives",),
    ("part.config_checks",),
    ("part.config",),
    ("part.engine",),
    ("part.evaluation",),
    ("part.visualization", "part.api"),
    ("part.ablation",),
    ("part",),  # the root re-exports the Python API
    ("part.cli",),
    ("part.__main__",),  # python -m part
]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    assert cycles(package) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_names_across_modules(package):
    assert private_imports(package) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_try_except_around_our_own_imports(package):
    assert guarded_imports(package) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_is_its_parents_attribute(package):
    for name in module_files(package):
        if "." not in name or name.endswith(".__main__"):  # the root has no parent; __main__ runs the CLI
            continue
        module = importlib.import_module(name)
        parent, _, leaf = name.rpartition(".")
        attr = getattr(importlib.import_module(parent), leaf)
        assert isinstance(attr, types.ModuleType) and attr is module, f"{name} is hidden by {attr!r}"


def test_core_layers_import_downward_only():
    """Networks know no objective, engine, data or config; geometry (sampling, targets) knows no network;
    objectives know no engine (design: objectives -> models, sampling, targets)."""
    allowed = {"part.models": ("part.models", "part.sampling", "part.targets"),
               "part.sampling": ("part.sampling",),
               "part.objectives": ("part.objectives", "part.models", "part.sampling", "part.targets")}
    for package, ok in allowed.items():
        bad = [(src, dst) for src, dst, _, _ in imports(package) if not dst.startswith(ok)]
        assert bad == [], bad
    assert any(src == "part.models.registry" and dst == "part.models.fast_heads" for src, dst, _, _ in imports("part.models"))


def _unit(module: str) -> str:
    """``part.engine.trainer`` -> ``part.engine``: the top-level package or module of ``part`` it belongs to."""
    return ".".join(module.split(".")[:2])


def test_units_import_downward_through_the_layers():
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    found = {_unit(m) for m in module_files("part")}
    assert found <= set(layer), f"add {sorted(found - set(layer))} to LAYERS and docs/architecture.md"
    bad = sorted({f"{src} -> {dst}" for src, dst, _, _ in imports("part")
                  if _unit(src) != _unit(dst) and layer[_unit(dst)] >= layer[_unit(src)]})
    assert bad == [], bad


def _long_modules_listed() -> set[str]:
    """The paths (``part/...py``) named in the "Long modules" section of docs/architecture.md."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Long modules", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(part/[\w/]+\.py)`", section))


def test_no_module_over_max_lines_unless_architecture_names_its_one_idea():
    listed = _long_modules_listed()
    long = {path.relative_to(SRC).as_posix(): len(path.read_text().splitlines())
            for path in module_files("part").values()}
    unlisted = {p: n for p, n in long.items() if n > MAX_LINES and p not in listed}
    assert unlisted == {}, f"split these or name their one idea under 'Long modules' in {ARCHITECTURE}"


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    import tests.import_graph as graph

    pkg = tmp_path / "part" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _hidden\n")
    (pkg / "b.py").write_text("try:\n    from . import a\nexcept ImportError:\n    a = None\n_hidden = 1\n")
    monkeypatch.setattr(graph, "SRC", tmp_path)
    assert cycles("part.demo") == [["part.demo.a", "part.demo.b", "part.demo.a"]]
    assert private_imports("part.demo") == ["part.demo.a: part.demo.b._hidden"]
    assert guarded_imports("part.demo") == ["part.demo.b: part.demo.a"]
