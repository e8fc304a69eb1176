import json
import math
from dataclasses import replace

import pytest
import torch

import colorcli.train as train_mod
from colorcli.checkpoint import load_checkpoint, load_model
from colorcli.errors import TrainingError, UsageError
from colorcli.model import ModelConfig, UNet
from colorcli.train import Interrupted, TrainConfig, train
from helpers import StopAfter, colour_image

TINY = ModelConfig(width=4, depth=2)


def config(folder, out, **kw) -> TrainConfig:
    base = TrainConfig(dataset=str(folder), out=str(out), epochs=2, batch_size=8, lr=3e-3, val_fraction=0.15, threads=1)
    return replace(base, **kw)


def test_training_writes_best_last_and_history(image_folder, tmp_path):
    best = train(config(image_folder, tmp_path / "run"), TINY).best
    run = tmp_path / "run"
    assert best == run / "best.pt"
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(math.isfinite(h["val_loss"]) and h["val_gray_psnr"] > 0 for h in history)
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["model_config"] == TINY.to_dict()
    assert ckpt["train_config"]["dataset"] == str(image_folder)
    assert {"optimizer", "scheduler", "rng"} <= set(ckpt)
    best_ckpt = load_checkpoint(best)
    assert best_ckpt["metrics"]["epoch"] in (1, 2)
    assert best_ckpt["best_val"] == min(h["val_loss"] for h in history)
    model = load_model(best)  # rebuilt from its own config
    assert isinstance(model, UNet) and model.bins.log_weights.abs().sum() > 0  # rebalancing prior travelled


def test_seed_architecture_trains(image_folder, tmp_path):
    seed_cfg = ModelConfig(arch="seed", width=4, head="regress", loss="mse")
    train(config(image_folder, tmp_path / "seed", epochs=1), seed_cfg)
    assert load_model(tmp_path / "seed" / "best.pt").config.arch == "seed"


