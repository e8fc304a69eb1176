"""Datasets as one uint8 tensor, and on-device batching (a run's split is in ``split.py``).

A dataset is a (N, 3, S, S) uint8 RGB tensor (CIFAR's S is 32; a folder's is the size it
was decoded at). Grayscale/colour pairs are made
per batch on the training device (``make_pair``), never per sample in Python.
"""

from __future__ import annotations

import difflib
import os
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from colorcli.color import luma_u8
from colorcli.errors import DataError, UsageError, torchvision_unusable
from colorcli.finding import find_images
from colorcli.folders import load_folder

CIFAR_NAMES = ("cifar10", "cifar100")
MIRROR_ENV = "COLORCLI_CIFAR_MIRROR"


def _torchvision(name: str) -> Any:
    """A torchvision submodule, or one line saying which torchvision to install (one built for
    another torch fails on import with anything from ImportError to RuntimeError)."""
    import importlib

    try:
        return importlib.import_module(f"torchvision.{name}")
    except Exception as e:  # noqa: BLE001 - see above
        raise torchvision_unusable(e) from None


def default_data_dir() -> Path:
    """Where downloads and decoded-folder caches live: $COLORCLI_DATA_DIR, else
    $XDG_CACHE_HOME/colorcli, else ~/.cache/colorcli."""
    env = os.environ.get("COLORCLI_DATA_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "colorcli"


def _not_a_dataset(spec: str) -> UsageError:
    """Why ``spec`` names no dataset: neither a CIFAR name nor a folder (with a near name, if any)."""
    path = Path(spec)
    if path.exists():
        return UsageError(f"{spec}: is a file; --dataset takes a folder of images, cifar10 or cifar100")
    near = difflib.get_close_matches(spec.lower(), CIFAR_NAMES, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return UsageError(f"{spec}: no such folder, and not cifar10 or cifar100{hint}")


def _cifar_class(name: str, mirror: str | None) -> type:
    """torchvision's CIFAR class, pointed at a mirror when one is given (same archive and checksums)."""
    datasets = _torchvision("datasets")

    base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return base
    url = mirror.rstrip("/") + "/" + base.filename
    return type(base.__name__ + "Mirror", (base,), {"url": url})


def load_cifar(name: str, data_dir: Path, train: bool, mirror: str | None = None) -> torch.Tensor:
    """CIFAR-10/100 split as (N, 3, 32, 32) uint8, downloaded into data_dir once (checksummed)."""
    cls = _cifar_class(name, mirror)
    data_dir = Path(data_dir)
    try:
        ds = cls(root=str(data_dir), train=train, download=False)
    except RuntimeError:  # not there yet: download it (a stale mirror setting matters only now)
        if urllib.parse.urlparse(cls.url).scheme not in ("http", "https"):
            where = f"--mirror or {MIRROR_ENV}"
            raise UsageError(f"mirror {cls.url!r}: need an http:// or https:// address ({where})") from None
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            ds = cls(root=str(data_dir), train=train, download=True)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(
                f"cannot download {name} from {cls.url} ({reason}); pass --data-dir with an existing copy, "
                f"give a mirror with --mirror URL (or {MIRROR_ENV}), or pass a folder of images as --dataset DIR"
            ) from None
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)


def load_dataset(
    spec: str,
    data_dir: Path | None,
    train: bool,
    mirror: str | None = None,
    limit: int | None = None,
    size: int = 32,
) -> torch.Tensor:
    """cifar10, cifar100 (train or test split, always 32x32) or a folder of images, as
    (N, 3, S, S) uint8; a folder's images are brought to ``size`` (shorter side, then
    centre-cropped square).

    ``limit`` keeps the first that many images; a folder decodes only those.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if spec in CIFAR_NAMES:
        data = load_cifar(spec, data_dir, train, mirror)
        return data[:limit] if limit else data
    if not Path(spec).is_dir():
        raise _not_a_dataset(spec)
    return load_folder(Path(spec), size=size, cache_dir=data_dir, limit=limit)


def grayscale_images(rgb: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    """Which images of a uint8 (N, 3, H, W) batch are black-and-white originals: (N,) bool.

    An image counts as black-and-white when no pixel's channels differ by more than
    ``tolerance`` levels (a rounding step). 616 of the 50,000 CIFAR-10 training images
    (1.2%) are, and all of those are exactly gray.
    """
    flags = []
    for chunk in rgb.split(4096):  # bounded temporaries on big datasets
        spread = chunk.amax(1) - chunk.amin(1)  # (n, H, W) uint8: max >= min, so no wrap-around
        flags.append(spread.flatten(1).amax(1) <= tolerance)  # (b, H*W) -> (b,)
    return torch.cat(flags) if flags else torch.zeros(0, dtype=torch.bool)  # (N,)


ORDER, FLIPS, ZOOMS, CROPS = 0, 7_919, 15_485_863, 32_452_843  # prime offsets: no two draws share numbers


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """The generator of one kind of per-epoch draw (``stream``: ORDER, FLIPS, ...); same (seed, epoch), same draw."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch + stream)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The deterministic shuffle of epoch `epoch`, so a resumed run sees the same batches."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch, ORDER))


