"""A training run: its settings and its folder; starting, resuming and fine-tuning one.

A run is a folder (``TrainConfig.out``) holding checkpoints whose ``train_config`` and
``model_config`` record how it trains; ``open_run`` checks them, makes and locks the
folder. Its identity is which images it trains and validates on: the dataset (for a
folder, the names of the files it split, wherever the folder now lies), their number,
and the held-out split (``split.py``); a resumed run is refused other images here.

Options not given are None in ``TrainConfig`` and ``ModelOptions``: a new run fills them
from the defaults kept in the dataclasses (``TrainConfig`` fields, ``ModelConfig``), a
fine-tune from its starting model, and a resumed run from its own settings, refusing any
given one that differs (but where its data lies, ``RELOCATABLE``, and this machine's
``device`` and ``threads``).
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorcli.checkpoint import load_checkpoint, model_from_state, named_model_path, read_weights, settings_table
from colorcli.config import (  # (no torch) imported here as before
    BATCH_SIZE,
    MIX_SIDE,
    SCHEDULES,
    ModelOptions,
    TrainConfig,
)
from colorcli.data import CIFAR_NAMES, _not_a_dataset
from colorcli.distributed import Dist, any_rank, set_cpu_threads
from colorcli.errors import CheckpointError, ColorcliError, FolderInUse, UsageError, printable
from colorcli.files import ensure_folder, folder_held, remove_stale_temps, resolved
from colorcli.model import Colorizer, ModelConfig, build_model, check_trainable
from colorcli.split import changed_count, changed_files, changed_mix, is_dataset

if TYPE_CHECKING:
    from rich.console import Console

LOSS_SETTINGS = ("loss", "vivid", "aux_logmse")  # what a fine-tune may change; the rest comes with the weights
# What a fine-tune may grow: new layers (a deeper U-Net, the context branch) start fresh or at
# zero beside the starting weights, and the tile and working scale are no weights at all.
GROWTH_SETTINGS = ("depth", "context", "tile", "scale")
RELOCATABLE = ("dataset", "data_dir", "mirror")  # where a resumed run's data lies may change (and a --mix folder)
MACHINE = ("device", "threads")  # this machine's, not the run's: never checked on --resume


@dataclass
class Run:
    """A run about to train: its settings (all filled in; batch_size once fitted to the data),
    and the checkpoint it resumes (``state``, read from ``resume``) or the weights it fine-tunes."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    resume: Path | None = None
    state: dict[str, Any] | None = None
    init_state: dict[str, Any] | None = None

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


# ---- starting, fine-tuning and resuming a run


def new_run(cfg: TrainConfig, model: ModelConfig | ModelOptions) -> Run:
    """A run with these settings (filled in), from fresh weights or, with ``cfg.init``, from a
    starting model's: its architecture, weights, decoding and chrominance prior, with the loss
    and growth settings of ``model`` (those not given keep the starting model's)."""
    _refuse_lone_partners(cfg)
    cfg = cfg.filled()
    if not cfg.init:
        return Run(cfg, model.config() if isinstance(model, ModelOptions) else model)
    if isinstance(model, ModelOptions):
        given = asdict(model)
    else:
        given = {k: getattr(model, k) for k in LOSS_SETTINGS + GROWTH_SETTINGS}
    init_cfg, init_state, _ = read_weights(named_model_path(cfg.init))  # read once: config and weights
    _refuse_architecture(given, init_cfg)
    return Run(cfg, _fine_tuned(init_cfg, given), init_state=init_state)


def _refuse_lone_partners(cfg: TrainConfig) -> None:
    """Refuse an option given without the one it shapes (it would be silently ignored)."""
    defaults = TrainConfig.defaults()
    for given, needs in (("mix_share", "mix"), ("mix_native", "mix"), ("zoom_min", "zoom")):
        if getattr(cfg, given) not in (None, defaults[given]) and not getattr(cfg, needs):
            flag, partner = given.replace("_", "-"), needs.replace("_", "-")
            raise UsageError(f"--{flag} shapes --{partner}, which is not in use; add --{partner} or leave it out")


def fine_tune_config(init: str, **given: Any) -> ModelConfig:
    """The config of the model at ``init`` (a file or "default"), with the loss settings given.

    A setting given as None keeps the starting model's, so ``--init`` without ``--vivid``
    fine-tunes a model with the reward it was trained with.
    """
    init_cfg, _, _ = read_weights(named_model_path(init))
    _refuse_architecture(given, init_cfg)
    return _fine_tuned(init_cfg, given)


