"""Settings as frozen values, without torch: a model's (``ModelConfig`` and its ``Decoding``)
and a training run's (``TrainConfig``, and ``ModelOptions``, the model a ``train`` command asks for).

Checkpoints store ``ModelConfig`` and ``TrainConfig`` as dicts, read back through their
``from_dict``. They live here, apart from model.py and run.py (which use torch), so that
``colorcli train --help`` shows the defaults they keep without loading torch; model.py and
run.py import them from here, so ``from colorcli.model import ModelConfig`` and
``from colorcli.run import TrainConfig`` work as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from colorcli.errors import UsageError

HEADS = ("bins", "regress")
REGRESSION_LOSSES = ("mse", "l1", "huber", "logmse")
# Losses each head trains with; "psnr" scores the decoded RGB itself (see psnr_objective).
HEAD_LOSSES = {"bins": ("ce", "psnr"), "regress": (*REGRESSION_LOSSES, "psnr")}
SEED_DEFAULTS = {"width": 32, "head": "regress", "loss": "mse"}  # the seed design (as in the notebooks)


@dataclass(frozen=True)
class Decoding:
    """How a model's output becomes colour, apart from what the model is (its architecture).

    temperature (0.01..1; bins head): the annealed mean's temperature, 1 the posterior
    mean, towards 0 its mode. prior_correction (0..1; bins head): how much of the class
    rebalancing prior is divided out again (1 all, 0 none). confidence (0 or more; bins
    head): fade each pixel's chrominance by (1 - H / log K) ** confidence, H the entropy of
    its decoded class distribution over K bins (0: off). saturation (0 or more): factor on
    every prediction's chrominance. tile_saturation (0 or more): a further factor for photos
    cut into more than one tile (a tile shows part of a scene, so the model colours it less
    surely than a whole image); applied by the tiling code, not by the model.

    Checkpoints store these among the ``ModelConfig`` fields (every file written so far
    does), so the config keeps them as its stored form; ``ModelConfig.decoding`` reads them
    out as one value, which the model's decoding and the tiling code use.
    """

    temperature: float = 1.0
    prior_correction: float = 1.0
    confidence: float = 0.0
    saturation: float = 1.0
    tile_saturation: float = 1.0

    def tile_factor(self, tiles: int) -> float:
        """The chrominance factor for a photo cut into ``tiles`` tiles: ``tile_saturation``, except for
        one tile, which shows the whole picture as in training."""
        return 1.0 if tiles <= 1 else float(self.tile_saturation)


DECODING_FIELDS = tuple(f.name for f in fields(Decoding))


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint.

    width: channels of the first U-Net level (doubles per level); depth: number of
    2x downsamplings. head "bins" classifies CbCr over a grid of ``bin_spacing``
    units (Zhang et al. 2016) with class rebalancing ``rebalance`` (Zhang's lambda: 0 = weights 1/p,
    1 = no rebalancing); "regress" predicts CbCr directly with ``loss``. ``temperature``,
    ``prior_correction``, ``confidence``, ``saturation`` and ``tile_saturation`` are the stored
    form of the model's :class:`Decoding` (read them as ``config.decoding``): how its output
    becomes colour, not what the model is. ``head_scale``
    2 predicts chrominance at half resolution and upsamples it bilinearly, as JPEG's
    4:2:0 subsampling stores it (and so do the CIFAR JPEGs it trains on); 1 predicts
    at full resolution. ``norm`` "batch" or "group" (GroupNorm does not depend on
    the batch, so distributed CPU runs match single-process ones exactly).
    ``aux_logmse`` adds that weight times the per-image log-MSE of the bins head's
    posterior mean to its cross-entropy (the quantity mean per-image PSNR averages).
    ``loss`` "psnr" (either head) trains on the decoded 8-bit-scale RGB exactly as it is
    shipped: mean per-image PSNR, plus ``vivid`` dB of reward per unit of the output's
    colorfulness (see :func:`colorcli.model.psnr_objective`).
    ``tile``: the side, in pixels, of the square inputs the model is trained on and that
    colorize cuts photos into (32 for CIFAR models, larger for photo models: more of the
    scene in view). ``context``: a global-context branch (Iizuka, Simo-Serra and Ishikawa
    2016): the bottleneck's features averaged over the whole input, passed through a small
    MLP and added back at every position, so each pixel's colour can depend on the scene.
    ``scale``: the working scale colorize uses by default for this model (the photo's
    shorter side, in pixels, before it is cut into tiles).
    """

    arch: str = "unet"
    width: int = 32
    depth: int = 3
    head: str = "bins"
    loss: str = "ce"
    bin_spacing: float = 16.0
    rebalance: float = 0.5
    temperature: float = Decoding.temperature
    prior_correction: float = Decoding.prior_correction
    saturation: float = Decoding.saturation
    head_scale: int = 2
    norm: str = "batch"
    aux_logmse: float = 0.0
    vivid: float = 0.0
    tile_saturation: float = Decoding.tile_saturation
    tile: int = 32
    context: bool = False
    scale: int = 96
    confidence: float = Decoding.confidence

    @property
    def decoding(self) -> Decoding:
        """The decoding settings stored in this config, as one value."""
        return Decoding(**{name: getattr(self, name) for name in DECODING_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**checked_types(cls, d))


# Python types of the field annotations a stored config may hold (read back from a file).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
}


