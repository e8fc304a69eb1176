"""What each training step sees: which training images, in what order, in what views, and
its share of the second (``--mix``) dataset.

Everything is drawn from the run's seed and the epoch by data.py's pure functions
(``epoch_order``, ``epoch_draws``, ``epoch_flips``, ``epoch_zooms``, ``epoch_crops``), per
image rather than per batch or rank: a resumed run sees what an uninterrupted one would
have, and each rank of a distributed run takes a disjoint share of what one process would
see. Images are uint8 tensors (B, 3, H, W) on the training device; indices are long tensors
on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from colorcli.data import (
    crop_views,
    epoch_crops,
    epoch_draws,
    epoch_flips,
    epoch_order,
    epoch_zooms,
    flip_where,
    resize_images,
    source_weights,
    zoom_in,
)
from colorcli.distributed import Dist

if TYPE_CHECKING:
    from colorcli.run import TrainConfig

__all__ = ["MixBatches", "Views", "balanced_weights", "rank_order"]


def balanced_weights(
    cfg: TrainConfig, n_images: int, train_idx: torch.Tensor, say: Callable[[str], None]
) -> torch.Tensor | None:
    """The training split's draw weights under ``cfg.balance``, (T,) float64 summing to 1 for the
    T indices ``train_idx`` into the run's ``n_images`` (None: every image once per epoch, in a
    shuffled order); ``say`` gets a line saying what the largest sources become."""
    found = source_weights(cfg.dataset, n_images, cfg.balance)
    if found is None:
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

    ``data`` is the mix dataset, (M, 3, 32, 32) uint8: each step enlarges only its own
    ``per_step`` images to the ``tile`` (all of it kept at the tile would be too large).
    """

    def __init__(self, data: torch.Tensor, seed: int, epoch: int, per_step: int, d: Dist, tile: int) -> None:
        n = len(data)
        self.data, self.per_step, self.d, self.tile = data, per_step, d, tile
        self.order = epoch_order(n, seed + 1, epoch)  # (M,)
        self.flips = epoch_flips(n, seed + 1, epoch)  # (M,) bool

    def batch(self, step: int) -> torch.Tensor:
        """(per_step, 3, tile, tile) uint8 images for step ``step`` on this rank."""
        start = (step * self.d.world + self.d.rank) * self.per_step
        pos = torch.arange(start, start + self.per_step) % len(self.order)
        idx = self.order[pos]
        return flip_where(resize_images(self.data[idx.to(self.data.device)], self.tile), self.flips[idx])


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
