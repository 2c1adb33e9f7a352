"""The data-kind registry (``part.data.kinds``): one row per ``data.kind``, names written once, the typed
options checked at config load with one-line errors, one ``normalize`` vocabulary (the old bool spelling
still read, in one place) and one split vocabulary."""

import ast
from pathlib import Path

import pytest

from part.config import ConfigError, DataConfig, load_config
from part.data import transforms as T
from part.data.kinds import DATA_KINDS, check_data_kind, data_kind, data_normalize, data_options, published_stats
from part.data.signal_npz import SignalNpzOptions
from part.data.signal_options import NORMALIZE_MODES, normalize_mode, split_name
from part.data.sleep.options import RecordSleepOptions, SleepNpzOptions, SyntheticSleepOptions

SRC = Path(__file__).resolve().parents[2] / "src" / "part"
SLEEP = ("sleep_synthetic", "physionet2018", "sleep_edf", "sleep_npz")


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]


def test_every_kind_name_is_written_once_in_the_code():
    """A kind's name is a string in exactly one module (the one that registers its reader); the config's
    default kind is the only other."""
    where = {name: [] for name in DATA_KINDS}
    for path in sorted(SRC.rglob("*.py")):
        for s in _code_strings(path):
            if s in where:
                where[s].append(str(path.relative_to(SRC)))
    where["fashion_mnist"].remove("config.py")  # DataConfig.kind's default
    assert {name: len(files) for name, files in where.items()} == {name: 1 for name in DATA_KINDS}, where


def test_rows_say_what_the_rest_of_part_asks():
    for name, kind in DATA_KINDS.items():
        assert kind.name == name and kind.dims in (1, 2, None)
        data_kind(name).options({})  # every kind has defaults for every option
    assert {n for n, k in DATA_KINDS.items() if k.dims == 1} == {"signal_npz", *SLEEP}
    assert {n for n, k in DATA_KINDS.items() if k.records} == {"signal_npz", *SLEEP}
    assert [n for n, k in DATA_KINDS.items() if k.stream] == ["wds"]
    assert data_kind("Fashion-MNIST") is DATA_KINDS["fashion_mnist"]  # image kinds as their reader spells them
    with pytest.raises(ValueError, match=r"data.kind='mnist' is not a data kind; choose one of \['idx'"):
        data_kind("mnist")


@pytest.mark.parametrize("kind, channels, expected", [
    ("fashion_mnist", 1, (list(T.FASHION_MNIST_MEAN), list(T.FASHION_MNIST_STD))),
    ("cifar", 3, (list(T.CIFAR100_MEAN), list(T.CIFAR100_STD))),
    ("imagefolder", 3, (list(T.IMAGENET_MEAN), list(T.IMAGENET_STD))),
    ("imagefolder", 1, ([sum(T.IMAGENET_MEAN) / 3], [sum(T.IMAGENET_STD) / 3])),  # averaged to the channels
    ("wds", 3, (list(T.IMAGENET_MEAN), list(T.IMAGENET_STD))),
    ("signal_npz", 2, None),  # normalize: dataset fills them from the train split, before training
    ("sleep_synthetic", 6, None),  # windows are instance-normalised (or used as stored)
])
def test_published_statistics(kind, channels, expected):
    assert published_stats(DataConfig(kind=kind, channels=channels)) == expected


def test_normalize_one_vocabulary_and_the_old_bool_spelling():
    assert NORMALIZE_MODES == ("none", "window", "dataset")
    assert normalize_mode(True, "x") == "window" and normalize_mode(False, "x") == "none"
    # each kind's default, written once in its options dataclass
    assert SignalNpzOptions().normalize == "dataset"
    assert SyntheticSleepOptions().normalize == RecordSleepOptions().normalize == "window"
    assert SleepNpzOptions().normalize == "none"
    for kind, given, mode in [("sleep_npz", True, "window"), ("physionet2018", False, "none"),
                              ("sleep_edf", "window", "window"), ("signal_npz", "window", "window"),
                              ("signal_npz", True, "window"), ("sleep_synthetic", None, "window"),
                              ("fashion_mnist", None, None)]:
        options = {} if given is None else {"normalize": given}
        root = "x.npz" if kind == "signal_npz" else None
        cfg = load_config(None, base={"data": {"kind": kind, "root": root, "options": options,
                                               "randaugment": None}})
        assert data_normalize(cfg.data) == mode, (kind, given)
        assert cfg.to_dict()["data"]["options"] == options  # the config keeps what was written


