"""The `colorcli` command line: Typer options mapped onto library calls, nothing more.

torch is imported inside the commands so that `colorcli --help` stays instant.
Exit codes: 0 ok, 1 some inputs failed or an error, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from colorcli import __version__
from colorcli.errors import ColorcliError, printable

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
    help="Colorize grayscale photos with a small PyTorch model.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _stderr():
    from colorcli.console import stderr_console

    return stderr_console()


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _share(ratio: float | None) -> str:
    """A colour share for tables: two decimals, or n/a where the truth has no colour."""
    return "n/a" if ratio is None else f"{ratio:.2f}"


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
    except KeyboardInterrupt:
        _stderr().print("colorcli: interrupted")
        raise typer.Exit(130) from None


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
    """Colorize grayscale photos with a small PyTorch model."""


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


class _TrainCommand(_Command):
    """train's options default to None, "not given": a new run takes the defaults kept in the
    config dataclasses, a resumed run its own settings. Its help shows those defaults, read
    from the dataclasses when the help is drawn (config.py, which needs no torch)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from colorcli.config import shown_defaults

        settings, model = shown_defaults()
        kept = [(p, p.default, p.help) for p in self.params]
        try:
            for p in self.params:
                if p.default is None and settings.get(p.name) is not None:
                    p.default = settings[p.name]  # shown as [default: ...], as an option's own default is
                if p.help and "{" in p.help:
                    p.help = p.help.format(**model)
            super().format_help(ctx, formatter)
        finally:
            for p, default, text in kept:
                p.default, p.help = default, text


