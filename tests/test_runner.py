"""Running batches: per-file results, progress, JSON lines in input order, stops and interrupts."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from colorcli.batch import check_output_folders, plan_jobs
from colorcli.cli.colorize import run_batch
from colorcli.errors import InputError, UsageError
from colorcli.images import load_image
from colorcli.tiling import (
    ColorizeOptions,
)
from helpers import colour_image


def test_batch_goes_on_after_a_bad_file_and_skips_existing(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        colour_image(30 + i, 30).save(src / f"ok{i}.png")
    (src / "bad.jpg").write_bytes(b"nope")
    jobs = plan_jobs([src], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.failed, report.exit_code) == (3, 1, 1)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {x["status"] for x in lines} == {"ok", "failed"}
    assert all({"input", "output", "status", "seconds"} <= set(x) for x in lines)
    assert not (tmp_path / "out" / "bad.png").exists()
    again = run_batch(tiny_model, jobs, ColorizeOptions())
    assert again.skipped == 3
    assert run_batch(tiny_model, jobs, ColorizeOptions(), overwrite=True).done == 3


def test_an_input_is_never_overwritten(tmp_path, tiny_model):
    p = tmp_path / "same.png"
    colour_image(16, 16).save(p)
    before = p.read_bytes()
    report = run_batch(tiny_model, plan_jobs([p], p), ColorizeOptions(), overwrite=True)
    assert report.failed == 1
    assert p.read_bytes() == before


def test_reruns_do_not_colorize_their_own_results(tmp_path, tiny_model):
    src = tmp_path / "in"
    src.mkdir()
    colour_image(20, 20).save(src / "a.png")
    for _ in range(2):
        jobs = plan_jobs([src], src / "out", recursive=True)
        assert [j.src.name for j in jobs] == ["a.png"]
        assert run_batch(tiny_model, jobs, ColorizeOptions()).exit_code == 0
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == ["a.png", "out/a.png"]
    with pytest.raises(UsageError, match="also the folder the input"):
        plan_jobs([src], src)
    # the same through a glob: its matches inside the output folder are earlier results, said in a note
    pattern = src / "**" / "*.png"
    notes: list[str] = []
    assert [j.src.name for j in plan_jobs([pattern], src / "out", notes=notes)] == ["a.png"]
    assert len(notes) == 1 and "left out 1 image(s) in the output folder" in notes[0]
    with pytest.raises(UsageError, match="also the folder the input"):  # -o the glob's own folder
        plan_jobs([src / "*.png"], src)
    # an output folder above the input folder leaves every input in
    sub = src / "sub"
    sub.mkdir()
    colour_image(20, 20).save(sub / "b.png")
    assert [j.src.name for j in plan_jobs([sub], src)] == ["b.png"]
    assert [j.src.name for j in plan_jobs([tmp_path / "in" / "sub" / "*.png"], src)] == ["b.png"]


def test_a_folder_without_images_is_reported_not_skipped(tmp_path, tiny_model):
    colour_image(8, 8).save(tmp_path / "m.png")
    (tmp_path / "looks.jpg").mkdir()
    jobs = plan_jobs([tmp_path / "looks.jpg", tmp_path / "m.png"], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    with pytest.raises(UsageError, match="no input images found.*looks.jpg: is a folder with no images"):
        plan_jobs([tmp_path / "looks.jpg"], tmp_path / "out")


def test_json_lines_come_in_input_order(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        colour_image(30 + i, 30).save(src / f"p{i}.png")
    (src / "p2.png").write_bytes(b"broken")  # fails on loading, before p0 and p1 are colorized
    out = tmp_path / "out"
    out.mkdir()
    colour_image(30, 30).save(out / "p3.png")  # skipped at once
    jobs = plan_jobs([src], out)
    run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [Path(x["input"]).name for x in lines] == ["p0.png", "p1.png", "p2.png", "p3.png"]
    assert [x["status"] for x in lines] == ["ok", "ok", "failed", "skipped"]


def test_long_names_that_fit_are_written(tmp_path, tiny_model):
    from colorcli.files import atomic_write

    name = "a" * 251 + ".png"  # 255 bytes: the longest a name can be
    atomic_write(tmp_path / name, lambda f: f.write(b"x"))
    assert (tmp_path / name).read_bytes() == b"x" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EROFS"])
def test_a_full_disk_stops_the_batch_at_the_first_file(tmp_path, tiny_model, monkeypatch, capsys, code):
    import errno

    import colorcli.runner as runner_module

    for i in range(4):
        colour_image(30, 30).save(tmp_path / f"{i}.png")
    (tmp_path / "out").mkdir()
    colour_image(30, 30).save(tmp_path / "out" / "2.png")  # exists: skipped before the stop
    tries = []

    def full(rgb, loaded, path):
        tries.append(path.name)
        raise OSError(getattr(errno, code), "No space left on device")

    monkeypatch.setattr(runner_module, "save_result", full)
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(4)], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert tries == ["0.png"] and report.stopped and "No space left on device" in report.stopped
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(Path(x["input"]).name, x["status"]) for x in lines] == [
        ("0.png", "failed"),
        ("1.png", "not started"),
        ("2.png", "skipped"),
        ("3.png", "not started"),
    ]
    assert "not written, stopped" in lines[1]["error"] and report.exit_code == 1
    assert (report.failed, report.not_started, report.skipped) == (1, 2, 1)  # it said 3 failed


def test_a_result_that_cannot_be_written_leaves_no_folder_made_for_it(tmp_path, tiny_model, monkeypatch):
    import errno

    import colorcli.runner as runner_module

    def full(rgb, loaded, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner_module, "save_result", full)
    colour_image(30, 30).save(tmp_path / "a.png")
    jobs = plan_jobs([tmp_path / "a.png"], tmp_path / "new" / "deep" / "a.png")
    report = run_batch(tiny_model, jobs, ColorizeOptions())
    assert report.failed == 1 and not (tmp_path / "new").exists()


def test_output_folders_are_made_only_for_results(tmp_path, tiny_model):
    (tmp_path / "in" / "good").mkdir(parents=True)
    (tmp_path / "in" / "bad").mkdir()
    colour_image(30, 30).save(tmp_path / "in" / "good" / "a.png")
    (tmp_path / "in" / "bad" / "b.png").write_bytes(b"broken")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", recursive=True)
    check_output_folders(jobs, tmp_path / "out")  # checks, makes nothing
    assert not (tmp_path / "out").exists()
    run_batch(tiny_model, jobs, ColorizeOptions())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
    bad_only = [j for j in plan_jobs([tmp_path / "in"], tmp_path / "out2", recursive=True) if "bad" in j.src.parts]
    assert run_batch(tiny_model, bad_only, ColorizeOptions()).failed == 1
    assert not (tmp_path / "out2").exists()  # every input failed: no folder left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create output folder"):
        check_output_folders(jobs, tmp_path / "file" / "sub")


def test_an_interrupt_ends_the_batch_with_what_is_done_and_says_so(tmp_path, tiny_model, monkeypatch):
    import colorcli.runner as runner_module

    for i in range(3):
        colour_image(30, 30).save(tmp_path / f"{i}.png")
    real, calls = runner_module.save_result, []

    def then_ctrl_c(rgb, loaded, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(rgb, loaded, path)

    monkeypatch.setattr(runner_module, "save_result", then_ctrl_c)
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(3)], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions(), batch_files=1)
    assert report.interrupted and report.done == 1 and report.exit_code == 130
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png"]


def test_a_result_whose_folder_is_a_file_fails_before_it_is_colorized(tmp_path, tiny_model, monkeypatch):
    import colorcli.runner as runner_module

    (tmp_path / "in" / "sub").mkdir(parents=True)
    colour_image(30, 30).save(tmp_path / "in" / "a.png")
    colour_image(30, 30).save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where results/sub/ should go")
    seen = []
    real = runner_module.predict_chroma_many  # what reaches the model
    monkeypatch.setattr(runner_module, "predict_chroma_many", lambda m, g, o: seen.extend(g) or real(m, g, o))
    errors = Console(file=io.StringIO(), width=300)
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", recursive=True)
    report = run_batch(tiny_model, jobs, ColorizeOptions(), err_console=errors)
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    assert len(seen) == 1 and (tmp_path / "out" / "a.png").is_file()
    assert f"{tmp_path / 'out' / 'sub'} is not a folder" in errors.file.getvalue()
    assert (tmp_path / "out" / "sub").read_text().startswith("a file")  # untouched


def test_a_symlink_loop_is_one_failed_input_and_the_batch_goes_on(tmp_path, tiny_model, capsys):
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    colour_image(30, 30).save(tmp_path / "good.png")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "good.png"], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.jpg", "good.png"]
    report = run_batch(tiny_model, jobs, ColorizeOptions(), as_json=True)
    assert (report.done, report.failed, report.exit_code) == (1, 1, 1)
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert records[0]["error"] == f"{tmp_path / 'a.jpg'}: is a symlink loop (links that point at each other)"
    # named on its own, it fails as a missing file does (exit 1), not as a command line naming no image (2)
    assert run_batch(tiny_model, plan_jobs([tmp_path / "a.jpg"], tmp_path / "x.png"), ColorizeOptions()).exit_code == 1
    assert (tmp_path / "out" / "good.png").is_file()
    # a loop where a result goes is written over like any link, not followed
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "good.png").symlink_to("good.png")
    assert run_batch(tiny_model, plan_jobs([tmp_path / "good.png"], tmp_path / "out2"), ColorizeOptions()).done == 1
    assert (tmp_path / "out2" / "good.png").is_file()


def test_a_named_fifo_is_refused_at_once_not_opened(tmp_path, tiny_model):
    import os

    os.mkfifo(tmp_path / "p.jpg")  # opening it would wait for a writer forever
    with pytest.raises(UsageError, match=r"p\.jpg: is a FIFO \(named pipe\), not an image file"):
        plan_jobs([tmp_path / "p.jpg"], tmp_path / "x.png")
    colour_image(30, 30).save(tmp_path / "good.png")
    jobs = plan_jobs([tmp_path / "p.jpg", tmp_path / "good.png"], tmp_path / "out")
    report = run_batch(tiny_model, jobs, ColorizeOptions())
    assert (report.done, report.failed) == (1, 1) and "FIFO" in jobs[0].error
    with pytest.raises(InputError, match="is a FIFO"):
        load_image(tmp_path / "p.jpg")


def test_folder_entries_named_like_images_that_are_none_are_each_accounted_for(tmp_path, tiny_model):
    import os

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "c.png"):
        colour_image(30, 30).save(src / name)
    os.mkfifo(src / "b.jpg")
    (src / "d.jpg").mkdir()
    colour_image(30, 30).save(src / "d.jpg" / "inner.png")
    (src / "e.jpg").symlink_to("f.jpg")
    (src / "f.jpg").symlink_to("e.jpg")
    (src / "g.png").symlink_to("gone.png")
    (src / "notes.txt").write_text("not named like a photo: not an input")
    jobs = plan_jobs([src], tmp_path / "out")
    assert [(j.src.name, j.left_out, j.error is not None) for j in jobs] == [
        ("a.png", False, False),
        ("b.jpg", True, True),
        ("c.png", False, False),
        ("d.jpg", True, True),
        ("e.jpg", False, True),
        ("f.jpg", False, True),
        ("g.png", False, True),
    ]
    assert jobs[1].error == f"{src / 'b.jpg'}: left out: a FIFO (named pipe), not an image file"
    assert jobs[3].error == f"{src / 'd.jpg'}: left out: a folder (-r looks in subfolders)"
    assert jobs[6].error == f"{src / 'g.png'}: is a broken link (to gone.png, which does not exist)"
    errors = Console(file=io.StringIO(), width=300)
    report = run_batch(tiny_model, jobs, ColorizeOptions(), err_console=errors)
    assert (report.done, report.failed, report.left_out, report.exit_code) == (2, 3, 2, 1)
    said = errors.file.getvalue().splitlines()
    assert sum("b.jpg" in line for line in said) == sum("d.jpg" in line for line in said) == 1
    # with -r the folder named like an image is looked into instead
    jobs = plan_jobs([src], tmp_path / "out", recursive=True)
    assert "inner.png" in [j.src.name for j in jobs] and "d.jpg" not in [j.src.name for j in jobs]
    # a glob accounts for what it matches in the same way
    colour_image(30, 30).save(src / "h.jpg")
    jobs = plan_jobs([src / "*.jpg"], tmp_path / "out3")
    assert [(j.src.name, j.left_out, j.error is not None) for j in jobs] == [
        ("b.jpg", True, True),
        ("d.jpg", True, True),
        ("e.jpg", False, True),
        ("f.jpg", False, True),
        ("h.jpg", False, False),
    ]


def test_the_progress_bar_moves_as_each_file_is_written(tmp_path, tiny_model, monkeypatch):
    import rich.progress

    import colorcli.runner as runner_module

    for i in range(6):
        colour_image(200, 150, seed=i).save(tmp_path / f"{i}.png")  # 35 tiles each at the default scale
    events = []
    model_call, enlarge = runner_module.predict_chroma_many, runner_module.full_resolution
    monkeypatch.setattr(
        runner_module, "predict_chroma_many", lambda m, g, o: events.append(len(g)) or model_call(m, g, o)
    )
    monkeypatch.setattr(runner_module, "full_resolution", lambda *a: events.append("enlarge") or enlarge(*a))
    update = rich.progress.Progress.update

    def seen(self, task, **kw):
        if kw.get("completed"):
            events.append(f"{kw['completed']}/6")
        update(self, task, **kw)

    monkeypatch.setattr(rich.progress.Progress, "update", seen)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)  # the bar is drawn, as on a terminal
    jobs = plan_jobs([tmp_path / f"{i}.png" for i in range(6)], tmp_path / "out")
    assert run_batch(tiny_model, jobs, ColorizeOptions(), err_console=terminal).done == 6
    # Four photos share a model call (140 tiles, past 128), then each is finished before the next is enlarged.
    assert events == [
        4, "enlarge", "1/6", "enlarge", "2/6", "enlarge", "3/6", "enlarge", "4/6",
        2, "enlarge", "5/6", "enlarge", "6/6",
    ]  # fmt: skip
    assert "6/6" in terminal.file.getvalue()


def test_small_files_still_share_model_calls_64_at_a_time(tmp_path, tiny_model, monkeypatch):
    import colorcli.runner as runner_module

    src = tmp_path / "small"
    src.mkdir()
    for i in range(70):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8)).save(src / f"{i:02d}.png")
    calls = []
    real = runner_module.predict_chroma_many
    monkeypatch.setattr(runner_module, "predict_chroma_many", lambda m, g, o: calls.append(len(g)) or real(m, g, o))
    assert run_batch(tiny_model, plan_jobs([src], tmp_path / "out"), ColorizeOptions()).done == 70
    assert calls == [64, 6]


def test_damage_checks_start_for_the_jpegs_the_batch_will_read_and_the_rest_are_cancelled(tmp_path, tiny_model):
    from concurrent.futures import wait

    from colorcli.runner import run_jobs, start_damage_checks

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.jpg", "b.JPEG", "c.jpg"):
        colour_image(40, 30).save(src / name, "JPEG")
    colour_image(40, 30).save(src / "d.png")
    (src / "e.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.png").write_bytes(b"done before")  # exists: skipped, so never read
    jobs = plan_jobs([src], out)
    checks = start_damage_checks(jobs)
    assert sorted(jobs[n].src.name for n in checks) == ["a.jpg", "b.JPEG", "e.jpg"]
    every = start_damage_checks(jobs, overwrite=True)
    assert sorted(jobs[n].src.name for n in every) == ["a.jpg", "b.JPEG", "c.jpg", "e.jpg"]
    unreadable = next(check for n, check in checks.items() if jobs[n].src.name == "e.jpg")
    results = list(run_jobs(tiny_model, jobs, ColorizeOptions(), checks=checks))
    assert sorted(r.status for r in results) == ["failed", "ok", "ok", "ok", "skipped"]
    assert checks == {}  # each taken by the file it checks
    # Cancelled, unless the process had already taken it: then it ends on its own, never left pending.
    assert unreadable.cancelled() or not wait([unreadable], timeout=30).not_done


def test_an_interrupted_batch_cancels_the_checks_of_files_it_never_read(tmp_path, tiny_model):
    from concurrent.futures import wait

    from colorcli.runner import BatchLimits, run_jobs, start_damage_checks

    src = tmp_path / "in"
    src.mkdir()
    for i in range(30):
        colour_image(800, 600, seed=i).save(src / f"{i:02}.jpg", "JPEG", quality=95)  # some 40 ms of checking each
    jobs = plan_jobs([src], tmp_path / "out")
    checks = start_damage_checks(jobs)
    left = dict(checks)
    batch = run_jobs(tiny_model, jobs, ColorizeOptions(), limits=BatchLimits(files=1), checks=checks)
    next(batch)
    batch.close()  # what an interrupt does to the generator
    # The file read and the few checks the process had already taken run to their end; the rest never run.
    assert sum(check.cancelled() for check in left.values()) >= len(left) - 5
    assert not wait(list(left.values()), timeout=30).not_done
