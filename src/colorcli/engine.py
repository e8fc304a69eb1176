"""The model call behind colorize, run by torch or by onnxruntime, and models written as ONNX.

colorize asks one thing of a model: tiles of luma in, tiles of chrominance out. A shipped
model does that through onnxruntime, from an ONNX copy shipped beside its ``.safetensors``
file, so colorize never imports torch: with torch's CUDA build, ``import torch`` alone takes
1.3 s and 650 MiB, and onnxruntime 0.1 s and 60 MiB (``benchmarks/colorize_speed.py``). The
colours are the same to float rounding (a test runs each shipped pair side by side).

Which one runs (``checkpoint.open_colorizer``): a shipped model by name on the CPU (``--device auto``
or ``cpu``) runs through onnxruntime; a ``.onnx`` file always does; a ``.pt`` or
``.safetensors`` file, and any model on ``cuda`` or ``mps``, runs through torch. Where
onnxruntime cannot be imported (colorcli installed without its dependencies), shipped
models run through torch.

An ONNX model carries its ``ModelConfig`` as metadata, as a ``.safetensors`` file does, so
the tiling reads its tile, working scale and decoding settings from either.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from colorcli.config import ModelConfig
from colorcli.errors import CheckpointError, ColorcliError, NoSuchCheckpoint, UsageError, first_line
from colorcli.files import atomic_write, ensure_folder

if TYPE_CHECKING:
    import torch

# Every colorcli model file (.pt, .safetensors, .onnx) names this format and version.
FORMAT = "colorcli-checkpoint"
FORMAT_VERSION = 1
OPSET = 17  # onnxruntime 1.14 (2023) and later run it


@contextmanager
def in_eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode for the block (batch-norm by its running statistics, which a
    model handed over in training mode would otherwise update), then as it was."""
    training = model.training
    if training:
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()


class TorchTiles:
    """A torch model as colorize calls it: ``(b, 1, t, t)`` float32 luma in 0..255 to
    ``(b, 2, t, t)`` float32 CbCr in -128..128, on the model's own device and precision,
    in eval mode for the call (a model handed over in training mode is put back so)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    @property
    def config(self) -> ModelConfig | None:
        """The module's config as it is now (a config replaced later colours by its new settings)."""
        return getattr(self.module, "config", None)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        import torch

        weights = next(self.module.parameters())  # a model in half precision gets its tiles in half precision
        with torch.inference_mode(), in_eval_mode(self.module):
            chroma = self.module(torch.from_numpy(tiles).to(weights.device, weights.dtype))
        return chroma.float().cpu().numpy()  # (b, 2, t, t)


class OnnxTiles:
    """An ONNX model (as ``export_onnx`` writes it) run by onnxruntime on the CPU, called as
    ``TorchTiles`` is; ``config`` is the ``ModelConfig`` stored in its metadata."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise NoSuchCheckpoint(f"{path}: {'is a folder' if path.is_dir() else 'no such model file'}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are for its developers
        # Between calls the batch decodes and writes files, and checks JPEGs in a process beside:
        # threads spinning for the next call took that core (200 photos: 7% faster, 18% less CPU without)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A thread count, not onnxruntime's default (0: one per physical core of the machine, pinned,
        # which it says works badly under taskset or a container's CPU set): 4% faster over 1,000
        # small files here.
        options.intra_op_num_threads = usable_cores()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for a file it cannot read
            raise CheckpointError(f"{path}: not a readable ONNX model: {first_line(e)}") from None
        self.config = onnx_config(path, self.session.get_modelmeta().custom_metadata_map)
        luma = self.session.get_inputs()[0]
        tile = self.config.tile
        if list(luma.shape[1:]) != [1, tile, tile]:
            raise CheckpointError(f"{path}: its graph takes tiles of {luma.shape[1:]}, its config says {tile}x{tile}")
        self.input = luma.name

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        tiles = np.ascontiguousarray(tiles, dtype=np.float32)  # (b, 1, t, t)
        try:
            return self.session.run(None, {self.input: tiles})[0]  # (b, 2, t, t)
        except Exception as e:  # onnxruntime's errors derive from Exception alone: as torch's would be
            if "Failed to allocate" in str(e):
                raise MemoryError(first_line(e)) from None
            raise RuntimeError(first_line(e)) from None


TileModel = TorchTiles | OnnxTiles


def usable_cores(sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """The physical cores this process may run on: those of its affinity mask (as taskset or a
    container sets it), a core's hyperthreads counted once, as torch and onnxruntime count
    (a second thread on a core slows convolutions more than it helps). Where Linux's sysfs does
    not say, every processor the process may use; without an affinity mask (macOS, Windows),
    every processor."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def as_tile_model(model: Any) -> TileModel:
    """A model as colorize calls it: a ``TorchTiles`` or ``OnnxTiles`` as it is, a torch module wrapped."""
    return model if isinstance(model, (TorchTiles, OnnxTiles)) else TorchTiles(model)


