"""What retraining says about a search: the proxy's accuracy against accuracy after retraining.

`nas retrain` appends one row per retrained ensemble to ``RUN/retrain.jsonl`` (proxy validation
accuracy, test accuracy after the retraining recipe, each member's test accuracy). A search trusts
its proxy (a few epochs, a held-out slice of the training split) to rank architectures as longer
training would; this module measures whether it did, per retraining setting (recipe, epochs,
training subset):

- ``rank_agreement``: Spearman and Kendall (tau-b) correlation between proxy and test accuracy,
  over ensembles (all sizes together and per size) and over distinct members;
- ``proxy_picks``: per size, the proxy's most accurate retrained ensemble against the most
  accurate after retraining (the regret of trusting the proxy among what was retrained);
- ``retrained_fronts``: the Pareto fronts per size (test accuracy up, max member latency down), the
  paper's Figure 3 after retraining;
- ``against_singles``: for each retrained ensemble of two or more members, the most accurate
  retrained single model at no higher max latency (a one-member ensemble, or any retrained member,
  its own included), i.e. whether the paper's claim (an ensemble of smaller models beats a single
  model at the same cost) survives retraining.

Each comparison is only over what was retrained: ``nas retrain RUN --pareto`` retrains every front
point, the usual input.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from nas.pareto import pareto_front
from nas.words import counted
from search_space.errors import UserError
from search_space.space import canonical_network, network_id
from search_space.spec import AnySpec, spec_id
from search_space.spec import from_dict as spec_from_dict
from trainer.config import TrainConfig
from trainer.checkpoints import checkpoint_steps

SETTING = ["recipe", "epochs", "train_examples"]
# `nas retrain --reseed K` (K >= 1) retrains each member with its searched seed + K * RESEED_STEP, in
# a setting of its own ("reseed=K" after the recipe's --set items): how much of a retrained accuracy,
# or of an ensemble's lead, is the training seed's. The step keeps a reseeded member's seed clear of
# the searched seeds (search seed + member position, nas.search.member_jobs).
RESEED_STEP = 1000
COLUMNS = ["recipe", "epochs", "train_examples", "size", "sample", "source", "ensemble_id", "proxy_val_accuracy",
           "test_accuracy", "latency_max_ms", "best_member_test_accuracy", "weakest_member_test_accuracy"]


def row_setting(row: dict[str, Any]) -> tuple[str, int, int]:
    """A ``retrain.jsonl`` row's setting: (recipe, epochs, train_examples), 0 images for the whole
    training split; the recipe with the row's ``set`` items (``nas retrain --set``) as
    ``recipe_label`` writes it."""
    items = [*(row.get("set") or ()), *reseed_items(int(row.get("reseed") or 0))]
    return recipe_label(row["recipe"], items), int(row["epochs"]), int(row.get("train_examples") or 0)


def reseed_items(reseed: int) -> list[str]:
    """The recipe-label item of `nas retrain --reseed K`: ["reseed=K"], none for K = 0."""
    return [f"reseed={reseed}"] if reseed else []


def recipe_parts(recipe: str) -> tuple[str, list[str], int]:
    """A setting's ``recipe_label`` taken apart: the recipe's name, the trainer settings `nas retrain
    --set` changed in it, and K of `--reseed K` (0 where not reseeded; the seed is no trainer
    setting). Raises UserError for a reseed that is not a positive whole number."""
    name, items = split_recipe_label(recipe)
    found = [i.partition("=")[2] for i in items if i.startswith("reseed=")]
    if found and not (found[0].isdigit() and int(found[0]) > 0):
        raise UserError(f"{recipe}: reseed={found[0]} is not a positive whole number")
    return name, [i for i in items if not i.startswith("reseed=")], int(found[0]) if found else 0


def setting_reseed(recipe: str) -> int:
    """K of a setting retrained with `--reseed K` (its ``recipe_label``), else 0."""
    return recipe_parts(recipe)[2]


def retrain_seed(searched_seed: int, recipe: str) -> int:
    """The seed a member searched with ``searched_seed`` is retrained with in a setting (its
    ``recipe_label``): that seed, or + K * RESEED_STEP under `--reseed K`."""
    return searched_seed + RESEED_STEP * setting_reseed(recipe)


def recipe_label(recipe: str, items: Iterable[str]) -> str:
    """A recipe with what ``--set`` changed in it: "fast", or "fast+label_smoothing=0.0+zero_init_residual=true"."""
    return "+".join([recipe, *items])


def split_recipe_label(label: str) -> tuple[str, list[str]]:
    """``recipe_label``'s recipe name and items back from the label."""
    name, *items = label.split("+")
    return name, items


