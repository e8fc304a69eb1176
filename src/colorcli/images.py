"""Image files: reading any of them as 8-bit gray or RGB, and writing results (which files
are photos is ``finding.py``'s).

Shared by training and eval (colour originals, ``load_rgb``) and colorize (gray input
with alpha and metadata, ``load_image``): both open and decode through ``_read``, so all
read a file the same way and fail on it with the same one-line reasons. Colorize's
results are written by ``save_result``, keeping what of the input their format can hold.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps

from colorcli.errors import InputError, UsageError, first_line
from colorcli.finding import PLUGIN_HINT, link_problem, needs_plugin, not_regular, open_unlimited

DEFAULT_MAX_PIXELS = 200_000_000


HIGH_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


PREMULTIPLIED = {"RGBa": "RGBA", "La": "LA"}


def to_gray8(im: Image.Image) -> Image.Image:
    """8-bit Rec. 601 luma of any Pillow mode; 16-bit and float images keep their tonal range."""
    if im.mode in PREMULTIPLIED:  # samples scaled by their alpha: the luma is of the colour behind it
        im = im.convert(PREMULTIPLIED[im.mode])
    if im.mode in HIGH_BIT_GRAY:
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if im.mode == "F" and a.max(initial=0) <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if im.mode == "L":
        return im
    if im.mode in ("1", "LA", "RGB"):
        return im.convert("L")  # RGB straight to L: the same bits as through a copy of itself
    return im.convert("RGB").convert("L")


def to_rgb8(im: Image.Image) -> Image.Image:
    """8-bit RGB of any Pillow mode. Pillow's own convert("RGB") clips 16-bit and float gray to
    white; those are scaled down to 8 bits first, as colorize reads them."""
    if im.mode in PREMULTIPLIED:
        im = im.convert(PREMULTIPLIED[im.mode])
    return to_gray8(im).convert("RGB") if im.mode in HIGH_BIT_GRAY else im.convert("RGB")


def _raw_tiff_on_its_side(im: Image.Image) -> bool:
    """An uncompressed TIFF whose orientation tag turns it a quarter (5 to 8): Pillow's own
    decoder (13.0) returns it at the stored size with its rows garbled; libtiff turns it right."""
    if im.format != "TIFF" or im.getexif().get(0x0112) not in (5, 6, 7, 8):
        return False
    return any(tile[0] == "raw" for tile in im.tile)


def open_checked(path: Path, max_pixels: int, limit_hint: str = "") -> Image.Image:
    """Image.open, with every way it fails as an InputError naming the file and the reason,
    and images over ``max_pixels`` refused before any pixel is decoded (``limit_hint`` says
    how to raise the limit, where the command has a way)."""
    if os.path.isdir(path):  # unlike Path.is_dir, False (not an exception) where a folder on the way is locked
        raise InputError(f"{path}: is a directory, not an image")
    special = not_regular(path)
    if special is not None:  # a FIFO would block the open below until something writes to it
        raise InputError(f"{path}: is {special}")
    try:
        im = open_unlimited(path)  # the pixel limit is checked below, against max_pixels
    except FileNotFoundError:
        broken = link_problem(path)  # a link to nothing fails as a missing file does, saying so
        raise InputError(f"{path}: is {broken}" if broken else f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except Exception as e:  # noqa: BLE001 - any failure to identify the file is a bad input
        if (loop := link_problem(path)) is not None:
            raise InputError(f"{path}: is {loop}") from None
        if needs_plugin(path):
            raise InputError(f"{path}: {path.suffix[1:].upper()} photos need a plugin: {PLUGIN_HINT}") from None
        raise InputError(f"{path}: not a readable image ({first_line(e)})") from None
    if _raw_tiff_on_its_side(im):
        im.close()
        im = open_unlimited(path, libtiff=True)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise InputError(
            f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} (a decompression bomb?)"
            + limit_hint
        )
    return im


def load_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Any image Pillow reads as display-oriented 8-bit RGB (a colour original to learn from or
    score against); failures are InputErrors naming the file and the reason."""
    return _read(Path(path), max_pixels, lambda im: to_rgb8(exif_oriented(im)[0]))