@pytest.mark.parametrize("kind, options, match", [
    ("sleep_synthetic", {"normalize": "dataset"},
     r"data.options.normalize must be one of \['none', 'window'\] for data.kind='sleep_synthetic', got 'dataset'"),
    ("signal_npz", {"normalize": "zscore"}, r"data.options.normalize must be one of \['none', 'window', 'dataset'\]"),
    ("physionet2018", {"fs": "fast"}, r"data.options.fs must be a number, got 'fast'"),
    ("physionet2018", {"channels": "C3-M2"}, r"data.options.channels must be a list of strings or null, got 'C3-M2'"),
    ("sleep_edf", {"cache": "yes"}, r"data.options.cache must be true or false, got 'yes'"),
    ("sleep_npz", {"max_records": 0}, r"data.options.max_records must be a positive int, got 0"),
    ("sleep_synthetic", {"n_test": "all"}, r"data.options.n_test must be a count or a fraction of the subjects"),
    ("sleep_synthetic", {"n_subject": 3}, r"unknown data.options \['n_subject'\] for data.kind='sleep_synthetic'"),
    ("wds", {"epoch_sise": 3}, r"unknown option data.options.epoch_sise for data.kind wds"),
    ("imagefolder", {"resize": "pad"}, r"unknown option data.options.resize for data.kind imagefolder"),
])
def test_options_are_checked_at_load_in_one_line(kind, options, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, base={"data": {"kind": kind, "options": options}})
    with pytest.raises(ValueError, match=match):  # the function the config validator calls
        check_data_kind(DataConfig(kind=kind, options=options))


def test_signals_take_no_image_augmentation_and_streams_no_index():
    for kind in ("signal_npz", *SLEEP):
        with pytest.raises(ValueError, match=f"data.reprob must be 0 for the signal source {kind}"):
            check_data_kind(DataConfig(kind=kind, reprob=0.25))
    with pytest.raises(ValueError, match="data.max_samples must be null for data.kind wds"):
        check_data_kind(DataConfig(kind="wds", max_samples=10))


def test_one_split_vocabulary():
    assert split_name("pretrain", ("train", "finetune", "test"), "sleep_npz") == "train"
    assert split_name("val", ("train", "val", "test"), "signal_npz") == "val"
    with pytest.raises(ValueError, match=r"data.split='finetune' is not a split of data.kind='signal_npz'; "
                                         r"choose one of \['pretrain', 'train', 'val', 'test'\]"):
        split_name("finetune", ("train", "val", "test"), "signal_npz")


def test_options_are_typed_and_hashable():
    o = data_options(DataConfig(kind="physionet2018", options={"channels": ["C3-M2"], "band": [0.3, 20]}))
    assert isinstance(o, RecordSleepOptions) and o.channels == ("C3-M2",) and o.band == (0.3, 20)
    hash(o)


def test_every_1d_dataset_has_the_same_face(tmp_path):
    """Whatever reads them, the 1D kinds' datasets answer the same questions: labels, groups (subjects for
    the sleep kinds), classes, channels, rate, split (in the one vocabulary), normalize, and a record."""
    import numpy as np

    from part.engine import build_dataset

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", x=rng.normal(size=(6, 2, 40)).astype(np.float32), y=np.arange(6) % 2,
             group=np.repeat(["a", "b"], 3), fs=np.float64(50.0), channel_names=np.array(["c3", "c4"]),
             class_names=np.array(["rest", "move"]))
    signal = load_config(None, base={
        "model": {"arch": "vit1d_tiny", "img_size": 40, "patch_size": 8, "in_chans": 2},
        "data": {"kind": "signal_npz", "root": str(tmp_path / "s.npz"), "split": "pretrain",
                 "options": {"normalize": "window"}}})
    sleep = load_config(None, base={
        "model": {"arch": "vit1d_tiny", "img_size": 200, "patch_size": 20, "in_chans": 2},
        "data": {"kind": "sleep_synthetic", "split": "pretrain", "options": {
            "n_subjects": 4, "epochs_per_subject": 3, "channels": 2, "fs": 50, "window_s": 4, "n_finetune": 1,
            "n_test": 1, "normalize": True}}})
    for cfg in (signal, sleep):
        ds = build_dataset(cfg, train=False)
        assert ds.split == "train" and ds.normalize == "window", cfg.data.kind
        assert len(ds.labels) == len(ds.groups) == len(ds) and len(ds.channels) == 2 and ds.fs == 50.0
        assert ds.classes is not None
        rec = ds.record()
        assert rec["split"] == "train" and rec["normalize"] == "window" and rec["groups"]
