"""`colorcli train`: its options, and its help, which shows the defaults a new run takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from colorcli.cli import (
    Arch,
    DataDir,
    Debug,
    Device,
    DeviceName,
    Head,
    Loss,
    Mirror,
    Norm,
    Schedule,
    _Command,
    _run,
    _sigterm_interrupts,
    _stderr,
    _value,
    app,
)
from colorcli.errors import printable
from colorcli.files import resolved


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
    data_dir: DataDir = None,
    mirror: Mirror = None,
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
    mix_native: Annotated[
        bool | None,
        typer.Option(
            "--mix-native",
            help="Lay --mix images at their own size, several to a tile (CIFAR: 4 to 64x64), not enlarged.",
        ),
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
            return spec if spec is None or spec in CIFAR_NAMES or not Path(spec).is_dir() else str(resolved(Path(spec)))

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
            mix=where(mix),
            mix_share=mix_share,
            mix_native=mix_native,
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