def exif_oriented(im: Image.Image, in_place: bool = False) -> tuple[Image.Image, bool]:
    """The image turned as its EXIF orientation says (a copy where it turns, or ``im`` itself
    turned ``in_place``), and whether its EXIF could be read; an image whose EXIF is malformed
    comes back as it is stored. Decoding happens first and apart: a damaged picture still
    fails as it should."""
    im.load()
    try:
        turned = ImageOps.exif_transpose(im, in_place=in_place)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - Pillow parses the EXIF here; a malformed block raises anything
        return im, False
    return (im if in_place else turned), True


T = TypeVar("T")


def _read(
    path: Path,
    max_pixels: int,
    decode: Callable[[Image.Image], T],
    limit_hint: str = "",
    output_format: str | None = None,
) -> T:
    """The one way colorcli opens and decodes an image file: ``decode(im)`` of the opened image.

    Opening fails as ``open_checked`` says (missing, not an image, over ``max_pixels``, with
    ``limit_hint``); an image larger than ``output_format`` (a Pillow format name) can store
    is refused before decoding; any failure inside ``decode`` is an InputError
    "cannot decode image". Pillow's warnings about odd metadata are silenced: the file
    either decodes or fails.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_checked(path, max_pixels, limit_hint) as im:
            side = FORMAT_MAX_SIDE.get(output_format or "")
            if side is not None and max(im.size) > side:
                w, h = im.size
                raise InputError(
                    f"{path}: {w}x{h} is more than {output_format} holds ({side:,} pixels a side); write PNG or TIFF"
                )
            try:
                return decode(im)
            except Exception as e:  # noqa: BLE001 - decoders raise many types on corrupt data
                raise InputError(f"{path}: cannot decode image ({first_line(e)})") from None


# ---------------------------------------------------------------- colorize's input


@dataclass
class LoadedImage:
    """An input photo as 8-bit luma at its displayed orientation, plus what the output keeps."""

    gray: Image.Image  # mode "L", full resolution
    alpha: Image.Image | None
    icc_profile: bytes | None
    exif: bytes | None
    notes: list[str] = field(default_factory=list)
    damage_check: Future[str | None] | None = None  # a JPEG's check (jpeg_check.submit_check), running

    @property
    def note(self) -> str | None:
        """What to say of the input (a first frame used, damaged data), or None; waits for the JPEG check."""
        return "; ".join(n for n in (*self.notes, _damage_note(self.damage_check)) if n) or None


def stored_mode(im: Image.Image) -> str | None:
    """How the file stores its samples ("RGB", "RGB;16B", "L;4", ...), read before decoding."""
    tiles = getattr(im, "tile", None) or []
    args = getattr(tiles[0], "args", None) if tiles else None
    return args if isinstance(args, str) else None


def alpha_mask(im: Image.Image, raw_mode: str | None = None) -> Image.Image | None:
    """The image's transparency as an 8-bit mask, or None: alpha channels, and the single
    transparent colour (PNG tRNS) of palette, gray and RGB images.

    A gray or RGB key is honoured only where the samples are stored as 8-bit
    (``raw_mode`` "L" or "RGB"): Pillow reduces 16-bit RGB and widens 1-4 bit gray
    without converting the key, which would then mark the wrong pixels. 16-bit gray
    ("I" modes) is compared at full depth. A key no pixel has gives no mask.
    """
    if im.mode in ("RGBA", "LA", "PA"):
        return im.getchannel("A")
    if im.mode in PREMULTIPLIED:
        return im.getchannel("a")
    if im.mode == "P" and im.palette is not None and im.palette.mode == "RGBA":  # alpha in the palette
        return _mask_if_any(im.convert("RGBA").getchannel("A"))
    if "transparency" not in im.info:
        return None
    if im.mode in ("P", "1") or (im.mode in ("L", "RGB") and raw_mode == im.mode):
        mask = im.convert("RGBA").getchannel("A")
    elif im.mode.startswith("I") and isinstance(im.info["transparency"], int):
        mask = Image.fromarray(np.where(np.asarray(im) == im.info["transparency"], 0, 255).astype(np.uint8), "L")
    else:
        return None
    return _mask_if_any(mask)


def _mask_if_any(mask: Image.Image) -> Image.Image | None:
    """An 8-bit alpha mask, or None where every pixel is opaque."""
    return None if mask.getextrema() == (255, 255) else mask


def load_image(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    output_format: str | None = None,
    damage_check: Future[str | None] | bool = False,
    limit_option: str = "--max-pixels",
) -> LoadedImage:
    """Open any image Pillow reads as display-oriented 8-bit luma (+ alpha, ICC profile, EXIF).

    ``output_format`` (a Pillow format name): refuse, before decoding, an image larger than
    that format can store (JPEG, WebP). ``damage_check``: True to have a JPEG's compressed
    data checked for damage in the checking process (``jpeg_check.submit_check``; ``note``
    says what it found), or that check of this file already started (a batch starts them
    ahead), kept only if the file is a JPEG. ``limit_option``: what the pixel limit's message
    says raises it."""
    path = Path(path)
    hint = f"; raise it with {limit_option} if you trust the file"
    loaded, frames, fmt = _read(path, max_pixels, _decode_for_colour, hint, output_format)
    if frames > 1:
        loaded.notes.append(f"used the first of its {frames} frames")
    started = damage_check if isinstance(damage_check, Future) else None
    if fmt in ("JPEG", "MPO") and damage_check is not False:
        from colorcli.jpeg_check import submit_check

        loaded.damage_check = started or submit_check(path)
    elif started is not None:
        started.cancel()  # named .jpg, but not a JPEG
    return loaded


def _decode_for_colour(im: Image.Image) -> tuple[LoadedImage, int, str | None]:
    """An opened image's first frame as a LoadedImage (no note yet), its frame count and format."""
    fmt, first = im.format, im.tell()  # an image opens at its first frame (PSD: 1, its composite)
    # A PSD's "frames" are the layers of the composite it opens with, and an MPO's second
    # picture is a gain map or a preview (every Ultra HDR phone photo): neither is a second photo.
    frames = 1 if fmt in ("PSD", "MPO") else getattr(im, "n_frames", 1)
    if im.tell() != first:  # counting frames may leave some readers elsewhere
        im.seek(first)
    raw_mode = stored_mode(im)
    im.load()
    icc = _rgb_profile(im.info.get("icc_profile"))
    _, readable = exif_oriented(im, in_place=True)  # our own decoded copy: no second 36 MB for 12 MP
    notes = [] if readable else ["its EXIF is malformed and was left out"]
    exif = im.info.get("exif") if readable else None
    loaded = LoadedImage(gray=to_gray8(im), alpha=alpha_mask(im, raw_mode), icc_profile=icc, exif=exif, notes=notes)
    return loaded, frames, fmt


