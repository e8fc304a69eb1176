"""Checkpoints: safe loading, models rebuilt from their own config, and the device they run on.

A ``.pt`` checkpoint is a dict of plain data (tensors, numbers, strings) loaded
with ``torch.load(weights_only=True)``, which refuses any pickled code. A
``.safetensors`` file holds weights only, with the model config as JSON metadata;
that is the format of the default model shipped in the package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorcli.engine import FORMAT, FORMAT_VERSION, metadata_settings, settings_table
from colorcli.errors import CheckpointError, ColorcliError, NoSuchCheckpoint, UsageError, first_line
from colorcli.files import atomic_write, ensure_folder

if TYPE_CHECKING:
    import torch

    from colorcli.engine import TileModel
    from colorcli.model import Colorizer

# The models shipped inside the package, by the name --model takes: file, training data, summary.
SHIPPED_MODELS: dict[str, dict[str, str]] = {
    "photo": {
        "file": "colorcli-unet-photo.safetensors",
        "data": "13,476 of photos-train's 15,199 real photos (faces, pets, clothing, scenes; mostly "
        "non-commercial or research-only licences), with CIFAR-10 mixed in",
        "about": "the U-Net grown to 4 levels with a global-context branch, on 64x64 tiles",
        "figures": "1,014 validation photos +4.19 dB over the gray copy at 0.68 of the colour; "
        "38 held-out scene photos +0.62 dB at 0.30",
    },
    "cifar10": {
        "file": "colorcli-unet-cifar10.safetensors",
        "data": "CIFAR-10 training split (50,000 images of 32x32; research use)",
        "about": "the U-Net on 32x32 tiles; eval's default on cifar10 and cifar100",
        "figures": "CIFAR-10 colour originals +1.19 dB over the gray copy at 0.64 of the colour",
    },
}
DEFAULT_MODEL = "photo"
# What to run where PyTorch is missing (colorize with a shipped model does not need it).
INSTALL_TORCH = (
    "pip install 'colorcli[train]' (without an NVIDIA GPU, add --extra-index-url https://download.pytorch.org/whl/cpu)"
)
DEFAULT_MODEL_NAME = SHIPPED_MODELS[DEFAULT_MODEL]["file"]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save a checkpoint dict (plain data only) atomically; a failed write (a full disk) is one
    ColorcliError naming the file, and leaves the file that was there."""
    import torch

    try:
        atomic_write(Path(path), lambda f: torch.save({"format": FORMAT, "version": FORMAT_VERSION, **payload}, f))
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as a RuntimeError
        reason = getattr(e, "strerror", None) or first_line(e)
        if isinstance(e, RuntimeError):  # torch's zip writer says only that the position went wrong
            reason += "; a full disk?"
        raise ColorcliError(f"{path}: cannot write the checkpoint ({reason})") from None


def _not_a_file(path: Path, prefer: tuple[str, ...] = ("best.pt", "last.pt")) -> NoSuchCheckpoint:
    """Why a checkpoint path names no file: missing, or a run folder (pointing at the first of
    ``prefer`` it holds: best.pt to score or fine-tune, last.pt to resume)."""
    if path.is_dir():
        inside = next((path / n for n in prefer if (path / n).is_file()), None)
        hint = f"; did you mean {inside}?" if inside else "; name the checkpoint file"
        return NoSuchCheckpoint(f"{path}: is a folder{hint}")
    return NoSuchCheckpoint(f"{path}: no such checkpoint file")


