"""The `colorcli` app itself: version, help pages, what importing it loads, and errors any command may meet."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from colorcli import __version__
from colorcli.cli import app
from helpers import colour_image, invoke, tiny_train_args


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.output


@pytest.mark.parametrize("command", ["train", "eval", "colorize"])
def test_every_command_has_help(command):
    r = invoke(command, "--help")
    assert r.exit_code == 0
    assert "--device" in r.output


def _help(*args: str) -> str:
    """A help page as a user's terminal shows it, wide enough that no option wraps."""
    return CliRunner().invoke(app, [*args], env={"COLUMNS": "200"}, terminal_width=200).output


def test_help_lists_choices_and_commands_in_the_order_a_newcomer_needs_them():
    top = _help("-h")
    names = [line.split()[1] for line in top.splitlines() if line.startswith("│ ") and line.split()[1].isalpha()]
    assert [n for n in names if n in ("colorize", "eval", "train", "export")] == ["colorize", "eval", "train", "export"]
    assert "--install-completion" in top and "--show-completion" in top
    train, colorize, ev = _help("train", "-h"), _help("colorize", "-h"), _help("eval", "-h")
    for page, choices in (
        (train, ["<auto|cpu|cuda|mps>", "<unet|seed>", "<bins|regress>", "<ce|psnr|mse|l1|huber|logmse>"]),
        (train, ["<onecycle|plateau>", "<batch|group>"]),
        (colorize, ["<png|jpg|jpeg|webp|tif|tiff|bmp>", "<auto|cpu|cuda|mps>"]),
        (ev, ["<auto|cpu|cuda|mps>"]),
    ):
        assert all(c in page for c in choices), page
    for page in (top, train, colorize, ev, _help("export", "-h")):
        assert "<bool>" not in page  # flags take no value
        for option in ("--device", "--format", "--arch", "--head", "--loss", "--norm", "--schedule"):
            assert not [line for line in page.splitlines() if f" {option} " in line and "<str>" in line], page
        assert page is top or "Example" in page  # every command shows how it is used


def test_choice_options_offer_what_the_library_accepts():
    from colorcli.cli import Arch, Head, ImageFormat, Loss, Norm, Schedule
    from colorcli.config import SCHEDULES
    from colorcli.images import OUTPUT_FORMATS
    from colorcli.model import ARCHS, HEAD_LOSSES, HEADS

    assert [a.value for a in Arch] == list(ARCHS) and [h.value for h in Head] == list(HEADS)
    assert {loss.value for loss in Loss} == {x for losses in HEAD_LOSSES.values() for x in losses}
    assert [s.value for s in Schedule] == list(SCHEDULES) and [n.value for n in Norm] == ["batch", "group"]
    assert ["." + f.value for f in ImageFormat] == list(OUTPUT_FORMATS)
    r = invoke("train", "--schedule", "cosine")
    assert r.exit_code == 2 and "'cosine' is not one of" in r.output and "'plateau'" in r.output, r.output


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom colorcli.cli import app\n"
        "r = CliRunner().invoke(app, ['colorize', '--help'])\nassert r.exit_code == 0\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command", [[], ["colorize"], ["eval"], ["train"], ["models"], ["export"]])
def test_no_help_page_imports_torch(command):
    """`python -m colorcli [COMMAND] --help` in a fresh interpreter: train's help shows the defaults
    kept in the config dataclasses, which need no torch."""
    argv = ["colorcli", *command, "--help"]
    code = (
        f"import runpy, sys\nsys.argv = {argv!r}\n"
        "try:\n    runpy.run_module('colorcli', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
        "print('torch' in sys.modules)"
    )
    wide = {**os.environ, "COLUMNS": "200"}  # no option wraps
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=wide)
    assert r.stdout.rstrip().endswith("False") and "Usage: colorcli" in r.stdout, r.stdout
    if command == ["train"]:
        assert "[default: 18]" in r.stdout and "default 32" in r.stdout  # --epochs; --width's {width}


