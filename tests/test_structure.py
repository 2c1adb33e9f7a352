"""The packages' shape: no import cycles, no private names across modules, no guarded first-party imports,
every module reachable by its name (a function never hides it). ``PACKAGES`` lists the packages checked so
far; ``"part"`` joins when the whole tree passes."""

import importlib
import types

import pytest

from .import_graph import cycles, guarded_imports, imports, module_files, private_imports

PACKAGES = ["part.data", "part.visualization", "part.ablation", "part.models", "part.sampling", "part.objectives"]


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
