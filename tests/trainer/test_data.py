import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from tests.conftest import shared_file
from trainer.data import Dataset, DataError, load_dataset, validation_split


def _write_idx(path, arr, gz=True):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, gz=False)
    return tmp_path


def test_idx_reader(idx_dir):
    ds = load_dataset(f"idx:{idx_dir}")
    assert ds.x_train.shape == (60, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.y_test.tolist() == [i % 10 for i in range(20)]


def test_cifar_python_and_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    py, binary = tmp_path / "py", tmp_path / "bin"
    py.mkdir()
    binary.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, 4)
        with open(py / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": list(y)}, f)
        (binary / f"{name}.bin").write_bytes(np.concatenate([y[:, None].astype(np.uint8), x], 1).tobytes())
    a, b = load_dataset(f"cifar-py:{py}"), load_dataset(f"cifar-bin:{binary}")
    assert a.x_train.shape == (20, 32, 32, 3) and np.array_equal(a.x_train, b.x_train)
    assert np.array_equal(a.y_test, b.y_test) and a.class_names[0] == "airplane"


def test_image_folder_and_npz(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "imgs" / split / c / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert ds.x_train.shape == (6, 8, 8, 3) and ds.class_names == ("cat", "dog")
    np.savez(tmp_path / "d.npz", x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'd.npz'}").x_test, ds.x_test)


def test_an_image_size_crops_and_resizes_a_folder_of_photos_of_any_size(tmp_path):
    from PIL import Image

    from trainer.data import center_square

    rng = np.random.default_rng(3)
    shapes = [(20, 30, 3), (24, 24, 3), (40, 18, 3)]
    photos = {}
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "photos" / split / c).mkdir(parents=True)
            for i, shape in enumerate(shapes):
                photos[split, c, i] = rng.integers(0, 255, shape, dtype=np.uint8)
                Image.fromarray(photos[split, c, i]).save(tmp_path / "photos" / split / c / f"{i}.png")
    with pytest.raises(DataError, match="images differ in size.*image_size=64") as e:
        load_dataset(f"folder:{tmp_path / 'photos'}")
    assert "\n" not in str(e.value)
    ds = load_dataset(f"folder:{tmp_path / 'photos'}", image_size=16)
    assert ds.x_train.shape == (6, 16, 16, 3) and ds.x_test.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(ds.x_train[4], center_square(photos["train", "dog", 1], 16))  # sorted: cat 0-2, dog 0-2
    # each size is decoded and cached apart
    assert load_dataset(f"folder:{tmp_path / 'photos'}", image_size=24).x_test.shape == (6, 24, 24, 3)
    np.testing.assert_array_equal(load_dataset(f"folder:{tmp_path / 'photos'}", image_size=16).x_train, ds.x_train)
    with pytest.raises(DataError, match="image_size: must be an int in 8..1024"):
        load_dataset(f"folder:{tmp_path / 'photos'}", image_size=4)


def test_a_folder_of_mixed_sizes_fails_at_its_first_odd_image_not_after_decoding_all(tmp_path, monkeypatch):
    import PIL.Image

    (tmp_path / "train" / "cat").mkdir(parents=True)
    for i in range(30):  # 00.png at 8 px, then 29 at 10 px
        PIL.Image.fromarray(np.zeros((8, 8, 3) if i == 0 else (10, 10, 3), np.uint8)).save(
            tmp_path / "train" / "cat" / f"{i:02d}.png")
    opened, real_open = [], PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    with pytest.raises(DataError, match=r"train: images differ in size \(\(8, 8, 3\) and \(10, 10, 3\)\)"):
        load_dataset(f"folder:{tmp_path}")
    assert len(opened) == 2


def test_a_slow_decode_reports_its_progress_and_a_quick_one_says_nothing(capsys):
    from trainer.data import DecodeProgress

    quick = DecodeProgress("tfds:x train", 1000)
    for i in range(1000):
        quick.update(i + 1)
    assert capsys.readouterr().err == ""
    slow = DecodeProgress("tfds:imagenet2012 train", 1_281_167, every_s=0.0)
    slow.update(128_117)
    line = capsys.readouterr().err
    assert line.startswith("tfds:imagenet2012 train: 128,117 of 1,281,167 images decoded (10%) in ")
    assert line.endswith(" s left\n") and line.count("\n") == 1


def test_an_image_size_resizes_a_set_of_one_size_and_leaves_one_already_there(idx_dir):
    from trainer.data import center_square

    native = load_dataset(f"idx:{idx_dir}")
    same = load_dataset(f"idx:{idx_dir}", image_size=28)
    np.testing.assert_array_equal(same.x_train, native.x_train)
    big = load_dataset(f"idx:{idx_dir}", image_size=32)
    assert big.x_train.shape == (60, 32, 32, 1) and big.x_test.shape == (20, 32, 32, 1)
    np.testing.assert_array_equal(big.x_test[3], center_square(native.x_test[3], 32))
    np.testing.assert_array_equal(big.y_train, native.y_train)


def test_decoded_once_then_cached(idx_dir):
    load_dataset(f"idx:{idx_dir}")
    for f in idx_dir.iterdir():
        f.unlink()  # the cache must now serve it
    assert load_dataset(f"idx:{idx_dir}").x_train.shape == (60, 28, 28, 1)


@pytest.mark.parametrize("name, msg", [("imagenet", "unknown name"), ("idx:/nonexistent", "does not exist"),
                                       ("mnist:x", "unknown source"), ("tfds:fashion_mnist", "tfds:fashion_mnist: ")])
def test_missing_data_is_one_clear_error(name, msg, monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=msg) as e:
        load_dataset(name, tfds_data_dir=str(tmp_path) if name.startswith("tfds") else None)
    if name.startswith("tfds"):  # without tensorflow-datasets, how to install it; with it, where data goes
        assert "pip install" in str(e.value) or ("not prepared in" in str(e.value) and "--data-dir" in str(e.value))
    assert "\n" not in str(e.value)  # one line


def test_named_sets_name_the_remedy(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="cifar10_jpeg.npz"):
        load_dataset("cifar10")


def test_validation_split_is_seeded_stratified_and_disjoint(idx_dir):
    ds = load_dataset(f"idx:{idx_dir}")
    a, b = validation_split(ds, 10, seed=3), validation_split(ds, 10, seed=3)
    assert np.array_equal(a.x_val, b.x_val) and a.fingerprint == b.fingerprint
    assert np.bincount(a.y_val).tolist() == [1] * 10
    assert len(a.y_train) == 50
    c = validation_split(ds, 10, seed=4)
    assert not np.array_equal(a.x_val, c.x_val)
    sub = validation_split(ds, 10, seed=3, train_examples=20)
    assert np.bincount(sub.y_train).tolist() == [2] * 10
    with pytest.raises(DataError, match="val_size") as e:
        validation_split(ds, 60)
    assert "train_examples" not in str(e.value)
    # both too many: one line names both, so the corrected command does not fail on the second
    with pytest.raises(DataError, match=r"val_size: 60 gives 60 of 60 training examples; need 1..59; "
                                        r"train_examples: 80 is more than the 60 training examples too$"):
        validation_split(ds, 60, train_examples=80)
    with pytest.raises(DataError, match=r"^train_examples: 51 not in 1..50 \(the 60 training examples less the 10 "
                                        r"held out for validation, val_size\)$"):
        validation_split(ds, 10, train_examples=51)
    with pytest.raises(DataError, match=r"^--val-size: 60 gives 60 of 60 training examples; need 1..59; "
                                        r"--train-examples: 80 is more"):  # as nas train's options name them
        validation_split(ds, 60, train_examples=80, names=("--val-size", "--train-examples"))


def test_tfds_prepared_fashion_mnist_matches_the_idx_files():
    # TFDS is an optional extra (the test extra and CI install it; the GPU machine has none)
    pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed")
    tfds_dir = shared_file("tfds", "fashion_mnist")
    idx = load_dataset(f"idx:{shared_file('fashion_mnist_manual')}")
    from trainer.data import load_tfds

    ds = load_tfds("fashion_mnist", str(tfds_dir.parent), limit=500)
    assert ds.x_train.shape == (500, 28, 28, 1) and ds.class_names[0] == "T-shirt/top"
    # TFDS shuffles records; every TFDS image is one of the IDX test or train images.
    test_hashes = {hashlib.sha1(x.tobytes()).hexdigest() for x in idx.x_test}
    assert sum(hashlib.sha1(x.tobytes()).hexdigest() in test_hashes for x in ds.x_test) == 500


def test_a_tfds_set_is_scored_on_its_labelled_test_split_else_on_validation():
    from trainer.data import evaluation_split

    def split(label):
        return [{"image": None, "label": label}] * 3

    assert evaluation_split("fashion_mnist", {"train": split(1), "test": split(0)}) == "test"
    # imagenet2012 prepared with its test archive: a test split whose labels are all -1
    assert evaluation_split("imagenet2012", {"train": split(5), "validation": split(7), "test": split(-1)}) == "validation"
    assert evaluation_split("x", {"train": split(1), "validation": split(2)}) == "validation"
    with pytest.raises(DataError, match="tfds:x: no labelled test or validation split \\(splits: test, train\\)"):
        evaluation_split("x", {"train": split(1), "test": split(-1)})


def test_cifar10_jpeg_copy_decodes_the_documented_pixels():
    ds = load_dataset(f"jpeg-npz:{shared_file('cifar10_jpeg.npz')}")
    assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert hashlib.sha256(ds.x_train.tobytes()).hexdigest().startswith("bf3aabd52be912dae02a0435296c4dab")


def test_center_square_crops_the_middle_and_resizes():
    from trainer.data import center_square

    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 10:50] = 200  # the central 40x40 square
    sq = center_square(img, 40)
    assert sq.shape == (40, 40, 3) and (sq == 200).all()
    small = center_square(img, 16)
    assert small.shape == (16, 16, 3) and small.dtype == np.uint8 and small.min() >= 190
    gray = center_square(np.full((30, 20, 1), 7, np.uint8), 10)
    assert gray.shape == (10, 10, 1) and (gray == 7).all()


def test_the_test_fingerprint_is_the_test_sets_content_hashed_once():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8), rng.integers(0, 3, 20).astype(np.int32)
    a = Dataset("d", x[:10], y[:10], x[10:], y[10:], ("a", "b", "c"))
    same = Dataset("d", x[:4], y[:4], x[10:].copy(), y[10:].copy(), ("a", "b", "c"))  # train split aside
    first = a.test_fingerprint
    assert a.test_fingerprint is first and same.test_fingerprint == first  # kept; content, not identity
    flipped = y[10:].copy()
    flipped[0] = (flipped[0] + 1) % 3
    assert Dataset("d", x[:10], y[:10], x[10:], flipped, ("a", "b", "c")).test_fingerprint != first
    assert Dataset("d", x[:10], y[:10], x[11:], y[11:], ("a", "b", "c")).test_fingerprint != first
