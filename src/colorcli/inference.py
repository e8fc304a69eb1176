"""Colorize photos of any size: working scale, overlapping tiles of the model's size, seamless blending.

The model sees the photo's luma at a working scale where objects look the way
they did in training (``scale`` pixels on the shorter side), cut into
overlapping tiles whose chrominance is blended with a smooth window. The
chrominance is then upsampled to full resolution with the full-resolution luma as
its guide (a fast guided filter, He & Sun 2015), so colour edges follow the
photo's own edges instead of bleeding across them, and joined with that luma, so
the output's luminance is the input's.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import math
import os
import shutil
import tempfile
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from colorcli.errors import ColorcliError, InputError, UsageError, first_line, printable
from colorcli.images import (
    DEFAULT_MAX_PIXELS,
    find_images,
    is_image_name,
    link_problem,
    looks_like_image,
    needs_plugin,
    not_regular,
    open_checked,
    plugin_note,
    to_gray8,
)

if TYPE_CHECKING:
    import torch

TILE = 32  # the tile of models whose config does not say (test doubles)
DEFAULT_SCALE = 96  # the working scale of models whose config does not say
JPEG_EXIF_MAX = 65533  # bytes of EXIF one JPEG APP1 segment holds
# Full-resolution colour is composed in bands of at most this many pixels and rows.
BAND_PIXELS = 1 << 20
BAND_ROWS = 64
# Extensions Pillow can write, with the format name and whether it keeps an alpha channel.
OUTPUT_FORMATS = {
    ".png": ("PNG", True),
    ".jpg": ("JPEG", False),
    ".jpeg": ("JPEG", False),
    ".webp": ("WEBP", True),
    ".tif": ("TIFF", True),
    ".tiff": ("TIFF", True),
    ".bmp": ("BMP", False),
}


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
        scale = self.scale if self.scale is not None else int(getattr(config, "scale", DEFAULT_SCALE))
        per_call = max(1, self.tile_batch * TILE * TILE // (tile * tile))
        return ResolvedOptions(scale, tile, overlap, per_call)

    def __post_init__(self) -> None:
        if not isinstance(self.guide_radius, int) or self.guide_radius < 0:
            raise UsageError(f"guide radius must be a whole number, 0 or more, not {self.guide_radius}")
        if not self.guide_eps > 0:
            raise UsageError(f"guide eps must be more than 0, not {self.guide_eps}")
        if self.overlap is not None and self.overlap < 0:
            raise UsageError(f"tile overlap must be 0 or more pixels, not {self.overlap}")
        if self.tile_batch < 1:
            raise UsageError(f"tile batch must be 1 or more, not {self.tile_batch}")


@dataclass(frozen=True)
class ResolvedOptions:
    """The tiling of one model: working scale, tile side and overlap in pixels, tiles per model call."""

    scale: int
    tile: int
    overlap: int
    tiles_per_call: int


@dataclass
class LoadedImage:
    """An input photo as 8-bit luma at its displayed orientation, plus what the output keeps."""

    gray: Image.Image  # mode "L", full resolution
    alpha: Image.Image | None
    icc_profile: bytes | None
    exif: bytes | None
    note: str | None = None


def _raw_mode(im: Image.Image) -> str | None:
    """How the file stores its samples ("RGB", "RGB;16B", "L;4", ...), read before decoding."""
    tiles = getattr(im, "tile", None) or []
    args = getattr(tiles[0], "args", None) if tiles else None
    return args if isinstance(args, str) else None


def _alpha(im: Image.Image, raw_mode: str | None = None) -> Image.Image | None:
    """The image's transparency as an 8-bit mask, or None: alpha channels, and the single
    transparent colour (PNG tRNS) of palette, gray and RGB images.

    A gray or RGB key is honoured only where the samples are stored as 8-bit
    (``raw_mode`` "L" or "RGB"): Pillow reduces 16-bit RGB and widens 1-4 bit gray
    without converting the key, which would then mark the wrong pixels. 16-bit gray
    ("I" modes) is compared at full depth. A key no pixel has gives no mask.
    """
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return im.getchannel("A")
    if "transparency" not in im.info:
        return None
    if im.mode in ("P", "1") or (im.mode in ("L", "RGB") and raw_mode == im.mode):
        mask = im.convert("RGBA").getchannel("A")
    elif im.mode.startswith("I") and isinstance(im.info["transparency"], int):
        mask = Image.fromarray(np.where(np.asarray(im) == im.info["transparency"], 0, 255).astype(np.uint8), "L")
    else:
        return None
    return None if mask.getextrema() == (255, 255) else mask


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, output_format: str | None = None) -> LoadedImage:
    """Open any image Pillow reads as display-oriented 8-bit luma (+ alpha, ICC profile, EXIF).

    ``output_format`` (a Pillow format name): refuse, before decoding, an image larger than
    that format can store (JPEG, WebP)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd metadata; the file either decodes or fails below
        with open_checked(path, max_pixels, "; raise it with --max-pixels if you trust the file") as im:
            side = FORMAT_MAX_SIDE.get(output_format or "")
            if side is not None and max(im.size) > side:
                w, h = im.size
                raise InputError(
                    f"{path}: {w}x{h} is more than {output_format} holds ({side:,} pixels a side); write PNG or TIFF"
                )
            try:
                frames, fmt = getattr(im, "n_frames", 1), im.format
                im.seek(0)
                raw_mode = _raw_mode(im)
                im.load()
                icc, exif = _rgb_profile(im.info.get("icc_profile")), None
                im = ImageOps.exif_transpose(im)
                if "exif" in im.info:
                    exif = im.info["exif"]
                gray, alpha = to_gray8(im), _alpha(im, raw_mode)
            except Exception as e:  # noqa: BLE001 - decoders raise many types on corrupt data
                raise InputError(f"{path}: cannot decode image ({first_line(e)})") from None
    notes = [f"used the first of its {frames} frames" if frames > 1 else None]
    if fmt in ("JPEG", "MPO"):
        notes.append(_jpeg_note(path))
    note = "; ".join(n for n in notes if n) or None
    return LoadedImage(gray=gray, alpha=alpha, icc_profile=icc, exif=exif, note=note)


def _jpeg_note(path: Path) -> str | None:
    """What to say of a JPEG whose compressed data is damaged: libjpeg patches over it with a
    warning Pillow drops, so the picture decodes, partly garbled, as if nothing were wrong."""
    from colorcli.jpeg_check import jpeg_damage

    damage = jpeg_damage(path)
    if damage is None:
        return None
    return f"corrupt JPEG data ({damage}); the decoder patched over it, so part of the picture may be garbled"


