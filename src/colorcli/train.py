"""Training: in-memory data, batched augmentation, resumable checkpoints, optional DDP.

The whole dataset is one uint8 tensor on the training device; every batch is
sliced, flipped and turned into (luma, colour) pairs there, so no per-sample
Python runs in the loop. Under torchrun each rank trains on a disjoint shard of
every epoch's shuffle and only rank 0 prints and writes files. What a run is (its
settings, folder, resuming, fine-tuning and the images it split) lives in run.py;
here: train an epoch, validate it, save it (the state it works on is ``loop.py``'s).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorcli.checkpoint import save_checkpoint
from colorcli.color import gray_to_rgb_u8, ycbcr_to_rgb_u8
from colorcli.console import progress_bar
from colorcli.data import iter_batches, make_pair
from colorcli.distributed import (
    Dist,
    StopFlag,
    all_sum,
    any_rank,
    barrier,
    init_distributed,
    leave,
    unwrapped,
    wrapped,
)
from colorcli.errors import EXIT_INTERRUPTED, FolderInUse, TrainingError, printable
from colorcli.evaluate import training_hint
from colorcli.files import atomic_write, missing_folders, remove_empty
from colorcli.loop import Loop, checkpoint_payload, prepare
from colorcli.metrics import psnr_per_image
from colorcli.model import Colorizer, ModelConfig, count_parameters
from colorcli.run import (  # TrainConfig, fine_tune_config and grown_model are also reached from here
    ModelOptions,
    TrainConfig,
    clear_replaced_run,
    count_of,
    fine_tune_config,
    grown_model,
    open_run,
    quoted,
)
from colorcli.sampling import MixBatches, Views, rank_order

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["Interrupted", "TrainConfig", "TrainResult", "fine_tune_config", "grown_model", "train"]


class Interrupted(Exception):
    """Training stopped on request after saving last.pt."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, resume_path: Path) -> None:
        super().__init__(
            f"interrupted; saved {resume_path}. Resume with: colorcli train --resume {quoted(resume_path)}"
        )
        self.resume_path = resume_path


@torch.no_grad()
def validate(
    model: torch.nn.Module, val: torch.Tensor, batch_size: int, d: Dist, autocast: Callable[[], torch.autocast]
) -> dict[str, float]:
    """Validation loss and mean per-image PSNR (model and gray copy), reduced over ranks."""
    bare = unwrapped(model)
    model.eval()
    shard = val[d.rank :: d.world]
    totals = torch.zeros(4, dtype=torch.float64)  # loss*n, psnr sum, gray psnr sum, n
    for rgb_u8 in shard.split(batch_size):
        y, rgb = make_pair(rgb_u8)
        with autocast():
            raw = model(y, raw=True)
        loss = bare.loss(raw, y, rgb)
        pred = ycbcr_to_rgb_u8(y, bare.chroma(raw, y))
        gray = gray_to_rgb_u8(y.byte())  # y is already the 8-bit luma
        n = rgb_u8.shape[0]
        totals += torch.tensor(
            [loss.item() * n, psnr_per_image(pred, rgb_u8).sum().item(), psnr_per_image(gray, rgb_u8).sum().item(), n],
            dtype=torch.float64,
        )
    all_sum(totals, d)
    model.train()
    n = max(totals[3].item(), 1.0)
    return {"val_loss": totals[0].item() / n, "val_psnr": totals[1].item() / n, "val_gray_psnr": totals[2].item() / n}


def _last_good(out: Path) -> str:
    last = out / "last.pt"
    return f"The last good checkpoint is {last}" if last.exists() else "No checkpoint was written yet"


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(out / "history.json", lambda f: f.write(json.dumps(history, indent=1).encode()))


def _progress(console: Console) -> Progress:
    return progress_bar(
        console,
        "[bold]{task.description}",
        "loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[ips]:.0f} img/s",
        # Logs (not a terminal) get one line per epoch instead; a bar there is printed again at the end.
        disable=console is None or not console.is_terminal,
    )


@dataclass
class TrainResult:
    best: Path
    model: Colorizer  # the final weights (every rank holds the same)


