"""Tests of gandistill.data: bundled digits, CIFAR/STL10 roots in torchvision layout, image folders."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from gandistill.data import digits_path, list_datasets, load_all, load_dataset

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- digits
@pytest.fixture(scope="module")
def digits_npz():
    with np.load(digits_path()) as z:
        return {k: z[k] for k in z.files}


def test_list_and_bundled_file():
    assert {"digits", "cifar10", "cifar100", "stl10", "imagefolder"} <= set(list_datasets())
    p = digits_path()
    assert p.is_file() and p.stat().st_size < 2_000_000


@pytest.mark.parametrize("split,n", [("train", 4000), ("test", 1000)])
def test_digits_shapes_ranges_stratified(split, n):
    ds = load_dataset("digits", split=split)
    assert len(ds) == n and ds.name == "digits" and ds.num_classes == 10 and ds.resolution == 32
    assert len(ds.mean) == 3 and len(ds.std) == 3
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and isinstance(y, int)
    X, Y = load_all(ds)
    assert X.shape == (n, 3, 32, 32) and Y.dtype == torch.long
    assert X.min() >= 0 and X.max() <= 1 and X.max() > 0.99
    assert torch.equal(X[:, 0], X[:, 1]) and torch.equal(X[:, 0], X[:, 2])  # grey replicated
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert X[:, :, border].abs().max() == 0  # 2 px zero padding around 28x28
    assert torch.bincount(Y, minlength=10).tolist() == [n // 10] * 10
    # per-item access agrees with the fast path
    for i in (0, 17, n - 1):
        xi, yi = ds[i]
        assert torch.equal(xi, X[i]) and yi == int(Y[i])
    assert torch.equal(ds[-1][0], X[-1])
    with pytest.raises(IndexError):
        ds[n]


def test_digits_pixels_match_source_file(digits_npz):
    ds = load_dataset("digits", split="test")
    idx = digits_npz["test_idx"]
    X, Y = load_all(ds, max_items=5)
    want = torch.from_numpy(digits_npz["images"][idx[:5]].astype(np.float32) / 255.0)
    assert torch.equal(X[:, 0, 2:30, 2:30], want)
    assert Y.tolist() == digits_npz["labels"][idx[:5]].astype(int).tolist()


def test_digits_splits_disjoint_and_reproducible_from_script(digits_npz):
    tr, te = digits_npz["train_idx"], digits_npz["test_idx"]
    assert len(set(tr.tolist()) | set(te.tolist())) == 5000 and not set(tr.tolist()) & set(te.tolist())
    from repo_scripts import load_script

    mod = load_script("scripts/make_digits.py", "make_digits")
    tr2, te2 = mod.stratified_split(digits_npz["labels"])
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(load_all(a)[0], load_all(b)[0])


def test_digits_first_items_mix_classes():
    """The csv is sorted by label; splits are stored shuffled so a prefix covers many classes."""
    for split in ("train", "test"):
        _, Y = load_all(load_dataset("digits", split=split), max_items=50)
        assert len(torch.unique(Y)) >= 8


def test_digits_stats_are_train_stats():
    tr = load_dataset("digits", split="train")
    X, _ = load_all(tr)
    Xd = X[:, 0].double()
    assert tr.mean[0] == pytest.approx(float(Xd.mean()), rel=1e-6)
    assert tr.std[0] == pytest.approx(float(Xd.std()), rel=1e-6)
    assert load_dataset("digits", split="test").mean == tr.mean


def test_digits_labels_match_images():
    """Nearest class-centroid on raw pixels: far above chance only if labels belong to the images."""
    Xtr, Ytr = load_all(load_dataset("digits", split="train"))
    Xte, Yte = load_all(load_dataset("digits", split="test"))
    cent = torch.stack([Xtr[Ytr == c, 0].flatten(1).mean(0) for c in range(10)])
    pred = torch.cdist(Xte[:, 0].flatten(1), cent).argmin(1)
    assert (pred == Yte).float().mean() > 0.7


def test_digits_img_size_and_errors():
    ds = load_dataset("digits", split="test", img_size=48)
    assert ds.resolution == 48
    X, _ = load_all(ds, max_items=8)
    assert X.shape == (8, 3, 48, 48) and X.min() >= 0 and X.max() <= 1
    assert ds[3][0].shape == (3, 48, 48)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("digits", split="val")
    with pytest.raises(ValueError, match="img_size"):
        load_dataset("digits", img_size=0)
    with pytest.raises(KeyError, match="digits"):
        load_dataset("digit")
    with pytest.raises(ValueError):
        load_all(load_dataset("digits"), max_items=-1)


# ----------------------------------------------------------------------------- CIFAR (fake roots)
def _write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _fake_cifar10(root: Path, n_per_batch: int = 2, n_test: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_data, train_labels = [], []
    for i in range(1, 6):
        d = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        lab = rng.integers(0, 10, n_per_batch).tolist()
        _write_pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": lab,
                                                   "data": d, "filenames": [f"img{i}_{k}.png" for k in range(n_per_batch)]})
        train_data.append(d)
        train_labels += lab
    d = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    lab = rng.integers(0, 10, n_test).tolist()
    _write_pickle(folder / "test_batch", {b"labels": lab, b"data": d})  # bytes keys, as py2 pickles may have
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _write_pickle(folder / "batches.meta", {"label_names": names, "num_vis": 3072})
    return np.concatenate(train_data), train_labels, d, lab, names


def test_cifar10_fake_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def boom(*a, **k):
        raise AssertionError("torchvision must not be called without download=True")

    monkeypatch.setattr(tvd, "CIFAR10", boom)
    tr_d, tr_l, te_d, te_l, names = _fake_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path)
    assert len(ds) == 10 and ds.num_classes == 10 and ds.resolution == 32 and ds.classes == names
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2023, 0.1994, 0.2010)
    X, Y = load_all(ds)
    # documented layout: row of 3072 = R plane (32x32 row-major), then G, then B
    n, c, h, w = 7, 2, 5, 11
    assert X[n, c, h, w].item() == pytest.approx(tr_d[n, c * 1024 + h * 32 + w] / 255.0)
    assert torch.allclose(X.flatten(1), torch.from_numpy(tr_d).float() / 255)
    assert Y.tolist() == tr_l
    te = load_dataset("cifar10", root=str(tmp_path), split="test", img_size=16)
    x, y = te[2]
    assert x.shape == (3, 16, 16) and y == te_l[2] and len(te) == 3
    assert x.mean().item() == pytest.approx(te_d[2].mean() / 255.0, abs=0.02)  # resize keeps the mean


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/.*data_batch_1.*pass --download to fetch it.*"
                                                 r"--data-root .*load_dataset\('cifar10'.*nowhere.*"
                                                 r"download argument set to True"):
        load_dataset("cifar10", root=tmp_path / "nowhere")
    _fake_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_dataset("cifar10", root=tmp_path)
    _write_pickle(folder / "data_batch_4", {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        load_dataset("cifar10", root=tmp_path)
    (folder / "data_batch_4").write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR pickle"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("cifar10", root=tmp_path, split="val")


def test_cifar_reader_refuses_code(tmp_path):
    """A pickle that would call os.system is rejected before anything runs."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    _fake_cifar10(tmp_path)
    _write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", {"data": Evil(), "labels": [0]})
    with pytest.raises(ValueError, match="not allowed"):
        load_dataset("cifar10", root=tmp_path, split="test")
    assert not (tmp_path / "pwned").exists()