def _rgb_profile(icc: bytes | None) -> bytes | None:
    """The ICC profile if it describes RGB data (the output is RGB); a CMYK or gray profile is dropped."""
    return icc if icc and len(icc) >= 20 and icc[16:20] == b"RGB " else None


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


def _window(tile: int, overlap: int):
    """Separable smooth blending weights (tile, tile): a raised cosine over the overlap, 1 inside."""
    import torch

    ramp = torch.ones(tile)
    if overlap > 0:
        t = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        edge = 0.5 - 0.5 * torch.cos(math.pi * t)  # rises smoothly from ~0 to ~1
        ramp[:overlap] = edge
        ramp[-overlap:] = edge.flip(0)
    return ramp[:, None] * ramp[None, :]  # (tile, tile)


@dataclass(frozen=True)
class _TileLayout:
    h: int
    w: int
    ph: int  # padded to at least one tile
    pw: int
    rows: list[int]
    cols: list[int]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)


def _cut_tiles(gray: np.ndarray, tile: int, overlap: int):
    """Overlapping square tiles of an (h, w) uint8 image: (T, 1, tile, tile) float tensor and their layout."""
    import torch
    import torch.nn.functional as F

    h, w = gray.shape
    y = torch.from_numpy(gray.astype(np.float32))[None, None]  # (1, 1, h, w); a copy, so read-only input is fine
    ph, pw = max(tile, h), max(tile, w)
    if (ph, pw) != (h, w):
        mode = "reflect" if min(h, w) > 1 and ph - h < h and pw - w < w else "replicate"
        y = F.pad(y, (0, pw - w, 0, ph - h), mode=mode)  # (1, 1, ph, pw)
    stride = tile - overlap
    layout = _TileLayout(h, w, ph, pw, _tile_starts(ph, tile, stride), _tile_starts(pw, tile, stride))
    tiles = torch.stack([y[0, :, r : r + tile, c : c + tile] for r in layout.rows for c in layout.cols])
    return tiles, layout  # (T, 1, tile, tile)


def _blend(chroma, layout: _TileLayout, overlap: int):
    """Blend tile chrominance (T, 2, tile, tile) with the smooth window into (2, h, w)."""
    import torch

    tile = chroma.shape[-1]
    weight = _window(tile, overlap)
    acc = torch.zeros(2, layout.ph, layout.pw)
    norm = torch.zeros(1, layout.ph, layout.pw)
    for i, (r, c) in enumerate((r, c) for r in layout.rows for c in layout.cols):
        acc[:, r : r + tile, c : c + tile] += chroma[i] * weight
        norm[:, r : r + tile, c : c + tile] += weight
    return (acc / norm)[:, : layout.h, : layout.w]  # (2, h, w)


def predict_chroma_many(model, grays: list[np.ndarray], options: ColorizeOptions) -> list:
    """Chrominance of working-scale gray images, (h, w) uint8 each -> (2, h, w) float tensors in -128..128.

    Every image is reflect-padded to at least one tile and cut into overlapping
    tiles; the tiles of all images go through the model together in batches of
    ``tile_batch``, and each image's tiles are blended back.
    """
    import torch

    tiling = options.for_model(model)
    cut = [_cut_tiles(g, tiling.tile, tiling.overlap) for g in grays]
    tiles = torch.cat([t for t, _ in cut])  # (sum T, 1, tile, tile)
    device = next(model.parameters()).device
    with torch.inference_mode():
        chroma = torch.cat([model(b.to(device)).float().cpu() for b in tiles.split(tiling.tiles_per_call)])
    per_image = chroma.split([layout.count for _, layout in cut])  # each (T_i, 2, tile, tile)
    return [
        _blend(c, layout, tiling.overlap) * options.saturation * _tile_saturation(model, layout.count)
        for c, (_, layout) in zip(per_image, cut, strict=True)
    ]


def _tile_saturation(model: Any, tiles: int) -> float:
    """The model's chrominance factor for a photo cut into ``tiles`` tiles.

    One tile shows the whole picture, as in training, so it gets none; modules
    without a colorcli config (test doubles) get none either.
    """
    if tiles <= 1:
        return 1.0
    return float(getattr(getattr(model, "config", None), "tile_saturation", 1.0))


def predict_chroma(model, gray: np.ndarray, options: ColorizeOptions):
    """Chrominance of one working-scale gray image: (h, w) uint8 -> (2, h, w), -128..128."""
    return predict_chroma_many(model, [gray], options)[0]


def _working_gray(gray: Image.Image, scale: int) -> np.ndarray:
    """The luma the model sees: shorter side `scale` pixels (never enlarged), as (h, w) uint8."""
    w, h = gray.size
    ww, wh = working_size(w, h, scale)
    if (ww, wh) == (w, h):
        return np.array(gray)
    resample = Image.Resampling.BOX if ww * 2 < w else Image.Resampling.BILINEAR
    return np.array(gray.resize((ww, wh), resample))


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)-square window, edges replicated: (C, h, w) -> (C, h, w)."""
    import torch.nn.functional as F

    padded = F.pad(x[None], (radius,) * 4, mode="replicate")  # (1, C, h + 2r, w + 2r)
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)[0]  # (C, h, w)


def _box_range(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Minimum and maximum over a (2r+1)-square window: (C, h, w) -> (2C, h, w), minima first."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(torch.cat([-x, x])[None], (radius,) * 4, mode="replicate")  # (1, 2C, h + 2r, w + 2r)
    peaks = F.max_pool2d(padded, 2 * radius + 1, stride=1)[0]  # (2C, h, w): -min, max
    c = x.shape[0]
    return torch.cat([-peaks[:c], peaks[c:]])  # (2C, h, w)


def guided_planes(guide: np.ndarray, chroma: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """What the guided upsampling needs at working scale (a fast guided filter, He & Sun 2015).

    guide: (h, w) uint8 working-scale luma; chroma: (2, h, w) in -128..128;
    radius: window radius in working-scale pixels; eps: regulariser in squared
    luma units of 0..1. Returns (8, h, w) float: per channel (Cb, Cr) the slope a
    (chroma units per unit of luma in 0..1) and offset b of the local fit
    chroma ~ a * luma + b, averaged over the windows covering the pixel, then the
    lowest and highest chroma predicted within a window, which bound the result:
    a thin bright line beside an edge must not take the colour of the far side.
    """
    import torch

    luma = torch.from_numpy(guide.astype(np.float32) / 255)[None]  # (1, h, w)
    mean_l, mean_c = _box_mean(luma, radius), _box_mean(chroma, radius)
    cov = _box_mean(luma * chroma, radius) - mean_l * mean_c  # (2, h, w)
    var = (_box_mean(luma * luma, radius) - mean_l * mean_l).clamp(min=0)  # (1, h, w)
    slope = cov / (var + eps)  # (2, h, w)
    offset = mean_c - slope * mean_l
    fit = _box_mean(torch.cat([slope, offset]), radius)  # (4, h, w)
    return torch.cat([fit, _box_range(chroma, radius)])  # (8, h, w)


def _linear_taps(out_len: int, in_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of bilinear resampling along one axis (pixel centres aligned).

    Output pixel i reads (1 - w[i]) * src[lo[i]] + w[i] * src[hi[i]], as
    torch's ``interpolate(mode="bilinear", align_corners=False)`` does. Returns
    lo, hi (int64) and w (float32), each (out_len,) tensors.
    """
    import torch

    pos = ((torch.arange(out_len, dtype=torch.float64) + 0.5) * (in_len / out_len) - 0.5).clamp(0, in_len - 1)
    lo = pos.floor().long()
    return lo, (lo + 1).clamp(max=in_len - 1), (pos - lo).float()


