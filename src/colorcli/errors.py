"""Errors that colorcli reports to users as one line, without a traceback."""

from __future__ import annotations

import unicodedata

EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C (128 + SIGINT)


class ColorcliError(Exception):
    """A problem the user can act on; the CLI prints it (unless ``echo`` is off: another
    process already said it) and exits with `exit_code`."""

    exit_code: int = 1
    echo: bool = True


class UsageError(ColorcliError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = 2


class FolderInUse(UsageError):
    """Another process holds the folder (a run folder another training is writing): it is theirs,
    so nothing of it may be cleaned up on the way out."""


class InputError(ColorcliError):
    """An input file cannot be read as an image."""


class CheckpointError(ColorcliError):
    """A checkpoint cannot be loaded safely or does not fit the model."""


class NoSuchCheckpoint(CheckpointError):
    """The checkpoint named on the command line does not exist: a usage error (exit code 2)."""

    exit_code = 2


class DataError(ColorcliError):
    """A dataset cannot be found, downloaded or read."""


class MainProcessFailed(DataError):
    """Under torchrun, rank 0 failed to load the images; it prints why, the other ranks only stop."""

    echo = False


class TrainingError(ColorcliError):
    """Training cannot go on (for example the loss became NaN)."""


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type), for one-line reports. A longer
    line is cut after the last whole word that fits, and ends in "..." to say so."""
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    line = text[0].rstrip()
    if len(line) <= limit:
        return line
    head = line[: limit + 1]  # one more: a word that ends exactly at the limit is whole
    cut = head.rsplit(" ", 1)[0] if " " in head else line[:limit]  # one long word (a path): cut it there
    return cut.rstrip(" ,;:") + " ..."


# Characters that break a line, drive a terminal or reorder text: control characters (Cc),
# line and paragraph separators, lone surrogates (undecodable bytes), bidirectional overrides.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def printable(text: str) -> str:
    """``text`` with characters that could break its line or drive the terminal escaped as
    Python writes them (``\\n``, ``\\x1b``, ``\\u202e``), so a file name holding a newline or a
    terminal escape stays on its one line and changes nothing on the screen. Everything else,
    accented letters, CJK and its wide space, emoji sequences, stays as it is."""
    return "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch in _BIDI_CONTROLS else ch for ch in text
    )


def warn(text: str) -> None:
    """Print one warning line on stderr: ``warning:`` and ``text`` made printable, never read
    as markup (file names may hold brackets)."""
    from colorcli.console import stderr_console

    stderr_console().print(f"warning: {printable(text)}", style="yellow", markup=False)


def torchvision_unusable(e: BaseException) -> ColorcliError:
    """The error for a torchvision that cannot be imported: missing, or built for another torch
    (which fails on import with anything from ImportError to RuntimeError: operator
    torchvision::nms does not exist), with the command that installs the matching one."""
    import torch

    version = torch.__version__.split("+")[0]  # 2.14.1, without a local build tag such as +cpu
    return ColorcliError(
        f"torchvision cannot be imported ({first_line(e)}); install the torchvision made for torch {version}: "
        f"pip install 'torch=={version}' torchvision (with the --index-url torch came from, if any)"
    )
