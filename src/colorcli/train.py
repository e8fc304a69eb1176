"""Training: in-memory data, batched augmentation, resumable checkpoints, optional DDP.

The whole dataset is one uint8 tensor on the training device; every batch is
sliced, flipped and turned into (luma, colour) pairs there, so no per-sample
Python runs in the loop. Under torchrun each rank trains on a disjoint shard of
every epoch's shuffle and only rank 0 prints and writes files.
"""

from __future__ import annotations

import gc
import json
import math
import os
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from colorcli.checkpoint import (
    load_checkpoint,
    model_from_state,
    named_model_path,
    pick_device,
    read_weights,
    save_checkpoint,
)
from colorcli.color import gray_to_rgb_u8, ycbcr_to_rgb_u8
from colorcli.console import progress_bar
from colorcli.data import (
    CIFAR_NAMES,
    _not_a_dataset,
    changed_count,
    changed_files,
    crop_views,
    epoch_crops,
    epoch_draws,
    epoch_flips,
    epoch_order,
    epoch_zooms,
    files_digest,
    flip_where,
    grayscale_images,
    iter_batches,
    load_dataset,
    make_pair,
    resize_images,
    source_weights,
    split_indices,
    zoom_in,
)
from colorcli.errors import MainProcessFailed, TrainingError, UsageError, printable
from colorcli.evaluate import model_colour_share, undertrained_hint
from colorcli.files import atomic_write, ensure_folder, remove_stale_temps
from colorcli.metrics import psnr_per_image
from colorcli.model import Colorizer, ModelConfig, build_model, check_trainable, count_parameters

SCHEDULES = ("onecycle", "plateau")
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; stored in checkpoints so a run can be resumed as it was.

    batch_size is the global batch (split across ranks under torchrun); lr is the
    peak learning rate of the one-cycle schedule or the start rate of plateau.
    init: start from these weights (a .pt or .safetensors file, or a shipped model by
    name: "default", "cifar10", "photo") instead of random ones, keeping their architecture: fine-tuning.
    skip_gray: leave black-and-white originals out of the training split; as targets
    they only teach the model to keep photos that look old gray, and those are the
    photos people bring to a colorizer. Validation keeps them, as eval does.
    zoom: share of training images replaced each epoch by a zoomed-in view (a random
    square crop of at least ``zoom_min`` of the side, resized back), as a 32x32 tile of
    a photo shows part of a scene. Validation is never zoomed.
    scale_min, scale_max: train on photos as colorize sees them. A folder's images are
    kept at ``scale_max`` (shorter side, centred square) and every epoch each is cut to a
    random tile of the model's size at a working scale drawn from scale_min..scale_max
    (see ``data.epoch_crops``); validation sees each whole, at the tile's size. None: whole
    images at the model's tile size, as CIFAR trains.
    mix: a second dataset (cifar10, cifar100 or a folder) of which ``mix_share`` of every
    batch is drawn, whole images brought to the tile's size; it is only trained on (the
    validation split and the run's identity are the main dataset's).
    balance: draw a folder's subfolders (its sources) more evenly than their sizes: each
    image weighs n ** -balance, n its subfolder's size (0: every image equally often, 1:
    every subfolder); an epoch draws as many images as before, with replacement.
    """

    dataset: str = "cifar10"
    data_dir: str | None = None
    mirror: str | None = None
    out: str = "runs/colorcli"
    epochs: int = 18
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    val_fraction: float = 0.1
    limit: int | None = None
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    threads: int | None = None
    init: str | None = None
    skip_gray: bool = True
    zoom: float = 0.0
    zoom_min: float = 0.5
    scale_min: int | None = None
    scale_max: int | None = None
    mix: str | None = None
    mix_share: float = 0.5
    balance: float = 0.0

    @property
    def scales(self) -> tuple[int, int] | None:
        if self.scale_max is None:
            return None
        return (self.scale_min or self.scale_max, self.scale_max)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if launched by torchrun (nccl on CUDA, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist(), pick_device(device_name)
    d = Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    device = pick_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(d.local_rank)
        device = torch.device("cuda", d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def set_cpu_threads(requested: int | None, d: Dist) -> int:
    """Share the machine's cores between the local ranks unless told otherwise."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
    n = requested or max(1, (os.cpu_count() or 1) // max(1, local_world))
    torch.set_num_threads(n)
    return n


class StopFlag:
    """Set by SIGINT/SIGTERM; training finishes the current step, saves and exits."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # asked twice: stop now, the way Python normally would
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Interrupted(Exception):
    """Training stopped on request after saving last.pt."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, resume_path: Path) -> None:
        super().__init__(
            f"interrupted; saved {resume_path}. Resume with: colorcli train --resume {shlex.quote(str(resume_path))}"
        )
        self.resume_path = resume_path


def _bare(model: torch.nn.Module) -> Colorizer:
    """The model under DDP / torch.compile wrappers, so saved keys carry no prefixes."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model  # type: ignore[return-value]


def class_prior_counts(model: Colorizer, data: torch.Tensor, max_images: int = 10_000) -> torch.Tensor | None:
    """Soft-label histogram of the training chrominance, for the bins head's rebalancing."""
    if getattr(model, "bins", None) is None:
        return None
    from colorcli.color import rgb_to_cbcr

    counts = torch.zeros(model.bins.num_classes, dtype=torch.float64)
    for chunk in data[:max_images].split(1000):
        cbcr = rgb_to_cbcr(chunk.float())  # (B, 2, H, W)
        if model.config.head_scale > 1:
            cbcr = torch.nn.functional.avg_pool2d(cbcr, model.config.head_scale)
        counts += model.bins.histogram(cbcr.cpu())
    return counts


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch), pct_start=0.15
        )
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    raise UsageError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")


