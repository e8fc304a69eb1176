"""Image files: which files are photos, and reading any of them as 8-bit gray or RGB.

Shared by training and eval (colour originals, ``load_rgb``) and colorize (gray input
with alpha and metadata, ``inference.load_image``), so all read a file the same way and
fail on it with the same one-line reasons.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorcli.errors import InputError, first_line

# Still-image formats a photo may come in. Pillow registers more suffixes (video, scientific
# and vector formats it can only identify or needs other programs for); folders skip those.
PHOTO_FORMATS = frozenset(
    {
        "BMP",
        "DIB",
        "GIF",
        "JPEG",
        "MPO",  # multi-picture JPEG (.mpo) from 3D and some phone cameras
        "JPEG2000",
        "PNG",
        "PPM",
        "TIFF",
        "WEBP",
        "TGA",
        "PSD",
        "PCX",
        "SGI",
        "ICO",
        "AVIF",
        "QOI",
        "HEIF",  # with the optional pillow-heif plugin (see plugin_formats)
    }
)
# Photo suffixes only a plugin makes readable, and how to get it: iPhones save HEIC.
PLUGIN_SUFFIXES = {".heic": "pillow-heif", ".heif": "pillow-heif", ".hif": "pillow-heif"}
PLUGIN_HINT = "pip install 'colorcli[heic]' (the pillow-heif plugin) reads them"


@functools.cache
def plugin_formats() -> frozenset[str]:
    """Register the optional format plugins that are installed (pillow-heif: HEIC/HEIF);
    the names of those registered."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return frozenset()
    register_heif_opener()
    return frozenset({"HEIF"})


def needs_plugin(path: Path) -> bool:
    """Whether the file is a photo format only a plugin that is not installed here reads."""
    return path.suffix.lower() in PLUGIN_SUFFIXES and "HEIF" not in plugin_formats()


@functools.cache
def image_suffixes() -> frozenset[str]:
    """File suffixes (lower case, with the dot) of the photo formats this Pillow can read."""
    plugin_formats()
    Image.init()
    readable = set(Image.OPEN) | ({"MPO"} if "JPEG" in Image.OPEN else set())  # MPO opens as a JPEG
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in PHOTO_FORMATS & readable)


def is_image_name(path: Path) -> bool:
    """Whether a file's name says it is an image Pillow reads (macOS "._" metadata twins are not)."""
    return path.suffix.lower() in image_suffixes() and not path.name.startswith("._")


def looks_like_image(path: Path) -> bool:
    """An image by its name, or else by its first bytes (Pillow identifies it): for files with
    no suffix or an odd one (scan001, IMG_1.JPG_original) that a glob names on purpose."""
    if is_image_name(path):
        return True
    if path.name.startswith("._"):
        return False
    try:
        with _open_unlimited(path):  # a huge scan is still an image; the pixel limit is checked on loading
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def find_images(
    root: Path,
    recursive: bool = True,
    needing_plugin: list[Path] | None = None,
    not_files: list[Path] | None = None,
) -> list[Path]:
    """Image files under root (by suffix, any case), sorted for reproducibility. Photos only
    a missing plugin reads (HEIC) are added to ``needing_plugin``, to say why they were left out;
    entries named like images that are no regular file (links leading nowhere, FIFOs, sockets,
    devices, and, unless ``recursive`` looks inside them, folders) to ``not_files``."""
    pattern = "**/*" if recursive else "*"
    found = []
    for p in root.glob(pattern):
        if is_image_name(p) and p.is_file():
            found.append(p)
        elif needing_plugin is not None and needs_plugin(p) and p.is_file():
            needing_plugin.append(p)
        elif not_files is not None and is_image_name(p) and not (recursive and p.is_dir()):
            not_files.append(p)
    return sorted(found)


def link_problem(path: Path) -> str | None:
    """Why a symbolic link at ``path`` leads to no file, as a noun phrase: a loop (links that
    point at each other, which ``Path.resolve`` refuses with an exception), or a missing target."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop (links that point at each other)"
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            return f"a broken link (to {os.readlink(path)}, which does not exist)"
    return None


def not_regular(path: Path) -> str | None:
    """What ``path`` is, as a noun phrase, if it exists but is not a regular file (nor a link to
    one): opening a FIFO would wait for a writer forever, and a device or socket is no photo."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreachable: opening it says why
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe), not an image file",
        stat.S_ISSOCK: "a socket, not an image file",
        stat.S_ISCHR: "a character device, not an image file",
        stat.S_ISBLK: "a block device, not an image file",
    }
    return next((what for test, what in kinds.items() if test(mode)), None if stat.S_ISREG(mode) else "not a file")


def plugin_note(paths: list[Path]) -> str:
    """Why photos only a missing plugin reads were left out, in one phrase."""
    kinds = "/".join(sorted({p.suffix[1:].upper() for p in paths}))
    return f"{len(paths)} {kinds} photo(s) left out: {PLUGIN_HINT}"


DEFAULT_MAX_PIXELS = 200_000_000


HIGH_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_gray8(im: Image.Image) -> Image.Image:
    """8-bit Rec. 601 luma of any Pillow mode; 16-bit and float images keep their tonal range."""
    if im.mode in HIGH_BIT_GRAY:
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if im.mode == "F" and a.max(initial=0) <= 1.0:
            top = 1.0
        return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if im.mode == "L":
        return im
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    return im.convert("RGB").convert("L")


def to_rgb8(im: Image.Image) -> Image.Image:
    """8-bit RGB of any Pillow mode. Pillow's own convert("RGB") clips 16-bit and float gray to
    white; those are scaled down to 8 bits first, as colorize reads them."""
    return to_gray8(im).convert("RGB") if im.mode in HIGH_BIT_GRAY else im.convert("RGB")


def _open_unlimited(path: Path) -> Image.Image:
    """Image.open without Pillow's own decompression-bomb limit, which --max-pixels replaces."""
    plugin_formats()
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = old


def open_checked(path: Path, max_pixels: int, limit_hint: str = "") -> Image.Image:
    """Image.open, with every way it fails as an InputError naming the file and the reason,
    and images over ``max_pixels`` refused before any pixel is decoded (``limit_hint`` says
    how to raise the limit, where the command has a way)."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image")
    special = not_regular(path)
    if special is not None:  # a FIFO would block the open below until something writes to it
        raise InputError(f"{path}: is {special}")
    try:
        im = _open_unlimited(path)  # the pixel limit is checked below, against max_pixels
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except Exception as e:  # noqa: BLE001 - any failure to identify the file is a bad input
        if needs_plugin(path):
            raise InputError(f"{path}: {path.suffix[1:].upper()} photos need a plugin: {PLUGIN_HINT}") from None
        raise InputError(f"{path}: not a readable image ({first_line(e)})") from None
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
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd metadata; the file either decodes or fails below
        with open_checked(path, max_pixels) as im:
            try:
                return to_rgb8(ImageOps.exif_transpose(im))
            except Exception as e:  # noqa: BLE001 - decoders raise many types on corrupt data
                raise InputError(f"{path}: cannot decode image ({first_line(e)})") from None
