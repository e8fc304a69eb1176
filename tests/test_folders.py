"""A folder of photos as a dataset: decoding, the cache, and what is said of unreadable files."""

import numpy as np
import pytest
import torch

from colorcli.errors import DataError, UsageError
from colorcli.folders import load_folder


def test_load_folder_fits_every_image_to_32(image_folder, tmp_path):
    data = load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False)
    assert data.shape == (24, 3, 32, 32) and data.dtype == torch.uint8
    assert data.float().std() > 10  # real colour content, not zeros
    cached = list((tmp_path / "c" / "folders").glob("*.npy"))
    assert len(cached) == 1
    again = load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False)
    assert torch.equal(again, data)


def test_unreadable_images_are_skipped_with_a_count(image_folder, capsys, tmp_path):
    (image_folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    data = load_folder(image_folder, show_progress=False)
    assert len(data) == 24
    assert "skipped 1 unreadable" in capsys.readouterr().err
    cache = tmp_path / "cache"
    for _ in range(2):  # decoded, then read from the cache: both say what was skipped
        assert len(load_folder(image_folder, show_progress=False, cache_dir=cache)) == 24
        assert "skipped 1 unreadable image(s) in" in capsys.readouterr().err
    assert len(load_folder(image_folder, show_progress=False, cache_dir=cache, limit=3)) == 3
    assert "skipped" not in capsys.readouterr().err  # the first 3 were read; the broken one lies past them
    (image_folder / "a" / "0-broken.png").write_bytes(b"not a png")  # sorts first: among the first 3
    load_folder(image_folder, show_progress=False, cache_dir=cache)
    capsys.readouterr()
    assert len(load_folder(image_folder, show_progress=False, cache_dir=cache, limit=3)) == 3
    err = capsys.readouterr().err
    assert "skipped 1 unreadable" in err and "0-broken.png" in err and "broken.jpg" not in err, err
    (image_folder / "a" / "0-broken.png").unlink()
    (image_folder / "broken.jpg").unlink()  # another folder's contents, another cache: nothing to say
    assert len(load_folder(image_folder, show_progress=False, cache_dir=cache)) == 24
    assert "skipped" not in capsys.readouterr().err


def test_empty_or_imageless_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UsageError, match="no images found"):
        load_folder(tmp_path, show_progress=False)
    with pytest.raises(UsageError, match="no such folder"):
        load_folder(tmp_path / "missing", show_progress=False)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        load_folder(tmp_path, show_progress=False)


def test_limit_decodes_only_the_first_files(image_folder, monkeypatch):
    import colorcli.folders as data_module

    decoded = []
    real = data_module._decode_fit
    monkeypatch.setattr(data_module, "_decode_fit", lambda p, size: decoded.append(p) or real(p, size))
    (image_folder / "a" / "0broken.png").write_bytes(b"not a png")  # sorts first: skipped, not counted
    cache = image_folder.parent / "cache"
    first5 = load_folder(image_folder, cache_dir=cache, show_progress=False, limit=5)
    assert len(first5) == 5 and len(decoded) == 6
    assert not (cache / "folders").exists()  # a quick trial leaves no copy behind
    whole = load_folder(image_folder, cache_dir=cache, show_progress=False)
    assert torch.equal(first5, whole[:5])
    decoded.clear()
    assert torch.equal(load_folder(image_folder, cache_dir=cache, show_progress=False, limit=5), first5)
    assert decoded == []  # from the whole folder's cache


def test_a_moved_folder_keeps_its_cache(image_folder, tmp_path):
    import shutil

    cache = tmp_path / "c"
    first = load_folder(image_folder, cache_dir=cache, show_progress=False)
    moved = shutil.copytree(image_folder, tmp_path / "elsewhere")  # copy2 keeps sizes and times
    assert torch.equal(load_folder(moved, cache_dir=cache, show_progress=False), first)
    assert len(list((cache / "folders").glob("*.npy"))) == 1  # one cache, found again


def test_caches_unused_for_a_month_are_pruned_when_a_new_one_is_written(image_folder, tmp_path):
    import os
    import time

    folders = tmp_path / "c" / "folders"
    folders.mkdir(parents=True)
    stale, recent = folders / "stale.npy", folders / "recent.npy"
    for f in (stale, recent):
        np.save(f, np.zeros((1, 2, 2, 3), np.uint8))
    month_ago = time.time() - 31 * 86_400
    os.utime(stale, (month_ago, month_ago))
    load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False)
    kept = sorted(p.name for p in folders.glob("*.npy"))
    assert "stale.npy" not in kept and "recent.npy" in kept and len(kept) == 2
    # reading a cache marks it used, so a folder trained on every few weeks keeps its cache
    ours = next(p for p in folders.glob("*.npy") if p.name != "recent.npy")
    os.utime(ours, (month_ago, month_ago))
    load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False)
    assert ours.stat().st_mtime > time.time() - 60


def test_a_cache_from_an_older_decoder_is_not_read_back(image_folder, tmp_path, monkeypatch):
    import colorcli.folders as data_module

    monkeypatch.setattr(data_module, "DECODE_VERSION", 1)
    load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False)
    [old] = (tmp_path / "c" / "folders").glob("*.npy")
    np.save(old, np.zeros_like(np.load(old)))  # stands for what the old decoder made
    monkeypatch.setattr(data_module, "DECODE_VERSION", 2)
    assert load_folder(image_folder, cache_dir=tmp_path / "c", show_progress=False).float().mean() > 0


def test_a_cache_pruned_under_a_reader_is_decoded_again(tmp_path):
    from colorcli.folders import _read_cache

    assert _read_cache(tmp_path / "gone.npy", None) is None
    (tmp_path / "torn.npy").write_bytes(b"\x93NUMPY")  # cut short
    assert _read_cache(tmp_path / "torn.npy", 3) is None


def test_a_skip_warning_names_the_file_once_however_its_reason_spelt_the_path():
    from pathlib import Path

    from colorcli.folders import skipped_warning

    for said in ("/abs/photos/a/x.jpg: not a readable image", "photos/a/x.jpg: not a readable image"):
        line = skipped_warning([(Path("photos/a/x.jpg"), said)], "photos")
        assert line.endswith("(x.jpg: not a readable image)"), line
