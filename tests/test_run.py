"""A run: its settings, folder, resuming and fine-tuning, the images it split and its held-out split."""

from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from colorcli.checkpoint import load_checkpoint, load_model, save_checkpoint
from colorcli.errors import ColorcliError, UsageError
from colorcli.model import ModelConfig
from colorcli.run import ModelOptions, TrainConfig, fine_tune_config, grown_model
from colorcli.train import train

TINY = ModelConfig(width=4, depth=2)


def config(folder, out, **kw) -> TrainConfig:
    base = TrainConfig(dataset=str(folder), out=str(out), epochs=2, batch_size=8, lr=3e-3, val_fraction=0.15, threads=1)
    return replace(base, **kw)


def test_a_new_run_refuses_a_folder_holding_another_run(image_folder, tmp_path):
    train(config(image_folder, tmp_path / "r", epochs=1), TINY)
    before = {name: (tmp_path / "r" / name).read_bytes() for name in ("best.pt", "last.pt", "history.json")}
    with pytest.raises(UsageError, match="already holds a run.*--resume"):
        train(config(image_folder, tmp_path / "r", epochs=1, seed=5), TINY)
    assert {name: (tmp_path / "r" / name).read_bytes() for name in before} == before
    train(config(image_folder, tmp_path / "r", epochs=1, seed=5), TINY, overwrite=True)
    assert (tmp_path / "r" / "last.pt").read_bytes() != before["last.pt"]