def _refuse_architecture(given: dict[str, Any], start: dict[str, Any]) -> None:
    """A fine-tune may set only the loss and growth settings (None: not given); any other
    setting given must be the starting model's own (``start``, its stored config)."""
    allowed = LOSS_SETTINGS + GROWTH_SETTINGS
    unknown = sorted(k for k, v in given.items() if v is not None and k not in allowed and v != start.get(k))
    if unknown:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
        raise UsageError(f"{flags}: a fine-tune (--init) keeps the starting model's architecture and decoding")


def _fine_tuned(init_cfg: dict[str, Any], given: dict[str, Any]) -> ModelConfig:
    """The starting model's config with the settings given (not None) in place of its own; a
    model can grow (a level, the context branch) but not shrink: its weights would not fit."""
    start = ModelConfig.from_dict(init_cfg)
    if given.get("depth") is not None and given["depth"] < start.depth:
        raise UsageError(
            f"--depth {given['depth']}: the starting model has {start.depth} levels; a fine-tune can add, not drop"
        )
    if given.get("context") is False and start.context:
        raise UsageError("--no-context: the starting model has a context branch; a fine-tune keeps it")
    return ModelConfig.from_dict({**init_cfg, **{k: v for k, v in given.items() if v is not None}})


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


def resumed_run(resume: Path, cfg: TrainConfig, model: ModelConfig | ModelOptions) -> Run:
    """The run ``resume`` continues: its own settings, in its own folder, with where its data
    lies (``RELOCATABLE``) as given and this machine's device and threads. Any other setting
    given (not None) that differs from the run's is refused."""
    if resume.suffix == ".safetensors":
        raise UsageError(f"{resume}: an exported model holds weights only, nothing to resume; fine-tune it with --init")
    state = load_checkpoint(resume, resuming=True)
    if "optimizer" not in state:
        raise UsageError(
            f"{resume}: has no training state to resume from; resume from the run's "
            f"{quoted(resume.parent / 'last.pt')}, or fine-tune this one with --init"
        )
    # Runs from before skip_gray existed trained on every image; keep their data (and so their schedule).
    saved = {"skip_gray": False, **stored_settings(resume, state, "train_config")}
    stored_settings(resume, state, "model_config")
    given = {k: v for k, v in cfg.given().items() if k not in MACHINE}
    given.update(model.to_dict() if isinstance(model, ModelConfig) else model.given())
    moved_mix = _moved_mix_folder(given.pop("mix", None), saved.get("mix"))
    _refuse_changed_settings(given, saved, state["model_config"], resume)
    relocate = {k: v for k, v in given.items() if k in RELOCATABLE} | moved_mix
    here = {"device": cfg.filled().device, "threads": cfg.threads, "out": str(resume.parent), **relocate}
    run_cfg = replace(TrainConfig.from_dict(saved).filled(), **here)
    return Run(run_cfg, ModelConfig.from_dict(state["model_config"]), resume=resume, state=state)


def _moved_mix_folder(given: str | None, had: str | None) -> dict[str, str]:
    """A resumed run's --mix given anew: where its mix folder now lies ({"mix": path}) when the
    run mixed a folder in and a folder is given; the same setting, nothing; any other change
    (a mix added, or CIFAR swapped for another dataset) is refused as a changed setting."""
    if given is None or given == had:
        return {}
    if had is not None and had not in CIFAR_NAMES and given not in CIFAR_NAMES and Path(given).is_dir():
        return {"mix": given}
    raise UsageError(
        f"--mix {given} (the run has --mix {had}): a resumed run keeps the data it mixed in; "
        "only a moved --mix folder may be given anew"
    )


def stored_settings(path: Path | str, state: dict[str, Any], key: str) -> dict[str, Any]:
    """A checkpoint's ``train_config`` or ``model_config``, refused with what is wrong unless
    it is a table of settings of the right types (a hand-edited or damaged file)."""
    table = settings_table(path, state.get(key), key)
    try:
        (TrainConfig if key == "train_config" else ModelConfig).from_dict(table)
    except UsageError as e:
        raise CheckpointError(f"{path}: bad {key}: {e}") from None
    return table


