import os
import pickle
from pathlib import Path

import pytest
import torch

from colorcli.checkpoint import (
    export_safetensors,
    load_checkpoint,
    load_model,
    read_weights,
    save_checkpoint,
)
from colorcli.errors import CheckpointError
from colorcli.model import ModelConfig, build_model
from helpers import TINY


def test_round_trip_rebuilds_the_same_model(tiny_model, tiny_checkpoint):
    loaded = load_model(tiny_checkpoint)
    assert loaded.config == TINY
    y = torch.randint(0, 256, (2, 1, 32, 32)).float()
    assert torch.equal(loaded(y), tiny_model(y))


def test_safetensors_round_trip(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    export_safetensors(tiny_model, path, info={"metrics": {"psnr": 1.0}})
    loaded = load_model(path)
    y = torch.randint(0, 256, (1, 1, 32, 32)).float()
    assert torch.equal(loaded(y), tiny_model(y))
    assert read_weights(path)[2]["metrics"] == {"psnr": 1.0}
    assert load_model(path, saturation=2.0).config.saturation == 2.0


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = marker
    evil = tmp_path / "evil.pt"
    torch.save({"format": "colorcli-checkpoint", "version": 1, "x": payload}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()
    # A plain pickle (not even a torch zip) with the payload: refused too.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny_checkpoint):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(cut)


def test_garbage_is_called_corrupt_not_dangerous(tmp_path):
    for i, blob in enumerate([b"hello world, not a checkpoint", b"\x80\x02garbage", bytes(range(256))]):
        p = tmp_path / f"junk{i}.pt"
        p.write_bytes(blob)
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(p)


def test_checkpoint_without_weights_is_named(tmp_path):
    p = tmp_path / "empty.pt"
    save_checkpoint(p, {"metrics": {}})
    with pytest.raises(CheckpointError, match="missing model_config, model"):
        load_checkpoint(p)


def test_unknown_version_and_foreign_file(tmp_path):
    p = tmp_path / "v99.pt"
    torch.save({"format": "colorcli-checkpoint", "version": 99}, p)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(p)
    q = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, q)
    with pytest.raises(CheckpointError, match="not a colorcli checkpoint"):
        load_checkpoint(q)


def test_weights_of_another_shape_are_named(tmp_path):
    other = build_model(ModelConfig(width=8, depth=2))
    p = tmp_path / "mismatch.pt"
    save_checkpoint(p, {"model_config": TINY.to_dict(), "model": other.state_dict()})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model(p)
    q = tmp_path / "arch.pt"
    save_checkpoint(q, {"model_config": {**TINY.to_dict(), "arch": "nope"}, "model": other.state_dict()})
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_model(q)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "nothing.pt")


def test_shipped_default_model_loads():
    model = load_model(None)
    assert model.config.arch == "unet"
    out = model(torch.full((1, 1, 32, 32), 128.0))
    assert out.shape == (1, 2, 32, 32)


def test_default_model_is_in_the_package_data():
    from colorcli.checkpoint import DEFAULT_MODEL_NAME, default_model_path

    assert default_model_path().name == DEFAULT_MODEL_NAME
    assert Path(default_model_path()).stat().st_size < 20_000_000


def test_the_model_a_command_uses(tmp_path):
    from colorcli.checkpoint import DEFAULT_MODEL, model_source, shipped_model_path

    assert model_source(tmp_path / "x.pt", None) == tmp_path / "x.pt"
    assert model_source(None, None) == shipped_model_path(DEFAULT_MODEL)
    assert model_source(None, None, dataset="cifar100") == shipped_model_path("cifar10")  # made for CIFAR
    assert model_source(None, "cifar10", dataset="some/folder") == shipped_model_path("cifar10")
    assert shipped_model_path("default") == shipped_model_path(DEFAULT_MODEL)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("form", ["zip", "legacy", "pickle0", "pickle2", "pickle5"])
