"""`nas export` and `nas predict`: a retrained ensemble as a folder of its own, and predictions from it.

A search's end product is an ensemble retrained to convergence (`nas retrain`). Its members'
checkpoints sit in the run directory beside everything else, in the trainer's format, and scoring
them needs the training images (batch-norm statistics are recomputed before scoring:
trainer/precise_bn.py). `nas export` writes one chosen ensemble as a folder that needs neither:

    ensemble.json   what it is: per member the spec, seed, resolution, weights file and test accuracy;
                    the data set's class names, image size and channels; the per-channel mean and std
                    the members normalize with; whether each scores an image with its mirror image
                    (tta_flip); how they combine (the geometric mean of their softmax
                    outputs, the paper's); the test accuracy retraining reported and the one the
                    folder's own weights gave when read back
    member{i}.npz   the member's parameters and the batch-norm statistics it was scored with (float32),
                    keyed by module path

and `load_ensemble(DIR)` (or `nas predict DIR IMAGE...`) reads it back on any JAX backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.compile_cache import use_compilation_cache
from nas.ensemble import accuracy, geometric_mean_log_probs
from nas.manifest import FORMAT, MANIFEST, read_manifest
from nas.store import process_umask
from search_space.errors import UserError
from search_space.layers import count
from search_space.models import conv_mode, init_model, set_conv_lowering
from search_space.spec import ArchSpec
from trainer.augment import scoring_views, to_model_input
from trainer.data import Dataset

# Exported weights scored again give the retrained ensemble's test accuracy up to floating-point
# summation order (the README demo's pair: 89.94% both ways, logits within 3e-6), or a little more
# where retraining computed in bfloat16 (a GPU) and the folder is read back in float32. `nas export`
# warns when the two differ by more than this (a fraction, 0.2 points).
ACCURACY_TOLERANCE = 0.002


def _key(path: tuple[Any, ...]) -> str:
    return "/".join(str(p) for p in path)


def member_arrays(model: nnx.Module) -> dict[str, np.ndarray]:
    """A model's parameters and batch-norm statistics as float32 arrays keyed by module path."""
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    return {_key(path): np.asarray(var.get_value(), np.float32) for path, var in nnx.to_flat_state(state)}


def model_from_arrays(spec: ArchSpec, num_classes: int, arrays: dict[str, np.ndarray], where: str) -> nnx.Module:
    """The member ``spec`` built in float32 and evaluation mode with ``arrays`` (``member_arrays``'s)
    as its parameters and batch-norm statistics; every array must be there, with its shape."""
    model = init_model(spec, num_classes, seed=0, dtype=jnp.float32)
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    wanted = {_key(path): var.get_value().shape for path, var in nnx.to_flat_state(state)}
    missing = sorted(set(wanted) - set(arrays))
    extra = sorted(set(arrays) - set(wanted))
    wrong = [k for k in wanted if k in arrays and tuple(arrays[k].shape) != tuple(wanted[k])]
    if missing or extra or wrong:
        detail = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                  else f"{wrong[0]} has shape {arrays[wrong[0]].shape}, the spec wants {wanted[wrong[0]]}")
        raise UserError(f"{where}: weights do not fit the member's spec ({detail})")
    nnx.update(model, nnx.map_state(lambda path, var: var.replace(jnp.asarray(arrays[_key(path)])), state))
    model.eval()
    return model


@dataclasses.dataclass
class ExportedEnsemble:
    """An exported ensemble read back: ``probabilities(images)`` is its prediction.

    ``images``: uint8, (N, H, W, C) at the data set's image size and channels (``image_size``,
    ``channels``); each member normalizes and resizes them to its own resolution, as in training.
    """

    manifest: dict[str, Any]
    specs: list[ArchSpec]
    models: list[nnx.Module]
    batch_size: int = 500

    def __post_init__(self) -> None:
        self._forwards: dict[str, list[tuple[Any, Any]]] = {}
        # the largest member's multiply-adds an image: how many images make matrix products pay
        # (search_space.models.conv_mode)
        self._most_multiply_adds = max(count(spec, len(self.class_names)).multiply_adds for spec in self.specs)

    def _forward(self, lowering: str) -> list[tuple[Any, Any]]:
        """Per member, its jitted forward pass (uint8 images -> logits) and its state, with dense
        convolutions lowered as ``lowering`` (search_space.models.conv_mode)."""
        if lowering not in self._forwards:
            mean = jnp.asarray(self.manifest["mean"], jnp.float32)
            std = jnp.asarray(self.manifest["std"], jnp.float32)
            flip = bool(self.manifest.get("tta_flip", False))  # folders written before the key: False
            forwards = []
            for spec, model in zip(self.specs, self.models):
                set_conv_lowering(model, lowering)
                graphdef, state = nnx.split(model)

                def forward(state: Any, x: jax.Array, graphdef: Any = graphdef, res: int = spec.resolution) -> jax.Array:
                    # scored as in training: the mean logits of the image (and its mirror image)
                    return scoring_views(nnx.merge(graphdef, state), to_model_input(x, mean, std, res), flip).mean(0)

                forwards.append((jax.jit(forward), state))
            self._forwards[lowering] = forwards
        return self._forwards[lowering]

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def channels(self) -> int:
        return int(self.manifest["channels"])

    def check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        want = (self.image_size, self.image_size, self.channels)
        if images.ndim != 4 or images.shape[1:] != want or images.dtype != np.uint8:
            raise UserError(f"images must be uint8 of shape (N, {', '.join(map(str, want))}), "
                            f"got {images.dtype} {images.shape}")
        return images

    def member_logits(self, images: np.ndarray) -> list[np.ndarray]:
        """Each member's logits, (N, classes) float32, in fixed-size batches (one compile per member
        and batch size). On a CPU, many images run dense convolutions as matrix products: the
        README demo's retrained pair scored Fashion-MNIST's 10,000 test images in 15.7 s that way
        against 32.8 s as XLA convolutions (2-core CPU, compiled; first calls 25.5 and 40.0 s;
        docs/search.md)."""
        images = self.check_images(images)
        n = len(images)
        # batches padded to a power of two: 3 images and 4 run (and are cached, enable_prediction_cache)
        # as one program
        bs = min(self.batch_size, 1 << max(0, (n - 1).bit_length()))
        padded = np.concatenate([images, np.zeros((-n % bs, *images.shape[1:]), np.uint8)]) if n % bs else images
        out = []
        for forward, state in self._forward(conv_mode(train_images=n, multiply_adds=self._most_multiply_adds)):
            parts = [np.asarray(forward(state, jnp.asarray(padded[i:i + bs]))) for i in range(0, len(padded), bs)]
            out.append(np.concatenate(parts)[:n])
        return out

    def log_probabilities(self, images: np.ndarray) -> np.ndarray:
        """log of the renormalized geometric mean of the members' softmax outputs, (N, classes)."""
        return geometric_mean_log_probs(self.member_logits(images))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.exp(self.log_probabilities(images))


