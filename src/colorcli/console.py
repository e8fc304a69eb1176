"""Where colorcli talks to people: one stderr console and one progress-bar builder.

Messages go to stderr so results piped from stdout (``-o -``, ``--json``) stay clean.
File names may hold ``[brackets]``; callers print them with ``markup=False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def stderr_console() -> Console:
    """The console for messages, warnings and progress: stderr, no highlighting, long lines
    kept whole (soft wrap) so a path is never broken across lines in a log."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def progress_bar(console: Console, label: str, rate: str, disable: bool, transient: bool = False) -> Progress:
    """A progress bar: ``label`` (a rich column template, e.g. ``"[bold]{task.description}"``),
    the bar, done/total, ``rate`` (another template, e.g. ``"{task.fields[ips]:.1f} img/s"``) and
    the time taken. ``disable`` where a bar would only clutter (logs, JSON output, one file)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if rate:
        columns.append(TextColumn(rate))
    return Progress(*columns, TimeElapsedColumn(), console=console, disable=disable, transient=transient)
