"""The override grammar of part.config: dotted keys, list indices, in order, on copies; merging mappings."""

import pytest

from part.config import apply_overrides, load_config, merge_dicts, parse_override


def test_list_index_sets_one_entry():
    cfg = load_config(None, ["data.rrc_scale.0=0.3", "optim.betas.1=0.99"])
    assert cfg.data.rrc_scale == [0.3, 1.0] and cfg.optim.betas == [0.9, 0.99]
    data = {"grid": [{"seeds": [0]}, {"seeds": [1, 2]}]}
    out = apply_overrides(data, ["grid.1.seeds.0=7", "grid.0.heads=[mlp]"])
    assert out == {"grid": [{"seeds": [0], "heads": ["mlp"]}, {"seeds": [7, 2]}]}
    assert data == {"grid": [{"seeds": [0]}, {"seeds": [1, 2]}]}  # a copy: nested lists untouched


def test_overrides_apply_in_order():
    out = apply_overrides({"a": [1, 2]}, ["a=[5, 6, 7]", "a.2=8"])
    assert out == {"a": [5, 6, 8]}
    out = apply_overrides({"a": [1, 2]}, ["a.0=9", "a=[3]"])
    assert out == {"a": [3]}


@pytest.mark.parametrize("item, words", [
    ("grid.2.seeds=[0]", ["'grid.2.seeds'", "no list entry 2", "has 2"]),
    ("grid.x=1", ["'grid.x'", "no list entry x"]),
    ("grid.-1=1", ["no list entry -1"]),
    ("name.first=1", ["'name.first'", "'name' is not a section"]),
    ("grid.0.seeds.0.x=1", ["'grid.0.seeds.0.x'", "'0' is not a section"]),
    ("model.betas.0=0.5", ["'model.betas.0'", "model.betas is not set", "no list to index"]),
])
def test_bad_paths_are_named(item, words):
    with pytest.raises(ValueError) as err:
        apply_overrides({"name": "x", "grid": [{"seeds": [0]}, {}], "model": {}}, [item])
    assert all(w in str(err.value) for w in words), str(err.value)


def test_empty_key_parts_are_refused():
    for item in ("=1", "optim..lr=1", "optim.=1"):
        with pytest.raises(ValueError, match="empty part"):
            parse_override(item)


def test_merge_dicts_merges_mappings_and_copies():
    base = {"model": {"arch": "custom", "depth": 2}, "data": {"rrc_scale": [0.2, 1.0]}}
    update = {"model": {"depth": 4}, "data": {"rrc_scale": [0.5, 1.0]}, "train": {"seed": 1}}
    out = merge_dicts(base, update)
    assert out == {"model": {"arch": "custom", "depth": 4}, "data": {"rrc_scale": [0.5, 1.0]}, "train": {"seed": 1}}
    out["data"]["rrc_scale"][0] = 0.9
    out["train"]["seed"] = 2
    assert update["data"]["rrc_scale"] == [0.5, 1.0] and update["train"]["seed"] == 1  # nothing shared
    assert merge_dicts(base, None) == base and merge_dicts(base, None) is not base
