"""`colorcli eval`: scoring a model against the gray-copy baseline, and the table it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from colorcli.cli import DataDir, Debug, Device, DeviceName, Mirror, ModelName, _Command, _run, _stderr, _value, app
from colorcli.errors import printable


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _share(ratio: float | None) -> str:
    """A colour share for tables: two decimals, or n/a where the truth has no colour."""
    return "n/a" if ratio is None else f"{ratio:.2f}"


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
    data_dir: DataDir = None,
    mirror: Mirror = None,
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

    def body() -> int:
        from colorcli.checkpoint import model_source
        from colorcli.data import CIFAR_NAMES
        from colorcli.evaluate import EvalRequest, check_has_images, run_eval, undertrained_hint

        _refuse_clashes(grid, overwrite, holdout, full_res, per_image, scale)
        if not holdout and dataset not in CIFAR_NAMES and Path(dataset).is_dir():
            check_has_images(Path(dataset))  # an empty folder is a usage error, as for colorize
        given = dataset if _from_command_line(ctx, "dataset") else None
        # --holdout scores a model on the split its own run held out: the split and the model
        # come from the same file, which the default dataset's name does not choose.
        source = model_source(checkpoint, model_name, given if holdout else dataset)
        request = EvalRequest(
            source, dataset, given, holdout, full_res, per_image, scale, limit, grid, data_dir, mirror, device
        )
        result = run_eval(request)
        if json_out:
            print(json.dumps(result))
        else:
            _print_table(result)
        # The colour originals' share where there are black-and-white ones: those have no colour to give.
        share = result["color_colorfulness_ratio"] if result["bw_originals"] else result["colorfulness_ratio"]
        hint = undertrained_hint(share) if checkpoint is not None else None  # a shipped model is as trained as it gets
        if hint:
            _stderr().print(hint, style="yellow", markup=False)
        return 1 if result.get("unreadable") else 0  # some inputs failed, as colorize says it

    raise typer.Exit(_run(body, debug))


def _refuse_clashes(
    grid: Path | None, overwrite: bool, holdout: bool, full_res: bool, per_image: bool, scale: int | None
) -> None:
    """Refuse a --grid file that exists (without --overwrite) and options that do not go together."""
    from colorcli.batch import check_output_file
    from colorcli.errors import UsageError

    if grid is not None:
        check_output_file(grid, ".png")
        if grid.exists() and not overwrite:
            raise UsageError(f"{grid}: exists; --overwrite replaces it")
    if holdout and full_res:
        raise UsageError("--holdout scores the run's validation split at its tile; --full-res scores a photo folder")
    if per_image and not full_res:
        raise UsageError("--per-image scores photos at their own size: add --full-res")
    if scale is not None and not full_res:
        raise UsageError("--scale is the working scale of --full-res photos: add --full-res")


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
