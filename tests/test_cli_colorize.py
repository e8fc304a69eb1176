"""`colorcli colorize` from the command line: inputs, outputs, pipes, errors and exit codes."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorcli.cli import app
from helpers import colour_image, invoke, runner


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


def test_a_skipped_single_file_says_so(tmp_path, tiny_checkpoint):
    colour_image(8, 8).save(tmp_path / "a.png")
    (tmp_path / "o.png").write_bytes(b"keep me")
    r = invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "o.png", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0 and "skipped" in r.output and "--overwrite" in r.output
    assert (tmp_path / "o.png").read_bytes() == b"keep me"


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


def test_colorize_leaves_the_sigterm_handler_as_it_found_it(tmp_path, tiny_checkpoint):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    colour_image(40, 40).save(tmp_path / "a.png")
    assert (
        invoke("colorize", tmp_path / "a.png", "-o", tmp_path / "b.png", "--checkpoint", tiny_checkpoint).exit_code == 0
    )
    assert signal.getsignal(signal.SIGTERM) is before


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
