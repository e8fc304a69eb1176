"""Colorize a gray image of any size: working scale, overlapping tiles of the model's size, seamless blending.

The model sees the photo's luma at a working scale where objects look the way
they did in training (``scale`` pixels on the shorter side), cut into
overlapping tiles whose chrominance is blended with a smooth window. The
chrominance is then upsampled to full resolution with the full-resolution luma as
its guide (a fast guided filter, He & Sun 2015), so colour edges follow the
photo's own edges instead of bleeding across them, and joined with that luma, so
the output's luminance is the input's.

Files are read and written in ``images.py``; batches of them are planned in ``batch.py`` and run in ``runner.py``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from colorcli.config import ModelConfig
from colorcli.engine import as_tile_model
from colorcli.errors import UsageError
from colorcli.images import DEFAULT_MAX_PIXELS
from colorcli.upsample import compose_chroma, compose_guided, guide_radius, guided_planes

if TYPE_CHECKING:
    from colorcli.config import Decoding

TILE = ModelConfig.tile  # the tile of models whose config does not say (test doubles); also the unit of work
DEFAULT_SCALE = ModelConfig.scale  # the working scale of models whose config does not say
MAX_SATURATION = 1000


@dataclass(frozen=True)
class ColorizeOptions:
    """How photos are colorized.

    scale: shorter side, in pixels, of the working image the model sees (photos
    smaller than that are used as they are); None: the model's own (its config's
    ``scale``). overlap: pixels shared by neighbouring tiles (None: half the model's
    tile). saturation: factor on the predicted chrominance (on top of
    the model's own ``tile_saturation``). guide_radius: radius, in working-scale
    pixels, of the guided filter that upsamples the chrominance along the luma's
    edges (0: plain bilinear upsampling). guide_eps: its regulariser, in squared
    luma units of 0..1 (larger: smoother, less edge-following).
    max_pixels: larger images are refused as possible decompression bombs.
    """

    scale: int | None = None
    overlap: int | None = None
    saturation: float = 1.0
    guide_radius: int = 2
    guide_eps: float = 1e-3
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Tiles of 32x32 per model call (larger tiles go in proportionally fewer): the bins head's
    # logits are 289 floats per output pixel, so this bounds a call's memory (about 20 MB of logits).
    tile_batch: int = 64

    def for_model(self, model: Any) -> ResolvedOptions:
        """These options with the model's own tile, and its working scale and overlap where None."""
        config = getattr(model, "config", None)
        tile = int(getattr(config, "tile", TILE))
        overlap = tile // 2 if self.overlap is None else self.overlap
        if overlap >= tile:
            raise UsageError(f"tile overlap must be 0 to {tile - 1} pixels for this model's {tile}-pixel tiles")
        scale = int(self.scale) if self.scale is not None else int(getattr(config, "scale", DEFAULT_SCALE))
        per_call = max(1, self.tile_batch * TILE * TILE // (tile * tile))
        return ResolvedOptions(scale, tile, overlap, per_call, decoding_of(model))

    def __post_init__(self) -> None:
        # nan fails too; from about 1e36 the float32 chroma overflows and turns every pixel black,
        # and a factor of 1,000 already takes any colour the model gives to the edge of the gamut
        wrong_type = isinstance(self.saturation, bool) or not isinstance(self.saturation, numbers.Real)
        if wrong_type or not 0 <= self.saturation <= MAX_SATURATION:
            raise UsageError(f"saturation must be a number from 0 to {MAX_SATURATION:,}, not {self.saturation!r}")
        if self.scale is not None and (isinstance(self.scale, bool) or not _whole(self.scale) or self.scale < 1):
            raise UsageError(f"working scale must be a whole number of pixels, 1 or more, not {self.scale!r}")
        if not isinstance(self.guide_radius, int) or self.guide_radius < 0:
            raise UsageError(f"guide radius must be a whole number, 0 or more, not {self.guide_radius}")
        if not self.guide_eps > 0:
            raise UsageError(f"guide eps must be more than 0, not {self.guide_eps}")
        if self.overlap is not None and self.overlap < 0:
            raise UsageError(f"tile overlap must be 0 or more pixels, not {self.overlap}")
        if self.tile_batch < 1:
            raise UsageError(f"tile batch must be 1 or more, not {self.tile_batch}")


def _whole(value: object) -> bool:
    """Whether ``value`` is a whole number of any numeric type (96, 96.0, numpy's int64)."""
    return isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())


@dataclass(frozen=True)
class ResolvedOptions:
    """The tiling of one model: working scale, tile side and overlap in pixels, tiles per model call,
    and the model's decoding settings (read when the options are resolved, so a model whose
    config is replaced colours by its new settings)."""

    scale: int
    tile: int
    overlap: int
    tiles_per_call: int
    decoding: Decoding


def decoding_of(model: Any) -> Decoding:
    """A model's decoding settings; the defaults for modules without a colorcli config (test doubles)."""
    from colorcli.config import Decoding

    config = getattr(model, "config", None)
    return config.decoding if config is not None else Decoding()


def working_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Size of the image the model sees: shorter side `scale` pixels, never enlarged."""
    f = min(1.0, scale / min(width, height))
    return max(1, round(width * f)), max(1, round(height * f))


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering 0..length, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _window(tile: int, overlap: int) -> np.ndarray:
    """Separable smooth blending weights (tile, tile) float32: a raised cosine over the overlap, 1 inside."""
    ramp = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * np.cos(np.float32(math.pi) * t)  # rises smoothly from ~0 to ~1
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    return ramp[:, None] * ramp[None, :]  # (tile, tile)


@dataclass(frozen=True)
class _TileLayout:
    h: int
    w: int
    rows: list[int]  # tile origins over the image padded to at least one tile
    cols: list[int]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def origins(self) -> list[tuple[int, int]]:
        """Each tile's top-left corner (row, column), in the order tiles are cut and blended."""
        return [(r, c) for r in self.rows for c in self.cols]


def _pad_for_tiles(gray: np.ndarray, tile: int, overlap: int) -> tuple[np.ndarray, _TileLayout]:
    """An (h, w) uint8 image padded to at least one tile, (ph, pw) float32, and its tiles' layout."""
    h, w = gray.shape
    y = gray.astype(np.float32)  # (h, w); a copy, so read-only input is fine
    ph, pw = max(tile, h), max(tile, w)
    if (ph, pw) != (h, w):
        # mirrored (the edge pixel not repeated) where the image is large enough, else the edge repeated
        mode = "reflect" if min(h, w) > 1 and ph - h < h and pw - w < w else "edge"
        y = np.pad(y, ((0, ph - h), (0, pw - w)), mode=mode)  # (ph, pw)
    stride = tile - overlap
    layout = _TileLayout(h, w, _tile_starts(ph, tile, stride), _tile_starts(pw, tile, stride))
    return y, layout


class _Blend:
    """One image's tile chrominance, added up with the smooth window as the tiles come back
    from the model, over the image's own (h, w) only: memory does not grow with its tile count."""

    def __init__(self, layout: _TileLayout, tile: int, weight: np.ndarray) -> None:
        self.layout, self.tile, self.weight = layout, tile, weight  # weight: (tile, tile)
        self.acc = np.zeros((2, layout.h, layout.w), dtype=np.float32)
        self.norm = np.zeros((1, layout.h, layout.w), dtype=np.float32)

    def add(self, origin: tuple[int, int], chroma: np.ndarray) -> None:
        """Add one tile's chrominance (2, tile, tile) at its ``origin`` (row, column)."""
        r, c = origin
        h, w = min(self.tile, self.layout.h - r), min(self.tile, self.layout.w - c)  # its part inside the image
        if h > 0 and w > 0:
            self.acc[:, r : r + h, c : c + w] += chroma[:, :h, :w] * self.weight[:h, :w]
            self.norm[:, r : r + h, c : c + w] += self.weight[:h, :w]

    def result(self) -> np.ndarray:
        return self.acc / self.norm  # (2, h, w)


def _tile_batches(
    padded: list[np.ndarray], layouts: list[_TileLayout], tile: int, per_call: int
) -> Iterator[tuple[np.ndarray, list[tuple[int, tuple[int, int]]]]]:
    """The tiles of all images in model-call batches, cut as each call needs them:
    ((b, 1, tile, tile) float32, [(image index, tile origin)] * b) per call."""
    owners = [(i, origin) for i, layout in enumerate(layouts) for origin in layout.origins()]
    for start in range(0, len(owners), per_call):
        batch = owners[start : start + per_call]
        tiles = np.stack([padded[i][None, r : r + tile, c : c + tile] for i, (r, c) in batch])  # (b, 1, tile, tile)
        yield tiles, batch


def predict_chroma_many(model: Any, grays: list[np.ndarray], options: ColorizeOptions) -> list[np.ndarray]:
    """Chrominance of working-scale gray images, (h, w) uint8 each -> (2, h, w) float32 arrays in -128..128.

    model: a torch model, or a model of ``engine`` (``TorchTiles``, ``OnnxTiles``).
    Every image is reflect-padded to at least one tile and cut into overlapping
    tiles; the tiles of all images go through the model together in batches of
    ``tile_batch``, and each call's tiles are blended into their images at once, so
    memory holds one call's tiles, not all of them (a 1 x 200,000 strip is 6,250 tiles).
    """
    net = as_tile_model(model)
    tiling = options.for_model(net)
    padded, layouts = zip(*(_pad_for_tiles(g, tiling.tile, tiling.overlap) for g in grays), strict=True)
    weight = _window(tiling.tile, tiling.overlap)
    blends = [_Blend(layout, tiling.tile, weight) for layout in layouts]
    for tiles, owners in _tile_batches(list(padded), list(layouts), tiling.tile, tiling.tiles_per_call):
        chroma = net(tiles)  # (b, 2, tile, tile)
        for (i, origin), c in zip(owners, chroma, strict=True):
            blends[i].add(origin, c)
    return [with_colour_strength(blend.result(), options, tiling.decoding, blend.layout.count) for blend in blends]


def with_colour_strength(chroma: np.ndarray, options: ColorizeOptions, decoding: Decoding, tiles: int) -> np.ndarray:
    """Blended chrominance (2, h, w), -128..128, of a photo cut into ``tiles`` tiles, at its colour strength.

    The whole chain, in order: the model's own ``decoding.saturation`` is already in
    what it returns (it is part of its decoding, trained with), then comes the caller's
    ``options.saturation`` (colorize --saturation), then ``decoding.tile_saturation`` where
    the photo took more than one tile (see ``Decoding.tile_factor``).
    """
    return chroma * np.float32(options.saturation * decoding.tile_factor(tiles))


def predict_chroma(model: Any, gray: np.ndarray, options: ColorizeOptions) -> np.ndarray:
    """Chrominance of one working-scale gray image: (h, w) uint8 -> (2, h, w), -128..128."""
    return predict_chroma_many(model, [gray], options)[0]


def working_gray(gray: Image.Image, scale: int) -> np.ndarray:
    """The luma the model sees: shorter side `scale` pixels (never enlarged), as (h, w) uint8."""
    w, h = gray.size
    ww, wh = working_size(w, h, scale)
    if (ww, wh) == (w, h):
        return np.array(gray)
    resample = Image.Resampling.BOX if ww * 2 < w else Image.Resampling.BILINEAR
    return np.array(gray.resize((ww, wh), resample))


def full_resolution(
    gray: Image.Image, working: np.ndarray, chroma: np.ndarray, options: ColorizeOptions
) -> Image.Image:
    """Join working-scale chrominance (2, h, w) with the full-size luma, enlarging it along the luma's edges."""
    radius = guide_radius(min(gray.height, gray.width) / min(working.shape), options.guide_radius)
    if radius == 0 and working.shape == (gray.height, gray.width):
        return compose_chroma(gray, chroma)  # the model saw the photo at full size
    return compose_guided(gray, guided_planes(working, chroma, radius, options.guide_eps))


def colorize_grays(model: Any, grays: list[Image.Image], options: ColorizeOptions) -> list[Image.Image]:
    """Colorize 8-bit gray images together; each RGB result has its input's size and luma."""
    net = as_tile_model(model)  # wrapped once for the images' calls
    scale = options.for_model(net).scale
    working = [working_gray(g, scale) for g in grays]
    chroma = predict_chroma_many(net, working, options)
    return [full_resolution(g, w, c, options) for g, w, c in zip(grays, working, chroma, strict=True)]


def colorize_gray(model: Any, gray: Image.Image, options: ColorizeOptions) -> Image.Image:
    """Colorize one 8-bit gray image; the RGB result has its size and (to within rounding) its luma."""
    return colorize_grays(model, [gray], options)[0]


def tile_count(size: tuple[int, int], tiling: ResolvedOptions) -> int:
    """How much model work an image of ``size`` (width, height) is, in 32x32 tiles' worth
    (a 64x64 tile counts 4), at the working scale."""
    w, h = working_size(*size, tiling.scale)
    t, stride = tiling.tile, tiling.tile - tiling.overlap
    count = len(_tile_starts(max(t, h), t, stride)) * len(_tile_starts(max(t, w), t, stride))
    return count * (t * t) // (TILE * TILE)
