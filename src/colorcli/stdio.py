"""One image through a pipe: ``colorcli colorize - -o out.png < in.jpg`` and ``-o -``.

Planned before the model loads (``plan_stdio`` refuses what cannot work, such as a terminal
for an image) and run after (``run_stdio``); a batch of files goes through ``runner.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console

from colorcli.batch import Job, is_glob
from colorcli.errors import ColorcliError, InputError, UsageError, first_line, printable
from colorcli.images import format_note, format_suffix, load_image, output_format, save_result
from colorcli.jpeg_check import checks_held
from colorcli.runner import BatchReport, FileResult
from colorcli.tiling import ColorizeOptions, colorize_gray

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
        if STDIO in inputs:
            raise UsageError("- (standard input) is one image: give it alone, once, with no other inputs")
        raise UsageError("-o - (standard output) takes one image; name one input")
    if output == STDIO:
        if as_json:
            raise UsageError("--json and -o - would both write to standard output; leave one out")
        if _is_terminal(stdout):
            raise UsageError("-o -: standard output is a terminal; send the image to a file (> out.png) or a program")
        suffix = format_suffix(fmt)
        dst = None
    elif output is None:
        raise UsageError("- reads standard input, which has no name to write a result beside: give -o FILE, or -o -")
    else:
        dst = Path(output)
        if output.endswith(("/", os.sep)) or os.path.isdir(dst):
            raise UsageError(
                f"{output}: is a folder; standard input has no name to give the result, so -o names a file"
            )
        suffix = dst.suffix.lower()
        output_format(dst, may_be_folder=False)  # an unknown suffix is refused before any work
    if inputs[0] == STDIO:
        if _is_terminal(stdin):
            raise UsageError(
                "-: standard input is a terminal; pipe an image in (colorcli colorize - -o out.png < in.jpg)"
            )
        return StdioJob(None, dst, suffix)
    src = Path(inputs[0])
    if os.path.isdir(src) or is_glob(src):
        raise UsageError(f"{src}: -o - writes one image to standard output; name one file")
    return StdioJob(src, dst, suffix)


def run_stdio(
    model: Any,
    job: StdioJob,
    options: ColorizeOptions,
    overwrite: bool = False,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    err_console: Console | None = None,
    as_json: bool = False,
) -> BatchReport:
    """Colorize a StdioJob's image; ``stdin`` and ``stdout`` are binary streams.

    Standard input is copied to a temporary file first (Pillow seeks in what it reads), and
    a result for standard output is written to one and copied out, so each format keeps
    what ``save_result`` keeps. A failure raises: with one image there is no batch to go on
    with. A note goes to ``err_console``, or with ``as_json`` into the one JSON line on
    stdout that says how it ended (a failure's line too, before it raises).
    """
    t0 = time.perf_counter()
    try:
        status, note = _colorize_stdio(model, job, options, overwrite, stdin, stdout)
    except ColorcliError as e:
        if as_json:
            _print_record(job, "failed", t0, error=str(e))
        raise
    if as_json:
        _print_record(job, status, t0, note=note)
    elif note and err_console is not None:
        err_console.print(f"note: {printable(f'{job.src or STDIN_NAME}: {note}')}", highlight=False, markup=False)
    report = BatchReport()
    report.count(status)
    return report


def _print_record(job: StdioJob, status: str, t0: float, error: str | None = None, note: str | None = None) -> None:
    """The JSON line a batch's file gets (``FileResult.record``), for the one image of a pipe."""
    as_batch_job = Job(Path(STDIO) if job.src is None else job.src, job.dst)
    result = FileResult(as_batch_job, 0, status, time.perf_counter() - t0, error=error, note=note)
    print(json.dumps(result.record()), flush=True)


def _colorize_stdio(
    model: Any,
    job: StdioJob,
    options: ColorizeOptions,
    overwrite: bool,
    stdin: BinaryIO | None,
    stdout: BinaryIO | None,
) -> tuple[str, str | None]:
    """Colorize the image of ``job``: ("ok", its note or None), or ("skipped", None)."""
    if job.dst is not None and os.path.exists(job.dst) and not overwrite:
        return "skipped", None
    with tempfile.TemporaryDirectory(prefix="colorcli-") as tmp:
        src = job.src if job.src is not None else _spool(stdin, Path(tmp) / "stdin")
        dst = job.dst if job.dst is not None else Path(tmp) / f"result{job.suffix}"
        try:
            loaded = load_image(src, options.max_pixels, output_format(dst)[0], damage_check=True)
        except InputError as e:
            # Name standard input, not the temporary file it went through.
            raise InputError(str(e).replace(str(src), STDIN_NAME) if job.src is None else str(e)) from None
        try:
            with checks_held():
                rgb = colorize_gray(model, loaded.gray, options)
        except (RuntimeError, MemoryError) as e:  # out of memory on a huge photo
            raise ColorcliError(f"{job.src or STDIN_NAME}: colorizing failed ({first_line(e)})") from None
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_result(rgb, loaded, dst)
        except (OSError, ValueError) as e:  # disk full, permissions, metadata the format refuses
            reason = getattr(e, "strerror", None) or first_line(e)
            raise ColorcliError(f"{job.src or STDIN_NAME}: cannot write {job.dst or 'the result'}: {reason}") from None
        if job.dst is None:
            _copy_out(dst, stdout)
        note = "; ".join(n for n in (loaded.note, format_note(loaded, dst)) if n)  # the check reads the spooled file
    return "ok", note or None


def _spool(stdin: BinaryIO | None, path: Path) -> Path:
    """Copy all of binary ``stdin`` into ``path``; an empty stream is refused."""
    with path.open("wb") as f:
        shutil.copyfileobj(stdin, f)
    if path.stat().st_size == 0:
        raise InputError(f"{STDIN_NAME}: empty; pipe an image in (colorcli colorize - -o out.png < in.jpg)")
    return path


def _copy_out(path: Path, stdout: BinaryIO | None) -> None:
    """Write the file at ``path`` to binary ``stdout``."""
    try:
        with path.open("rb") as f:
            shutil.copyfileobj(f, stdout)
        stdout.flush()
    except BrokenPipeError:  # the reader went away (| head): say so once, not with a traceback
        raise ColorcliError("standard output was closed before the whole image was written") from None
