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


def test_validate_config_is_pure():
    """validate_config returns the resolved config and never changes the one it checks."""
    import copy

    from part.config import validate_config

    cfg = config_from_dict({"objective": {"name": "part_scale"}, "model": {"mlp_ratio": 4}})
    before = copy.deepcopy(cfg.to_dict())
    out = validate_config(cfg)
    assert cfg.to_dict() == before and cfg.objective.head is None and cfg.objective.scale_range is None
    assert out is not cfg and out.objective is not cfg.objective
    assert (out.objective.head, out.objective.num_pairs, out.objective.scale_range) == ("cross_attention_paper",
                                                                                         2048, [0.5, 2.0])
    assert validate_config(out).to_dict() == out.to_dict()  # resolving a resolved config changes nothing
    bad = config_from_dict({"train": {"batch_size": 0}})
    with pytest.raises(ValueError, match="train.batch_size"):
        validate_config(bad)
    assert bad.train.batch_size == 0


@pytest.mark.parametrize("overrides, words", [
    (["objective.name=mae", "objective.options={mask_ratio: abc}"], ["objective.options.mask_ratio", "a number", "'abc'"]),
    (["objective.name=mp3", "objective.options={shuffle: 3}"], ["objective.options.shuffle", "true or false", "3"]),
    (["objective.name=droppos", "objective.options={decoder_depth: 1.5}"], ["objective.options.decoder_depth",
                                                                            "an integer", "1.5"]),
    (["objective.name=supervised", "objective.options={num_classes: ten}"], ["objective.options.num_classes",
                                                                             "an integer", "'ten'"]),
    (["objective.name=supervised", "objective.options={num_classes: 3, global_pool: 1}"],
     ["objective.options.global_pool", "a string"]),
    (["objective.name=part", "objective.options={check_inputs: maybe}"], ["objective.options.check_inputs"]),
    (["objective.num_pairs=0"], ["objective.num_pairs", "0"]),
    (["objective.num_pairs=some"], ["objective.num_pairs", "'some'"]),
])
def test_objective_options_are_typed_like_part_fields(overrides, words):
    with pytest.raises(ValueError) as info:
        load_config(None, overrides)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_typed_options_come_from_the_constructors():
    """Each objective's options are a dataclass whose fields, types and defaults are its constructor's."""
    import dataclasses
    import inspect

    from part.objectives.registry import OBJECTIVES, PART_FIELDS, objective_options, options_type

    for name, (cls, fixed) in OBJECTIVES.items():
        fields = {f.name: f for f in dataclasses.fields(options_type(name))}
        params = inspect.signature(cls.__init__).parameters
        assert set(fields) == set(objective_options(name)) - set(PART_FIELDS) - set(fixed)
        for k, f in fields.items():
            default = params[k].default
            assert (f.default is dataclasses.MISSING) if default is inspect.Parameter.empty else f.default == default
    cfg = load_config(None, ["objective.name=supervised", "objective.options={num_classes: 3, mixup: 1}"])
    assert cfg.to_dict()["objective"]["options"] == {"num_classes": 3, "mixup": 1}  # as given: no defaults filled


def test_nothing_downstream_changes_the_config_and_a_saved_one_records_its_defaults(tmp_path):
    """build_objective reads the config (no fill-in in place); save_config writes the resolved objective section,
    so a run folder records the PART defaults it ran with even for a config built without validation."""
    import yaml

    from part.config import save_config
    from part.engine import build_objective

    cfg = config_from_dict({"model": {"arch": "custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 8,
                                      "patch_size": 4, "in_chans": 1}, "objective": {"name": "part", "num_pairs": 6}})
    before = cfg.to_dict()
    obj = build_objective(cfg)
    assert cfg.to_dict() == before and obj.sampler.positions == "integer" and obj.num_pairs == 6
    save_config(cfg, tmp_path / "c.yaml")
    saved = yaml.safe_load((tmp_path / "c.yaml").read_text())["objective"]
    assert (saved["head"], saved["positions"], saved["self_pairs"]) == ("cross_attention_paper", "integer", False)
    assert cfg.to_dict() == before
    assert load_config(tmp_path / "c.yaml").to_dict() == load_config(None, base=before).to_dict()
