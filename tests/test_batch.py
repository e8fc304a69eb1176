"""Planning batches: inputs, globs, result names and collisions."""

import unicodedata

import pytest

from colorcli.batch import plan_jobs
from colorcli.errors import UsageError
from helpers import colour_image


def test_plan_single_file_and_folder_naming(tmp_path):
    a = tmp_path / "in" / "photo.jpg"
    b = tmp_path / "in" / "photo.png"
    c = tmp_path / "in" / "other one.TIFF"
    a.parent.mkdir()
    for p in (a, b, c):
        colour_image(8, 8).save(p)
    single = plan_jobs([a], tmp_path / "x.webp")
    assert [j.dst.name for j in single] == ["x.webp"]
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out")
    names = sorted(j.dst.name for j in jobs)
    assert names == ["other one.png", "photo_jpg.png", "photo_png.png"]
    with pytest.raises(UsageError):
        plan_jobs([], tmp_path / "out")


def test_same_names_in_different_folders_never_collide(tmp_path):
    for sub in ("a", "b", "c"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        colour_image(8, 8).save(tmp_path / "in" / sub / "photo.png")
    colour_image(8, 8).save(tmp_path / "in" / "c" / "photo.jpg")
    (tmp_path / "flat").mkdir()
    colour_image(8, 8).save(tmp_path / "flat" / "photo_png.png")
    colour_image(8, 8).save(tmp_path / "flat" / "photo.png")
    colour_image(8, 8).save(tmp_path / "flat" / "photo.jpg")
    jobs = plan_jobs(
        [tmp_path / "in" / "a", tmp_path / "in" / "b", tmp_path / "in" / "c", tmp_path / "flat"], tmp_path / "out"
    )
    dsts = [str(j.dst).lower() for j in jobs]
    assert len(dsts) == len(set(dsts)) == 7


def test_an_input_named_twice_is_colorized_once(tmp_path):
    colour_image(8, 8).save(tmp_path / "m.png")
    jobs = plan_jobs([tmp_path / "m.png", tmp_path / "m.png", tmp_path], tmp_path / "out")
    assert [(j.src.name, j.dst.name) for j in jobs] == [("m.png", "m.png")]
    [job] = plan_jobs([tmp_path / "m.png", tmp_path / "." / "m.png"], tmp_path / "x.png")
    assert job.dst == tmp_path / "x.png"  # one file, named twice: -o is still that file


def test_a_trailing_slash_makes_the_output_a_folder_and_formats_are_named(tmp_path):
    colour_image(8, 8).save(tmp_path / "m.png")
    [job] = plan_jobs([tmp_path / "m.png"], tmp_path / "new", output_is_dir=True)
    assert job.dst == tmp_path / "new" / "m.png"
    with pytest.raises(UsageError, match="--format gif: cannot write this format; use one of png, jpg"):
        plan_jobs([tmp_path], tmp_path / "out", fmt="gif")
    for output in (None, tmp_path / "one.png"):  # refused even where the output's own suffix decides
        with pytest.raises(UsageError, match="--format xyz: cannot write this format"):
            plan_jobs([tmp_path / "m.png"], output, fmt="xyz")


def test_globs_keep_images_without_an_image_suffix_and_allow_an_output_they_cannot_match(tmp_path):
    src = tmp_path / "scans"
    src.mkdir()
    colour_image(40, 40).save(src / "scan001", format="PNG")  # no suffix at all
    colour_image(40, 40).save(src / "a.jpg")
    (src / "notes.txt").write_text("not a photo")
    notes: list[str] = []
    jobs = plan_jobs([src / "*"], tmp_path / "out", notes=notes)
    assert sorted(j.src.name for j in jobs) == ["a.jpg", "scan001"] and "1 non-image" in notes[0]
    # '*.jpg' cannot match the .png results written beside the inputs, so that is allowed ...
    assert [j.dst.name for j in plan_jobs([src / "*.jpg"], src)] == ["a.png"]
    with pytest.raises(UsageError, match="also the folder"):  # ... but not where a rerun would find them
        plan_jobs([src / "*.jpg"], src, fmt="jpg")


def test_a_folder_with_glob_characters_in_its_name_is_taken_as_written(tmp_path):
    src = tmp_path / "scans [1950]"
    src.mkdir()
    colour_image(40, 40).save(src / "a.jpg")
    colour_image(40, 40).save(src / "b.png")
    jobs = plan_jobs([src / "*.jpg"], tmp_path / "out")
    assert [j.src.name for j in jobs] == ["a.jpg"]
    assert [j.src.name for j in plan_jobs([src], tmp_path / "out2")] == ["a.jpg", "b.png"]
    # the literal folder also counts for the output check: -o it with a matching glob is refused
    with pytest.raises(UsageError, match="also the folder"):
        plan_jobs([src / "*"], src)


def test_a_new_output_named_like_an_image_is_refused_for_several_inputs(tmp_path):
    for name in ("a", "b"):
        colour_image(40, 40).save(tmp_path / f"{name}.jpg")
    with pytest.raises(UsageError, match="names one image file, but 2 images"):
        plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "all.png")
    with pytest.raises(UsageError, match="a folder or glob"):
        plan_jobs([tmp_path / "a.*"], tmp_path / "one.png")
    colour_image(8, 8).save(tmp_path / "old.png")  # an existing file, too
    with pytest.raises(UsageError, match="names one image file"):
        plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "old.png")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "all.png", output_is_dir=True)
    assert [j.dst for j in jobs] == [tmp_path / "all.png" / "a.png", tmp_path / "all.png" / "b.png"]
    assert [j.dst for j in plan_jobs([tmp_path / "a.jpg"], tmp_path / "one.png")] == [tmp_path / "one.png"]


