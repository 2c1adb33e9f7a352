"""``data.kind: wds``: WebDataset tar shards, streamed (``pip install 'part[wds]'``), and ``part shards``,
which writes them from an image folder or an npz file.

A shard is a tar of samples; the members of one sample share a key: ``<key>.jpg`` / ``.png`` (an image) or
``<key>.npy`` (a ``(C, T)`` signal), and ``<key>.cls`` (the integer label, optional). ``_info.json`` beside
the shards (timm's layout; :func:`write_shards` writes it) lists each split's shards and sample counts.

Who does what: ``webdataset`` reads the tars (local paths, ``pipe:`` and URLs through its ``gopen``), groups
members into samples and shuffles them in a buffer (``webdataset.shuffle``); images are decoded by the same
reader as ``data.kind: imagefolder`` (:func:`part.data.images.folder.read_image`), so both kinds give the
same pixels for the same JPEG. The shard order is ours, because it must be resumable:

* epoch ``e`` deals the shards of the permutation ``epoch_order(n_shards, seed, e)`` to the ranks
  (``[rank::world]``), then to the loader workers (``[worker::workers]``), as webdataset's ``split_by_node``
  and ``split_by_worker`` do; a worker that runs out continues with its share of the next permutation, so
  every rank delivers its batches even when shards differ in size;
* the sample buffer of each (epoch, rank, worker) is seeded, and so is each sample's augmentation;
* the DataLoader takes batch ``i`` from worker ``i % workers``. To resume at batch ``k`` of an epoch,
  worker ``w`` of the new loader plays the part of worker ``(w + k) % workers`` and skips, without decoding,
  the samples its part had delivered. The resumed run then reads the same samples, in the same batches,
  with the same augmentation, as the run that was not interrupted ("exact"), provided the shards, world
  size, ``data.num_workers``, batch size and buffer are the same; the skipped part of the epoch is read
  again from storage (not decoded). With another world size or worker count the epoch restarts from the
  same shard order, dealt anew.

The epoch size (samples per epoch, which sets the steps per epoch) comes from ``_info.json`` or
``data.options.epoch_size``.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..io import write_json
from .errors import DatasetFormatError, DatasetNotFoundError, missing_path
from .images.base import convert_channels, fit_image_size, to_unit_float
from .images.build import image_transform
from .images.folder import IMAGE_EXTENSIONS, find_images, read_image
from .transforms import seeded_cpu_rng

WDS_KIND = "wds"
WDS_HINT = "pip install 'part[wds]' (webdataset)"
INFO_FILE = "_info.json"
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")


@dataclass
class WdsOptions:
    """``data.options`` of ``data.kind: wds``."""

    epoch_size: int | None = None  # samples per epoch; default: _info.json's num_samples of the split
    shuffle_buffer: int = 1000  # samples in the shuffle buffer of each loader worker (0: no sample shuffle)
    shards: list | None = None  # a list of shard paths / brace patterns / pipe: URLs, instead of data.root


def wds_options(options: dict) -> WdsOptions:
    """``data.options`` checked: unknown keys and bad values raise ``ValueError`` naming ``data.options.<key>``."""
    if not isinstance(options, dict):
        raise ValueError(f"data.options must be a mapping, got {options!r}")
    known = set(WdsOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown option data.options.{unknown[0]} for data.kind wds; valid: {sorted(known)}")
    opts = WdsOptions(**options)
    es, buf = opts.epoch_size, opts.shuffle_buffer
    if es is not None and (isinstance(es, bool) or not isinstance(es, int) or es < 1):
        raise ValueError(f"data.options.epoch_size must be a positive integer or null, got {es!r}")
    if isinstance(buf, bool) or not isinstance(buf, int) or buf < 0:
        raise ValueError(f"data.options.shuffle_buffer must be an integer >= 0, got {buf!r}")
    if opts.shards is not None and (not isinstance(opts.shards, list) or not opts.shards
                                    or not all(isinstance(x, str) and x for x in opts.shards)):
        raise ValueError(f"data.options.shards must be a non-empty list of shard paths or patterns, got {opts.shards!r}")
    return opts


def build_wds_dataset(d, split: str, *, train: bool, augment: bool, seed: int, mean=None, std=None,
                      options: WdsOptions | None = None) -> "WdsStream":
    """``data.kind: wds``, the shard stream of a filled :class:`part.config.DataConfig` ``d`` (pretraining only).

    Image shards go through :func:`part.data.images.build.image_transform` (``d``'s statistics); signal shards
    (``_info.json`` modality ``signal``) are normalised by the config's own ``mean`` / ``std`` (None: as
    stored). ``seed``: ``train.seed`` (shard order, buffer, augmentation)."""
    if not train:
        raise ValueError("data.kind wds streams shards for pretraining; evaluation, probing and fine-tuning read an "
                         "indexed kind (imagefolder, npz, ...): give their command that data")
    opts = options if options is not None else wds_options(d.options)
    shards, info = resolve_shards(opts.shards or d.root, split)
    epoch_size = opts.epoch_size or info.get("num_samples")
    if not epoch_size:
        raise ValueError(f"data.kind wds at {d.root}: the epoch size is unknown; set data.options.epoch_size "
                         "(samples per epoch) or keep the _info.json that part shards writes beside the shards")
    signals = info.get("modality") == "signal"
    tf = None if signals else image_transform(d, augment)
    return WdsStream(shards, int(epoch_size), tf, channels=None if signals else d.channels,
                     image_size=None if signals else d.image_size, seed=seed,
                     shuffle_buffer=opts.shuffle_buffer, skip_corrupt=d.skip_corrupt,
                     mean=mean if signals else None, std=std if signals else None)


def _require_webdataset():
    try:
        import webdataset
    except ImportError:
        raise ValueError(f"data.kind wds needs webdataset: {WDS_HINT}") from None
    return webdataset


# --- which shards ------------------------------------------------------------------------------------
def resolve_shards(root: str | list, split: str) -> tuple[list[str], dict]:
    """The shard list of ``split`` and the split's ``_info.json`` record (``{}`` when there is none).

    ``root``: a folder with ``_info.json`` (the split's ``filenames``) or ``*.tar`` files (``<split>-*.tar``
    when there are such, else all), or a brace pattern ``shards/train-{000000..000099}.tar`` (``{split}`` is
    replaced), or ``pipe:``/URL patterns (passed through unchecked), or a list of such patterns
    (``data.options.shards``). Every local shard must exist: a
    missing one is a :class:`DatasetNotFoundError` naming it, before any training."""
    _require_webdataset()
    import braceexpand  # webdataset's dependency

    if root is None:
        raise ValueError("data.kind wds needs data.root: a shard folder or a pattern such as shards/train-{000000..000009}.tar")
    if isinstance(root, list):
        shards = [s for entry in root for s in braceexpand.braceexpand(entry.replace("{split}", split))]
        local = [s for s in shards if not (s.startswith("pipe:") or "://" in s)]
        _check_exist(local, len(shards))
        return shards, (_read_info(Path(local[0]).parent).get("splits", {}).get(split, {}) if local else {})
    root = str(root).replace("{split}", split)
    remote = root.startswith("pipe:") or "://" in root
    folder = Path(root)
    info: dict = {}
    if not remote and folder.is_dir():
        info = _read_info(folder).get("splits", {}).get(split, {})
        if info.get("filenames"):
            shards = [str(folder / f) for f in info["filenames"]]
        else:
            tars = sorted(folder.glob(f"{split}-*.tar")) or sorted(folder.glob("*.tar"))
            if not tars:
                raise DatasetNotFoundError(f"no .tar shards in {folder} (write them with part shards --from ... --out {folder})")
            shards = [str(p) for p in tars]
    else:
        shards = list(braceexpand.braceexpand(root))
        if not remote:
            info = _read_info(Path(shards[0]).parent).get("splits", {}).get(split, {})
    if not remote:
        _check_exist(shards, len(shards))
    return shards, info


def _check_exist(shards: list[str], total: int) -> None:
    missing = [s for s in shards if not Path(s).is_file()]
    if missing:
        raise missing_path(missing[0], "shard", f"{len(missing)} of {total} shards are missing" if len(missing) > 1 else None)


def _read_info(folder: Path) -> dict:
    path = folder / INFO_FILE
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path}: expected a JSON object")
    return info


# --- the stream --------------------------------------------------------------------------------------
def _mix(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p)) % (1 << 62)
    return h


class WdsStream(IterableDataset):
    """The sample stream of one rank (an ``IterableDataset``; ``len`` is the epoch size in samples).

    :meth:`start` sets epoch, first batch, batch size, rank, world and worker count before each
    ``DataLoader`` is built; each worker then yields ``(x, label)``: images ``(C, H, W)`` after
    ``transform``, signals ``(C, T)`` float32 (normalised when ``mean``/``std`` are given)."""

    def __init__(self, shards: list[str], epoch_size: int, transform: Callable | None = None,
                 channels: int | None = None, image_size=None, seed: int = 0, shuffle_buffer: int = 1000,
                 skip_corrupt: bool = False, mean=None, std=None):
        if epoch_size < 1:
            raise ValueError(f"the wds epoch size must be >= 1, got {epoch_size}")
        self.shards, self.epoch_size, self.transform = list(shards), epoch_size, transform
        self.channels = channels
        self.image_size = None if image_size is None else (
            (image_size, image_size) if isinstance(image_size, int) else tuple(image_size))
        self.seed, self.shuffle_buffer, self.skip_corrupt = seed, shuffle_buffer, skip_corrupt
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1)
        self.epoch, self.start_batch, self.batch_size, self.rank, self.world, self.workers = 0, 0, 1, 0, 1, 1

    def __len__(self) -> int:
        return self.epoch_size

    def start(self, epoch: int, start_batch: int, batch_size: int, rank: int, world: int, num_workers: int) -> None:
        """Position the stream; raises ``ValueError`` when there are fewer shards than ranks x workers."""
        workers = max(1, num_workers)
        if len(self.shards) < world * workers:
            raise ValueError(f"data.kind wds: {len(self.shards)} shards cannot feed {world} ranks x {workers} "
                             f"loader workers (each needs a shard of its own); write smaller shards (part shards "
                             f"--shard-size) or lower data.num_workers")
        self.epoch, self.start_batch, self.batch_size = epoch, start_batch, batch_size
        self.rank, self.world, self.workers = rank, world, workers

    def shards_of(self, epoch: int, part: int) -> list[str]:
        """The shards worker part ``part`` of this rank reads in epoch ``epoch``'s shard permutation."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.shards), generator=g).tolist()
        return [self.shards[i] for i in order[self.rank::self.world][part::self.workers]]

    def _parts(self) -> tuple[int, int]:
        """(this worker's part, samples of that part already delivered before ``start_batch``)."""
        info = get_worker_info()
        wid = info.id if info is not None else 0
        part = (wid + self.start_batch) % self.workers
        done_batches = max(0, -(-(self.start_batch - part) // self.workers))
        return part, done_batches * self.batch_size

    def raw_samples(self, part: int) -> Iterator[dict]:
        """Undecoded samples (``__key__``, ``__url__``, member bytes) of worker part ``part``: its shards of this
        epoch's permutation through a seeded shuffle buffer, which drains at their end (so a balanced epoch
        reads each sample once); then, should the trainer want more, the same for the next permutations."""
        wds = _require_webdataset()
        handler = wds.warn_and_continue if self.skip_corrupt else wds.reraise_exception
        for k in itertools.count(self.epoch):
            samples = wds.tarfile_to_samples(handler=handler)(iter([{"url": u} for u in self.shards_of(k, part)]))
            if self.shuffle_buffer > 1:
                rng = random.Random(_mix(self.seed, k, self.rank, part, 17))
                samples = wds.shuffle(self.shuffle_buffer, min(self.shuffle_buffer, 100), rng=rng)(samples)
            yield from samples

    def __iter__(self):
        part, skip = self._parts()
        samples = itertools.islice(self.raw_samples(part), skip, None)
        for pos in itertools.count(skip):
            try:
                sample = next(samples)
            except StopIteration:
                return
            except (DatasetFormatError, DatasetNotFoundError):
                raise
            except Exception as exc:  # tarfile / gopen errors, annotated by webdataset with the shard's URL
                text = " ".join(str(a) for a in exc.args) or type(exc).__name__
                raise DatasetFormatError(f"corrupt or unreadable shard: {text}") from None
            try:
                item = self._decode(sample, _mix(self.seed, self.epoch, self.rank, part, pos))
            except DatasetFormatError:
                if not self.skip_corrupt:
                    raise
                warnings.warn(f"skipped a corrupt sample: {sys.exc_info()[1]}", stacklevel=2)
                continue
            yield item

    def _decode(self, sample: dict, seed: int):
        url, key = sample.get("__url__", "?"), sample.get("__key__", "?")
        label = -1
        if "cls" in sample:
            try:
                label = int(sample["cls"].decode().strip())
            except (ValueError, UnicodeDecodeError):
                raise DatasetFormatError(f"{url}: member {key}.cls: not an integer label") from None
        image = next((m for m in IMAGE_MEMBERS if m in sample), None)
        if image is not None:
            try:
                raw = read_image(io.BytesIO(sample[image]), "L" if self.channels == 1 else "RGB")
            except DatasetFormatError as exc:
                raise DatasetFormatError(f"{url}: member {key}.{image}: {str(exc).split(': ', 1)[-1]}") from None
            img = fit_image_size(convert_channels(to_unit_float(raw), self.channels), self.image_size)
            if self.transform is not None:
                with seeded_cpu_rng(seed):
                    img = self.transform(img)
            return img, label
        if "npy" in sample:
            try:
                x = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
            except Exception as exc:  # numpy raises several types on a bad header
                raise DatasetFormatError(f"{url}: member {key}.npy: cannot read array ({type(exc).__name__}: {exc})") from None
            if x.ndim != 2:
                raise DatasetFormatError(f"{url}: member {key}.npy: a signal must be (C, T), got shape {x.shape}")
            sig = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            if self.mean is not None and self.std is not None:
                sig = (sig - self.mean) / self.std
            return sig, label
        members = sorted(k for k in sample if not k.startswith("__"))
        raise DatasetFormatError(f"{url}: sample {key} has no image (.jpg/.png) or signal (.npy) member (it has {members})")


# --- writing shards ----------------------------------------------------------------------------------
@dataclass
class ShardsResult:
    out: Path
    split: str
    shards: list
    num_samples: int


def write_shards(source: str | Path, out: str | Path, shard_size: int = 1000, split: str = "train",
                 signals: bool = False, seed: int | None = 0) -> ShardsResult:
    """Turn an image folder (``<class>/<image>``, the files' bytes kept as they are) or an ``.npz`` file
    (``x`` images, or ``(N, C, T)`` signals with ``signals=True``; optional ``y``) into tar shards
    ``<out>/<split>-000000.tar, ...`` of ``shard_size`` samples, plus ``<out>/_info.json`` (other splits
    already there are kept). ``seed``: the samples are written in a permutation drawn from it (``None``: in
    the source's order; class-sorted folders then give class-sorted shards, which a shuffle buffer mixes
    poorly). Keys are the samples' indices in the source."""
    wds = _require_webdataset()
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"--shard-size must be a positive integer, got {shard_size!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.]+", split):
        raise ValueError(f"--split must be a simple name (letters, digits, _ .), got {split!r}")
    items, classes, modality = _source_items(Path(source), signals)
    order = list(range(len(items)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{split}-*.tar"):  # a rewrite of the split replaces its shards
        old.unlink()
    written: list[str] = []
    lengths: list[int] = []
    for s, first in enumerate(range(0, len(order), shard_size)):
        name = f"{split}-{s:06d}.tar"
        chunk = order[first:first + shard_size]
        with wds.TarWriter(str(out / (name + ".tmp"))) as sink:
            for i in chunk:
                member, data, label = items[i]()
                sample = {"__key__": f"{i:08d}", member: data}
                if label is not None:
                    sample["cls"] = str(int(label)).encode()
                sink.write(sample)
        (out / (name + ".tmp")).replace(out / name)
        written.append(name)
        lengths.append(len(chunk))
    info = _read_info(out) if (out / INFO_FILE).is_file() else {}
    info.setdefault("splits", {})[split] = {"name": split, "num_samples": len(order), "filenames": written,
                                            "shard_lengths": lengths}
    info.update({"format": "part-wds", "modality": modality})
    if classes:
        info["classes"] = classes
    write_json(out / INFO_FILE, info)
    return ShardsResult(out, split, written, len(order))


def _source_items(source: Path, signals: bool):
    """``[callable -> (member extension, bytes, label or None)]``, class names, modality."""
    if source.is_dir():
        classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise ValueError(f"--from {source}: no class subfolders (expected <folder>/<class>/<image>)")
        items = []
        for c, name in enumerate(classes):
            for path in find_images(source / name, IMAGE_EXTENSIONS):
                ext = path.suffix.lower().lstrip(".")
                ext = "jpg" if ext == "jpeg" else ext
                if ext not in IMAGE_MEMBERS:
                    continue  # bmp etc.: re-encode with --from an npz
                items.append(lambda p=path, e=ext, c=c: (e, p.read_bytes(), c))
        if not items:
            raise ValueError(f"--from {source}: no .jpg/.png/.webp images under its class folders")
        return items, classes, "image"
    if not source.is_file():
        raise missing_path(source, "--from folder or npz file")
    try:
        with np.load(source, allow_pickle=False) as npz:
            x = npz["x"] if "x" in npz.files else npz["images"]
            y = npz["y"] if "y" in npz.files else (npz["labels"] if "labels" in npz.files else None)
    except KeyError:
        raise DatasetFormatError(f"{source}: no array 'x' (or 'images')") from None
    except Exception as exc:
        raise DatasetFormatError(f"{source}: cannot read npz ({type(exc).__name__}: {exc})") from None
    if y is not None and len(y) != len(x):
        raise DatasetFormatError(f"{source}: x has {len(x)} samples but y has {len(y)}")
    label = (lambda i: None) if y is None else (lambda i: int(y[i]))
    if signals:
        if x.ndim != 3:
            raise DatasetFormatError(f"{source}: signals must be x (N, C, T), got shape {x.shape}")
        return [lambda i=i: ("npy", _npy_bytes(x[i].astype(np.float32)), label(i)) for i in range(len(x))], [], "signal"
    if x.ndim not in (3, 4) or x.dtype != np.uint8:
        raise DatasetFormatError(f"{source}: images must be uint8 x (N, H, W) or (N, H, W, C), got {x.dtype} "
                                 f"{x.shape} (signals: --signals)")
    return [lambda i=i: ("png", _png_bytes(x[i]), label(i)) for i in range(len(x))], [], "image"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _png_bytes(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a).save(buf, format="PNG")
    return buf.getvalue()


__all__ = ["WDS_KIND", "WDS_HINT", "WdsOptions", "wds_options", "build_wds_dataset", "resolve_shards", "WdsStream",
           "ShardsResult", "write_shards"]
