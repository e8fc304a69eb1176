"""Training throughput of the default model on this machine, three ways, side by side.

    python benchmarks/train_throughput.py data/cifar10-jpeg/train --images 6000
    python benchmarks/train_throughput.py data/photos-tr --photo --images 3000 --batch-size 64 \
        --mix data/cifar10-jpeg/train     # the photo model's configuration

1. colorcli's real training loop (`train()`: in-memory uint8 tensor, batched flips
   and luma on the device, progress bar, checkpoint and validation excluded from
   the timing), images/s of its epochs;
2. the bare model step (forward, loss, backward, optimizer) on tensors already in
   memory: the compute floor;
3. the same model fed the usual way: a torchvision ImageFolder with per-sample PIL
   transforms (flip, grayscale, to-tensor) and a DataLoader with worker processes.

The last line is `train/floor ratio: X.XX`. With ``--photo`` the model is the photo
model's (64x64 tiles, context branch, the psnr loss it fine-tunes with) and the real loop
cuts random working-scale tiles from photos kept at 112 px and mixes in half a batch of
``--mix`` images; the floor and the usual way get tiles of the same size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from colorcli.data import load_dataset, make_pair, resize_images
from colorcli.distributed import Dist, set_cpu_threads
from colorcli.model import ModelConfig, build_model
from colorcli.train import TrainConfig, train


def bare_step_rate(config: ModelConfig, data: torch.Tensor, batch: int, steps: int) -> float:
    model = build_model(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    y, rgb = make_pair(resize_images(data[:batch], config.tile))
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        loss = model.loss(model(y, raw=True), y, rgb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def usual_way_rate(config: ModelConfig, folder: str, images: int, batch: int, workers: int) -> float:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    flip = transforms.Compose(
        [transforms.RandomCrop(config.tile, pad_if_needed=True), transforms.RandomHorizontalFlip()]
    )
    to_tensor = transforms.PILToTensor()

    def pair(img):
        img = flip(img.convert("RGB"))
        return to_tensor(img.convert("L")).float(), to_tensor(img).float()  # (1, H, W), (3, H, W)

    ds = Subset(datasets.ImageFolder(folder, transform=pair), range(images))
    loader = DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0
    )
    model = build_model(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen, t0 = 0, time.perf_counter()
    for (y, rgb), _ in loader:
        loss = model.loss(model(y, raw=True), y, rgb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += y.shape[0]
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="a folder of training images (e.g. the CIFAR-10 JPEGs)")
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--width", type=int, default=ModelConfig().width, help="U-Net width to measure")
    ap.add_argument("--photo", action="store_true", help="the photo model's configuration (see above)")
    ap.add_argument("--mix", default=None, help="with --photo: the dataset mixed into every batch")
    args = ap.parse_args()

    config = ModelConfig(width=args.width)
    photo: dict = {}
    if args.photo:
        config = ModelConfig(width=args.width, depth=4, tile=64, context=True, loss="psnr", vivid=0.065)
        photo = {"scale_min": 64, "scale_max": 112, "mix": args.mix}
    threads = set_cpu_threads(None, Dist())
    data = load_dataset(args.folder, None, train=True, size=photo.get("scale_max", 32))[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            dataset=args.folder,
            out=tmp,
            epochs=args.epochs,
            limit=args.images,
            batch_size=args.batch_size,
            val_fraction=0.05,
            device="cpu",
            **photo,
        )
        train(cfg, config)
        history = json.loads((Path(tmp) / "history.json").read_text())
    real = max(h["images_per_s"] or 0.0 for h in history)  # null for an epoch resumed with no steps left
    floor = bare_step_rate(config, data, args.batch_size, steps=max(10, args.images // args.batch_size // 2))
    usual = usual_way_rate(config, args.folder, args.images, args.batch_size, args.workers)
    what = (
        f"photo model ({config.tile}x{config.tile} tiles, depth {config.depth}, context)"
        if args.photo
        else "default model"
    )
    print(f"{what} {config.arch} width {config.width}, batch {args.batch_size}, {threads} CPU threads")
    print(f"real training epochs (data pipeline included): {real:7.1f} images/s")
    print(f"bare model step (compute floor):                {floor:7.1f} images/s")
    print(f"usual way (ImageFolder + PIL transforms + DataLoader, {args.workers} workers): {usual:7.1f} images/s")
    print(f"real/usual ratio: {real / usual:.2f}")
    print(f"train/floor ratio: {real / floor:.2f}")


if __name__ == "__main__":
    main()
