"""`colorcli train` from the command line: options, runs, resuming and its refusals."""

import os
from pathlib import Path

from helpers import colour_image, invoke, tiny_train_args


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


def test_a_run_that_fails_before_writing_leaves_no_empty_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("train", "--dataset", "missing", "--out", Path("runs") / "r1")
    assert r.exit_code == 2
    assert not (tmp_path / "runs").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    assert invoke("train", "--dataset", "missing", "--out", "kept").exit_code == 2
    assert (tmp_path / "kept").is_dir()


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


def test_train_on_black_and_white_images_only_points_to_keep_gray(tmp_path):
    folder = tmp_path / "bw"
    folder.mkdir()
    for i in range(12):
        colour_image(32, 32).convert("L").convert("RGB").rotate(i * 30).save(folder / f"{i}.png")
    r = invoke(*tiny_train_args(folder, tmp_path / "run"))
    assert r.exit_code == 2 and "--keep-gray" in r.output, r.output


def test_options_that_would_do_nothing_are_refused(image_folder, tmp_path, tiny_checkpoint):
    r = invoke("train", "--arch", "seed", "--width", "16", "--dataset", image_folder, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "--width" in r.output
    r = invoke("train", "--head", "regress", "--aux-logmse", "1", "--dataset", image_folder, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "aux_logmse" in r.output
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", image_folder, "--scale", "50")
    assert r.exit_code == 2 and "--full-res" in r.output


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


def test_train_on_a_folder_without_images_is_a_usage_error_as_for_colorize_and_eval(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("train", "--dataset", tmp_path / "empty", "--out", tmp_path / "run", "--device", "cpu")
    assert r.exit_code == 2 and "no images found" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_a_mix_folder_behind_a_symlink_loop_is_a_clear_error(tmp_path):
    for i in range(24):
        colour_image(16, 16, seed=i).save(tmp_path / f"{i}.png")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    r = invoke(*tiny_train_args(tmp_path, tmp_path / "run"), "--mix", tmp_path / "loop")
    assert r.exit_code in (1, 2) and "loop" in r.output and "Traceback" not in r.output, r.output