def _damage_note(check: Future[str | None] | None) -> str | None:
    """What to say of a JPEG whose compressed data is damaged: libjpeg patches over it with a
    warning Pillow drops, so the picture decodes, partly garbled, as if nothing were wrong."""
    if check is None:
        return None
    from colorcli.jpeg_check import check_result

    damage = check_result(check)
    if damage is None:
        return None
    return f"corrupt JPEG data ({damage}); the decoder patched over it, so part of the picture may be garbled"


def _rgb_profile(icc: bytes | None) -> bytes | None:
    """The ICC profile if it describes RGB data (the output is RGB); a CMYK or gray profile is dropped."""
    return icc if icc and len(icc) >= 20 and icc[16:20] == b"RGB " else None


# ---------------------------------------------------------------- colorize's results

JPEG_EXIF_MAX = 65533  # bytes of EXIF one JPEG APP1 segment holds
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
# The largest width or height each output format can store (JPEG: libjpeg's limit).
FORMAT_MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383}


def format_names() -> list[str]:
    """The output formats by suffix, without the dot: png, jpg, ..."""
    return [suffix.lstrip(".") for suffix in OUTPUT_FORMATS]


def format_suffix(fmt: str) -> str:
    """The suffix of a ``--format`` (png, .PNG, jpg, ...), refused with the formats there are
    unless colorcli writes it."""
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in OUTPUT_FORMATS:
        raise UsageError(f"--format {fmt}: cannot write this format; use one of {', '.join(format_names())}")
    return suffix