def enable_prediction_cache() -> Path | None:
    """A persistent XLA compilation cache for `nas predict`, in ``$XDG_CACHE_HOME/ensemble-nas/jax``
    (``~/.cache/...``), unless one is named already (nas.compile_cache); returns the folder it
    turned on, or None. A call after the first then reads its members' compiled forward passes
    instead of compiling them: the README demo's pair on four images, 6.2 s -> 2.3 s to the first
    prediction (2-core CPU)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ensemble-nas" / "jax"
    return folder if use_compilation_cache(folder, min_compile_s=0.5) else None


def read_back_note(out: Path, exported: float, retrained: float) -> str | None:
    """The warning `nas export` and `retrain-spec --export` print when a folder's test accuracy,
    read back, differs from retraining's by more than ACCURACY_TOLERANCE; None when it does not."""
    if abs(exported - retrained) <= ACCURACY_TOLERANCE:
        return None
    return (f"note: the two differ by {100 * abs(exported - retrained):.2f} points, more than floating-point order "
            f"explains in float32 (retraining in bfloat16 can); {out}/{MANIFEST} keeps both")


def load_ensemble(folder: str | Path) -> ExportedEnsemble:
    """Read a folder `nas export` wrote. Raises UserError (one line) if it is not one."""
    folder = Path(folder)
    manifest, specs = read_manifest(folder)
    models = []
    for m, spec in zip(manifest["members"], specs):
        weights = folder / m["weights"]
        try:
            with np.load(weights, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise UserError(f"{weights}: unreadable ({e})") from None
        models.append(model_from_arrays(spec, len(manifest["class_names"]), arrays, str(weights)))
    return ExportedEnsemble(manifest, specs, models)


def data_manifest(dataset: Dataset, train_images: np.ndarray, tta_flip: bool = False) -> dict[str, Any]:
    """What an exported folder says of its inputs and outputs: the data set's name, class names,
    image size and channels, the per-channel mean and std of the images the members were trained
    on (what they normalize with: trainer.train.normalization), whether a member scores each image
    with its mirror image (the scoring config's ``tta_flip``), and how members combine."""
    from trainer.train import normalization  # the trainer's optimizer stack is not needed to predict

    mean, std = normalization(train_images)
    return {"dataset": dataset.name, "class_names": list(dataset.class_names),
            "image_size": int(dataset.x_train.shape[1]), "channels": int(dataset.x_train.shape[3]),
            "mean": [float(v) for v in mean], "std": [float(v) for v in std], "tta_flip": bool(tta_flip),
            "combine": "geometric_mean"}


def check_out_folder(out: Path, option: str = "--out") -> None:
    """An export goes to a new or empty folder: one with files in it is never written into."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty folder (choose another {option})")


def write_ensemble(out: Path, manifest: dict[str, Any], arrays: list[dict[str, np.ndarray]],
                   test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                   option: str = "--out") -> dict[str, Any]:
    """Write the folder ``out`` (which must not exist, or be empty) all at once: into a temporary
    folder beside it, renamed into place at the end, so a failure leaves nothing half-written.
    With test images, the written folder is read back and scored first; its accuracy goes into
    the manifest as ``test_accuracy_exported``. Returns the manifest written. ``option``: the
    command-line option that named ``out``, for the error when it holds files."""
    check_out_folder(out, option)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise UserError(f"{out}: cannot write there ({e.strerror or e})") from None
    try:
        members = []
        for i, (m, a) in enumerate(zip(manifest["members"], arrays)):
            np.savez(tmp / f"member{i}.npz", **a)
            members.append({**m, "weights": f"member{i}.npz"})
        manifest = {"format": FORMAT, **manifest, "members": members}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if test_images is not None:
            ens = load_ensemble(tmp)
            manifest["test_accuracy_exported"] = accuracy(ens.log_probabilities(test_images), test_labels)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.chmod(0o777 & ~process_umask())  # mkdtemp's folder is private; the export is an ordinary folder
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest
