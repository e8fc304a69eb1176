"""Damage in a JPEG's compressed data, which the decoder patches over without a word.

libjpeg decodes a JPEG whose compressed data is damaged (bytes overwritten, a run
of them lost) by warning and filling in, and Pillow drops its warnings, so a damaged
photo decodes as if it were whole: garbled blocks, shifted colour, a flat gray end.
``jpeg_damage`` looks for the same signs libjpeg warns about, without decoding a
pixel: restart markers missing or out of order, and, in sequential Huffman JPEGs
(what cameras and scanners write), a code no table holds, data that runs out
before the last block, or data left over after it. Progressive and arithmetic-coded
JPEGs get the marker checks only. The walk reads about 4 MB of compressed data a
second in pure Python (half a second for a 12 MP photo), so colorize runs it in a process
of its own (``submit_check``), beside the import of torch and the reading and writing of
files, and holds it while the model and the full-resolution work run (``checks_held``).
"""

from __future__ import annotations

import functools
import multiprocessing
import re
import signal
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

# Frame types whose scans are sequential Huffman code: baseline and extended (the walk's).
_SEQUENTIAL = {0xC0, 0xC1}
# All start-of-frame markers (0xC4 is DHT, 0xC8 reserved, 0xCC DAC).
_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_RST = range(0xD0, 0xD8)
_STUFFED = re.compile(rb"\xff+\x00")  # an 0xFF data byte (fill bytes before it are skipped, as libjpeg does)


class _Damage(Exception):
    """Raised inside the walk with what is wrong; ``jpeg_damage`` returns the text."""


def _go_on() -> None:
    pass


