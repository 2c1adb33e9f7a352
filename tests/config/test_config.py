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
    with pytest.raises(ValueError, match=r"unknown.*optim\.learning_rate"):
        config_from_dict({"optim": {"learning_rate": 1.0}})
    with pytest.raises(ValueError, match=r"unknown config key trainer"):
        config_from_dict({"trainer": {}})
    with pytest.raises(ValueError, match=r"unknown.*train\.stepz"):
        load_config(None, ["train.stepz=3"])


def test_bad_values():
    with pytest.raises(ValueError, match="train.amp.*one of"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ValueError, match=r"train\.batch_size.*positive.*0"):
        load_config(None, ["train.batch_size=0"])
    with pytest.raises(ValueError, match="key=value"):
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
    for f in files:  # ablation grids and results protocols have their own schema around a base config
        (load_ablation_config if f.name.startswith(("ablate_", "results_")) else load_config)(f)


def test_pos_embed_mask_ratio_reaches_1d_backbone():
    from part.engine import build_backbone

    cfg = load_config(None, ["model.arch=vit1d_tiny", "model.img_size=300", "model.patch_size=10", "model.in_chans=2",
                             "model.pos_embed_mask_ratio=0.35"])
    assert build_backbone(cfg.model).pos_embed_mask_ratio == 0.35


def test_deit_augmentation_fields_checked():
    cfg = load_config(None, ["data.randaugment=rand-m9-mstd0.5-inc1", "data.reprob=0.25", "data.repeated_aug=3"])
    assert (cfg.data.randaugment, cfg.data.reprob, cfg.data.repeated_aug) == ("rand-m9-mstd0.5-inc1", 0.25, 3)
    d = load_config(None).data
    assert (d.randaugment, d.reprob, d.repeated_aug) == (None, 0.0, 1)  # off by default
    for override, words in (("data.randaugment=rand-m9-q3", r"data\.randaugment.*'q3'"),
                            ("data.randaugment=autoaug", r"data\.randaugment.*start with 'rand'"),
                            ("data.reprob=1.5", r"data\.reprob must be in \[0, 1\], got 1\.5"),
                            ("data.repeated_aug=0", r"data\.repeated_aug must be a positive integer.*got 0"),
                            ("data.repeated_aug=1.5", r"data\.repeated_aug must be an integer")):
        with pytest.raises(ValueError, match=words):
            load_config(None, [override])
    for kind in ("sleep_synthetic", "signal_npz"):
        for field, value in (("randaugment", "rand-m9"), ("reprob", 0.25)):
            with pytest.raises(ValueError, match=rf"data\.{field} must be .*signal source {kind}"):
                load_config(None, [f"data.kind={kind}", f"data.{field}={value}"])
    assert load_config(None, ["data.kind=sleep_synthetic", "data.repeated_aug=3"]).data.repeated_aug == 3