@app.command(
    cls=_TrainCommand,
    epilog="Examples:\n\n"
    "colorcli train --dataset cifar10 --out runs/c10    (downloads CIFAR-10 once)\n\n"
    "colorcli train --dataset ~/Pictures/family --epochs 30    (your own colour photos, any size)\n\n"
    "colorcli train --resume runs/c10/last.pt    (go on where it stopped)\n\n"
    "colorcli train --init default --dataset ~/Pictures/family --epochs 5    (adapt the shipped model)",
)
def train(
    dataset: Annotated[
        str | None, typer.Option(help="cifar10, cifar100, or a folder of your own colour images.")
    ] = None,
    arch: Annotated[
        Arch | None, typer.Option(help="unet (default) or seed (the original Keras autoencoder).", show_default=False)
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Passes over the training split.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Images per optimizer step (global under torchrun).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Peak learning rate (one-cycle) or start rate (plateau).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder for best.pt, last.pt and history.json.")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue a run from its last.pt, with the settings it started with (and in its folder)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace the run already in --out (default: refuse).")
    ] = False,
    device: Device = DeviceName.auto,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, shuffles, flips and initial weights.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Download/cache folder (default: $COLORCLI_DATA_DIR, else ~/.cache/colorcli).")
    ] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Base URL of a CIFAR mirror (or set COLORCLI_CIFAR_MIRROR).")
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.9, help="Share of images held out for validation (at least one image)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Use only the first N images (quick trials).")] = None,
    width: Annotated[
        int | None,
        typer.Option(
            min=4, help="Channels of the first level (doubles per level); default {width}.", show_default=False
        ),
    ] = None,
    head: Annotated[
        Head | None,
        typer.Option(help="unet output: bins (classify chrominance, the default) or regress.", show_default=False),
    ] = None,
    loss: Annotated[
        Loss | None,
        typer.Option(
            help="bins: ce (default) or psnr; regress: mse (default), l1, huber, logmse or psnr; seed: mse. "
            "psnr scores the output RGB as shipped (see --vivid). With --init: the starting model's unless given."
        ),
    ] = None,
    vivid: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="With --loss psnr: dB of reward per unit of output colorfulness (a CIFAR image has about 30). "
            "Default {vivid:g}, or the starting model's with --init.",
        ),
    ] = None,
    norm: Annotated[
        Norm | None,
        typer.Option(help="unet normalisation: batch (the default) or group (batch-independent).", show_default=False),
    ] = None,
    aux_logmse: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Weight of a per-image log-MSE term added to the bins head's ce loss. "
            "Default {aux_logmse:g}, or the starting model's with --init.",
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune: start from these weights (a file, or a shipped model: default, photo, cifar10); "
            "architecture and decoding come with them (--arch, --width, --head and --norm are refused)."
        ),
    ] = None,
    skip_gray: Annotated[
        bool | None,
        typer.Option(
            "--skip-gray/--keep-gray",
            metavar="",
            help="Leave black-and-white originals out of training (validation keeps them).",
        ),
    ] = None,
    zoom: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of training images shown zoomed in each epoch (a random square crop, resized back), "
            "as a 32x32 tile of a photo shows part of a scene.",
        ),
    ] = None,
    zoom_min: Annotated[
        float | None, typer.Option(min=0.05, max=1.0, help="Smallest zoomed crop, as a share of the image side.")
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=6,
            help="unet 2x downsamplings (default {depth}); with --init, grows the model.",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        bool | None,
        typer.Option(
            "--context/--no-context",
            help="unet global-context branch (scene features fused into every position); with --init, grows it.",
            show_default=False,
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(min=8, help="Side of the model's input tiles, in pixels (default {tile}).", show_default=False),
    ] = None,
    scale: Annotated[
        int | None,
        typer.Option(
            min=8, help="Working scale colorize uses by default for this model (default {scale}).", show_default=False
        ),
    ] = None,
    scale_min: Annotated[
        int | None,
        typer.Option(min=8, help="Train on random tiles of photos at working scales from --scale-min to --scale-max."),
    ] = None,
    scale_max: Annotated[
        int | None, typer.Option(min=8, help="Largest working scale of training tiles (a folder is kept at this size).")
    ] = None,
    mix: Annotated[
        str | None, typer.Option(help="A second dataset (cifar10, cifar100 or a folder) mixed into every batch.")
    ] = None,
    mix_share: Annotated[
        float | None, typer.Option(min=0.0, max=0.95, help="Share of every batch drawn from --mix.")
    ] = None,
    balance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Draw a folder's subfolders more evenly: 0 every image equally often, 1 every subfolder.",
        ),
    ] = None,
    schedule: Annotated[Schedule | None, typer.Option(help="Learning-rate schedule.")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile", metavar="", help="Compile the model with torch.compile.")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: cores / local processes).")] = None,
    debug: Debug = False,
) -> None:
    """Train a colorizer on CIFAR or your own images; keeps the best checkpoint."""
    arch, head, loss, norm, schedule, device = map(_value, (arch, head, loss, norm, schedule, device))

    def body() -> None:
        from colorcli.data import CIFAR_NAMES
        from colorcli.run import ModelOptions, TrainConfig
        from colorcli.train import Interrupted
        from colorcli.train import train as run_training

        def where(spec: str | None) -> str | None:
            """A folder dataset as an absolute path, so --resume (and --mix) work from any folder."""
            return spec if spec is None or spec in CIFAR_NAMES or not Path(spec).is_dir() else str(Path(spec).resolve())

        model = ModelOptions(
            arch=arch,
            width=width,
            depth=depth,
            head=head,
            loss=loss,
            norm=norm,
            aux_logmse=aux_logmse,
            vivid=vivid,
            context=context,
            tile=tile,
            scale=scale,
        )
        cfg = TrainConfig(
            dataset=where(dataset),
            data_dir=str(data_dir) if data_dir else None,
            mirror=mirror,
            out=None if out is None else str(out),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            schedule=schedule,
            val_fraction=val_fraction,
            limit=limit,
            seed=seed,
            device=device,
            compile=compile,
            threads=threads,
            init=init,
            skip_gray=skip_gray,
            zoom=zoom,
            zoom_min=zoom_min,
            scale_min=scale_min,
            scale_max=scale_max,
            mix=mix if mix is None or mix in CIFAR_NAMES else str(Path(mix).resolve()),
            mix_share=mix_share,
            balance=balance,
        )
        try:
            with _sigterm_interrupts():  # also while decoding or downloading, before training's own handler
                run_training(cfg, model, resume=resume, console=_stderr(), overwrite=overwrite)
        except Interrupted as e:
            if os.environ.get("RANK", "0") == "0":  # under torchrun, once
                _stderr().print(f"colorcli: {printable(str(e))}", markup=False)
            raise typer.Exit(e.exit_code) from None

    _run(body, debug)


