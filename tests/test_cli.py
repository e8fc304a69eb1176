import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorcli import __version__
from colorcli.cli import app
from helpers import colour_image, tiny_train_args

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


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


def test_colorize_usage_errors_exit_2(tmp_path):
    assert invoke("colorize", "-").exit_code == 2  # standard input has no name to write a result beside
    colour_image(8, 8).save(tmp_path / "a.png")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "out.xyz")
    assert r.exit_code == 2 and "out.xyz" in r.output and "Traceback" not in r.output
    r = invoke("colorize", tmp_path / "a.png", tmp_path / "a.png", "-o", tmp_path / "o", "--format", "xyz")
    assert r.exit_code == 2 and "'xyz' is not one of" in r.output and "'webp'" in r.output, r.output


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _luma_gap(result: Image.Image, source: Image.Image) -> float:
    """Mean absolute difference of the two images' 8-bit luma."""
    a = np.asarray(result.convert("L"), dtype=np.int16)
    return float(np.abs(a - np.asarray(source.convert("L"), dtype=np.int16)).mean())


def test_without_o_each_result_goes_beside_its_input_and_a_rerun_skips_it(tmp_path, tiny_checkpoint):
    album, other = tmp_path / "album", tmp_path / "other"
    (album / "sub").mkdir(parents=True)
    other.mkdir()
    colour_image(40, 30, seed=1).save(album / "a.png")
    colour_image(40, 30, seed=2).save(album / "a.jpg")  # the same stem: told apart by the suffix
    colour_image(30, 40, seed=3).save(album / "sub" / "c.png")
    colour_image(36, 36, seed=4).save(other / "d.png")
    ckpt = ("--checkpoint", tiny_checkpoint)
    r = invoke("colorize", album / "a.png", *ckpt)
    assert r.exit_code == 0, r.output
    assert _luma_gap(Image.open(album / "a-color.png"), Image.open(album / "a.png")) <= 1.0
    r = invoke("colorize", album / "a.png", *ckpt)  # never overwritten: skipped, and said to be
    assert r.exit_code == 0 and f"skipped: {album / 'a-color.png'} exists" in r.output, r.output
    r = invoke("colorize", album, other / "d.png", "--recursive", "--format", "jpg", *ckpt)
    assert r.exit_code == 0, r.output
    assert "left out 1 earlier result(s) beside their inputs (a-color.png)" in r.output  # not a-color-color.jpg
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*-color*")) == [
        "album/a-color.png",
        "album/a-color_jpg.jpg",
        "album/a-color_png.jpg",
        "album/sub/c-color.jpg",
        "other/d-color.jpg",
    ]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*-color*")}
    r = invoke("colorize", album, other / "d.png", "--recursive", "--format", "jpg", *ckpt)
    assert r.exit_code == 0 and "0 colorized, 4 skipped" in r.output, r.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*-color*")} == before


def test_standard_input_to_standard_output_and_nothing_else_on_it(tmp_path, tiny_checkpoint):
    photo = colour_image(50, 34, seed=5)
    ckpt = ("--checkpoint", tiny_checkpoint)
    r = runner.invoke(app, ["colorize", "-", "-o", "-", *map(str, ckpt)], input=_png(photo))
    assert r.exit_code == 0, r.stderr
    out = r.stdout_bytes
    assert out.startswith(b"\x89PNG\r\n\x1a\n") and out.endswith(b"IEND\xaeB`\x82")  # one PNG, nothing around it
    result = Image.open(io.BytesIO(out))
    assert result.size == (50, 34) and _luma_gap(result, photo) <= 1.0
    r = runner.invoke(app, ["colorize", "-", "-o", "-", "--format", "webp", *map(str, ckpt)], input=_png(photo))
    assert r.exit_code == 0 and Image.open(io.BytesIO(r.stdout_bytes)).format == "WEBP"
    r = runner.invoke(
        app, ["colorize", "-", "-o", str(tmp_path / "from-stdin.jpg"), *map(str, ckpt)], input=_png(photo)
    )
    assert r.exit_code == 0 and Image.open(tmp_path / "from-stdin.jpg").size == (50, 34) and not r.stdout_bytes
    photo.save(tmp_path / "p.png")
    r = invoke("colorize", tmp_path / "p.png", "-o", "-", *ckpt)
    assert r.exit_code == 0 and Image.open(io.BytesIO(r.stdout_bytes)).size == (50, 34)
    r = runner.invoke(app, ["colorize", "-", "-o", "-", *map(str, ckpt)], input=b"not an image")
    assert r.exit_code == 1 and "standard input: not a readable image" in r.stderr and not r.stdout_bytes
    r = runner.invoke(app, ["colorize", "-", "-o", "-", *map(str, ckpt)], input=b"")
    assert r.exit_code == 1 and "standard input: empty" in r.stderr, r.stderr


def test_standard_input_with_json_reports_its_one_image_as_a_batch_does(tmp_path, tiny_checkpoint):
    photo = Image.new("RGBA", (30, 20), (90, 120, 150, 128))  # transparency a JPEG cannot keep: a note
    args = ["colorize", "-", "-o", str(tmp_path / "out.jpg"), "--json", "--checkpoint", str(tiny_checkpoint)]
    r = runner.invoke(app, args, input=_png(photo))
    assert r.exit_code == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["input"] == "-" and record["output"] == str(tmp_path / "out.jpg") and record["status"] == "ok"
    assert "transparency left out" in record["note"] and "note:" not in r.stderr
    r = runner.invoke(app, args, input=_png(photo))
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "skipped"
    r = runner.invoke(app, [*args, "--overwrite"], input=b"not an image")
    record = json.loads(r.stdout)
    assert r.exit_code == 1 and record["status"] == "failed" and "not a readable image" in record["error"]