def test_cifar100_fake_root(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    d = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072).__mod__(256).astype(np.uint8)
    _write_pickle(folder / "train", {"data": d, "fine_labels": [0, 99, 5, 42], "coarse_labels": [0, 1, 2, 3]})
    _write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    ds = load_dataset("cifar100", root=tmp_path)
    X, Y = load_all(ds)
    assert ds.num_classes == 100 and len(ds.classes) == 100 and Y.tolist() == [0, 99, 5, 42]
    assert torch.allclose(X.reshape(4, -1), torch.from_numpy(d).float() / 255)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", root=tmp_path, split="test")


# ----------------------------------------------------------------------------- STL10 (fake root)
def _fake_stl10(root: Path, n_train=3, n_test=2, n_unl=4, seed=1):
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for part, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unl)):
        a = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # (C, H, W)
        (folder / f"{part}_X.bin").write_bytes(np.ascontiguousarray(a.transpose(0, 1, 3, 2)).tobytes())  # column-major
        y = rng.integers(1, 11, n).astype(np.uint8)
        if part != "unlabeled":
            (folder / f"{part}_y.bin").write_bytes(y.tobytes())
        out[part] = (a, y)
    return out


def test_stl10_fake_root(tmp_path):
    ref = _fake_stl10(tmp_path)
    ds = load_dataset("stl10", root=tmp_path)
    a, y = ref["train"]
    X, Y = load_all(ds)
    assert ds.resolution == 96 and ds.num_classes == 10 and ds.mean == (0.485, 0.456, 0.406)
    assert torch.allclose(X, torch.from_numpy(a).float() / 255) and Y.tolist() == (y.astype(int) - 1).tolist()
    assert X[1, 2, 3, 70].item() == pytest.approx(a[1, 2, 3, 70] / 255)
    unl = load_dataset("stl10", root=tmp_path, split="unlabeled")
    assert len(unl) == 4 and unl.num_classes == 0 and unl[0][1] == -1
    both = load_dataset("stl10", root=tmp_path, split="train+unlabeled", img_size=64)
    assert len(both) == 7 and both.resolution == 64
    Xb, Yb = load_all(both)
    assert Xb.shape == (7, 3, 64, 64) and Yb.tolist() == (y.astype(int) - 1).tolist() + [-1] * 4
    assert torch.equal(both[4][0], Xb[4]) and both[-1][1] == -1
    Xh, _ = load_all(both, max_items=5)
    assert torch.equal(Xh, Xb[:5])
    te = load_dataset("stl10", root=tmp_path, split="test")
    assert torch.allclose(te[1][0], torch.from_numpy(ref["test"][0][1]).float() / 255)