def _taps_matrix(lo: torch.Tensor, hi: torch.Tensor, weight: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """The taps of some output pixels as a (outputs, count) matrix over sources first..first+count-1.

    Enlarging by a matrix product reads the few source rows once, where
    gathering them row by row moves several times the memory.
    """
    import torch

    matrix = torch.zeros(len(lo), count)
    out = torch.arange(len(lo))
    matrix.index_put_((out, lo - first), 1 - weight, accumulate=True)
    matrix.index_put_((out, hi - first), weight, accumulate=True)
    return matrix  # (outputs, count)


def _join_in_bands(
    gray: Image.Image, chroma_rows: Callable[[slice, torch.Tensor], torch.Tensor], band_pixels: int
) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L"), built band by band so a huge photo holds one band of floats.

    A band is at most ``band_pixels`` pixels and ``BAND_ROWS`` rows (a narrow
    photo would otherwise get bands thousands of rows tall).
    chroma_rows(rows, luma) gives the (2, rows, W) chroma, -128..128, of those
    rows from their (rows, W) luma in 0..1. RGB is computed in floating point,
    not with Pillow's fixed-point YCbCr conversion, which truncates: it leaves 4
    in 10 pixels of an ordinary photo one level darker than their Y.
    """
    import torch

    y_all = np.asarray(gray)  # (H, W) uint8
    height, width = y_all.shape
    out = np.empty((height, width, 3), dtype=np.uint8)
    band = max(1, min(band_pixels // max(width, 1), BAND_ROWS))
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        y = y_all[rows]  # (rows, W)
        luma = torch.from_numpy(y.astype(np.float32)).div_(255)  # (rows, W) in 0..1
        out[rows] = _ycbcr_band_to_rgb(y, chroma_rows(rows, luma))
    return Image.fromarray(out, "RGB")


def compose_guided(gray: Image.Image, planes: torch.Tensor, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """Full-resolution RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma follows its edges.

    planes: (8, h, w) from ``guided_planes`` at working scale. They are enlarged
    bilinearly to the photo's size a band of rows at a time (only the
    working-scale rows a band reads), and each pixel's chroma is a * luma + b,
    kept within the enlarged local range.
    """
    import torch

    height, width = gray.height, gray.width
    rows_lo, rows_hi, row_w = _linear_taps(height, planes.shape[1])
    cols_lo, cols_hi, col_w = _linear_taps(width, planes.shape[2])
    by_row = planes.float().permute(1, 0, 2).contiguous()  # (h, 8, w)

    def chroma_rows(rows: slice, luma: torch.Tensor) -> torch.Tensor:
        lo, hi = rows_lo[rows], rows_hi[rows]
        first, last = int(lo[0]), int(hi[-1])  # the working-scale rows this band reads
        near = by_row[first : last + 1]  # (k, 8, w)
        wide = torch.lerp(near.index_select(2, cols_lo), near.index_select(2, cols_hi), col_w)  # (k, 8, W)
        taps = _taps_matrix(lo, hi, row_w[rows], first, len(near))  # (rows, k)
        up = (taps @ wide.view(len(near), -1)).view(len(lo), 8, width)  # (rows, 8, W)
        fitted = torch.addcmul(up[:, 2:4], up[:, 0:2], luma[:, None])  # (rows, 2, W)
        bounded = torch.minimum(torch.maximum(fitted, up[:, 4:6]), up[:, 6:8])  # (rows, 2, W)
        return bounded.permute(1, 0, 2)  # (2, rows, W)

    return _join_in_bands(gray, chroma_rows, band_pixels)


def compose_chroma(gray: Image.Image, chroma: torch.Tensor, band_pixels: int = BAND_PIXELS) -> Image.Image:
    """RGB whose luma is ``gray`` (8-bit, mode "L") and whose chroma is ``chroma`` (2, H, W), -128..128."""
    return _join_in_bands(gray, lambda rows, _luma: chroma[:, rows], band_pixels)


def guide_radius(enlargement: float, radius: int) -> int:
    """The guide's radius for an enlargement (full size / working size, >= 1): in steps, from 0 at 1:1.

    int(radius * (enlargement - 1)), at most ``radius``: for radius 2, 0 below
    1.5 times, 1 up to twice, 2 from twice. Near 1:1 there are no edges to
    restore and the filter would only smooth (and pale) the colour.
    """
    return max(0, min(radius, int(radius * (enlargement - 1))))


def _full_resolution(
    gray: Image.Image, working: np.ndarray, chroma: torch.Tensor, options: ColorizeOptions
) -> Image.Image:
    """Join working-scale chrominance (2, h, w) with the full-size luma, enlarging it along the luma's edges."""
    radius = guide_radius(min(gray.height, gray.width) / min(working.shape), options.guide_radius)
    if radius == 0 and working.shape == (gray.height, gray.width):
        return compose_chroma(gray, chroma)  # the model saw the photo at full size
    return compose_guided(gray, guided_planes(working, chroma, radius, options.guide_eps))


def colorize_grays(model, grays: list[Image.Image], options: ColorizeOptions) -> list[Image.Image]:
    """Colorize 8-bit gray images together; each RGB result has its input's size and luma."""
    scale = options.for_model(model).scale
    working = [_working_gray(g, scale) for g in grays]
    chroma = predict_chroma_many(model, working, options)
    return [_full_resolution(g, w, c, options) for g, w, c in zip(grays, working, chroma, strict=True)]


def colorize_gray(model, gray: Image.Image, options: ColorizeOptions) -> Image.Image:
    """Colorize one 8-bit gray image; the RGB result has its size and (to within rounding) its luma."""
    return colorize_grays(model, [gray], options)[0]


def _ycbcr_band_to_rgb(y8: np.ndarray, chroma) -> np.ndarray:
    """(rows, w, 3) uint8 RGB of (rows, w) uint8 luma and a (2, rows, w) float tensor of chroma in -128..128.

    Exact in floating point; out-of-gamut pixels get their chrominance shrunk
    toward gray until they fit, since clipping RGB would change their luma.
    """
    import torch

    from colorcli.color import ycbcr_to_rgb, ycbcr_to_rgb_u8

    y = torch.from_numpy(y8.astype(np.float32))[None, None]  # (1, 1, rows, w)
    c = chroma.float()[None]  # (1, 2, rows, w)
    rgb = ycbcr_to_rgb(y, c).round_()  # (1, 3, rows, w), unclipped
    outside = ((rgb < 0) | (rgb > 255)).any(1)[0]  # (rows, w): out of gamut
    if outside.any():
        ys, cs = y[0, 0][outside], c[0][:, outside]  # (k,), (2, k)
        rgb[0][:, outside] = ycbcr_to_rgb_u8(ys.view(1, 1, -1, 1), cs.view(1, 2, -1, 1))[0, :, :, 0].float()
    return rgb[0].to(torch.uint8).permute(1, 2, 0).numpy()  # (rows, w, 3)


def output_format(path: Path) -> tuple[str, bool]:
    """Pillow format name for an output path and whether it can keep alpha."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"{path}: cannot write this format; use one of {', '.join(_format_names())}") from None


def save_result(rgb: Image.Image, loaded: LoadedImage, path: Path) -> None:
    """Write the colorized image atomically, keeping alpha, ICC profile and EXIF where the format can."""
    from colorcli.files import atomic_write

    fmt, keeps_alpha = output_format(path)
    out = rgb
    if loaded.alpha is not None and keeps_alpha:
        out = rgb.copy()
        out.putalpha(loaded.alpha)
    params: dict[str, Any] = {}
    if loaded.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["icc_profile"] = loaded.icc_profile
    if loaded.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF") and not _exif_too_long(loaded, fmt):
        params["exif"] = loaded.exif  # longer EXIF than a JPEG holds is dropped (see format_note)
    if fmt == "JPEG":
        params.update(quality=98, subsampling=0)  # at 95 the luma moves by about 1 level on average, at 98 by 0.1
    if fmt == "WEBP":
        # Lossy WebP moves the luma by several levels. Lossless at quality 0 (the least
        # compression effort) encodes 2 to 3 times as fast as Pillow's default (80), for 2 to
        # 11% more bytes (benchmarks/output_formats.py); exact keeps the colour under
        # transparent pixels instead of discarding it.
        params.update(lossless=True, quality=0, exact=True)
    if fmt == "PNG":
        params["compress_level"] = 1  # fast; PNG stays lossless
    atomic_write(path, lambda f: out.save(f, format=fmt, **params))


def _exif_too_long(loaded: LoadedImage, fmt: str) -> bool:
    """Whether the input's EXIF is more than one JPEG segment holds, for a JPEG output."""
    return fmt == "JPEG" and loaded.exif is not None and len(loaded.exif) > JPEG_EXIF_MAX


def format_note(loaded: LoadedImage, path: Path) -> str | None:
    """What of the input the output at ``path`` cannot hold in its format, or None: the
    transparency (JPEG, BMP) or EXIF longer than one JPEG segment."""
    fmt, keeps_alpha = output_format(path)
    left_out = []
    if loaded.alpha is not None and not keeps_alpha:
        left_out.append(f"transparency left out: {fmt} has none (PNG, WebP and TIFF keep it)")
    if _exif_too_long(loaded, fmt):
        left_out.append(f"EXIF left out: {len(loaded.exif)} bytes, more than a JPEG holds (64 KB)")
    return "; ".join(left_out) or None


def colorize_file(model, src: Path, dst: Path, options: ColorizeOptions) -> LoadedImage:
    """Colorize one file into dst; raises InputError with the file name on bad input."""
    loaded = load_image(src, options.max_pixels)
    rgb = colorize_gray(model, loaded.gray, options)
    save_result(rgb, loaded, dst)
    return loaded


# ---------------------------------------------------------------- batches of files


@dataclass(frozen=True)
class Job:
    """One input and where its result goes; ``error`` marks an input refused before loading, and
    ``left_out`` one that is no photo (a FIFO or folder named like one): said, but not a failure."""

    src: Path
    dst: Path | None
    error: str | None = None
    left_out: bool = False


def _has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _is_glob(item: Path) -> bool:
    return _has_wildcard(str(item)) and not item.exists()