def checked_types(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """``d`` if each value has its field's type (plain scalars; other fields pass), else a
    UsageError naming the first that does not: a hand-edited or foreign file, read back."""
    for f in fields(cls):
        if f.name not in d:
            continue
        names = [part.strip() for part in str(f.type).split("|")]
        if not all(name in _TYPES for name in names):
            continue
        allowed = tuple(t for name in names for t in _TYPES[name])
        value = d[f.name]
        wrong_bool = isinstance(value, bool) and bool not in allowed  # True is an int to Python, not here
        if wrong_bool or not isinstance(value, allowed):
            raise UsageError(f"{f.name} is {value!r}, not {' or '.join(names)}")
    return d


# ---- a training run

SCHEDULES = ("onecycle", "plateau")
MIX_SIDE = 32  # a --mix dataset is kept at CIFAR's size (50,000 images at 64x64 would be 614 MB)
BATCH_SIZE = 128  # the batch when none is given; a smaller folder gets the largest that fits (fitting_batch)


def _setting(default: Any) -> Any:
    """A field that is None until given; a new run fills in ``default`` (``TrainConfig.filled``)."""
    return field(default=None, metadata={"default": default})


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; stored in checkpoints so a run can be resumed as it was.

    None means not given: ``filled`` puts each field's default in (a stored config is always
    filled). batch_size is the global batch (split across ranks under torchrun); None fits it
    to the data: ``BATCH_SIZE``, or the largest that a smaller folder fills. lr is the
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
    validation split and the run's identity are the main dataset's). mix_native: lay the mix's
    images at their own size, (tile / their side) ** 2 to a tile (CIFAR's 32x32 four to a
    64x64 tile), instead of enlarging each to the tile, so their edges and textures stay as
    sharp as a photo's at its working scale.
    balance: draw a folder's subfolders (its sources) more evenly than their sizes: each
    image weighs n ** -balance, n its subfolder's size (0: every image equally often, 1:
    every subfolder); an epoch draws as many images as before, with replacement.
    """

    dataset: str | None = _setting("cifar10")
    data_dir: str | None = None
    mirror: str | None = None
    out: str | None = _setting("runs/colorcli")
    epochs: int | None = _setting(18)
    batch_size: int | None = None
    lr: float | None = _setting(2e-3)
    weight_decay: float | None = _setting(1e-4)
    schedule: str | None = _setting("onecycle")
    val_fraction: float | None = _setting(0.1)
    limit: int | None = None
    seed: int | None = _setting(0)
    device: str | None = _setting("auto")
    compile: bool | None = _setting(False)
    threads: int | None = None
    init: str | None = None
    skip_gray: bool | None = _setting(True)
    zoom: float | None = _setting(0.0)
    zoom_min: float | None = _setting(0.5)
    scale_min: int | None = None
    scale_max: int | None = None
    mix: str | None = None
    mix_share: float | None = _setting(0.5)
    mix_native: bool | None = _setting(False)
    balance: float | None = _setting(0.0)

    @property
    def scales(self) -> tuple[int, int] | None:
        if self.scale_max is None:
            return None
        return (self.scale_min or self.scale_max, self.scale_max)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """What a new run fills in for each setting not given (batch_size aside: fitted to the data)."""
        return {f.name: f.metadata["default"] for f in fields(cls) if "default" in f.metadata}

    def filled(self) -> TrainConfig:
        """These settings with each one not given at its default (batch_size stays None until fitted)."""
        return replace(self, **{k: v for k, v in self.defaults().items() if getattr(self, k) is None})

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**checked_types(cls, {k: v for k, v in d.items() if k in known}))


@dataclass(frozen=True)
class ModelOptions:
    """The model a ``train`` command asks for, None where an option was not given: a new run
    takes ``ModelConfig``'s default (the loss: its head's first), a fine-tune the starting
    model's (``fine_tune_config``), a resumed run its own."""

    arch: str | None = None
    width: int | None = None
    depth: int | None = None
    head: str | None = None
    loss: str | None = None
    norm: str | None = None
    aux_logmse: float | None = None
    vivid: float | None = None
    context: bool | None = None
    tile: int | None = None
    scale: int | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def config(self) -> ModelConfig:
        """The model config of a new run from scratch (a fine-tune's comes from its starting
        model: ``run.fine_tune_config``)."""
        if self.arch == "seed":
            unet_only = {
                "--width": self.width,
                "--head": self.head,
                "--norm": self.norm,
                "--aux-logmse": self.aux_logmse,
                "--depth": self.depth,
                "--context": self.context,
                "--tile": self.tile,
            }
            if any(v is not None for v in unet_only.values()):
                flags = ", ".join(k for k, v in unet_only.items() if v is not None)
                raise UsageError(f"{flags}: only shape the unet; the seed design is fixed (as in the notebooks)")
            seed = {k: v for k, v in self.given().items() if k in ("loss", "vivid")}  # the rest is fixed
            return ModelConfig(**{**SEED_DEFAULTS, "arch": "seed", **seed})
        head_losses = HEAD_LOSSES.get(self.head or ModelConfig.head, (ModelConfig.loss,))
        return ModelConfig(**{"loss": head_losses[0], **self.given()})


def shown_defaults() -> tuple[dict[str, Any], dict[str, Any]]:
    """The values ``train`` options not given take in a new run, for its help: (the training
    settings', shown as the options' defaults; the model's, which the help text names)."""
    return {**TrainConfig.defaults(), "batch_size": BATCH_SIZE}, {f.name: f.default for f in fields(ModelConfig)}