def test_stl10_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stl10_binary.*train_X\.bin.*pass --download to fetch it.*"
                                                 r"--data-root .*load_dataset\('stl10'.*set to True"):
        load_dataset("stl10", root=tmp_path)
    _fake_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="multiple of"):
        load_dataset("stl10", root=tmp_path, split="test")
    (folder / "train_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        load_dataset("stl10", root=tmp_path)
    (folder / "train_y.bin").write_bytes(bytes([0, 1, 2]))
    with pytest.raises(ValueError, match="1-based"):
        load_dataset("stl10", root=tmp_path)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("stl10", root=tmp_path, split="val")


# ----------------------------------------------------------------------------- hostile CIFAR / STL10 files
P = pickle


def _py2_batch(n: int = 2, rng_seed: int = 3) -> tuple[bytes, np.ndarray]:
    """A batch exactly as the official (Python 2, cPickle protocol 2) files spell it, built by hand."""
    data = np.random.default_rng(rng_seed).integers(0, 256, (n, 3072), dtype=np.uint8)

    def s8(b: bytes) -> bytes:  # Python 2 str
        return P.SHORT_BINSTRING + bytes([len(b)]) + b

    raw = data.tobytes()
    body = (P.PROTO + b"\x02" + P.EMPTY_DICT + P.MARK + s8(b"data")
            + P.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + P.GLOBAL + b"numpy\nndarray\n"
            + P.BININT1 + b"\x00" + P.TUPLE1 + s8(b"b") + P.TUPLE3 + P.REDUCE
            + P.MARK + P.BININT1 + b"\x01" + P.BININT1 + bytes([n]) + P.BININT2 + (3072).to_bytes(2, "little")
            + P.TUPLE2 + P.GLOBAL + b"numpy\ndtype\n" + s8(b"u1") + P.BININT1 + b"\x00" + P.BININT1 + b"\x01"
            + P.TUPLE3 + P.REDUCE + P.MARK + P.BININT1 + b"\x03" + s8(b"|") + P.NONE + P.NONE + P.NONE
            + P.BININT + b"\xff\xff\xff\xff" + P.BININT + b"\xff\xff\xff\xff" + P.BININT1 + b"\x00" + P.TUPLE
            + P.BUILD + P.NEWFALSE + P.BINSTRING + len(raw).to_bytes(4, "little") + raw + P.TUPLE + P.BUILD
            + s8(b"labels") + P.EMPTY_LIST + P.MARK + P.BININT1 + b"\x03" + P.BININT1 + b"\x07" + P.APPENDS
            + P.SETITEMS + P.STOP)
    return body, data


def test_cifar_reader_reads_python2_and_protocol5_batches(tmp_path):
    from gandistill.data.cifar import read_batch

    body, data = _py2_batch()
    (tmp_path / "py2").write_bytes(body)
    batch = read_batch(tmp_path / "py2")
    assert np.array_equal(batch["data"], data) and batch["labels"] == [3, 7]
    _write_pickle(tmp_path / "p5", {"data": data, "labels": [1, 2]})
    (tmp_path / "p5").write_bytes(pickle.dumps({"data": data, "labels": [1, 2]}, protocol=5))
    assert b"_frombuffer" in (tmp_path / "p5").read_bytes()
    got = read_batch(tmp_path / "p5")
    assert np.array_equal(got["data"], data) and got["data"].dtype == np.uint8


def _refused_batch(path: Path, match: str) -> None:
    """``read_batch`` must raise ValueError naming ``path`` within 1 s of CPU."""
    import time

    from gandistill.data.cifar import read_batch

    t0 = time.process_time()
    with pytest.raises(ValueError, match=match) as info:
        read_batch(path)
    assert time.process_time() - t0 < 1.0
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _dag(levels: int) -> bytes:
    """A list DAG [[x, x], [x, x]] ... of 2**levels leaves in ~12 bytes a level."""
    put, get = P.LONG_BINPUT + b"\0\0\0\0", P.LONG_BINGET + b"\0\0\0\0"
    return b"".join([P.BININT1 + b"\x01"] + [put + P.POP + P.MARK + get + get + P.LIST for _ in range(levels)])


@pytest.mark.parametrize("case,body,match", [
    ("deep_key", P.EMPTY_DICT + P.EMPTY_TUPLE + P.TUPLE1 * 100_000 + P.NONE + P.SETITEM, "nests deeper than"),
    ("shared_key", P.EMPTY_DICT + P.EMPTY_TUPLE + (P.DUP + P.TUPLE2) * 60 + P.NONE + P.SETITEM, "is a tuple"),
    ("object_array", P.GLOBAL + b"numpy\ndtype\n" + P.SHORT_BINUNICODE + b"\x02O8" + P.TUPLE1 + P.REDUCE,
     "unsupported numpy dtype 'O8'"),
    ("huge_reconstruct", P.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + P.GLOBAL + b"numpy\nndarray\n"
     + P.LONG1 + b"\x06" + (2 ** 40).to_bytes(6, "little") + P.TUPLE1 + P.SHORT_BINBYTES + b"\x01b" + P.TUPLE3
     + P.REDUCE, "numpy _reconstruct with unexpected arguments"),
    ("frombuffer_lies", P.GLOBAL + b"numpy.core.numeric\n_frombuffer\n" + P.MARK + P.SHORT_BINBYTES + b"\x04abcd"
     + P.GLOBAL + b"numpy\ndtype\n" + P.SHORT_BINUNICODE + b"\x02u1" + P.TUPLE1 + P.REDUCE
     + P.LONG1 + b"\x06" + (10 ** 12).to_bytes(6, "little") + P.TUPLE1 + P.SHORT_BINUNICODE + b"\x01C"
     + P.TUPLE + P.REDUCE, r"shape \(1000000000000,\) and type uint8 needs 1000000000000 bytes, the file gives 4"),
    ("additems_on_array", P.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + P.GLOBAL + b"numpy\nndarray\n"
     + P.BININT1 + b"\x00" + P.TUPLE1 + P.SHORT_BINBYTES + b"\x01b" + P.TUPLE3 + P.REDUCE + P.MARK + P.NONE
     + P.ADDITEMS, "add items to a ndarray object; only sets"),
    ("call_system", P.GLOBAL + b"posix\nsystem\n" + P.SHORT_BINUNICODE + b"\x04true" + P.TUPLE1 + P.REDUCE,
     "global posix.system is not allowed"),
    ("inst", P.INST + b"os\nsystem\n", "opcode INST"),
])
def test_cifar_reader_refuses_hostile_pickles(tmp_path, case, body, match):
    path = tmp_path / case
    path.write_bytes(P.PROTO + b"\x02" + body + P.STOP)
    _refused_batch(path, match)


def test_cifar_label_and_data_bombs(tmp_path):
    """Labels as a 2**40-leaf list DAG (np.asarray would expand it), data as a list: refused, fast."""
    _fake_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    body = (P.PROTO + b"\x02" + P.EMPTY_DICT + P.MARK + P.SHORT_BINUNICODE + b"\x06labels" + _dag(40)
            + P.SHORT_BINUNICODE + b"\x04data" + P.EMPTY_LIST + P.SETITEMS + P.STOP)
    (folder / "test_batch").write_bytes(body)
    with pytest.raises(ValueError, match="'data' is a list, expected a uint8 array"):
        load_dataset("cifar10", root=tmp_path, split="test")
    _write_pickle(folder / "test_batch", {"data": np.zeros((2, 3072), np.uint8), "labels": [[0], [1]]})
    with pytest.raises(ValueError, match="labels must be a flat list of integers"):
        load_dataset("cifar10", root=tmp_path, split="test")
    body = body.replace(P.SHORT_BINUNICODE + b"\x04data" + P.EMPTY_LIST, P.SHORT_BINUNICODE + b"\x04data"
                        + _py2_batch()[0][4 + 6:].split(P.SHORT_BINSTRING + b"\x06labels")[0])
    (folder / "test_batch").write_bytes(body)
    with pytest.raises(ValueError, match=r"labels must be a flat list of integers, got \[\[\["):
        load_dataset("cifar10", root=tmp_path, split="test")
    # one memoised 1 MB string handed to numpy 200 times: over the work budget for a file this size
    raw = P.BINBYTES + (2 ** 20).to_bytes(4, "little") + b"\0" * 2 ** 20 + P.BINPUT + b"\x09" + P.POP
    one = (P.GLOBAL + b"numpy.core.numeric\n_frombuffer\n" + P.BINGET + b"\x09" + P.GLOBAL + b"numpy\ndtype\n"
           + P.SHORT_BINUNICODE + b"\x02u1" + P.TUPLE1 + P.REDUCE + P.BININT + (2 ** 20).to_bytes(4, "little")
           + P.TUPLE1 + P.SHORT_BINUNICODE + b"\x01C" + P.TUPLE + P.REDUCE)
    one = one.replace(P.GLOBAL + b"numpy.core.numeric\n_frombuffer\n", P.GLOBAL
                      + b"numpy.core.numeric\n_frombuffer\n" + P.MARK)
    (tmp_path / "bomb").write_bytes(P.PROTO + b"\x02" + raw + P.EMPTY_LIST + P.MARK + one * 200 + P.APPENDS + P.STOP)
    _refused_batch(tmp_path / "bomb", "memory bomb")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
def test_cifar_and_stl10_refuse_fifos_and_devices(tmp_path):
    _fake_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").unlink()
    os.mkfifo(folder / "test_batch")
    with pytest.raises(ValueError, match="test_batch.*is a FIFO / named pipe, not a regular file"):
        load_dataset("cifar10", root=tmp_path, split="test")
    (folder / "test_batch").unlink()
    (folder / "test_batch").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="character device"):
        load_dataset("cifar10", root=tmp_path, split="test")
    _fake_stl10(tmp_path)
    stl = tmp_path / "stl10_binary"
    (stl / "train_y.bin").unlink()
    (stl / "train_y.bin").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="train_y.bin: the STL-10 file is a character device"):
        load_dataset("stl10", root=tmp_path)
    (stl / "test_X.bin").unlink()
    os.mkfifo(stl / "test_X.bin")
    with pytest.raises(ValueError, match="test_X.bin: the STL-10 file is a FIFO"):
        load_dataset("stl10", root=tmp_path, split="test")


