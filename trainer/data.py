"""Data sources -> uint8 NHWC arrays, one interface, with an npz cache and a seeded validation split.

A data set is named by a string:

==========================  ==========================================================================
``fashion_mnist``           IDX files (Debian ``dataset-fashion-mnist``, ``$NAS_DATA_DIR/fashion_mnist``)
                            or TFDS (``tfds.data_source``, no TensorFlow needed)
``cifar10``                 ``$NAS_DATA_DIR/cifar10_jpeg.npz``, CIFAR-10 python/binary batches under
                            ``$NAS_DATA_DIR``, or TFDS
``tfds:NAME``               any TFDS image-classification set (``imagenet2012`` with ``manual_dir``)
``idx:DIR``                 ``train-images-idx3-ubyte[.gz]`` etc. in DIR
``jpeg-npz:PATH``           packed JPEGs: ``data`` blob, ``offsets``, ``labels``, ``n_train``
``cifar-py:DIR``            ``data_batch_1..5`` + ``test_batch`` (pickled); ``cifar-bin:DIR`` the binary ones
``folder:DIR``              ``DIR/{train,test}/CLASS/*.{jpg,jpeg,png}``
``npz:PATH``                ``x_train``, ``y_train``, ``x_test``, ``y_test`` [, ``class_names``]
==========================  ==========================================================================

Decoded sets are cached as npz under ``$NAS_CACHE_DIR`` (default ``~/.cache/ensemble-nas``) so a set is
decoded once. The test split is never used by a search: searches train on ``train`` minus a seeded
validation split and score on that split.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from search_space.errors import UserError


class DataError(UserError):
    """A data set that is missing or unreadable: the message names the remedy."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray  # int32 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def native_resolution(self) -> int:
        return int(self.x_train.shape[1])

    @functools.cached_property
    def train_fingerprint(self) -> str:
        """Content hash of the training split (sha256 of its labels, shape and a sample of 256 of its
        images, as ``Split.fingerprint``): what a retraining folder was trained on, whatever path or
        name the set was loaded by. Computed once per Dataset."""
        h = hashlib.sha256()
        for a in (self.x_train[:: max(1, len(self.x_train) // 256)], self.y_train):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(self.x_train.shape).encode())
        return h.hexdigest()[:16]

    @functools.cached_property
    def test_fingerprint(self) -> str:
        """sha256 of the test images and labels, computed once per Dataset (a loaded set's arrays are
        not changed in place): retraining keys its saved test logits by it. About 0.1 s for CIFAR-10's
        test split on the 2-core CPU, a second or two for a 64 px ImageNet one."""
        h = hashlib.sha256()
        for a in (self.x_test, self.y_test):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Split:
    """What a search sees: train and validation arrays carved from the training split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def native_resolution(self) -> int:
        return int(self.x_train.shape[1])

    @functools.cached_property
    def fingerprint(self) -> str:
        """Content hash (sha256 of labels and a pixel sample): part of every member-cache key.
        Computed once per split (it hashes all validation pixels, 15 MB for CIFAR-10's 5k)."""
        h = hashlib.sha256()
        for a in (self.x_train[:: max(1, len(self.x_train) // 256)], self.y_train, self.x_val, self.y_val):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((self.x_train.shape, self.x_val.shape)).encode())
        return h.hexdigest()[:16]


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def data_dir() -> Path:
    return Path(os.environ.get("NAS_DATA_DIR", "~/.local/share/ensemble-nas")).expanduser()


def cache_dir() -> Path:
    return Path(os.environ.get("NAS_CACHE_DIR", "~/.cache/ensemble-nas")).expanduser()


# -- readers ----------------------------------------------------------------------------------------


def _open_maybe_gz(path: Path) -> bytes:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            raw = p.read_bytes()
            return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    raise FileNotFoundError(path)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format): magic (0, 0, dtype 0x08, ndim), big-endian dims, then uint8 data."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(dims))} bytes)")
    return data.reshape(dims)


def load_idx_dir(d: Path, name: str, class_names: tuple[str, ...]) -> Dataset:
    xtr, ytr, xte, yte = (read_idx(d / f) for f in IDX_FILES)
    return Dataset(name, xtr[..., None], ytr.astype(np.int32), xte[..., None], yte.astype(np.int32), class_names)


class DecodeProgress:
    """A line on stderr at most every ``every_s`` seconds while a source decodes image by image, and
    none for a set decoded sooner (CIFAR-10's packed JPEGs: 11 s for 60,000 on the 2-core
    machines). ImageNet through TFDS is 1.28M full-size JPEGs, each decoded and resized
    (``center_square``) one after another, once; then the cache serves it."""

    def __init__(self, label: str, total: int, every_s: float = 30.0):
        self.label, self.total, self.every_s = label, total, every_s
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s or not done:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (self.total - done) / done
        print(f"{self.label}: {done:,} of {self.total:,} images decoded ({done / self.total:.0%}) in {elapsed:.0f} s, "
              f"about {left:.0f} s left", file=sys.stderr, flush=True)


def one_size(images: list[np.ndarray], image: np.ndarray, where: str) -> None:
    """Raise at the first image whose shape differs from the first one's (a set needs one size,
    or an ``image_size``), not after decoding all of them: ImageNet at full size would fill the
    host's memory first."""
    if images and image.shape != images[0].shape:
        raise DataError(f"{where}: images differ in size ({images[0].shape} and {image.shape}); {IMAGE_SIZE_REMEDY}")


def decode_jpeg_npz(path: Path, name: str = "cifar10", class_names: tuple[str, ...] = CIFAR10_CLASSES) -> Dataset:
    """Packed JPEGs: image i is ``data[offsets[i]:offsets[i+1]]``; the first ``n_train`` are train."""
    from PIL import Image

    z = np.load(path)
    data, offsets, labels, n_train = z["data"], z["offsets"], z["labels"].astype(np.int32), int(z["n_train"])
    progress, decoded = DecodeProgress(path.name, len(labels)), []
    for i in range(len(labels)):
        decoded.append(np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB")))
        progress.update(i + 1)
    images = np.stack(decoded)
    return Dataset(name, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], class_names)


def load_cifar_python(d: Path) -> Dataset:
    def batch(f: str) -> tuple[np.ndarray, np.ndarray]:
        with open(d / f, "rb") as fh:
            b = pickle.load(fh, encoding="bytes")
        x = np.asarray(b[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(b[b"labels"], np.int32)

    tr = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    return Dataset("cifar10", np.concatenate([t[0] for t in tr]), np.concatenate([t[1] for t in tr]), xte, yte,
                   CIFAR10_CLASSES)


def load_cifar_binary(d: Path) -> Dataset:
    def batch(f: str) -> tuple[np.ndarray, np.ndarray]:
        raw = np.frombuffer((d / f).read_bytes(), np.uint8).reshape(-1, 3073)
        return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), raw[:, 0].astype(np.int32)

    tr = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    xte, yte = batch("test_batch.bin")
    return Dataset("cifar10", np.concatenate([t[0] for t in tr]), np.concatenate([t[1] for t in tr]), xte, yte,
                   CIFAR10_CLASSES)


# The image files an image folder holds (`folder:DIR`, and a folder given to `nas predict`)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_image_folder(d: Path, image_size: int | None = None) -> Dataset:
    """``d/{train,test}/CLASS/*.{jpg,jpeg,png}``; images of different sizes need ``image_size``
    (each one's central square, resized: ``center_square``)."""
    from PIL import Image

    splits = {}
    classes = sorted(p.name for p in (d / "train").iterdir() if p.is_dir()) if (d / "train").is_dir() else []
    if not classes:
        raise DataError(f"{d}: expected {d}/train/CLASS/*.jpg (and {d}/test/...)")
    for split in ("train", "test"):
        files = [(label, p) for label, c in enumerate(classes) for p in sorted((d / split / c).glob("*"))
                 if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataError(f"{d}/{split}: no images")
        xs, ys, progress = [], [], DecodeProgress(f"{d}/{split}", len(files))
        for label, p in files:
            with Image.open(p) as im:
                x = np.asarray(im.convert("RGB"))
            x = center_square(x, image_size) if image_size else x
            one_size(xs, x, f"{d}/{split}")
            xs.append(x)
            ys.append(label)
            progress.update(len(xs))
        splits[split] = (np.stack(xs), np.asarray(ys, np.int32))
    return Dataset(d.name, *splits["train"], *splits["test"], tuple(classes))


def load_npz(path: Path, name: str | None = None) -> Dataset:
    z = np.load(path, allow_pickle=False)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z]
    if missing:
        raise DataError(f"{path}: npz lacks {', '.join(missing)}")
    x_train = z["x_train"] if z["x_train"].ndim == 4 else z["x_train"][..., None]
    x_test = z["x_test"] if z["x_test"].ndim == 4 else z["x_test"][..., None]
    n = int(max(z["y_train"].max(), z["y_test"].max())) + 1
    names = tuple(str(c) for c in z["class_names"]) if "class_names" in z else tuple(str(i) for i in range(n))
    return Dataset(name or Path(path).stem, x_train.astype(np.uint8), z["y_train"].astype(np.int32),
                   x_test.astype(np.uint8), z["y_test"].astype(np.int32), names)


# Where a TFDS set comes from, in every message that says it is missing: nas train's options, or a
# search's or study's config keys.
TFDS_REMEDY = ("pass --data-dir (--set data_dir=DIR) where it is prepared, or --manual-dir (--set manual_dir=DIR) "
               "with the downloaded archives")
# What a set of images that differ in size needs, in every message that says so.
IMAGE_SIZE_REMEDY = ("set an image size to crop and resize them to (config image_size, e.g. 64, or --set "
                     "image_size=64; --image-size for nas train)")


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The central square crop of an (H, W, C) uint8 image, resized to ``size`` px (bicubic).

    How variable-size sets (ImageNet) become one uint8 array: at ``size`` = 64 ImageNet's 1.28M
    training images take 15.7 GB (downsampled ImageNet, Chrabaszcz et al. 2017)."""
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top:top + side, left:left + side]
    if side == size:
        return crop
    img = Image.fromarray(crop.squeeze(-1) if crop.shape[-1] == 1 else crop)
    out = np.asarray(img.resize((size, size), Image.BICUBIC))
    return out[..., None] if out.ndim == 2 else out


def load_tfds(name: str, tfds_data_dir: str | None = None, manual_dir: str | None = None,
              limit: int | None = None, image_size: int | None = None) -> Dataset:
    """TFDS through ``tfds.data_source`` (array_record, no TensorFlow needed once prepared).

    Records decode one by one (PNG): about 1 ms an image, 67 s for Fashion-MNIST's 70k on this
    machine, hence the npz cache; ``limit`` reads only the first N of each split. Sets whose
    images differ in size need ``image_size`` (central square crop, resized; see center_square).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(f"tfds:{name}: tensorflow-datasets is not installed (pip install 'ensemble-nas[tfds]')") from None
    try:
        builder = tfds.builder(name, data_dir=tfds_data_dir)
        if not builder.is_prepared():
            if manual_dir is None and tfds_data_dir is None:
                raise DataError(f"tfds:{name}: not prepared in {builder.data_dir}; {TFDS_REMEDY} (preparing "
                                "needs TensorFlow)")
            config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
            try:
                builder.download_and_prepare(download_config=config)
            except Exception as e:  # no network, no TensorFlow, a wrong manual_dir ...
                raise DataError(f"tfds:{name}: not prepared in {builder.data_dir}, and preparing it failed "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                                f"{TFDS_REMEDY}") from None
        sources = tfds.data_source(name, data_dir=tfds_data_dir, download=False)
        label_names = tuple(builder.info.features["label"].names)
    except DataError:
        raise
    except Exception as e:  # TFDS raises many types: not found, not prepared, no TensorFlow ...
        raise DataError(f"tfds:{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        src = sources[split]
        n = len(src) if limit is None else min(limit, len(src))
        images, labels, progress = [], [], DecodeProgress(f"tfds:{name} {split}", n)
        for i in range(n):
            r = src[i]
            img = np.asarray(r["image"], np.uint8)
            img = center_square(img, image_size) if image_size else img
            one_size(images, img, f"tfds:{name}")
            images.append(img)
            labels.append(int(r["label"]))
            progress.update(i + 1)
        return np.stack(images), np.asarray(labels, np.int32)

    return Dataset(name, *arrays("train"), *arrays(evaluation_split(name, sources)), label_names)


def evaluation_split(name: str, sources: Any) -> str:
    """The TFDS split a set is scored on: ``test`` where its records carry labels, else
    ``validation``. ImageNet's TFDS ``test`` split (version 5.1.0 on, prepared when the test archive
    is in ``manual_dir``) has none: every label is -1, and its ``validation`` split is the one
    papers report."""
    for split in ("test", "validation"):
        if split in sources and len(sources[split]) and int(sources[split][0]["label"]) >= 0:
            return split
    raise DataError(f"tfds:{name}: no labelled test or validation split (splits: {', '.join(sorted(sources))})")


# -- the named sets and the cache ------------------------------------------------------------------

FASHION_MNIST_IDX_DIRS = ("/usr/share/datasets/fashion-mnist",)


def _find_fashion_mnist() -> Dataset:
    for d in [data_dir() / "fashion_mnist", *map(Path, FASHION_MNIST_IDX_DIRS)]:
        if all((d / f).is_file() or (d / (f + ".gz")).is_file() for f in IDX_FILES):
            return load_idx_dir(d, "fashion_mnist", FASHION_MNIST_CLASSES)
    tfds_dir = os.environ.get("TFDS_DATA_DIR")
    if tfds_dir and (Path(tfds_dir) / "fashion_mnist").is_dir():
        return load_tfds("fashion_mnist", tfds_dir)
    raise DataError("fashion_mnist: not found; install it with 'apt-get install -y dataset-fashion-mnist' "
                    f"(IDX files in {FASHION_MNIST_IDX_DIRS[0]}), put the IDX files in {data_dir() / 'fashion_mnist'}, "
                    "or set TFDS_DATA_DIR to a prepared TFDS folder")


def _find_cifar10() -> Dataset:
    d = data_dir()
    if (d / "cifar10_jpeg.npz").is_file():
        return decode_jpeg_npz(d / "cifar10_jpeg.npz")
    if (d / "cifar-10-batches-py" / "data_batch_1").is_file():
        return load_cifar_python(d / "cifar-10-batches-py")
    if (d / "cifar-10-batches-bin" / "data_batch_1.bin").is_file():
        return load_cifar_binary(d / "cifar-10-batches-bin")
    tfds_dir = os.environ.get("TFDS_DATA_DIR")
    if tfds_dir and (Path(tfds_dir) / "cifar10").is_dir():
        return load_tfds("cifar10", tfds_dir)
    raise DataError(f"cifar10: not found; put cifar10_jpeg.npz, cifar-10-batches-py/ or cifar-10-batches-bin/ in "
                    f"{d} (or set NAS_DATA_DIR), or set TFDS_DATA_DIR to a prepared TFDS folder")


NAMED: dict[str, Callable[[], Dataset]] = {"fashion_mnist": _find_fashion_mnist, "cifar10": _find_cifar10}
PREFIXED: dict[str, Callable[[Path], Dataset]] = {
    "idx": lambda p: load_idx_dir(p, p.name, tuple(str(i) for i in range(10))),
    "jpeg-npz": lambda p: decode_jpeg_npz(p, p.stem.split("_")[0]),
    "cifar-py": load_cifar_python, "cifar-bin": load_cifar_binary, "folder": load_image_folder, "npz": load_npz,
}


def _cache_path(name: str) -> Path:
    key = hashlib.sha256(name.encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
    return cache_dir() / f"{safe}-{key}.npz"


def check_image_size(image_size: object) -> None:
    """``image_size`` is None (each source's own size) or an int of 8..1024 px, the sizes the search
    space takes as a native size; else one error line."""
    if image_size is not None and not (isinstance(image_size, int) and 8 <= image_size <= 1024):
        raise DataError(f"image_size: must be an int in 8..1024 px, got {image_size!r}")


def resizes_as_it_loads(name: str) -> bool:
    """Whether the source ``name`` takes ``image_size`` image by image as it decodes (TFDS sets and
    image folders, whose images may differ in size); any other is decoded at its one size, then
    resized."""
    return name.startswith(("tfds:", "folder:"))


def load_dataset(name: str, *, tfds_data_dir: str | None = None, manual_dir: str | None = None,
                 use_cache: bool = True, image_size: int | None = None) -> Dataset:
    """Load a data set by name (see the module docstring), decoding it at most once.

    ``image_size`` crops every image to its central square and resizes it to that many px
    (``center_square``), whatever the source: what sets whose images differ in size (ImageNet, a
    folder of photos) need, and a way to run a fixed-size set at another size. The decoded result
    is cached per size."""
    if not isinstance(name, str) or not name:
        raise DataError("dataset: empty name")
    check_image_size(image_size)
    cache_key = f"{name}|{tfds_data_dir}|{manual_dir}" + (f"|{image_size}px" if image_size else "")
    cpath = _cache_path(cache_key)
    if use_cache and cpath.is_file():
        try:
            ds = load_npz(cpath, name)
            return dataclasses.replace(ds, name=name)
        except Exception:
            cpath.unlink(missing_ok=True)  # a broken cache is re-decoded, never trusted
    if image_size is not None and not resizes_as_it_loads(name):
        # a set of one image size: decoded (or read from the cache) as it is, then resized
        ds = resized(load_dataset(name, tfds_data_dir=tfds_data_dir, manual_dir=manual_dir, use_cache=use_cache),
                     image_size)
    elif name in NAMED:
        ds = NAMED[name]()
    elif ":" in name:
        kind, _, arg = name.partition(":")
        if kind == "tfds":
            ds = load_tfds(arg, tfds_data_dir, manual_dir, image_size=image_size)
        elif kind in PREFIXED:
            path = Path(arg).expanduser()
            if not path.exists():
                raise DataError(f"dataset {name}: {path} does not exist")
            # a folder's images may differ in size: cropped and resized one by one as they load
            load = functools.partial(load_image_folder, image_size=image_size) if kind == "folder" else PREFIXED[kind]
            try:
                ds = load(path)
            except (FileNotFoundError, KeyError, ValueError, pickle.UnpicklingError) as e:
                raise DataError(f"dataset {name}: cannot read: {e}") from None
        else:
            raise DataError(f"dataset: unknown source {kind!r}; use tfds:, idx:, jpeg-npz:, cifar-py:, cifar-bin:, "
                            "folder: or npz:")
    else:
        raise DataError(f"dataset: unknown name {name!r}; known: {', '.join(NAMED)}, or tfds:NAME, idx:DIR, "
                        "jpeg-npz:PATH, cifar-py:DIR, cifar-bin:DIR, folder:DIR, npz:PATH")
    ds = dataclasses.replace(ds, name=name)
    if use_cache:
        _write_cache(cpath, ds)
    return ds


def resized(ds: Dataset, size: int) -> Dataset:
    """``ds`` with every image at ``size`` px (``center_square``); a set already there is returned as is."""
    def one(x: np.ndarray) -> np.ndarray:
        if x.shape[1:3] == (size, size):
            return x
        return np.stack([center_square(img, size) for img in x]).reshape(len(x), size, size, x.shape[-1])

    return dataclasses.replace(ds, x_train=one(ds.x_train), x_test=one(ds.x_test))


def _write_cache(path: Path, ds: Dataset) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
                 class_names=np.asarray(ds.class_names))
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimization; a read-only home must not stop a run


def validation_split(ds: Dataset, val_size: int | float = 0.1, seed: int = 0, train_examples: int | None = None,
                     names: tuple[str, str] = ("val_size", "train_examples")) -> Split:
    """Carve a seeded, class-stratified validation split from train; optionally subsample train
    to ``train_examples`` (class-balanced). The test split is not part of the result. A split the
    data cannot give raises DataError naming the two as ``names`` (a config's keys, or a command's
    options: ("--val-size", "--train-examples"))."""
    val_name, train_name = names
    n = len(ds.y_train)
    n_val = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 < n_val < n:
        also = (f"; {train_name}: {train_examples} is more than the {n} training examples too"
                if train_examples is not None and train_examples >= n else "")  # both in one line
        raise DataError(f"{val_name}: {val_size} gives {n_val} of {n} training examples; need 1..{n - 1}{also}")
    rng = np.random.default_rng(seed)
    val_idx, train_idx = _stratified(ds.y_train, n_val, rng)
    if train_examples is not None:
        if not 0 < train_examples <= len(train_idx):
            raise DataError(f"{train_name}: {train_examples} not in 1..{len(train_idx)} (the {n} training "
                            f"examples less the {n_val} held out for validation, {val_name})")
        keep, _ = _stratified(ds.y_train[train_idx], train_examples, rng)
        train_idx = train_idx[keep]
    return Split(ds.name, ds.x_train[train_idx], ds.y_train[train_idx], ds.x_train[val_idx], ds.y_train[val_idx],
                 ds.class_names)


def test_split(ds: Dataset, seed: int = 0, train_examples: int | None = None, test_examples: int | None = None,
               ) -> Split:
    """Train on the training split (optionally a class-balanced subset) and score on the test split
    (optionally a class-balanced subset): what the scaling studies report, as the paper does."""
    rng = np.random.default_rng(seed)
    train_idx = np.arange(len(ds.y_train))
    test_idx = np.arange(len(ds.y_test))
    for name, k, y in (("train_examples", train_examples, ds.y_train), ("test_examples", test_examples, ds.y_test)):
        if k is not None and not 0 < k <= len(y):
            raise DataError(f"{name}: {k} not in 1..{len(y)}")
    if train_examples is not None and train_examples < len(train_idx):
        train_idx = np.sort(_stratified(ds.y_train, train_examples, rng)[0])
    if test_examples is not None and test_examples < len(test_idx):
        test_idx = np.sort(_stratified(ds.y_test, test_examples, rng)[0])
    return Split(ds.name, ds.x_train[train_idx], ds.y_train[train_idx], ds.x_test[test_idx], ds.y_test[test_idx],
                 ds.class_names)


def with_training_subset(ds: Dataset, seed: int, train_examples: int | None) -> Dataset:
    """``ds`` with its training split cut to ``test_split``'s class-balanced subset of
    ``train_examples`` images (all of them where None): what `nas retrain --train-examples`
    retrains on, and what `nas export` recomputes those members' batch-norm statistics over."""
    if train_examples is None:
        return ds
    part = test_split(ds, seed, train_examples, None)
    return dataclasses.replace(ds, x_train=part.x_train, y_train=part.y_train)


def _stratified(y: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of k examples drawn in proportion to each class, and the rest (both shuffled)."""
    perm = rng.permutation(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / len(y) * k).astype(int)
    for i in np.argsort(-(counts / len(y) * k - quota))[: k - quota.sum()]:
        quota[i] += 1
    chosen = []
    for c, q in zip(classes, quota):
        chosen.append(perm[y[perm] == c][:q])
    picked = rng.permutation(np.concatenate(chosen))
    mask = np.ones(len(y), bool)
    mask[picked] = False
    return picked, perm[mask[perm]]