def source_weights(spec: str, count: int, balance: float) -> tuple[torch.Tensor, dict[str, int]] | None:
    """How often each of a folder dataset's first ``count`` images is drawn: ((count,) float
    weights, images per source), or None where nothing is balanced (CIFAR, balance 0, one source).

    An image's source is its top-level subfolder (files directly in the folder are one more
    source). Each image weighs n ** -balance, n its source's size: 0 draws every image
    equally often, 1 every source, 0.5 between (a source's share grows as sqrt(n)). Images
    are matched to files by their sorted position; an unreadable file that decoding skipped
    moves the boundary after it by one image, which matters little to a sampling weight.
    """
    if balance <= 0 or spec in CIFAR_NAMES:
        return None
    root = Path(spec)
    names = [p.relative_to(root).parts for p in find_images(root)[:count]]
    sources = [parts[0] if len(parts) > 1 else "." for parts in names]
    sources += [sources[-1]] * (count - len(sources))  # files gone since decoding: rare, and harmless
    sizes: dict[str, int] = {}
    for s in sources:
        sizes[s] = sizes.get(s, 0) + 1
    if len(sizes) < 2:
        return None
    weights = torch.tensor([sizes[s] ** -balance for s in sources], dtype=torch.float64)  # (count,)
    return weights, sizes


