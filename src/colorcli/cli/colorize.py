"""`colorcli colorize`, and ``run_batch``, which runs a batch as the command shows it: the
progress bar, messages and JSON lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from colorcli.cli import (
    Debug,
    DeviceName,
    ImageFormat,
    ModelName,
    _Command,
    _run,
    _sigterm_interrupts,
    _stderr,
    _value,
    app,
)
from colorcli.errors import printable

if TYPE_CHECKING:  # for the annotations only: the command imports torch-using modules when it runs
    from concurrent.futures import Future

    from rich.console import Console

    from colorcli.batch import Job
    from colorcli.runner import BatchReport, FileResult
    from colorcli.tiling import ColorizeOptions


@app.command(
    cls=_Command,
    epilog="Examples:\n\n"
    "colorcli colorize old-photo.jpg    (writes old-photo-color.png beside it)\n\n"
    "colorcli colorize scans/ -o coloured/ --recursive    (a folder and its subfolders)\n\n"
    "cat old.png | colorcli colorize - -o - > new.png    (standard input to standard output)",
)
def colorize(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT", help="Image files, folders or glob patterns; - reads standard input.", show_default=False
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Output file (one input) or folder (a trailing / makes it one); - writes standard output. "
            "Default: each result beside its input, as NAME-color.png.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint (.pt, .safetensors, or .onnx for onnxruntime) (default: shipped model)."),
    ] = None,
    model_name: ModelName = None,
    device: Annotated[
        DeviceName,
        typer.Option(
            help="auto: a shipped model or an .onnx file runs on the CPU through onnxruntime (no torch to start); "
            ".pt and .safetensors models on CUDA, then MPS, then CPU."
        ),
    ] = DeviceName.auto,
    scale: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="Shorter side in pixels at which the model sees each photo (default: the model's own, "
            "`colorcli models` lists it); larger finds finer colour regions, smaller gives each tile more context.",
        ),
    ] = None,
    saturation: Annotated[
        float,
        typer.Option(
            min=0.0, max=1000.0, help="Multiply the colour strength (1.0 = as the model is set to colour photos)."
        ),
    ] = 1.0,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", metavar="", help="Include images in subfolders of input folders.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace existing outputs (default: skip them).")
    ] = False,
    fmt: Annotated[
        ImageFormat,
        typer.Option(
            "--format", case_sensitive=False, help="Output format for folder outputs, results beside inputs and -o -."
        ),
    ] = ImageFormat.png,
    json_out: Annotated[
        bool, typer.Option("--json", metavar="", help="Print one JSON line per file: input, output, status, seconds.")
    ] = False,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Refuse larger images (decompression-bomb guard) (default: 200M).")
    ] = None,
    debug: Debug = False,
) -> None:
    """Colorize photos of any size; luminance stays the input's."""
    fmt, device = _value(fmt), _value(device)

    def body() -> int:
        from colorcli.errors import UsageError
        from colorcli.stdio import STDIO, plan_stdio
        from colorcli.tiling import ColorizeOptions

        if any(not item.strip() for item in inputs) or (output is not None and not output.strip()):
            raise UsageError("an empty path was given (an unset variable?); name the files, folders or -o")
        stdio, jobs = None, []
        if STDIO in inputs or output == STDIO:  # one image through a pipe: checked here, run below
            stdio = plan_stdio(inputs, output, fmt, as_json=json_out, stdin=sys.stdin, stdout=sys.stdout)
        else:
            jobs = _planned_jobs(inputs, output, recursive, fmt)
        from colorcli.checkpoint import open_colorizer
        from colorcli.runner import cancel_damage_checks, start_damage_checks

        checks = start_damage_checks(jobs, overwrite)  # beside the model's loading, on the idle core
        try:
            model = open_colorizer(checkpoint, model_name, device)
        except BaseException:  # a bad checkpoint, a missing device, Ctrl-C: exit without checking the folder
            cancel_damage_checks(checks)
            raise
        given = {"scale": scale, "max_pixels": max_pixels}
        opts = ColorizeOptions(saturation=saturation, **{k: v for k, v in given.items() if v is not None})
        err = _stderr()
        with _sigterm_interrupts():
            if stdio is not None:
                from colorcli.stdio import run_stdio

                streams = {"stdin": sys.stdin.buffer if stdio.src is None else None, "stdout": sys.stdout.buffer}
                report = run_stdio(model, stdio, opts, overwrite, err_console=err, as_json=json_out, **streams)
            else:
                report = run_batch(model, jobs, opts, overwrite, json_out, err, checks=checks)
        single = stdio if stdio is not None else jobs[0] if len(jobs) == 1 else None
        _say_how_it_ended(err, report, single, len(jobs), json_out)
        return report.exit_code

    code = _run(body, debug)
    raise typer.Exit(code)


