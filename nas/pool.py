"""Ensembles recombined from every member a search trained ("the member pool"), without training.

A search trains each member for the ensemble it was sampled in, but every trained member's
validation logits stay in the run's member cache. Any k of them form an ensemble whose
geometric-mean accuracy and maximum member latency cost no training to know, so the pool's
Pareto front per size is at least as good as the searched one (the searched ensembles are among
its candidates) and often better: the searched samples of a size are a few dozen draws, the pool
offers C(N, k) combinations. This is ensemble selection from a library of trained models
(Caruana et al. 2004; for architectures, Neural Ensemble Search, Zaidi et al. 2021) applied to
the paper's setting, latency front included.

Candidates per size k: every k-subset of distinct members while there are at most ``limit`` of
them; beyond that a beam: the (k-1)-member ensembles on their front or among the ``beam`` most
accurate, each extended by every other member. The beam is a heuristic and is reported as such;
on three synthetic 60-member pools (2,000 images, members 50-85% accurate) its triple front equalled
the exhaustive one point for point from about 3,400 of the 34,220 triples. A synthetic 180-member
pool on 5,000 images (a search of 30 samples per size trains up to 180) took 4.4 s in all on the
2-core CPU: 16,110 pairs exhaustively, 11,899 triples by the beam.

Every candidate is scored on the same validation images it is chosen on, among many more
candidates than a search samples, so a pool ensemble's validation accuracy is an optimistic
estimate of its accuracy on new images; ``nas retrain RUN --pool`` measures its test accuracy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from nas.config import RewardConfig
from nas.ensemble import evaluate_ensemble, log_softmax
from nas.pareto import pareto_front
from nas.reward import mnas_reward
from nas.store import RunDir, member_seed
from search_space.errors import UserError
from search_space.space import network_id
from search_space.spec import from_dict as spec_from_dict

DEFAULT_LIMIT = 20_000  # candidates scored exhaustively per size: C(50, 3) = 19,600
DEFAULT_BEAM = 64


@dataclasses.dataclass(frozen=True)
class PoolMember:
    """One trained member as its records describe it (``key``: its member-cache entry)."""

    key: str
    id: str
    seed: int
    spec: dict[str, Any]
    latency_ms: float
    multiply_adds: int
    params: int
    val_accuracy: float


def distinct_members(records: Iterable[dict[str, Any]], search_seed: int) -> list[PoolMember]:
    """The successful members of ``records``, one per network and seed in order of first use: one
    network trained with one seed is one member even where older records hold it under two ids
    (``network_id``), so no pool ensemble pairs a network with itself. ``search_seed``: the run's,
    for records from before members carried their seed (``member_seed``)."""
    members: dict[tuple[str, int], PoolMember] = {}
    for r in records:
        for pos, m in enumerate(r.get("members", [])):
            if m.get("status") != "ok" or not m.get("key"):
                continue
            seed = member_seed(m, search_seed, pos)
            trained = (network_id(spec_from_dict(m["spec"])), seed)  # the run's split and recipe are fixed
            if trained not in members:
                members[trained] = PoolMember(m["key"], m["id"], seed, m["spec"], float(m["latency_ms"]),
                                              int(m["multiply_adds"]), int(m["params"]), float(m["val_accuracy"]))
    return list(members.values())


def member_pool(run: RunDir, records: list[dict[str, Any]] | None = None) -> tuple[list[PoolMember], np.ndarray]:
    """The distinct successful members of the run's ``records`` (read when not given;
    ``distinct_members``) and their validation log-probabilities, float32 (members, images,
    classes). Members whose cache entry is missing or damaged are left out."""
    members = distinct_members(run.records() if records is None else records,
                               int(run.read_search_config().get("seed", 0)))
    # Filled in place, not stacked from a list: a list and its stack would hold every member twice
    # (at ImageNet's 50,000 held-out images and 1,000 classes, 200 MB a member).
    kept: list[PoolMember] = []
    log_probs: np.ndarray | None = None
    for m in members:
        cached = run.load_member(m.key)
        if cached is not None and cached[1] is not None:
            lp = log_softmax(np.asarray(cached[1], np.float32))
            if log_probs is None:
                log_probs = np.empty((len(members), *lp.shape), np.float32)
            log_probs[len(kept)] = lp
            kept.append(m)
    if log_probs is None:
        raise UserError(f"{run.path}: no trained member with cached validation logits")
    return kept, log_probs[:len(kept)]


def _checked_pool(run: RunDir, records: list[dict[str, Any]], labels: np.ndarray
                  ) -> tuple[list[PoolMember], np.ndarray, np.ndarray]:
    """``member_pool`` and the validation ``labels`` as an array, checked to cover the same images."""
    members, log_probs = member_pool(run, records)
    labels = np.asarray(labels)
    if log_probs.shape[1] != len(labels):
        raise UserError(f"{run.path}: cached logits cover {log_probs.shape[1]} images, the validation split "
                        f"{len(labels)}: the data set changed since the search")
    return members, log_probs, labels


def subset_accuracies(log_probs: np.ndarray, labels: np.ndarray, subsets: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Geometric-mean accuracy of each row of ``subsets`` (member indices): the argmax of the summed
    log-probabilities, which is the argmax of their renormalized mean.

    Images on which every pool member predicts the same class are decided for every subset (if each
    member's log-probability of class c is its largest, so is their sum's), so only the others are
    summed."""
    preds = log_probs.argmax(-1)
    unanimous = (preds == preds[0]).all(0)
    decided_right = int((unanimous & (preds[0] == labels)).sum())
    contested, contested_labels = np.ascontiguousarray(log_probs[:, ~unanimous]), labels[~unanimous]
    out = np.empty(len(subsets))
    for start in range(0, len(subsets), chunk):
        part = subsets[start:start + chunk]
        summed = contested[part[:, 0]]
        for j in range(1, part.shape[1]):
            summed += contested[part[:, j]]
        out[start:start + chunk] = (decided_right + (summed.argmax(-1) == contested_labels).sum(-1)) / len(labels)
    return out