# ----------------------------------------------------------------------------- image folders
def _save(path: Path, colour, size=(20, 12)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_imagefolder_labelled(tmp_path):
    _save(tmp_path / "cat" / "a.png", (255, 0, 0))
    _save(tmp_path / "cat" / "sub" / "b.jpg", (250, 0, 0), size=(30, 40))
    _save(tmp_path / "dog" / "c.png", (0, 0, 255))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = load_dataset("imagefolder", root=tmp_path, img_size=16)
    assert ds.classes == ["cat", "dog"] and ds.num_classes == 2 and len(ds) == 3
    assert ds.mean == (0.485, 0.456, 0.406)
    X, Y = load_all(ds)
    assert X.shape == (3, 3, 16, 16) and Y.tolist() == [0, 0, 1]
    assert X[0, 0].min() > 0.99 and X[0, 1:].max() < 0.01  # red stays red
    assert X[2, 2].min() > 0.99  # blue
    ds2 = load_dataset("imagefolder", root=tmp_path)  # default size: shorter side of the first image
    assert ds2.resolution == 12 and ds2[1][0].shape == (3, 12, 12)


def test_imagefolder_flat_split_and_errors(tmp_path):
    flat = tmp_path / "flat"
    for i in range(3):
        _save(flat / f"{i}.png", (0, 255, 0), size=(8, 8))
    ds = load_dataset("imagefolder", root=flat)
    assert ds.num_classes == 0 and len(ds) == 3 and ds[0][1] == -1 and ds.resolution == 8
    X, Y = load_all(ds)
    assert Y.tolist() == [-1, -1, -1] and X[:, 1].min() > 0.99
    _save(tmp_path / "split" / "test" / "x" / "a.png", (1, 2, 3))
    _save(tmp_path / "split" / "train" / "y" / "a.png", (1, 2, 3))
    assert load_dataset("imagefolder", root=tmp_path / "split", split="test").classes == ["x"]
    with pytest.raises(FileNotFoundError, match="class_name"):
        load_dataset("imagefolder", root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_dataset("imagefolder", root=tmp_path / "empty")
    _save(flat / "cls" / "z.png", (0, 0, 0))
    with pytest.raises(ValueError, match="mixes"):
        load_dataset("imagefolder", root=flat)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_dataset("imagefolder", root=bad)


def test_download_flag_delegates_fetch_to_torchvision(tmp_path, monkeypatch):
    """download=True asks torchvision (download=True) to fetch, then our reader loads the files."""
    import torchvision.datasets as tvd

    calls = []

    def fake_cifar10(root, train=True, download=False):
        calls.append((root, train, download))
        if not (Path(root) / "cifar-10-batches-py").exists():
            _fake_cifar10(Path(root))

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    ds = load_dataset("cifar10", root=tmp_path / "dl", download=True)
    assert len(ds) == 10 and calls and all(d for _, _, d in calls)
    with pytest.raises(ValueError, match="cannot be downloaded"):
        load_dataset("imagefolder", root=tmp_path, download=True)