def test_interrupt_then_resume_matches_an_uninterrupted_run(image_folder, tmp_path, monkeypatch):
    train(config(image_folder, tmp_path / "full"), TINY)
    monkeypatch.setattr(train_mod, "StopFlag", StopAfter(4))  # 2 steps + 1 end-of-epoch check, then step 1 of epoch 2
    with pytest.raises(Interrupted) as e:
        train(config(image_folder, tmp_path / "cut"), TINY)
    assert "--resume" in str(e.value) and e.value.exit_code == 130
    state = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 1)
    monkeypatch.undo()
    train(TrainConfig(threads=1), TINY, resume=tmp_path / "cut" / "last.pt")  # the run's own settings
    full = json.loads((tmp_path / "full" / "history.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert len(resumed) == len(full) == 2
    assert resumed[-1]["val_loss"] == pytest.approx(full[-1]["val_loss"], rel=1e-4)
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_a_stop_on_an_epochs_last_step_saves_that_epoch_whole(image_folder, tmp_path, monkeypatch):
    train(config(image_folder, tmp_path / "full"), TINY)
    monkeypatch.setattr(train_mod, "StopFlag", StopAfter(2))  # asked on step 2 of 2
    with pytest.raises(Interrupted):
        train(config(image_folder, tmp_path / "cut"), TINY)
    state = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 0)  # validated and saved, not left with no steps to run
    monkeypatch.undo()
    train(TrainConfig(threads=1), TINY, resume=tmp_path / "cut" / "last.pt")  # the run's own settings
    text = (tmp_path / "cut" / "history.json").read_text()
    assert "NaN" not in text
    full = json.loads((tmp_path / "full" / "history.json").read_text())
    resumed = json.loads(text)
    assert [r["val_loss"] for r in resumed] == pytest.approx([r["val_loss"] for r in full], rel=1e-4)


def test_resuming_a_finished_run_says_so(image_folder, tmp_path, capsys):
    from rich.console import Console

    train(config(image_folder, tmp_path / "r", epochs=1), TINY)
    console = Console(stderr=True, force_terminal=False)
    train(TrainConfig(threads=1), TINY, resume=tmp_path / "r" / "last.pt", console=console)
    assert "already finished" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(image_folder, tmp_path, monkeypatch):
    saved: list[bytes] = []
    real_history, real_loss = train_mod._write_history, UNet.loss

    def write_history(out, history):  # the end of an epoch, after its last.pt
        real_history(out, history)
        saved.append((out / "last.pt").read_bytes())

    def loss(self, raw, y, rgb):  # good in the first epoch, nan after it
        return real_loss(self, raw, y, rgb) * (float("nan") if saved else 1.0)

    monkeypatch.setattr(train_mod, "_write_history", write_history)
    monkeypatch.setattr(UNet, "loss", loss)
    with pytest.raises(TrainingError, match=r"loss became nan.*last good checkpoint is .*last\.pt"):
        train(config(image_folder, tmp_path / "n", epochs=3), TINY)
    assert len(saved) == 1 and (tmp_path / "n" / "last.pt").read_bytes() == saved[0]


def test_overwrite_removes_the_replaced_runs_files_before_training(image_folder, tmp_path, monkeypatch, capsys):
    """Else an interrupted or failed new run left the old run's best.pt beside its own last.pt."""
    train(config(image_folder, tmp_path / "o", epochs=1), TINY)
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {"best.pt", "last.pt", "history.json"}
    monkeypatch.setattr(UNet, "loss", lambda self, raw, y, rgb: raw.sum() * float("nan"))
    from rich.console import Console

    console = Console(stderr=True, force_terminal=False)
    with pytest.raises(TrainingError, match="No checkpoint was written yet"):
        train(config(image_folder, tmp_path / "o", epochs=2), TINY, overwrite=True, console=console)
    assert not any((tmp_path / "o" / name).exists() for name in ("best.pt", "last.pt", "history.json"))
    assert "removed the earlier run's best.pt, last.pt, history.json" in capsys.readouterr().err


# ---- real processes: SIGINT finishes the step and saves; SIGKILL never leaves a broken checkpoint


def _start_training(folder, run, epochs: int = 3):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "colorcli",
        "train",
        "--dataset",
        str(folder),
        "--out",
        str(run),
        "--epochs",
        str(epochs),
        "--batch-size",
        "2",
        "--width",
        "8",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), cmd