def _front_rows(subsets: np.ndarray, accuracy: np.ndarray, max_latency: np.ndarray) -> np.ndarray:
    """Indices of the candidates on the (accuracy up, max latency down) front."""
    df = pd.DataFrame({"status": "ok", "accuracy": accuracy, "latency_max_ms": max_latency})
    return pareto_front(df).index.to_numpy()


@dataclasses.dataclass(frozen=True)
class SizeSearch:
    """One size's candidates, their accuracies and how they were chosen."""

    size: int
    subsets: np.ndarray  # (candidates, size) member indices, each row ascending
    accuracy: np.ndarray
    method: str  # "exhaustive" or "beam"


def search_sizes(log_probs: np.ndarray, labels: np.ndarray, latency_ms: np.ndarray, sizes: Iterable[int],
                 limit: int = DEFAULT_LIMIT, beam: int = DEFAULT_BEAM,
                 progress: Callable[[str], None] | None = None) -> dict[int, SizeSearch]:
    """Score the candidates of each size in ``sizes``, and of the sizes below a beam's (a beam extends
    the size below it); a size scored exhaustively needs none below it."""
    n = len(log_probs)
    wanted = sorted(set(sizes))
    needed = set(wanted)
    for k in range(max(wanted), 1, -1):
        if k in needed and math.comb(n, k) > limit:
            needed.add(k - 1)
    found: dict[int, SizeSearch] = {}
    for k in range(1, max(wanted) + 1):
        if k > n:
            break
        if k not in needed:
            continue
        if math.comb(n, k) <= limit:
            subsets = np.array(list(itertools.combinations(range(n), k)), np.int64).reshape(-1, k)
            method = "exhaustive"
        else:
            below = found[k - 1]
            lat = latency_ms[below.subsets].max(1)
            parents = set(_front_rows(below.subsets, below.accuracy, lat)) | set(np.argsort(-below.accuracy)[:beam])
            children = {tuple(sorted((*below.subsets[p], m))) for p in parents for m in range(n) if m not in below.subsets[p]}
            subsets = np.array(sorted(children), np.int64)
            method = "beam"
        if progress is not None:
            progress(f"size {k}: scoring {len(subsets)} candidates ({method})")
        found[k] = SizeSearch(k, subsets, subset_accuracies(log_probs, labels, subsets), method)
    return {k: found[k] for k in wanted if k in found}