def _glob_root(pattern: Path) -> Path:
    """The folder a glob pattern searches below: its longest leading part that is a folder
    as written (so a folder named 'scans [1950]' is that folder, not a pattern); if no
    leading part is one, its parts before the first wildcard (which then match nothing)."""
    parts = pattern.parts
    for n in range(len(parts) - 1, 0, -1):
        head = Path(*parts[:n])
        if head.is_dir():
            return head
    fixed = []
    for part in parts:
        if _has_wildcard(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()


def _glob(pattern: Path) -> list[Path]:
    """The paths a glob pattern matches, sorted; its root folder is taken as written."""
    root = _glob_root(pattern)
    rest = Path(*pattern.parts[len(root.parts) :])
    return sorted(root.glob(str(rest)))


def _nested_output(root: Path, output: Path | None) -> Path | None:
    """The output folder if it lies strictly inside ``root``: its files are earlier results, not inputs."""
    if output is None:
        return None
    out, base = _resolved(output), root.resolve()
    return out if out != base and out.is_relative_to(base) else None


def _outside(files: list[Path], nested: Path | None, notes: list[str] | None = None) -> list[Path]:
    """The files not inside ``nested`` (the output folder); a note says how many were left out."""
    if nested is None:
        return files
    kept = [f for f in files if not _resolved(f).is_relative_to(nested)]
    if len(kept) < len(files) and notes is not None:
        notes.append(
            f"left out {len(files) - len(kept)} image(s) in the output folder {nested} "
            "(earlier results, or choose another -o)"
        )
    return kept


def _resolved(path: Path) -> Path:
    """``path.resolve()``, or the path made absolute where a symlink loop makes resolve raise."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError("Symlink loop from ...") before Python 3.13
        return path.absolute()


def _refused(path: Path, hint: str = "") -> Job:
    """An entry named like an image that is no image file: a link leading nowhere fails (a photo
    was meant to be there); anything else (a folder, FIFO, socket, device) is left out, and said."""
    broken = link_problem(path)
    if broken is not None:
        return Job(path, None, f"{path}: is {broken}")
    return Job(path, None, f"{path}: left out: {not_regular(path) or 'not a file'}{hint}", left_out=True)


def _by_path(entry: tuple[Path, Path] | Job) -> Path:
    return entry.src if isinstance(entry, Job) else entry[0]


def expand_inputs(
    inputs: list[Path], recursive: bool, exclude: Path | None = None, notes: list[str] | None = None
) -> list[tuple[Path, Path] | Job]:
    """(file, path relative to the output folder without suffix) for every input file, and a
    Job with an ``error`` for each refused input, in the order the inputs were given.

    Folders contribute their images (recursively with `recursive`, keeping
    subfolders) and glob patterns their matches, except files inside ``exclude``
    (the output folder) when it lies inside the folder searched, so a rerun does not
    colorize its own results. Files are taken as they are. A file named twice is
    colorized once. A folder without images is refused with a reason rather than
    passed over in silence. Glob matches are kept if they look like images (by
    suffix, or by their first bytes). Anything left out is said in ``notes``, or,
    for entries named like images that are no image file (a FIFO, a folder, a link
    leading nowhere), by a Job of their own in their place.
    """
    found: list[tuple[Path, Path] | Job] = []
    for item in inputs:
        if item.is_dir():
            heic: list[Path] = []
            odd: list[Path] = []
            nested = _nested_output(item, exclude)
            images = _outside(find_images(item, recursive, heic, odd), nested, notes)
            if heic and images and notes is not None:
                notes.append(f"{item}: {plugin_note(heic)}")
            if not images:
                hint = f" ({plugin_note(heic)})" if heic else "" if recursive else " (-r looks in subfolders)"
                found.append(Job(item, None, f"{item}: is a folder with no images colorcli can read{hint}"))
            folders_hint = "" if recursive else " (-r looks in subfolders)"
            refused = [_refused(p, folders_hint if p.is_dir() else "") for p in _outside(odd, nested)]
            in_folder = [(f, f.relative_to(item).with_suffix("")) for f in images]
            found.extend(sorted([*in_folder, *refused], key=_by_path))
        elif _is_glob(item):
            matched = _glob(item)
            regular = [m for m in matched if m.is_file()]
            odd = [m for m in matched if is_image_name(m) and not m.is_file()]
            files = [m for m in regular if looks_like_image(m)]
            kept = set(files)
            heic = [m for m in regular if m not in kept and needs_plugin(m)]
            others = len(regular) - len(files) - len(heic)
            if notes is not None and heic:
                notes.append(f"{item}: {plugin_note(heic)}")
            if notes is not None and others:
                notes.append(f"{item}: left out {others} non-image file(s)")
            nested = _nested_output(_glob_root(item), exclude)
            matches = _outside(files, nested, notes)
            refused = [_refused(m) for m in _outside(odd, nested)]
            if not matches and not refused and notes is not None:
                notes.append(f"{item}: matches no images")
            found.extend(sorted([*((m, Path(m.stem)) for m in matches), *refused], key=_by_path))
        elif (problem := link_problem(item) or not_regular(item)) is not None:
            found.append(Job(item, None, f"{item}: is {problem}"))  # refused at once: opening a FIFO would hang
        else:
            found.append((item, Path(item.stem)))
    seen: set[Path] = set()
    unique: list[tuple[Path, Path] | Job] = []
    for entry in found:
        key = _resolved(_by_path(entry))  # a refused folder named twice too
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def plan_jobs(
    inputs: list[Path],
    output: Path | None,
    recursive: bool = False,
    fmt: str = "png",
    output_is_dir: bool = False,
    notes: list[str] | None = None,
) -> list[Job]:
    """Where each input's result goes.

    No output (None): each result goes beside its input (see ``_jobs_beside_inputs``).
    One input file and an output that is not an existing folder (nor written as
    one, with a trailing slash: ``output_is_dir``): the output is that file.
    Otherwise the output is a folder and each result is named after its input's
    stem with `fmt`'s suffix; inputs whose names would collide (photo.jpg and
    photo.png) are told apart by their original suffix (photo_jpg.png,
    photo_png.png), so nothing is silently overwritten. Inputs refused up front
    (an empty folder, a FIFO, a symlink loop) come back as jobs with an ``error``;
    inputs left out (earlier results, non-images a glob matched) are said in ``notes``.
    """
    suffix = "." + fmt.lower().lstrip(".")
    if output is None:
        return _jobs_beside_inputs(inputs, recursive, suffix, notes)
    for item in inputs:
        searched = item if item.is_dir() else _glob_root(item) if _is_glob(item) else None
        if searched is None or not output.exists() or output.resolve() != searched.resolve():
            continue
        # A glob whose pattern cannot match the results ('*.jpg' writing .png) finds none of them again.
        if item.is_dir() or fnmatch.fnmatch(f"x{suffix}", "*" + Path(item.name).suffix.lower()):
            raise UsageError(
                f"{output}: is also the folder the input {item} searches, so a second run would colorize "
                "its results again; choose another -o"
            )
    entries = expand_inputs(inputs, recursive, exclude=output, notes=notes)
    files = [e for e in entries if not isinstance(e, Job)]
    refused = [e for e in entries if isinstance(e, Job)]
    if not files:
        raise _no_input_images(refused, notes)
    named_files = not any(item.is_dir() or _is_glob(item) for item in inputs)
    if named_files and len(entries) == 1 and not output.is_dir() and not output_is_dir:
        output_format(output)
        return [Job(files[0][0], output)]
    if not output_is_dir and not output.is_dir() and output.suffix.lower() in OUTPUT_FORMATS:
        # Files named on the command line count even where one is refused (a FIFO, a symlink loop).
        many = f"{len(entries)} files" if named_files else "a folder or glob"
        given = f"{len(files)} images" if len(files) > 1 else many
        raise UsageError(
            f"{output}: names one image file, but {given} went in; -o takes a folder for several "
            f"(write {output}/ if you want a folder of that name)"
        )
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"--format {fmt}: cannot write this format; use one of {', '.join(_format_names())}")
    dst = _output_names(files, output, suffix)
    return [entry if isinstance(entry, Job) else Job(entry[0], dst[entry[0]]) for entry in entries]


def _no_input_images(refused: list[Job], notes: list[str] | None) -> UsageError:
    """The error for inputs that hold no image at all, with why each was refused or left out."""
    reasons = "; ".join([j.error for j in refused if j.error] + (notes or []))
    return UsageError("no input images found" + (f" ({reasons})" if reasons else ""))


RESULT_TAG = "-color"  # without -o, photo.jpg's result is photo-color.png beside it


def _jobs_beside_inputs(inputs: list[Path], recursive: bool, suffix: str, notes: list[str] | None) -> list[Job]:
    """Jobs whose results go beside their inputs, each named after its input's stem plus
    RESULT_TAG, with ``suffix`` (photo.jpg: photo-color.png; photo.jpg and photo.png beside
    each other: photo-color_jpg.png and photo-color_png.png).

    Results of an earlier run found among the inputs (a folder colorized before, in any
    output format) are left out, with a note, so the same command again colorizes nothing twice.
    """
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"--format {suffix[1:]}: cannot write this format; use one of {', '.join(_format_names())}")
    entries = expand_inputs(inputs, recursive, notes=notes)
    files = [e[0] for e in entries if not isinstance(e, Job)]
    if not files:
        raise _no_input_images([e for e in entries if isinstance(e, Job)], notes)
    results = {_place_key(f.parent / name) for f in files for name in _result_names(f)}
    earlier = {f for f in files if _place_key(f) in results}
    if earlier and notes is not None:
        names = sorted(f.name for f in earlier)
        notes.append(
            f"left out {len(earlier)} earlier result(s) beside their inputs "
            f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
        )
    dst = _names_beside([f for f in files if f not in earlier], suffix)
    return [e if isinstance(e, Job) else Job(e[0], dst[e[0]]) for e in entries if isinstance(e, Job) or e[0] in dst]


def _result_names(src: Path) -> list[str]:
    """The names a result of ``src`` beside it can have, in every output format: photo-color.png,
    and photo-color_jpg.png where photo.jpg had a namesake."""
    told_apart = f"{src.stem}{RESULT_TAG}_{src.suffix.lstrip('.').lower()}"
    return [f"{stem}{suffix}" for stem in (src.stem + RESULT_TAG, told_apart) for suffix in OUTPUT_FORMATS]


def _names_beside(files: list[Path], suffix: str) -> dict[Path, Path]:
    """Each file's result beside it (see ``_jobs_beside_inputs``), told apart from its neighbours' as
    ``_output_names`` tells results in one output folder apart."""
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        by_folder.setdefault(f.parent.resolve(), []).append(f)
    dst: dict[Path, Path] = {}
    for group in by_folder.values():
        dst.update(_output_names([(f, Path(f.stem + RESULT_TAG)) for f in group], group[0].parent, suffix))
    return dst


def _place_key(path: Path) -> str:
    """Where a file is (its folder resolved, so in/a.png and ./in/a.png agree), as ``_name_key`` compares names."""
    return _name_key(path.parent.resolve() / path.name)


def _name_key(path: Path) -> str:
    """A path as file systems that ignore case (Windows, macOS) or Unicode normalisation (macOS:
    'café' typed and 'café' from a camera) compare it, so results never collide there."""
    return unicodedata.normalize("NFC", str(path)).casefold()


def _output_names(files: list[tuple[Path, Path]], output: Path, suffix: str) -> dict[Path, Path]:
    """Each file's result path in the output folder: its relative name with ``suffix``, told
    apart from files of the same name by their original suffix, then by a count. Names of
    folders (existing ones, and those the results of subfolders go into) are taken too."""
    by_name: dict[Path, list[Path]] = {}
    for src, rel in files:
        by_name.setdefault(rel, []).append(src)
    dst: dict[Path, Path] = {}
    taken = {_name_key(output / folder) for _, rel in files for folder in rel.parents if folder != Path(".")}
    for rel, sources in by_name.items():
        for src in sources:
            name = rel if len(sources) == 1 else rel.with_name(f"{rel.name}_{src.suffix.lstrip('.').lower()}")
            path, n = output / f"{name}{suffix}", 1
            # still taken (case-insensitive file systems too), or a folder already there: count up
            while _name_key(path) in taken or path.is_dir():
                path, n = output / f"{name}-{n}{suffix}", n + 1
            taken.add(_name_key(path))
            dst[src] = path
    return dst


class StopBatch(ColorcliError):
    """A write error no later file escapes: the batch stops (files after it are not attempted)."""


# Write errors no later file escapes (disk or quota full, read-only file system): stop there.
STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# The largest width or height each output format can store (JPEG: libjpeg's limit).
FORMAT_MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383}


def _format_names() -> list[str]:
    return [suffix.lstrip(".") for suffix in OUTPUT_FORMATS]


def check_output_folders(jobs: list[Job], output: Path | None) -> None:
    """Fail before any work when the output folder (``output``, or the folder of ``output``
    when it names the one result file; without an output, each folder results go into
    beside their inputs) could not be created or written.

    Nothing is made here: folders are made as their first result is written, so a run
    whose inputs all fail, or that is stopped early, leaves no empty folders behind.
    """
    import os

    results = [j.dst for j in jobs if j.dst is not None]
    if not results:
        return
    if output is None:
        for folder in sorted({r.parent for r in results}):
            if folder.is_dir() and not os.access(folder, os.W_OK):  # a missing one: its inputs fail alone
                raise UsageError(f"{folder}: folder is not writable, so results cannot go beside their inputs; use -o")
        return
    folder = output.parent if results == [output] else output
    existing = next(f for f in (folder, *folder.parents) if f.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise UsageError(f"{folder}: cannot create output folder ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise UsageError(f"{folder}: output folder is not writable ({existing} is read-only)")


def check_output_file(path: Path, suffix: str) -> None:
    """Fail before any work when an output file has the wrong suffix or its folder cannot be made."""
    if path.suffix.lower() != suffix:
        raise UsageError(f"{path}: must be a {suffix} file")
    from colorcli.files import ensure_folder

    ensure_folder(path.parent)


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    left_out: int = 0  # entries named like images that are none (a FIFO, a folder): said, not failed
    stopped: str | None = None  # why the batch stopped early (a full disk), if it did
    interrupted: bool = False  # Ctrl-C or SIGTERM: the files done are complete, the rest untouched

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 1 if self.failed else 0

    def count(self, status: str) -> None:
        if status == "ok":
            self.done += 1
        elif status == "skipped":
            self.skipped += 1
        elif status == "left out":
            self.left_out += 1
        else:
            self.failed += 1


def run_jobs(
    model,
    jobs: list[Job],
    options: ColorizeOptions,
    overwrite: bool = False,
    as_json: bool = False,
    err_console=None,
    batch_pixels: int = 16_000_000,
    batch_files: int = 64,
    batch_tiles: int = 128,
) -> BatchReport:
    """Colorize every job; a failing file is reported on stderr and the batch goes on.

    Files are loaded in groups (at most ``batch_files`` files or ``batch_pixels``
    pixels, which bounds memory) whose tiles share model calls. A group also ends
    once it holds ``batch_tiles`` tiles: about four photos (a photo is some 35 tiles
    at the default scale), so the progress bar moves while a folder of photos is
    colorized. Small files still go 64 to a call, where sharing calls pays; for photos,
    model calls of four measured as fast as calls of twelve.
    """
    import time

    from colorcli.console import progress_bar

    report = BatchReport()
    tiling = options.for_model(model)
    inputs = {_resolved(j.src) for j in jobs if j.error is None}
    progress = progress_bar(
        err_console,
        "colorizing",
        "{task.fields[ips]:.1f} img/s",
        # Logs (not a terminal) get the summary line only; a bar there would be printed once, at the end.
        disable=as_json or err_console is None or len(jobs) < 2 or not err_console.is_terminal,
    )

    # JSON lines come out in input order: a file finished early (skipped, failed to load)
    # waits for the files before it, which finish with their group.
    position = {id(job): n for n, job in enumerate(jobs)}
    ready: dict[int, str] = {}
    next_line = 0
    finished: set[int] = set()

    def finish(
        job: Job, status: str, seconds: float, error: str | None = None, note: str | None = None, quiet: bool = False
    ) -> None:
        nonlocal next_line
        finished.add(id(job))
        report.count(status)
        if error and err_console is not None and not quiet:
            progress.console.print(
                f"error: {printable(error)}", style="red", highlight=False, soft_wrap=True, markup=False
            )
        if status == "left out" and note and err_console is not None and not as_json:
            progress.console.print(f"note: {printable(note)}", highlight=False, soft_wrap=True, markup=False)
        if as_json:
            record = {
                "input": str(job.src),
                "output": None if job.dst is None else str(job.dst),
                "status": status,
                "seconds": round(seconds, 4),
            }
            if error:
                record["error"] = error
            if note:
                record["note"] = note
            ready[position[id(job)]] = json.dumps(record)
            while next_line in ready:
                print(ready.pop(next_line), flush=True)
                next_line += 1
        done = report.done + report.skipped + report.failed + report.left_out
        progress.update(task, completed=done, ips=done / max(time.perf_counter() - t_start, 1e-9))

    blocked: dict[Path, Path | None] = {}

    def run_all() -> None:
        pending: list[tuple[Job, LoadedImage, float]] = []
        pixels = tiles = 0
        for n, job in enumerate(jobs):
            t0 = time.perf_counter()
            if job.left_out:
                finish(job, "left out", 0.0, note=job.error)
            elif job.error is not None or job.dst is None:
                finish(job, "failed", 0.0, job.error or f"{job.src}: no output")
            elif _resolved(job.dst) in inputs:
                finish(job, "failed", 0.0, f"{job.src}: output {job.dst} would overwrite an input; choose another -o")
            elif job.dst.exists() and not overwrite:
                finish(job, "skipped", 0.0)
            elif (in_the_way := _file_in_the_way(job.dst.parent, blocked)) is not None:
                # Fail before decoding and colorizing: the result could not be written anyway.
                finish(job, "failed", 0.0, f"{job.src}: cannot write {job.dst}: {in_the_way} is not a folder")
            else:
                try:
                    loaded = load_image(job.src, options.max_pixels, output_format(job.dst)[0])
                except ColorcliError as e:
                    finish(job, "failed", time.perf_counter() - t0, str(e))
                else:
                    pending.append((job, loaded, time.perf_counter() - t0))
                    pixels += loaded.gray.size[0] * loaded.gray.size[1]
                    tiles += _tile_count(loaded.gray.size, tiling)
            full = pixels >= batch_pixels or tiles >= batch_tiles or len(pending) >= batch_files
            if pending and (full or n == len(jobs) - 1):
                _colorize_group(model, pending, options, finish, err_console, as_json)
                pending, pixels, tiles = [], 0, 0

    with progress, _flush_on_exit(ready):
        task = progress.add_task("", total=len(jobs), ips=0.0)
        t_start = time.perf_counter()
        try:
            run_all()
        except StopBatch as e:
            report.stopped = str(e)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what is written is complete; say how far it got
            report.interrupted = True
        if report.stopped:  # the files after the stop are not written: each says so, as failed
            for job in jobs:
                if id(job) in finished:
                    continue
                if job.left_out:  # no photo either way: still said once, as left out
                    finish(job, "left out", 0.0, note=job.error)
                else:
                    finish(job, "failed", 0.0, f"{job.src}: not written, stopped: {report.stopped}", quiet=True)
    return report


def _tile_count(size: tuple[int, int], tiling: ResolvedOptions) -> int:
    """How much model work an image of ``size`` (width, height) is, in 32x32 tiles' worth
    (a 64x64 tile counts 4), at the working scale."""
    w, h = working_size(*size, tiling.scale)
    t, stride = tiling.tile, tiling.tile - tiling.overlap
    count = len(_tile_starts(max(t, h), t, stride)) * len(_tile_starts(max(t, w), t, stride))
    return count * (t * t) // (TILE * TILE)


def _file_in_the_way(folder: Path, known: dict[Path, Path | None]) -> Path | None:
    """What stands where ``folder`` or one of its parents should be (a file, a dangling link), if anything.

    ``known`` remembers the answer per folder, so a batch of thousands of files
    looks at each output folder once. A folder made since is still a folder.
    """
    if folder not in known:
        existing = next(f for f in (folder, *folder.parents) if f.exists() or f.is_symlink())
        known[folder] = None if existing.is_dir() else existing
    return known[folder]


@contextlib.contextmanager
def _flush_on_exit(ready: dict[int, str]) -> Iterator[None]:
    """On the way out (an interrupt included) print the JSON lines still waiting, in order."""
    try:
        yield
    finally:
        for n in sorted(ready):
            print(ready.pop(n), flush=True)


def _colorize_group(model, pending, options: ColorizeOptions, finish, err_console, as_json: bool) -> None:
    """Colorize loaded files together and save each; per-file errors go to `finish`.

    The group's tiles share model calls (as in ``colorize_grays``); then each file is
    enlarged to full resolution and saved before the next is, so the progress bar
    moves per file and one full-size result is held at a time.
    """
    import time

    t0 = time.perf_counter()
    try:
        scale = options.for_model(model).scale
        working = [_working_gray(loaded.gray, scale) for _, loaded, _ in pending]
        chroma = predict_chroma_many(model, working, options)
    except (RuntimeError, MemoryError) as e:  # out of memory on a huge group: report, go on with the rest
        for job, _, load_s in pending:
            finish(job, "failed", load_s, f"{job.src}: colorizing failed ({first_line(e)})")
        return
    share = (time.perf_counter() - t0) / len(pending)
    for (job, loaded, load_s), small, c in zip(pending, working, chroma, strict=True):
        t1 = time.perf_counter()
        try:
            rgb = _full_resolution(loaded.gray, small, c, options)
        except (RuntimeError, MemoryError) as e:  # out of memory on a huge photo: report, go on with the rest
            finish(job, "failed", load_s + share, f"{job.src}: colorizing failed ({first_line(e)})")
            continue
        try:
            job.dst.parent.mkdir(parents=True, exist_ok=True)
            save_result(rgb, loaded, job.dst)
        except (OSError, ValueError) as e:  # disk full, permissions, metadata the format refuses
            reason = getattr(e, "strerror", None) or first_line(e)
            finish(
                job, "failed", load_s + share + time.perf_counter() - t1, f"{job.src}: cannot write {job.dst}: {reason}"
            )
            if getattr(e, "errno", None) in STOP_ERRNOS:  # every later file would fail the same way
                raise StopBatch(f"{job.dst.parent}: {reason}") from None
            continue
        del rgb  # before the next file is enlarged
        note = "; ".join(n for n in (loaded.note, format_note(loaded, job.dst)) if n) or None
        if note and err_console is not None and not as_json:
            err_console.print(f"note: {printable(f'{job.src}: {note}')}", highlight=False, markup=False)
        finish(job, "ok", load_s + share + time.perf_counter() - t1, note=note)


# ---------------------------------------------------------------- standard input and output

STDIO = "-"  # as an input: read the image from standard input; as -o: write the result to standard output
STDIN_NAME = "standard input"


@dataclass(frozen=True)
class StdioJob:
    """The one image of a command line with ``-`` as its input or its output."""

    src: Path | None  # None: standard input
    dst: Path | None  # None: standard output
    suffix: str  # the result's format (".png")


def _is_terminal(stream: Any) -> bool:
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def plan_stdio(
    inputs: list[str],
    output: str | None,
    fmt: str = "png",
    as_json: bool = False,
    stdin: Any = None,
    stdout: Any = None,
) -> StdioJob:
    """The job of a command line that reads standard input (input ``-``) or writes standard
    output (``-o -``, in ``fmt``), or a UsageError saying why it cannot be one. ``stdin`` and
    ``stdout`` are only asked whether they are terminals (no image comes from, or goes to, one)."""
    if len(inputs) != 1:
        raise UsageError("- (standard input) and -o - (standard output) take one image; name one input")
    if output == STDIO:
        if as_json:
            raise UsageError("--json and -o - would both write to standard output; leave one out")
        if _is_terminal(stdout):
            raise UsageError("-o -: standard output is a terminal; send the image to a file (> out.png) or a program")
        suffix = "." + fmt.lower().lstrip(".")
        if suffix not in OUTPUT_FORMATS:
            raise UsageError(f"--format {fmt}: cannot write this format; use one of {', '.join(_format_names())}")
        dst = None
    elif output is None:
        raise UsageError("- reads standard input, which has no name to write a result beside: give -o FILE, or -o -")
    else:
        dst = Path(output)
        if output.endswith(("/", os.sep)) or dst.is_dir():
            raise UsageError(
                f"{output}: is a folder; standard input has no name to give the result, so -o names a file"
            )
        suffix = dst.suffix.lower()
        output_format(dst)  # an unknown suffix is refused before any work
    if inputs[0] == STDIO:
        if _is_terminal(stdin):
            raise UsageError(
                "-: standard input is a terminal; pipe an image in (colorcli colorize - -o out.png < in.jpg)"
            )
        return StdioJob(None, dst, suffix)
    src = Path(inputs[0])
    if src.is_dir() or _is_glob(src):
        raise UsageError(f"{src}: -o - writes one image to standard output; name one file")
    return StdioJob(src, dst, suffix)


def run_stdio(
    model, job: StdioJob, options: ColorizeOptions, overwrite: bool = False, stdin=None, stdout=None, err_console=None
) -> BatchReport:
    """Colorize a StdioJob's image; ``stdin`` and ``stdout`` are binary streams.

    Standard input is copied to a temporary file first (Pillow seeks in what it reads), and
    a result for standard output is written to one and copied out, so each format keeps
    what ``save_result`` keeps. A failure raises: with one image there is no batch to go on with.
    """
    report = BatchReport()
    if job.dst is not None and job.dst.exists() and not overwrite:
        report.count("skipped")
        return report
    with tempfile.TemporaryDirectory(prefix="colorcli-") as tmp:
        src = job.src if job.src is not None else _spool(stdin, Path(tmp) / "stdin")
        dst = job.dst if job.dst is not None else Path(tmp) / f"result{job.suffix}"
        try:
            loaded = load_image(src, options.max_pixels, output_format(dst)[0])
        except InputError as e:
            # Name standard input, not the temporary file it went through.
            raise InputError(str(e).replace(str(src), STDIN_NAME) if job.src is None else str(e)) from None
        rgb = colorize_gray(model, loaded.gray, options)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_result(rgb, loaded, dst)
        except (OSError, ValueError) as e:  # disk full, permissions, metadata the format refuses
            reason = getattr(e, "strerror", None) or first_line(e)
            raise ColorcliError(f"{job.src or STDIN_NAME}: cannot write {job.dst or 'the result'}: {reason}") from None
        if job.dst is None:
            _copy_out(dst, stdout)
    note = "; ".join(n for n in (loaded.note, format_note(loaded, dst)) if n)
    if note and err_console is not None:
        err_console.print(f"note: {printable(f'{job.src or STDIN_NAME}: {note}')}", highlight=False, markup=False)
    report.count("ok")
    return report


def _spool(stdin, path: Path) -> Path:
    """Copy all of binary ``stdin`` into ``path``; an empty stream is refused."""
    with path.open("wb") as f:
        shutil.copyfileobj(stdin, f)
    if path.stat().st_size == 0:
        raise InputError(f"{STDIN_NAME}: empty; pipe an image in (colorcli colorize - -o out.png < in.jpg)")
    return path


def _copy_out(path: Path, stdout) -> None:
    """Write the file at ``path`` to binary ``stdout``."""
    try:
        with path.open("rb") as f:
            shutil.copyfileobj(f, stdout)
        stdout.flush()
    except BrokenPipeError:  # the reader went away (| head): say so once, not with a traceback
        raise ColorcliError("standard output was closed before the whole image was written") from None
