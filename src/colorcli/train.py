"""Training: in-memory data, batched augmentation, resumable checkpoints, optional DDP.

The whole dataset is one uint8 tensor on the training device; every batch is
sliced, flipped and turned into (luma, colour) pairs there, so no per-sample
Python runs in the loop. Under torchrun each rank trains on a disjoint shard of
every epoch's shuffle and only rank 0 prints and writes files. What a run is (its
settings, folder, resuming, fine-tuning and the images it split) lives in run.py;
here: prepare the run's data and model, train an epoch, validate it, save it.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorcli.checkpoint import model_from_state, named_model_path, save_checkpoint
from colorcli.color import gray_to_rgb_u8, ycbcr_to_rgb_u8
from colorcli.config import SCHEDULES
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
from colorcli.errors import (
    EXIT_INTERRUPTED,
    CheckpointError,
    FolderInUse,
    TrainingError,
    UsageError,
    first_line,
    printable,
)
from colorcli.evaluate import training_hint
from colorcli.files import atomic_write, missing_folders, remove_empty
from colorcli.metrics import psnr_per_image
from colorcli.model import Colorizer, ModelConfig, build_model, class_prior_counts, count_parameters
from colorcli.run import (  # TrainConfig, fine_tune_config and grown_model are also reached from here
    ModelOptions,
    Run,
    TrainConfig,
    clear_replaced_run,
    count_of,
    fine_tune_config,
    grown_model,
    open_run,
    quoted,
)
from colorcli.sampling import MixBatches, RunImages, Views, rank_order, run_images

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


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch), pct_start=0.15
        )
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    raise UsageError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")


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
    loop = _prepare(run, d, device, say)
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


@dataclass
class _Loop:
    """What a run's epochs work with: its data on the training device, model, optimizer and
    schedule, and where it stands (epoch, step within it, best validation loss, history)."""

    run: Run
    d: Dist
    device: torch.device
    images: RunImages
    model: Colorizer
    opt: torch.optim.Optimizer
    sched: Any
    net: torch.nn.Module | None = None  # the model under DDP / torch.compile
    epoch: int = 0
    step: int = 0
    best: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cfg(self) -> TrainConfig:
        return self.run.cfg

    @property
    def train_data(self) -> torch.Tensor:
        return self.images.train

    @property
    def val_data(self) -> torch.Tensor:
        return self.images.val

    @property
    def local_batch(self) -> int:
        return self.cfg.batch_size // self.d.world

    @property
    def local_mix(self) -> int:
        return round(self.local_batch * self.cfg.mix_share) if self.cfg.mix else 0

    @property
    def local_main(self) -> int:
        return self.local_batch - self.local_mix

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_data) // (self.local_main * self.d.world)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")


def _prepare(run: Run, d: Dist, device: torch.device, say: Callable[..., None]) -> _Loop:
    """Load and split the run's images (checking they are the ones a resumed run split), build
    or restore its model, optimizer and schedule."""
    images = run_images(run, d, device, say)
    model = _initial_model(run, images.train, device)
    opt = torch.optim.AdamW(model.parameters(), lr=run.cfg.lr, weight_decay=run.cfg.weight_decay)
    loop = _Loop(run, d, device, images, model, opt, None)
    loop.sched = make_scheduler(opt, run.cfg, loop.steps_per_epoch)
    if run.state is not None:
        _restore(loop, run.state)
    return loop


def _initial_model(run: Run, train_data: torch.Tensor, device: torch.device) -> Colorizer:
    """The run's model on the training device: a resumed run's weights, a fine-tune's starting
    weights (grown if asked), or fresh ones with the bins head's prior from the training images."""
    torch.manual_seed(run.cfg.seed)
    if run.state is not None:
        model = model_from_state(run.state["model_config"], run.state["model"], run.resume).train()
    elif run.init_state is not None:
        model = grown_model(run.model_cfg, run.init_state, named_model_path(run.cfg.init)).train()
    else:
        model = build_model(run.model_cfg)
        counts = class_prior_counts(model, train_data.cpu())
        if counts is not None:
            model.bins.set_prior(counts, run.model_cfg.rebalance)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    return model


def _restore(loop: _Loop, state: dict[str, Any]) -> None:
    """Where a resumed run stood: optimizer, schedule, position, history and random state."""
    missing = [k for k in ("optimizer", "scheduler", "epoch", "step", "best_val", "history", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"{loop.run.resume}: incomplete training state (no {', '.join(missing)}); cannot resume")
    try:
        loop.opt.load_state_dict(state["optimizer"])
        loop.sched.load_state_dict(state["scheduler"])
        loop.epoch, loop.step, loop.best = int(state["epoch"]), int(state["step"]), float(state["best_val"])
        loop.history = list(state["history"])
        torch.set_rng_state(state["rng"])
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:  # a damaged or hand-edited file
        raise CheckpointError(f"{loop.run.resume}: damaged training state ({first_line(e)}); cannot resume") from None
    if loop.device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], loop.device)


def _views(loop: _Loop) -> Views:
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


def _train_epoch(loop: _Loop, stop: StopFlag, progress: Progress) -> _Epoch:
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
                    save_checkpoint(out / "last.pt", _payload(loop, "last"))
                raise Interrupted(out / "last.pt")
            stopping = True  # on the epoch's last step: validate and save it whole, then stop
    return _Epoch(task, seen, run_loss, time.perf_counter() - t0, stopping)


def _step(loop: _Loop, rgb_u8: torch.Tensor, stop: StopFlag, flags: torch.Tensor) -> torch.Tensor:
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


def _end_epoch(loop: _Loop, epoch: _Epoch, progress: Progress, console: Console, say: Callable[..., None]) -> None:
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
            save_checkpoint(out / "best.pt", _payload(loop, "best", row))
        save_checkpoint(out / "last.pt", _payload(loop, "last"))
        _write_history(out, loop.history)


def _payload(loop: _Loop, kind: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """What best.pt ("best") or last.pt ("last": with the optimizer, schedule and random state) holds."""
    history = loop.history
    payload = {
        "model_config": loop.run.model_cfg.to_dict(),
        "train_config": asdict(loop.cfg),
        "model": unwrapped(loop.net).state_dict(),
        "epoch": loop.epoch,
        "step": loop.step,
        "best_val": loop.best,
        "history": history,
        "metrics": metrics or (history[-1] if history else {}),
        "images": loop.images.count,
        "files_digest": loop.images.digest,
    }
    if loop.images.mix_names is not None:
        payload["mix_images"], payload["mix_digest"] = loop.images.mix_names
    if kind == "last":
        payload.update(optimizer=loop.opt.state_dict(), scheduler=loop.sched.state_dict(), rng=torch.get_rng_state())
        if loop.device.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state(loop.device)
    return payload