def _wait_for(path, proc, timeout=120.0):
    import time

    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_saves_and_resume_completes_the_history(image_folder, tmp_path):
    import signal
    import subprocess

    run = tmp_path / "run"
    proc, cmd = _start_training(image_folder, run)
    _wait_for(run / "history.json", proc)  # epoch 1 done; interrupt during epoch 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] >= 1
    resumed = subprocess.run(cmd + ["--resume", str(run / "last.pt")], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    again = subprocess.run(cmd + ["--resume", str(run / "last.pt")], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already finished" in again.stderr


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_loadable_checkpoints(image_folder, tmp_path):
    import random
    import time

    rng = random.Random(0)
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        proc, _ = _start_training(image_folder, run, epochs=50)
        _wait_for(run / "last.pt", proc)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.kill()
        proc.wait(timeout=30)
        for ckpt in run.glob("*.pt"):
            assert load_checkpoint(ckpt)["model"], ckpt
        json.loads((run / "history.json").read_text())


def test_black_and_white_training_images_are_left_out_unless_kept(image_folder, tmp_path, capsys):
    import re

    from PIL import Image
    from rich.console import Console

    for i in range(6):
        Image.open(next(image_folder.rglob("*.png"))).convert("L").convert("RGB").save(image_folder / f"bw{i}.png")
    n_val = round(30 * 0.15)

    def counts(**kw) -> tuple[int, int]:
        train(
            config(image_folder, tmp_path / str(len(kw)), epochs=1, **kw), TINY, console=Console(stderr=True, width=999)
        )
        said = capsys.readouterr().err
        kept = int(re.search(r"(\d+) training / ", said)[1])
        dropped = re.search(r"\((\d+) black-and-white training images left out\)", said)
        return kept, int(dropped[1]) if dropped else 0

    kept, dropped = counts()
    assert dropped >= 1 and kept + dropped == 30 - n_val
    assert counts(skip_gray=False) == (30 - n_val, 0)


def test_zoomed_training_runs_and_is_stored_for_resume(image_folder, tmp_path):
    train(config(image_folder, tmp_path / "z", epochs=1, zoom=0.5, zoom_min=0.6), TINY)
    state = torch.load(tmp_path / "z" / "last.pt", weights_only=True)
    assert (state["train_config"]["zoom"], state["train_config"]["zoom_min"]) == (0.5, 0.6)


PHOTO = ModelConfig(width=4, depth=2, tile=16, context=True)


def test_photo_training_draws_tiles_of_the_models_size_and_mixes_a_second_dataset(image_folder, mix_folder, tmp_path):
    cfg = config(image_folder, tmp_path / "photo", epochs=1, scale_min=16, scale_max=40, mix=str(mix_folder))
    train(cfg, PHOTO)
    ckpt = load_checkpoint(tmp_path / "photo" / "last.pt")
    assert ckpt["model_config"]["tile"] == 16 and ckpt["model_config"]["context"] is True
    assert ckpt["train_config"]["scale_max"] == 40 and ckpt["train_config"]["mix"] == str(mix_folder)
    # 20 training images, half of each batch of 8 from the mix: 4 photos a step, 5 steps.
    assert ckpt["step"] == 0 and ckpt["epoch"] == 1
    assert math.isfinite(json.loads((tmp_path / "photo" / "history.json").read_text())[0]["val_psnr"])


def test_a_native_mix_trains_and_is_kept_with_the_run(image_folder, mix_folder, tmp_path):
    model = ModelConfig(width=4, depth=2, tile=64)  # the mix is kept at 32x32: four to a tile
    cfg = config(image_folder, tmp_path / "native", epochs=1, scale_max=64, mix=str(mix_folder), mix_native=True)
    train(cfg, model)
    assert load_checkpoint(tmp_path / "native" / "last.pt")["train_config"]["mix_native"] is True
    with pytest.raises(UsageError, match="--mix-native shapes --mix"):
        train(config(image_folder, tmp_path / "alone", epochs=1, mix_native=True), TINY)
    with pytest.raises(UsageError, match="the model's 16-pixel tile must be a multiple of 32"):
        train(config(image_folder, tmp_path / "small", epochs=1, mix=str(mix_folder), mix_native=True), PHOTO)


def test_resume_removes_the_temporary_files_a_killed_save_left(image_folder, tmp_path):
    import os

    run = tmp_path / "r"
    train(config(image_folder, run, epochs=1), TINY)
    left = [run / ".history.json.k3j4l5m6.tmp", run / ".last.pt.9x_8y7z6.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
        path.chmod(0o600)  # as mkstemp makes it
        os.utime(path, (path.stat().st_atime - 86_400, path.stat().st_mtime - 86_400))  # before this process began
    train(config(image_folder, run, epochs=1), TINY, resume=run / "last.pt")  # finished: writes nothing
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt"]


def test_balance_draws_subfolders_evenly_and_is_kept_with_the_run(image_folder, tmp_path, capsys):
    from rich.console import Console

    extra = image_folder / "c"
    extra.mkdir()
    colour_image(40, 40, seed=99).save(extra / "only.png")
    cfg = config(image_folder, tmp_path / "bal", epochs=1, balance=1.0)
    train(cfg, TINY, console=Console(stderr=True, highlight=False))
    assert "balancing 3 sources (--balance 1)" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "bal" / "last.pt")["train_config"]["balance"] == 1.0
    with pytest.raises(UsageError, match="balance 2"):
        train(config(image_folder, tmp_path / "bad", epochs=1, balance=2.0), TINY)


@pytest.mark.parametrize(
    ("settings", "model", "says"),
    [
        ({"scale_min": 64, "scale_max": 32}, TINY, "--scale-min 64 is more than --scale-max 32"),
        ({"scale_min": 48}, TINY, "--scale-min needs --scale-max"),
        ({"scale_max": 16}, TINY, "less than the model's 32-pixel tile"),
        ({}, ModelConfig(width=4, depth=3, tile=20), "use a multiple of 8"),
        ({"mix": "self", "mix_share": 0.95}, TINY, "is all of it"),
        ({"mix": "self", "mix_share": 0.01}, TINY, "is no image"),
    ],
)
def test_settings_training_cannot_use_are_usage_errors(image_folder, mix_folder, tmp_path, settings, model, says):
    """Each of these ended in a traceback (a division by zero, uniform_'s from > to, a size mismatch)."""
    if settings.get("mix") == "self":
        settings = {**settings, "mix": str(mix_folder)}
    with pytest.raises(UsageError, match=says):
        train(config(image_folder, tmp_path / "run", **settings), model)


def test_a_mix_of_black_and_white_images_only_is_a_usage_error(image_folder, tmp_path):
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(4):
        colour_image(32, 32, seed=i).convert("L").convert("RGB").save(gray / f"{i}.png")
    with pytest.raises(UsageError, match="all 4 images are black-and-white"):
        train(config(image_folder, tmp_path / "run", mix=str(gray)), TINY)


def test_a_run_folder_another_training_is_writing_is_refused(image_folder, tmp_path, monkeypatch):
    """Two trainings into one folder both ran, each overwriting the other's checkpoints."""
    import subprocess
    import sys

    out = tmp_path / "new" / "busy"  # made by the holder: the refused run must not remove it
    out.mkdir(parents=True)
    holder = (  # another process holding the folder, as a second `colorcli train` would
        "import sys, time; from pathlib import Path; from colorcli.files import folder_held\n"
        "with folder_held(Path(sys.argv[1]), 'busy'):\n    print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        # As if the folder was not there when this run started: the holder made it since.
        monkeypatch.setattr(train_mod, "missing_folders", lambda folder: [out, out.parent])
        with pytest.raises(UsageError, match="another colorcli train is writing this run folder"):
            train(config(image_folder, out), TINY)
        assert out.is_dir()  # the holder's folder was removed as this run's own empty one
    finally:
        proc.kill()
        proc.wait()
    assert train(config(image_folder, out, epochs=1), TINY).best == out / "best.pt"  # free again


@pytest.mark.parametrize("mix", ["same", "inside", "around"])
def test_a_mix_that_overlaps_the_dataset_is_refused_before_anything_is_loaded(image_folder, tmp_path, mix):
    spec = {"same": image_folder, "inside": image_folder / "a", "around": image_folder.parent}[mix]
    with pytest.raises(UsageError, match="overlaps --dataset .* held out to validate would be trained on"):
        train(config(image_folder, tmp_path / "run", mix=str(spec)), TINY)
    assert not (tmp_path / "run").exists()


def test_a_refused_native_mix_leaves_the_run_it_would_overwrite(image_folder, mix_folder, tmp_path):
    run = tmp_path / "run"
    train(config(image_folder, run, epochs=1), TINY)
    bad = config(image_folder, run, epochs=1, mix=str(mix_folder), mix_native=True)
    with pytest.raises(UsageError, match="multiple of 32"):
        train(bad, PHOTO, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "history.json", "last.pt"]


def test_a_resumed_run_refuses_a_mix_folder_whose_files_changed(image_folder, mix_folder, tmp_path, monkeypatch):
    cut = tmp_path / "cut"
    monkeypatch.setattr(train_mod, "StopFlag", StopAfter(1))
    with pytest.raises(Interrupted):
        train(config(image_folder, cut, epochs=2, mix=str(mix_folder)), TINY)
    monkeypatch.undo()
    assert load_checkpoint(cut / "last.pt")["mix_images"] == 12
    moved = mix_folder.rename(tmp_path / "moved")
    colour_image(32, 32, seed=7).save(moved / "new.png")
    with pytest.raises(UsageError, match="13 image files, not the 12 the run mixed in"):
        train(TrainConfig(threads=1, mix=str(moved)), TINY, resume=cut / "last.pt")
    (moved / "new.png").unlink()
    train(TrainConfig(threads=1, mix=str(moved)), TINY, resume=cut / "last.pt")  # moved, the same files: fine