@pytest.mark.parametrize("value", ["inf", "nan", "5000"])
def test_a_saturation_that_is_no_finite_number_is_a_usage_error(tmp_path, tiny_checkpoint, value):
    colour_image(20, 20).save(tmp_path / "a.png")
    r = invoke(
        "colorize", tmp_path / "a.png", "-o", tmp_path / "b.png", "--saturation", value, "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 2 and "saturation" in r.output and ("1000" in r.output or "1,000" in r.output), r.output
    assert not (tmp_path / "b.png").exists()


def test_standard_input_and_output_take_one_image(tmp_path, tiny_checkpoint):
    colour_image(20, 20).save(tmp_path / "a.png")
    (tmp_path / "folder").mkdir()
    for args, says in (
        (["-"], "give -o FILE, or -o -"),
        (["-", tmp_path / "a.png", "-o", tmp_path / "out/"], "give it alone, once"),
        (["-", "-", "-o", tmp_path / "out/"], "give it alone, once"),
        ([tmp_path / "a.png", tmp_path / "a.png", "-o", "-"], "-o - (standard output) takes one image"),
        ([tmp_path / "folder", "-o", "-"], "name one file"),
        ([tmp_path / "a.png", "-o", "-", "--json"], "--json and -o -"),
        (["-", "-o", tmp_path / "folder"], "is a folder"),
    ):
        r = invoke("colorize", *args, "--checkpoint", tiny_checkpoint)
        assert r.exit_code == 2 and says in r.output and not r.stdout_bytes, (args, r.output)


@pytest.mark.slow
def test_a_shell_pipe_through_colorize(tmp_path, tiny_checkpoint):
    """cat x.png | colorcli colorize - -o - > y.png, as a shell runs it (a fresh process: a few seconds)."""
    import shlex

    colour_image(64, 48, seed=6).save(tmp_path / "x.png")
    q = shlex.quote
    cmd = (
        f"cat {q(str(tmp_path / 'x.png'))} | {q(sys.executable)} -m colorcli colorize - -o - "
        f"--checkpoint {q(str(tiny_checkpoint))} > {q(str(tmp_path / 'y.png'))}"
    )
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    result = Image.open(tmp_path / "y.png")
    assert result.size == (64, 48) and _luma_gap(result, Image.open(tmp_path / "x.png")) <= 1.0


def test_colorize_bad_checkpoint_is_one_line(tmp_path):
    colour_image(8, 8).save(tmp_path / "a.png")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "o.png", "--checkpoint", tmp_path / "nope.pt")
    assert r.exit_code == 2  # a path on the command line that does not exist is a usage error
    assert "nope.pt" in r.output and "no such" in r.output and "Traceback" not in r.output
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "o.png", "--checkpoint", tmp_path / "junk.pt")
    assert r.exit_code == 1
    assert "junk.pt" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.png").exists()


def test_a_model_that_fails_to_load_cancels_the_folders_damage_checks(tmp_path, monkeypatch):
    """The checks start before the model loads; a bad checkpoint must not leave the process
    checking every JPEG of the folder before colorcli can exit."""
    import colorcli.runner

    started = {}

    def start(jobs, overwrite=False):
        started.update(real(jobs, overwrite))
        return started

    real = colorcli.runner.start_damage_checks
    monkeypatch.setattr(colorcli.runner, "start_damage_checks", start)
    for i in range(20):
        colour_image(400, 300, seed=i).save(tmp_path / f"{i:02}.jpg", quality=95)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = invoke("colorize", tmp_path, "-o", tmp_path / "out", "--checkpoint", tmp_path / "junk.pt")
    assert r.exit_code == 1 and "junk.pt" in r.output
    assert len(started) == 20
    # The process may have taken a few already; the rest never run.
    assert sum(check.cancelled() for check in started.values()) >= 15