@torch.no_grad()
def validate(model: torch.nn.Module, val: torch.Tensor, batch_size: int, d: Dist, autocast) -> dict[str, float]:
    """Validation loss and mean per-image PSNR (model and gray copy), reduced over ranks."""
    bare = _bare(model)
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
    if d.world > 1:
        dist.all_reduce(totals)
    model.train()
    n = max(totals[3].item(), 1.0)
    return {"val_loss": totals[0].item() / n, "val_psnr": totals[1].item() / n, "val_gray_psnr": totals[2].item() / n}


def _run_folder_problem(out: Path, fresh: bool, overwrite: bool) -> str | None:
    """Create the run folder; why it cannot be used, or None.

    A fresh run into a folder that holds another run's checkpoints is refused unless
    ``overwrite``: they may be hours of training.
    """
    if out.exists() and not out.is_dir():
        return f"{out}: is a file; --out names the run's folder"
    try:
        taken = [name for name in ("best.pt", "last.pt") if (out / name).exists()]
    except OSError as e:
        return f"{out}: cannot look into the run folder ({e.strerror or e})"
    if fresh and taken and not overwrite:
        return (
            f"{out}: already holds a run ({', '.join(taken)}); continue it with --resume {_quoted(out / 'last.pt')}, "
            "choose another --out, or pass --overwrite to replace it"
        )
    try:
        ensure_folder(out, "the run folder")
    except UsageError as e:
        return str(e)
    return None


def _dataset_problem(dataset: str) -> str | None:
    """Why a new run's --dataset names no dataset, or None. Looked at before the run folder, so
    a mistyped dataset is not reported as a clash with the run already in --out."""
    if dataset in CIFAR_NAMES or Path(dataset).is_dir():
        return None
    return str(_not_a_dataset(dataset))


def _undertrained(model: Colorizer, val: torch.Tensor, out: Path, images: int = 1000) -> str | None:
    """A hint for the closing message when the model paints its validation images (the first
    ``images``) nearly gray, as a run of an epoch or two does, so eval's figures do not puzzle."""
    share = model_colour_share(model, val[:images])
    advice = (
        f"train longer: a new run with more --epochs, or on from these weights with --init {_quoted(out / 'best.pt')}"
    )
    return undertrained_hint(share, "the model's colour on its validation images", advice)


def _fitting_batch(images: int, world: int) -> int | None:
    """The largest batch of ``world`` times a power of two (so every process takes the same
    share, at least 2 images a step in all) that ``images`` training images fill at least
    once; None if none does."""
    per_process = images // world
    if per_process < 1 or world * per_process < 2:
        return None
    batch = world * (1 << (per_process.bit_length() - 1))  # world x the largest power of two <= per_process
    return batch if batch >= 2 else None


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for f in (folder, *folder.parents):
        if f.exists():
            break
        missing.append(f)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) while they are empty; stop at the first that is not."""
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            return


def _any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank if it is True on any."""
    if d.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t)
    return bool(t.item())


