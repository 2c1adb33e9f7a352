import pytest

import part
from tests.ablation.golden import tiny, write_splits


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    """The tiny labelled .npz splits of :func:`tests.ablation.golden.write_splits`."""
    return write_splits(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def grid_run(tmp_path_factory, root):
    """The tiny grid (part x #pairs 4/8 and mp3, seeds 0/1), run once for the session."""
    out = tmp_path_factory.mktemp("abl") / "tiny"
    return part.ablate(tiny(root), out=out, verbose=False)
