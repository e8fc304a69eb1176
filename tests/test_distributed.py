"""The process side of training: its one-process behaviour, and distributed training with gloo
on CPU over 127.0.0.1 (two real processes; slow: ~20-40 s)."""

import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from colorcli.distributed import (
    Dist,
    StopFlag,
    all_sum,
    any_rank,
    broadcast_images,
    init_distributed,
    set_cpu_threads,
    unwrapped,
    wrapped,
)
from colorcli.errors import ColorcliError
from colorcli.model import ModelConfig, build_model
from colorcli.train import TrainConfig, train
from helpers import TINY, StopAfter, tiny_train_args

GROUP = ModelConfig(width=4, depth=2, norm="group")  # batch-independent, so 2x4 must equal 1x8


def test_without_torchrun_a_run_is_one_process_and_every_exchange_is_local(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    d, device = init_distributed("cpu")
    assert d == Dist() and d.main and device == torch.device("cpu")
    loads = []
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert broadcast_images(lambda: loads.append(1) or images, d, device) is images and loads == [1]
    t = torch.ones(2)
    assert all_sum(t, d) is t and torch.equal(t, torch.ones(2))
    assert any_rank(True, d, device) and not any_rank(False, d, device)
    model = build_model(TINY)
    assert wrapped(model, d, device) is model and unwrapped(model) is model


def test_cpu_threads_are_shared_between_a_machines_processes(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    try:
        assert set_cpu_threads(None, Dist(0, 2)) == 4 == torch.get_num_threads()
        assert set_cpu_threads(1, Dist(0, 2)) == 1
    finally:
        torch.set_num_threads(before)


def test_a_signal_asks_to_stop_and_a_second_one_stops_at_once():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopFlag() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # asked twice: Python's own handler
    assert {sig: signal.getsignal(sig) for sig in before} == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, cfg: TrainConfig, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
    )
    if rank > 0:  # as on a second machine without the data: rank 0 must send it
        import colorcli.sampling as sampling_mod

        def no_data_here(*args, **kwargs):
            raise AssertionError("only rank 0 loads the images")

        sampling_mod.load_dataset = no_data_here
    try:
        result = train(cfg, GROUP)
    except ColorcliError as e:  # each rank's own one-line error, for the test to read
        Path(f"{out_dir}/rank{rank}.err").write_text(str(e))
        return
    torch.save(result.model.state_dict(), f"{out_dir}/rank{rank}.pt")


@pytest.mark.slow
def test_two_ranks_agree_and_match_one_process(image_folder, tmp_path):
    cfg = TrainConfig(
        dataset=str(image_folder),
        out=str(tmp_path / "ddp"),
        epochs=2,
        batch_size=8,
        lr=3e-3,
        val_fraction=0.15,
        threads=1,
        device="cpu",
        limit=22,  # decoded by rank 0 alone (a limited run caches nothing) and sent to rank 1
    )
    mp.spawn(worker, args=(2, free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "ranks diverged"
    assert not any(k.startswith("module.") for k in r0)
    single = train(replace(cfg, out=str(tmp_path / "single")), GROUP).model.state_dict()
    for k in r0:
        assert torch.allclose(r0[k].float(), single[k].float(), atol=2e-4, rtol=1e-3), k
    assert (tmp_path / "ddp" / "best.pt").exists()


def stopping_worker(rank: int, world: int, port: int, cfg: TrainConfig, out_dir: str) -> None:
    """A rank of a run whose rank 1 alone is asked to stop, on the first epoch's last step."""
    import colorcli.train as train_mod
    from colorcli.train import Interrupted

    if rank == 1:
        train_mod.StopFlag = StopAfter(2)  # 2 steps an epoch: asked on step 2
    try:
        worker(rank, world, port, cfg, out_dir)
    except Interrupted:
        Path(f"{out_dir}/rank{rank}.stopped").touch()


@pytest.mark.slow
def test_a_stop_asked_on_one_rank_on_an_epochs_last_step_stops_both_after_saving_it(image_folder, tmp_path):
    cfg = TrainConfig(
        dataset=str(image_folder), out=str(tmp_path / "ddp"), epochs=3, batch_size=8, val_fraction=0.15, threads=1
    )
    mp.spawn(stopping_worker, args=(2, free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "rank0.stopped").exists() and (tmp_path / "rank1.stopped").exists()
    from colorcli.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 0) and len(state["history"]) == 1


@pytest.mark.slow
def test_a_load_failure_on_rank_0_reaches_every_rank(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = TrainConfig(dataset=str(empty), out=str(tmp_path / "ddp"), epochs=1, batch_size=8, threads=1, device="cpu")
    mp.spawn(worker, args=(2, free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    assert "no images found" in (tmp_path / "rank0.err").read_text()
    assert "rank 0" in (tmp_path / "rank1.err").read_text()


@pytest.mark.slow
def test_torchrun_command_from_the_readme(image_folder, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "colorcli"]
    cmd += tiny_train_args(image_folder, run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)  # into the finished run
    assert again.stderr.count("already holds a run") == 1, again.stderr[-3000:]  # said once, by rank 0
    assert "colorcli: error" in again.stderr and again.stderr.count("colorcli: error") == 1
    out = tmp_path / "c.png"
    src = next(image_folder.rglob("*.png"))
    proc = subprocess.run(
        [sys.executable, "-m", "colorcli", "colorize", str(src), "-o", str(out), "--checkpoint", str(run / "best.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
