"""A folder of photos as a dataset: each image decoded once (EXIF orientation applied,
brought to a square of the run's size), the whole folder cached as one ``.npy`` keyed by
its files' names, sizes and times, and its unreadable files said in one warning line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from colorcli.errors import ColorcliError, DataError, UsageError, warn
from colorcli.finding import find_images, no_images_found, plugin_note
from colorcli.images import load_rgb


def _decode_fit(path: Path, size: int) -> np.ndarray:
    """Decode one image, apply EXIF orientation, resize and centre-crop to (size, size, 3) uint8.

    Raises InputError naming the file and the reason (the same checks as colorize's)."""
    from PIL import Image, ImageOps

    im = load_rgb(path)
    if im.size != (size, size):
        im = ImageOps.fit(im, (size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def skipped_warning(bad: list[tuple[Path, str]], where: Path | str) -> str:
    """One warning line for images left out as unreadable: how many, which, and the first's reason."""
    # The reason begins with the file's path as it was read, which a cached run may give another way.
    folder, named, rest = bad[0][1].partition(f"{bad[0][0].name}: ")
    reason = rest if named and (not folder or folder.endswith("/")) else bad[0][1]
    return (
        f"skipped {len(bad)} unreadable image(s) in {where}: {some_names([p for p, _ in bad])} "
        f"({bad[0][0].name}: {reason})"
    )


# Bumped whenever decoding changes what a cached folder holds (2: 16-bit and float gray
# scaled to 8 bits instead of clipped to white), so older caches are not read back.
DECODE_VERSION = 2


def _folder_key(root: Path, paths: list[Path], size: int) -> str:
    """Cache key of a folder's images: their paths within it, sizes and times (not where it
    lies), the square size and the decoder's version."""
    h = hashlib.sha256(f"{size}\0v{DECODE_VERSION}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_folder(
    root: Path,
    size: int = 32,
    cache_dir: Path | None = None,
    show_progress: bool = True,
    limit: int | None = None,
) -> torch.Tensor:
    """All images under root as a (N, 3, size, size) uint8 tensor, decoded once and cached.

    Unreadable images are skipped with a warning that counts them. The cache is
    keyed by the files' paths, sizes and modification times. ``limit`` keeps the first
    that many readable images (in sorted order): from the whole folder's cache if there
    is one, else decoding only as far as needed, and caching nothing (quick trials
    should not leave a copy per limit behind).
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder")
    heic: list[Path] = []
    paths = find_images(root, needing_plugin=heic)
    if not paths:
        raise no_images_found(root, heic)
    if heic:
        warn(f"{root}: {plugin_note(heic)}")
    cache = Path(cache_dir) / "folders" / f"{_folder_key(root, paths, size)}.npy" if cache_dir is not None else None
    cached = _read_cache(cache, limit) if cache is not None else None
    if cached is not None:
        _warn_skipped_before(cache, root, paths, limit)
        return torch.from_numpy(cached).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    stack, bad = _decode_first(root, paths, size, limit, show_progress)  # (N, S, S, 3)
    if cache is not None and not limit:
        _write_cache(cache, stack, [(p.relative_to(root).as_posix(), why) for p, why in bad])
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)


def _read_cache(cache: Path, limit: int | None) -> np.ndarray | None:
    """The first ``limit`` (or all) images of a folder's cache, (N, S, S, 3) uint8; None if it
    is not there (or was pruned by another process a moment ago)."""
    try:
        stack = np.load(cache, mmap_mode="r")  # reads only the rows kept
        images = np.array(stack[:limit])
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # marks it used, for pruning; a read-only cache still reads
        os.utime(cache)
    return images


def _decode_first(
    root: Path, paths: list[Path], size: int, limit: int | None, show_progress: bool
) -> tuple[np.ndarray, list[tuple[Path, str]]]:
    """Decode the files in order until ``limit`` (or all) are read: (N, size, size, 3) uint8,
    and the unreadable ones with why, skipped with one warning line; none readable is a DataError."""
    from colorcli.console import progress_bar, stderr_console

    arrays: list[np.ndarray] = []
    bad: list[tuple[Path, str]] = []
    err = stderr_console()
    bar = progress_bar(
        err, f"decoding {root.name}", "", disable=not (show_progress and err.is_terminal), transient=True
    )
    with bar:  # none in logs
        for p in bar.track(paths):
            if limit and len(arrays) == limit:
                break
            try:
                arrays.append(_decode_fit(p, size))
            except ColorcliError as e:
                bad.append((p, str(e)))
    if bad:
        warn(skipped_warning(bad, root))
    if not arrays:
        raise DataError(f"{root}: none of the {len(paths)} image files could be read ({bad[0][1]})")
    return np.stack(arrays), bad  # (N, S, S, 3)


def _skipped_file(cache: Path) -> Path:
    """Beside a folder's cache: the files its decoding skipped, so a cached read warns as the first did."""
    return cache.with_suffix(".skipped.json")


def _warn_skipped_before(cache: Path, root: Path, paths: list[Path], limit: int | None) -> None:
    """Warn of the files the cache's decoding skipped; with ``limit``, of those among the first
    ``limit`` readable images only (in sorted order, as an uncached read meets them)."""
    try:
        skipped = dict(json.loads(_skipped_file(cache).read_text()))  # name -> why
    except (OSError, ValueError, TypeError):  # none skipped (no file), or a damaged note: nothing to say
        return
    bad, readable = [], 0
    for path in paths:
        why = skipped.get(path.relative_to(root).as_posix())
        if limit and readable >= limit:
            break
        if why is None:
            readable += 1
        else:
            bad.append((path, why))
    if bad:
        warn(skipped_warning(bad, root))


def _write_cache(cache: Path, stack: np.ndarray, skipped: list[tuple[str, str]]) -> None:
    """Save a folder's decoded images (and the names it skipped) and prune stale caches; a
    cache that cannot be written only costs time, so that is a warning."""
    from colorcli.files import atomic_write

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        if skipped:
            atomic_write(_skipped_file(cache), lambda f: f.write(json.dumps(skipped).encode()))
        atomic_write(cache, lambda f: np.save(f, stack))
        prune_folder_cache(cache.parent, keep=cache)
    except OSError as e:
        warn(f"cannot cache decoded images in {cache.parent} ({e.strerror or e})")


CACHE_DAYS = 30


def prune_folder_cache(folder: Path, keep: Path, days: float = CACHE_DAYS) -> int:
    """Delete decoded-folder caches unused for ``days`` (a changed folder leaves its old one
    behind, keyed by contents that no longer exist); returns how many went."""
    cutoff = time.time() - days * 86_400
    gone = 0
    for f in folder.glob("*.npy"):
        with contextlib.suppress(OSError):  # another process may be using or removing it
            if f != keep and f.stat().st_mtime < cutoff:
                f.unlink()
                _skipped_file(f).unlink(missing_ok=True)
                gone += 1
    return gone


def some_names(paths: list[Path], shown: int = 3) -> str:
    """The first few names of a list of files, for one-line messages."""
    names = ", ".join(p.name for p in paths[:shown])
    return names + (f" and {len(paths) - shown} more" if len(paths) > shown else "")