def jpeg_damage(path: Path, pause: Callable[[], None] = _go_on) -> str | None:
    """What is wrong with the compressed data of the JPEG at ``path``, in a phrase, or None.

    Only damage is reported: a file whose structure this module does not follow
    (a missing table, a height given after the scan) is passed as it is. ``pause`` is
    called every 64 coded units of the walk (``checks_held`` waits there).
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None  # gone or unreadable since it was decoded: nothing to judge
    try:
        _check(data, pause)
    except _Damage as e:
        return str(e)
    except (IndexError, struct.error, ValueError, ArithmeticError):  # headers the decoder would have refused
        return None
    return None


Frame = tuple[int, int, int, list[tuple[int, int, int]]]  # marker, width, height, (id, h, v) per component
Tables = dict[tuple[int, int], list | None]  # (class, id) -> the Huffman lookup, None where malformed


def _check(data: bytes, pause: Callable[[], None]) -> None:
    """Walk the markers of the first image in ``data`` (an MPO holds more), checking each scan."""
    tables: Tables = {}
    frame: Frame | None = None
    interval = 0
    i = 2
    while i < len(data) - 1:
        if data[i] != 0xFF:
            return  # lost in the headers: the decoder would have failed, not patched
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1  # fill byte
            continue
        if marker == 0xD9:
            return
        if marker in _RST or marker in (0x01, 0xD8):
            i += 2
            continue
        if marker < 0xC0:
            return  # not a marker: the decoder would have failed, not patched
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        body = data[i + 4 : i + 2 + length]
        i += 2 + length
        if marker == 0xC4:
            tables.update(_huffman_tables(body))
        elif marker == 0xDD:
            interval = struct.unpack(">H", body[:2])[0]
        elif marker in _FRAMES:
            height, width, count = struct.unpack(">HHB", body[1:6])
            parts = [(body[6 + 3 * k], body[7 + 3 * k] >> 4, body[7 + 3 * k] & 15) for k in range(count)]
            frame = (marker, width, height, parts)
        elif marker == 0xDA:
            segments, i = _scan_segments(data, i)
            _check_restarts(segments, interval, frame, body)
            if frame is not None and frame[0] in _SEQUENTIAL:
                _walk_scan(data, segments, interval, frame, body, tables, pause)


def _huffman_tables(body: bytes) -> dict[tuple[int, int], list | None]:
    """The Huffman tables of a DHT segment by (class, id): for every 16-bit window of the
    data, the bits its first code and that code's value take, and for AC codes how far it
    moves along the block (0: end of block); None where the table is not a valid code."""
    found: dict[tuple[int, int], list | None] = {}
    j = 0
    while j < len(body):
        ac, ident = body[j] >> 4, body[j] & 15
        counts = body[j + 1 : j + 17]
        symbols = body[j + 17 : j + 17 + sum(counts)]
        j += 17 + sum(counts)
        found[(ac, ident)] = _lookup(counts, symbols, bool(ac))
    return found


@functools.lru_cache(maxsize=16)  # a folder's files mostly share tables: building them was a quarter of a small check
def _lookup(counts: bytes, symbols: bytes, ac: bool) -> list | None:
    table: list = [None] * 65536  # windows no code starts: a bad code
    code, n = 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            if n >= len(symbols) or code >= 1 << length:
                return None  # more codes than the symbols or the code space hold: not a table to judge by
            size, run = symbols[n] & 15, symbols[n] >> 4
            step = (0 if run != 15 else 16) if size == 0 else run + 1
            entry = (length + size, step) if ac else length + size
            lo, hi = code << (16 - length), (code + 1) << (16 - length)
            table[lo:hi] = [entry] * (hi - lo)
            code, n = code + 1, n + 1
        code <<= 1
    return table


def _scan_segments(data: bytes, start: int) -> tuple[list[tuple[int, int, int]], int]:
    """The entropy-coded data of a scan from ``start``: its (start, end, restart marker number)
    pieces, cut at restart markers (-1 for the first piece), and where the marker after it begins."""
    segments = []
    seg_start, number = start, -1
    j = start
    while True:
        j = data.find(b"\xff", j)
        if j < 0:
            raise _Damage("the file ends inside the compressed image data")
        k = j + 1
        while k < len(data) and data[k] == 0xFF:
            k += 1
        if k >= len(data):
            raise _Damage("the file ends inside the compressed image data")
        if data[k] == 0x00:
            j = k + 1
        elif data[k] in _RST:
            segments.append((seg_start, j, number))
            seg_start, number, j = k + 1, data[k] - 0xD0, k + 1
        else:
            segments.append((seg_start, j, number))
            return segments, k - 1


def _check_restarts(segments: list[tuple[int, int, int]], interval: int, frame: Frame | None, sos: bytes) -> None:
    """Restart markers must count 0 to 7 over and over; with a restart interval, a scan has
    one piece per interval of its blocks."""
    for n, (_, _, number) in enumerate(segments[1:]):
        if number != n % 8:
            raise _Damage(f"restart marker {number} where {n % 8} belongs (data lost or overwritten)")
    if interval and frame is not None and frame[2]:
        expected = _ceil(_mcu_count(frame, sos), interval)
        if len(segments) != expected:
            raise _Damage(f"{len(segments)} restart intervals where the picture has {expected} (data lost)")


def _scan_components(frame: Frame, sos: bytes) -> list[tuple[int, int, int, int]]:
    """(h, v, DC table, AC table) of each component of a scan, in scan order."""
    parts = {ident: (h, v) for ident, h, v in frame[3]}
    chosen = []
    for k in range(sos[0]):
        ident, tables = sos[1 + 2 * k], sos[2 + 2 * k]
        h, v = parts.get(ident, (1, 1))
        chosen.append((h, v, tables >> 4, tables & 15))
    return chosen


def _mcu_count(frame: Frame, sos: bytes) -> int:
    """Minimum coded units in a scan: the whole frame's for an interleaved scan, else the
    component's blocks."""
    _, width, height, parts = frame
    hmax, vmax = max(p[1] for p in parts), max(p[2] for p in parts)
    chosen = _scan_components(frame, sos)
    if len(chosen) > 1:
        return _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
    h, v = chosen[0][0], chosen[0][1]
    return _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _walk_scan(
    data: bytes,
    segments: list[tuple[int, int, int]],
    interval: int,
    frame: Frame,
    sos: bytes,
    tables: Tables,
    pause: Callable[[], None],
) -> None:
    """Follow the Huffman codes of every block of a sequential scan through its pieces."""
    if not frame[2]:
        return  # height given after the scan (DNL): not followed
    chosen = _scan_components(frame, sos)
    blocks = []
    for h, v, dc, ac in chosen:
        dc_table, ac_table = tables.get((0, dc)), tables.get((1, ac))
        if dc_table is None or ac_table is None:
            return  # a table the file does not define (motion JPEG uses standard ones): not judged
        blocks += [(dc_table, ac_table)] * (h * v if len(chosen) > 1 else 1)
    total = _mcu_count(frame, sos)
    per_piece = interval or total
    for n, (start, end, _) in enumerate(segments):
        units = min(per_piece, total - n * per_piece)
        if units > 0:
            _walk(_STUFFED.sub(b"\xff", data[start:end]), units, blocks, pause)


