"""What each training step sees: the run's images loaded and split, which of them each step
takes, in what order and views, and its share of the second (``--mix``) dataset.

Everything is drawn from the run's seed and the epoch by data.py's pure functions
(``epoch_order``, ``epoch_draws``, ``epoch_flips``, ``epoch_zooms``, ``epoch_crops``), per
image rather than per batch or rank: a resumed run sees what an uninterrupted one would
have, and each rank of a distributed run takes a disjoint share of what one process would
see. Images are uint8 tensors (B, 3, H, W) on the training device; indices are long tensors
on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from colorcli.config import MIX_SIDE
from colorcli.data import (
    crop_views,
    epoch_crops,
    epoch_draws,
    epoch_flips,
    epoch_order,
    epoch_zooms,
    flip_where,
    grayscale_images,
    load_dataset,
    resize_images,
    source_weights,
    zoom_in,
)
from colorcli.distributed import Dist, broadcast_images
from colorcli.errors import UsageError
from colorcli.run import check_image_count
from colorcli.split import files_digest, folder_names, split_for_training

if TYPE_CHECKING:
    from colorcli.run import Run, TrainConfig

__all__ = ["MixBatches", "RunImages", "Views", "balanced_weights", "load_images", "rank_order", "run_images"]


@dataclass
class RunImages:
    """A run's images on the training device, as its epochs use them."""

    train: torch.Tensor  # (T, 3, S, S) uint8, S the largest working scale (or the tile)
    val: torch.Tensor  # (V, 3, tile, tile) uint8: each whole, at the working scale of one tile
    mix: torch.Tensor | None  # (M, 3, 32, 32) uint8, the --mix dataset's colour images
    draw_weights: torch.Tensor | None  # (T,) with --balance
    dropped: int  # black-and-white training images left out
    count: int  # images in the dataset, both sides of the split
    digest: str | None  # the folder's file names (rank 0 only; None for CIFAR)
    mix_names: tuple[int, str] | None = None  # the --mix folder's image files: count and names digest (rank 0)


def run_images(run: Run, d: Dist, device: torch.device, say: Callable[[str], None]) -> RunImages:
    """Load the run's images, check they are the ones a resumed run split, split them and
    put both sides (and the mix) on the training device."""
    tile = run.model_cfg.tile
    data = load_images(run.cfg, d, device, size=run.cfg.scale_max or tile)
    count = len(data)  # the same on every rank: rank 0 sent the images
    check_image_count(run, count)
    digest = files_digest(run.cfg.dataset, count) if d.main else None  # stored by rank 0 alone
    train_idx, val_idx, dropped, cfg = split_for_training(run.cfg, data, d.world, say)
    run.cfg = cfg  # the batch size fitted to a small folder is the run's from here on
    on_device = data.to(device)
    train, val = on_device[train_idx.to(device)], on_device[val_idx.to(device)]
    del on_device, data  # only the two splits stay (on a GPU, the broadcast copy would too)
    mix = _mix_images(run.cfg, d, device) if run.cfg.mix else None
    mix_names = folder_names(run.cfg.mix) if run.cfg.mix and d.main else None
    weights = balanced_weights(run.cfg, count, train_idx, say)
    return RunImages(train, resize_images(val, tile), mix, weights, dropped, count, digest, mix_names)


def load_images(
    cfg: TrainConfig, d: Dist, device: torch.device, spec: str | None = None, size: int = 32
) -> torch.Tensor:
    """The training images of ``spec`` (default: the run's dataset), (N, 3, S, S) uint8 with S = ``size``.

    Under torchrun rank 0 alone loads them (downloading or decoding once) and sends them to
    the other ranks, so every rank trains on the very same images (``broadcast_images``).
    """
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    limit = cfg.limit if spec is None else None
    spec = spec or cfg.dataset
    return broadcast_images(
        lambda: load_dataset(spec, data_dir, train=True, mirror=cfg.mirror, limit=limit, size=size), d, device
    )


def _mix_images(cfg: TrainConfig, d: Dist, device: torch.device) -> torch.Tensor:
    """The mix dataset's colour images at CIFAR's size, on the training device: (M, 3, 32, 32).
    Each step enlarges only its own share to the tile (50,000 images kept at 64x64 would be 614 MB)."""
    mix = load_images(cfg, d, device, spec=cfg.mix, size=MIX_SIDE)
    if cfg.skip_gray:
        gray = grayscale_images(mix)
        if gray.all():
            raise UsageError(f"--mix {cfg.mix}: all {len(mix)} images are black-and-white (--keep-gray keeps them)")
        mix = mix[~gray]
    return mix.to(device)


