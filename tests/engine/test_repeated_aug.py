"""Repeated augmentation (DeiT's RASampler) as a dataset wrapper behind the trainer's sampler: DeiT's order on
one process and under DDP sharding, exact mid-epoch resume, different augmentations per copy, labels."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from part.config import load_config
from part.engine.loader import RepeatedAugmentation, ResumableSampler, SeededItems, epoch_order


class Indexed(Dataset):
    """Item i is ``(i, one random draw)``: which image was read and which augmentation seed it got."""

    def __init__(self, n: int):
        self.n = n
        self.labels = [i % 5 for i in range(n)]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i, torch.rand(()).item()


def deit_ra_reference(length, repeats, seed, epoch, rank, world, per_rank_batches, batch):
    """timm/DeiT ``RASampler`` written out, on the same permutation: each image ``repeats`` times in a row,
    dealt round-robin to the ranks, each rank keeping its first ``per_rank_batches * batch`` samples."""
    perm = epoch_order(length, seed, epoch).tolist()
    repeated = [i for i in perm for _ in range(repeats)]
    return repeated[rank::world][: per_rank_batches * batch]


def read_order(length, repeats, seed, epoch, rank, world, batch, start_batch=0):
    data = RepeatedAugmentation(Indexed(length), repeats, seed=seed)
    items = SeededItems(data, seed=seed)
    items.epoch = epoch  # as the trainer sets it; reaches the wrapper through set_epoch
    sampler = ResumableSampler(length, batch, seed, True, rank, world)
    sampler.set_epoch(epoch, start_batch)
    return [items[i] for i in sampler], sampler


@pytest.mark.parametrize("length,repeats,world,batch", [(60, 3, 1, 6), (61, 3, 4, 3), (50, 2, 3, 4), (40, 1, 2, 5)])
def test_order_is_deits_on_each_rank(length, repeats, world, batch):
    for epoch in (0, 3):
        per_rank = []
        for rank in range(world):
            got, sampler = read_order(length, repeats, 7, epoch, rank, world, batch)
            ref = deit_ra_reference(length, repeats, 7, epoch, rank, world, sampler.batches_per_epoch, batch)
            assert [i for i, _ in got] == ref
            per_rank.append(got)
        # the copies of an image read in one global step sit in that step's batches
        n_steps = per_rank[0].__len__() // batch
        for step in range(n_steps):
            seen = [i for r in per_rank for i, _ in r[step * batch:(step + 1) * batch]]
            counts = torch.bincount(torch.tensor(seen), minlength=length)
            # every image but those split across a step boundary appears `repeats` times in the step
            assert (counts[counts > 0] == repeats).sum() >= len(set(seen)) - 2


def test_copies_get_different_augmentations_and_cover_a_third_per_epoch():
    got, _ = read_order(90, 3, 0, 1, 0, 1, 9)
    images = [i for i, _ in got]
    assert len(set(images)) == 30  # 90 samples: 30 images, 3 times each
    draws: dict[int, set] = {}
    for i, d in got:
        draws.setdefault(i, set()).add(d)
    assert all(len(v) == 3 for v in draws.values())  # each copy its own augmentation seed
    other, _ = read_order(90, 3, 0, 2, 0, 1, 9)
    assert [i for i, _ in other] != images  # a new epoch, a new draw


def test_mid_epoch_resume_reads_the_same_items():
    full, sampler = read_order(64, 3, 5, 2, 1, 2, 4)
    for start in (1, 3, 7):
        tail, _ = read_order(64, 3, 5, 2, 1, 2, 4, start_batch=start)
        assert tail == full[start * 4:]  # same images and the same augmentation draws


def test_worker_processes_read_the_same_order():
    data = RepeatedAugmentation(Indexed(48), 3, seed=2)
    items = SeededItems(data, seed=2)
    items.epoch = 1
    sampler = ResumableSampler(48, 6, 2, True)
    sampler.set_epoch(1)
    inline = [i for i, _ in (items[j] for j in sampler)]
    loader = DataLoader(items, batch_size=6, sampler=sampler, num_workers=2)
    assert [int(i) for batch, _ in loader for i in batch] == inline


def test_labels_follow_the_epoch_and_identity_at_one_repeat():
    base = Indexed(30)
    ra = RepeatedAugmentation(base, 3, seed=1)
    ra.set_epoch(4)
    assert ra.labels.tolist() == [base.labels[int(j)] for j in ra.sources()]
    assert [ra[i][0] for i in range(30)] == ra.sources().tolist()
    one = RepeatedAugmentation(base, 1)
    assert [one[i][0] for i in range(30)] == list(range(30))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="repeats >= 1"):
            RepeatedAugmentation(base, bad)


def test_config_fields_build_the_wrapper(tmp_path):
    import numpy as np

    from part.engine import build_dataset

    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8), y=np.arange(12) % 3)
    sets = [f"data.root={path}", "data.kind=npz", "model.img_size=8", "model.in_chans=1", "train.seed=4"]
    cfg = load_config(None, sets + ["data.repeated_aug=3", "data.randaugment=rand-m9-mstd0.5-inc1", "data.reprob=0.25"])
    ds = build_dataset(cfg, train=True)
    assert isinstance(ds, RepeatedAugmentation) and ds.repeats == 3 and ds.seed == 4 and len(ds) == 12
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and torch.isfinite(x).all()
    assert not isinstance(build_dataset(cfg, train=False), RepeatedAugmentation)  # evaluation: no repeats
    assert not isinstance(build_dataset(load_config(None, sets), train=True), RepeatedAugmentation)
