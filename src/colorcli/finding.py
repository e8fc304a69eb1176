"""Which files are photos: formats, suffixes, optional plugins, and what a path that is no
photo file is (a folder, a FIFO, a link leading nowhere, a folder that may not be searched).

Batch planning (``batch.py``) and training folders (``data.py``) find photos here;
``images.py`` reads them.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from colorcli.errors import UsageError

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


# Pillow's switches below are process-wide: two threads opening files at once must not
# restore each other's values (and leave the decompression-bomb limit off for good).
_PILLOW_SWITCHES = threading.Lock()


def open_unlimited(path: Path, libtiff: bool = False) -> Image.Image:
    """Image.open without Pillow's own decompression-bomb limit, which --max-pixels replaces;
    ``libtiff``: read even an uncompressed TIFF through libtiff."""
    plugin_formats()
    from PIL import TiffImagePlugin

    with _PILLOW_SWITCHES:
        old_limit, old_libtiff = Image.MAX_IMAGE_PIXELS, TiffImagePlugin.READ_LIBTIFF
        Image.MAX_IMAGE_PIXELS = None
        TiffImagePlugin.READ_LIBTIFF = libtiff or old_libtiff  # read when the file is opened
        try:
            im = Image.open(path)
            if libtiff:  # counting a multi-page TIFF's pages sets its tiles up again: while libtiff is on
                _ = getattr(im, "n_frames", 1)
                im.seek(0)
            return im
        finally:
            Image.MAX_IMAGE_PIXELS, TiffImagePlugin.READ_LIBTIFF = old_limit, old_libtiff


def looks_like_image(path: Path) -> bool:
    """An image by its name, or else by its first bytes (Pillow identifies it): for files with
    no suffix or an odd one (scan001, IMG_1.JPG_original) that a glob names on purpose."""
    if is_image_name(path):
        return True
    if path.name.startswith("._"):
        return False
    try:
        with open_unlimited(path):  # a huge scan is still an image; the pixel limit is checked on loading
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


def search_denied(path: Path) -> bool:
    """Whether ``path`` cannot even be looked up because a folder on its way may not be
    searched (no x permission): Path.exists and Path.is_dir raise then instead of answering."""
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:  # missing, a link loop, a name too long: each has its own message elsewhere
        return False
    return False


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


def no_images_found(folder: Path | str, needing_plugin: list[Path]) -> UsageError:
    """The usage error for a folder named on the command line that holds no image to read
    (train, eval and colorize say it alike), naming the plugin that would read what it holds."""
    why = plugin_note(needing_plugin) if needing_plugin else "no files with an image suffix Pillow reads"
    return UsageError(f"{folder}: no images found ({why})")
