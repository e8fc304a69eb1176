"""A run's training state: its schedule, and resuming from a last.pt."""

import pytest
import torch

import colorcli.train as train_mod
from colorcli.errors import CheckpointError
from colorcli.loop import make_scheduler
from colorcli.train import Interrupted, TrainConfig, train
from helpers import TINY, StopAfter
from test_train import config


@pytest.mark.parametrize(("schedule", "kind"), [("onecycle", "OneCycleLR"), ("plateau", "ReduceLROnPlateau")])
def test_the_schedule_is_the_one_asked_for(schedule, kind):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cfg = TrainConfig(schedule=schedule, epochs=3, lr=2e-3).filled()
    sched = make_scheduler(opt, cfg, steps_per_epoch=10)
    assert type(sched).__name__ == kind
    if schedule == "onecycle":
        assert sched.total_steps == 30 and max(g["max_lr"] for g in opt.param_groups) == 2e-3


@pytest.mark.parametrize(("key", "value"), [("scheduler", None), ("rng", None), ("optimizer", "not a state")])
def test_a_damaged_training_state_is_one_checkpoint_error(image_folder, tmp_path, monkeypatch, key, value):
    cut = tmp_path / "cut"
    monkeypatch.setattr(train_mod, "StopFlag", StopAfter(1))
    with pytest.raises(Interrupted):
        train(config(image_folder, cut, epochs=2), TINY)
    monkeypatch.undo()
    state = torch.load(cut / "last.pt", weights_only=True)
    if value is None:
        del state[key]
    else:
        state[key] = value
    torch.save(state, cut / "last.pt")
    with pytest.raises(CheckpointError, match="last.pt: (incomplete|damaged) training state"):
        train(TrainConfig(threads=1), TINY, resume=cut / "last.pt")
