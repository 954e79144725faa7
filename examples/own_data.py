"""Train on your own data: a folder of images, an array file, and arrays in Python.

The example first writes MNIST digits the way people keep their own images: PNG files in one
subfolder per class (torchvision's ImageFolder layout), and a .npz file with x_train, y_train,
x_test, y_test (the layout of Keras's mnist.npz). It then trains the same VAE three times, each
time from a different source, through the same code path as the built-in data sets:

  data.dataset = "folder", data.path = "DIR"       the PNG folder (labels from the subfolders)
  data.dataset = "array",  data.path = "FILE.npz"  the array file
  pyrovae.train(config, train_data=x, test_data=x_test)  NumPy arrays given in Python

Writes into --out:
  images/, images_test/, digits.npz        the data written
  folder.png, array.png, python.png        samples and reconstructions of each run
  runs/folder, runs/array                  the run directories (`pyrovae evaluate` them)
and prints the test ELBO of each run (nats per example; the three see the same images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import pyrovae

from _common import example_parser, run_config


def parse_args() -> argparse.Namespace:
    return example_parser(__doc__, "own_data", epochs=5, train_limit=2_000, test_limit=500,
                          latent_dim=16).parse_args()


def write_own_data(out: Path, train_limit: int, test_limit: int) -> tuple[np.ndarray, ...]:
    """MNIST digits as PNG folders and as a .npz file under ``out``; returns the uint8
    arrays ``(x_train, y_train, x_test, y_test)``."""
    from PIL import Image

    data = pyrovae.load_data(pyrovae.resolve_config(
        {"data": {"binarize": "none", "train_limit": train_limit, "test_limit": test_limit}}
    )["data"])
    arrays = []
    for x, y, folder in ((data.train_images, data.train_labels, out / "images"),
                         (data.test_images, data.test_labels, out / "images_test")):
        images = (x.reshape(-1, 28, 28) * 255).round().to(torch.uint8).numpy()
        labels = y.numpy()
        for i, (image, label) in enumerate(zip(images, labels)):
            (folder / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(folder / str(label) / f"{i:05d}.png")
        arrays += [images, labels]
    np.savez(out / "digits.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2],
             y_test=arrays[3])
    return tuple(arrays)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = write_own_data(args.out, args.train_limit, args.test_limit)
    print(f"wrote {len(x_train)} + {len(x_test)} digits as PNGs under {args.out / 'images'} "
          f"and {args.out / 'images_test'}, and as {args.out / 'digits.npz'}")

    sources = {
        "folder": {"dataset": "folder", "path": str(args.out / "images"),
                   "test_path": str(args.out / "images_test")},
        "array": {"dataset": "array", "path": str(args.out / "digits.npz")},
    }
    for name, data in sources.items():
        config = run_config(args, data={**data, "train_limit": 0, "test_limit": 0})
        trainer = pyrovae.train(config, out=args.out / "runs" / name, progress=not args.quiet)
        report(name, trainer, args.out)

    # arrays in Python: uint8 images (N, H, W) are 8-bit levels, scaled to [0, 1]
    config = run_config(args, data={"train_limit": 0, "test_limit": 0})
    trainer = pyrovae.train(config, progress=not args.quiet, train_data=(x_train, y_train),
                            test_data=(x_test, y_test))
    report("python", trainer, args.out)


def report(name: str, trainer: pyrovae.Trainer, out: Path) -> None:
    record = trainer.config["data"]
    print(f"{name}: test ELBO {trainer.metrics[-1]['test_elbo']:.2f} nats per example "
          f"({trainer.data.num_train} training images of shape {tuple(record['shape'])}, "
          f"{record['num_classes']} classes; source {record['dataset']!r}"
          f"{', sha256 ' + record['sha256'][:12] if record['sha256'] else ''})")
    print(f"wrote {trainer.write_picture(out / f'{name}.png')}")


if __name__ == "__main__":
    main()