def _planned_jobs(inputs: list[str], output: str | None, recursive: bool, fmt: str) -> list[Job]:
    """The batch's jobs (``batch.plan_jobs``), its notes said on stderr and its output folders checked."""
    from colorcli.batch import check_output_folders, plan_jobs

    out = None if output is None else Path(output)
    as_dir = output is not None and output.endswith(("/", os.sep))
    notes: list[str] = []
    jobs = plan_jobs(
        [Path(item) for item in inputs], out, recursive=recursive, fmt=fmt, output_is_dir=as_dir, notes=notes
    )
    for note in notes:
        _stderr().print(f"note: {printable(note)}", markup=False)
    check_output_folders(jobs, out)
    return jobs


def _say_how_it_ended(err: Console, report: BatchReport, single: Any, jobs: int, as_json: bool) -> None:
    """The closing lines on stderr: a lone file's skip, a batch's counts, an interrupt or a stop.
    single: the one job (or pipe) of a one-file run, else None; jobs: how many the batch had."""
    if single is not None and report.skipped and not as_json:
        err.print(f"skipped: {printable(str(single.dst))} exists (--overwrite replaces it)", markup=False)
    if jobs > 1 and not as_json:
        left = jobs - report.done - report.skipped - report.failed - report.left_out
        err.print(
            f"{report.done} colorized, {report.skipped} skipped (exist; --overwrite replaces), "
            f"{report.failed} failed"
            + (f", {report.left_out} left out (folders, FIFOs, devices)" if report.left_out else "")
            + (f", {left} not started" if left else "")
        )
    # A batch run again skips the results it wrote; one file is simply done again.
    again = "; the same command again goes on from there" if jobs > 1 else ""
    if report.interrupted:
        err.print(f"colorcli: interrupted{again}")
    if report.stopped and jobs > 1:  # one file: its own error line has said why
        err.print(f"colorcli: error: stopped: {printable(report.stopped)}{again}", style="red", markup=False)


def run_batch(
    model: Any,
    jobs: list[Job],
    options: ColorizeOptions,
    overwrite: bool = False,
    as_json: bool = False,
    err_console: Console | None = None,
    batch_pixels: int = 16_000_000,
    batch_files: int = 64,
    batch_tiles: int = 128,
    checks: dict[int, Future[str | None]] | None = None,
) -> BatchReport:
    """Run ``runner.run_jobs`` as colorize shows it: a progress bar and per-file errors and notes on
    ``err_console`` (None: silent), or with ``as_json`` one JSON line per file on stdout, in
    input order. Ctrl-C (or SIGTERM, see ``_sigterm_interrupts``) ends the batch with what is done.
    batch_*: how files are grouped (see ``runner.BatchLimits``); checks: see ``runner.run_jobs``."""
    import time

    from colorcli.console import progress_bar
    from colorcli.runner import BatchLimits, BatchReport, run_jobs

    report = BatchReport()
    progress = progress_bar(
        err_console,
        "colorizing",
        "{task.fields[ips]:.1f} img/s",
        # Logs (not a terminal) get the summary line only; a bar there would be printed once, at the end.
        disable=as_json or err_console is None or len(jobs) < 2 or not err_console.is_terminal,
    )
    lines = _InOrder()
    limits = BatchLimits(pixels=batch_pixels, files=batch_files, tiles=batch_tiles)
    with progress, lines:
        task = progress.add_task("", total=len(jobs), ips=0.0)
        t_start = time.perf_counter()
        try:
            for result in run_jobs(model, jobs, options, overwrite, limits, checks):
                report.count(result.status)
                report.stopped = result.stops or report.stopped
                if err_console is not None:
                    _say(progress.console, result, as_json)
                if as_json:
                    lines.add(result.position, json.dumps(result.record()))
                rate = report.finished / max(time.perf_counter() - t_start, 1e-9)
                progress.update(task, completed=report.finished, ips=rate)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what is written is complete; say how far it got
            report.interrupted = True
    return report


def _say(console: Console, result: FileResult, as_json: bool) -> None:
    """A file's error (unless the batch's stop says it) and, without --json, its note, on stderr."""
    if result.status == "ok" and result.note and not as_json:
        console.print(f"note: {printable(f'{result.job.src}: {result.note}')}", highlight=False, markup=False)
    if result.error and not result.quiet:
        console.print(f"error: {printable(result.error)}", style="red", highlight=False, soft_wrap=True, markup=False)
    if result.status == "left out" and result.note and not as_json:
        console.print(f"note: {printable(result.note)}", highlight=False, soft_wrap=True, markup=False)


class _InOrder:
    """JSON lines printed in input order: a file finished early (skipped, failed to load) waits for
    the files before it, which finish with their group. Leaving (an interrupt included) prints
    the lines still waiting, in order."""

    def __init__(self) -> None:
        self.ready: dict[int, str] = {}
        self.next = 0

    def add(self, position: int, line: str) -> None:
        self.ready[position] = line
        while self.next in self.ready:
            print(self.ready.pop(self.next), flush=True)
            self.next += 1

    def __enter__(self) -> _InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        for n in sorted(self.ready):
            print(self.ready.pop(n), flush=True)