def ensemble_key(keys: Iterable[str]) -> str:
    """An id for a pool ensemble: the sha256 of its sorted member-cache keys."""
    return hashlib.sha256("+".join(sorted(keys)).encode()).hexdigest()


def pool_fronts(run: RunDir, labels: np.ndarray, sizes: Iterable[int], reward: RewardConfig = RewardConfig(),
                limit: int = DEFAULT_LIMIT, beam: int = DEFAULT_BEAM, progress: Callable[[str], None] | None = None,
                records: list[dict[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pool's front per size (one row per front ensemble, with its full metrics, its ``reward``
    as the search would have rewarded it, and its members) and a summary per size next to the
    searched front; ``records``: the run's, read when not given."""
    all_records = run.records() if records is None else records
    members, log_probs, labels = _checked_pool(run, all_records, labels)
    latency = np.array([m.latency_ms for m in members])
    searched_sets = {}
    records = [r for r in all_records if r.get("status") == "ok"]
    for r in records:
        searched_sets.setdefault(frozenset(m["key"] for m in r["members"]), r["sample"])
    sizes = sorted(set(sizes))
    if sizes[-1] > len(members):
        raise UserError(f"{run.path}: {len(members)} trained members make no ensemble of size "
                        f"{', '.join(str(k) for k in sizes if k > len(members))}")
    by_size = search_sizes(log_probs, labels, latency, sizes, limit, beam, progress)
    rows, summary = [], []
    for k, found in by_size.items():
        max_lat = latency[found.subsets].max(1)
        front = _front_rows(found.subsets, found.accuracy, max_lat)
        for i in front:
            chosen = [members[j] for j in found.subsets[i]]
            metrics = evaluate_ensemble([log_probs[j] for j in found.subsets[i]], labels)
            keys = [m.key for m in chosen]
            rows.append({
                "size": k, "accuracy": metrics.accuracy, "latency_max_ms": float(max_lat[i]),
                "latency_sum_ms": float(sum(m.latency_ms for m in chosen)),
                "reward": mnas_reward(metrics.accuracy, float(max_lat[i]), reward.target_ms, reward.alpha, reward.beta),
                "flops": 2 * sum(m.multiply_adds for m in chosen), "params": sum(m.params for m in chosen),
                "accuracy_arithmetic": metrics.accuracy_arithmetic, "nll": metrics.nll, "ece": metrics.ece,
                "disagreement": metrics.disagreement, "best_member_accuracy": metrics.best_member_accuracy,
                "searched_sample": searched_sets.get(frozenset(keys)), "ensemble_id": ensemble_key(keys),
                "member_keys": " ".join(keys), "members": [dataclasses.asdict(m) for m in chosen]})
        searched = [r["accuracy"] for r in records if r["size"] == k]
        this = [r for r in rows if r["size"] == k]
        best = max(this, key=lambda r: (r["accuracy"], -r["latency_max_ms"]))
        summary.append({"size": k, "pool_members": len(members), "candidates": len(found.subsets),
                        "method": found.method, "searched_samples": len(searched),
                        "searched_best": max(searched) if searched else None, "pool_best": best["accuracy"],
                        "pool_best_latency_ms": best["latency_max_ms"], "front": len(this),
                        "front_unsampled": sum(r["searched_sample"] is None for r in this)})
    front = pd.DataFrame(rows)
    front["searched_sample"] = front["searched_sample"].astype("Int64")  # missing where no search sampled it
    return front, pd.DataFrame(summary)


def halving(images: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """Halving ``split`` (its seed) of ``images`` images: (the half a pick is chosen on, the half it
    is scored on), each sorted. One rule for every held-out check (`nas pool --holdout`, `nas pool
    --retrained` with one setting or several), so that their halvings are the same images."""
    order = np.random.default_rng(split).permutation(images)
    return np.sort(order[: images // 2]), np.sort(order[images // 2:])


def holdout_check(run: RunDir, labels: np.ndarray, sizes: Iterable[int], splits: int = 10,
                  limit: int = DEFAULT_LIMIT, beam: int = DEFAULT_BEAM,
                  records: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """How much of the pool's lead over the search survives images it was not chosen on.

    For each of ``splits`` seeded random halvings of the validation images, the pool's candidates
    are scored on the first half only, and so are the searched ensembles; per size, the most accurate
    of each on that half (ties: the faster) is then scored on the second half, which neither choice
    saw. Also the pool's most accurate ensemble on the first half within the searched pick's max
    latency, for a comparison at no higher latency. One row per split and size: each pick's accuracy
    on both halves and its max latency; ``optimism`` = first-half minus second-half accuracy of the
    pool's pick."""
    all_records = run.records() if records is None else records
    members, log_probs, labels = _checked_pool(run, all_records, labels)
    latency = np.array([m.latency_ms for m in members])
    index = {m.key: i for i, m in enumerate(members)}
    searched_by_size: dict[int, list[list[int]]] = {}
    for r in all_records:
        if r.get("status") == "ok" and all(m["key"] in index for m in r["members"]):
            searched_by_size.setdefault(r["size"], []).append([index[m["key"]] for m in r["members"]])
    rows = []
    for split in range(splits):
        choose, score = halving(len(labels), split)

        def accuracy(subset: Iterable[int], images: np.ndarray) -> float:
            return float(subset_accuracies(log_probs[:, images], labels[images], np.array([sorted(subset)]))[0])

        for k, found in search_sizes(log_probs[:, choose], labels[choose], latency, sizes, limit, beam).items():
            max_lat = latency[found.subsets].max(1)
            pick = int(np.lexsort((max_lat, -found.accuracy))[0])
            row: dict[str, Any] = {"split": split, "size": k, "choose_images": len(choose), "score_images": len(score),
                                   "candidates": len(found.subsets), "method": found.method,
                                   "pool_choose_accuracy": float(found.accuracy[pick]),
                                   "pool_score_accuracy": accuracy(found.subsets[pick], score),
                                   "pool_latency_max_ms": float(max_lat[pick])}
            row["optimism"] = row["pool_choose_accuracy"] - row["pool_score_accuracy"]
            searched = searched_by_size.get(k, [])
            if searched:
                best = min(((accuracy(s, choose), float(latency[s].max()), s) for s in searched),
                           key=lambda c: (-c[0], c[1]))
                row.update({"searched_choose_accuracy": best[0], "searched_score_accuracy": accuracy(best[2], score),
                            "searched_latency_max_ms": best[1]})
                within = np.flatnonzero(max_lat <= best[1])  # empty only where a beam left every such candidate out
                if len(within):
                    same = int(within[np.lexsort((max_lat[within], -found.accuracy[within]))[0]])
                    row.update({"pool_within_score_accuracy": accuracy(found.subsets[same], score),
                                "pool_within_latency_max_ms": float(max_lat[same])})
            rows.append(row)
    return pd.DataFrame(rows)


def holdout_summary(checks: pd.DataFrame) -> pd.DataFrame:
    """``holdout_check``'s rows averaged per size over the splits: held-out accuracy of the pool's
    pick, the searched pick and the pool's pick within the searched pick's latency, the mean
    differences to the searched pick (and their standard deviation over splits), and each pick's
    optimism (its accuracy on the half it was chosen on minus the held-out half's)."""
    out = []
    for k, d in checks.groupby("size", sort=True):
        row = {"size": int(k), "splits": int(len(d)), "pool_score_accuracy": float(d["pool_score_accuracy"].mean()),
               "pool_optimism": float(d["optimism"].mean()), "pool_latency_max_ms": float(d["pool_latency_max_ms"].median())}
        if "searched_score_accuracy" in d and d["searched_score_accuracy"].notna().any():
            lead = d["pool_score_accuracy"] - d["searched_score_accuracy"]
            row.update({"searched_score_accuracy": float(d["searched_score_accuracy"].mean()),
                        "searched_latency_max_ms": float(d["searched_latency_max_ms"].median()),
                        "pool_lead": float(lead.mean()), "pool_lead_std": float(lead.std(ddof=1)) if len(d) > 1 else None,
                        "searched_optimism": float((d["searched_choose_accuracy"] - d["searched_score_accuracy"]).mean()),
                        "pool_within_score_accuracy": None, "pool_within_lead": None})
            within = d.get("pool_within_score_accuracy")  # absent where a beam left no candidate that fast
            if within is not None and within.notna().any():
                row.update({"pool_within_score_accuracy": float(within.mean()),
                            "pool_within_lead": float((within - d["searched_score_accuracy"]).mean())})
        out.append(row)
    return pd.DataFrame(out)
