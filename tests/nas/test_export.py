"""nas/export.py and nas/export_cli.py: an ensemble's weights written, read back and combined; which
retrained ensemble `nas export` chooses; image files for `nas predict`. (The whole path, from a real
retrained run through the CLI, is in test_search_e2e.py.)"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from nas.ensemble import geometric_mean_log_probs
from nas.export import (FORMAT, MANIFEST, load_ensemble, member_arrays, model_from_arrays, write_ensemble)
from nas.export_cli import choose_retrained, read_images, row_members
from search_space import zoo
from search_space.errors import UserError
from search_space.models import init_model
from search_space.spec import to_json
from trainer.augment import to_model_input
from tests.conftest import logits_of
from trainer.data import center_square

CLASSES = [f"c{i}" for i in range(10)]


def _member(resolution: int, seed: int) -> tuple:
    """A small MobileNetV2 whose batch-norm statistics and weights are not the initial ones."""
    spec = zoo.get("mobilenetv2", resolution=resolution, width_multiplier=0.25)
    model = init_model(spec, 10, seed=seed)
    rng = np.random.default_rng(seed)
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    nnx.update(model, nnx.map_state(  # moved on the host: a jnp sum compiles a program per shape
        lambda path, v: v.replace(jnp.asarray(np.asarray(v.get_value()) + rng.uniform(0.1, 0.5, v.get_value().shape),
                                              jnp.float32)),
        state))
    model.eval()
    return spec, model


def _manifest(specs, mean=(0.3,), std=(0.4,)) -> dict:
    return {"class_names": CLASSES, "image_size": 28, "channels": 1, "mean": list(mean), "std": list(std),
            "combine": "geometric_mean",
            "members": [{"id": f"m{i}", "seed": i, "resolution": s.resolution, "spec": json.loads(to_json(s))}
                        for i, s in enumerate(specs)]}


def _images(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)


def test_member_arrays_rebuild_a_model_with_the_same_logits():
    spec, model = _member(16, 0)
    arrays = member_arrays(model)
    assert all(a.dtype == np.float32 for a in arrays.values())
    assert any(k.endswith("mean") for k in arrays) and any(k.endswith("kernel") for k in arrays)
    rebuilt = model_from_arrays(spec, 10, arrays, "here")
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    np.testing.assert_array_equal(logits_of(rebuilt, x), logits_of(model, x))


def test_weights_that_do_not_fit_the_spec_are_one_error_line():
    spec, model = _member(16, 0)
    arrays = member_arrays(model)
    key = next(k for k in arrays if k.endswith("kernel"))
    with pytest.raises(UserError, match="missing"):
        model_from_arrays(spec, 10, {k: v for k, v in arrays.items() if k != key}, "w.npz")
    with pytest.raises(UserError, match="has shape"):
        model_from_arrays(spec, 10, {**arrays, key: np.zeros((1, 2), np.float32)}, "w.npz")
    with pytest.raises(UserError, match="unexpected"):
        model_from_arrays(spec, 10, {**arrays, "extra/kernel": np.zeros(1, np.float32)}, "w.npz")
    other = zoo.get("mobilenetv2", resolution=16, width_multiplier=0.5)
    with pytest.raises(UserError, match="do not fit"):
        model_from_arrays(other, 10, arrays, "w.npz")


def test_a_written_ensemble_reads_back_as_the_geometric_mean_of_its_members(tmp_path):
    (s0, m0), (s1, m1) = _member(28, 0), _member(16, 1)  # at the native size, and resized to 16 px
    images, labels = _images(), np.arange(12) % 10
    out = tmp_path / "exp"
    written = write_ensemble(out, _manifest([s0, s1]), [member_arrays(m0), member_arrays(m1)], images, labels)
    assert written["format"] == FORMAT and [m["weights"] for m in written["members"]] == ["member0.npz", "member1.npz"]
    assert json.loads((out / MANIFEST).read_text()) == written
    assert (out.stat().st_mode & 0o055) == 0o055  # readable by others, as a folder made by mkdir
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temporary folder left

    ens = load_ensemble(out)
    mean, std = jnp.asarray([0.3]), jnp.asarray([0.4])
    direct = [logits_of(m, to_model_input(jnp.asarray(images), mean, std, s.resolution)) for s, m in ((s0, m0), (s1, m1))]
    for got, want in zip(ens.member_logits(images), direct):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    want = np.exp(geometric_mean_log_probs(direct))
    np.testing.assert_allclose(ens.probabilities(images), want, rtol=1e-5, atol=1e-6)
    assert written["test_accuracy_exported"] == float((want.argmax(-1) == labels).mean())
    ens.batch_size = 5  # batches padded to a fixed size: the same answer for any count of images
    np.testing.assert_allclose(ens.probabilities(images[:7]), want[:7], rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match=r"uint8 of shape \(N, 28, 28, 1\)"):
        ens.probabilities(np.zeros((2, 32, 32, 3), np.uint8))


def test_a_folder_scored_with_mirror_images_averages_each_members_two_views(tmp_path):
    spec = zoo.get("mobilenetv2", resolution=28, width_multiplier=0.25)
    model = init_model(spec, 10, seed=0)
    rng = np.random.default_rng(0)  # weights moved both ways, so that its logits vary with the image
    nnx.update(model, nnx.map_state(
        lambda path, v: v.replace(jnp.asarray(np.asarray(v.get_value()) + rng.normal(0, 0.1, v.get_value().shape),
                                              jnp.float32)),
        nnx.state(model, nnx.Param)))
    model.eval()
    images = _images()
    written = write_ensemble(tmp_path / "exp", {**_manifest([spec]), "tta_flip": True}, [member_arrays(model)])
    assert written["tta_flip"] is True
    x = to_model_input(jnp.asarray(images), jnp.asarray([0.3]), jnp.asarray([0.4]), 28)
    as_is, mirrored = logits_of(model, x), logits_of(model, x[:, :, ::-1, :])
    assert np.abs(as_is - mirrored).max() > 1e-3  # the views differ by 100x the tolerance below
    [got] = load_ensemble(tmp_path / "exp").member_logits(images)
    np.testing.assert_allclose(got, (as_is + mirrored) / 2, rtol=1e-5, atol=1e-5)


def test_write_ensemble_refuses_a_folder_with_files_and_leaves_it_alone(tmp_path):
    spec, model = _member(16, 0)
    out = tmp_path / "exp"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not an empty folder"):
        write_ensemble(out, _manifest([spec]), [member_arrays(model)])
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and len(list(tmp_path.iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    write_ensemble(empty, _manifest([spec]), [member_arrays(model)])  # an empty folder is fine
    assert (empty / MANIFEST).is_file()


def test_load_ensemble_names_what_is_wrong_in_one_line(tmp_path):
    spec, model = _member(16, 0)
    with pytest.raises(UserError, match="no ensemble.json"):
        load_ensemble(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        load_ensemble(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="not an exported ensemble of this format"):
        load_ensemble(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": FORMAT, "members": []}))
    with pytest.raises(UserError, match="malformed"):
        load_ensemble(tmp_path)
    good = tmp_path / "good"
    write_ensemble(good, _manifest([spec]), [member_arrays(model)])
    (good / "member0.npz").write_bytes(b"damaged")
    with pytest.raises(UserError, match="member0.npz: unreadable"):
        load_ensemble(good)


def _row(eid, size, sample, acc, recipe="fast", epochs=4, n=None, lat=1.0):
    return {"ensemble_id": eid, "size": size, "sample": sample, "recipe": recipe, "epochs": epochs,
            "train_examples": n, "test_accuracy": acc, "latency_max_ms": lat}


def test_export_chooses_the_most_accurate_retrained_ensemble_unless_told():
    rows = [_row("aaa1", 1, 0, 0.80), _row("bbb2", 2, 3, 0.85), _row("ccc3", 2, 4, 0.83, lat=0.5),
            _row("ddd4", 3, "pool", 0.84)]
    assert choose_retrained(rows, None, None, None, None)["ensemble_id"] == "bbb2"
    assert choose_retrained(rows, None, 3, None, None)["ensemble_id"] == "ddd4"
    assert choose_retrained(rows, None, 2, 4, None)["ensemble_id"] == "ccc3"
    assert choose_retrained(rows, "ccc", None, None, None)["ensemble_id"] == "ccc3"
    with pytest.raises(UserError, match=r"of size 4 \(retrained: size 1 #0, size 2 #3, size 2 #4, size 3 #pool\)"):
        choose_retrained(rows, None, 4, None, None)
    # numbers in order, not as text (#10 after #9), pool rows after a size's samples
    many = [_row(f"e{i}", 1, i, 0.5) for i in (10, 9, 2)] + [_row("p", 1, "pool", 0.5)]
    with pytest.raises(UserError, match=r"\(retrained: size 1 #2, size 1 #9, size 1 #10, size 1 #pool\)"):
        choose_retrained(many, None, 2, None, None)
    with pytest.raises(UserError, match="no retrained ensemble eee"):
        choose_retrained(rows, "eee", None, None, None)
    # the same ensemble retrained two ways: the setting must be named
    both = rows + [_row("bbb2", 2, 3, 0.87, recipe="wrn", epochs=200)]
    with pytest.raises(UserError, match=r"several settings.*fast4, wrn200"):
        choose_retrained(both, "bbb", None, None, None)
    assert choose_retrained(both, "bbb", None, None, "wrn200")["test_accuracy"] == 0.87
    with pytest.raises(UserError, match="--setting fast9"):
        choose_retrained(both, "bbb", None, None, "fast9")
    with pytest.raises(UserError, match="matches 2 retrained ensembles"):
        choose_retrained(rows + [_row("bbb9", 1, 1, 0.7)], "bbb", None, None, None)


def test_a_retrained_row_without_its_members_takes_them_from_the_searchs_record():
    """Rows `nas retrain` wrote before rows named their members (the committed CPU search's first
    ones) have only the ensemble id: `nas export` of one failed with KeyError: 'members'."""
    named = [{"id": "m1", "seed": 0, "val_accuracy": 0.6, "latency_ms": 1.0}]
    records = [{"ensemble_id": "aaa1", "size": 1, "sample": 0, "members": named},
               {"ensemble_id": "bbb2", "size": 1, "sample": 1, "status": "failed"}]
    assert row_members(_row("aaa1", 1, 0, 0.8), records) == named
    assert row_members({**_row("ccc3", 1, 2, 0.8), "members": named}, []) == named
    with pytest.raises(UserError, match="size 1 #pool: its retraining row names no members"):
        row_members(_row("ddd4", 1, "pool", 0.8), records)
    with pytest.raises(UserError, match="size 1 #1: its retraining row names no members"):
        row_members(_row("bbb2", 1, 1, 0.8), records)


def test_read_images_converts_to_the_data_sets_channels_and_size(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[:28, :28, 0]).save(tmp_path / "b.jpg", quality=100)
    gray = read_images([str(tmp_path / "a.png"), str(tmp_path / "b.jpg")], 28, 1)
    assert gray.shape == (2, 28, 28, 1) and gray.dtype == np.uint8
    np.testing.assert_allclose(gray[1, :, :, 0], rgb[:28, :28, 0], atol=8)  # JPEG rounding only
    color = read_images([str(tmp_path / "a.png")], 32, 3)
    assert color.shape == (1, 32, 32, 3)
    # a photo of another shape: its central square, resized, as a data set loaded with image_size was
    wide = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(wide).save(tmp_path / "w.png")
    np.testing.assert_array_equal(read_images([str(tmp_path / "w.png")], 16, 3)[0], center_square(wide, 16))
    np.testing.assert_array_equal(read_images([str(tmp_path / "w.png")], 30, 3)[0], wide[:, 10:40])
    (tmp_path / "c.png").write_text("not an image")
    with pytest.raises(UserError, match="c.png: not an image Pillow can read"):
        read_images([str(tmp_path / "c.png")], 28, 1)
    with pytest.raises(UserError, match="d.png: no such file"):
        read_images([str(tmp_path / "d.png")], 28, 1)


def test_a_folder_given_to_predict_is_its_image_files_in_it_and_below(tmp_path):
    from nas.export_cli import image_paths

    (tmp_path / "photos" / "more").mkdir(parents=True)
    for name in ("photos/b.PNG", "photos/a.jpg", "photos/more/c.jpeg", "photos/notes.txt", "one.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "photos" / "dir.png").mkdir()  # a folder named like an image is not one
    assert image_paths([str(tmp_path / "one.png"), str(tmp_path / "photos")]) == [
        str(tmp_path / p) for p in ("one.png", "photos/a.jpg", "photos/b.PNG", "photos/more/c.jpeg")]
    assert image_paths(["x.txt"]) == ["x.txt"]  # a file as given: read_images says what is wrong with it
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=f"^{tmp_path / 'empty'}: a folder without image files "
                                        r"\(\.jpg, \.jpeg, \.png\) in it or below$"):
        image_paths([str(tmp_path / "empty")])


def test_predictions_compile_into_a_user_cache_unless_one_is_named(tmp_path, monkeypatch):
    from nas.export import enable_prediction_cache

    assert enable_prediction_cache() is None  # the test session names one (tests/conftest.py)
    before = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        assert enable_prediction_cache() == tmp_path / "xdg" / "ensemble-nas" / "jax"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xdg" / "ensemble-nas" / "jax")
        jax.config.update("jax_compilation_cache_dir", None)
        (tmp_path / "file").write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # cannot hold a folder: no cache
        assert enable_prediction_cache() is None and jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
