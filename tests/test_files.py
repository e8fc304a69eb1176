import os
from pathlib import Path

import pytest

from colorcli.files import atomic_write, remove_stale_temps


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def explode(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o044  # readable by others, like a normally created file


def _left_behind(folder: Path, name: str, age: float = 86_400.0) -> Path:
    """A file as a writer killed mid-write leaves it: mode 0600, last written ``age`` seconds ago."""
    path = folder / name
    path.write_bytes(b"half a file")
    path.chmod(0o600)
    os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    return path


def test_temporary_files_left_by_a_killed_writer_go_when_colorcli_next_writes_there(tmp_path):
    import fcntl

    stale = [_left_behind(tmp_path, ".a.png.k3j4l5m6.tmp"), _left_behind(tmp_path, ".history.json.9x_8y7z6.tmp")]
    kept = [
        _left_behind(tmp_path, ".b.png.abcdefgh.tmp", age=-60),  # written since this process started
        _left_behind(tmp_path, "a.png.k3j4l5m6.tmp"),  # not colorcli's names: never touched
        _left_behind(tmp_path, ".notes.tmp"),
        _left_behind(tmp_path, ".c.png.ABCDEFGH.tmp"),
        _left_behind(tmp_path, ".d.png.k3j4l5m6.tmp.bak"),
    ]
    kept.append(_left_behind(tmp_path, ".notes.draft_01.tmp"))
    kept[-1].chmod(0o644)  # named like one, but not made by mkstemp
    (tmp_path / ".e.png.k3j4l5m6.tmp").mkdir()
    (tmp_path / ".f.png.k3j4l5m6.tmp").symlink_to(stale[0].name)
    busy = _left_behind(tmp_path, ".g.png.k3j4l5m6.tmp")  # another colorcli is still writing it
    with open(busy, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        atomic_write(tmp_path / "new.png", lambda f: f.write(b"result"))
        assert busy.exists()
    assert (tmp_path / "new.png").read_bytes() == b"result"
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (tmp_path / ".e.png.k3j4l5m6.tmp").is_dir() and (tmp_path / ".f.png.k3j4l5m6.tmp").is_symlink()
    assert remove_stale_temps(tmp_path) == [busy]  # its writer is gone now
    assert remove_stale_temps(tmp_path / "missing") == []
