"""Image readers, each fed tiny files written here in the real on-disk format."""

import gzip
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from part.data.images import (
    FASHION_MNIST_CLASSES,
    CIFARDataset,
    DatasetFormatError,
    DatasetNotFoundError,
    IDXDataset,
    ImageFolderDataset,
    NpzDataset,
    build_image_dataset,
    convert_channels,
    read_idx,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


# ------------------------------------------------------------------------------- writers

def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr``: magic 00 00 <code> <ndim>, big-endian dims, big-endian data."""
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx_split(root: Path, prefix: str, n: int, h: int = 5, w: int = 4, gz: bool = False,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    labels[0] = 9  # so num_classes is 10 regardless of the draw
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz)
    write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return images, labels


def cifar10_batches(n: int = 3, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        out[name] = {b"batch_label": name.encode(),
                     b"labels": [int(v) for v in rng.integers(0, 10, n)],
                     b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                     b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    out["batches.meta"] = {b"label_names": [f"c10_{i}".encode() for i in range(10)],
                           b"num_cases_per_batch": n, b"num_vis": 3072}
    return out


def cifar100_batches(n: int = 4, seed: int = 1) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("train", "test"):
        out[name] = {b"batch_label": name.encode(),
                     b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                     b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)],
                     b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                     b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    out["meta"] = {b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
                   b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)]}
    return out


def write_cifar_folder(folder: Path, batches: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in batches.items():
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    return folder


def write_cifar_tar(archive: Path, folder_name: str, batches: dict[str, dict]) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name, obj in batches.items():
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{folder_name}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return archive


def write_image(path: Path, arr: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


# ------------------------------------------------------------------------------------ IDX

@pytest.mark.parametrize("gz", [False, True])
def test_idx_reads_images_and_labels(tmp_path, gz):
    images, labels = make_idx_split(tmp_path, "train", n=6, gz=gz)
    ds = IDXDataset(tmp_path, "train")
    assert len(ds) == 6 and ds.num_classes == 10
    assert ds.images_path.name.endswith(".gz") == gz
    for i in (0, 5):
        img, label = ds[i]
        assert img.dtype == torch.float32 and img.shape == (1, 5, 4)
        assert 0.0 <= img.min() and img.max() <= 1.0
        torch.testing.assert_close(img[0], torch.from_numpy(images[i]).float() / 255)
        assert isinstance(label, int) and label == int(labels[i])
    assert ds.labels.tolist() == labels.tolist()


def test_idx_test_split_reads_t10k_files(tmp_path):
    make_idx_split(tmp_path, "train", n=6, seed=0)
    images, labels = make_idx_split(tmp_path, "t10k", n=3, seed=1)
    ds = IDXDataset(tmp_path, "test")
    assert len(ds) == 3 and ds.images_path.name.startswith("t10k")
    torch.testing.assert_close(ds[2][0][0], torch.from_numpy(images[2]).float() / 255)
    with pytest.raises(ValueError, match="split.*'train'.*'test'"):
        IDXDataset(tmp_path, "val")


def test_idx_reads_real_fashion_mnist_fixture(tmp_path):
    # The repository's 16-image excerpt of the real Fashion-MNIST training files.
    shutil.copy(FIXTURES / "fmnist16-images-idx3-ubyte", tmp_path / "train-images-idx3-ubyte")
    shutil.copy(FIXTURES / "fmnist16-labels-idx1-ubyte", tmp_path / "train-labels-idx1-ubyte")
    ds = build_image_dataset("fashion_mnist", tmp_path, "train")
    assert len(ds) == 16 and ds[0][0].shape == (1, 28, 28)
    assert ds.classes == list(FASHION_MNIST_CLASSES) and ds.num_classes == 10
    assert set(ds.labels.tolist()) <= set(range(10))
    mean = torch.stack([ds[i][0] for i in range(len(ds))]).mean().item()
    assert 0.1 < mean < 0.6  # real clothing images: neither blank nor saturated


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64, np.int8])
def test_read_idx_decodes_big_endian_dtypes(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) * 37 - 100).astype(dtype)
    path = write_idx(tmp_path / "x.idx", arr)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


def test_idx_channels_resize_pad_and_max_samples(tmp_path):
    images, _ = make_idx_split(tmp_path, "train", n=6)
    rgb = IDXDataset(tmp_path, channels=3)[1][0]
    assert rgb.shape == (3, 5, 4)
    torch.testing.assert_close(rgb, rgb[:1].expand(3, -1, -1))

    resized = IDXDataset(tmp_path, image_size=(10, 8))[1][0]
    assert resized.shape == (1, 10, 8) and 0.0 <= resized.min() and resized.max() <= 1.0

    padded = IDXDataset(tmp_path, image_size=9, resize_mode="pad")[1][0]
    assert padded.shape == (1, 9, 9)
    # 5x4 -> 9x9: 2 rows above, 2 below; 2 columns left, 3 right.
    torch.testing.assert_close(padded[0, 2:7, 2:6], torch.from_numpy(images[1]).float() / 255)
    assert padded.sum().item() == pytest.approx(images[1].sum() / 255, rel=1e-5)

    few = IDXDataset(tmp_path, max_samples=4)
    assert len(few) == 4 and few.labels.shape == (4,)
    with pytest.raises(ValueError, match="max_samples.*positive"):
        IDXDataset(tmp_path, max_samples=0)
    with pytest.raises(ValueError, match="resize_mode='pad'.*cannot"):
        IDXDataset(tmp_path, image_size=3, resize_mode="pad")


def test_idx_transform_runs_last_and_dataloader_batches(tmp_path):
    make_idx_split(tmp_path, "train", n=6)
    ds = IDXDataset(tmp_path, channels=3, image_size=8, transform=lambda x: x * 2 - 1)
    img, _ = ds[0]
    assert img.shape == (3, 8, 8) and img.min() >= -1.0 and img.max() <= 1.0 and img.min() < 0
    batch, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.shape == (4, 3, 8, 8) and labels.dtype == torch.int64 and labels.shape == (4,)


def test_idx_truncated_file_names_the_file(tmp_path):
    make_idx_split(tmp_path, "train", n=6)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte: truncated IDX data"):
        IDXDataset(tmp_path)
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte: truncated IDX header"):
        IDXDataset(tmp_path)


def test_idx_wrong_magic_names_the_file(tmp_path):
    make_idx_split(tmp_path, "train", n=6)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x08\x03" + path.read_bytes()[2:])
    with pytest.raises(DatasetFormatError, match="0x0803"):
        IDXDataset(tmp_path)
    path.write_bytes(b"\x00\x00\x42\x01" + path.read_bytes()[4:])
    with pytest.raises(DatasetFormatError, match="unknown.*0x42"):
        IDXDataset(tmp_path)


def test_idx_truncated_gzip_and_mismatched_counts(tmp_path):
    make_idx_split(tmp_path, "train", n=6, gz=True)
    gz_path = tmp_path / "train-images-idx3-ubyte.gz"
    good = gz_path.read_bytes()
    gz_path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        IDXDataset(tmp_path)
    gz_path.write_bytes(good)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8), gz=True)
    with pytest.raises(DatasetFormatError, match="5 labels.*6 images"):
        IDXDataset(tmp_path)


def test_idx_wrong_rank_is_rejected(tmp_path):
    make_idx_split(tmp_path, "train", n=6)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 20), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte: expected uint8 images \(N, H, W\)"):
        IDXDataset(tmp_path)


def test_idx_missing_paths(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="IDX dataset folder does not exist: .*nowhere"):
        IDXDataset(tmp_path / "nowhere")
    make_idx_split(tmp_path, "train", n=6)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="split 'train'.*train-labels-idx1-ubyte"):
        IDXDataset(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_image_dataset("fashion_mnist", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_image_dataset("fashion_mnist", tmp_path)  # folder present, labels file missing


# ---------------------------------------------------------------------------------- CIFAR

def _cifar10_locations(tmp_path: Path, batches) -> dict[str, Path]:
    folder = write_cifar_folder(tmp_path / "extracted" / "cifar-10-batches-py", batches)
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    archive = write_cifar_tar(archive_dir / "cifar-10-python.tar.gz", "cifar-10-batches-py", batches)
    return {"folder": folder, "parent": folder.parent, "archive": archive, "archive_parent": archive_dir}


@pytest.mark.parametrize("where", ["folder", "parent", "archive", "archive_parent"])
def test_cifar10_every_root_form(tmp_path, where):
    batches = cifar10_batches(n=3)
    root = _cifar10_locations(tmp_path, batches)[where]
    train = CIFARDataset(root, "train")
    assert train.variant == "cifar10" and len(train) == 15 and train.num_classes == 10
    assert train.classes == [f"c10_{i}" for i in range(10)]
    # Item 4 is the second image of data_batch_2; CIFAR rows are R, G, B planes of 32x32, row-major.
    img, label = train[4]
    row = batches["data_batch_2"][b"data"][1]
    assert img.shape == (3, 32, 32) and label == batches["data_batch_2"][b"labels"][1]
    assert img[1, 3, 5].item() == pytest.approx(row[1024 + 3 * 32 + 5] / 255)
    torch.testing.assert_close(img, torch.from_numpy(row.reshape(3, 32, 32)).float() / 255)
    test = CIFARDataset(root, "test")
    assert len(test) == 3 and test.labels.tolist() == batches["test_batch"][b"labels"]


@pytest.mark.parametrize("archived", [False, True])
def test_cifar100_fine_and_coarse_labels(tmp_path, archived):
    batches = cifar100_batches(n=4)
    if archived:
        root = write_cifar_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", batches)
    else:
        root = write_cifar_folder(tmp_path / "cifar-100-python", batches)
    fine = CIFARDataset(root, "train")
    assert fine.variant == "cifar100" and len(fine) == 4 and fine.num_classes == 100
    assert fine.labels.tolist() == batches["train"][b"fine_labels"]
    assert fine.classes[7] == "fine_7"
    coarse = CIFARDataset(root, "test", label_type="coarse")
    assert coarse.num_classes == 20 and coarse.labels.tolist() == batches["test"][b"coarse_labels"]
    torch.testing.assert_close(coarse[3][0], torch.from_numpy(
        batches["test"][b"data"][3].reshape(3, 32, 32)).float() / 255)


def test_cifar_grayscale_resize_and_max_samples(tmp_path):
    batches = cifar10_batches(n=3)
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", batches)
    gray = CIFARDataset(folder, channels=1, image_size=16, max_samples=4)
    assert len(gray) == 4
    img = gray[0][0]
    assert img.shape == (1, 16, 16)
    rgb = torch.from_numpy(batches["data_batch_1"][b"data"][0].reshape(3, 32, 32)).float() / 255
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    torch.testing.assert_close(CIFARDataset(folder, channels=1, max_samples=1)[0][0][0], luma)


def test_cifar_bad_inputs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CIFAR dataset path does not exist: .*missing"):
        CIFARDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no CIFAR data under .*empty"):
        CIFARDataset(tmp_path / "empty")

    batches = cifar10_batches(n=2)
    folder = write_cifar_folder(tmp_path / "c10", batches)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="does not exist.*data_batch_3"):
        CIFARDataset(folder, "train")
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetFormatError, match="test_batch.*cannot"):
        CIFARDataset(folder, "test")
    bad = dict(batches["test_batch"])
    del bad[b"labels"]
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DatasetFormatError, match="test_batch.*keys.*'data'.*'labels'"):
        CIFARDataset(folder, "test")
    with pytest.raises(ValueError, match="label_type='coarse'"):
        CIFARDataset(write_cifar_folder(tmp_path / "c10b", batches), "test", label_type="coarse")

    both = tmp_path / "both"
    write_cifar_folder(both / "cifar-10-batches-py", batches)
    write_cifar_folder(both / "cifar-100-python", cifar100_batches(n=2))
    with pytest.raises(ValueError, match="both CIFAR-10 and CIFAR-100 found .*pass variant="):
        CIFARDataset(both)
    assert CIFARDataset(both, "test", variant="cifar100").num_classes == 100

    truncated = tmp_path / "cut.tar.gz"
    blob = write_cifar_tar(tmp_path / "full.tar.gz", "cifar-10-batches-py", batches).read_bytes()
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetFormatError, match=r"cut\.tar\.gz.*cannot"):
        CIFARDataset(truncated)


# ----------------------------------------------------------------------------- ImageFolder

def make_image_tree(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "b_cat/x1.png": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        "b_cat/nested/x2.PNG": rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        "a_dog/y1.jpg": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        "a_dog/y2.bmp": rng.integers(0, 256, (4, 7, 3), dtype=np.uint8),
        "c_gray/z1.png": rng.integers(0, 256, (5, 5), dtype=np.uint8),
    }
    for rel, arr in arrays.items():
        write_image(root / rel, arr, fmt={"jpg": "JPEG", "bmp": "BMP"}.get(rel.rsplit(".", 1)[1].lower(), "PNG"))
    (root / "b_cat" / "notes.txt").write_text("not an image")
    write_image(root / ".hidden" / "h.png", arrays["b_cat/x1.png"])
    return arrays


def test_imagefolder_classes_samples_and_pixels(tmp_path):
    arrays = make_image_tree(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["a_dog", "b_cat", "c_gray"] and ds.class_to_idx["b_cat"] == 1
    assert len(ds) == 5 and ds.num_classes == 3 and ds.num_skipped == 0
    assert ds.labels.tolist() == [0, 0, 1, 1, 2]
    names = [p.name for p, _ in ds.samples]
    assert names == ["y1.jpg", "y2.bmp", "x2.PNG", "x1.png", "z1.png"]  # sorted paths per class
    img, label = ds[3]  # b_cat/x1.png, lossless
    assert label == 1 and img.shape == (3, 6, 5)
    torch.testing.assert_close(img, torch.from_numpy(arrays["b_cat/x1.png"]).permute(2, 0, 1).float() / 255)
    assert ds[1][0].shape == (3, 4, 7)  # bmp, (H, W) = (4, 7)
    gray_as_rgb = ds[4][0]
    torch.testing.assert_close(gray_as_rgb, gray_as_rgb[:1].expand(3, -1, -1))


def test_imagefolder_channels_and_fixed_size(tmp_path):
    arrays = make_image_tree(tmp_path)
    ds = ImageFolderDataset(tmp_path, channels=1, image_size=(6, 6))
    shapes = {tuple(ds[i][0].shape) for i in range(len(ds))}
    assert shapes == {(1, 6, 6)}
    gray = ImageFolderDataset(tmp_path, channels=1)[4][0]
    torch.testing.assert_close(gray[0], torch.from_numpy(arrays["c_gray/z1.png"]).float() / 255)
    batch, labels = next(iter(DataLoader(ImageFolderDataset(tmp_path, image_size=4), batch_size=5)))
    assert batch.shape == (5, 3, 4, 4) and labels.tolist() == [0, 0, 1, 1, 2]
    assert len(ImageFolderDataset(tmp_path, max_samples=2)) == 2


def test_imagefolder_corrupt_file_is_named_or_skipped(tmp_path):
    make_image_tree(tmp_path)
    bad = tmp_path / "b_cat" / "broken.png"
    good = (tmp_path / "b_cat" / "x1.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated PNG
    ds = ImageFolderDataset(tmp_path)
    index = [p for p, _ in ds.samples].index(bad)
    with pytest.raises(DatasetFormatError, match=r"broken\.png.*cannot"):
        ds[index]
    with pytest.warns(UserWarning, match=r"skipped 1 corrupt image file\(s\) .*broken\.png"):
        clean = ImageFolderDataset(tmp_path, skip_corrupt=True)
    assert clean.num_skipped == 1 and clean.skipped == [bad] and len(clean) == len(ds) - 1
    assert all(clean[i][0].shape[0] == 3 for i in range(len(clean)))


def test_imagefolder_empty_and_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="image folder does not exist: .*absent"):
        ImageFolderDataset(tmp_path / "absent")
    (tmp_path / "noclasses").mkdir()
    write_image(tmp_path / "noclasses" / "loose.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="image folder has no class subfolders .*noclasses"):
        ImageFolderDataset(tmp_path / "noclasses")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="dataset.*empty"):
        ImageFolderDataset(tmp_path / "empty")
    (tmp_path / "allbad" / "cls").mkdir(parents=True)
    (tmp_path / "allbad" / "cls" / "a.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match="skipped 1"), \
            pytest.raises(ValueError, match="dataset.*all.*1"):
        ImageFolderDataset(tmp_path / "allbad", skip_corrupt=True)


def test_build_imagefolder_splits(tmp_path):
    make_image_tree(tmp_path / "train")
    make_image_tree(tmp_path / "val")
    assert build_image_dataset("imagefolder", tmp_path, "train").root == tmp_path / "train"
    assert build_image_dataset("imagefolder", tmp_path, "test").root == tmp_path / "val"
    assert build_image_dataset("imagefolder", tmp_path / "train", None).num_classes == 3
    with pytest.raises(DatasetNotFoundError, match="split.*'extra'"):
        build_image_dataset("imagefolder", tmp_path, "extra")


# ------------------------------------------------------------------------------------- npz

def test_npz_layouts_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    nhw = rng.integers(0, 256, (5, 6, 7), dtype=np.uint8)
    np.savez(tmp_path / "nhw.npz", x=nhw, y=np.arange(5))
    ds = NpzDataset(tmp_path / "nhw.npz")
    assert len(ds) == 5 and ds[2][0].shape == (1, 6, 7) and ds[2][1] == 2 and ds.num_classes == 5
    torch.testing.assert_close(ds[2][0][0], torch.from_numpy(nhw[2]).float() / 255)

    nhwc = rng.integers(0, 256, (4, 6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", images=nhwc, labels=np.array([3, 1, 0, 2]))
    ds = NpzDataset(tmp_path / "nhwc.npz")
    torch.testing.assert_close(ds[1][0], torch.from_numpy(nhwc[1]).permute(2, 0, 1).float() / 255)
    assert ds.labels.tolist() == [3, 1, 0, 2] and ds.x_key == "images"

    nchw = rng.random((3, 3, 6, 7), dtype=np.float32)
    np.savez(tmp_path / "nchw.npz", x=nchw)
    ds = NpzDataset(tmp_path / "nchw.npz", channels=1, image_size=(12, 14), max_samples=2)
    assert len(ds) == 2 and ds[0][0].shape == (1, 12, 14) and ds[1][1] == -1 and ds.num_classes is None
    raw = NpzDataset(tmp_path / "nchw.npz")[0][0]
    torch.testing.assert_close(raw, torch.from_numpy(nchw[0]))


def test_npz_bad_inputs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist.*nope.npz"):
        NpzDataset(tmp_path / "nope.npz")
    np.savez(tmp_path / "keys.npz", pixels=np.zeros((2, 4, 4), np.uint8), target=np.zeros(2))
    with pytest.raises(DatasetFormatError, match=r"keys\.npz.*key.*'x'.*'images'"):
        NpzDataset(tmp_path / "keys.npz")
    with pytest.raises(DatasetFormatError, match="array.*'lbl'.*keys.*'pixels'"):
        NpzDataset(tmp_path / "keys.npz", x_key="pixels", y_key="lbl")
    assert NpzDataset(tmp_path / "keys.npz", x_key="pixels", y_key="target").labels.tolist() == [0, 0]

    np.savez(tmp_path / "range.npz", x=np.full((2, 4, 4), 255.0))
    with pytest.raises(DatasetFormatError, match=r"range\.npz.*'x'"):
        NpzDataset(tmp_path / "range.npz")
    np.savez(tmp_path / "ambig.npz", x=np.zeros((2, 3, 4, 3), np.uint8))
    with pytest.raises(DatasetFormatError, match="cannot tell channels-first from channels-last"):
        NpzDataset(tmp_path / "ambig.npz")
    assert NpzDataset(tmp_path / "ambig.npz", layout="NHWC")[0][0].shape == (3, 3, 4)
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(DatasetFormatError, match="'y'.*3.*match.*'x'"):
        NpzDataset(tmp_path / "mismatch.npz")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="dataset.*empty.npz"):
        NpzDataset(tmp_path / "empty.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetFormatError, match=r"garbage\.npz.*cannot"):
        NpzDataset(tmp_path / "garbage.npz")


def test_build_npz_paths(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((3, 4, 4), np.uint8))
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 4, 4), np.uint8))
    assert len(build_image_dataset("npz", tmp_path, "test")) == 2
    assert len(build_image_dataset("npz", tmp_path / "{split}.npz", "train")) == 3
    assert len(build_image_dataset("npz", tmp_path / "train.npz", "test")) == 3  # a file is used as is


# --------------------------------------------------------------------------------- factory

def test_factory_kinds_and_errors(tmp_path):
    make_idx_split(tmp_path / "idx", "train", n=6)
    assert isinstance(build_image_dataset("idx", tmp_path / "idx", "train", channels=3), IDXDataset)
    write_cifar_folder(tmp_path / "c100" / "cifar-100-python", cifar100_batches(n=2))
    assert build_image_dataset("cifar", tmp_path / "c100", "test").variant == "cifar100"
    with pytest.raises(ValueError, match="kind.*'svhn'.*fashion_mnist"):
        build_image_dataset("svhn", tmp_path)
    with pytest.raises(ValueError, match="kind.*'npz'"):
        build_image_dataset("npz", None)
    with pytest.raises(ValueError, match="channels.*got 2"):
        build_image_dataset("idx", tmp_path / "idx", channels=2)


def test_convert_channels_rejects_unsupported():
    with pytest.raises(ValueError, match="4.*channels=3"):
        convert_channels(torch.zeros(4, 2, 2), 3)
