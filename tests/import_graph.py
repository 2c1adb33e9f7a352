"""The first-party import graph of a ``part`` package, read from the source (AST, nothing is imported), for
the structure tests: no cycles, no private names across modules, no ``try/except ImportError`` around our
own imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files(package: str) -> dict[str, Path]:
    """``{"part.data.errors": path, ...}`` for every module of ``package`` (``__init__`` as the package)."""
    root = SRC / package.replace(".", "/")
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Absolute module name of an ``from X import ...`` inside ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(package: str) -> list[tuple[str, str, list[str], bool]]:
    """Every first-party import in ``package``: ``(importer, imported module, names, inside try)``.

    ``from . import x`` of a submodule counts as importing ``package.x``."""
    files = module_files(package)
    out = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        in_try = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                if not target.startswith("part"):
                    continue
                names = [a.name for a in node.names]
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in files]
                for t in subs or [target]:
                    out.append((name, t, [] if subs else names, id(node) in in_try))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("part"):
                        out.append((name, a.name, [], id(node) in in_try))
    return out


def cycles(package: str) -> list[list[str]]:
    """Import cycles among the modules of ``package`` (a package's ``__init__`` importing its own
    submodules is not a cycle; a submodule importing its parent package is)."""
    files = module_files(package)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for src, dst, _, _ in imports(package):
        if dst in files and dst != src and not dst.startswith(src + "."):
            graph[src].add(dst)
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def private_imports(package: str) -> list[str]:
    """``"importer: module._name"`` for every private name imported from another module."""
    return [f"{src}: {dst}.{n}" for src, dst, names, _ in imports(package) for n in names
            if n.startswith("_") and not n.startswith("__") and dst != src]


def guarded_imports(package: str) -> list[str]:
    """``"importer: module"`` for every first-party import inside a ``try`` block."""
    return [f"{src}: {dst}" for src, dst, _, in_try in imports(package) if in_try]