def test_jobs_keep_the_order_inputs_were_given_in_even_refused_and_renamed_ones(tmp_path):
    for sub in ("a", "b", "empty"):
        (tmp_path / sub).mkdir()
    colour_image(30, 30).save(tmp_path / "a" / "photo.png")
    colour_image(30, 30).save(tmp_path / "b" / "photo.jpg")
    colour_image(30, 30).save(tmp_path / "b.png")
    inputs = [tmp_path / "a" / "photo.png", tmp_path / "empty", tmp_path / "b.png", tmp_path / "b" / "photo.jpg"]
    jobs = plan_jobs(inputs, tmp_path / "out")
    assert [j.src for j in jobs] == inputs
    assert len(plan_jobs([*inputs, tmp_path / "empty"], tmp_path / "out")) == 4  # named twice: refused once
    assert jobs[1].error and "no images" in jobs[1].error
    assert [j.dst.name for j in jobs if j.dst] == ["photo_png.png", "b.png", "photo_jpg.png"]


def test_a_result_is_never_named_like_a_folder_of_results(tmp_path):
    src = tmp_path / "col"
    (src / "photo.png").mkdir(parents=True)  # a subfolder named like photo.jpg's result
    colour_image(30, 30).save(src / "photo.jpg")
    colour_image(30, 30).save(src / "photo.png" / "inner.jpg")
    jobs = plan_jobs([src], tmp_path / "out", recursive=True)
    assert sorted(j.dst.relative_to(tmp_path / "out").as_posix() for j in jobs) == [
        "photo-1.png",
        "photo.png/inner.png",
    ]
    (tmp_path / "out2" / "a.png").mkdir(parents=True)  # a folder already in the output
    colour_image(30, 30).save(tmp_path / "a.jpg")
    colour_image(30, 30).save(tmp_path / "b.jpg")
    jobs = plan_jobs([tmp_path / "a.jpg", tmp_path / "b.jpg"], tmp_path / "out2")
    assert [j.dst.name for j in jobs] == ["a-1.png", "b.png"]


def test_names_that_differ_only_in_unicode_form_do_not_collide(tmp_path):
    nfc, nfd = "caf\u00e9", "cafe\u0301"  # the same name to macOS
    colour_image(30, 30).save(tmp_path / f"{nfc}.jpg")
    colour_image(30, 30).save(tmp_path / f"{nfd}.png")
    jobs = plan_jobs([tmp_path / f"{nfc}.jpg", tmp_path / f"{nfd}.png"], tmp_path / "out")
    keys = {unicodedata.normalize("NFC", j.dst.name).casefold() for j in jobs}
    assert len(keys) == 2


def test_an_input_behind_a_folder_that_cannot_be_searched_fails_alone(tmp_path, tiny_model, monkeypatch):
    """Path.is_dir and Path.exists raise PermissionError there (Python 3.11); the batch went down with it.

    The tests run as root, whom permissions do not stop, so the kernel's answer is played by os.stat."""
    import os

    from colorcli.cli.colorize import run_batch
    from colorcli.tiling import ColorizeOptions

    locked = tmp_path / "locked"
    locked.mkdir()
    colour_image(20, 16).save(locked / "x.png")
    colour_image(20, 16, seed=1).save(tmp_path / "ok.png")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(locked) + os.sep):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    jobs = plan_jobs([locked / "x.png", tmp_path / "ok.png"], tmp_path / "out", output_is_dir=True)
    assert [j.error is not None for j in jobs] == [True, False]
    assert "permission denied" in jobs[0].error and "x.png" in jobs[0].error
    report = run_batch(tiny_model, jobs, ColorizeOptions(), as_json=False)
    assert report.exit_code == 1
    assert (tmp_path / "out" / "ok.png").exists()


def test_an_output_without_a_suffix_for_one_file_suggests_a_folder(tmp_path):
    colour_image(8, 8).save(tmp_path / "m.png")
    with pytest.raises(UsageError, match=r"outdir: names no image format; .*write .*outdir/ for a folder"):
        plan_jobs([tmp_path / "m.png"], tmp_path / "outdir")


def test_an_output_file_that_is_a_folder_says_so(tmp_path):
    from colorcli.batch import check_output_file

    (tmp_path / "grid.png").mkdir()
    for folder in (tmp_path, tmp_path / "grid.png"):
        with pytest.raises(UsageError, match="is a folder; name a .png file"):
            check_output_file(folder, ".png")
