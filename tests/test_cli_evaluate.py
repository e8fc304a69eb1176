"""`colorcli eval` from the command line: scores, grids, --holdout and --full-res."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import colour_image, invoke, tiny_train_args


def test_an_empty_folder_is_a_usage_error_for_eval_as_for_colorize(tmp_path, tiny_checkpoint):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no photos here")
    for args in (
        ["eval", "--dataset", empty],
        ["eval", "--dataset", empty, "--full-res"],
        ["colorize", empty, "-o", tmp_path / "o"],
    ):
        r = invoke(*args, "--checkpoint", tiny_checkpoint)
        assert r.exit_code == 2 and "Traceback" not in r.output, (args, r.output)
        assert "no images found" in r.output or "no images colorcli can read" in r.output, r.output
    colour_image(40, 40).save(empty / "sub" / "a.png")  # one image, in a subfolder, is enough for eval
    assert invoke("eval", "--dataset", empty, "--checkpoint", tiny_checkpoint, "--json").exit_code == 0


def test_eval_reports_colour_originals_apart_from_black_and_white_ones(tmp_path, tiny_checkpoint):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        colour_image(40, 32, seed=i).save(folder / f"c{i}.png")
    colour_image(40, 32, seed=9).convert("L").convert("RGB").save(folder / "bw.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    [headline] = [x for x in lines if x.startswith("headline")]
    [everything] = [x for x in lines if x.startswith("over all")]
    assert "over the 3 colour originals" in headline and "over the gray copy" in headline
    assert "over all 4 images (the table)" in everything and "Not the headline" in everything
    assert "black-and-white originals (1 here) count against any colorizer" in everything
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--json")
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["bw_originals"] == 1 and scores["color_gray_psnr"] < scores["gray_psnr"]


def test_eval_checks_the_grid_path_first_and_skips_unreadable_photos(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    colour_image(48, 40).save(photos / "a.png")
    (photos / "bad.jpg").write_text("not an image")
    base = ("eval", "--dataset", photos, "--full-res", "--checkpoint", tiny_checkpoint)
    r = invoke(*base, "--grid", tmp_path / "grid.jpg")
    assert r.exit_code == 2 and "grid.jpg" in r.output and ".png" in r.output
    r = invoke(*base, "--grid", tmp_path / "new" / "grid.png", "--json")
    assert r.exit_code == 1, r.output  # scored, and one input failed
    assert json.loads(r.stdout.splitlines()[-1])["images"] == 1
    assert "bad.jpg" in r.output and (tmp_path / "new" / "grid.png").is_file()
    for i in range(8):  # the grid draws the first readable photos, however many come before them
        (photos / f"0{i}.jpg").write_text("not an image")
    r = invoke(*base, "--grid", tmp_path / "g2.png", "--json")
    assert r.exit_code == 1 and Image.open(tmp_path / "g2.png").height > 100, r.output
    assert "(00.jpg: not a readable image" in r.output  # the first skipped file's reason
    before = (tmp_path / "g2.png").read_bytes()
    r = invoke(*base, "--grid", tmp_path / "g2.png")
    assert r.exit_code == 2 and "--overwrite" in r.output and (tmp_path / "g2.png").read_bytes() == before
    assert invoke(*base, "--grid", tmp_path / "g2.png", "--overwrite").exit_code == 1


def test_eval_holdout_from_another_folder_says_which_dataset_to_pass(image_folder, tmp_path, monkeypatch):
    r = invoke(*tiny_train_args(image_folder, tmp_path / "run"), "--threads", "1")
    assert r.exit_code == 0, r.output
    ckpt = (tmp_path / "run" / "best.pt").resolve()
    monkeypatch.chdir(image_folder)  # the dataset was named as an absolute path: found from anywhere
    assert invoke("eval", "--holdout", "--checkpoint", ckpt, "--json").exit_code == 0
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", "elsewhere")
    assert r.exit_code == 2 and "elsewhere" in r.output and "--dataset" in r.output, r.output
    nowhere = ("--data-dir", tmp_path / "none", "--mirror", "http://127.0.0.1:9")  # never the network
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", "cifar10", *nowhere)
    assert r.exit_code == 2 and "cifar10: not the kind of data the run split" in r.output, r.output  # no download
    colour_image(40, 40, seed=99).save(
        image_folder / "b" / "zzz.png"
    )  # sorts last: names before it the same, count not
    r = invoke("eval", "--holdout", "--checkpoint", ckpt, "--dataset", image_folder)
    assert r.exit_code == 2 and "25 images, but the run split 24" in r.output, r.output


def test_eval_per_image_scores_each_photo_and_needs_full_res(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    colour_image(48, 40).save(photos / "a.png")
    colour_image(40, 48, seed=1).save(photos / "b.png")
    base = ("eval", "--dataset", photos, "--checkpoint", tiny_checkpoint)
    r = invoke(*base, "--full-res", "--per-image", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.splitlines()[-1])
    rows = result["per_image"]
    assert [Path(p["file"]).name for p in rows] == ["a.png", "b.png"]
    assert sum(p["psnr"] for p in rows) / 2 == pytest.approx(result["psnr"])  # the mean is of these
    assert all(p["psnr_gain_db"] == pytest.approx(p["psnr"] - p["gray_psnr"]) for p in rows)
    r = invoke(*base, "--full-res", "--per-image")
    assert r.exit_code == 0 and "a.png" in r.output and "each photo" in r.output
    r = invoke(*base, "--per-image")
    assert r.exit_code == 2 and "--full-res" in r.output


def test_eval_of_colourless_originals_says_n_a_and_caps_the_pooled_psnr(tmp_path, tiny_checkpoint):
    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(4):
        colour_image(32, 32, seed=i).convert("L").convert("RGB").save(folder / f"{i}.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert scores["colorfulness_ratio"] is None and scores["gray_psnr_pooled"] == 100.0
    assert scores["bw_originals"] == 4 and scores["color_psnr"] is None and scores["color_colorfulness_ratio"] is None
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder)
    assert r.exit_code == 0 and "colour n/a of the truth's" in r.stdout
    assert "all 4 originals are black-and-white" in r.stdout


def test_eval_reads_16_bit_gray_at_its_tonal_range_not_as_white(tmp_path, tiny_checkpoint):
    folder = tmp_path / "g16"
    folder.mkdir()
    ramp = (np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 20 + 1000).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "ramp.png")  # I;16, values 1000..39380
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", folder, "--full-res", "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    # a gray truth read correctly: its gray copy is exact (100 dB), not a white sheet scored against itself
    assert scores["gray_psnr"] == 100.0 and scores["bw_originals"] == 1
    from colorcli.evaluate import _read_photos
    from colorcli.folders import load_folder

    [(_, truth)] = list(_read_photos([folder / "ramp.png"], []))  # what eval scores against
    assert np.asarray(truth).std() > 10 and np.asarray(truth).max() < 255
    squares = load_folder(folder, show_progress=False)  # what training would learn from
    assert 0 < squares.float().mean() < 200 and squares.float().std() > 10


def test_eval_holdout_of_the_shipped_model_refuses_a_dataset_it_did_not_split(image_folder, tmp_path):
    r = invoke("eval", "--holdout", "--dataset", image_folder)
    assert r.exit_code == 2 and "24 image files, but the run split 14185 images" in r.output, r.output
    r = invoke("eval", "--holdout", "--dataset", "cifar10", "--mirror", "http://127.0.0.1:9/")  # no download tried
    assert r.exit_code == 2 and "not the kind of data the run split" in r.output, r.output
    # export keeps the count, so exported runs are checked too
    assert invoke(*tiny_train_args(image_folder, tmp_path / "run"), "--threads", "1").exit_code == 0
    out = tmp_path / "m.safetensors"
    assert invoke("export", tmp_path / "run" / "best.pt", "-o", out).exit_code == 0
    colour_image(40, 40, seed=99).save(image_folder / "b" / "zzz.png")  # sorts last
    r = invoke("eval", "--holdout", "--checkpoint", out, "--dataset", image_folder)
    assert r.exit_code == 2 and "25 images, but the run split 24" in r.output, r.output


def test_eval_holdout_scores_the_model_whose_split_it_takes(monkeypatch):
    """The default dataset's name (cifar10) chose the model while the split came from the default model."""
    import colorcli.checkpoint as checkpoint
    import colorcli.evaluate as evaluate
    from colorcli.errors import UsageError

    seen: dict[str, object] = {}
    real_load = checkpoint.load_model

    def load_model(path, **decode):
        seen["model"] = path
        return real_load(path, **decode)

    def holdout_images(source, dataset, data_dir, mirror=None, size=32):
        seen.update(split=source, size=size)
        raise UsageError("the split is not needed further")

    monkeypatch.setattr(checkpoint, "load_model", load_model)
    monkeypatch.setattr(evaluate, "holdout_images", holdout_images)
    for args, name, tile in (
        ([], "photo", 64),
        (["--model", "cifar10"], "cifar10", 32),
        (["--model", "photo"], "photo", 64),
    ):
        seen.clear()
        r = invoke("eval", "--holdout", *args)
        assert r.exit_code == 2 and "not needed further" in r.output, r.output
        assert seen["model"] == seen["split"] == checkpoint.shipped_model_path(name) and seen["size"] == tile