def _last_good(out: Path) -> str:
    last = out / "last.pt"
    return f"The last good checkpoint is {last}" if last.exists() else "No checkpoint was written yet"


def _load_once(
    cfg: TrainConfig, d: Dist, device: torch.device, spec: str | None = None, size: int = 32
) -> torch.Tensor:
    """The training images of ``spec`` (default: the run's dataset), (N, 3, S, S) uint8.

    Under torchrun rank 0 loads them (downloading or decoding once) and sends them to the
    other ranks, so every rank trains on the very same images: decoding twice could
    differ if the folder changed in between, and ranks that split different data run
    different numbers of steps and hang.
    """
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    limit = cfg.limit if spec is None else None
    spec = spec or cfg.dataset
    if d.world == 1:
        return load_dataset(spec, data_dir, train=True, mirror=cfg.mirror, limit=limit, size=size)
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")  # where the backend sends from
    shape = torch.zeros(4, dtype=torch.long, device=on)
    if d.main:
        try:
            data = load_dataset(spec, data_dir, train=True, mirror=cfg.mirror, limit=limit, size=size).to(on)
        except BaseException:
            shape.fill_(-1)  # tell the others, who wait for the images, that none are coming
            dist.broadcast(shape, src=0)
            raise
        shape.copy_(torch.tensor(data.shape))
    dist.broadcast(shape, src=0)
    if shape[0].item() < 0:
        raise MainProcessFailed("the main process (rank 0) could not load the images; its message says why")
    if not d.main:
        data = torch.empty(tuple(shape.tolist()), dtype=torch.uint8, device=on)
    dist.broadcast(data, src=0)
    return data


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(out / "history.json", lambda f: f.write(json.dumps(history, indent=1).encode()))


def _progress(console):
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


LOSS_SETTINGS = ("loss", "vivid", "aux_logmse")  # what a fine-tune may change; the rest comes with the weights
# What a fine-tune may grow: new layers (a deeper U-Net, the context branch) start fresh or at
# zero beside the starting weights, and the tile and working scale are no weights at all.
GROWTH_SETTINGS = ("depth", "context", "tile", "scale")


def fine_tune_config(init: str, **given: Any) -> ModelConfig:
    """The config of the model at ``init`` (a file or "default"), with the loss settings given.

    A setting given as None keeps the starting model's, so ``--init`` without ``--vivid``
    fine-tunes a model with the reward it was trained with.
    """
    unknown = sorted(k for k, v in given.items() if v is not None and k not in LOSS_SETTINGS + GROWTH_SETTINGS)
    if unknown:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
        raise UsageError(f"{flags}: a fine-tune (--init) keeps the starting model's architecture and decoding")
    init_cfg, _, _ = read_weights(named_model_path(init))
    return ModelConfig.from_dict({**init_cfg, **{k: v for k, v in given.items() if v is not None}})


RELOCATABLE = ("dataset", "data_dir", "mirror")


def _count(n: int, thing: str) -> str:
    """'1 epoch', '18 epochs'."""
    return f"{n} {thing}{'s' * (n != 1)}"


def _quoted(path: Path) -> str:
    """A path as it can be pasted into a shell command."""
    return shlex.quote(str(path))


def _flag(name: str, value: Any) -> str:
    """An option as it is typed: --epochs 30, --keep-gray, --compile."""
    if name == "skip_gray":
        return "--skip-gray" if value else "--keep-gray"
    flag = "--" + name.replace("_", "-")
    if value is None or value is False:
        return f"no {flag}"
    return flag if value is True else f"{flag} {shlex.quote(str(value))}"