def changed_settings(recipe: TrainConfig, config: TrainConfig) -> list[str]:
    """What ``config`` changes in ``recipe`` (the named recipe at ``config``'s epochs, as
    ``retrain_recipe`` rebuilds it), as canonical ``KEY=VALUE`` items sorted by key, values as JSON
    and strings bare (``label_smoothing=0.0``, ``zero_init_residual=true``): the same change however
    spelt is the same retraining setting."""
    base, mine = recipe.to_dict(), config.to_dict()
    items = [f"{k}={mine[k] if isinstance(mine[k], str) else json.dumps(mine[k], separators=(',', ':'))}"
             for k in sorted(mine) if mine[k] != base[k]]
    for item in items:  # the items name checkpoint folders and are split on "+"
        if "+" in item or "/" in item:
            raise UserError(f"--set {item}: a retraining setting cannot hold '+' or '/'")
    return items


def row_source(row: dict[str, Any]) -> str:
    """"pool" for a row of `nas retrain --pool` (its sample is "pool"), else "searched"."""
    return "pool" if row["sample"] == "pool" else "searched"


def in_setting(df: pd.DataFrame, setting: tuple[str, int, int]) -> pd.DataFrame:
    """The rows of ``df`` retrained with ``setting`` (recipe, epochs, train_examples)."""
    recipe, epochs, train_examples = setting
    return df[(df["recipe"] == recipe) & (df["epochs"] == epochs) & (df["train_examples"] == train_examples)]


def retrain_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """``retrain.jsonl`` rows as a frame, one per retrained ensemble and setting (a setting retrained
    twice keeps its last row). ``source`` is "pool" for ensembles of `nas retrain --pool`, else
    "searched"; ``train_examples`` is 0 for the full training split."""
    out = {}
    for r in rows:
        setting = row_setting(r)
        members = r.get("test_member_accuracies") or [r["test_accuracy"]]
        out[(*setting, r["ensemble_id"])] = {
            "recipe": setting[0], "epochs": setting[1], "train_examples": setting[2], "size": int(r["size"]),
            "sample": r["sample"], "source": row_source(r),
            "ensemble_id": r["ensemble_id"], "proxy_val_accuracy": float(r["proxy_val_accuracy"]),
            "test_accuracy": float(r["test_accuracy"]), "latency_max_ms": float(r["latency_max_ms"]),
            "best_member_test_accuracy": float(max(members)), "weakest_member_test_accuracy": float(min(members))}
    return pd.DataFrame(list(out.values()), columns=COLUMNS)


MEMBER_COLUMNS = ["recipe", "epochs", "train_examples", "member", "seed", "proxy_val_accuracy", "test_accuracy",
                  "latency_ms", "size", "sample"]