def test_eval_of_a_folder_brings_its_images_to_the_models_tile(monkeypatch, image_folder):
    import colorcli.data as data

    sizes = []
    real = data.load_dataset

    def load_dataset(*args, size=32, **kwargs):
        sizes.append(size)
        return real(*args, size=size, **kwargs)

    monkeypatch.setattr(data, "load_dataset", load_dataset)
    r = invoke("eval", "--model", "photo", "--dataset", image_folder, "--limit", "4", "--json")
    assert r.exit_code == 0, r.output
    assert sizes == [64]  # the photo model's tile, as its training validated; it was 32 for every model


def test_eval_holdout_refuses_full_res_and_per_image_names_nested_files(tmp_path, tiny_checkpoint):
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--holdout", "--full-res", "--dataset", tmp_path)
    assert r.exit_code == 2 and "--holdout" in r.output, r.output
    for sub in ("a", "b"):
        (tmp_path / "p" / sub).mkdir(parents=True)
        colour_image(40, 40, seed=len(sub)).save(tmp_path / "p" / sub / "x.png")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path / "p", "--full-res", "--per-image")
    assert r.exit_code == 0 and "a/x.png" in r.stdout and "b/x.png" in r.stdout, r.stdout


def test_a_limited_run_notices_files_swapped_in_before_its_limit(image_folder, tmp_path):
    run = tmp_path / "run"
    assert invoke(*tiny_train_args(image_folder, run), "--limit", "20", "--threads", "1").exit_code == 0
    assert invoke("eval", "--holdout", "--checkpoint", run / "best.pt", "--json").exit_code == 0
    colour_image(40, 40, seed=99).save(image_folder / "a" / "aaa.png")  # sorts first: 20 images still
    r = invoke("eval", "--holdout", "--checkpoint", run / "best.pt")
    assert r.exit_code == 2 and "added, removed or renamed" in r.output, r.output
    r = invoke(*tiny_train_args(image_folder, run), "--limit", "20", "--resume", run / "last.pt")
    assert r.exit_code == 2 and "added, removed or renamed" in r.output, r.output