def _refuse_changed_settings(typed: dict[str, Any], saved: dict[str, Any], model: dict[str, Any], resume: Path) -> None:
    """Refuse options given with --resume that differ from the run's own (they would be ignored).

    The run's settings are read with their defaults filled in, as the run used them,
    so checkpoints from before a setting existed compare as they trained.
    """
    run = {**ModelConfig.from_dict(model).to_dict(), **asdict(TrainConfig.from_dict(saved))}
    if "init" in typed and typed["init"] != run.get("init"):
        raise UsageError("--init starts a new run from a model's weights and --resume continues a run; give one")
    changed = []
    for name, value in typed.items():
        if name in RELOCATABLE:
            continue
        if name == "out":
            had: Any = resume.parent
            same = Path(value).resolve() == resume.parent.resolve()
        else:
            had = run.get(name)
            same = value == had or (value is not None and had is not None and str(value) == str(had))
        if not same:
            changed.append(f"{_flag(name, value)} (the run has {_flag(name, had)})")
    if changed:
        raise UsageError(
            f"{'; '.join(changed)}: a resumed run keeps the settings it started with; "
            f"start a new run from its weights with --init {_quoted(resume.parent / 'best.pt')} to change them"
        )


def train(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    resume: Path | None = None,
    console=None,
    overwrite: bool = False,
    typed: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume) a run and write its checkpoints. Raises Interrupted on SIGINT/SIGTERM.

    A run folder that already holds a run is refused unless ``overwrite``, so a
    forgotten ``--resume`` or a reused ``--out`` does not replace its checkpoints.
    A resumed run keeps the settings it started with. ``typed`` holds the options
    given on the command line (TrainConfig and ModelConfig names): where its data is
    (``dataset``, ``data_dir``, ``mirror``) may change, for a moved folder; any other
    that differs from the run's is refused rather than ignored. Its images must
    still be the ones it started with, in number.

    Under torchrun (RANK and WORLD_SIZE set) every rank calls this; the process
    group is joined here and left on the way out.
    """
    d, device = init_distributed(cfg.device)
    new_folders = _missing_folders(Path(cfg.out).absolute()) if resume is None else []
    try:
        return _train(cfg, model_cfg, resume, console, d, device, overwrite, typed or {})
    except BaseException:
        if d.main:  # a run that failed before writing anything leaves no empty folders behind
            _remove_empty(new_folders)
        raise
    finally:
        if d.world > 1 and dist.is_initialized():
            # The DDP wrapper sits in reference cycles; collect it while its process group still
            # lives, not at interpreter exit after the group is gone (a suspected cause of a rare
            # "terminate called without an active exception" abort seen in the gloo tests).
            gc.collect()
            dist.destroy_process_group()


def _resumed_run(
    resume: Path, cfg: TrainConfig, typed: dict[str, Any]
) -> tuple[dict[str, Any], TrainConfig, ModelConfig]:
    """(checkpoint, training and model config) of the run ``resume`` continues: its own
    settings, in its own folder, with where its data lies (``RELOCATABLE``) as typed and
    this machine's device and threads. Anything else typed that differs is refused."""
    if resume.suffix == ".safetensors":
        raise UsageError(f"{resume}: an exported model holds weights only, nothing to resume; fine-tune it with --init")
    state = load_checkpoint(resume)
    if "optimizer" not in state:
        raise UsageError(
            f"{resume}: has no training state to resume from; resume from the run's "
            f"{_quoted(resume.parent / 'last.pt')}, or fine-tune this one with --init"
        )
    # Runs from before skip_gray existed trained on every image; keep their data (and so their schedule).
    saved = {"skip_gray": False, **state["train_config"]}
    relocate = {k: v for k, v in typed.items() if k in RELOCATABLE}
    _refuse_changed_settings(typed, saved, state["model_config"], resume)
    here = {"device": cfg.device, "threads": cfg.threads, "out": str(resume.parent), **relocate}
    cfg = replace(TrainConfig.from_dict(saved), **here)
    return state, cfg, ModelConfig.from_dict(state["model_config"])


def _resumed_data_problem(cfg: TrainConfig, state: dict[str, Any], resume: Path) -> str | None:
    """Why a resumed run's images are not the ones it split, judged by their names before any
    decoding (the main process's view: only its machine needs the data), or None."""
    if cfg.dataset not in CIFAR_NAMES and not Path(cfg.dataset).is_dir():
        return f"{cfg.dataset}: the run's dataset folder is not there; if it moved, resume with --dataset NEWPATH"
    changed = changed_files(cfg.dataset, state)
    return _split_would_change(cfg.dataset, changed, resume) if changed else None