@app.command(
    "eval",
    cls=_Command,
    epilog="Examples:\n\n"
    "colorcli eval --dataset cifar10    (the shipped model on the CIFAR-10 test split)\n\n"
    "colorcli eval --checkpoint runs/c10/best.pt --dataset my-photos/ --full-res --grid grid.png",
)
def evaluate(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint (.pt or .safetensors) (default: shipped model).")
    ] = None,
    model_name: ModelName = None,
    dataset: Annotated[
        str,
        typer.Option(
            help="cifar10, cifar100 (their test splits) or a folder of colour images. "
            "With --holdout: the run's own dataset unless given."
        ),
    ] = "cifar10",
    data_dir: Annotated[
        Path | None, typer.Option(help="Download/cache folder (default: $COLORCLI_DATA_DIR, else ~/.cache/colorcli).")
    ] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Base URL of a CIFAR mirror (or set COLORCLI_CIFAR_MIRROR).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Score only the first N images.")] = None,
    grid: Annotated[Path | None, typer.Option(help="Write a PNG of rows gray | colorized | ground truth.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", metavar="", help="Print one JSON object instead of a table.")
    ] = False,
    holdout: Annotated[
        bool,
        typer.Option(
            "--holdout", metavar="", help="Score only the validation split the checkpoint's training held out."
        ),
    ] = False,
    full_res: Annotated[
        bool, typer.Option("--full-res", metavar="", help="Folder images at their own size, through the tiling path.")
    ] = False,
    scale: Annotated[
        int | None, typer.Option(min=8, help="Working scale for --full-res (see colorize --scale).")
    ] = None,
    per_image: Annotated[
        bool, typer.Option("--per-image", metavar="", help="With --full-res: also score each photo on its own.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace an existing --grid file.")
    ] = False,
    device: Device = DeviceName.auto,
    debug: Debug = False,
) -> None:
    """Score a checkpoint against the gray-copy baseline: PSNR, SSIM, colorfulness."""
    device = _value(device)

    def body() -> None:
        import torch

        from colorcli.batch import check_output_file
        from colorcli.checkpoint import load_model, model_source, pick_device
        from colorcli.data import CIFAR_NAMES, load_dataset
        from colorcli.errors import UsageError, warn
        from colorcli.evaluate import (
            check_has_images,
            evaluate_photos,
            evaluate_tensor,
            holdout_images,
            save_grid,
            save_photo_grid,
            undertrained_hint,
        )
        from colorcli.images import find_images, plugin_note
        from colorcli.tiling import ColorizeOptions

        if grid is not None:
            check_output_file(grid, ".png")
            if grid.exists() and not overwrite:
                raise UsageError(f"{grid}: exists; --overwrite replaces it")
        if holdout and full_res:
            raise UsageError("--holdout scores the run's 32x32 validation split; --full-res scores a photo folder")
        if per_image and not full_res:
            raise UsageError("--per-image scores photos at their own size: add --full-res")
        if scale is not None and not full_res:
            raise UsageError("--scale is the working scale of --full-res photos: add --full-res")
        if not holdout and dataset not in CIFAR_NAMES and Path(dataset).is_dir():
            check_has_images(Path(dataset))  # an empty folder is a usage error, as for colorize
        model = load_model(model_source(checkpoint, model_name, dataset)).to(pick_device(device))
        data = None
        if holdout:
            given = dataset if _from_command_line(ctx, "dataset") else None  # else the run's own
            data = holdout_images(checkpoint, given, data_dir, mirror)
            if limit:
                data = data[:limit]
            result = evaluate_tensor(model, data.to(next(model.parameters()).device))
        elif full_res:
            if not Path(dataset).is_dir():
                raise UsageError(f"{dataset}: not a folder; --full-res scores a folder of colour photos")
            heic: list[Path] = []
            paths = find_images(Path(dataset), needing_plugin=heic)[:limit]
            if heic:
                warn(f"{dataset}: {plugin_note(heic)}")
            if not paths:
                raise UsageError(f"{dataset}: no images found (no files with an image suffix Pillow reads)")
            opts = ColorizeOptions() if scale is None else ColorizeOptions(scale=scale)
            result = evaluate_photos(model.cpu(), paths, opts, per_image=per_image)
        else:
            data = load_dataset(dataset, data_dir, train=False, mirror=mirror, limit=limit)
            result = evaluate_tensor(model, data.to(next(model.parameters()).device))
        if grid is not None and full_res:
            save_photo_grid(model.cpu(), paths, grid, opts)
        elif grid is not None:
            shuffled = data.cpu()[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))]
            save_grid(model.cpu(), shuffled, grid)
        if json_out:
            print(json.dumps(result))
        else:
            _print_table(result)
        # The colour originals' share where there are black-and-white ones: those have no colour to give.
        share = result["color_colorfulness_ratio"] if result["bw_originals"] else result["colorfulness_ratio"]
        hint = undertrained_hint(share)
        if hint:
            _stderr().print(hint, style="yellow", markup=False)

    _run(body, debug)


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"{r['images']} images")
    for col in ("", "PSNR dB", "PSNR pooled dB", "SSIM", "colorfulness"):
        t.add_column(col, justify="right")
    t.add_row("model", f"{r['psnr']:.2f}", f"{r['psnr_pooled']:.2f}", f"{r['ssim']:.4f}", f"{r['colorfulness']:.1f}")
    t.add_row(
        "gray copy",
        f"{r['gray_psnr']:.2f}",
        f"{r['gray_psnr_pooled']:.2f}",
        f"{r['gray_ssim']:.4f}",
        f"{r['gray_colorfulness']:.1f}",
    )
    t.add_row("ground truth", "", "", "", f"{r['truth_colorfulness']:.1f}")
    console = Console()
    console.print(t)
    bw = r["bw_originals"]
    if bw and r.get("color_psnr") is not None:
        # Black-and-white originals cost any colorizer PSNR (their gray copy is exact), so the
        # figure that says how well it colours is the one over the colour originals.
        console.print(
            f"headline, over the {r['images'] - bw} colour originals: {r['color_psnr_gain_db']:+.2f} dB per image "
            f"over the gray copy; colour {_share(r['color_colorfulness_ratio'])} of the truth's",
            soft_wrap=True,
        )
        console.print(
            f"over all {r['images']} images (the table): {r['psnr_gain_db']:+.2f} dB per image; "
            f"colour {_share(r['colorfulness_ratio'])}. Not the headline: black-and-white originals ({bw} here) "
            "count against any colorizer, as their gray copy is exact and any colour costs PSNR there",
            soft_wrap=True,
        )
    else:
        console.print(
            f"gain over the gray copy: {r['psnr_gain_db']:+.2f} dB per image; "
            f"colour {_share(r['colorfulness_ratio'])} of the truth's",
            soft_wrap=True,
        )
    if bw and r.get("color_psnr") is None:
        console.print(f"all {bw} originals are black-and-white: there is no true colour to score")
    if "per_image" in r:
        photos = Table(title="each photo")
        for col in ("file", "PSNR dB", "gray copy dB", "gain dB", "SSIM", "colour / truth"):
            photos.add_column(col, justify="left" if col == "file" else "right", overflow="fold")
        from colorcli.evaluate import photo_folder

        files = [Path(p["file"]) for p in r["per_image"]]
        folder = photo_folder(files)  # names within it tell a/x.jpg from b/x.jpg
        for p, file in zip(r["per_image"], files, strict=True):
            photos.add_row(
                escape(printable(file.absolute().relative_to(folder).as_posix())),
                f"{p['psnr']:.2f}",
                f"{p['gray_psnr']:.2f}",
                f"{p['psnr_gain_db']:+.2f}",
                f"{p['ssim']:.4f}",
                _share(p["colorfulness_ratio"]),
            )
        console.print(photos)