def test_an_unusable_run_folder_is_a_one_line_error(image_folder, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create the run folder"):
        train(config(image_folder, tmp_path / "file" / "run", epochs=1), TINY)


def test_fine_tuning_starts_from_given_weights(image_folder, tmp_path):
    first = train(config(image_folder, tmp_path / "a", epochs=1), TINY)
    tuned = train(
        config(image_folder, tmp_path / "b", epochs=1, lr=1e-9, init=str(first.best)),
        ModelConfig(width=64, aux_logmse=0.5),  # the architecture comes from the weights, the loss weight from here
    )
    assert tuned.model.config.width == TINY.width and tuned.model.config.aux_logmse == 0.5
    start = load_model(first.best).state_dict()
    assert torch.allclose(start["head.weight"], tuned.model.state_dict()["head.weight"], atol=1e-4)


def test_fine_tuning_on_the_psnr_objective_keeps_the_weights_decoding(image_folder, tmp_path):
    first = train(config(image_folder, tmp_path / "a", epochs=1), replace(TINY, temperature=0.5))
    tuned = train(
        config(image_folder, tmp_path / "b", epochs=1, init=str(first.best)),
        fine_tune_config(str(first.best), loss="psnr", vivid=0.05),
    )
    cfg = load_model(tuned.best).config
    assert (cfg.loss, cfg.vivid, cfg.temperature, cfg.width) == ("psnr", 0.05, 0.5, TINY.width)
    # Settings not given keep the starting model's: its loss and its colour reward.
    again = fine_tune_config(str(tuned.best), loss=None, vivid=None, aux_logmse=None)
    assert (again.loss, again.vivid) == ("psnr", 0.05)
    with pytest.raises(UsageError, match="--width: a fine-tune"):
        fine_tune_config(str(tuned.best), width=8)
    assert fine_tune_config(str(tuned.best), width=None, arch=None).width == TINY.width  # not given: fine


def test_resuming_a_run_from_before_skip_gray_keeps_its_images(image_folder, tmp_path, capsys):
    import re

    from PIL import Image
    from rich.console import Console

    for i in range(4):
        Image.open(next(image_folder.rglob("*.png"))).convert("L").convert("RGB").save(image_folder / f"bw{i}.png")
    run = tmp_path / "old"
    train(config(image_folder, run, epochs=1, skip_gray=False, schedule="plateau"), TINY)  # no fixed step count
    state = load_checkpoint(run / "last.pt")
    del state["train_config"]["skip_gray"]  # as written before the setting existed
    state["train_config"]["epochs"] = 2
    save_checkpoint(run / "last.pt", state)
    train(config(image_folder, run), TINY, resume=run / "last.pt", console=Console(stderr=True, width=999))
    said = capsys.readouterr().err
    assert "black-and-white" not in said and int(re.search(r"(\d+) training / ", said)[1]) == 28 - round(28 * 0.15)


def test_a_fine_tune_can_grow_the_context_branch_and_a_level(tiny_checkpoint, image_folder, tmp_path):
    cfg = fine_tune_config(str(tiny_checkpoint), context=True, depth=3, tile=16)
    assert (cfg.context, cfg.depth, cfg.tile, cfg.width) == (True, 3, 16, 4)
    train(config(image_folder, tmp_path / "grown", epochs=1, init=str(tiny_checkpoint), scale_max=24), cfg)
    grown = load_model(tmp_path / "grown" / "best.pt")
    assert grown.context is not None and len(grown.enc) == 4
    with pytest.raises(UsageError, match="--width"):
        fine_tune_config(str(tiny_checkpoint), width=8)


def test_a_grown_model_starts_out_computing_what_its_starting_model_did(tiny_model):
    grown = grown_model(replace(tiny_model.config, context=True), tiny_model.state_dict(), Path("tiny.pt")).eval()
    y = torch.rand(2, 1, 16, 16) * 255
    with torch.no_grad():
        assert torch.allclose(grown(y), tiny_model(y), atol=1e-5)


# ---- options not given are None: what a new run fills in, what --resume checks

# train options that never reach a run's identity: how to start it and where it runs, not what it trains.
NOT_THE_RUNS = {"resume", "overwrite", "debug", "device", "threads"}


def test_every_train_option_is_a_setting_left_none_when_not_given_so_resume_can_tell():
    """A new `train` option must be a TrainConfig or ModelOptions field whose command-line default is
    None (not given: a resumed run keeps its own), or be listed in NOT_THE_RUNS; otherwise a
    --resume that uses it would be refused, or silently ignore it."""
    import typer

    from colorcli.cli import app

    command = typer.main.get_command(app).commands["train"]
    settings = {f.name for f in fields(TrainConfig)} | {f.name for f in fields(ModelOptions)}
    options = [p for p in command.params if p.name != "help"]
    assert len(options) > 30
    wrong = [p.name for p in options if p.name not in NOT_THE_RUNS and not (p.name in settings and p.default is None)]
    assert not wrong, f"{wrong}: give them default None and a TrainConfig/ModelOptions field, or list them here"
    assert {f.name for f in fields(ModelOptions)} <= {f.name for f in fields(ModelConfig)}


def test_a_new_run_fills_what_was_not_given_from_the_dataclasses():
    cfg = TrainConfig(epochs=3).filled()
    assert (cfg.epochs, cfg.lr, cfg.dataset, cfg.skip_gray, cfg.batch_size) == (3, 2e-3, "cifar10", True, None)
    assert ModelOptions().config() == ModelConfig()
    assert ModelOptions(head="regress").config().loss == "mse" and ModelOptions(head="bins").config().loss == "ce"
    seed = ModelOptions(arch="seed", vivid=0.5).config()
    assert (seed.arch, seed.head, seed.loss, seed.vivid) == ("seed", "regress", "mse", 0.5)
    with pytest.raises(UsageError, match="--width: only shape the unet"):
        ModelOptions(arch="seed", width=8).config()
    for given, flag in (({"tile": 40}, "--tile"), ({"depth": 4}, "--depth"), ({"context": True}, "--context")):
        with pytest.raises(UsageError, match=f"{flag}: only shape the unet"):  # were silently ignored
            ModelOptions(arch="seed", **given).config()


def test_resume_refuses_a_given_setting_that_differs_and_takes_the_rest_from_the_run(image_folder, tmp_path):
    train(config(image_folder, tmp_path / "r", epochs=1), TINY)
    last = tmp_path / "r" / "last.pt"
    with pytest.raises(UsageError, match=r"--lr 0.1 \(the run has --lr 0.003\)"):
        train(TrainConfig(lr=0.1), ModelOptions(), resume=last)
    with pytest.raises(UsageError, match=r"--width 8 \(the run has --width 4\)"):
        train(TrainConfig(), ModelOptions(width=8), resume=last)
    result = train(TrainConfig(epochs=1, device="cpu", threads=1), ModelOptions(width=4), resume=last)
    assert result.best == tmp_path / "r" / "best.pt"
    assert load_checkpoint(last)["train_config"]["batch_size"] == 8


def test_a_resumed_runs_mix_folder_may_move_and_a_folder_to_resume_points_at_its_last_pt(image_folder, tmp_path):
    import shutil

    mix = tmp_path / "mix"
    shutil.copytree(image_folder, mix)
    train(config(image_folder, tmp_path / "r", epochs=1, mix=str(mix)), TINY)
    last = tmp_path / "r" / "last.pt"
    moved = mix.rename(tmp_path / "mix-moved")
    with pytest.raises(UsageError, match="--mix folder is not there; if it moved, resume with --mix NEWPATH"):
        train(TrainConfig(threads=1), ModelOptions(), resume=last)
    result = train(TrainConfig(threads=1, mix=str(moved)), ModelOptions(), resume=last)  # was refused as a change
    assert result.best == tmp_path / "r" / "best.pt"
    with pytest.raises(UsageError, match=r"--mix cifar10 \(the run has --mix .*mix\)"):  # not a move
        train(TrainConfig(threads=1, mix="cifar10"), ModelOptions(), resume=last)
    train(config(image_folder, tmp_path / "plain", epochs=1), TINY)  # no mix: none may be added
    with pytest.raises(UsageError, match=r"--mix .* \(the run has --mix None\)"):
        train(TrainConfig(threads=1, mix=str(moved)), ModelOptions(), resume=tmp_path / "plain" / "last.pt")
    with pytest.raises(ColorcliError, match=r"is a folder; did you mean .*last\.pt"):  # best.pt cannot be resumed
        train(TrainConfig(threads=1), ModelOptions(), resume=tmp_path / "r")


def test_an_option_without_the_one_it_shapes_is_refused():
    from colorcli.run import new_run

    for cfg, says in (
        (TrainConfig(mix_share=0.3), "--mix-share shapes --mix, which is not in use"),
        (TrainConfig(zoom_min=0.4), "--zoom-min shapes --zoom, which is not in use"),
    ):
        with pytest.raises(UsageError, match=says):
            new_run(cfg, ModelOptions())
    assert new_run(TrainConfig(mix="cifar10", mix_share=0.3), ModelOptions()).cfg.mix_share == 0.3
    assert new_run(TrainConfig().filled(), ModelOptions()).cfg.mix_share == 0.5  # a run's own filled settings


def test_a_fine_tune_can_grow_the_model_but_not_shrink_it():
    from colorcli.errors import UsageError
    from colorcli.run import fine_tune_config

    assert fine_tune_config("cifar10", depth=4, context=True).depth == 4
    with pytest.raises(UsageError, match="--depth 2: the starting model has 3 levels; a fine-tune can add, not drop"):
        fine_tune_config("cifar10", depth=2)
    with pytest.raises(UsageError, match="--no-context: the starting model has a context branch"):
        fine_tune_config("photo", context=False)


def test_under_torchrun_only_the_main_process_says_why_a_run_is_refused(tmp_path):
    import contextlib

    from colorcli.distributed import Dist
    from colorcli.run import open_run

    bad = TrainConfig(dataset=str(tmp_path), out=str(tmp_path / "run"), scale_min=64, scale_max=32)
    for rank, says in ((0, True), (1, False)):
        with pytest.raises(UsageError, match="--scale-min 64 is more than --scale-max 32") as caught:
            open_run(bad, ModelOptions(), None, None, Dist(rank, 2), torch.device("cpu"), False, contextlib.ExitStack())
        assert caught.value.echo is says


def test_a_fine_tune_may_repeat_the_starting_models_own_settings():
    assert fine_tune_config("cifar10", head="bins").head == "bins"
    with pytest.raises(UsageError, match="--head: a fine-tune .* keeps the starting model's architecture"):
        fine_tune_config("cifar10", head="regress")