def _split_would_change(dataset: str, changed: str, resume: Path) -> str:
    """Why a resumed run refuses its dataset (``changed`` says what differs), and what to do."""
    return (
        f"{dataset}: {changed}, so its split would change; resume with the same images, or start "
        f"a new run from its weights with --init {_quoted(resume.parent / 'best.pt')}"
    )


def _split_for_training(
    n_images: int,
    data: torch.Tensor,
    cfg: TrainConfig,
    d: Dist,
    state: dict[str, Any] | None,
    typed: dict[str, Any],
    say: Callable[..., None],
) -> tuple[torch.Tensor, torch.Tensor, int, TrainConfig]:
    """(training indices, validation indices, black-and-white images left out, config): the
    run's fixed split, with the batch fitted to a small folder when none was typed, or a
    usage error saying why these images cannot train at this batch size."""
    if n_images < 2:
        raise UsageError(f"{cfg.dataset}: {n_images} image; training needs at least 2 (one is held out to validate)")
    train_idx, val_idx = split_indices(n_images, cfg.val_fraction, cfg.seed)
    dropped = 0
    if cfg.skip_gray:
        gray = grayscale_images(data[train_idx])
        train_idx, dropped = train_idx[~gray], int(gray.sum())
    if len(train_idx) < cfg.batch_size and state is None and "batch_size" not in typed:
        # The default batch fits CIFAR; a small folder of one's own photos gets the largest that fits.
        fitted = _fitting_batch(len(train_idx), d.world)
        if fitted:
            say(
                f"note: {len(train_idx)} training images, fewer than a batch of {cfg.batch_size}: "
                f"using batches of {fitted} (--batch-size sets it)"
            )
            cfg = replace(cfg, batch_size=fitted)
    if len(train_idx) < cfg.batch_size:
        hint = f"; lower --batch-size (now {cfg.batch_size})"
        if dropped:
            enough = len(train_idx) + dropped >= cfg.batch_size
            hint = f"; {dropped} black-and-white images were left out (--keep-gray keeps them)" + (
                "" if enough else hint
            )
        raise UsageError(f"only {len(train_idx)} training images for a batch of {cfg.batch_size}{hint}")
    if len(val_idx) < d.world:
        raise UsageError(f"only {len(val_idx)} validation images for {d.world} processes; raise --val-fraction")
    return train_idx, val_idx, dropped, cfg


def grown_model(model_cfg: ModelConfig, state: dict[str, Any], source: Path) -> Colorizer:
    """A model of ``model_cfg`` holding the weights ``state`` of a smaller one it grew from.

    Layers the starting model lacks (a deeper level, the context branch) keep their fresh
    initialisation; any weight that exists in both must have the same shape.
    """
    model = build_model(model_cfg)
    own = model.state_dict()
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if unexpected or mismatched:
        return model_from_state(model_cfg.to_dict(), state, source)  # raises, naming what does not fit
    model.load_state_dict(state, strict=False)
    return model


def _balanced_weights(cfg: TrainConfig, n_images: int, train_idx: torch.Tensor, say) -> torch.Tensor | None:
    """The training split's draw weights under ``cfg.balance`` (None: every image once per
    epoch, in a shuffled order), and a line saying what the largest sources become."""
    found = source_weights(cfg.dataset, n_images, cfg.balance)
    if found is None:
        return None
    weights, sizes = found
    train_weights = weights[train_idx]  # (T,)
    total = float(train_weights.sum())
    shares = {s: n * n**-cfg.balance for s, n in sizes.items()}  # over all images: close enough for a note
    whole = sum(shares.values())
    top = sorted(sizes, key=lambda s: -sizes[s])[:3]
    said = ", ".join(f"{s} {sizes[s] / n_images:.0%} -> {shares[s] / whole:.0%}" for s in top)
    say(f"balancing {len(sizes)} sources (--balance {cfg.balance:g}): {said} of draws")
    return train_weights / total


def _mix_images(cfg: TrainConfig, d: Dist, device: torch.device) -> torch.Tensor:
    """The mix dataset's colour images at CIFAR's size, on the training device: (M, 3, 32, 32).
    Each step enlarges only its own share to the tile (50,000 images kept at 64x64 would be 614 MB)."""
    mix = _load_once(cfg, d, device, spec=cfg.mix, size=32)
    if cfg.skip_gray:
        mix = mix[~grayscale_images(mix)]
    return mix.to(device)


