"""Errors that colorcli reports to users as one line, without a traceback."""

from __future__ import annotations


class ColorcliError(Exception):
    """A problem the user can act on; the CLI prints it and exits with `exit_code`."""

    exit_code: int = 1


class UsageError(ColorcliError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = 2


class InputError(ColorcliError):
    """An input file cannot be read as an image."""


class CheckpointError(ColorcliError):
    """A checkpoint cannot be loaded safely or does not fit the model."""


class NoSuchCheckpoint(CheckpointError):
    """The checkpoint named on the command line does not exist: a usage error (exit code 2)."""

    exit_code = 2


class DataError(ColorcliError):
    """A dataset cannot be found, downloaded or read."""


class TrainingError(ColorcliError):
    """Training cannot go on (for example the loss became NaN)."""


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type), for one-line reports."""
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else type(e).__name__


def printable(text: str) -> str:
    """``text`` with control characters escaped as Python writes them (``\\n``, ``\\x1b``), so a
    file name holding a newline or a terminal escape stays on its one line and changes nothing
    on the screen. Other characters, accented letters and CJK included, stay as they are."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