def _walk(piece: bytes, units: int, blocks: list[tuple[list, list]], pause: Callable[[], None]) -> None:
    """Read ``units`` coded units of ``blocks`` from ``piece`` (its 0xFF bytes unstuffed), or
    raise _Damage: a code no table holds, data that runs out, or more than a byte left over."""
    size = len(piece) * 8
    padded = piece + b"\xff" * 16  # past the end: all ones, as no code is
    acc = nbits = pos = 0
    end = len(piece) + 6  # a refill from here on reads nothing but the padding
    # The refill is written out twice below: a function call per code would halve the speed.
    for unit in range(units):
        if not unit % 64:
            pause()
        for dc, ac in blocks:
            if nbits < 32:
                if pos > end:
                    raise _Damage("the compressed data runs out before the picture's end")
                acc = ((acc << 48) | int.from_bytes(padded[pos : pos + 6], "big")) & ((1 << (nbits + 48)) - 1)
                pos, nbits = pos + 6, nbits + 48
            bits = dc[(acc >> (nbits - 16)) & 0xFFFF]
            if bits is None:
                _bad_code(pos * 8 - nbits, size)
            nbits -= bits
            k = 1
            while k < 64:
                if nbits < 32:
                    if pos > end:
                        raise _Damage("the compressed data runs out before the picture's end")
                    acc = ((acc << 48) | int.from_bytes(padded[pos : pos + 6], "big")) & ((1 << (nbits + 48)) - 1)
                    pos, nbits = pos + 6, nbits + 48
                entry = ac[(acc >> (nbits - 16)) & 0xFFFF]
                if entry is None:
                    _bad_code(pos * 8 - nbits, size)
                nbits -= entry[0]
                if not entry[1]:
                    break
                k += entry[1]
            if k > 64:
                raise _Damage("a block with more than 64 coefficients")
    used = pos * 8 - nbits
    if used > size:
        raise _Damage("the compressed data runs out before the picture's end")
    if (size - used) // 8 > 1:
        raise _Damage(f"{(size - used) // 8} bytes of compressed data left over after the picture's end")


def _bad_code(at: int, size: int) -> NoReturn:
    if at >= size:
        raise _Damage("the compressed data runs out before the picture's end")
    raise _Damage("a code no Huffman table holds")


# ---------------------------------------------------------------- checking beside colorize
#
# Beside reading and writing files, or importing torch, the check costs nothing on a second
# core; beside the model or the full-resolution work it costs more than it takes (their
# threads want every core: a model call measured 3 times as slow beside a busy process, 11
# times beside a busy thread of the same process, which also waits for the interpreter).


@dataclass
class _Checker:
    """Where checks run: one spawned process, started on the first check (so a batch's checks
    run in order), with the flag it waits on while held; or, where no process can start (no
    working semaphores, a process that died), one thread, which is never held."""

    pool: ProcessPoolExecutor | None = None
    may_run: Any = None  # a multiprocessing Event, set while the checks may run
    thread: ThreadPoolExecutor | None = None


_CHECKER = _Checker()
_WORKER_MAY_RUN: Any = None  # in the checking process: the flag of the process that started it


def _start_process() -> None:
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch's threads
    may_run = context.Event()
    may_run.set()
    _CHECKER.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start_worker, initargs=(may_run,))
    _CHECKER.may_run = may_run


def _start_worker(may_run: Any) -> None:
    global _WORKER_MAY_RUN
    _WORKER_MAY_RUN = may_run
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the colorizing process's to handle


def _worker_damage(path: Path) -> str | None:
    return jpeg_damage(path, pause=_WORKER_MAY_RUN.wait)


def submit_check(path: Path) -> Future[str | None]:
    """Start checking the JPEG at ``path`` beside the caller; ``check_result`` reads the answer."""
    if _CHECKER.thread is None:
        try:
            if _CHECKER.pool is None:
                _start_process()
            return _CHECKER.pool.submit(_worker_damage, Path(path))
        except (OSError, ImportError, RuntimeError):  # no semaphores here; the process died (BrokenProcessPool)
            _CHECKER.thread = ThreadPoolExecutor(1, thread_name_prefix="colorcli-jpeg-check")
    return _CHECKER.thread.submit(jpeg_damage, Path(path))


@contextmanager
def checks_held() -> Iterator[None]:
    """Hold the checking process (at its next pause, within a millisecond) while the block runs
    work that wants every core. Nothing is touched if no process was started."""
    may_run = _CHECKER.may_run
    if may_run is None:
        yield
        return
    was_running = may_run.is_set()
    may_run.clear()
    try:
        yield
    finally:
        if was_running:
            may_run.set()


def check_result(check: Future[str | None]) -> str | None:
    """A check's answer, waiting for it (letting held checks run meanwhile: the caller waits on
    them), or None if the check could not run (cancelled, the checking process ended)."""
    may_run = _CHECKER.may_run
    held = may_run is not None and not may_run.is_set()
    if held:
        may_run.set()
    try:
        return check.result()
    except (BrokenProcessPool, CancelledError, OSError):
        return None
    except Exception:  # noqa: BLE001 - the check only adds a note: whatever it met (a MemoryError) must not end a batch
        return None
    finally:
        if held:
            may_run.clear()