def balanced_weights(
    cfg: TrainConfig, n_images: int, train_idx: torch.Tensor, say: Callable[[str], None]
) -> torch.Tensor | None:
    """The training split's draw weights under ``cfg.balance``, (T,) float64 summing to 1 for the
    T indices ``train_idx`` into the run's ``n_images`` (None: every image once per epoch, in a
    shuffled order); ``say`` gets a line saying what the largest sources become."""
    found = source_weights(cfg.dataset, n_images, cfg.balance)
    if found is None:
        if cfg.balance > 0:  # given, but CIFAR or a folder of one source: nothing to balance
            say(f"note: --balance {cfg.balance:g} has no subfolders of {cfg.dataset} to draw evenly; every image alike")
        return None
    weights, sizes = found
    train_weights = weights[train_idx]  # (T,)
    total = float(train_weights.sum())
    shares = {s: n * n**-cfg.balance for s, n in sizes.items()}  # over all images: close enough for a note
    whole = sum(shares.values())
    top = sorted(sizes, key=lambda s: -sizes[s])[:3]
    said = ", ".join(f"{s} {sizes[s] / n_images:.0%} -> {shares[s] / whole:.0%}" for s in top)
    say(f"balancing {len(sizes)} sources (--balance {cfg.balance:g}): {said} of draws")
    return train_weights / total


def rank_order(
    n: int, weights: torch.Tensor | None, seed: int, epoch: int, steps: int, per_step: int, d: Dist
) -> torch.Tensor:
    """This rank's indices into the n training images for epoch ``epoch``: (steps * per_step,).

    The epoch's order is a shuffle (drawn by source weight with ``weights``, (n,)); its first
    ``steps`` full batches of ``per_step`` images on each of the ``d.world`` ranks are dealt
    out in turn, so every rank takes the same number of batches and a disjoint share.
    """
    order = epoch_draws(weights, seed, epoch) if weights is not None else epoch_order(n, seed, epoch)  # (n,)
    order = order[: steps * per_step * d.world]
    return order[d.rank :: d.world]


class MixBatches:
    """Each step's share of the mix dataset: an epoch's own shuffle, cycled, per rank, flipped.

    ``data`` is the mix dataset, (M, 3, S, S) uint8 (CIFAR's S is 32): each step enlarges only
    its own ``per_step`` images to the ``tile`` (all of it kept at the tile would be too large),
    or with ``native`` lays (tile / S) ** 2 of them, at their own size, side by side in each tile.
    """

    def __init__(
        self, data: torch.Tensor, seed: int, epoch: int, per_step: int, d: Dist, tile: int, native: bool = False
    ) -> None:
        n, side = len(data), data.shape[-1]
        self.data, self.per_step, self.d, self.tile = data, per_step, d, tile
        self.across = tile // side if native else 1  # images along each side of a tile
        if native and (tile % side or tile < side):  # run.check_settings refuses such a run before any loading
            raise ValueError(f"a {tile}-pixel tile is no whole number of {side}-pixel images")
        self.order = epoch_order(n, seed + 1, epoch)  # (M,)
        self.flips = epoch_flips(n, seed + 1, epoch)  # (M,) bool

    def batch(self, step: int) -> torch.Tensor:
        """(per_step, 3, tile, tile) uint8 images for step ``step`` on this rank."""
        each = self.per_step * self.across**2  # mix images a step takes on each rank
        start = (step * self.d.world + self.d.rank) * each
        idx = self.order[torch.arange(start, start + each) % len(self.order)]
        rgb = flip_where(self.data[idx.to(self.data.device)], self.flips[idx])  # (each, 3, S, S)
        if self.across == 1:
            return resize_images(rgb, self.tile)  # (per_step, 3, tile, tile)
        k, s = self.across, rgb.shape[-1]
        grid = rgb.reshape(self.per_step, k, k, 3, s, s)  # (m, row, column, 3, S, S)
        return grid.permute(0, 3, 1, 4, 2, 5).reshape(self.per_step, 3, k * s, k * s)  # (m, 3, tile, tile)


class Views:
    """How epoch ``epoch`` shows the training images ``data`` ((T, 3, S, S) uint8): per-image
    flips, zooms (``cfg.zoom``) and photo tiles (``cfg.scales``) drawn from the seed, each
    ``tile`` pixels square, with each step's share of the mix dataset (``mixed``) after them."""

    def __init__(
        self, data: torch.Tensor, cfg: TrainConfig, epoch: int, tile: int, mixed: MixBatches | None = None
    ) -> None:
        n = len(data)
        self.data, self.tile, self.mixed = data, tile, mixed
        self.flips = epoch_flips(n, cfg.seed, epoch)  # (T,) bool
        self.zooms = epoch_zooms(n, cfg.seed, epoch, cfg.zoom, cfg.zoom_min) if cfg.zoom > 0 else None  # (T, 3)
        self.crops = epoch_crops(n, cfg.seed, epoch, tile, cfg.scales) if cfg.scales else None  # (T, 3)

    def batch(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        """The images of step ``step`` (training indices ``idx``, (b,)), (b [+ m], 3, tile, tile) uint8."""
        rgb_u8 = flip_where(self.data[idx.to(self.data.device)], self.flips[idx])  # (b, 3, S, S)
        if self.zooms is not None:
            rgb_u8 = zoom_in(rgb_u8, self.zooms[idx])
        if self.crops is not None:
            rgb_u8 = crop_views(rgb_u8, self.crops[idx], self.tile)  # (b, 3, tile, tile)
        elif rgb_u8.shape[-1] != self.tile:
            rgb_u8 = resize_images(rgb_u8, self.tile)  # (b, 3, tile, tile)
        if self.mixed is not None:
            rgb_u8 = torch.cat([rgb_u8, self.mixed.batch(step)])  # (b + m, 3, tile, tile)
        return rgb_u8
