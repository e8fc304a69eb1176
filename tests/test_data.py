import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorcli.data import (
    epoch_flips,
    epoch_order,
    flip_where,
    grayscale_images,
    iter_batches,
    load_cifar,
    load_dataset,
    make_pair,
)
from colorcli.errors import DataError, UsageError


def test_rank_shards_are_disjoint_and_equal():
    """What train.py does under torchrun: full batches only, then order[rank::world]."""
    n, batch, world = 23, 8, 2
    order = epoch_order(n, seed=0, epoch=0)
    steps = n // batch
    shards = [order[: steps * batch][r::world] for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    assert len(list(iter_batches(shards[0], batch // world))) == len(list(iter_batches(shards[1], batch // world)))
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_pairs_use_the_8bit_luma_that_inference_sees():
    rgb = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    y, colour = make_pair(rgb)
    assert y.shape == (4, 1, 8, 8) and colour.shape == (4, 3, 8, 8)
    assert torch.equal(y, y.round())  # integers: 8-bit gray, not unrounded luminance
    pil = np.asarray(Image.fromarray(rgb[0].permute(1, 2, 0).numpy()).convert("L"))
    assert np.array_equal(y[0, 0].numpy().astype(np.uint8), pil)


def test_black_and_white_originals_are_found_and_colour_ones_are_not():
    torch.manual_seed(0)
    gray = torch.randint(0, 256, (1, 1, 16, 16), dtype=torch.uint8).expand(-1, 3, -1, -1)
    rounded = gray.clone()
    rounded[0, 2, 3, 4] ^= 1  # one level off in one channel: a JPEG round trip of a gray image
    faint = gray.clone()
    faint[0, 0, 5, 5] = 250 if gray[0, 0, 5, 5] < 128 else 5  # one tinted pixel makes it colour
    colour = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    flags = grayscale_images(torch.cat([gray, rounded, faint, colour]))
    assert flags.tolist() == [True, True, False, False]
    assert grayscale_images(torch.zeros(0, 3, 4, 4, dtype=torch.uint8)).shape == (0,)


def test_batches_and_flips_are_reproducible():
    order = epoch_order(10, seed=1, epoch=0)
    batches = list(iter_batches(order, 4))
    assert len(batches) == 2  # the partial batch is dropped
    assert torch.equal(list(iter_batches(order, 4, start=1))[0], batches[1])
    assert torch.equal(epoch_flips(10, 1, 0), epoch_flips(10, 1, 0))
    assert not torch.equal(epoch_flips(100, 1, 0), epoch_flips(100, 1, 1))
    data = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2)
    flip = torch.tensor([True, False, True, False])
    out = flip_where(data, flip)
    assert torch.equal(out[0], data[0].flip(-1)) and torch.equal(out[1], data[1])


# ---- CIFAR through torchvision, served from 127.0.0.1 in CIFAR's own format


def _cifar_archive(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    rng = np.random.default_rng(0)
    files = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        files[name] = pickle.dumps(batch)
    files["batches.meta"] = pickle.dumps({"label_names": ["a", "b", "c", "d"]})
    tgz = tmp_path / "serve" / "cifar-10-python.tar.gz"
    tgz.parent.mkdir()
    with tarfile.open(tgz, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in files.items()}
    md5["tgz"] = hashlib.md5(tgz.read_bytes()).hexdigest()
    return tgz, md5


@pytest.fixture
def cifar_server(tmp_path, monkeypatch):
    """A local HTTP mirror of a tiny CIFAR-10 archive; torchvision's checksums point at it."""
    from torchvision import datasets

    tgz, md5 = _cifar_archive(tmp_path)
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", md5["tgz"])
    monkeypatch.setattr(
        datasets.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": md5["batches.meta"]})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tgz.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cifar_downloads_from_a_mirror_once(cifar_server, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORCLI_CIFAR_MIRROR", cifar_server)
    train = load_dataset("cifar10", tmp_path / "dl", train=True)
    test = load_cifar("cifar10", tmp_path / "dl", train=False)
    assert train.shape == (20, 3, 32, 32) and test.shape == (4, 3, 32, 32)
    assert (tmp_path / "dl" / "cifar-10-python.tar.gz").exists()
    # Second time: read from the cache even with the mirror gone, or a stale setting that is no address.
    for stale in ("http://127.0.0.1:9", "/srv/old-mirror"):
        monkeypatch.setenv("COLORCLI_CIFAR_MIRROR", stale)
        assert torch.equal(load_dataset("cifar10", tmp_path / "dl", train=True), train)


def test_no_network_names_the_alternatives(tmp_path):
    with pytest.raises(DataError, match="--data-dir") as e:
        load_cifar("cifar10", tmp_path / "dl", train=True, mirror="http://127.0.0.1:9")
    assert "\n" not in str(e.value)


def test_corrupt_download_is_fetched_again(cifar_server, tmp_path, monkeypatch):
    """A half-downloaded archive and damaged batch files fail the checksum and are replaced."""
    monkeypatch.setenv("COLORCLI_CIFAR_MIRROR", cifar_server)
    root = tmp_path / "dl"
    good = load_dataset("cifar10", root, train=True)
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:50])  # damaged on disk
    archive = root / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:100])  # half-downloaded
    assert torch.equal(load_dataset("cifar10", root, train=True), good)


