"""A run folder is read with the settings it was made with: ``positions`` is recorded in new runs, and a
folder written before it was recorded gets the default of its time, not today's (issue 18 changed the 2D
off-grid default from continuous to integer)."""

import inspect

import pytest
import yaml

from part.config import load_config
from part.engine.runs import read_run_config, resolve_run, run_folder_config
from part.engine.migrations import former_positions
from part.objectives.registry import RECORDED_POSITIONS
from part.sampling import WINDOW_SAMPLERS
from part.sampling.samplers import SAMPLERS


def _write_run(tmp_path, objective: dict, arch: str = "custom"):
    run = tmp_path / "run"
    run.mkdir()
    model = {"arch": arch, "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 16, "patch_size": 4}
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "objective": objective}))
    (run / ".part-run.json").write_text('{"kind": "run"}\n')  # a folder part made (part.engine.folders)
    return run


@pytest.mark.parametrize("name, recorded", [("part", "integer"), ("part_scale", "continuous")])
def test_new_configs_record_the_positions_they_run_with(name, recorded):
    cfg = load_config(None, [f"objective.name={name}"])
    assert cfg.objective.positions == recorded
    assert cfg.to_dict()["objective"]["positions"] == recorded  # so config.yaml holds it


def test_grid_and_other_objectives_record_no_positions():
    assert load_config(None, ["objective.name=part_grid"]).objective.positions is None
    assert load_config(None, ["objective.name=mae"]).objective.positions is None


@pytest.mark.parametrize("objective, arch, expected", [
    ({"name": "part"}, "custom", "continuous"),            # 2D off-grid before issue 18
    ({"name": "part"}, "vit1d_tiny", "integer"),           # 1D was integer already
    ({"name": "part_scale"}, "custom", "continuous"),
    ({"name": "part", "positions": None}, "custom", "continuous"),
    ({"name": "part", "positions": "integer"}, "custom", "integer"),  # recorded: kept
    ({"name": "part", "positions": "continuous"}, "custom", "continuous"),
])
def test_old_run_folders_keep_the_positions_of_their_time(tmp_path, objective, arch, expected):
    run = _write_run(tmp_path, objective, arch)
    assert run_folder_config(run).objective.positions == expected
    assert read_run_config(run)[1].objective.positions == expected
    _, cfg = resolve_run(None, run, resume=True)
    assert cfg.objective.positions == expected


def test_former_positions_leaves_other_objectives_alone():
    raw = {"objective": {"name": "part_grid"}}
    assert former_positions(raw) is raw
    raw = {"objective": {"name": "mae"}}
    assert former_positions(raw) is raw
    raw = {"objective": {"name": "part", "positions": "integer"}}
    assert former_positions(raw) is raw


def test_recorded_positions_are_the_samplers_defaults_in_2d_and_1d():
    """One recorded value per sampler name serves both dimensions only while their defaults agree."""
    assert RECORDED_POSITIONS == {"offgrid": "integer", "scale": "continuous"}
    for table in (SAMPLERS, WINDOW_SAMPLERS):
        for name, recorded in RECORDED_POSITIONS.items():
            assert inspect.signature(table[name].__init__).parameters["positions"].default == recorded, name


def test_migrations_live_in_one_engine_module(tmp_path):
    """Old run folders of a non-PART objective recorded every PART field at its default of the time: the
    migration drops them (the raw file is not rewritten); a new config with them is an error."""
    from part.engine.migrations import migrate_run_config

    objective = {"name": "supervised", "head": "cross_attention", "num_pairs": 2048, "self_pairs": False,
                 "options": {"num_classes": 3}}
    run = _write_run(tmp_path, objective)
    cfg = run_folder_config(run)
    assert (cfg.objective.head, cfg.objective.num_pairs, cfg.objective.self_pairs) == (None, None, None)
    assert yaml.safe_load((run / "config.yaml").read_text())["objective"]["head"] == "cross_attention"
    raw = {"objective": dict(objective)}
    assert migrate_run_config(raw) is not raw and raw["objective"] == objective
    with pytest.raises(ValueError, match="objective.head='cross_attention'"):
        load_config(None, base={"objective": objective})
    import part.objectives.registry as registry

    assert not hasattr(registry, "FORMER_POSITIONS") and not hasattr(registry, "former_positions")
