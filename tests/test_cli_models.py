"""`colorcli models` and `colorcli export` from the command line."""

import json

from helpers import colour_image, invoke


def test_export_stores_decoding_settings(tmp_path, tiny_checkpoint):
    out = tmp_path / "m.safetensors"
    r = invoke("export", tiny_checkpoint, "-o", out, "--temperature", "0.5", "--tile-saturation", "1.5")
    assert r.exit_code == 0, r.output
    from colorcli.checkpoint import load_model

    cfg = load_model(out).config
    assert (cfg.temperature, cfg.tile_saturation, cfg.saturation) == (0.5, 1.5, 1.0)


def test_export_refuses_a_suffix_it_cannot_read_back_and_makes_folders(tmp_path, tiny_checkpoint):
    r = invoke("export", tiny_checkpoint, "-o", tmp_path / "m.pt")
    assert r.exit_code == 2 and ".safetensors" in r.output and not (tmp_path / "m.pt").exists()
    r = invoke("export", tiny_checkpoint, "-o", tmp_path / "new" / "m.safetensors")
    assert r.exit_code == 0, r.output
    r = invoke(
        "colorize", tmp_path / "none.png", "-o", tmp_path / "x.png", "--checkpoint", tmp_path / "new" / "m.safetensors"
    )
    assert "checkpoint" not in r.output and "none.png" in r.output  # the model loads; the input is what fails


def test_export_replaces_an_existing_file_only_when_asked(tmp_path, tiny_checkpoint):
    out = tmp_path / "m.safetensors"
    assert invoke("export", tiny_checkpoint, "-o", out).exit_code == 0
    before = out.read_bytes()
    r = invoke("export", tiny_checkpoint, "-o", out, "--tile-saturation", "2")
    assert r.exit_code == 2 and "--overwrite" in r.output and out.read_bytes() == before
    assert invoke("export", tiny_checkpoint, "-o", out, "--tile-saturation", "2", "--overwrite").exit_code == 0
    assert out.read_bytes() != before


def test_models_lists_the_shipped_models_with_their_data():
    r = invoke("models", "--json")
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.output.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert "cifar10" in by_name and by_name["cifar10"]["tile"] == 32
    assert sum(row["default"] for row in rows) == 1
    assert all(row["data"] and row["figures"] for row in rows)
    assert "global-context" in by_name["photo"]["model"]  # what each model is, in a few words
    table = invoke("models")
    assert table.exit_code == 0 and "cifar10" in table.output


def test_export_to_a_folder_or_another_suffix_is_refused_before_asking_for_overwrite(tmp_path, tiny_checkpoint):
    (tmp_path / "existing.pt").write_bytes(b"x")
    targets = (
        (tmp_path, "is a folder"),
        (f"{tmp_path / 'new.safetensors'}/", "is a folder"),  # wrote a file of that name
        (tmp_path / "existing.pt", "is a .safetensors file"),
    )
    for target, says in targets:
        r = invoke("export", tiny_checkpoint, "-o", target)
        assert r.exit_code == 2 and says in r.output and "--overwrite" not in r.output, r.output


def test_export_takes_a_shipped_models_name(tmp_path):
    r = invoke("export", "cifar10", "-o", tmp_path / "c.safetensors", "--saturation", "1.1")
    assert r.exit_code == 0, r.output
    colour_image(40, 30).save(tmp_path / "in.png")
    r = invoke("colorize", tmp_path / "in.png", "-o", tmp_path / "c.png", "--checkpoint", tmp_path / "c.safetensors")
    assert r.exit_code == 0 and (tmp_path / "c.png").exists(), r.output


def test_export_to_onnx_makes_a_model_colorize_runs_without_torch_and_eval_refuses_it(tmp_path, tiny_checkpoint):
    out = tmp_path / "m.onnx"
    r = invoke("export", tiny_checkpoint, "-o", out, "--tile-saturation", "1.5", "--half")
    assert r.exit_code == 0 and out.is_file(), r.output
    from colorcli.engine import OnnxTiles

    assert OnnxTiles(out).config.tile_saturation == 1.5
    colour_image(70, 50).save(tmp_path / "in.png")
    r = invoke("colorize", tmp_path / "in.png", "-o", tmp_path / "c.png", "--checkpoint", out)
    assert r.exit_code == 0 and (tmp_path / "c.png").exists(), r.output
    r = invoke("colorize", tmp_path / "in.png", "-o", tmp_path / "d.png", "--checkpoint", out, "--device", "cuda")
    assert r.exit_code == 2 and "runs on the CPU" in r.output and not (tmp_path / "d.png").exists()
    r = invoke("eval", "--checkpoint", out, "--dataset", tmp_path, "--full-res")
    assert r.exit_code == 2 and "m.onnx: an .onnx model runs in colorize only" in r.output, r.output
