"""The frozen settings: what a checkpoint stores and reads back, and what a run fills in."""

import dataclasses
import subprocess
import sys

import pytest

from colorcli.config import Decoding, ModelConfig, ModelOptions, TrainConfig
from colorcli.errors import UsageError


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().width = 8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig(dataset="cifar10").lr = 1.0  # type: ignore[misc]


def test_a_model_config_round_trips_through_its_dict():
    config = ModelConfig(width=16, depth=4, tile=64, context=True, saturation=1.2)
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        ({"width": "wide"}, "width is 'wide', not int"),
        ({"context": 1}, "context is 1, not bool"),
        ({"depth": True}, "depth is True, not int"),
    ],
)
def test_a_stored_setting_of_the_wrong_type_is_refused_by_name(stored, says):
    with pytest.raises(UsageError, match=says):
        ModelConfig.from_dict(stored)


def test_an_unknown_model_setting_is_refused():
    with pytest.raises(UsageError, match="unknown model config keys: \\['colour'\\]"):
        ModelConfig.from_dict({"colour": 1})


def test_the_decoding_settings_read_out_as_one_value():
    config = ModelConfig(temperature=0.5, saturation=1.3, tile_saturation=1.5)
    assert config.decoding == Decoding(temperature=0.5, saturation=1.3, tile_saturation=1.5)
    assert config.decoding.tile_factor(1) == 1.0  # one tile shows the whole picture, as in training
    assert config.decoding.tile_factor(4) == 1.5


def test_a_train_config_fills_what_was_not_given_and_says_what_was():
    cfg = TrainConfig(dataset="photos", lr=1e-4)
    assert cfg.given() == {"dataset": "photos", "lr": 1e-4}
    filled = cfg.filled()
    assert filled.lr == 1e-4 and filled.epochs == TrainConfig.defaults()["epochs"]
    assert filled.batch_size is None  # fitted to the data later


def test_a_train_config_reads_back_ignoring_settings_of_other_versions():
    cfg = TrainConfig(dataset="photos", epochs=3).filled()
    assert TrainConfig.from_dict({**dataclasses.asdict(cfg), "retired_setting": 1}) == cfg
    with pytest.raises(UsageError, match="epochs is '3'"):
        TrainConfig.from_dict({**dataclasses.asdict(cfg), "epochs": "3"})


def test_the_working_scales_of_a_photo_run():
    assert TrainConfig(dataset="p").scales is None
    assert TrainConfig(dataset="p", scale_max=112).scales == (112, 112)
    assert TrainConfig(dataset="p", scale_min=64, scale_max=112).scales == (64, 112)


def test_the_seed_design_refuses_unet_options():
    assert ModelOptions(arch="seed").config().arch == "seed"
    with pytest.raises(UsageError, match="--width, --tile: only shape the unet"):
        ModelOptions(arch="seed", width=8, tile=64).config()


def test_config_imports_no_torch():
    code = "import sys, colorcli.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