@app.command(
    cls=_Command,
    epilog="Examples:\n\n"
    "colorcli models    (a table: name, training data, tile, working scale, figures)\n\n"
    "colorcli colorize photo.jpg --model cifar10    (use one by name)",
)
def models(
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object per model.")] = False,
    debug: Debug = False,
) -> None:
    """List the models shipped with colorcli: training data and figures."""

    def body() -> None:
        from colorcli.checkpoint import shipped_models

        rows = shipped_models()
        if json_out:
            for row in rows:
                print(json.dumps(row))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title="shipped models (--model NAME)")
        for col in ("name", "trained on", "tile", "scale", "figures"):
            t.add_column(col, overflow="fold")
        for row in rows:
            name = row["name"] + (" (default)" if row["default"] else "")
            t.add_row(name, row["data"], str(row["tile"]), str(row["scale"]), row["figures"])
        Console().print(t)

    _run(body, debug)


@app.command(
    cls=_Command,
    epilog="Example:\n\n"
    "colorcli export runs/c10/best.pt -o my-model.safetensors --temperature 0.5, then "
    "colorcli colorize photo.jpg --checkpoint my-model.safetensors",
)
def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint (.pt, or a .safetensors model) to export.", show_default=False)
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .safetensors file to write.", show_default=False)],
    temperature: Annotated[
        float | None, typer.Option(min=0.01, max=1.0, help="Annealed-mean temperature of the bins head (1 = mean).")
    ] = None,
    prior_correction: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="How much of the rebalancing prior to divide out (1 = all).")
    ] = None,
    saturation: Annotated[float | None, typer.Option(min=0.0, help="Chrominance factor stored in the model.")] = None,
    tile_saturation: Annotated[
        float | None, typer.Option(min=0.0, help="Extra chrominance factor for photos colorized in several tiles.")
    ] = None,
    confidence: Annotated[
        float | None, typer.Option(min=0.0, help="Fade colour where the bins posterior is flat (0 = off).")
    ] = None,
    scale: Annotated[int | None, typer.Option(min=8, help="colorize's default working scale for this model.")] = None,
    half: Annotated[
        bool, typer.Option("--half", metavar="", help="Store the weights as float16 (half the file size).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace an existing output file.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Export a checkpoint to a weights-only .safetensors model, optionally with new decoding settings."""

    def body() -> None:
        from colorcli.checkpoint import export_model

        decode = {
            "temperature": temperature,
            "prior_correction": prior_correction,
            "saturation": saturation,
            "tile_saturation": tile_saturation,
            "confidence": confidence,
            "scale": scale,
        }
        given = {k: v for k, v in decode.items() if v is not None}
        export_model(checkpoint, output, overwrite=overwrite, half=half, **given)
        _stderr().print(f"wrote {printable(str(output))}", markup=False)

    _run(body, debug)


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
        typer.Argument(help="Image files, folders or glob patterns; - reads standard input.", show_default=False),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output file (one input) or folder (a trailing / makes it one); - writes standard output. "
            "Default: each result beside its input, as NAME-color.png.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint (.pt or .safetensors) (default: shipped model).")
    ] = None,
    model_name: ModelName = None,
    device: Device = DeviceName.auto,
    scale: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="Shorter side in pixels at which the model sees each photo (default: the model's own, "
            "`colorcli models` lists it); larger finds finer colour regions, smaller gives each tile more context.",
        ),
    ] = None,
    saturation: Annotated[
        float, typer.Option(min=0.0, help="Multiply the colour strength (1.0 = as the model is set to colour photos).")
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
        from colorcli.batch import check_output_folders, plan_jobs
        from colorcli.errors import UsageError
        from colorcli.runner import STDIO, plan_stdio
        from colorcli.tiling import ColorizeOptions

        if any(not item.strip() for item in inputs) or (output is not None and not output.strip()):
            raise UsageError("an empty path was given (an unset variable?); name the files, folders or -o")
        stdio, jobs = None, []
        if STDIO in inputs or output == STDIO:  # one image through a pipe: checked here, run below
            stdio = plan_stdio(inputs, output, fmt, as_json=json_out, stdin=sys.stdin, stdout=sys.stdout)
        else:
            out = None if output is None else Path(output)
            as_dir = output is not None and output.endswith(("/", os.sep))
            notes: list[str] = []
            paths = [Path(item) for item in inputs]
            jobs = plan_jobs(paths, out, recursive=recursive, fmt=fmt, output_is_dir=as_dir, notes=notes)
            for note in notes:
                _stderr().print(f"note: {printable(note)}", markup=False)
            check_output_folders(jobs, out)
        from colorcli.checkpoint import load_model, model_source, pick_device

        model = load_model(model_source(checkpoint, model_name)).to(pick_device(device))
        given = {"scale": scale, "max_pixels": max_pixels}
        opts = ColorizeOptions(saturation=saturation, **{k: v for k, v in given.items() if v is not None})
        err = _stderr()
        with _sigterm_interrupts():
            if stdio is not None:
                from colorcli.runner import run_stdio

                streams = {"stdin": sys.stdin.buffer if stdio.src is None else None, "stdout": sys.stdout.buffer}
                report = run_stdio(model, stdio, opts, overwrite=overwrite, err_console=err, **streams)
            else:
                report = run_batch(model, jobs, opts, overwrite=overwrite, as_json=json_out, err_console=err)
        single = stdio if stdio is not None else jobs[0] if len(jobs) == 1 else None
        if single is not None and report.skipped and not json_out:
            err.print(f"skipped: {printable(str(single.dst))} exists (--overwrite replaces it)", markup=False)
        if len(jobs) > 1 and not json_out:
            left = len(jobs) - report.done - report.skipped - report.failed - report.left_out
            err.print(
                f"{report.done} colorized, {report.skipped} skipped (exist; --overwrite replaces), "
                f"{report.failed} failed"
                + (f", {report.left_out} left out (not image files)" if report.left_out else "")
                + (f", {left} not started" if left else "")
            )
        # A batch run again skips the results it wrote; one file is simply done again.
        again = "; the same command again goes on from there" if len(jobs) > 1 else ""
        if report.interrupted:
            err.print(f"colorcli: interrupted{again}")
        if report.stopped and len(jobs) > 1:  # one file: its own error line has said why
            err.print(f"colorcli: error: stopped: {printable(report.stopped)}{again}", style="red", markup=False)
        return report.exit_code

    code = _run(body, debug)
    raise typer.Exit(code)


def run_batch(
    model: Any,
    jobs: list[Any],
    options: Any,
    overwrite: bool = False,
    as_json: bool = False,
    err_console: Any = None,
    batch_pixels: int = 16_000_000,
    batch_files: int = 64,
    batch_tiles: int = 128,
):  # -> runner.BatchReport
    """Run ``runner.run_jobs`` as colorize shows it: a progress bar and per-file errors and notes on
    ``err_console`` (None: silent), or with ``as_json`` one JSON line per file on stdout, in
    input order. Ctrl-C (or SIGTERM, see ``_sigterm_interrupts``) ends the batch with what is done.
    batch_*: how files are grouped (see ``runner.BatchLimits``)."""
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
            for result in run_jobs(model, jobs, options, overwrite, limits):
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


def _say(console: Any, result: Any, as_json: bool) -> None:
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


def main() -> None:
    app(prog_name="colorcli")


if __name__ == "__main__":
    sys.exit(main())
