"""The ablation config: unknown keys, objectives, heads, values named before anything is written; base files
and overrides (list indices) through part.config."""

from __future__ import annotations

import pytest
import yaml

import part
from part.ablation.plan import plan_cells
from part.ablation.settings import load_ablation_config
from tests.ablation.golden import NUM_CLASSES, tiny


@pytest.mark.parametrize("change, match", [
    ({"grid": {"objectives": ["part", "byol"]}}, r"grid\.objectives.*objective.*'byol'"),
    ({"grid": {"objectives": ["mp3"]}, "objectives": {"mp3": {"heads": ["mlp"]}}},
     r"objectives\.mp3\.heads.*objectives.*'mp3'"),
    ({"grid": {"objectives": ["mp3", "mae"], "heads": ["mlp"]}},
     r"grid\.heads.*'mp3'.*'mae'"),
    ({"grid": {"objectives": ["part"], "heads": ["transformer"]}}, r"grid\.heads.*head.*'transformer'"),
    ({"grid": {"objectives": ["part"], "num_pairs": [0]}}, r"grid\.num_pairs.*positive"),
    ({"grid": {"objectives": ["part"], "num_pairs": [100]}},
     "objective.*'part'.*num_pairs=100.*12"),
    ({"grid": {"objectives": ["mae"]}, "objectives": {"mae": {"options": {"mask_raito": 0.5}}}},
     r"mask_raito"),
    ({"grid": {"objectives": ["supervised"]}}, "'supervised'.*finetune"),
    ({"grid": {"objectives": ["part"], "seeds": [0, 0]}}, r"grid\.seeds.*twice"),
    ({"grid": {"objectives": ["part"]}, "objectives": {"v": {"objective": "simclr"}}},
     r"objectives\.v\.objective.*objective.*'simclr'"),
    ({"grid": {"objectives": ["part"]}, "probe": {"pool": "max"}}, r"probe\.pool.*'avg'.*'token'.*'flat'"),
    ({"grid": {"objectives": ["part"]}, "probe": {"epoch": 3}}, r"unknown.*probe\.epoch"),
    ({"grid": {"objectives": ["part"]}, "probe": {"epochs": 0}}, r"probe\.epochs.*0"),
    ({"grid": {"objectives": ["part"]}, "pretext": {"max_samples": -1}},
     r"pretext\.max_samples.*-1"),
    ({"grid": {"objectives": ["part"]}, "finetune": {"train": {"max_steps": 2}}}, r"finetune\.num_classes"),
    ({"grid": {"objectives": ["part"]}, "seed": [1]}, "key.*'seed'"),
    ({"grid": {"objectives": ["part"]}, "base": "nowhere.yaml"}, r"not found.*nowhere\.yaml"),
])
def test_invalid_entries_are_named(tmp_path, root, change, match):
    with pytest.raises(ValueError, match=match):
        part.ablate(tiny(root, **change), out=tmp_path / "never", verbose=False)
    assert not (tmp_path / "never").exists()  # validated before anything is written


def test_pretrain_typo_is_named(root):
    cfg = tiny(root)
    cfg["pretrain"]["optim"]["learning_rate"] = 1e-3
    with pytest.raises(ValueError, match=r"unknown.*optim\.learning_rate"):
        load_ablation_config(cfg)


def test_overrides_lists_and_base_file(tmp_path, root):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny(root)["pretrain"]))
    cfg = tiny(root, grid=[{"objectives": ["part"], "num_pairs": [4, 8]}, {"objectives": ["mp3"]}], seeds=[0, 1])
    del cfg["pretrain"], cfg["name"]  # the name defaults to the file's stem
    cfg["base"] = "base.yaml"
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump(cfg))
    acfg = load_ablation_config(tmp_path / "abl.yaml", ["grid.0.seeds=[5]", "pretrain.optim.lr=0.01",
                                                        "pretrain.data.rrc_scale.0=0.3"])
    cells = plan_cells(acfg)
    assert [c.name for c in cells] == ["mp3-s0", "mp3-s1", "part-cross_attention_paper-p4-s5",
                                       "part-cross_attention_paper-p8-s5"]  # the default head (issue 18)
    assert acfg.name == "abl" and cells[-1].pretrain.optim.lr == 0.01 and cells[-1].pretrain.data.root == str(root)
    assert cells[-1].pretrain.data.rrc_scale == [0.3, 1.0]  # a list entry of the base file, indexed
    with pytest.raises(ValueError, match=r"override.*'grid\.7\.seeds'.*entry.*7"):
        load_ablation_config(tmp_path / "abl.yaml", ["grid.7.seeds=[5]"])
    with pytest.raises(ValueError, match=r"not found.*nope\.yaml"):
        load_ablation_config(tmp_path / "nope.yaml")


def test_overrides_apply_in_order(root):
    """Overrides apply one after the other as given (a whole grid, then an entry of it)."""
    cfg = tiny(root)
    acfg = load_ablation_config(cfg, ['grid=[{objectives: [part], num_pairs: [4]}, {objectives: [mp3]}]',
                                      "grid.1.seeds=[3]"])
    assert [b.seeds for b in acfg.grid] == [None, [3]]
    assert cfg["grid"] == {"objectives": ["part", "mp3"], "heads": ["cross_attention"], "num_pairs": [4, 8],
                           "seeds": [0, 1]}  # input untouched


def test_supervised_needs_classes(root):
    cfg = tiny(root, grid={"objectives": ["supervised"], "seeds": [0]},
               finetune={"num_classes": NUM_CLASSES, "train": {"max_steps": 2}})
    assert [c.name for c in plan_cells(load_ablation_config(cfg))] == ["supervised-s0"]
    with pytest.raises(ValueError, match=r"finetune\.num_classes.*int.*2.*1"):
        load_ablation_config(cfg, ["finetune.num_classes=1"])