def _refuse_changed_settings(given: dict[str, Any], saved: dict[str, Any], model: dict[str, Any], resume: Path) -> None:
    """Refuse options given with --resume that differ from the run's own (they would be ignored).

    The run's settings are read with their defaults filled in, as the run used them,
    so checkpoints from before a setting existed compare as they trained.
    """
    run = {**ModelConfig.from_dict(model).to_dict(), **asdict(TrainConfig.from_dict(saved).filled())}
    if "init" in given and given["init"] != run.get("init"):
        raise UsageError("--init starts a new run from a model's weights and --resume continues a run; give one")
    changed = []
    for name, value in given.items():
        if name in RELOCATABLE:
            continue
        if name == "out":
            had: Any = resume.parent
            same = resolved(Path(value)) == resolved(resume.parent)
        else:
            had = run.get(name)
            same = value == had or (value is not None and had is not None and str(value) == str(had))
        if not same:
            changed.append(f"{_flag(name, value)} (the run has {_flag(name, had)})")
    if changed:
        raise UsageError(
            f"{'; '.join(changed)}: a resumed run keeps the settings it started with; "
            f"start a new run from its weights with --init {quoted(_weights_of(resume))} to change them"
        )


def _weights_of(resume: Path) -> Path:
    """The file a new run should start from to carry a run's weights on: its best.pt, once it has one."""
    best = resume.parent / "best.pt"
    return best if best.is_file() else resume


def check_settings(run: Run) -> None:
    """Reject a bad architecture, head, loss, schedule or augmentation before any data is loaded."""
    cfg = run.cfg
    (build_model if run.state is not None else check_trainable)(run.model_cfg)
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")
    if not (0 <= cfg.zoom <= 1 and 0 < cfg.zoom_min <= 1):
        raise UsageError(f"zoom {cfg.zoom} and zoom_min {cfg.zoom_min}: need 0 <= zoom <= 1 and 0 < zoom_min <= 1")
    if not 0 <= cfg.balance <= 1:
        raise UsageError(f"balance {cfg.balance}: need 0 <= balance <= 1")
    _check_scales(cfg.scale_min, cfg.scale_max, run.model_cfg.tile)
    _check_mix(cfg, run.model_cfg.tile)


def _check_mix(cfg: TrainConfig, tile: int) -> None:
    """Refuse a --mix that overlaps the dataset (the images held out to validate would be
    trained on), and a --mix-native tile that is no whole number of the mix's images."""
    if not cfg.mix:
        return
    if cfg.mix_native and tile % MIX_SIDE:
        raise UsageError(
            f"--mix-native lays the mix's {MIX_SIDE}x{MIX_SIDE} images side by side: the model's "
            f"{tile}-pixel tile must be a multiple of {MIX_SIDE}"
        )
    if cfg.mix in CIFAR_NAMES or cfg.dataset in CIFAR_NAMES:
        overlap = cfg.mix == cfg.dataset
    else:
        mix, data = resolved(Path(cfg.mix)), resolved(Path(cfg.dataset))
        overlap = mix.is_relative_to(data) or data.is_relative_to(mix)
    if overlap:
        raise UsageError(
            f"--mix {cfg.mix} overlaps --dataset {cfg.dataset}: the images held out to validate would be "
            "trained on; mix in another dataset"
        )


def _check_scales(scale_min: int | None, scale_max: int | None, tile: int) -> None:
    """Refuse working scales training cannot draw tiles of the model's size from."""
    if scale_min is not None and scale_max is None:
        raise UsageError("--scale-min needs --scale-max: the working scales are drawn from the range between them")
    if scale_max is None:
        return
    if scale_min is not None and scale_min > scale_max:
        raise UsageError(f"--scale-min {scale_min} is more than --scale-max {scale_max}")
    if (scale_min or scale_max) < tile:
        raise UsageError(
            f"working scale {scale_min or scale_max} is less than the model's {tile}-pixel tile: "
            "a tile would be cut from an enlarged photo; raise --scale-min/--scale-max or lower --tile"
        )


