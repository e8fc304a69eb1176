"""The `colorcli` command line: Typer options mapped onto library calls, nothing more.

This package holds the app, its root options and what several commands share; each family
of commands has its module (colorize, evaluate, train, models), imported at the end to
register its commands on ``app``. torch is imported inside the commands (never by their
help) so that `colorcli --help` stays instant.
Exit codes: 0 ok, 1 some inputs failed or an error, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from colorcli import __version__
from colorcli.errors import EXIT_INTERRUPTED, ColorcliError, printable

if TYPE_CHECKING:
    from rich.console import Console

COMMAND_ORDER = ("colorize", "eval", "train", "models", "export")  # what a newcomer wants first


def _untyped_flags(params: list[Any]) -> list[Any]:
    """Flags take no value, so the help shows no type for them; Typer shows <bool> for the
    ones it adds itself (-h/--help, --install-completion, --show-completion)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Group(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER))

    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    help="Colorize grayscale photos with a small model that ships inside.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _stderr() -> Console:
    from colorcli.console import stderr_console

    return stderr_console()


_OUT_OF_MEMORY = "out of memory on the device: give it less at once (train: a smaller --batch-size) or use --device cpu"


def _no_torch() -> str:
    from colorcli.checkpoint import INSTALL_TORCH

    return f"this command needs PyTorch, which is not installed: {INSTALL_TORCH}"


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is the device or the host running out of memory (torch's OutOfMemoryError
    is a RuntimeError; its CPU allocator says so in a plain one)."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e)


def _run(fn: Callable[[], T], debug: bool) -> T:
    """Run a command body; ColorcliError becomes one line on stderr and its exit code."""
    try:
        return fn()
    except ColorcliError as e:
        if debug:
            raise
        if e.echo:
            _stderr().print(f"colorcli: error: {printable(str(e))}", style="red", markup=False)
        raise typer.Exit(e.exit_code) from None
    except OSError as e:  # a full disk or a vanished folder where no one line was prepared: still one
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        _stderr().print(f"colorcli: error: {printable(where + (e.strerror or str(e)))}", style="red", markup=False)
        raise typer.Exit(1) from None
    except (MemoryError, RuntimeError) as e:
        if debug or not _out_of_memory(e):
            raise
        _stderr().print(f"colorcli: error: {_OUT_OF_MEMORY}", style="red", markup=False)
        raise typer.Exit(1) from None
    except ModuleNotFoundError as e:
        if debug or e.name not in ("torch", "torchvision", "onnxruntime"):
            raise
        why = _no_torch() if e.name != "onnxruntime" else "onnxruntime is not installed: pip install onnxruntime"
        _stderr().print(f"colorcli: error: {why}", style="red", markup=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _stderr().print("colorcli: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Let SIGTERM (a closed terminal, `kill`, a job scheduler) stop like Ctrl-C while inside:
    the file being written is finished or its temporary file removed, and the exit code is 130.
    Signal handlers belong to the main thread; elsewhere (colorcli run from a worker) nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"colorcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Colorize grayscale photos with a small model that ships inside."""


# Choice options are Enums, so the help lists the choices and a typo is refused with them.
class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Arch(str, Enum):
    unet = "unet"
    seed = "seed"


class Head(str, Enum):
    bins = "bins"
    regress = "regress"


class Loss(str, Enum):
    ce = "ce"
    psnr = "psnr"
    mse = "mse"
    l1 = "l1"
    huber = "huber"
    logmse = "logmse"


class Norm(str, Enum):
    batch = "batch"
    group = "group"


class Schedule(str, Enum):
    onecycle = "onecycle"
    plateau = "plateau"


class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    jpeg = "jpeg"
    webp = "webp"
    tif = "tif"
    tiff = "tiff"
    bmp = "bmp"


def _value(option: Any) -> Any:
    """A choice option's plain string (Typer hands the command the Enum member); anything else as it is."""
    return option.value if isinstance(option, Enum) else option


Device = Annotated[DeviceName, typer.Option(help="auto: CUDA, then MPS, then CPU.")]
ModelName = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="A shipped model by name: photo (the default) or cifar10 (the default on CIFAR); "
        "`colorcli models` lists them.",
        show_default=False,
    ),
]
Debug = Annotated[bool, typer.Option("--debug", metavar="", help="Show a full traceback on errors.")]
# Where CIFAR is downloaded and folders' decoded images are cached (train and eval).
DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Download/cache folder (default: $COLORCLI_DATA_DIR, else $XDG_CACHE_HOME/colorcli, "
        "else ~/.cache/colorcli).",
    ),
]
Mirror = Annotated[str | None, typer.Option(help="Base URL of a CIFAR mirror (or set COLORCLI_CIFAR_MIRROR).")]


def main() -> None:
    app(prog_name="colorcli")


# The commands, each registering on app (after everything above, which they import).
from colorcli.cli import colorize, evaluate, models, train  # noqa: E402, F401