def test_eval_full_res_scores_what_it_can_read_and_exits_1_naming_the_rest(tmp_path, tiny_checkpoint):
    for i in range(3):
        colour_image(40, 30, seed=i).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--json")
    assert r.exit_code == 1, r.output
    result = json.loads(r.stdout)
    assert result["images"] == 3 and result["unreadable"] == [str(tmp_path / "broken.png")]
    assert "broken.png" in r.stderr
    (tmp_path / "broken.png").unlink()
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["unreadable"] == []


def test_a_grid_that_cannot_be_written_is_one_line_exit_1(tmp_path, tiny_checkpoint, monkeypatch):
    def full_disk(im, fp, filename, *args, **kwargs):
        raise OSError(28, "No space left on device")

    colour_image(40, 30).save(tmp_path / "a.jpg")
    Image.init()  # every plugin registered first, so none registers its saver over this one
    monkeypatch.setitem(Image.SAVE, "PNG", full_disk)
    grid = tmp_path / "g.png"
    r = invoke("eval", "--checkpoint", tiny_checkpoint, "--dataset", tmp_path, "--full-res", "--grid", grid)
    assert r.exit_code == 1 and "g.png: cannot write the grid (No space left on device)" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "g.png").exists()


def test_eval_of_a_shipped_model_gives_no_train_longer_hint(tmp_path):
    for i in range(4):  # magenta over green: the model's colour is an eighth of the truth's
        rgb = np.zeros((32, 32, 3), np.uint8)
        rgb[:16], rgb[16:] = (255, 0, 255), (0, 255, 0)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    r = invoke("eval", "--model", "cifar10", "--dataset", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["colorfulness_ratio"] < 0.15 and "undertrained" not in r.output
