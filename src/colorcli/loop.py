"""A run's training state: prepared (its images on the device, model, optimizer, schedule),
restored from a resumed run's last.pt, and what best.pt and last.pt hold. ``train.py`` runs
the epochs over it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from colorcli.checkpoint import model_from_state, named_model_path
from colorcli.config import SCHEDULES
from colorcli.distributed import Dist, unwrapped
from colorcli.errors import CheckpointError, UsageError, first_line
from colorcli.model import Colorizer, build_model, class_prior_counts
from colorcli.run import Run, TrainConfig, grown_model
from colorcli.sampling import RunImages, run_images


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


@dataclass
class Loop:
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


def prepare(run: Run, d: Dist, device: torch.device, say: Callable[..., None]) -> Loop:
    """Load and split the run's images (checking they are the ones a resumed run split), build
    or restore its model, optimizer and schedule."""
    images = run_images(run, d, device, say)
    model = _initial_model(run, images.train, device)
    opt = torch.optim.AdamW(model.parameters(), lr=run.cfg.lr, weight_decay=run.cfg.weight_decay)
    loop = Loop(run, d, device, images, model, opt, None)
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


def _restore(loop: Loop, state: dict[str, Any]) -> None:
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
        if loop.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], loop.device)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:  # a damaged or hand-edited file
        raise CheckpointError(f"{loop.run.resume}: damaged training state ({first_line(e)}); cannot resume") from None


def checkpoint_payload(loop: Loop, kind: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
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
