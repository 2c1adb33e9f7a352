import pytest

from part.config import Config, apply_overrides, config_from_dict, load_config, parse_override


def test_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  arch: vit_small\noptim:\n  lr: 1.0e-3\n")
    cfg = load_config(p, ["optim.lr=5e-4", "train.max_steps=10", "objective.num_pairs=all", "data.rrc_scale=[0.3, 1.0]"])
    assert isinstance(cfg, Config)
    assert cfg.model.arch == "vit_small" and cfg.optim.lr == 5e-4 and cfg.train.max_steps == 10
    assert cfg.objective.num_pairs == "all" and cfg.data.rrc_scale == [0.3, 1.0]


def test_unknown_key_named():
    with pytest.raises(ValueError, match=r"unknown config key optim\.learning_rate"):
        config_from_dict({"optim": {"learning_rate": 1.0}})
    with pytest.raises(ValueError, match=r"unknown config key trainer"):
        config_from_dict({"trainer": {}})
    with pytest.raises(ValueError, match=r"unknown config key train\.stepz"):
        load_config(None, ["train.stepz=3"])


def test_bad_values():
    with pytest.raises(ValueError, match="train.amp must be one of"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ValueError, match=r"train\.batch_size.*positive.*0"):
        load_config(None, ["train.batch_size=0"])
    with pytest.raises(ValueError, match="must look like key=value"):
        parse_override("optim.lr")
    with pytest.raises(ValueError, match="config file not found"):
        load_config("/nonexistent/config.yaml")


def test_override_is_a_copy():
    base = {"optim": {"lr": 1.0}}
    out = apply_overrides(base, ["optim.lr=2"])
    assert base["optim"]["lr"] == 1.0 and out["optim"]["lr"] == 2


def test_shipped_configs_load():
    from pathlib import Path

    from part.ablation import load_ablation_config

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files
    for f in files:  # ablation grids have their own schema around a base config
        (load_ablation_config if f.name.startswith("ablate_") else load_config)(f)


def test_pos_embed_mask_ratio_reaches_1d_backbone():
    from part.engine import build_backbone

    cfg = load_config(None, ["model.arch=vit1d_tiny", "model.img_size=300", "model.patch_size=10", "model.in_chans=2",
                             "model.pos_embed_mask_ratio=0.35"])
    assert build_backbone(cfg.model).pos_embed_mask_ratio == 0.35