def load_checkpoint(path: Path, resuming: bool = False) -> dict[str, Any]:
    """Load a ``.pt`` checkpoint without executing anything it contains (``resuming``: a
    folder given instead is pointed at its last.pt, the file a run resumes from)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise _not_a_file(path, ("last.pt",) if resuming else ("best.pt", "last.pt"))
    try:
        with warnings.catch_warnings():
            # A plain pickle makes torch warn of its protocol (and ask for an issue) before refusing it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: {_refusal(path, e)}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types on damaged files
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first_line(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a colorcli checkpoint")
    if ckpt.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('version')} is not supported "
            f"(this colorcli reads version {FORMAT_VERSION})"
        )
    missing = [k for k in ("model_config", "model") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return ckpt


# How torch's weights-only unpickler names the code it refused ("Trying to load unsupported
# GLOBAL posix.system whose module ...", in older releases "Unsupported global: GLOBAL os.system ...").
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# Pickle opcodes that import or call something: what makes a pickle run code when loaded.
_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})


def _refusal(path: Path, e: pickle.UnpicklingError) -> str:
    """Why torch's weights-only loader refused ``path``, true to the case: code, in torch's zip or
    legacy format or a plain pickle (which torch stops reading at its framing, before any code);
    other Python objects in a zip checkpoint; or a file that is no pickle torch reads."""
    zipped, named = zipfile.is_zipfile(path), _REFUSED_GLOBAL.search(str(e))
    code = named.group(1) if named else (None if zipped else _pickled_code(path))
    if code is not None:
        return (
            f"refused to load: the file holds Python code ({code}) that loading would run; a checkpoint holds data only"
        )
    if zipped and "Unsupported operand" not in str(e):
        reasons = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        why = first_line(ValueError(reasons[0])) if reasons else "no reason given"
        return f"refused to load: the file holds Python objects other than weights ({why})"
    return "not a readable checkpoint (truncated or corrupt?)"


def _pickled_code(path: Path) -> str | None:
    """What a plain pickle would import or call on loading (``module.name``, or the opcode where it
    names nothing), read opcode by opcode: pickletools only parses, it runs nothing."""
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL" and len(strings) == 2:
                    return ".".join(strings)
                if op.name in _CODE_OPCODES:
                    return f"a pickle {op.name} opcode"
                if isinstance(arg, str):
                    strings = [*strings[-1:], arg]
    except Exception:  # noqa: BLE001 - anything but a well-formed pickle: damage, not code
        return None
    return None


def model_from_state(model_config: dict[str, Any], state: dict[str, Any], source: Path) -> Colorizer:
    """Rebuild a model from its config and load weights, with a clear error on mismatch."""
    from colorcli.model import ModelConfig, build_model

    try:
        model = build_model(ModelConfig.from_dict(model_config))
    except (UsageError, TypeError) as e:
        raise CheckpointError(f"{source}: cannot rebuild its model: {e}") from None
    missing, unexpected, mismatched = _compare_state(model.state_dict(), state)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}")
        if mismatched:
            parts.append(f"shape mismatch in {', '.join(mismatched[:3])}")
        raise CheckpointError(f"{source}: weights do not fit architecture {model.config.arch!r}: {'; '.join(parts)}")
    model.load_state_dict(state)
    return model.eval()


def _compare_state(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [
        f"{k} {tuple(got[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and tuple(getattr(got[k], "shape", ())) != tuple(v.shape)
    ]
    return missing, unexpected, mismatched


def export_safetensors(
    model: torch.nn.Module, path: Path, info: dict[str, Any] | None = None, half: bool = False
) -> None:
    """Write a model's weights and config as safetensors (weights only, never code).

    info: JSON-able extras kept as metadata (the training config, metrics). half: store
    floating-point tensors as float16 (half the file; they load back into float32).
    """
    import torch
    from safetensors.torch import save

    path = Path(path)
    _check_export_path(path)
    ensure_folder(path.parent, "the output folder")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    meta = {"format": FORMAT, "version": json.dumps(FORMAT_VERSION), "model_config": json.dumps(model.config.to_dict())}
    meta.update({k: json.dumps(v) for k, v in (info or {}).items()})
    data = save(state, metadata=meta)
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        raise ColorcliError(f"{path}: cannot write ({e.strerror or e})") from None


def _check_export_path(path: Path | str) -> None:
    """Refuse an export path that is a folder or lacks a model file's suffix (.safetensors, .onnx),
    before whether it exists is asked (--overwrite would not make either of them right)."""
    if os.path.isdir(path) or str(path).endswith(("/", os.sep)):
        raise UsageError(f"{path}: is a folder; -o names the .safetensors or .onnx file to write")
    if Path(path).suffix not in (".safetensors", ".onnx"):
        raise UsageError(
            f"{path}: an exported model is a .safetensors file, or an .onnx file for colorize "
            "(colorcli reads the format by suffix)"
        )


def export_model(source: Path, path: Path | str, overwrite: bool = False, half: bool = False, **decode: float) -> None:
    """Export a checkpoint (or model) to a weights-only .safetensors file, or an .onnx file that
    colorize runs without torch (``engine.export_onnx``), with new decoding settings.

    decode: temperature, prior_correction and confidence (bins head only), saturation,
    tile_saturation, and scale (colorize's default working scale for the model).
    The training config and metrics go along as metadata; the history does not. An
    existing file is replaced only with ``overwrite``; ``half`` stores float16 weights.
    """
    _check_export_path(path)
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: exists; --overwrite replaces it")
    if path.suffix == ".onnx":
        from colorcli.engine import import_onnx

        import_onnx()  # refused before the model loads
    model = load_model(source, **decode)
    bins_only = [f"--{k.replace('_', '-')}" for k in ("temperature", "prior_correction", "confidence") if k in decode]
    if bins_only and getattr(model, "bins", None) is None:
        raise UsageError(f"{', '.join(bins_only)}: {source} has no bins head to decode")
    _, _, extras = read_weights(source)
    info = {k: v for k, v in extras.items() if k != "history"}
    if path.suffix == ".onnx":
        from colorcli.engine import export_onnx

        export_onnx(model, path, info, half=half)
    else:
        export_safetensors(model, path, info, half=half)


def read_weights(path: Path | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model config, state dict, extras such as train_config and metrics) of a .pt or .safetensors file.

    None means the default model shipped with colorcli.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():  # said before torch is needed, which a missing file would otherwise be blamed on
        raise _not_a_file(path)
    if path.suffix == ".onnx":
        raise UsageError(
            f"{path}: an .onnx model runs in colorize only; here give the model's .safetensors or .pt file"
        )
    if path.suffix != ".safetensors":
        ckpt = load_checkpoint(path)
        extras = {k: ckpt[k] for k in ("train_config", "images", "files_digest", "metrics", "history") if k in ckpt}
        return settings_table(path, ckpt["model_config"]), ckpt["model"], extras
    from safetensors import SafetensorError, safe_open

    config, decoded = safetensors_settings(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable colorcli safetensors file: {first_line(e)}") from None
    return config, state, decoded


def safetensors_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, extras such as train_config and metrics) from a .safetensors file's
    metadata, read without its weights (and without torch)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise _not_a_file(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable colorcli safetensors file: {first_line(e)}") from None
    return metadata_settings(path, meta, "safetensors")


def load_model(path: Path | None = None, **decode: float | int) -> Colorizer:
    """A model in eval mode from a ``.pt`` or ``.safetensors`` file; None = the shipped default.

    decode: overrides of the config's decoding settings (temperature, prior_correction,
    confidence, saturation, tile_saturation) and of its working ``scale`` (pixels), as export sets them.
    """
    config, state, _ = read_weights(path)
    return model_from_state({**config, **decode}, state, path or default_model_path())


def pick_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is missing is a usage error."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: no MPS device is available")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def default_model_path() -> Path:
    """The default model shipped inside the installed package (or in a source checkout's models/)."""
    return shipped_model_path(DEFAULT_MODEL)


def shipped_models() -> list[dict[str, Any]]:
    """One record per shipped model: name, whether it is the default, its training data, tile,
    working scale and figures (tile and scale read from the installed file itself)."""
    from colorcli.config import ModelConfig

    rows = []
    for name, info in SHIPPED_MODELS.items():
        config, _ = safetensors_settings(shipped_model_path(name))
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "file": info["file"],
                "model": info["about"],
                "data": info["data"],
                "tile": config.get("tile", ModelConfig.tile),  # files from before the setting: the default
                "scale": config.get("scale", ModelConfig.scale),
                "figures": info["figures"],
            }
        )
    return rows


