"""The training component against a bare `model.fit`, and training from a folder of images.

1. Throughput (target: the trainer at least 0.95x bare on CPU, 0.9x on a GPU). The same model (built by
   `components.models.build_model` from the default params' family), the same data and batch size: the
   project's `train()` against `model.compile(...)` + `model.fit(...)` written by hand. Examples per
   second over the epochs after the first (compilation and tracing stay out of both). Pairs alternate
   `--repeats` times; the median ratio is printed. On a GPU the model FLOP utilisation is printed too.
   Both sides run under the same dtype policy and XLA setting (bfloat16 and XLA on a GPU, by `auto`), so
   the ratio is the trainer's own cost; a plain float32 `model.fit` without XLA is printed beside it, to
   show what those two defaults buy.
2. Peak memory (target: under 4 GB) of training the default image family for one epoch on `--images`
   32x32x3 PNG images streamed from a folder (`components.inputs.ImageFolder`), in a fresh process; the
   bare baseline is the same process importing Keras and building the model without training.

Usage: python benchmarks/bench_training.py [--repeats 7] [--rows 20000] [--epochs 6] [--images 100000]
       [--skip-memory] [--image-shape H W C --filters F ... --batch-size B]
       (KERAS_BACKEND=jax to measure the JAX backend; `--image-shape 32 32 3 --filters 64 128 256
       --batch-size 512` is a model big enough to occupy a GPU, where the default digits CNN is not)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from components.config import TrainConfig

PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense, per GPU


def data(rows: int, features: int = 64, seed: int = 0):
    """Images as rows of `features` pixels: a noisy class template per class, so that training has signal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    templates = rng.random((10, features), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    noise = rng.normal(0, 0.3, (rows, features)).astype("float32")
    x = np.clip(templates[y] + noise, 0, 1)
    return x, y.astype("int64")


def epoch_timer():
    """A Keras callback that keeps each epoch's wall time in `.times`."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.started)

    return Timer()


def throughput(config: TrainConfig, repeats: int, rows: int) -> None:
    import keras
    import numpy as np

    from components.models import build_model, count_flops
    from components.training import make_optimizer, precision, seed_everything, train, use_xla

    epochs = config.epochs
    features = int(np.prod(config.image_shape)) if config.image_shape else 64
    x, y = data(rows, features)
    steps = -(-rows // config.batch_size)
    jit = use_xla(config.jit_compile)

    def ours() -> float:
        timer = epoch_timer()
        train(config, x, y, 10, callbacks=[timer])
        return rows / statistics.median(timer.times[1:])

    def bare(plain: bool = False) -> float:
        """model.compile + model.fit by hand; `plain`: float32 and no XLA, whatever the device."""
        seed_everything(config.seed, deterministic=plain or not jit)
        if plain:
            model = build_model(config, x, 10)
        else:
            with precision(config):
                model = build_model(config, x, 10)
        model.compile(
            make_optimizer(config, steps),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit and not plain,
        )
        timer = epoch_timer()
        model.fit(
            x,
            y,
            batch_size=config.batch_size,
            epochs=2 if plain else epochs,  # op by op on JAX: slow, and one timed epoch tells
            shuffle=True,
            verbose=0,
            callbacks=[timer],
        )
        return rows / statistics.median(timer.times[1:])

    ratios, ours_rates, bare_rates = [], [], []
    for i in range(repeats):
        first, second = (ours, bare) if i % 2 == 0 else (bare, ours)
        a, b = first(), second()
        rate_ours, rate_bare = (a, b) if first is ours else (b, a)
        ours_rates.append(rate_ours)
        bare_rates.append(rate_bare)
        ratios.append(rate_ours / rate_bare)
    plain_rate = bare(plain=True)
    with precision(config) as policy:
        model = build_model(config, x[:1000], 10)
    devices = [d for d in keras.distribution.list_devices() if not d.startswith("cpu")]
    flops = count_flops(model)
    print(f"model: {model.name}, {model.count_params():,} parameters, {flops:,} FLOPs per example")
    print(
        f"backend {keras.backend.backend()}, devices {devices or ['cpu']}, {rows} rows x {epochs} epochs, "
        f"batch {config.batch_size}, dtype policy {policy}, XLA {'on' if jit else 'off'}"
    )
    print(f"{'bare model.fit (median)':44}{statistics.median(bare_rates):12,.0f} examples/s")
    print(f"{'mlstrategy train() (median)':44}{statistics.median(ours_rates):12,.0f} examples/s")
    each = ", ".join(f"{r:.3f}" for r in ratios)
    target = 0.9 if devices else 0.95
    ratio = statistics.median(ratios)
    print(f"{'ratio trainer / bare (median)':44}{ratio:12.3f}   ({each}; target >= {target})")
    print(f"{'plain float32 model.fit, no XLA (once)':44}{plain_rate:12,.0f} examples/s")
    if devices:
        name = next((gpu for gpu in PEAK_BF16_FLOPS if gpu in gpu_name()), None)
        achieved = 3 * flops * statistics.median(ours_rates)  # forward + backward
        if name:
            utilisation = achieved / PEAK_BF16_FLOPS[name]
            print(f"{'model FLOP utilisation':44}{utilisation:12.2%}   ({name} bf16 dense peak)")
        else:
            print(f"{'achieved FLOP/s':44}{achieved:12.3e}   (unknown GPU: no peak to divide by)")


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    except OSError:
        return ""


MEMORY_CHILD = """
import json, resource, sys, time
from dataclasses import replace
sys.path.insert(0, {root!r})
from components.images import FolderListing
from components.inputs import ImageFolder
from components.config import TrainConfig
from components.training import train
folder, train_it = sys.argv[1], sys.argv[2] == "train"
config = TrainConfig(image_shape=(32, 32, 3), epochs=1)
stream = ImageFolder(FolderListing.scan(folder), (32, 32, 3), batch_size=config.batch_size, workers=4)
started = time.perf_counter()
if train_it:
    model, _ = train(config, stream, None, 10)
else:
    from components.models import build_model
    model = build_model(config, stream.sample(), 10)
print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started, "family": model.name}}))
"""


def write_images(folder: Path, count: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    templates = (rng.random((10, 32, 32, 3)) * 255).astype("uint8")
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    noise = rng.integers(-40, 40, (64, 32, 32, 3))
    for i in range(count):
        label = i % 10
        pixels = np.clip(templates[label].astype(int) + noise[i % 64], 0, 255).astype("uint8")
        Image.fromarray(pixels).save(folder / str(label) / f"{i}.png", compress_level=1)


def memory(images: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mlstrategy-images-") as work:
        folder = Path(work) / "images"
        started = time.perf_counter()
        write_images(folder, images)
        print(f"wrote {images:,} 32x32x3 PNG images in {time.perf_counter() - started:.0f} s")
        found = {}
        for mode in ("build", "train"):
            code = MEMORY_CHILD.format(root=str(ROOT))
            done = subprocess.run(
                [sys.executable, "-c", code, str(folder), mode], capture_output=True, text=True, check=False
            )
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{'bare: import Keras, build the model (peak RSS)':52}{found['build']['peak_mb']:10,.0f} MB")
        print(
            f"{'one epoch of the ' + found['train']['family'] + ' streamed (peak RSS)':52}"
            f"{found['train']['peak_mb']:10,.0f} MB   (target < 4,096 MB; {found['train']['seconds']:.0f} s)"
        )
        whole = images * 32 * 32 * 3 * 4 / 2**20
        print(f"{'(the images as one float32 array would take)':52}{whole:10,.0f} MB")


def trained_config(args: argparse.Namespace) -> TrainConfig:
    """The default params' train config, with the command line's epochs, image shape, filters and batch."""
    from pipelines.store.params import load_params

    os.chdir(ROOT)
    config = replace(load_params().train, epochs=args.epochs)
    if args.image_shape:
        config = replace(config, image_shape=tuple(args.image_shape))
    if args.filters:
        config = replace(config, cnn=replace(config.cnn, filters=tuple(args.filters)))
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--image-shape", type=int, nargs=3, metavar=("H", "W", "C"))
    parser.add_argument("--filters", type=int, nargs="+", help="the CNN's filters per block")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    throughput(trained_config(args), args.repeats, args.rows)
    if not args.skip_memory:
        memory(args.images)


if __name__ == "__main__":
    main()