def test_code_is_named_as_code_in_every_pickle_form_and_the_message_is_whole(tmp_path, form):
    payload = _Payload()
    payload.marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    data = {"format": "colorcli-checkpoint", "version": 1, "x": payload}
    if form.startswith("pickle"):
        evil.write_bytes(pickle.dumps(data, protocol=int(form[-1])))
    else:
        torch.save(data, evil, _use_new_zipfile_serialization=form == "zip")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(evil)
    assert str(e.value) == (
        f"{evil}: refused to load: the file holds Python code ({os.system.__module__}.system) "
        "that loading would run; a checkpoint holds data only"
    )
    assert not payload.marker.exists()


def test_a_half_precision_export_is_half_the_size_and_colours_the_same(tmp_path, tiny_checkpoint):
    from colorcli.checkpoint import export_model, load_model

    export_model(tiny_checkpoint, tmp_path / "full.safetensors")
    export_model(tiny_checkpoint, tmp_path / "half.safetensors", half=True, scale=80)
    full, half = load_model(tmp_path / "full.safetensors"), load_model(tmp_path / "half.safetensors")
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (tmp_path / "full.safetensors").stat().st_size
    assert next(half.parameters()).dtype == torch.float32 and half.config.scale == 80
    y = torch.rand(2, 1, 32, 32) * 255
    with torch.no_grad():
        assert (full(y) - half(y)).abs().max() < 1.0  # CbCr units of -128..128


def test_a_checkpoint_that_cannot_be_written_is_one_error_and_the_old_file_stays(tmp_path, monkeypatch):
    import torch

    from colorcli.checkpoint import save_checkpoint
    from colorcli.errors import ColorcliError

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def full_disk(obj, f):  # what torch's zip writer raises when the disk fills mid-write
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ColorcliError, match=r"last\.pt: cannot write the checkpoint \(.*a full disk\?\)"):
        save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_settings_of_the_wrong_kind_in_a_file_are_one_error_naming_what_is_wrong(tmp_path, tiny_checkpoint):
    """A hand-edited or foreign file raised TypeError tracebacks from deep in the model or the loop."""
    from colorcli.checkpoint import load_checkpoint, load_model, save_checkpoint
    from colorcli.errors import CheckpointError
    from colorcli.run import ModelOptions, resumed_run
    from colorcli.run import TrainConfig as RunConfig

    ckpt = load_checkpoint(tiny_checkpoint)
    for name, change, says in (
        ("nomc.pt", {"model_config": None}, "its model_config is NoneType, not a table of settings"),
        ("wide.pt", {"model_config": {**ckpt["model_config"], "width": "wide"}}, "width is 'wide', not int"),
    ):
        save_checkpoint(tmp_path / name, {**ckpt, **change})
        with pytest.raises(CheckpointError, match=says):
            load_model(tmp_path / name)
    last = {**ckpt, "optimizer": {}, "train_config": {"epochs": "3"}}
    save_checkpoint(tmp_path / "last.pt", last)
    with pytest.raises(CheckpointError, match=r"last\.pt: bad train_config: epochs is '3', not int or None"):
        resumed_run(tmp_path / "last.pt", RunConfig(), ModelOptions())


def test_an_exported_file_of_another_format_or_version_is_refused(tmp_path, tiny_model):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from colorcli.checkpoint import export_safetensors, load_model
    from colorcli.errors import CheckpointError

    good = tmp_path / "m.safetensors"
    export_safetensors(tiny_model, good)
    assert load_model(good).config == tiny_model.config
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    assert meta["version"] == "1"
    state = load_file(str(good))
    for name, change, says in (
        ("v99.safetensors", {"version": "99"}, "format version 99 is not supported"),
        ("other.safetensors", {"format": "somebody-else"}, "not a colorcli model file"),
    ):
        save_file(state, str(tmp_path / name), metadata={**meta, **change})
        with pytest.raises(CheckpointError, match=says):
            load_model(tmp_path / name)
    unversioned = {k: v for k, v in meta.items() if k != "version"}  # exported before the version was written
    save_file(state, str(tmp_path / "old.safetensors"), metadata=unversioned)
    assert load_model(tmp_path / "old.safetensors").config == tiny_model.config
