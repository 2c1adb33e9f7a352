"""Nothing private in what is made to be shared (issue 25, item 5): an export folder (``config.json``,
``README.md``, ``model.safetensors``) carries no absolute local path and no host name; the dataset is named
by its kind and the last component of its root, an ``--init`` source by its last component."""

from __future__ import annotations

import re
import socket

import pytest

import part
from part.cli import main

from .helpers import tiny_raw, write_config


@pytest.mark.fault
def test_export_names_no_local_path_or_host(tmp_path, data):
    pre = part.pretrain(tiny_raw(data, max_steps=2), out=tmp_path / "pre", progress=False).run_dir
    raw = tiny_raw(data, max_steps=2)
    part.pretrain(raw, out=tmp_path / "run", init=str(pre), progress=False)
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "hub")]) == 0
    paths = {str(tmp_path), str(tmp_path.resolve()), str(data.parent)}
    host = re.compile(rf"\b{re.escape(socket.gethostname())}\b")
    for folder in (tmp_path / "hub", tmp_path / "run" / "export"):
        for f in folder.iterdir():
            text = f.read_bytes().decode("latin-1")
            leaked = [p for p in paths if p in text]
            if f.suffix in (".json", ".md"):  # a short host name may occur by chance in binary weights
                leaked += host.findall(text)
            assert not leaked, (f.name, leaked)
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "`npz` (tiny.npz)" in card and "**Initialised from:** pre" in card