def open_run(
    cfg: TrainConfig,
    model: ModelConfig | ModelOptions,
    resume: Path | None,
    console: Console | None,
    d: Dist,
    device: torch.device,
    overwrite: bool,
    held: contextlib.ExitStack,
) -> tuple[Run, int | None]:
    """The run to train, its settings checked, its folder made and locked (in ``held``) and
    swept of a killed save's temporary files, and the CPU threads it uses (None on an accelerator)."""
    try:  # every process checks the same settings: under torchrun the main one alone says what is wrong
        if resume is not None:
            run = resumed_run(resume, cfg, model)
        else:
            run = new_run(cfg, model)
        check_settings(run)
    except ColorcliError as e:
        raise _said_once(e, d) from None
    if resume is not None and console is not None and d.main:
        console.print(f"resuming {printable(str(resume))} with the settings its run started with", markup=False)
    threads = set_cpu_threads(run.cfg.threads, d) if device.type == "cpu" else None
    batch = run.cfg.batch_size or BATCH_SIZE
    if batch % d.world:
        raise _said_once(UsageError(f"--batch-size {batch} must be divisible by the {d.world} processes"), d)
    problem = folder_problem(run, overwrite) if d.main else None
    busy = f"{run.out}: another colorcli train is writing this run folder; let it finish, or choose another --out"
    if problem is None and d.main:
        try:
            held.enter_context(folder_held(run.out, busy))
        except FolderInUse:
            problem = busy
    if any_rank(problem is not None, d, device):  # every rank stops, not only the one that looked
        error = FolderInUse if problem == busy else UsageError
        raise _said_once(error(problem or "refused by the main process"), d)
    if d.main and run.state is not None:
        remove_stale_temps(run.out)  # left by a save the run was killed in; it writes here again now
    return run, threads


def _said_once(error: ColorcliError, d: Dist) -> ColorcliError:
    """``error`` as every process raises it, printed by the main process alone (under torchrun)."""
    error.echo = d.main
    return error


# ---- the run's folder


def folder_problem(run: Run, overwrite: bool) -> str | None:
    """Why this run cannot start (or go on) in its folder with its data, or None; creates the
    folder. Looked at by the main process alone (only its machine writes and needs the data)."""
    problem = _dataset_problem(run.cfg.dataset) if run.state is None else None
    problem = problem or _run_folder_problem(run.out, fresh=run.state is None, overwrite=overwrite)
    if problem is None and run.state is not None:
        problem = _resumed_data_problem(run)
    return problem


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
            f"{out}: already holds a run ({', '.join(taken)}); continue it with --resume {quoted(out / 'last.pt')}, "
            "choose another --out, or pass --overwrite to replace it"
        )
    try:
        ensure_folder(out, "the run folder")
    except UsageError as e:
        return str(e)
    return None


RUN_FILES = ("best.pt", "last.pt", "history.json")  # what a run writes into its folder


def clear_replaced_run(out: Path) -> list[str]:
    """Remove the files of the run a fresh ``--overwrite`` run replaces, before it writes its
    own, so its folder never holds one run's best.pt beside another's last.pt; their names."""
    removed = []
    for name in RUN_FILES:
        if (out / name).exists():
            (out / name).unlink()
            removed.append(name)
    return removed


# ---- the dataset a run split


def _dataset_problem(dataset: str) -> str | None:
    """Why a new run's --dataset names no dataset, or None. Looked at before the run folder, so
    a mistyped dataset is not reported as a clash with the run already in --out."""
    return None if is_dataset(dataset) else str(_not_a_dataset(dataset))


def _resumed_data_problem(run: Run) -> str | None:
    """Why a resumed run's images are not the ones it split, judged by their names before any
    decoding, or None."""
    if not is_dataset(run.cfg.dataset):
        return f"{run.cfg.dataset}: the run's dataset folder is not there; if it moved, resume with --dataset NEWPATH"
    if run.cfg.mix and not is_dataset(run.cfg.mix):  # found before its dataset is decoded, not after
        return f"{run.cfg.mix}: the run's --mix folder is not there; if it moved, resume with --mix NEWPATH"
    mix_changed = changed_mix(run.cfg.mix, run.state) if run.cfg.mix else None
    if mix_changed:
        return f"--mix {run.cfg.mix}: {mix_changed}; a resumed run keeps the data it mixed in"
    changed = changed_files(run.cfg.dataset, run.state)
    return _split_would_change(run, changed) if changed else None


def check_image_count(run: Run, count: int) -> None:
    """Refuse a resumed run's images when their number is not the one it split."""
    changed = changed_count(count, run.state) if run.state is not None else None
    if changed:
        raise UsageError(_split_would_change(run, changed))


def _split_would_change(run: Run, changed: str) -> str:
    """Why a resumed run refuses its dataset (``changed`` says what differs), and what to do."""
    return (
        f"{run.cfg.dataset}: {changed}, so its split would change; resume with the same images, or start "
        f"a new run from its weights with --init {quoted(_weights_of(run.resume))}"
    )


# ---- messages


def count_of(n: int, thing: str) -> str:
    """'1 epoch', '18 epochs'."""
    return f"{n} {thing}{'s' * (n != 1)}"


def quoted(path: Path) -> str:
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