def test_the_colorize_command_imports_nothing_of_training(tmp_path):
    """`colorcli colorize`, run as from a shell, loads neither training, datasets nor eval, nor any
    colorcli module that uses torch.distributed."""
    from helpers import REPORT_TRAINING_MODULES

    colour_image(40, 30).save(tmp_path / "in.png")
    argv = ["colorcli", "colorize", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--device", "cpu"]
    code = (
        f"import runpy, sys\nsys.argv = {argv!r}\n"
        "try:\n    runpy.run_module('colorcli', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
        + REPORT_TRAINING_MODULES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []" and (tmp_path / "out.png").exists()


def test_end_to_end_train_eval_colorize(image_folder, tmp_path):
    run = tmp_path / "run"
    r = invoke(*tiny_train_args(image_folder, run), "--threads", "1")
    assert r.exit_code == 0, r.output
    assert (run / "best.pt").exists() and (run / "last.pt").exists()
    # one epoch of a tiny model paints nearly gray (0.05 of the colour): the closing message says so
    assert "looks undertrained" in r.output and f"--init {run / 'best.pt'}" in r.output, r.output
    r = invoke(
        "eval", "--checkpoint", run / "best.pt", "--dataset", image_folder, "--json", "--grid", tmp_path / "g.png"
    )
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["images"] == 24 and scores["gray_colorfulness"] == 0 and scores["bw_originals"] == 0
    assert scores["colorfulness_ratio"] < 0.15 and "looks undertrained" in r.stderr and "hint" not in r.stdout
    assert Image.open(tmp_path / "g.png").size[0] > 0
    r = invoke("eval", "--checkpoint", run / "best.pt", "--dataset", image_folder)
    assert r.exit_code == 0 and "gain over the gray copy" in r.stdout
    assert "headline" not in r.stdout  # no black-and-white originals here: one figure, nothing to choose
    r = invoke(
        "eval",
        "--checkpoint",
        run / "best.pt",
        "--dataset",
        image_folder,
        "--full-res",
        "--json",
        "--grid",
        tmp_path / "p.png",
    )
    assert r.exit_code == 0 and json.loads(r.stdout.strip().splitlines()[-1])["images"] == 24
    assert Image.open(tmp_path / "p.png").height == 20 + 8 * 204 + 4  # column labels, then 8 rows
    src = next(image_folder.rglob("*.png"))
    r = invoke("colorize", src, "-o", tmp_path / "c.png", "--checkpoint", run / "best.pt")
    assert r.exit_code == 0 and Image.open(tmp_path / "c.png").size == Image.open(src).size


def test_a_torchvision_that_cannot_be_imported_is_one_line_saying_what_to_install(
    tmp_path, tiny_checkpoint, monkeypatch
):
    import sys as _sys

    class Mismatched:  # what a torchvision built for another torch does on import
        def __getattr__(self, name):
            raise RuntimeError("operator torchvision::nms does not exist")

    folder = tmp_path / "photos"
    folder.mkdir()
    colour_image(40, 40).save(folder / "a.png")
    base = ("eval", "--dataset", folder, "--checkpoint", tiny_checkpoint)
    for broken in (Mismatched(), None):  # None: not installed (ImportError)
        monkeypatch.setitem(_sys.modules, "torchvision.utils", broken)
        r = invoke(*base, "--grid", tmp_path / "g.png")
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        [line] = [x for x in r.output.splitlines() if "torchvision" in x]
        assert line.startswith("colorcli: error: torchvision cannot be imported") and "pip install" in line, line
        assert not (tmp_path / "g.png").exists()


def test_a_checkpoint_with_a_setting_training_now_refuses_still_loads():
    from colorcli.errors import UsageError
    from colorcli.model import ModelConfig, build_model, check_trainable

    old = ModelConfig(width=8, depth=2, head="regress", loss="mse", aux_logmse=1.0)
    assert build_model(old) is not None  # colorize, eval and export still read it
    with pytest.raises(UsageError, match="aux_logmse"):
        check_trainable(old)


def test_running_out_of_device_memory_is_one_line_exit_1(tmp_path, monkeypatch):
    import torch

    import colorcli.train

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(colorcli.train, "train", out_of_memory)
    for i in range(4):
        colour_image(16, 16, seed=i).save(tmp_path / f"{i}.png")
    r = invoke(*tiny_train_args(tmp_path, tmp_path / "run"))
    assert r.exit_code == 1, r.output
    assert "out of memory on the device" in r.output and "--batch-size" in r.output and "Traceback" not in r.output


# Runs the CLI as if torch and torchvision were not installed (`pip install colorcli` without [train]).
WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
sys.modules["torchvision"] = None
from colorcli.cli import main
sys.argv = ["colorcli", *sys.argv[1:]]
main()
"""


def without_torch(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_without_torch_colorize_and_models_work_and_the_rest_says_what_to_install(tmp_path, tiny_checkpoint):
    colour_image(50, 40).convert("L").save(tmp_path / "in.png")
    r = without_torch("colorize", tmp_path / "in.png", "-o", tmp_path / "out.png")
    assert r.returncode == 0 and (tmp_path / "out.png").is_file(), r.stderr
    r = without_torch("models", "--json")
    assert r.returncode == 0 and '"photo"' in r.stdout, r.stderr
    for args in (
        ("train", "--dataset", tmp_path, "--out", tmp_path / "run"),
        ("eval", "--dataset", tmp_path, "--full-res"),
        ("colorize", tmp_path / "in.png", "-o", tmp_path / "pt.png", "--checkpoint", tiny_checkpoint),
    ):
        r = without_torch(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "pip install 'colorcli[train]'" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "pt.png").exists()
    r = without_torch("colorize", tmp_path / "in.png", "-o", tmp_path / "x.png", "--checkpoint", tmp_path / "nope.pt")
    assert r.returncode == 2 and "nope.pt: no such checkpoint file" in r.stderr  # not blamed on the missing torch
    r = without_torch("colorize", tmp_path / "in.png", "-o", tmp_path / "x.png", "--device", "cuda")
    assert r.returncode == 2 and "--device cuda runs the model through PyTorch" in r.stderr


def test_without_torch_the_api_colorizes_and_says_what_load_model_needs(tmp_path):
    colour_image(50, 40).convert("L").save(tmp_path / "in.png")
    code = f"""
import sys
sys.modules["torch"] = None
import colorcli
print(colorcli.colorize({str(tmp_path / "in.png")!r}, model="cifar10").size)
for call in (lambda: colorcli.load_model("cifar10"), lambda: colorcli.colorize({str(tmp_path / "in.png")!r}, model=5)):
    try:
        call()
    except Exception as e:
        print(type(e).__name__, e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "(50, 40)"
    assert lines[1].startswith("UsageError load_model needs PyTorch") and "colorcli[train]" in lines[1]
    assert lines[2].startswith("TypeError colorize's model is")


def test_without_onnxruntime_an_onnx_checkpoint_says_what_to_install(tmp_path, tiny_model):
    from colorcli.engine import export_onnx

    export_onnx(tiny_model, tmp_path / "m.onnx")
    colour_image(50, 40).convert("L").save(tmp_path / "in.png")
    code = WITHOUT_TORCH.replace(
        'sys.modules["torch"] = None\nsys.modules["torchvision"] = None', 'sys.modules["onnxruntime"] = None'
    )
    args = ["colorize", tmp_path / "in.png", "-o", tmp_path / "out.png", "--checkpoint", tmp_path / "m.onnx"]
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert (
        r.returncode == 2
        and r.stderr.strip() == "colorcli: error: onnxruntime is not installed: pip install onnxruntime"
    )
