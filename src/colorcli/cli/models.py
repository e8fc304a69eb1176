"""`colorcli models` (the shipped models) and `colorcli export` (a checkpoint to a .safetensors or .onnx model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from colorcli.cli import Debug, _Command, _run, _stderr, app
from colorcli.errors import printable


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
        for col in ("name", "trained on", "tile", "scale", "figures"):  # what each model is: --json's "model"
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
    "colorcli colorize photo.jpg --checkpoint my-model.safetensors\n\n"
    "colorcli export runs/c10/best.pt -o my-model.onnx    (colorize runs it through onnxruntime, "
    "without torch; needs pip install 'colorcli[onnx]')",
)
def export(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint (.pt, or a .safetensors model, or a shipped model's name) to export.", show_default=False
        ),
    ],
    # A str, not a Path: "-o models/" must reach the check as a folder (Path drops the slash).
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="The .safetensors file to write, or an .onnx file for colorize.", show_default=False
        ),
    ],
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
    """Export a checkpoint to a weights-only .safetensors model (or .onnx), optionally with new decoding settings."""

    def body() -> None:
        from colorcli.checkpoint import export_model, named_model_path

        decode = {
            "temperature": temperature,
            "prior_correction": prior_correction,
            "saturation": saturation,
            "tile_saturation": tile_saturation,
            "confidence": confidence,
            "scale": scale,
        }
        given = {k: v for k, v in decode.items() if v is not None}
        source = named_model_path(str(checkpoint))  # a shipped model by name ("photo") too
        export_model(source, output, overwrite=overwrite, half=half, **given)  # str: its trailing slash kept
        _stderr().print(f"wrote {printable(str(output))}", markup=False)

    _run(body, debug)