def train(
    cfg: TrainConfig,
    model: ModelConfig | ModelOptions,
    resume: Path | None = None,
    console: Console | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train (or resume) a run and write its checkpoints. Raises Interrupted on SIGINT/SIGTERM.

    Settings not given (None) take their defaults, or the starting model's with ``cfg.init``
    (``model`` as ``ModelOptions``; a ``ModelConfig`` is taken whole). A run folder that
    already holds a run is refused unless ``overwrite``, so a forgotten ``--resume`` or a
    reused ``--out`` does not replace its checkpoints. A resumed run keeps the settings it
    started with: where its data is (``dataset``, ``data_dir``, ``mirror``) may be given
    anew, for a moved folder, and this machine's ``device`` and ``threads``; any other
    setting given that differs from the run's is refused rather than ignored. Its images
    must still be the ones it started with, in number.

    Under torchrun (RANK and WORLD_SIZE set) every rank calls this; the process
    group is joined here and left on the way out.
    """
    here = cfg.filled()
    d, device = init_distributed(here.device)
    new_folders = missing_folders(Path(here.out).absolute()) if resume is None else []
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, until the run ends
            return _train(cfg, model, resume, console, d, device, overwrite, held)
    except BaseException as e:
        # A run that failed before writing anything leaves no empty folders behind; but a folder
        # another training holds is that one's, however empty it still is.
        if d.main and not isinstance(e, FolderInUse):
            remove_empty(new_folders)
        raise
    finally:
        leave(d)


def _train(
    cfg: TrainConfig,
    model: ModelConfig | ModelOptions,
    resume: Path | None,
    console: Console,
    d: Dist,
    device: torch.device,
    overwrite: bool,
    held: contextlib.ExitStack,
) -> TrainResult:
    def say(text: str, **style: Any) -> None:  # paths may hold [brackets]: never read as markup
        if console is not None and d.main:
            console.print(printable(text), markup=False, highlight=False, **style)

    run, threads = open_run(cfg, model, resume, console, d, device, overwrite, held)
    loop = prepare(run, d, device, say)
    cfg, out = loop.cfg, run.out
    if run.state is not None and loop.epoch >= cfg.epochs:
        say(
            f"{resume}: this run already finished its {count_of(cfg.epochs, 'epoch')}; nothing to do "
            f"(to train it further, start a new run with --init {quoted(out / 'best.pt')}).",
            style="green",
        )
        return TrainResult(out / "best.pt", loop.model)
    loop.net = wrapped(loop.model, d, device, compiled=cfg.compile)
    if overwrite and run.state is None and d.main:  # the data loaded: the run it replaces goes now
        removed = clear_replaced_run(out)
        if removed:
            say(f"--overwrite: removed the earlier run's {', '.join(removed)} from {out}")
    say(
        f"colorcli train: {run.model_cfg.arch} ({count_parameters(loop.model) / 1e6:.2f}M parameters) on {device}"
        + (f" with {count_of(threads, 'CPU thread')}" if threads else "")
        + (f", {d.world} processes" if d.world > 1 else "")
        + f"; {len(loop.train_data)} training / {len(loop.val_data)} validation images"
        + (
            f" ({count_of(loop.images.dropped, 'black-and-white training image')} left out)"
            if loop.images.dropped
            else ""
        )
    )
    with StopFlag() as stop, _progress(console if d.main else None) as progress:
        while loop.epoch < cfg.epochs:
            epoch = _train_epoch(loop, stop, progress)
            _end_epoch(loop, epoch, progress, console, say)
            # The signal came on the epoch's last step, or during validation or saving (any rank's counts).
            if any_rank(epoch.stopping or stop.requested, d, device) and loop.epoch < cfg.epochs:
                raise Interrupted(out / "last.pt")
    say(f"best validation loss {loop.best:.4f}; wrote {out / 'best.pt'}, {out / 'last.pt'} and {out / 'history.json'}")
    hint = training_hint(loop.model, loop.val_data, out) if d.main and console is not None else None
    if hint:
        say(hint, style="yellow")
    barrier(d)
    return TrainResult(out / "best.pt", loop.model)


def _views(loop: Loop) -> Views:
    """How epoch ``loop.epoch`` shows the training images, each step's share of the mix after them."""
    cfg, tile, mix = loop.cfg, loop.run.model_cfg.tile, loop.images.mix
    mixed = None
    if mix is not None:
        mixed = MixBatches(mix, cfg.seed, loop.epoch, loop.local_mix, loop.d, tile, bool(cfg.mix_native))
    return Views(loop.train_data, cfg, loop.epoch, tile, mixed)


@dataclass
class _Epoch:
    """What training an epoch did, for its report: its progress task, the images seen (all
    ranks), the running loss, the training time, and whether a stop was asked on its last step."""

    task: Any
    seen: int
    run_loss: float
    seconds: float
    stopping: bool


def _train_epoch(loop: Loop, stop: StopFlag, progress: Progress) -> _Epoch:
    """Train the rest of the epoch from ``loop.step``. A stop asked before its last step saves
    last.pt and raises Interrupted; on its last step, the epoch is validated and saved first."""
    cfg, d, out = loop.cfg, loop.d, loop.run.out
    task = progress.add_task(
        f"epoch {loop.epoch + 1}/{cfg.epochs}",
        total=loop.steps_per_epoch,
        completed=loop.step,
        loss="-",
        val="-",
        ips=0.0,
    )
    t0, seen, run_loss, stopping = time.perf_counter(), 0, math.nan, False
    flags = torch.zeros(2, device=loop.device)  # [stop requested, non-finite loss], summed over ranks
    loop.net.train()
    views = _views(loop)
    order = rank_order(
        len(loop.train_data), loop.images.draw_weights, cfg.seed, loop.epoch, loop.steps_per_epoch, loop.local_main, d
    )
    for idx in iter_batches(order, loop.local_main, start=loop.step):
        rgb_u8 = views.batch(idx, loop.step)
        loss = _step(loop, rgb_u8, stop, flags)
        loop.step += 1
        seen += rgb_u8.shape[0] * d.world
        run_loss = loss.item() if math.isnan(run_loss) else 0.98 * run_loss + 0.02 * loss.item()
        progress.update(task, advance=1, loss=f"{run_loss:.4f}", ips=seen / (time.perf_counter() - t0))
        if flags[0].item():
            if loop.step < loop.steps_per_epoch:
                if d.main:
                    save_checkpoint(out / "last.pt", checkpoint_payload(loop, "last"))
                raise Interrupted(out / "last.pt")
            stopping = True  # on the epoch's last step: validate and save it whole, then stop
    return _Epoch(task, seen, run_loss, time.perf_counter() - t0, stopping)


def _step(loop: Loop, rgb_u8: torch.Tensor, stop: StopFlag, flags: torch.Tensor) -> torch.Tensor:
    """One optimizer step on a batch; the loss. Every rank learns whether any was asked to stop
    (``flags[0]``); a non-finite loss on any stops them all."""
    y, rgb = make_pair(rgb_u8)
    if loop.device.type == "cuda":
        y, rgb = y.contiguous(memory_format=torch.channels_last), rgb.contiguous(memory_format=torch.channels_last)
    with loop.autocast():
        raw = loop.net(y, raw=True)
    loss = unwrapped(loop.net).loss(raw, y, rgb)
    flags.zero_()
    flags[0] = float(stop.requested)
    flags[1] = float(not torch.isfinite(loss).item())
    all_sum(flags, loop.d)
    if flags[1].item():
        raise TrainingError(
            f"loss became {loss.item()} at epoch {loop.epoch + 1} step {loop.step + 1}; stopped. "
            f"{_last_good(loop.run.out)}; try a lower --lr"
        )
    loop.opt.zero_grad(set_to_none=True)
    loss.backward()
    loop.opt.step()
    if loop.cfg.schedule == "onecycle":
        loop.sched.step()
    return loss


def _end_epoch(loop: Loop, epoch: _Epoch, progress: Progress, console: Console, say: Callable[..., None]) -> None:
    """Validate the epoch just trained, record it in the history, report it and save the run."""
    cfg, d, out = loop.cfg, loop.d, loop.run.out
    task, seen, run_loss, train_seconds = epoch.task, epoch.seen, epoch.run_loss, epoch.seconds
    metrics = validate(loop.net, loop.val_data, max(loop.local_batch, 256), d, loop.autocast)
    if not math.isfinite(metrics["val_loss"]):
        raise TrainingError(
            f"validation loss became {metrics['val_loss']} in epoch {loop.epoch + 1}; stopped. "
            f"{_last_good(out)}; try a lower --lr"
        )
    if cfg.schedule == "plateau":
        loop.sched.step(metrics["val_loss"])
    loop.epoch, loop.step = loop.epoch + 1, 0
    # A last.pt saved after an epoch's final step by an older colorcli resumes with no
    # steps left in that epoch: no training loss or speed to report (null, not NaN, in JSON).
    row = {
        "epoch": loop.epoch,
        "train_loss": run_loss if seen else None,
        **metrics,
        "lr": loop.opt.param_groups[0]["lr"],
        "images_per_s": seen / train_seconds if seen else None,
        "seconds": train_seconds,
    }
    loop.history.append(row)
    progress.update(task, val=f"{metrics['val_loss']:.4f} ({metrics['val_psnr']:.2f} dB)")
    if console is not None and d.main and not console.is_terminal:  # logs get one line per epoch
        loss_text, speed = (f"{run_loss:.4f}", f" {row['images_per_s']:.0f} img/s") if seen else ("-", "")
        say(
            f"epoch {loop.epoch}/{cfg.epochs}: loss {loss_text} val {metrics['val_loss']:.4f} "
            f"psnr {metrics['val_psnr']:.2f} dB (gray {metrics['val_gray_psnr']:.2f}){speed}"
        )
    if d.main:
        improved = metrics["val_loss"] < loop.best
        loop.best = min(loop.best, metrics["val_loss"])
        if improved:
            save_checkpoint(out / "best.pt", checkpoint_payload(loop, "best", row))
        save_checkpoint(out / "last.pt", checkpoint_payload(loop, "last"))
        _write_history(out, loop.history)