def output_format(path: Path, may_be_folder: bool = True) -> tuple[str, bool]:
    """Pillow format name for an output path and whether it can keep alpha; a path with no
    suffix is refused suggesting a folder where ``may_be_folder`` (not for a pipe's one image)."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        if not path.suffix and may_be_folder:
            raise UsageError(
                f"{path}: names no image format; name a file ({path}.png, ...) or write {path}/ for a folder"
            ) from None
        raise UsageError(f"{path}: cannot write this format; use one of {', '.join(format_names())}") from None


def save_result(rgb: Image.Image, loaded: LoadedImage, path: Path) -> None:
    """Write the colorized image atomically, keeping alpha, ICC profile and EXIF where the format can."""

    fmt, keeps_alpha = output_format(path)
    out = rgb
    if loaded.alpha is not None and keeps_alpha:
        out = rgb.copy()
        out.putalpha(loaded.alpha)
    params: dict[str, Any] = {}
    if loaded.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        params["icc_profile"] = loaded.icc_profile
    if loaded.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF") and _exif_left_out(loaded, fmt) is None:
        params["exif"] = loaded.exif  # what the format cannot take is dropped (see format_note)
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
    try:
        _write_image(out, path, fmt, params)
    except ValueError as e:
        if "exif" not in params:
            raise
        # The EXIF passed a first look but its inner tables broke the writer: the photo goes without it.
        _write_image(out, path, fmt, {k: v for k, v in params.items() if k != "exif"})
        loaded.notes.append(f"EXIF left out: the {fmt} writer could not encode it ({first_line(e.__cause__ or e)})")


def _write_image(out: Image.Image, path: Path, fmt: str, params: dict[str, Any]) -> None:
    """Write ``out`` atomically; a failure is an OSError (the disk, the folder) or a ValueError
    (whatever else the writer raised: its parsers raise SyntaxError, struct.error, TypeError)."""
    from colorcli.files import atomic_write

    try:
        with warnings.catch_warnings():  # Pillow warns on odd metadata it writes anyway: not the user's concern
            warnings.simplefilter("ignore")
            atomic_write(path, lambda f: out.save(f, format=fmt, **params))
    except (OSError, ValueError):
        raise
    except Exception as e:  # noqa: BLE001 - see above
        raise ValueError(f"the {fmt} writer failed ({first_line(e)})") from e


def _exif_left_out(loaded: LoadedImage, fmt: str) -> str | None:
    """Why the input's EXIF cannot go into an output of format ``fmt``, or None if it can."""
    if loaded.exif is None:
        return None
    if fmt == "JPEG" and len(loaded.exif) > JPEG_EXIF_MAX:
        return f"{len(loaded.exif)} bytes, more than a JPEG holds (64 KB)"
    if fmt == "TIFF" and not _exif_parses(loaded.exif):  # the TIFF writer reads it back into tags
        return "it is malformed, and TIFF stores it as tags"
    return None


def _exif_parses(exif: bytes) -> bool:
    """Whether Pillow can read ``exif`` (raw APP1 bytes) as a TIFF header and its tags."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.Exif().load(exif)
    except Exception:  # noqa: BLE001 - any failure to parse is a malformed block
        return False
    return True


def format_note(loaded: LoadedImage, path: Path) -> str | None:
    """What of the input the output at ``path`` cannot hold in its format, or None: the
    transparency (JPEG, BMP), or EXIF the format cannot take (too long for JPEG, malformed for TIFF)."""
    fmt, keeps_alpha = output_format(path)
    left_out = []
    if loaded.alpha is not None and not keeps_alpha:
        left_out.append(f"transparency left out: {fmt} has none (PNG, WebP and TIFF keep it)")
    exif_reason = _exif_left_out(loaded, fmt)
    if exif_reason is not None:
        left_out.append(f"EXIF left out: {exif_reason}")
    return "; ".join(left_out) or None