def model_source(checkpoint: Path | None, name: str | None, dataset: str | None = None) -> Path:
    """The model file a command uses: ``--checkpoint``, else the shipped model ``--model`` names,
    else the one made for the data: the CIFAR-10 model for cifar10/cifar100, the default otherwise."""
    if checkpoint is not None and name is not None:
        raise UsageError("--checkpoint and --model both name a model; give one")
    if checkpoint is not None:
        return Path(checkpoint)
    if name is None and dataset in ("cifar10", "cifar100"):
        name = "cifar10"
    return shipped_model_path(name or DEFAULT_MODEL)


def named_model_path(spec: str | os.PathLike[str]) -> Path:
    """The file a model argument names: a shipped model by name ("default", "photo",
    "cifar10"), or else ``spec`` itself as a path (.pt or .safetensors)."""
    if isinstance(spec, str) and (spec == "default" or spec in SHIPPED_MODELS):
        return shipped_model_path(spec)
    return Path(spec)


def shipped_model_path(name: str) -> Path:
    """The file of a model shipped inside the installed package (or a source checkout's models/),
    by its name ("default" is the default model)."""
    name = DEFAULT_MODEL if name == "default" else name
    if name not in SHIPPED_MODELS:
        raise UsageError(f"no shipped model named {name!r}; choose from {', '.join(SHIPPED_MODELS)}")
    file = SHIPPED_MODELS[name]["file"]
    packaged = resources.files("colorcli") / "models" / file
    if packaged.is_file():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[2] / "models" / file
    if source_tree.is_file():
        return source_tree
    raise CheckpointError(f"the shipped model {name!r} ({file}) is not installed; pass --checkpoint PATH")


