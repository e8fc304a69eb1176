"""engine.py: the model call colorize makes, by torch or by onnxruntime, and models written as ONNX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import colorcli
from colorcli.checkpoint import SHIPPED_MODELS, open_colorizer, shipped_model_path
from colorcli.engine import OnnxTiles, TorchTiles, as_tile_model, export_onnx
from colorcli.errors import CheckpointError, UsageError
from colorcli.model import build_model
from helpers import TINY

pytest.importorskip("onnx")


EXAMPLE = Path(__file__).parents[1] / "examples" / "chelsea-gray.png"


def random_tiles(count: int, tile: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((count, 1, tile, tile)) * 255).astype(np.float32)  # (b, 1, t, t)


def photo_tiles(tile: int) -> np.ndarray:
    """Four tiles of a real photo's luma (the example cat), at about the scale colorize shows it."""
    from PIL import Image

    gray = np.asarray(Image.open(EXAMPLE).convert("L").resize((2 * tile, 2 * tile)), dtype=np.float32)
    quads = gray.reshape(2, tile, 2, tile).transpose(0, 2, 1, 3)  # (2, 2, t, t): row and column of each tile
    return np.ascontiguousarray(quads.reshape(4, 1, tile, tile))  # (4, 1, t, t)


@pytest.mark.parametrize("name", list(SHIPPED_MODELS))
def test_each_shipped_onnx_copy_is_its_safetensors_model(name):
    """Re-exporting one file of a pair and not the other fails here: same config, same colours."""
    path = shipped_model_path(name)
    onnx_model, torch_model = OnnxTiles(path.with_suffix(".onnx")), TorchTiles(colorcli.load_model(name))
    assert onnx_model.config == torch_model.config
    tiles = photo_tiles(onnx_model.config.tile)
    a, b = onnx_model(tiles), torch_model(tiles)
    assert a.shape == b.shape == (4, 2, onnx_model.config.tile, onnx_model.config.tile)
    assert np.abs(a - b).max() < 0.01  # CbCr units of -128..128: far below one 8-bit level
    assert np.abs(b).mean() > 1  # and not two gray models agreeing


@pytest.mark.parametrize("half", [False, True])
def test_an_exported_onnx_model_runs_as_its_torch_model(tmp_path, tiny_model, half):
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_model, path, {"metrics": {"val_psnr": 20.0}}, half=half)
    onnx_model = OnnxTiles(path)
    assert onnx_model.config == TINY
    tiles = random_tiles(3, TINY.tile)
    expected = TorchTiles(tiny_model)(tiles)
    # half: the weights rounded to float16 (the tiny model's are float32)
    assert np.abs(onnx_model(tiles) - expected).max() < (0.5 if half else 1e-3)
    assert np.abs(onnx_model(tiles[:1]) - expected[:1]).max() < (0.5 if half else 1e-3)  # any batch size


def test_half_storage_halves_the_file(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY.__class__(width=16, depth=2)).eval()
    export_onnx(model, tmp_path / "full.onnx")
    export_onnx(model, tmp_path / "half.onnx", half=True)
    full, half = (tmp_path / "full.onnx").stat().st_size, (tmp_path / "half.onnx").stat().st_size
    assert half < 0.6 * full


def test_an_onnx_file_colorcli_did_not_write_is_refused_in_one_line(tmp_path, tiny_model):
    import onnx

    path = tmp_path / "other.onnx"
    export_onnx(tiny_model, path)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    with pytest.raises(CheckpointError, match="other.onnx: not a colorcli model file"):
        OnnxTiles(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"junk.onnx: not a readable ONNX model") as e:
        OnnxTiles(tmp_path / "junk.onnx")
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="missing.onnx: no such model file"):
        OnnxTiles(tmp_path / "missing.onnx")