class _MixBatches:
    """Each step's share of the mix dataset: an epoch's own shuffle, cycled, per rank, flipped."""

    def __init__(self, data: torch.Tensor, seed: int, epoch: int, per_step: int, d: Dist, tile: int) -> None:
        n = len(data)
        self.data, self.per_step, self.d, self.tile = data, per_step, d, tile
        self.order = epoch_order(n, seed + 1, epoch)
        self.flips = epoch_flips(n, seed + 1, epoch)

    def batch(self, step: int) -> torch.Tensor:
        """(per_step, 3, tile, tile) uint8 images for step ``step`` on this rank."""
        start = (step * self.d.world + self.d.rank) * self.per_step
        pos = torch.arange(start, start + self.per_step) % len(self.order)
        idx = self.order[pos]
        return flip_where(resize_images(self.data[idx.to(self.data.device)], self.tile), self.flips[idx])


def _train(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    resume: Path | None,
    console,
    d: Dist,
    device: torch.device,
    overwrite: bool = False,
    typed: dict[str, Any] | None = None,
) -> TrainResult:
    state: dict[str, Any] | None = None
    if resume is not None:
        state, cfg, model_cfg = _resumed_run(resume, cfg, typed or {})
        if console is not None and d.main:
            console.print(f"resuming {printable(str(resume))} with the settings its run started with", markup=False)
    init_state = None
    if state is None and cfg.init:
        # Architecture, weights, decoding and chrominance prior come from the starting model,
        # the loss settings from model_cfg (fine_tune_config fills in the ones not given).
        init_cfg, init_state, _ = read_weights(named_model_path(cfg.init))
        model_cfg = ModelConfig.from_dict(
            {**init_cfg, **{k: getattr(model_cfg, k) for k in LOSS_SETTINGS + GROWTH_SETTINGS}}
        )
    # Reject a bad architecture, head or loss before any data is loaded.
    (build_model if state is not None else check_trainable)(model_cfg)
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if not (0 <= cfg.zoom <= 1 and 0 < cfg.zoom_min <= 1):
        raise UsageError(f"zoom {cfg.zoom} and zoom_min {cfg.zoom_min}: need 0 <= zoom <= 1 and 0 < zoom_min <= 1")
    if not 0 <= cfg.balance <= 1:
        raise UsageError(f"balance {cfg.balance}: need 0 <= balance <= 1")

    def say(text: str, **style: Any) -> None:  # paths may hold [brackets]: never read as markup
        if console is not None and d.main:
            console.print(printable(text), markup=False, highlight=False, **style)

    threads = set_cpu_threads(cfg.threads, d) if device.type == "cpu" else None
    if cfg.batch_size % d.world:
        raise UsageError(f"--batch-size {cfg.batch_size} must be divisible by the {d.world} processes")
    out = Path(cfg.out)
    problem = None
    if d.main:
        problem = _dataset_problem(cfg.dataset) if state is None else None
        problem = problem or _run_folder_problem(out, fresh=state is None, overwrite=overwrite)
        if problem is None and state is not None:
            problem = _resumed_data_problem(cfg, state, resume)
    if _any_rank(problem is not None, d, device):  # every rank stops, not only the one that looked
        raise UsageError(problem or "refused by the main process (see its message)")
    if d.main and state is not None:
        remove_stale_temps(out)  # left by a save the run was killed in; it writes here again now

    tile = model_cfg.tile
    data = _load_once(cfg, d, device, size=cfg.scale_max or tile)
    n_images = len(data)  # the same on every rank: rank 0 sent the images
    changed = changed_count(n_images, state) if state is not None else None
    if changed:
        raise UsageError(_split_would_change(cfg.dataset, changed, resume))
    digest = files_digest(cfg.dataset, n_images) if d.main else None  # stored by rank 0 alone
    train_idx, val_idx, dropped, cfg = _split_for_training(n_images, data, cfg, d, state, typed or {}, say)
    local_batch = cfg.batch_size // d.world
    local_mix = round(local_batch * cfg.mix_share) if cfg.mix else 0
    local_main = local_batch - local_mix
    on_device = data.to(device)
    train_data, val_data = on_device[train_idx.to(device)], on_device[val_idx.to(device)]
    del on_device, data  # only the two splits stay (on a GPU, the broadcast copy would too)
    val_data = resize_images(val_data, tile)  # (V, 3, tile, tile): each whole, at the working scale of one tile
    mix_data = _mix_images(cfg, d, device) if cfg.mix else None
    draw_weights = _balanced_weights(cfg, n_images, train_idx, say)

    torch.manual_seed(cfg.seed)
    if state is not None:
        model = model_from_state(state["model_config"], state["model"], resume).train()
    elif init_state is not None:
        model = grown_model(model_cfg, init_state, named_model_path(cfg.init)).train()
    else:
        model = build_model(model_cfg)
        counts = class_prior_counts(model, train_data.cpu())
        if counts is not None:
            model.bins.set_prior(counts, model_cfg.rebalance)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = len(train_idx) // (local_main * d.world)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, cfg, steps_per_epoch)
    epoch, step, best, history = 0, 0, math.inf, []
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        epoch, step, best, history = state["epoch"], state["step"], state["best_val"], list(state["history"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        if epoch >= cfg.epochs:
            say(
                f"{resume}: this run already finished its {_count(cfg.epochs, 'epoch')}; nothing to do "
                f"(to train it further, start a new run with --init {_quoted(out / 'best.pt')}).",
                style="green",
            )
            return TrainResult(out / "best.pt", model)

    net: torch.nn.Module = model
    if d.world > 1:
        if device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    say(
        f"colorcli train: {model_cfg.arch} ({count_parameters(model) / 1e6:.2f}M parameters) on {device}"
        + (f" with {_count(threads, 'CPU thread')}" if threads else "")
        + (f", {d.world} processes" if d.world > 1 else "")
        + f"; {len(train_idx)} training / {len(val_idx)} validation images"
        + (f" ({dropped} black-and-white training image{'s' * (dropped > 1)} left out)" if dropped else "")
    )

    def checkpoint(kind: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = {
            "model_config": model_cfg.to_dict(),
            "train_config": asdict(cfg),
            "model": _bare(net).state_dict(),
            "epoch": epoch,
            "step": step,
            "best_val": best,
            "history": history,
            "metrics": metrics or (history[-1] if history else {}),
            "images": n_images,
            "files_digest": digest,
        }
        if kind == "last":
            payload.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(), rng=torch.get_rng_state())
            if device.type == "cuda":
                payload["cuda_rng"] = torch.cuda.get_rng_state(device)
        return payload

    flags = torch.zeros(2, device=device)  # [stop requested, non-finite loss], summed over ranks
    with StopFlag() as stop, _progress(console if d.main else None) as progress:
        while epoch < cfg.epochs:
            # Every rank takes the same number of batches: a disjoint share of the epoch's full batches.
            if draw_weights is not None:
                order = epoch_draws(draw_weights, cfg.seed, epoch)
            else:
                order = epoch_order(len(train_data), cfg.seed, epoch)
            order = order[: steps_per_epoch * local_main * d.world]
            order = order[d.rank :: d.world]
            task = progress.add_task(
                f"epoch {epoch + 1}/{cfg.epochs}",
                total=steps_per_epoch,
                completed=step,
                loss="-",
                val="-",
                ips=0.0,
            )
            t0, seen, run_loss, stopping = time.perf_counter(), 0, math.nan, False
            net.train()
            flips = epoch_flips(len(train_data), cfg.seed, epoch)
            zooms = epoch_zooms(len(train_data), cfg.seed, epoch, cfg.zoom, cfg.zoom_min) if cfg.zoom > 0 else None
            crops = epoch_crops(len(train_data), cfg.seed, epoch, tile, cfg.scales) if cfg.scales else None
            mixed = _MixBatches(mix_data, cfg.seed, epoch, local_mix, d, tile) if mix_data is not None else None
            for idx in iter_batches(order, local_main, start=step):
                rgb_u8 = flip_where(train_data[idx.to(device)], flips[idx])
                if zooms is not None:
                    rgb_u8 = zoom_in(rgb_u8, zooms[idx])
                if crops is not None:
                    rgb_u8 = crop_views(rgb_u8, crops[idx], tile)  # (b, 3, tile, tile)
                elif rgb_u8.shape[-1] != tile:
                    rgb_u8 = resize_images(rgb_u8, tile)
                if mixed is not None:
                    rgb_u8 = torch.cat([rgb_u8, mixed.batch(step)])  # (b + m, 3, tile, tile)
                y, rgb = make_pair(rgb_u8)
                if device.type == "cuda":
                    y, rgb = (
                        y.contiguous(memory_format=torch.channels_last),
                        rgb.contiguous(memory_format=torch.channels_last),
                    )
                with autocast():
                    raw = net(y, raw=True)
                loss = _bare(net).loss(raw, y, rgb)
                flags.zero_()
                flags[0] = float(stop.requested)
                flags[1] = float(not torch.isfinite(loss).item())
                if d.world > 1:
                    dist.all_reduce(flags)
                if flags[1].item():
                    raise TrainingError(
                        f"loss became {loss.item()} at epoch {epoch + 1} step {step + 1}; stopped. "
                        f"{_last_good(out)}; try a lower --lr"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cfg.schedule == "onecycle":
                    sched.step()
                step += 1
                seen += rgb_u8.shape[0] * d.world
                run_loss = loss.item() if math.isnan(run_loss) else 0.98 * run_loss + 0.02 * loss.item()
                progress.update(task, advance=1, loss=f"{run_loss:.4f}", ips=seen / (time.perf_counter() - t0))
                if flags[0].item():
                    if step < steps_per_epoch:
                        if d.main:
                            save_checkpoint(out / "last.pt", checkpoint("last"))
                        raise Interrupted(out / "last.pt")
                    stopping = True  # on the epoch's last step: validate and save it whole, then stop
            train_seconds = time.perf_counter() - t0
            metrics = validate(net, val_data, max(local_batch, 256), d, autocast)
            if not math.isfinite(metrics["val_loss"]):
                raise TrainingError(
                    f"validation loss became {metrics['val_loss']} in epoch {epoch + 1}; stopped. "
                    f"{_last_good(out)}; try a lower --lr"
                )
            if cfg.schedule == "plateau":
                sched.step(metrics["val_loss"])
            epoch, step = epoch + 1, 0
            # A last.pt saved after an epoch's final step by an older colorcli resumes with no
            # steps left in that epoch: no training loss or speed to report (null, not NaN, in JSON).
            row = {
                "epoch": epoch,
                "train_loss": run_loss if seen else None,
                **metrics,
                "lr": opt.param_groups[0]["lr"],
                "images_per_s": seen / train_seconds if seen else None,
                "seconds": train_seconds,
            }
            history.append(row)
            progress.update(task, val=f"{metrics['val_loss']:.4f} ({metrics['val_psnr']:.2f} dB)")
            if console is not None and d.main and not console.is_terminal:  # logs get one line per epoch
                loss_text, speed = (f"{run_loss:.4f}", f" {row['images_per_s']:.0f} img/s") if seen else ("-", "")
                say(
                    f"epoch {epoch}/{cfg.epochs}: loss {loss_text} val {metrics['val_loss']:.4f} "
                    f"psnr {metrics['val_psnr']:.2f} dB (gray {metrics['val_gray_psnr']:.2f}){speed}"
                )
            if d.main:
                improved = metrics["val_loss"] < best
                best = min(best, metrics["val_loss"])
                if improved:
                    save_checkpoint(out / "best.pt", checkpoint("best", row))
                save_checkpoint(out / "last.pt", checkpoint("last"))
                _write_history(out, history)
            # The signal came on the epoch's last step, or during validation or saving (any rank's counts).
            if _any_rank(stopping or stop.requested, d, device) and epoch < cfg.epochs:
                raise Interrupted(out / "last.pt")
    say(f"best validation loss {best:.4f}; wrote {out / 'best.pt'}, {out / 'last.pt'} and {out / 'history.json'}")
    hint = _undertrained(model, val_data, out) if d.main and console is not None else None
    if hint:
        say(hint, style="yellow")
    if d.world > 1:
        dist.barrier()
    return TrainResult(out / "best.pt", model)