def settings_table(path: Path | str, table: Any, key: str = "model_config") -> dict[str, Any]:
    """A file's ``model_config`` or ``train_config``, refused unless it is a table of settings."""
    if not isinstance(table, dict):
        raise CheckpointError(f"{path}: its {key} is {type(table).__name__}, not a table of settings")
    return table


def metadata_settings(path: Path, meta: dict[str, str], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, extras such as train_config and metrics) from the string metadata of a
    ``kind`` model file (.safetensors, .onnx), each value JSON; refused unless colorcli wrote it
    in a format version this colorcli reads."""
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a colorcli model file (its metadata names no colorcli format)")
    try:
        decoded = {k: json.loads(v) for k, v in meta.items() if k != "format"}
        config = decoded.pop("model_config")
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable colorcli {kind} file: {first_line(e)}") from None
    version = decoded.pop("version", FORMAT_VERSION)  # files exported before it was written are version 1
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: model file format version {version} is not supported "
            f"(this colorcli reads version {FORMAT_VERSION})"
        )
    return settings_table(path, config), decoded


def onnx_config(path: Path, meta: dict[str, str]) -> ModelConfig:
    """The ``ModelConfig`` an ONNX model file carries in its metadata, refused unless colorcli wrote it."""
    config, _ = metadata_settings(path, meta, "ONNX")
    try:
        return ModelConfig.from_dict(config)
    except (UsageError, TypeError) as e:
        raise CheckpointError(f"{path}: cannot read its model config: {e}") from None


def onnx_runtime_available() -> bool:
    """Whether onnxruntime can be imported (it is a dependency; a platform without its wheels falls back to torch)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: torch.nn.Module, path: Path, info: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write a model as ONNX (opset 17) for onnxruntime: luma tiles (b, 1, t, t) in, CbCr out,
    any batch size, its config and ``info`` as metadata.

    half: store the weights as float16, each cast back to float32 when the model is loaded
    (half the file; a model exported from a float16 ``.safetensors`` loses nothing).
    Needs the ``onnx`` package (``pip install 'colorcli[onnx]'``).
    """
    import copy

    import torch

    onnx = import_onnx()
    path = Path(path)
    ensure_folder(path.parent, "the output folder")
    tile = model.config.tile
    example = torch.full((1, 1, tile, tile), 128.0)  # (1, 1, t, t): mid-gray luma
    buffer = io.BytesIO()
    # torch 2.9 made the torch.export-based exporter the default; this graph needs the tracing one
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), in_eval_mode(model), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: a tile's size is fixed
        torch.onnx.export(
            copy.deepcopy(model).float().cpu(), (example,), buffer, input_names=["luma"], output_names=["cbcr"],
            dynamic_axes={"luma": {0: "batch"}, "cbcr": {0: "batch"}}, opset_version=OPSET,
            do_constant_folding=False, **legacy,
        )  # fmt: skip
    proto = onnx.load_from_string(buffer.getvalue())
    if half:
        _store_half(proto)
    meta = {"format": FORMAT, "version": json.dumps(FORMAT_VERSION), "model_config": json.dumps(model.config.to_dict())}
    meta.update({k: json.dumps(v) for k, v in (info or {}).items()})
    onnx.helper.set_model_props(proto, meta)
    data = proto.SerializeToString()
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        raise ColorcliError(f"{path}: cannot write ({e.strerror or e})") from None


def import_onnx() -> Any:
    """The onnx package, which writing an .onnx model needs (torch's exporter writes through it)."""
    try:
        import onnx
    except ImportError:
        raise UsageError("writing an .onnx model needs the onnx package: pip install 'colorcli[onnx]'") from None
    return onnx


def _store_half(proto: Any) -> None:
    """Store an ONNX graph's float32 weights as float16, each behind a Cast back to float32
    (onnxruntime folds the casts when it loads the model, so it computes in float32)."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for init in proto.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "::half")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "::half"], [name], to=TensorProto.FLOAT))
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(casts + nodes)
