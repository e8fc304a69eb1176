"""Running a batch: colorizing planned jobs group by group.

``run_jobs`` loads files in groups whose tiles share model calls, then enlarges, writes
and reports each file in turn, yielding one ``FileResult`` per file as it is finished
(the caller owns the progress bar and the JSON lines; the CLI's live in ``cli/colorize.py``).
A file that fails is reported and the batch goes on, unless the disk is full. The one
image of a pipe (``-``) goes through ``stdio.py``.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorcli.batch import Job
from colorcli.errors import EXIT_INTERRUPTED, ColorcliError, first_line
from colorcli.files import missing_folders, remove_empty, resolved
from colorcli.images import (
    LoadedImage,
    format_note,
    load_image,
    output_format,
    save_result,
)
from colorcli.jpeg_check import checks_held, submit_check
from colorcli.tiling import (
    ColorizeOptions,
    colorize_gray,
    full_resolution,
    predict_chroma_many,
    tile_count,
    working_gray,
)

# Write errors no later file escapes (disk or quota full, read-only file system): stop there.
STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def colorize_file(model: Any, src: Path, dst: Path, options: ColorizeOptions) -> LoadedImage:
    """Colorize one file into dst; raises InputError with the file name on bad input."""
    loaded = load_image(src, options.max_pixels, damage_check=True)
    with checks_held():
        rgb = colorize_gray(model, loaded.gray, options)
    save_result(rgb, loaded, dst)
    return loaded


@dataclass(frozen=True)
class FileResult:
    """What became of one job of a batch.

    position: the job's index in the batch (JSON lines are shown in this order). status:
    "ok", "skipped", "failed", "not started" (after a stop: a full disk) or "left out" (named
    like a photo but none: said, not failed).
    seconds: wall time spent on it (its share of the group's model calls included).
    error, note: what to say of it. quiet: an error the batch's stop message already says.
    stops: the write error (a full disk) that stopped the batch at this file, if it did.
    """

    job: Job
    position: int
    status: str
    seconds: float = 0.0
    error: str | None = None
    note: str | None = None
    quiet: bool = False
    stops: str | None = None

    def record(self) -> dict[str, Any]:
        """The result as a JSON-able record: input, output, status, seconds, and error and note if any."""
        record: dict[str, Any] = {
            "input": str(self.job.src),
            "output": None if self.job.dst is None else str(self.job.dst),
            "status": self.status,
            "seconds": round(self.seconds, 4),
        }
        if self.error:
            record["error"] = self.error
        if self.note:
            record["note"] = self.note
        return record


@dataclass
class BatchReport:
    """How many files of a batch ended which way, and whether it ended early."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    left_out: int = 0  # entries named like images that are none (a FIFO, a folder): said, not failed
    not_started: int = 0  # files after a stop (a full disk): never tried
    stopped: str | None = None  # why the batch stopped early (a full disk), if it did
    interrupted: bool = False  # Ctrl-C or SIGTERM: the files done are complete, the rest untouched

    @property
    def exit_code(self) -> int:
        return EXIT_INTERRUPTED if self.interrupted else 1 if self.failed or self.not_started else 0

    @property
    def finished(self) -> int:
        """Files accounted for so far, whichever way."""
        return self.done + self.skipped + self.failed + self.left_out + self.not_started

    def count(self, status: str) -> None:
        if status == "ok":
            self.done += 1
        elif status == "skipped":
            self.skipped += 1
        elif status == "left out":
            self.left_out += 1
        elif status == "not started":
            self.not_started += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class BatchLimits:
    """How many files are loaded and colorized together: at most ``files`` files or
    ``pixels`` pixels (which bounds memory), ending the group once it holds ``tiles``
    32x32 tiles' worth of model work."""

    pixels: int = 16_000_000
    files: int = 64
    tiles: int = 128


# Names a JPEG goes by; a JPEG named otherwise is checked once it is read.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"})


def start_damage_checks(jobs: list[Job], overwrite: bool = False) -> dict[int, Future[str | None]]:
    """Start the damage check of every JPEG the batch will read, by job position.

    They run in order in the checking process (``jpeg_check.submit_check``) on a core the
    colorizing leaves idle: the CLI starts them before it loads the model, whose loading
    (a tenth of a second through onnxruntime; with torch, a second or two on one core) hides the first checks."""
    return {
        n: submit_check(job.src)
        for n, job in enumerate(jobs)
        if job.error is None
        and not job.left_out
        and job.src.suffix.lower() in JPEG_SUFFIXES
        and (overwrite or job.dst is None or not os.path.exists(job.dst))
    }


def cancel_damage_checks(checks: dict[int, Future[str | None]]) -> None:
    """Cancel the checks not yet taken by the checking process, so that exiting does not
    wait for the checks of files that will not be read."""
    for check in checks.values():
        check.cancel()


def run_jobs(
    model: Any,
    jobs: list[Job],
    options: ColorizeOptions,
    overwrite: bool = False,
    limits: BatchLimits | None = None,
    checks: dict[int, Future[str | None]] | None = None,
) -> Iterator[FileResult]:
    """Colorize every job, yielding each file's result as it is finished (not in input order:
    a file skipped or failing to load is done before the group it would have joined).

    A failing file does not stop the batch; a write error no later file escapes (a full
    disk) does: its result carries ``stops``, and each file after it is then yielded as
    "not started" (quietly) or left out. Groups end at ``limits``: a group of ``tiles`` (128) is
    about four photos (a photo is some 35 tiles at the default scale), so progress moves
    while a folder of photos is colorized. Small files still go 64 to a call, where sharing
    calls pays; for photos, model calls of four measured as fast as calls of twelve.
    ``checks``: the JPEG checks ``start_damage_checks`` started (by default they start here).
    """
    checks = start_damage_checks(jobs, overwrite) if checks is None else checks
    finished: set[int] = set()
    try:
        for result in _results(model, jobs, options, overwrite, limits or BatchLimits(), checks):
            finished.add(result.position)
            yield result
            if result.stops:
                yield from _not_written(jobs, finished, result.stops)
                return
    finally:
        cancel_damage_checks(checks)  # files never read: a stop, an interrupt, an early skip


@dataclass
class _Group:
    """Files loaded and waiting to share model calls: (job, its position, the image, seconds loading it)."""

    files: list[tuple[Job, int, LoadedImage, float]] = field(default_factory=list)
    pixels: int = 0
    tiles: int = 0

    def full(self, limits: BatchLimits) -> bool:
        return self.pixels >= limits.pixels or self.tiles >= limits.tiles or len(self.files) >= limits.files


def _results(
    model: Any,
    jobs: list[Job],
    options: ColorizeOptions,
    overwrite: bool,
    limits: BatchLimits,
    checks: dict[int, Future[str | None]],
) -> Iterator[FileResult]:
    """Each job's result, in the order files are finished: planned refusals and skips at once,
    loaded files with their group."""
    tiling = options.for_model(model)
    inputs = {resolved(j.src) for j in jobs if j.error is None}
    blocked: dict[Path, Path | None] = {}
    group = _Group()
    for n, job in enumerate(jobs):
        t0 = time.perf_counter()
        early = _before_loading(job, n, inputs, overwrite, blocked)
        if early is not None:
            yield early
        else:
            check = checks.pop(n, True)
            try:
                loaded = load_image(job.src, options.max_pixels, output_format(job.dst)[0], damage_check=check)
            except ColorcliError as e:
                if isinstance(check, Future):
                    check.cancel()  # a file that cannot be read gets an error, not a note
                yield FileResult(job, n, "failed", time.perf_counter() - t0, str(e))
            else:
                group.files.append((job, n, loaded, time.perf_counter() - t0))
                group.pixels += loaded.gray.size[0] * loaded.gray.size[1]
                group.tiles += tile_count(loaded.gray.size, tiling)
        if group.files and (group.full(limits) or n == len(jobs) - 1):
            yield from _colorize_group(model, group.files, options)
            group = _Group()


def _before_loading(
    job: Job, n: int, inputs: set[Path], overwrite: bool, blocked: dict[Path, Path | None]
) -> FileResult | None:
    """The result of a job that ends before its file is read (refused when planned, would
    overwrite an input, exists, cannot be written), or None for a job to colorize."""
    if job.left_out:
        return FileResult(job, n, "left out", note=job.error)
    if job.error is not None or job.dst is None:
        return FileResult(job, n, "failed", error=job.error or f"{job.src}: no output")
    if resolved(job.dst) in inputs:
        return FileResult(
            job, n, "failed", error=f"{job.src}: output {job.dst} would overwrite an input; choose another -o"
        )
    if os.path.exists(job.dst) and not overwrite:
        return FileResult(job, n, "skipped")
    in_the_way = _file_in_the_way(job.dst.parent, blocked)
    if in_the_way is not None:  # fail before decoding and colorizing: the result could not be written anyway
        return FileResult(job, n, "failed", error=f"{job.src}: cannot write {job.dst}: {in_the_way} is not a folder")
    return None


def _not_written(jobs: list[Job], finished: set[int], reason: str) -> Iterator[FileResult]:
    """The jobs not finished when the batch stopped: each not started, quietly (the stop is said
    once), except entries that are no photo either way, still said once, as left out."""
    for n, job in enumerate(jobs):
        if n in finished:
            continue
        if job.left_out:
            yield FileResult(job, n, "left out", note=job.error)
        else:
            yield FileResult(job, n, "not started", error=f"{job.src}: not written, stopped: {reason}", quiet=True)


def _file_in_the_way(folder: Path, known: dict[Path, Path | None]) -> Path | None:
    """What stands where ``folder`` or one of its parents should be (a file, a dangling link), if anything.

    ``known`` remembers the answer per folder, so a batch of thousands of files
    looks at each output folder once. A folder made since is still a folder.
    """
    if folder not in known:
        existing = next(f for f in (folder, *folder.parents) if os.path.lexists(f))
        known[folder] = None if os.path.isdir(existing) else existing
    return known[folder]


def _colorize_group(
    model: Any, files: list[tuple[Job, int, LoadedImage, float]], options: ColorizeOptions
) -> Iterator[FileResult]:
    """Colorize loaded files together, then enlarge and save each, yielding its result.

    The group's tiles share model calls (as in ``colorize_grays``); then each file is
    enlarged to full resolution and saved before the next is, so progress moves per
    file and one full-size result is held at a time.
    """
    t0 = time.perf_counter()
    try:
        scale = options.for_model(model).scale
        working = [working_gray(loaded.gray, scale) for _, _, loaded, _ in files]
        with checks_held():  # JPEG checks run beside reading and writing files, not beside the model
            chroma = predict_chroma_many(model, working, options)
    except (RuntimeError, MemoryError) as e:  # out of memory on a huge group: report, go on with the rest
        for job, n, _, load_s in files:
            yield FileResult(job, n, "failed", load_s, f"{job.src}: colorizing failed ({first_line(e)})")
        return
    share = (time.perf_counter() - t0) / len(files)
    for (job, n, loaded, load_s), small, c in zip(files, working, chroma, strict=True):
        yield _finish_file(job, n, loaded, small, c, options, load_s + share)


def _finish_file(
    job: Job, n: int, loaded: LoadedImage, small: np.ndarray, chroma: Any, options: ColorizeOptions, spent: float
) -> FileResult:
    """Enlarge one file's working-scale chroma (2, h, w) along its luma and write the result;
    ``spent``: seconds already spent on it (loading, its share of the model calls)."""
    t1 = time.perf_counter()
    try:
        with checks_held():
            rgb = full_resolution(loaded.gray, small, chroma, options)
    except (RuntimeError, MemoryError) as e:  # out of memory on a huge photo: report, go on with the rest
        return FileResult(job, n, "failed", spent, f"{job.src}: colorizing failed ({first_line(e)})")
    made = missing_folders(job.dst.parent)
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        save_result(rgb, loaded, job.dst)
    except (OSError, ValueError) as e:  # disk full, permissions, metadata the format refuses
        remove_empty(made)  # a folder made for this result alone goes with it
        reason = getattr(e, "strerror", None) or first_line(e)
        # Every later file would fail the same way: the batch stops here.
        stops = f"{job.dst.parent}: {reason}" if getattr(e, "errno", None) in STOP_ERRNOS else None
        error = f"{job.src}: cannot write {job.dst}: {reason}"
        return FileResult(job, n, "failed", spent + time.perf_counter() - t1, error, stops=stops)
    del rgb  # before the next file is enlarged
    note = "; ".join(part for part in (loaded.note, format_note(loaded, job.dst)) if part) or None
    return FileResult(job, n, "ok", spent + time.perf_counter() - t1, note=note)
