"""Load a script of ``benchmarks/`` as a module (the scripts are not a package): one home for the tests."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(name: str):
    """``benchmarks/<name>.py`` executed as module ``name``, with ``benchmarks/`` on ``sys.path`` as when the
    script runs (``python benchmarks/<name>.py`` puts its folder first): the scripts import the shared
    ``yardstick``."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