def member_frame(rows: Iterable[dict[str, Any]], records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per distinct retrained member (id and seed) and setting: its proxy validation accuracy
    and Pixel-1 latency (from the search's records, or from the retrain row where `nas retrain`
    stored them), its test accuracy, and the ``size`` and ``sample`` of an ensemble it was retrained
    in (a one-member one where there is one). Each is a single model trained as the recipe says, so
    a member of a retrained pair is also a retrained single of its own latency. One network and seed
    recorded under two ids (records from before skips were decoded canonically) is one member."""
    records = list(records)
    by_ensemble = {r["ensemble_id"]: r["members"] for r in records if r.get("members")}
    network = {m["id"]: network_id(spec_from_dict(m["spec"])) for r in records for m in r.get("members", [])
               if m.get("spec")}
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        members = r.get("members") or by_ensemble.get(r["ensemble_id"], [])
        tests = r.get("test_member_accuracies") or []
        if len(members) != len(tests):  # a pool row from before rows named their members
            continue
        for m, test in zip(members, tests):
            if m.get("val_accuracy") is None:
                continue
            key = (*row_setting(r), network.get(m["id"], m["id"]), m.get("seed"))
            if key in out and out[key]["size"] <= int(r["size"]):
                continue
            latency = m.get("latency_ms")
            out[key] = {"recipe": key[0], "epochs": key[1], "train_examples": key[2], "member": m["id"],
                        "seed": m.get("seed"), "proxy_val_accuracy": float(m["val_accuracy"]),
                        "test_accuracy": float(test), "latency_ms": None if latency is None else float(latency),
                        "size": int(r["size"]), "sample": r["sample"]}
    return pd.DataFrame(list(out.values()), columns=MEMBER_COLUMNS).astype({"sample": object})


def setting_label(recipe: str, epochs: int, train_examples: int) -> str:
    """E.g. "fast, 4 epochs on 10,000 training images" (0 images: the whole training split), or with
    ``--set`` items "fast (label_smoothing=0.0), 4 epochs on the whole training split", or with
    ``--reseed 1`` "fast, 4 epochs on 10,000 training images, seeds + 1000"."""
    where = f"{train_examples:,} training images" if train_examples else "the whole training split"
    name, items, reseed = recipe_parts(recipe)
    changed = f" ({' '.join(items)})" if items else ""
    seeds = f", seeds + {RESEED_STEP * reseed}" if reseed else ""  # `nas retrain --reseed`
    return f"{name}{changed}, {counted(epochs, 'epoch')} on {where}{seeds}"


def retrain_dir(run_path: Path, member_id: str, seed: int, slug: str) -> Path:
    """A folder of `nas retrain`'s checkpoints and saved test logits, for one setting."""
    return run_path / "retrain" / f"{member_id[:16]}-seed{seed}-{slug}"


def member_retraining(run_path: Path, spec: AnySpec, member_id: str, seed: int, slug: str) -> tuple[AnySpec, Path]:
    """(the spec to retrain or restore, the folder of its checkpoints) for a member (``spec``,
    recorded as ``member_id``) in one setting: its network's canonical spec (``canonical_network``) in
    a folder named by that spec, so that members recorded under two ids for one network (records
    from before skips were decoded canonically, 2026-12-07) are retrained once; the spec as
    recorded in the folder of ``member_id`` where only that one exists (retrained before then; a
    folder holds the spec it was trained with, trainer/retrain.py)."""
    canonical = canonical_network(spec)
    folder = retrain_dir(run_path, spec_id(canonical), seed, slug)
    earlier = retrain_dir(run_path, member_id, seed, slug)
    return (spec, earlier) if not folder.exists() and earlier.exists() else (canonical, folder)


def setting_slug(recipe: str, epochs: int, train_examples: int) -> str:
    """A file-name form of a setting, as `nas retrain` names its checkpoints: "fast4-n10000", or with
    ``--set`` items "fast4+label_smoothing=0.0-n10000"."""
    name, items = split_recipe_label(recipe)
    return f"{name}{epochs}" + "".join(f"+{i}" for i in items) + (f"-n{train_examples}" if train_examples else "")


# setting_slug's form: recipe, epochs, "+key=value" items, "-n" training images (no '+' or '/' in items)
_SLUG = re.compile(r"(?P<recipe>[a-z]+)(?P<epochs>\d+)(?P<items>(?:\+[^+/]+?)*)(?:-n(?P<n>\d+))?")


def slug_options(slug: str) -> list[str] | None:
    """The `nas retrain` options that give setting ``slug`` (None if it is not one): "fast4-n10000"
    -> --recipe fast --epochs 4 --train-examples 10000."""
    m = _SLUG.fullmatch(slug)
    return None if m is None else _options(m)


def slug_setting(slug: str) -> tuple[str, int, int]:
    """``setting_slug`` undone: "fast4+label_smoothing=0.0-n10000" -> ("fast+label_smoothing=0.0", 4,
    10000), 0 images for the whole training split. Raises UserError for what is not a setting."""
    m = _SLUG.fullmatch(slug)
    if m is None:
        raise UserError(f"{slug}: not a retraining setting (e.g. fast4-n10000)")
    return recipe_label(m["recipe"], [x for x in m["items"].split("+") if x]), int(m["epochs"]), int(m["n"] or 0)


def _options(m: re.Match[str]) -> list[str]:
    items = [x for x in m["items"].split("+") if x]
    flags = [("--reseed", i.partition("=")[2]) if i.startswith("reseed=") else ("--set", i) for i in items]
    return (["--recipe", m["recipe"], "--epochs", m["epochs"]] + [a for flag in flags for a in flag]
            + (["--train-examples", m["n"]] if m["n"] else []))


def unfinished_retrainings(run_path: Path) -> list[dict[str, Any]]:
    """`nas retrain`'s members checkpointed mid-way (stopped by --max-minutes or a kill, or still
    training): per setting ``slug``, in folder order, its ``epochs``, the ``options`` that give it,
    and each such member's ``folder`` and the ``epoch`` of its last checkpoint. A member folder
    without a checkpoint (stopped in its first epochs) holds nothing to resume from and is left out."""
    root = run_path / "retrain"
    out: dict[str, dict[str, Any]] = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        steps = checkpoint_steps(folder)
        parts = folder.name.split("-", 2)  # "{member id}-seed{seed}-{slug}" (retrain_dir)
        m = _SLUG.fullmatch(parts[-1]) if len(parts) == 3 else None
        if not steps or m is None or max(steps) >= int(m["epochs"]):
            continue
        entry = out.setdefault(parts[2], {"slug": parts[2], "epochs": int(m["epochs"]), "options": _options(m),
                                          "members": []})
        entry["members"].append({"folder": folder.name, "epoch": max(steps)})
    return list(out.values())


def retrain_recipe(recipe: str, epochs: int) -> TrainConfig:
    """The trainer config of a setting's recipe (a ``recipe_label``) at ``epochs``: what `nas retrain`
    trained with, which `nas export` restores with."""
    from nas.config import with_trainer_settings
    from trainer.retrain import RECIPES, with_epochs

    name, items, _ = recipe_parts(recipe)  # the seed is no trainer setting
    if name not in RECIPES:
        raise UserError(f"retraining recipe {name!r}: not one of {', '.join(sorted(RECIPES))}")
    return with_trainer_settings(with_epochs(RECIPES[name], epochs), items)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their ranks)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Iterable[float], b: Iterable[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None for fewer than three pairs or
    a constant side, where it is undefined."""
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def kendall_tau_b(a: Iterable[float], b: Iterable[float]) -> float | None:
    """Kendall's tau-b (ties on either side discounted); None as for ``spearman``. Pairs agree when
    both orders go the same way: tau 0.5 means 75% of the orderable pairs agree."""
    x, y = np.asarray(list(a), float), np.asarray(list(b), float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    concordant_minus_discordant = float((dx * dy).sum())
    return concordant_minus_discordant / math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))


def rank_agreement(ensembles: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per setting: Spearman and Kendall correlation of proxy and test accuracy over its ensembles
    (``over`` "ensembles", ``size`` 0 for all sizes together, then each size) and over its distinct
    members (``over`` "members", ``size`` 1)."""
    rows = []

    def add(setting: tuple, over: str, size: int, d: pd.DataFrame) -> None:
        rows.append({**dict(zip(SETTING, setting)), "over": over, "size": size, "n": int(len(d)),
                     "spearman": spearman(d["proxy_val_accuracy"], d["test_accuracy"]),
                     "kendall": kendall_tau_b(d["proxy_val_accuracy"], d["test_accuracy"])})

    for setting, d in ensembles.groupby(SETTING, sort=True):
        add(setting, "ensembles", 0, d)
        for n, dn in d.groupby("size", sort=True):
            add(setting, "ensembles", int(n), dn)
        if members is not None and len(members):
            m = in_setting(members, setting)
            if len(m):
                add(setting, "members", 1, m)
    return pd.DataFrame(rows, columns=[*SETTING, "over", "size", "n", "spearman", "kendall"])


def proxy_picks(ensembles: pd.DataFrame) -> pd.DataFrame:
    """Per setting and size: the retrained ensemble the proxy ranked first (``pick``, its test
    accuracy) and the one most accurate after retraining (``best``), and ``regret``, the test
    accuracy lost by trusting the proxy (0 when it picked the best; ties: the first retrained)."""
    rows = []
    for (recipe, epochs, train_examples, size), d in ensembles.groupby([*SETTING, "size"], sort=True):
        pick = d.to_dict("records")[int(np.argmax(d["proxy_val_accuracy"].to_numpy()))]
        best = d.to_dict("records")[int(np.argmax(d["test_accuracy"].to_numpy()))]
        rows.append({"recipe": recipe, "epochs": epochs, "train_examples": train_examples, "size": int(size),
                     "n": int(len(d)), "pick_sample": pick["sample"], "pick_ensemble_id": pick["ensemble_id"],
                     "pick_test_accuracy": pick["test_accuracy"], "best_sample": best["sample"],
                     "best_ensemble_id": best["ensemble_id"], "best_test_accuracy": best["test_accuracy"],
                     "regret": best["test_accuracy"] - pick["test_accuracy"]})
    columns = [*SETTING, "size", "n", "pick_sample", "pick_ensemble_id", "pick_test_accuracy", "best_sample",
               "best_ensemble_id", "best_test_accuracy", "regret"]
    return pd.DataFrame(rows, columns=columns, dtype=object).astype(
        {"epochs": int, "train_examples": int, "size": int, "n": int, "pick_test_accuracy": float,
         "best_test_accuracy": float, "regret": float})


def agreement_scope(row: dict[str, Any]) -> str:
    """What a ``rank_agreement`` row ranks: "ensembles" (all sizes), "size N" or "members"."""
    if row["over"] == "members":
        return "members"
    return "ensembles" if row["size"] == 0 else f"size {row['size']}"


def _as_records(d: pd.DataFrame) -> pd.DataFrame:
    """A retrained frame shaped for ``pareto_front``: test accuracy as the accuracy."""
    return d.assign(accuracy=d["test_accuracy"], status="ok")


def retrained_fronts(ensembles: pd.DataFrame) -> pd.DataFrame:
    """Per setting and size, the retrained ensembles not beaten on both test accuracy and max latency
    (per size alone for a frame of one setting without its setting columns)."""
    keys = [c for c in [*SETTING, "size"] if c in ensembles.columns]
    parts = [pareto_front(_as_records(d)).drop(columns=["accuracy", "status"])
             for _, d in ensembles.groupby(keys, sort=True)]
    return pd.concat(parts) if parts else ensembles.iloc[0:0]


def against_singles(ensembles: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each retrained ensemble of two or more members next to the most accurate retrained single
    model of its setting at no higher max latency (``single_*`` None where there is none): the
    retrained one-member ensembles and, with ``members`` (``member_frame``), every retrained member
    of a larger ensemble as well, its own members included. ``single`` names it ("#7": the one-member
    sample 7; "in 2-member #18": a member of that sample); ``margin`` is the ensemble's test accuracy
    minus the single's."""
    ones = ensembles[ensembles["size"] == 1]
    singles = ones.assign(latency_ms=ones["latency_max_ms"], single=[f"#{s}" for s in ones["sample"]])
    if members is not None and len(members):
        part = members[(members["size"] > 1) & members["latency_ms"].notna()]
        part = part.assign(single=[f"in {n}-member #{s}" for n, s in zip(part["size"], part["sample"])])
        singles = pd.concat([singles[[*SETTING, "single", "test_accuracy", "latency_ms"]],
                             part[[*SETTING, "single", "test_accuracy", "latency_ms"]]], ignore_index=True)
    rows = []
    for setting, d in ensembles.groupby(SETTING, sort=True):
        mine = in_setting(singles, setting)
        for e in d[d["size"] > 1].sort_values(["size", "latency_max_ms"]).to_dict("records"):
            fit = mine[mine["latency_ms"] <= e["latency_max_ms"]]
            # a row as a dict: a row as a Series would turn integer sample numbers into floats
            best = None if fit.empty else fit.to_dict("records")[int(np.argmax(fit["test_accuracy"].to_numpy()))]
            rows.append({**dict(zip(SETTING, setting)), "size": int(e["size"]), "sample": e["sample"],
                         "ensemble_id": e["ensemble_id"], "test_accuracy": float(e["test_accuracy"]),
                         "latency_max_ms": float(e["latency_max_ms"]),
                         "single": None if best is None else best["single"],
                         "single_test_accuracy": None if best is None else float(best["test_accuracy"]),
                         "single_latency_ms": None if best is None else float(best["latency_ms"]),
                         "margin": None if best is None else float(e["test_accuracy"] - best["test_accuracy"])})
    # built as objects so that sample numbers stay ints beside "pool", then typed
    columns = [*SETTING, "size", "sample", "ensemble_id", "test_accuracy", "latency_max_ms", "single",
               "single_test_accuracy", "single_latency_ms", "margin"]
    return pd.DataFrame(rows, columns=columns, dtype=object).astype(
        {"epochs": int, "train_examples": int, "size": int, "test_accuracy": float, "latency_max_ms": float,
         "single_test_accuracy": float, "single_latency_ms": float, "margin": float})