def test_colorize_missing_input_fails_with_its_name(tmp_path, tiny_checkpoint):
    r = invoke("colorize", tmp_path / "ghost.jpg", "-o", tmp_path / "o.png", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1 and "ghost.jpg" in r.output and "no such file" in r.output
    assert not (tmp_path / "o.png").exists()


def test_colorize_folder_with_a_bad_file_exits_1_and_keeps_going(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    colour_image(40, 30).save(src / "a.jpg")
    colour_image(30, 40).save(src / "b.png")
    (src / "c.jpg").write_text("not an image")
    r = invoke("colorize", src, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint, "--json")
    assert r.exit_code == 1
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(x["status"] for x in records) == ["failed", "ok", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_unwritable_output_fails_before_any_work(tmp_path, tiny_checkpoint):
    colour_image(8, 8).save(tmp_path / "a.png")
    colour_image(8, 8).save(tmp_path / "b.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = invoke(
        "colorize", tmp_path / "a.png", tmp_path / "b.png", "-o", blocker / "sub", "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 2 and "cannot create output folder" in r.output


def test_default_model_colorizes_without_checkpoint(tmp_path):
    src = tmp_path / "photo.jpg"
    colour_image(120, 90).save(src)
    r = invoke("colorize", src, "-o", tmp_path / "photo.png")
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "photo.png")
    assert out.size == (120, 90)
    gray_in = np.asarray(Image.open(src).convert("L"), dtype=np.int16)
    assert np.abs(np.asarray(out.convert("L"), dtype=np.int16) - gray_in).mean() <= 1.0


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


def test_a_dataset_that_names_nothing_is_a_usage_error_with_a_hint(tmp_path):
    r = invoke("train", "--dataset", tmp_path / "missing", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "missing: no such folder" in r.output and "Traceback" not in r.output
    r = invoke("train", "--dataset", "cifar100x", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "did you mean cifar100?" in r.output, r.output
    (tmp_path / "a.png").write_bytes(b"x")
    r = invoke("eval", "--dataset", tmp_path / "a.png")
    assert r.exit_code == 2 and "is a file" in r.output, r.output
    r = invoke("eval", "--dataset", tmp_path / "missing", "--full-res")
    assert r.exit_code == 2 and "not a folder" in r.output, r.output
    (tmp_path / "empty").mkdir()
    r = invoke("eval", "--dataset", tmp_path / "empty", "--full-res")
    assert r.exit_code == 2 and "no images found" in r.output, r.output


def test_an_empty_folder_is_a_usage_error_for_eval_as_for_colorize(tmp_path, tiny_checkpoint):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no photos here")
    for args in (
        ["eval", "--dataset", empty],
        ["eval", "--dataset", empty, "--full-res"],
        ["colorize", empty, "-o", tmp_path / "o"],
    ):
        r = invoke(*args, "--checkpoint", tiny_checkpoint)
        assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
        assert "no images found" in r.output or "no images colorcli can read" in r.output, r.output
    colour_image(40, 40).save(empty / "sub" / "a.png")  # one image, in a subfolder, is enough for eval
    assert invoke("eval", "--dataset", empty, "--checkpoint", tiny_checkpoint, "--json").exit_code == 0


def test_a_missing_dataset_is_named_before_the_run_already_in_out(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"hours of training")
    r = invoke("train", "--dataset", tmp_path / "nosuchdir", "--out", run)
    assert r.exit_code == 2 and "nosuchdir: no such folder" in r.output, r.output
    assert "already holds a run" not in r.output
    r = invoke("train", "--dataset", tmp_path, "--out", run)  # a real dataset: now the run is what stands in the way
    assert r.exit_code == 2 and "already holds a run" in r.output, r.output
    assert (run / "best.pt").read_bytes() == b"hours of training"


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


def test_a_run_that_fails_before_writing_leaves_no_empty_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("train", "--dataset", "missing", "--out", Path("runs") / "r1")
    assert r.exit_code == 2
    assert not (tmp_path / "runs").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    assert invoke("train", "--dataset", "missing", "--out", "kept").exit_code == 2
    assert (tmp_path / "kept").is_dir()


def test_eval_reports_colour_originals_apart_from_black_and_white_ones(tmp_path, tiny_checkpoint):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        colour_image(40, 32, seed=i).save(folder / f"c{i}.png")
    colour_image(40, 32, seed=9).convert("L").convert("RGB").save(folder / "bw.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    [headline] = [x for x in lines if x.startswith("headline")]
    [everything] = [x for x in lines if x.startswith("over all")]
    assert "over the 3 colour originals" in headline and "over the gray copy" in headline
    assert "over all 4 images (the table)" in everything and "Not the headline" in everything
    assert "black-and-white originals (1 here) count against any colorizer" in everything
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--json")
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["bw_originals"] == 1 and scores["color_gray_psnr"] < scores["gray_psnr"]


def test_export_stores_decoding_settings(tmp_path, tiny_checkpoint):
    out = tmp_path / "m.safetensors"
    r = invoke("export", tiny_checkpoint, "-o", out, "--temperature", "0.5", "--tile-saturation", "1.5")
    assert r.exit_code == 0, r.output
    from colorcli.checkpoint import load_model

    cfg = load_model(out).config
    assert (cfg.temperature, cfg.tile_saturation, cfg.saturation) == (0.5, 1.5, 1.0)


def test_train_loss_options_follow_the_head_the_arch_and_the_starting_model(image_folder, tmp_path):
    from colorcli.checkpoint import load_model

    r = invoke(*tiny_train_args(image_folder, tmp_path / "r"), "--head", "regress", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "r" / "best.pt").config.loss == "mse"
    r = invoke(*tiny_train_args(image_folder, tmp_path / "p"), "--loss", "psnr", "--vivid", "0.05", "--threads", "1")
    assert r.exit_code == 0, r.output
    r = invoke(*tiny_train_args(image_folder, tmp_path / "f", init=tmp_path / "p" / "best.pt"), "--threads", "1")
    assert r.exit_code == 0, r.output
    assert (
        load_model(tmp_path / "f" / "best.pt").config.loss,
        load_model(tmp_path / "f" / "best.pt").config.vivid,
    ) == (
        "psnr",
        0.05,
    )
    for bad in (["--arch", "seed", "--loss", "psnr"], ["--vivid", "0.1"]):
        r = invoke(*tiny_train_args(image_folder, tmp_path / "x"), *bad)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    r = invoke(*tiny_train_args(image_folder, tmp_path / "w", init=tmp_path / "p" / "best.pt"), "--width", "8")
    assert r.exit_code == 2 and "--width" in r.output and "architecture" in r.output, r.output


def test_a_skipped_single_file_says_so(tmp_path, tiny_checkpoint):
    colour_image(8, 8).save(tmp_path / "a.png")
    (tmp_path / "o.png").write_bytes(b"keep me")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "o.png", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0 and "skipped" in r.output and "--overwrite" in r.output
    assert (tmp_path / "o.png").read_bytes() == b"keep me"


def test_export_refuses_a_suffix_it_cannot_read_back_and_makes_folders(tmp_path, tiny_checkpoint):
    r = invoke("export", tiny_checkpoint, "-o", tmp_path / "m.pt")
    assert r.exit_code == 2 and ".safetensors" in r.output and not (tmp_path / "m.pt").exists()
    r = invoke("export", tiny_checkpoint, "-o", tmp_path / "new" / "m.safetensors")
    assert r.exit_code == 0, r.output
    r = invoke(
        "colorize", tmp_path / "none.png", "-o", tmp_path / "x.png", "--checkpoint", tmp_path / "new" / "m.safetensors"
    )
    assert "checkpoint" not in r.output and "none.png" in r.output  # the model loads; the input is what fails


def test_eval_checks_the_grid_path_first_and_skips_unreadable_photos(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    colour_image(48, 40).save(photos / "a.png")
    (photos / "bad.jpg").write_text("not an image")
    base = ("eval", "--dataset", photos, "--full-res", "--checkpoint", tiny_checkpoint)
    r = invoke(*base, "--grid", tmp_path / "grid.jpg")
    assert r.exit_code == 2 and "grid.jpg" in r.output and ".png" in r.output
    r = invoke(*base, "--grid", tmp_path / "new" / "grid.png", "--json")
    assert r.exit_code == 1, r.output  # scored, and one input failed
    assert json.loads(r.stdout.splitlines()[-1])["images"] == 1
    assert "bad.jpg" in r.output and (tmp_path / "new" / "grid.png").is_file()
    for i in range(8):  # the grid draws the first readable photos, however many come before them
        (photos / f"0{i}.jpg").write_text("not an image")
    r = invoke(*base, "--grid", tmp_path / "g2.png", "--json")
    assert r.exit_code == 1 and Image.open(tmp_path / "g2.png").height > 100, r.output
    assert "(00.jpg: not a readable image" in r.output  # the first skipped file's reason
    before = (tmp_path / "g2.png").read_bytes()
    r = invoke(*base, "--grid", tmp_path / "g2.png")
    assert r.exit_code == 2 and "--overwrite" in r.output and (tmp_path / "g2.png").read_bytes() == before
    assert invoke(*base, "--grid", tmp_path / "g2.png", "--overwrite").exit_code == 1


def test_train_on_black_and_white_images_only_points_to_keep_gray(tmp_path):
    folder = tmp_path / "bw"
    folder.mkdir()
    for i in range(12):
        colour_image(32, 32).convert("L").convert("RGB").rotate(i * 30).save(folder / f"{i}.png")
    r = invoke(*tiny_train_args(folder, tmp_path / "run"))
    assert r.exit_code == 2 and "--keep-gray" in r.output, r.output


def test_eval_holdout_from_another_folder_says_which_dataset_to_pass(image_folder, tmp_path, monkeypatch):
    r = invoke(*tiny_train_args(image_folder, tmp_path / "run"), "--threads", "1")
    assert r.exit_code == 0, r.output
    ckpt = (tmp_path / "run" / "best.pt").resolve()
    monkeypatch.chdir(image_folder)  # the dataset was named as an absolute path: found from anywhere
    assert invoke("eval", "--holdout", "--checkpoint", ckpt, "--json").exit_code == 0
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", "elsewhere")
    assert r.exit_code == 2 and "elsewhere" in r.output and "--dataset" in r.output, r.output
    nowhere = ("--data-dir", tmp_path / "none", "--mirror", "http://127.0.0.1:9")  # never the network
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", "cifar10", *nowhere)
    assert r.exit_code == 2 and "cifar10: not the kind of data the run split" in r.output, r.output  # no download
    colour_image(40, 40, seed=99).save(
        image_folder / "b" / "zzz.png"
    )  # sorts last: names before it the same, count not
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", image_folder)
    assert r.exit_code == 2 and "25 images, but the run split 24" in r.output, r.output


def test_eval_per_image_scores_each_photo_and_needs_full_res(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    colour_image(48, 40).save(photos / "a.png")
    colour_image(40, 48, seed=1).save(photos / "b.png")
    base = ("eval", "--dataset", photos, "--checkpoint", tiny_checkpoint)
    r = invoke(*base, "--full-res", "--per-image", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.splitlines()[-1])
    rows = result["per_image"]
    assert [Path(p["file"]).name for p in rows] == ["a.png", "b.png"]
    assert sum(p["psnr"] for p in rows) / 2 == pytest.approx(result["psnr"])  # the mean is of these
    assert all(p["psnr_gain_db"] == pytest.approx(p["psnr"] - p["gray_psnr"]) for p in rows)
    r = invoke(*base, "--full-res", "--per-image")
    assert r.exit_code == 0 and "a.png" in r.output and "each photo" in r.output
    r = invoke(*base, "--per-image")
    assert r.exit_code == 2 and "--full-res" in r.output


def test_an_empty_path_is_a_usage_error_not_the_current_folder(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    colour_image(40, 40).save(tmp_path / "a.png")
    for args in (["", "-o", "out.png"], ["a.png", "-o", ""]):
        r = invoke("colorize", *args, "--checkpoint", tiny_checkpoint)
        assert r.exit_code == 2 and "empty path" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "tiny.pt"]  # nothing was colorized


def test_a_missing_named_file_fails_alone_and_the_batch_goes_on(tmp_path, tiny_checkpoint):
    colour_image(40, 40).save(tmp_path / "a.png")
    r = invoke(
        "colorize", tmp_path / "a.png", tmp_path / "gone.png", "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 1 and "gone.png" in r.output
    assert (tmp_path / "out" / "a.png").exists()


def test_a_glob_skips_non_images_and_says_so(tmp_path, tiny_checkpoint):
    album = tmp_path / "album"
    album.mkdir()
    colour_image(40, 40).save(album / "a.png")
    colour_image(40, 40).convert("L").save(album / "b.pgm")  # a format folders used to skip
    (album / "notes.txt").write_text("not a photo")
    (album / "._a.png").write_bytes(b"\0\5\26\7 macOS metadata")
    r = invoke("colorize", str(album / "*"), "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert "left out 2 non-image file(s)" in r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_eval_of_colourless_originals_says_n_a_and_caps_the_pooled_psnr(tmp_path, tiny_checkpoint):
    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(4):
        colour_image(32, 32, seed=i).convert("L").convert("RGB").save(folder / f"{i}.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["colorfulness_ratio"] is None and scores["gray_psnr_pooled"] == 100.0
    assert scores["bw_originals"] == 4 and scores["color_psnr"] is None and scores["color_colorfulness_ratio"] is None
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder)
    assert r.exit_code == 0 and "colour n/a of the truth's" in r.stdout
    assert "all 4 originals are black-and-white" in r.stdout


def test_eval_reads_16_bit_gray_at_its_tonal_range_not_as_white(tmp_path, tiny_checkpoint):
    folder = tmp_path / "g16"
    folder.mkdir()
    ramp = (np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 20 + 1000).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "ramp.png")  # I;16, values 1000..39380
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--full-res", "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    # a gray truth read correctly: its gray copy is exact (100 dB), not a white sheet scored against itself
    assert scores["gray_psnr"] == 100.0 and scores["bw_originals"] == 1
    from colorcli.data import load_folder
    from colorcli.evaluate import _read_photos

    [(_, truth)] = list(_read_photos([folder / "ramp.png"], []))  # what eval scores against
    assert np.asarray(truth).std() > 10 and np.asarray(truth).max() < 255
    squares = load_folder(folder, show_progress=False)  # what training would learn from
    assert 0 < squares.float().mean() < 200 and squares.float().std() > 10


def test_eval_holdout_of_the_shipped_model_refuses_a_dataset_it_did_not_split(image_folder, tmp_path):
    r = invoke("eval", "--holdout", "--dataset", image_folder)
    assert r.exit_code == 2 and "24 image files, but the run split 14185 images" in r.output, r.output
    r = invoke("eval", "--holdout", "--dataset", "cifar10", "--mirror", "http://127.0.0.1:9/")  # no download tried
    assert r.exit_code == 2 and "not the kind of data the run split" in r.output, r.output
    # export keeps the count, so exported runs are checked too
    assert invoke(*tiny_train_args(image_folder, tmp_path / "run"), "--threads", "1").exit_code == 0
    out = tmp_path / "m.safetensors"
    assert invoke("export", tmp_path / "run" / "best.pt", "-o", out).exit_code == 0
    colour_image(40, 40, seed=99).save(image_folder / "b" / "zzz.png")  # sorts last
    r = invoke("eval", "--holdout", "--checkpoint", out, "--dataset", image_folder)
    assert r.exit_code == 2 and "25 images, but the run split 24" in r.output, r.output


def test_eval_holdout_scores_the_model_whose_split_it_takes(monkeypatch):
    """The default dataset's name (cifar10) chose the model while the split came from the default model."""
    import colorcli.checkpoint as checkpoint
    import colorcli.evaluate as evaluate
    from colorcli.errors import UsageError

    seen: dict[str, object] = {}
    real_load = checkpoint.load_model

    def load_model(path, **decode):
        seen["model"] = path
        return real_load(path, **decode)

    def holdout_images(source, dataset, data_dir, mirror=None, size=32):
        seen.update(split=source, size=size)
        raise UsageError("the split is not needed further")

    monkeypatch.setattr(checkpoint, "load_model", load_model)
    monkeypatch.setattr(evaluate, "holdout_images", holdout_images)
    for args, name, tile in (
        ([], "photo", 64),
        (["--model", "cifar10"], "cifar10", 32),
        (["--model", "photo"], "photo", 64),
    ):
        seen.clear()
        r = invoke("eval", "--holdout", *args)
        assert r.exit_code == 2 and "not needed further" in r.output, r.output
        assert seen["model"] == seen["split"] == checkpoint.shipped_model_path(name) and seen["size"] == tile


def test_eval_of_a_folder_brings_its_images_to_the_models_tile(monkeypatch, image_folder):
    import colorcli.data as data

    sizes = []
    real = data.load_dataset

    def load_dataset(*args, size=32, **kwargs):
        sizes.append(size)
        return real(*args, size=size, **kwargs)

    monkeypatch.setattr(data, "load_dataset", load_dataset)
    r = invoke("eval", "--model", "photo", "--dataset", image_folder, "--limit", "4", "--json")
    assert r.exit_code == 0, r.output
    assert sizes == [64]  # the photo model's tile, as its training validated; it was 32 for every model


def test_eval_holdout_refuses_full_res_and_per_image_names_nested_files(tmp_path, tiny_checkpoint):
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--holdout", "--full-res", "--dataset", tmp_path)
    assert r.exit_code == 2 and "--holdout" in r.output, r.output
    for sub in ("a", "b"):
        (tmp_path / "p" / sub).mkdir(parents=True)
        colour_image(40, 40, seed=len(sub)).save(tmp_path / "p" / sub / "x.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path / "p", "--full-res", "--per-image")
    assert r.exit_code == 0 and "a/x.png" in r.stdout and "b/x.png" in r.stdout, r.stdout


def test_options_that_would_do_nothing_are_refused(image_folder, tmp_path, tiny_checkpoint):
    r = invoke("train", "--arch", "seed", "--width", "16", "--dataset", image_folder, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "--width" in r.output
    r = invoke("train", "--head", "regress", "--aux-logmse", "1", "--dataset", image_folder, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "aux_logmse" in r.output
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", image_folder, "--scale", "50")
    assert r.exit_code == 2 and "--full-res" in r.output


def test_export_replaces_an_existing_file_only_when_asked(tmp_path, tiny_checkpoint):
    out = tmp_path / "m.safetensors"
    assert invoke("export", tiny_checkpoint, "-o", out).exit_code == 0
    before = out.read_bytes()
    r = invoke("export", tiny_checkpoint, "-o", out, "--tile-saturation", "2")
    assert r.exit_code == 2 and "--overwrite" in r.output and out.read_bytes() == before
    assert invoke("export", tiny_checkpoint, "-o", out, "--tile-saturation", "2", "--overwrite").exit_code == 0
    assert out.read_bytes() != before


def test_resume_refuses_changed_settings_and_changed_data_but_follows_a_moved_folder(image_folder, tmp_path):
    import shutil

    run = tmp_path / "run"
    args = tiny_train_args(image_folder, run)
    assert invoke(*args, "--threads", "1").exit_code == 0
    last = run / "last.pt"
    r = invoke("train", "--resume", last, "--epochs", "5")
    assert r.exit_code == 2 and "--epochs 5 (the run has --epochs 1)" in r.output and "best.pt" in r.output
    r = invoke(*args, "--resume", last)  # the same command again, plus --resume: fine (the run is finished)
    assert r.exit_code == 0 and "already finished" in r.output, r.output
    moved = tmp_path / "moved"
    shutil.copytree(image_folder, moved)
    shutil.rmtree(image_folder)
    r = invoke("train", "--resume", last)
    assert r.exit_code == 2 and "if it moved, resume with --dataset NEWPATH" in r.output, r.output
    r = invoke("train", "--resume", last, "--dataset", moved)
    assert r.exit_code == 0 and "already finished" in r.output, r.output
    colour_image(40, 40, seed=99).save(moved / "b" / "zzz.png")  # sorts last
    r = invoke("train", "--resume", last, "--dataset", moved)
    assert r.exit_code == 2 and "25 images, but the run split 24, so its split would change" in r.output, r.output


def test_sigterm_while_the_data_loads_stops_like_ctrl_c_and_leaves_no_folder(image_folder, tmp_path, monkeypatch):
    import os
    import signal

    import colorcli.sampling as sampling_mod

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as a job scheduler would, minutes into decoding
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(sampling_mod, "load_dataset", terminated)
    r = invoke("train", "--dataset", image_folder, "--out", tmp_path / "runs" / "r")
    assert r.exit_code == 130 and "interrupted" in r.output, r.output
    assert not (tmp_path / "runs").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_too_few_training_images_points_to_the_batch_size(image_folder, tmp_path):
    r = invoke(*tiny_train_args(image_folder, tmp_path / "run"), "--batch-size", "64")
    assert r.exit_code == 2 and "lower --batch-size (now 64)" in r.output, r.output


def test_a_small_folder_trains_with_the_largest_batch_that_fits_when_none_is_given(image_folder, tmp_path):
    args = [a for a in tiny_train_args(image_folder, tmp_path / "run") if a not in ("--batch-size", "8")]
    r = invoke(*args, "--threads", "1")
    assert r.exit_code == 0 and "using batches of 16" in r.output, r.output  # 21 training images
    from colorcli.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["train_config"]["batch_size"] == 16 and state["step"] == 0 and state["epoch"] == 1
    r = invoke(*args, "--resume", tmp_path / "run" / "last.pt")  # resumes with the batch it used
    assert r.exit_code == 0 and "already finished" in r.output, r.output


@pytest.mark.slow
def test_sigterm_stops_colorize_like_ctrl_c_without_leftovers(tmp_path):
    """A real process: colorcli must be killed mid-batch (about 3 s of work), so this takes a few seconds."""
    import signal
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(60):
        colour_image(900, 700, seed=i).save(src / f"{i}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "colorcli", "colorize", str(src), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while not (out.exists() and any(out.glob("*.png"))):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind
    for done in out.glob("*.png"):
        assert Image.open(done).size == (900, 700)


def test_resume_of_a_checkpoint_from_before_a_setting_existed(image_folder, tmp_path):
    from colorcli.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    args = tiny_train_args(image_folder, run)
    assert invoke(*args, "--threads", "1").exit_code == 0
    state = load_checkpoint(run / "last.pt")
    for key in ("zoom", "zoom_min"):
        del state["train_config"][key]
    for key in ("norm", "vivid", "aux_logmse"):
        del state["model_config"][key]
    save_checkpoint(run / "last.pt", state)
    r = invoke(*args, "--zoom", "0", "--norm", "batch", "--resume", run / "last.pt")
    assert r.exit_code == 0 and "already finished" in r.output, r.output


def test_a_checkpoint_with_a_setting_training_now_refuses_still_loads():
    from colorcli.errors import UsageError
    from colorcli.model import ModelConfig, build_model, check_trainable

    old = ModelConfig(width=8, depth=2, head="regress", loss="mse", aux_logmse=1.0)
    assert build_model(old) is not None  # colorize, eval and export still read it
    with pytest.raises(UsageError, match="aux_logmse"):
        check_trainable(old)


def test_colorize_leaves_the_sigterm_handler_as_it_found_it(tmp_path, tiny_checkpoint):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    colour_image(40, 40).save(tmp_path / "a.png")
    assert (
        invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "b.png", "--checkpoint", tiny_checkpoint).exit_code == 0
    )
    assert signal.getsignal(signal.SIGTERM) is before


def test_resume_and_checkpoint_slips_get_usage_errors_that_say_what_to_do(image_folder, tmp_path):
    run = tmp_path / "my run"
    assert invoke(*tiny_train_args(image_folder, run), "--threads", "1").exit_code == 0
    r = invoke("train", "--resume", run / "best.pt")
    assert r.exit_code == 2 and "no training state" in r.output and f"'{run / 'last.pt'}'" in r.output, r.output
    out = tmp_path / "m.safetensors"
    assert invoke("export", run / "best.pt", "-o", out).exit_code == 0
    r = invoke("train", "--resume", out)
    assert r.exit_code == 2 and "exported model" in r.output and "--init" in r.output, r.output
    r = invoke("train", "--resume", run / "last.pt", "--init", run / "best.pt")
    assert r.exit_code == 2 and "give one" in r.output, r.output
    r = invoke("eval", "--checkpoint", run)
    assert r.exit_code == 2 and f"is a folder; did you mean {run / 'best.pt'}?" in r.output, r.output
    r = invoke(*tiny_train_args(image_folder, run))
    assert r.exit_code == 2 and f"--resume '{run / 'last.pt'}'" in r.output, r.output  # pastable with a space
    (tmp_path / "afile").write_text("x")
    r = invoke(*tiny_train_args(image_folder, tmp_path / "afile"))
    assert r.exit_code == 2 and "is a file" in r.output, r.output
    r = invoke("train", "--dataset", tmp_path / "afile", "--out", tmp_path / "r2")
    assert r.exit_code == 2 and "is a file" in r.output, r.output
    (tmp_path / "one").mkdir()
    colour_image(40, 40).save(tmp_path / "one" / "a.png")
    r = invoke("train", "--dataset", tmp_path / "one", "--out", tmp_path / "r3")
    assert r.exit_code == 2 and "one: 1 image; training needs at least 2" in r.output, r.output


def test_a_limited_run_notices_files_swapped_in_before_its_limit(image_folder, tmp_path):
    run = tmp_path / "run"
    assert invoke(*tiny_train_args(image_folder, run), "--limit", "20", "--threads", "1").exit_code == 0
    assert invoke("eval", "--holdout", "--checkpoint", run / "best.pt", "--json").exit_code == 0
    colour_image(40, 40, seed=99).save(image_folder / "a" / "aaa.png")  # sorts first: 20 images still
    r = invoke("eval", "--holdout", "--checkpoint", run / "best.pt")
    assert r.exit_code == 2 and "added, removed or renamed" in r.output, r.output
    r = invoke(*tiny_train_args(image_folder, run), "--limit", "20", "--resume", run / "last.pt")
    assert r.exit_code == 2 and "added, removed or renamed" in r.output, r.output


def test_file_names_with_control_characters_stay_on_one_line(tmp_path, tiny_checkpoint):
    bad = tmp_path / "bad\nname\x1b[2J.jpg"
    bad.write_bytes(b"not a jpeg")
    colour_image(30, 30).save(tmp_path / "ok.png")
    r = invoke("colorize", tmp_path / "ok.png", bad, "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    [line] = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert "bad\\nname\\x1b[2J.jpg" in line and "\x1b" not in r.output


def test_a_full_disk_prints_the_summary_and_why_it_stopped(tmp_path, tiny_checkpoint, monkeypatch):
    import errno

    import colorcli.runner as runner_module

    def full(rgb, loaded, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner_module, "save_result", full)
    for i in range(3):
        colour_image(30, 30).save(tmp_path / f"{i}.png")
    r = invoke(
        "colorize", *(tmp_path / f"{i}.png" for i in range(3)), "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 1, r.output
    assert "0 colorized, 0 skipped (exist; --overwrite replaces), 1 failed, 2 not started" in r.output, r.output
    assert "stopped: " in r.output and "goes on from there" in r.output
    assert r.output.count("error: ") == 2  # the file that failed, and the stop; not one per file left


def test_models_lists_the_shipped_models_with_their_data():
    r = invoke("models", "--json")
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.output.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert "cifar10" in by_name and by_name["cifar10"]["tile"] == 32
    assert sum(row["default"] for row in rows) == 1
    assert all(row["data"] and row["figures"] for row in rows)
    table = invoke("models")
    assert table.exit_code == 0 and "cifar10" in table.output


def test_model_by_name_and_checkpoint_exclude_each_other(tmp_path, tiny_checkpoint):
    colour_image(40, 30).save(tmp_path / "a.png")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "b.png", "--model", "cifar10")
    assert r.exit_code == 0 and Image.open(tmp_path / "b.png").size == (40, 30)
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "c.png", "--model", "nope")
    assert r.exit_code == 2 and "no shipped model named 'nope'" in r.output
    r = invoke(
        "colorize", tmp_path / "a.png", "-o", tmp_path / "c.png", "--model", "cifar10", "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 2 and "give one" in r.output and not (tmp_path / "c.png").exists()


def test_a_symlink_loop_is_one_error_line_and_the_rest_is_colorized(tmp_path, tiny_checkpoint):
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    colour_image(30, 30).save(tmp_path / "good.png")
    r = invoke(
        "colorize", tmp_path / "a.jpg", tmp_path / "good.png", "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint
    )
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert [x for x in r.output.splitlines() if x.startswith("error:")] == [
        f"error: {tmp_path / 'a.jpg'}: is a symlink loop (links that point at each other)"
    ]
    assert (tmp_path / "out" / "good.png").is_file()


def test_a_rerun_removes_the_temporary_file_a_killed_batch_left(tmp_path, tiny_checkpoint):
    import os

    colour_image(30, 30).save(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    left = tmp_path / "out" / ".a.png.k3j4l5m6.tmp"  # kill -9 while a.png was being written
    left.write_bytes(b"\x89PNG half")
    left.chmod(0o600)
    os.utime(left, (left.stat().st_atime - 86_400, left.stat().st_mtime - 86_400))  # before this process began
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "out/", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_a_single_file_on_a_full_disk_gets_one_line_without_batch_wording(tmp_path, tiny_checkpoint, monkeypatch):
    import errno

    import colorcli.runner as runner_module

    def full(rgb, loaded, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner_module, "save_result", full)
    colour_image(30, 30).save(tmp_path / "a.png")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "b.png", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    assert r.output.splitlines() == [
        f"error: {tmp_path / 'a.png'}: cannot write {tmp_path / 'b.png'}: No space left on device"
    ]


def test_a_folder_of_odd_entries_colorizes_the_photos_and_names_each_other_entry_once(tmp_path, tiny_checkpoint):
    import os

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(20):
        colour_image(40 + i, 30, seed=i).save(photos / f"p{i:02}.{'jpg' if i % 2 else 'png'}")
    os.mkfifo(photos / "pipe.jpg")
    (photos / "loop.jpg").symlink_to("loop.jpg")
    (photos / "x.jpg").mkdir()
    colour_image(40, 30).save(photos / "x.jpg" / "inside.png")  # only -r looks in here
    colour_image(200, 150, seed=1).save(photos / "damaged.jpg", quality=90)
    data = bytearray((photos / "damaged.jpg").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)
    (photos / "damaged.jpg").write_bytes(data)
    out = photos / "colour"  # where an earlier run of the same command was killed mid-write
    out.mkdir()
    stale = out / ".p00.png.k3j4l5m6.tmp"
    stale.write_bytes(b"\x89PNG half")
    stale.chmod(0o600)
    os.utime(stale, (stale.stat().st_atime - 86_400, stale.stat().st_mtime - 86_400))  # before this process began

    r = invoke("colorize", photos, "-o", out, "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted([f"p{i:02}.png" for i in range(20)] + ["damaged.png"])
    assert not list(tmp_path.rglob("*.tmp"))
    lines = r.output.splitlines()
    reasons = {
        "pipe.jpg": "left out: a FIFO (named pipe), not an image file",
        "loop.jpg": "is a symlink loop (links that point at each other)",
        "x.jpg": "left out: a folder (-r looks in subfolders)",
        "damaged.jpg": "corrupt JPEG data (",
    }
    for name, reason in reasons.items():
        [line] = [x for x in lines if f"{photos / name}:" in x]
        assert reason in line, line
    assert not any(f"p{i:02}." in x for x in lines for i in range(20))  # the photos go without a word
    summary = "21 colorized, 0 skipped (exist; --overwrite replaces), 1 failed, 2 left out (folders, FIFOs, devices)"
    assert lines[-1] == summary
    assert "Traceback" not in r.output

    r = invoke("colorize", photos, "-o", out, "--checkpoint", tiny_checkpoint, "--json", "--overwrite")
    records = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 1 and len(records) == 24  # every entry named like a photo, once
    by_name = {Path(x["input"]).name: x["status"] for x in records}
    assert [by_name[name] for name in reasons] == ["left out", "failed", "left out", "ok"]


def test_train_on_a_folder_without_images_is_a_usage_error_as_for_colorize_and_eval(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("train", "--dataset", tmp_path / "empty", "--out", tmp_path / "run", "--device", "cpu")
    assert r.exit_code == 2 and "no images found" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_eval_full_res_scores_what_it_can_read_and_exits_1_naming_the_rest(tmp_path, tiny_checkpoint):
    for i in range(3):
        colour_image(40, 30, seed=i).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--json")
    assert r.exit_code == 1, r.output
    result = json.loads(r.stdout)
    assert result["images"] == 3 and result["unreadable"] == [str(tmp_path / "broken.png")]
    assert "broken.png" in r.stderr
    (tmp_path / "broken.png").unlink()
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["unreadable"] == []


def test_a_grid_that_cannot_be_written_is_one_line_exit_1(tmp_path, tiny_checkpoint, monkeypatch):
    def full_disk(im, fp, filename, *args, **kwargs):
        raise OSError(28, "No space left on device")

    colour_image(40, 30).save(tmp_path / "a.jpg")
    Image.init()  # every plugin registered first, so none registers its saver over this one
    monkeypatch.setitem(Image.SAVE, "PNG", full_disk)
    grid = tmp_path / "g.png"
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--grid", grid)
    assert r.exit_code == 1 and "g.png: cannot write the grid (No space left on device)" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "g.png").exists()


def test_export_to_a_folder_or_another_suffix_is_refused_before_asking_for_overwrite(tmp_path, tiny_checkpoint):
    (tmp_path / "existing.pt").write_bytes(b"x")
    targets = (
        (tmp_path, "is a folder"),
        (f"{tmp_path / 'new.safetensors'}/", "is a folder"),  # wrote a file of that name
        (tmp_path / "existing.pt", "is a .safetensors file"),
    )
    for target, says in targets:
        r = invoke("export", tiny_checkpoint, "-o", target)
        assert r.exit_code == 2 and says in r.output and "--overwrite" not in r.output, r.output


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


def test_a_mix_folder_behind_a_symlink_loop_is_a_clear_error(tmp_path):
    for i in range(24):
        colour_image(16, 16, seed=i).save(tmp_path / f"{i}.png")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    r = invoke(*tiny_train_args(tmp_path, tmp_path / "run"), "--mix", tmp_path / "loop")
    assert r.exit_code in (1, 2) and "loop" in r.output and "Traceback" not in r.output, r.output


def test_export_takes_a_shipped_models_name(tmp_path):
    r = invoke("export", "cifar10", "-o", tmp_path / "c.safetensors", "--saturation", "1.1")
    assert r.exit_code == 0, r.output
    colour_image(40, 30).save(tmp_path / "in.png")
    r = invoke("colorize", tmp_path / "in.png", "-o", tmp_path / "c.png", "--checkpoint", tmp_path / "c.safetensors")
    assert r.exit_code == 0 and (tmp_path / "c.png").exists(), r.output


def test_eval_of_a_shipped_model_gives_no_train_longer_hint(tmp_path):
    for i in range(4):  # magenta over green: the model's colour is an eighth of the truth's
        rgb = np.zeros((32, 32, 3), np.uint8)
        rgb[:16], rgb[16:] = (255, 0, 255), (0, 255, 0)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    r = invoke("eval", "--model", "cifar10", "--dataset", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["colorfulness_ratio"] < 0.15 and "undertrained" not in r.output