def test_mirror_serving_a_bad_archive_is_reported(cifar_server, tmp_path, monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", "0" * 32)  # the served file can never match
    with pytest.raises(DataError, match="cannot download cifar10"):
        load_cifar("cifar10", tmp_path / "dl", train=True, mirror=cifar_server)


def test_zoomed_views_crop_inside_the_image_and_leave_the_rest_untouched():
    from colorcli.data import epoch_zooms, random_zooms, zoom_in

    crops = random_zooms(1000, 0.5, 0.4, torch.Generator().manual_seed(0))
    side, left, top = crops.T
    zoomed = side < 1
    assert 0.4 < zoomed.float().mean() < 0.6
    assert (side[zoomed] >= 0.4).all() and (left + side <= 1 + 1e-6).all() and (top + side <= 1 + 1e-6).all()
    assert torch.equal(epoch_zooms(50, 0, 3, 0.5, 0.5), epoch_zooms(50, 0, 3, 0.5, 0.5))  # resumable
    assert not torch.equal(epoch_zooms(50, 0, 3, 0.5, 0.5), epoch_zooms(50, 0, 4, 0.5, 0.5))

    # a left-to-right ramp: the left half of it, zoomed, is a gentler ramp over the same width
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).expand(2, 3, 32, 32).contiguous()  # (2, 3, 32, 32)
    out = zoom_in(ramp, torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]))
    assert torch.equal(out[0], ramp[0])  # not zoomed: untouched, not resampled
    row = out[1, 0, 0].float()
    assert row[0] < 8 and 120 <= row[-1] <= 128 and (row.diff() >= 0).all()


@pytest.mark.parametrize("mirror", ["notaurl", "ftp//x", "file:///tmp/mirror"])
def test_a_mirror_that_is_not_an_http_address_is_a_usage_error(tmp_path, mirror):

    with pytest.raises(UsageError, match="http:// or https://"):
        load_cifar("cifar10", tmp_path / "dl", train=True, mirror=mirror)


def test_epoch_crops_cover_the_tile_at_the_drawn_working_scale():
    from colorcli.data import epoch_crops

    crops = epoch_crops(500, seed=1, epoch=2, tile=64, scales=(64, 128))
    side, left, top = crops.T
    assert side.min() >= 0.5 - 1e-6 and side.max() <= 1.0  # 64 px of a side brought to 64..128 px
    assert (left >= 0).all() and (left + side <= 1 + 1e-6).all() and (top + side <= 1 + 1e-6).all()
    assert torch.equal(crops, epoch_crops(500, seed=1, epoch=2, tile=64, scales=(64, 128)))  # resumable
    assert not torch.equal(crops, epoch_crops(500, seed=1, epoch=3, tile=64, scales=(64, 128)))


def test_crop_views_cut_and_resample_each_image_to_the_tile():
    from colorcli.data import crop_views

    rgb = torch.zeros(2, 3, 40, 40, dtype=torch.uint8)
    rgb[:, 0, :, 20:] = 200  # right half red
    crops = torch.tensor([[0.4, 0.6, 0.0], [1.0, 0.0, 0.0]])  # inside the right half; the whole image
    out = crop_views(rgb, crops, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.uint8
    assert (out[0, 0] == 200).all()  # all red
    assert out[1, 0, :, :7].max() == 0 and (out[1, 0, :, 9:] == 200).all()  # half and half


def test_resize_images_keeps_uint8_and_flat_colour():
    from colorcli.data import resize_images

    rgb = torch.full((3, 3, 32, 32), 90, dtype=torch.uint8)
    out = resize_images(rgb, 64)
    assert out.shape == (3, 3, 64, 64) and out.dtype == torch.uint8 and (out == 90).all()
    assert resize_images(rgb, 32) is rgb


def test_a_torchvision_that_cannot_be_imported_is_one_line_when_training_crops(monkeypatch):
    import sys

    from colorcli.data import crop_views
    from colorcli.errors import ColorcliError

    monkeypatch.setitem(sys.modules, "torchvision.ops", None)  # as if torchvision were built for another torch
    with pytest.raises(ColorcliError, match="torchvision cannot be imported .*install the torchvision made for"):
        crop_views(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.tensor([[1.0, 0.0, 0.0]]), 4)


def test_balanced_sources_weigh_each_image_by_its_subfolders_size(tmp_path):
    from colorcli.data import epoch_draws, source_weights

    root = tmp_path / "photos"
    for sub, n in (("faces", 6), ("scenes", 2)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(root / sub / f"{i}.png")
    Image.new("RGB", (8, 8)).save(root / "loose.png")
    weights, sizes = source_weights(str(root), 9, balance=1.0)
    assert sizes == {"faces": 6, "scenes": 2, ".": 1}
    # In sorted order (faces/, loose.png, scenes/), each source draws alike: 6 x 1/6 = 1 x 1 = 2 x 1/2.
    assert torch.allclose(weights, torch.tensor([1 / 6] * 6 + [1.0] + [1 / 2] * 2, dtype=torch.float64))
    half, _ = source_weights(str(root), 9, balance=0.5)
    assert half[0] == pytest.approx(6**-0.5)
    assert source_weights(str(root), 9, balance=0.0) is None and source_weights("cifar10", 9, 1.0) is None
    draws = epoch_draws(weights, seed=0, epoch=0)
    assert draws.shape == (9,) and torch.equal(draws, epoch_draws(weights, seed=0, epoch=0))
    many = torch.cat([epoch_draws(weights, 0, e) for e in range(300)])
    assert 0.25 < (many == 6).float().mean() < 0.42  # the lone file: a third of draws, not a ninth
