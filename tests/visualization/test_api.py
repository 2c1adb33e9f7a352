"""``visualize()`` end to end: inputs (tensor, PNG, folder, IDX, npz, run folder), PNG + JSON outputs,
display un-normalisation, and the error messages for bad inputs."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import part.visualization.api as vis_api
from part.config import load_config
from part.data.images import fit_image_size
from part.sampling import OffGridSampler
from part.visualization.api import load_images, load_model, visualize
from part.visualization.plots import Display, new_figure, show_image
from part.visualization.uncertainty import uncertainty

from .conftest import Oracle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, path
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 200


def write_idx(path, images: np.ndarray, gz: bool = False):
    n, h, w = images.shape
    raw = struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.fixture
def fmnist_u8(real_images):
    return (real_images[:3, 0] * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("kind", ["reconstruct", "uncertainty", "symmetry"])
def test_visualize_oracle_writes_pngs_and_json(kind, tmp_path, fmnist):
    oracle = Oracle(OffGridSampler(7, num_patches=10))
    k = 2 if kind == "reconstruct" else 1  # figures take seconds on a busy 2-core machine
    out = visualize(kind, oracle, fmnist, tmp_path / "out", num_images=k, seed=3)
    assert [p.name for p in out.figures] == [f"{kind}_{i:03d}.png" for i in range(k)]
    for p in out.figures:
        assert_png(p)
    data = json.loads(out.json_path.read_text())
    assert data["kind"] == kind and data["num_images"] == k and len(data["per_image"]) == k
    assert data["image_size"] == [28, 28] and data["num_patches"] == 10 and data["seed"] == 3
    assert set(data["summary"]) == set(data["units"]) and data["summary"] == out.summary
    s = data["summary"]
    if kind == "reconstruct":
        assert s["error_px"] < 1e-4 and s["lsq_error_px"] < 1e-4
        assert len(data["per_image"][0]["patch_error_px"]) == 10
    elif kind == "uncertainty":
        assert s["mean_median_dist_px"] < 1e-4 and s["consensus_error_px"] < 1e-4
    else:
        assert abs(s["neg_symmetry_x"] - 1) < 1e-5 and abs(s["corr_gt_y"] - 1) < 1e-5


def test_visualize_random_model_numbers_are_worse(tmp_path, random_model, fmnist):
    out = visualize("reconstruct", random_model, fmnist, tmp_path, num_images=1)
    assert out.summary["error_px"] > 2.0
    assert 0.05 < out.summary["error_frac"] < 2.0
    assert_png(out.figures[0])


def test_seed_gives_the_library_function_result(tmp_path, random_model, fmnist):
    out = visualize("uncertainty", random_model, fmnist, tmp_path, num_images=1, seed=7)
    direct = uncertainty(random_model, fmnist[:1], torch.Generator().manual_seed(7))
    assert torch.equal(out.result.boxes, direct.boxes)
    torch.testing.assert_close(out.result.median_dist, direct.median_dist)
    assert out.per_image[0]["mean_median_dist_px"] == pytest.approx(float(direct.metrics["mean_median_dist_px"][0]))


@pytest.mark.slow
def test_run_folder_settings_drive_size_channels_and_normalisation(tmp_path, monkeypatch, real_images):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {image_size: 28}\n")
    (run / "weights.safetensors").write_bytes(b"stub: load_run is replaced below")
    oracle = Oracle(OffGridSampler(7, num_patches=8))
    cfg = load_config(None, ["data.image_size=28", "data.channels=1", "data.mean=[0.5]", "data.std=[0.25]"])
    calls = []

    def fake_load_run(run_dir):
        calls.append(run_dir)
        return oracle, cfg

    monkeypatch.setattr(vis_api, "load_run", fake_load_run)
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rgb = (real_images[:2, 0] * 255).round().to(torch.uint8).numpy()
    for i, arr in enumerate(rgb):  # 3-channel 32x32 PNGs: converted to gray and resized to 28
        big = np.array(Image.fromarray(arr).resize((32, 32)).convert("RGB"))
        Image.fromarray(big).save((folder / "sub" if i else folder) / f"img{i}.png")
    out = visualize("uncertainty", str(run), folder, tmp_path / "out", num_images=4)
    assert calls and str(calls[0]) == str(run)
    assert [d["name"] for d in out.per_image] == ["img0.png", "sub/img1.png"]
    raw, _ = load_images(folder, channels=1, image_size=28)
    torch.testing.assert_close(oracle.seen_images, (raw - 0.5) / 0.25)
    data = json.loads(out.json_path.read_text())
    assert data["settings"]["mean"] == [0.5] and data["channels"] == 1 and data["model"] == str(run)


def test_load_images_sources(tmp_path, fmnist_u8):
    # IDX (plain and gzip)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", fmnist_u8)
    write_idx(tmp_path / "imgs.idx3-ubyte.gz", fmnist_u8, gz=True)
    expected = torch.from_numpy(fmnist_u8).float().div(255).unsqueeze(1)
    for name in ("t10k-images-idx3-ubyte", "imgs.idx3-ubyte.gz"):
        x, names = load_images(tmp_path / name)
        torch.testing.assert_close(x, expected)
        assert names[0].endswith("[0]")
    # npz, limited to 2
    np.savez(tmp_path / "imgs.npz", x=fmnist_u8)
    x, names = load_images(tmp_path / "imgs.npz", num_images=2)
    torch.testing.assert_close(x, expected[:2])
    # a single grayscale PNG, to 3 channels and resized
    Image.fromarray(fmnist_u8[0]).save(tmp_path / "one.png")
    x, names = load_images(tmp_path / "one.png", channels=3, image_size=14)
    assert x.shape == (1, 3, 14, 14) and names == ["one.png"]
    torch.testing.assert_close(x[0], fit_image_size(expected[0].expand(3, -1, -1), (14, 14)))
    # tensors: (H, W) uint8 and (C, H, W) float
    x, _ = load_images(torch.from_numpy(fmnist_u8[0]))
    torch.testing.assert_close(x, expected[:1])
    x, names = load_images(expected[1])
    assert x.shape == (1, 1, 28, 28) and names == ["tensor[0]"]


def test_display_unnormalises_and_shows_gray(real_images):
    raw = real_images[0]
    mean, std = [0.3], [0.4]
    d = Display.fit((raw - 0.3) / 0.4, mean, std)
    np.testing.assert_allclose(d((raw - 0.3) / 0.4), raw.permute(1, 2, 0).numpy(), atol=1e-6)
    # normalised input without statistics: stretched to [0, 1] from its own range
    d = Display.fit(raw * 4 - 2)
    out = d(raw * 4 - 2)
    assert out.min() == 0.0 and out.max() == 1.0
    with pytest.raises(ValueError, match="both mean and std"):
        Display.fit(raw, mean=[0.5])
    fig, ax = new_figure(1, 2)
    im = show_image(ax[0, 0], d(raw * 4 - 2), "gray")
    assert im.get_cmap().name == "gray" and im.get_clim() == (0.0, 1.0)
    im = show_image(ax[0, 1], np.random.default_rng(0).random((8, 8, 3)), "rgb")
    assert im.get_array().shape == (8, 8, 3)


# ---- bad inputs -----------------------------------------------------------------------------

def test_image_smaller_than_patch(tmp_path):
    oracle = Oracle(OffGridSampler(7, num_patches=4))
    with pytest.raises(ValueError, match="5x5.*7"):
        visualize("reconstruct", oracle, torch.rand(1, 1, 5, 5), tmp_path)
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(ValueError, match="tiny.png.*4x6.*7"):
        visualize("reconstruct", oracle, tmp_path / "tiny.png", tmp_path / "out")


def test_run_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="run folder does not exist: .*missing"):
        load_model(tmp_path / "missing")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    with pytest.raises(ValueError, match="weights.safetensors"):
        visualize("symmetry", run, torch.rand(1, 1, 28, 28), tmp_path / "out")
    (run / "config.yaml").unlink()
    (run / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="has no config.yaml"):
        load_model(run)
    with pytest.raises(ValueError, match="got a file"):
        load_model(run / "weights.safetensors")


def test_non_image_and_corrupt_files(tmp_path):
    (tmp_path / "notes.txt").write_text("these are not pixels\n")
    with pytest.raises(ValueError, match="notes.txt"):
        load_images(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(PNG_MAGIC + b"garbage")
    with pytest.raises(ValueError, match=r"broken\.png.*cannot"):
        load_images(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="images path does not exist"):
        load_images(tmp_path / "nothing_here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"folder .*empty holds no image files"):
        load_images(tmp_path / "empty")
    raw = struct.pack(">II", 0x00000801, 3) + bytes(3)  # a labels file: 1-D
    (tmp_path / "labels-idx1-ubyte").write_bytes(raw)
    with pytest.raises(ValueError, match=r"IDX file .*labels-idx1-ubyte must hold images"):
        load_images(tmp_path / "labels-idx1-ubyte")


def test_mixed_sizes_and_argument_errors(tmp_path, fmnist):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="image_size"):
        load_images(tmp_path, channels=1)
    assert load_images(tmp_path, channels=1, image_size=(20, 24))[0].shape == (2, 1, 20, 24)
    oracle = Oracle(OffGridSampler(7, num_patches=4))
    with pytest.raises(ValueError, match="kind.*one of"):
        visualize("jigsaw", oracle, fmnist, tmp_path)
    with pytest.raises(ValueError, match="PART objective with sample"):
        visualize("symmetry", torch.nn.Linear(2, 2), fmnist, tmp_path)
    with pytest.raises(ValueError, match="num_images.*positive"):
        visualize("symmetry", oracle, fmnist, tmp_path, num_images=0)
    with pytest.raises(ValueError, match="both mean and std"):
        visualize("symmetry", oracle, fmnist, tmp_path, mean=[0.5])
    with pytest.raises(ValueError, match="images must be a tensor or a path"):
        load_images([1, 2, 3])


def test_real_run_folder_end_to_end(tmp_path, fmnist_u8):
    """A 2-step run from the real engine (IDX data written here) -> visualize() reads it back."""
    import part.api

    data = tmp_path / "idx"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", np.concatenate([fmnist_u8] * 4))
    (data / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x00000801, 12) + bytes(12))
    run = tmp_path / "run"
    part.api.pretrain(
        {"model": {"arch": "custom", "embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": 28,
                   "patch_size": 7, "in_chans": 1},
         "objective": {"name": "part", "num_pairs": 20},
         "data": {"kind": "idx", "root": str(data)},
         "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 2}},
        out=run, progress=False,
    )
    write_idx(tmp_path / "test-idx3-ubyte", fmnist_u8)
    out = visualize("reconstruct", run, tmp_path / "test-idx3-ubyte", tmp_path / "vis", num_images=1)
    assert_png(out.figures[0])
    result = json.loads(out.json_path.read_text())
    # unset data.mean/std resolve to the dataset statistics the engine trained with (Fashion-MNIST's)
    from part.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD

    assert result["settings"]["mean"] == pytest.approx(list(FASHION_MNIST_MEAN))
    assert result["settings"]["std"] == pytest.approx(list(FASHION_MNIST_STD))
    assert result["num_patches"] == 16 and result["model"] == str(run)
    assert np.isfinite(result["summary"]["error_px"])