def test_shipped_models_run_through_onnxruntime_on_the_cpu_and_files_by_their_suffix(tmp_path, tiny_checkpoint):
    assert isinstance(open_colorizer(None, None, "auto"), OnnxTiles)
    assert isinstance(open_colorizer(None, "cifar10", "cpu"), OnnxTiles)
    assert isinstance(open_colorizer(tiny_checkpoint, None, "auto"), TorchTiles)
    # the shipped .safetensors named as a file runs through torch: a way to compare the two
    assert isinstance(open_colorizer(shipped_model_path("photo"), None, "cpu"), TorchTiles)
    onnx_file = tmp_path / "tiny.onnx"
    export_onnx(colorcli.load_model(tiny_checkpoint), onnx_file)
    assert isinstance(open_colorizer(onnx_file, None, "auto"), OnnxTiles)
    with pytest.raises(UsageError, match="an ONNX model runs on the CPU"):
        open_colorizer(onnx_file, None, "cuda")


def test_without_onnxruntime_a_shipped_model_runs_through_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert isinstance(open_colorizer(None, None, "cpu"), TorchTiles)


def test_a_torch_model_in_training_mode_is_called_in_eval_mode_and_left_so(tiny_model):
    tiny_model.train()
    wrapped = as_tile_model(tiny_model)
    assert as_tile_model(wrapped) is wrapped
    tiles = random_tiles(2, TINY.tile)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    out = wrapped(tiles)
    assert tiny_model.training
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())  # no batch-norm update
    tiny_model.eval()
    assert np.array_equal(out, wrapped(tiles))


def test_colorize_with_a_shipped_model_never_imports_torch(tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.new("L", (90, 70), 120).save(src)
    code = (
        "import sys, colorcli; from colorcli.cli import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['colorize', {str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}]); "
        "colorcli.colorize(" + repr(str(src)) + "); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "False"]
    assert (tmp_path / "out.png").is_file()


def test_export_refuses_an_onnx_file_as_a_source_and_other_commands_name_the_file(tmp_path, tiny_model):
    onnx_file = tmp_path / "tiny.onnx"
    export_onnx(tiny_model, onnx_file)
    with pytest.raises(UsageError, match="tiny.onnx: an .onnx model runs in colorize only"):
        colorcli.load_model(onnx_file)
    assert Path(onnx_file).is_file()


def test_colorize_through_onnxruntime_gives_the_photo_torch_gives():
    from PIL import Image

    gray = Image.open(EXAMPLE).convert("L")
    by_onnx = np.asarray(colorcli.colorize(gray), dtype=int)  # the default: the photo model's .onnx copy
    by_torch = np.asarray(colorcli.colorize(gray, model=colorcli.load_model("photo")), dtype=int)
    diff = np.abs(by_onnx - by_torch)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_onnxruntime_errors_become_the_runtime_and_memory_errors_a_batch_reports(tmp_path, tiny_model):
    """The batch reports a RuntimeError or MemoryError per file and goes on; onnxruntime's own
    errors derive from Exception alone and would have stopped it with a traceback."""
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_model, path)
    with pytest.raises(RuntimeError) as e:
        OnnxTiles(path)(random_tiles(2, TINY.tile + 1))  # tiles of the wrong size
    assert "\n" not in str(e.value)


def test_an_onnx_model_whose_graph_and_config_disagree_on_the_tile_is_refused(tmp_path, tiny_model):
    import json

    import onnx

    path = tmp_path / "tiny.onnx"
    export_onnx(tiny_model, path)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props["model_config"] = json.dumps({**json.loads(props["model_config"]), "tile": 64})
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))
    with pytest.raises(CheckpointError, match="tiny.onnx: its graph takes tiles of"):
        OnnxTiles(path)


def test_export_leaves_the_callers_model_as_it_was(tmp_path, tiny_model):
    model = tiny_model.half()
    export_onnx(model, tmp_path / "m.onnx")
    assert next(model.parameters()).dtype == torch.float16


def test_threads_are_one_per_physical_core_the_process_may_use(tmp_path, monkeypatch):
    from colorcli.engine import usable_cores

    for cpu, core in enumerate([0, 1, 0, 1, 2, 2]):  # six processors: three cores with two threads each
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    assert usable_cores(tmp_path) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 2}, raising=False)  # taskset -c 0,2: one core
    assert usable_cores(tmp_path) == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 6}, raising=False)  # sysfs silent on cpu6
    assert usable_cores(tmp_path) == 2