def epoch_draws(weights: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """Epoch ``epoch``'s order when sources are balanced: len(weights) indices drawn with
    replacement in proportion to ``weights``, deterministic like ``epoch_order``."""
    g = epoch_generator(seed, epoch, ORDER)  # draws replace the order, so they share its stream
    return torch.multinomial(weights.float(), len(weights), replacement=True, generator=g)


def epoch_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Which of the n training images are mirrored this epoch: (n,) bool.

    Drawn per image, not per batch or rank, so a distributed run flips exactly
    the images a single-process run over the same global batches flips.
    """
    g = epoch_generator(seed, epoch, FLIPS)
    return torch.rand(n, generator=g) < 0.5


def random_zooms(n: int, p: float, smallest: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Square crops for ``zoom_in``: (n, 3) rows of (side, left, top) as fractions of the image.

    With probability p a crop's side is uniform in smallest..1; otherwise it is the
    whole image (1, 0, 0). left and top place it uniformly inside the image.
    """
    zoomed = torch.rand(n, generator=generator) < p
    side = torch.where(zoomed, torch.empty(n).uniform_(smallest, 1.0, generator=generator), torch.ones(n))
    left = torch.rand(n, generator=generator) * (1 - side)
    top = torch.rand(n, generator=generator) * (1 - side)
    return torch.stack([side, left, top], 1)  # (n, 3)


def epoch_zooms(n: int, seed: int, epoch: int, p: float, smallest: float) -> torch.Tensor:
    """The crops of epoch `epoch` for the n training images, per image like the flips: (n, 3)."""
    g = epoch_generator(seed, epoch, ZOOMS)
    return random_zooms(n, p, smallest, g)


def zoom_in(rgb: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
    """Each image of a (B, 3, H, W) uint8 batch cut to its crop (B, 3) and resized back to H x W.

    Training on such views teaches the model what a 32x32 tile of a photo shows: part of
    a scene, larger than CIFAR frames it. Bilinear with 2x2 samples per output pixel
    (roi_align), rounded back to uint8, so the luma is computed from the crop's pixels.
    Images whose crop is the whole image are returned untouched (roi_align would blur them).
    """
    crops = crops.to(rgb.device, torch.float32)
    zoomed = (crops[:, 0] < 1).nonzero().flatten()  # (k,) rows to crop
    if len(zoomed) == 0:
        return rgb
    out = rgb.clone()
    out[zoomed] = crop_views(rgb[zoomed], crops[zoomed], rgb.shape[-2:])  # (k, 3, H, W)
    return out


def epoch_crops(n: int, seed: int, epoch: int, tile: int, scales: tuple[int, int]) -> torch.Tensor:
    """Square crops of epoch ``epoch`` as colorize cuts photos: (n, 3) rows of (side, left, top),
    fractions of each stored image's side, drawn per image like the flips.

    Each stored image is a photo's shorter side (a centred square). Its working scale s,
    the pixels colorize would bring that side to, is uniform in ``scales``; a ``tile``-pixel
    tile then covers tile / s of it (all of it where s <= tile), placed uniformly.
    """
    g = epoch_generator(seed, epoch, CROPS)
    lo, hi = scales
    s = torch.empty(n).uniform_(lo, hi, generator=g)
    side = (tile / s).clamp(max=1.0)
    left = torch.rand(n, generator=g) * (1 - side)
    top = torch.rand(n, generator=g) * (1 - side)
    return torch.stack([side, left, top], 1)  # (n, 3)


def crop_views(rgb: torch.Tensor, crops: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Each image of a (B, 3, H, W) uint8 batch cut to its square crop (B, 3) of (side, left,
    top), fractions of the shorter side, width and height, and resampled to ``size`` (a side,
    or (height, width)): (B, 3, h, w) uint8, batched (roi_align, 2x2 samples per output pixel)."""
    roi_align = _torchvision("ops").roi_align

    out_hw = (size, size) if isinstance(size, int) else tuple(size)
    crops = crops.to(rgb.device, torch.float32)
    _, _, h, w = rgb.shape
    side = crops[:, 0] * min(h, w)
    left, top = crops[:, 1] * w, crops[:, 2] * h
    index = torch.arange(len(crops), device=rgb.device, dtype=torch.float32)
    boxes = torch.stack([index, left, top, left + side, top + side], 1)  # (B, 5): image, x0, y0, x1, y1
    views = roi_align(rgb.float(), boxes, output_size=out_hw, sampling_ratio=2, aligned=True)
    return views.round_().clamp_(0, 255).to(torch.uint8)  # (B, 3, h, w)


def resize_images(rgb: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """A (N, 3, H, W) uint8 tensor resized to (N, 3, size, size) uint8 (antialiased where it
    shrinks), in chunks so the float copy stays small."""
    import torch.nn.functional as F

    if rgb.shape[-2:] == (size, size):
        return rgb
    out = [
        F.interpolate(c.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for c in rgb.split(chunk)
    ]
    return torch.cat(out) if out else rgb.new_zeros((0, 3, size, size))  # (N, 3, size, size)


def flip_where(rgb: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images of a (B, 3, H, W) batch where flip (B,) is True, batched."""
    return torch.where(flip.to(rgb.device).view(-1, 1, 1, 1), rgb.flip(-1), rgb)  # flip as (B, 1, 1, 1)


def make_pair(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(luma, colour) pair of a uint8 batch: y (B, 1, H, W) and rgb (B, 3, H, W) floats in 0..255.

    The luma is the 8-bit Rec. 601 gray that colorize will be given, not the
    unrounded luminance of the colour pixels, so training sees what inference sees.
    """
    return luma_u8(rgb).float(), rgb.float()


def iter_batches(order: torch.Tensor, batch_size: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Index batches order[i:i+batch_size] from batch number `start`; the last partial batch is dropped."""
    for b in range(start, len(order) // batch_size):
        yield order[b * batch_size : (b + 1) * batch_size]
