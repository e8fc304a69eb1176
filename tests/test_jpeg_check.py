import io
import os

import pytest
from PIL import Image

from colorcli.jpeg_check import jpeg_damage
from helpers import colour_image


def jpeg(mode: str = "RGB", size: tuple[int, int] = (200, 150), **options) -> bytearray:
    out = io.BytesIO()
    colour_image(*size, seed=1).convert(mode).save(out, "JPEG", quality=90, **options)
    return bytearray(out.getvalue())


def restart_markers(data: bytearray) -> list[int]:
    return [i for i in range(len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]


def decodes(path) -> bool:
    with Image.open(path) as im:
        im.load()  # Pillow decodes every case below without a word: the point of the check
    return True


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mode": "L"},
        {"mode": "CMYK"},
        {"size": (1, 1)},
        {"size": (17, 33), "subsampling": 2},
        {"subsampling": 0, "optimize": True},
        {"progressive": True},
        {"restart_marker_blocks": 3},
        {"restart_marker_rows": 1, "mode": "L"},
    ],
)
def test_whole_jpegs_have_no_damage(tmp_path, options):
    path = tmp_path / "whole.jpg"
    path.write_bytes(jpeg(**options))
    assert jpeg_damage(path) is None


def _zeroed(data: bytearray) -> bytearray:
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)  # a run of bytes lost to zeros
    return data


def _cut(data: bytearray) -> bytearray:
    del data[len(data) // 2 : len(data) // 2 + 100]  # a run of bytes lost
    return data


def _grown(data: bytearray) -> bytearray:
    data[len(data) // 2 : len(data) // 2] = bytes(range(1, 101))  # bytes that do not belong
    return data


def _restarts_swapped(data: bytearray) -> bytearray:
    at = restart_markers(data)
    data[at[3] + 1], data[at[4] + 1] = data[at[4] + 1], data[at[3] + 1]
    return data


def _restarts_lost(data: bytearray) -> bytearray:
    at = restart_markers(data)
    del data[at[5] : at[7]]
    return data


@pytest.mark.parametrize(
    ("damage", "options", "said"),
    [
        (_zeroed, {}, "more than 64 coefficients"),
        (_cut, {}, "a code no Huffman table holds"),
        (_grown, {}, "left over after the picture's end"),
        (_restarts_swapped, {"restart_marker_blocks": 4}, "restart marker 4 where 3 belongs"),
        (_restarts_lost, {"restart_marker_blocks": 4}, "restart marker 7 where 5 belongs"),
        (_restarts_lost, {"restart_marker_blocks": 4, "progressive": True}, "restart marker 7 where 5 belongs"),
    ],
)
def test_damage_the_decoder_patches_over_is_named(tmp_path, damage, options, said):
    path = tmp_path / "damaged.jpg"
    path.write_bytes(damage(jpeg(**options)))
    assert decodes(path)
    assert said in jpeg_damage(path)


# ---- where the check runs: a process of its own, held while the model runs


def test_the_check_runs_in_a_process_of_its_own_and_answers_through_check_result(tmp_path):
    from colorcli import jpeg_check

    whole, damaged = tmp_path / "whole.jpg", tmp_path / "damaged.jpg"
    whole.write_bytes(jpeg())
    data = jpeg()
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)
    damaged.write_bytes(data)
    checks = [jpeg_check.submit_check(whole), jpeg_check.submit_check(damaged)]
    assert jpeg_check.check_result(checks[0]) is None
    assert jpeg_check.check_result(checks[1]) == jpeg_damage(damaged) is not None
    workers = jpeg_check._CHECKER.pool._processes
    assert workers and os.getpid() not in workers


def test_a_held_check_waits_and_reading_its_result_lets_it_run(tmp_path):
    """Inside checks_held the process pauses at its next 64 units; a caller that then waits for
    a result must not wait for ever: check_result lets the checks run, then holds them again."""
    from concurrent.futures import TimeoutError as NotYet  # the builtin TimeoutError from Python 3.11

    from colorcli import jpeg_check

    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg(size=(1200, 900)))
    jpeg_check.check_result(jpeg_check.submit_check(path))  # the process is up
    with jpeg_check.checks_held():
        assert not jpeg_check._CHECKER.may_run.is_set()
        check = jpeg_check.submit_check(path)
        with pytest.raises(NotYet):
            check.result(timeout=1.0)  # 1,080 units: held at its first pause
        assert jpeg_check.check_result(check) is None
        assert not jpeg_check._CHECKER.may_run.is_set()
    assert jpeg_check._CHECKER.may_run.is_set()


def test_a_cancelled_check_gives_no_note(tmp_path):
    from concurrent.futures import Future

    from colorcli.jpeg_check import check_result

    check: Future = Future()
    check.cancel()
    assert check_result(check) is None


def test_where_no_process_can_start_or_the_process_died_the_checks_run_in_a_thread(tmp_path, monkeypatch):
    import signal
    from concurrent.futures.process import BrokenProcessPool

    from colorcli import jpeg_check

    damaged = tmp_path / "damaged.jpg"
    data = jpeg()
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)
    damaged.write_bytes(data)
    said = jpeg_damage(damaged)

    def no_semaphores() -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(jpeg_check, "_CHECKER", jpeg_check._Checker())
    monkeypatch.setattr(jpeg_check, "_start_process", no_semaphores)
    with jpeg_check.checks_held():  # nothing to hold: no process
        assert jpeg_check.check_result(jpeg_check.submit_check(damaged)) == said
    assert jpeg_check._CHECKER.thread is not None

    monkeypatch.undo()
    monkeypatch.setattr(jpeg_check, "_CHECKER", jpeg_check._Checker())
    assert jpeg_check.check_result(jpeg_check.submit_check(damaged)) == said
    pool = jpeg_check._CHECKER.pool
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    with pytest.raises(BrokenProcessPool):  # the pool notices the death within moments
        for _ in range(100):
            pool.submit(jpeg_damage, damaged).result()
    assert jpeg_check.check_result(jpeg_check.submit_check(damaged)) == said  # now in a thread
    assert jpeg_check._CHECKER.thread is not None
