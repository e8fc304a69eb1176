"""Writing files safely: through a temporary file renamed into place, and the folders they go in.

Every file colorcli writes (results, checkpoints, caches, grids, histories) goes through
``atomic_write``, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from colorcli.errors import FolderInUse, UsageError

# The temporary files atomic_write makes: "." + the target's name (at most 100 bytes of it) +
# "." + mkstemp's 8 random characters + ".tmp". Only names of this form are ever swept away.
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp", re.DOTALL)
_STARTED = time.time()  # a temporary file older than this process is no write of its own
_swept: set[str] = set()  # folders this process has cleared of stale temporary files


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the path made absolute where a symlink loop makes resolve raise."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError("Symlink loop from ...") before Python 3.13
        return path.absolute()


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place.

    A crash at any moment leaves either the old file or the complete new one, and
    at worst a temporary file, which the next colorcli to write into that folder
    removes (``remove_stale_temps``).
    """
    path = Path(path)
    folder = os.path.abspath(path.parent)
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_temps(path.parent)
    # The temporary name adds about 14 bytes; a prefix of at most 100 bytes keeps it within
    # the file system's 255-byte limit for any name that fits itself (cut by bytes: "写" is 3).
    prefix = os.fsdecode(os.fsencode(path.name)[:100])
    fd, tmp = tempfile.mkstemp(prefix=f".{prefix}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno(), exclusive=True)  # held while writing: another colorcli's sweep leaves the file be
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: Path, before: float | None = None) -> list[Path]:
    """Remove the temporary files an earlier colorcli left in ``folder`` when it was killed
    mid-write (kill -9, a power cut); the removed paths.

    Only regular files named as atomic_write names them, with mkstemp's mode 0600,
    owned by this user, last written before ``before`` (default: when this process
    started) and not locked by a writer still at work are removed; anything else,
    and any error, is left alone.
    """
    before = _STARTED if before is None else before
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # not there yet, or not ours to look into
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= before:
                continue
            # mkstemp's 0600 stays until the rename: a file given other permissions is someone else's
            if os.name == "posix" and (stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != os.getuid()):
                continue
            if _in_use(entry.path):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def folder_held(folder: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while inside, or raise FolderInUse(``busy``) when
    another process holds it (two trainings writing one run folder would overwrite each
    other's checkpoints). The lock ends with the process, however it ends; where folders
    cannot be locked, nothing is held."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        if not _lock(fd, exclusive=True):
            raise FolderInUse(busy)
        yield
    finally:
        os.close(fd)


def _lock(fd: int, exclusive: bool) -> bool:
    """Try, without waiting, to lock ``fd``: exclusively for the writer of a temporary file, shared
    for a sweep that asks whether its writer is still at work. Whether the lock was free; where
    the platform or file system has no such locks, it counts as free."""
    try:
        import fcntl
    except ImportError:  # Windows: the age of the file is all there is to go by
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    return True


def _in_use(path: str) -> bool:
    """Whether a writer holds the lock atomic_write takes on its temporary file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        return not _lock(fd, exclusive=False)
    finally:
        os.close(fd)


def ensure_folder(folder: Path, what: str = "output folder") -> None:
    """Create ``folder`` (and its parents) and check it is writable, or raise a usage error.

    what names the folder in the message ("output folder", "the run folder").
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder}: cannot create {what} ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{folder}: {what} is not writable")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for f in (folder, *folder.parents):
        if f.exists():
            break
        missing.append(f)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) while they are empty; stop at the first that is not."""
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            return