def open_colorizer(checkpoint: Path | None, name: str | None, device: str) -> TileModel:
    """The model colorize runs: ``--checkpoint`` or the shipped model ``--model`` names (None:
    the default), on ``device`` (auto, cpu, cuda, mps). ``engine``'s docstring says which
    runs it; ``--device auto`` takes the CPU for a shipped model, since at colorize's working
    scale the model is a small share of the work and starting CUDA costs seconds."""
    from colorcli.engine import OnnxTiles, TorchTiles, onnx_runtime_available

    source = model_source(checkpoint, name)
    onnx_copy = source.with_suffix(".onnx") if checkpoint is None else None
    if source.suffix == ".onnx" or (
        onnx_copy is not None and onnx_copy.is_file() and device in ("auto", "cpu") and onnx_runtime_available()
    ):
        if device not in ("auto", "cpu"):
            raise UsageError(f"{source}: an ONNX model runs on the CPU; --device {device} needs a .pt or .safetensors")
        return OnnxTiles(onnx_copy if source.suffix != ".onnx" else source)
    if importlib.util.find_spec("torch") is None:
        raise _needs_torch(source, device)
    return TorchTiles(load_model(source).to(pick_device(device)))


def _needs_torch(source: Path, device: str) -> UsageError:
    """Why colorize cannot run ``source`` on ``device`` where PyTorch is not installed."""
    if not source.is_file():
        return _not_a_file(source)
    install = f"PyTorch, which is not installed: {INSTALL_TORCH}"
    if device in ("cuda", "mps"):
        return UsageError(f"--device {device} runs the model through {install} (on the CPU no PyTorch is needed)")
    return UsageError(f"{source}: a {source.suffix} model runs through {install}, or export it as .onnx")
