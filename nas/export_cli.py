"""`nas export RUN` (a retrained ensemble as a folder of its own) and `nas predict DIR IMAGE...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import from_dict, load_config_dataset
from nas.retrained import (member_retraining, recipe_parts, retrain_recipe, retrain_seed, row_setting, setting_label,
                           setting_slug, slug_setting)
from nas.store import RunDir, member_seed
from nas.words import counted
from search_space.errors import UserError


def retrained_rows(run: RunDir) -> list[dict[str, Any]]:
    rows = run.retrains()
    if not rows:
        raise UserError(f"{run.path}: nothing retrained yet (`nas retrain {run.path}` first)")
    return rows


def choose_retrained(rows: list[dict[str, Any]], ensemble: str | None, size: int | None, sample: int | None,
                     setting: str | None) -> dict[str, Any]:
    """The retrained ensemble `nas export` writes: the one whose id starts with ``ensemble``, or the
    searched ``sample`` of ``size`` members, or else the most accurate on the test set (of ``size``
    members where given); in retraining ``setting`` (a slug, e.g. fast4-n10000), which may be left
    out when the candidates were retrained in one setting only."""
    slug = lambda r: setting_slug(*row_setting(r))  # noqa: E731
    cands = rows
    if ensemble is not None:
        cands = [r for r in cands if r["ensemble_id"].startswith(ensemble)]
    if size is not None:
        cands = [r for r in cands if int(r["size"]) == size]
    if sample is not None:
        cands = [r for r in cands if r["sample"] == sample]
    what = ("ensemble" + (f" {ensemble}" if ensemble else "") + (f" of size {size}" if size else "")
            + (f", sample #{sample}" if sample is not None else ""))
    if not cands:
        order = lambda r: (int(r["size"]), not isinstance(r["sample"], int), str(r["sample"]).zfill(9))  # noqa: E731
        have = ", ".join(dict.fromkeys(f"size {r['size']} #{r['sample']}" for r in sorted(rows, key=order)))
        raise UserError(f"no retrained {what} (retrained: {have})")
    settings = sorted({slug(r) for r in cands})
    if setting is not None:
        if setting not in settings:
            raise UserError(f"--setting {setting}: no retrained {what} in that setting (settings: {', '.join(settings)})")
        cands = [r for r in cands if slug(r) == setting]
    elif len(settings) > 1:
        raise UserError(f"the chosen {what} was retrained in several settings; choose one with --setting "
                        f"({', '.join(settings)})")
    ids = {r["ensemble_id"] for r in cands}
    if ensemble is not None and len(ids) > 1:
        raise UserError(f"--ensemble {ensemble}: matches {len(ids)} retrained ensembles; give more of its id")
    return max(cands, key=lambda r: (r["test_accuracy"], -float(r.get("latency_max_ms") or 0.0)))


def row_members(row: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members of a retrained ensemble: as its row names them, or, for a row written before
    rows named their members (the committed CPU search's first retrainings), as the search's record
    of that ensemble does."""
    members = row.get("members") or next((r["members"] for r in records
                                          if r.get("ensemble_id") == row["ensemble_id"] and r.get("members")), None)
    if not members:
        raise UserError(f"size {row['size']} #{row['sample']}: its retraining row names no members and no "
                        "record of the search has its ensemble; choose another with --size, --sample or --ensemble")
    return members


def member_specs(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every member the run's records name: id -> its spec (as a dict)."""
    return {m["id"]: m["spec"] for r in records for m in r.get("members", []) if "spec" in m}


def chosen_members(records: list[dict[str, Any]], wanted: list[str], search_seed: int) -> list[dict[str, Any]]:
    """The members `nas export --members` names, each "ID" or "ID@SEED" (an id's first characters,
    as `nas pool --retrained` writes them), as the run's records hold them, with their seed. Raises
    UserError for one that matches no member, or several."""
    known: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        for pos, m in enumerate(r.get("members", [])):
            if m.get("status", "ok") == "ok" and "spec" in m:
                seed = member_seed(m, search_seed, pos)
                known.setdefault((m["id"], seed), {**m, "seed": seed})
    out = []
    for w in wanted:
        prefix, _, seed = w.partition("@")
        if not prefix or (seed and not seed.isdigit()):
            raise UserError(f"--members {w}: not ID or ID@SEED")
        found = [m for (i, s), m in known.items() if i.startswith(prefix) and (not seed or s == int(seed))]
        if not found:
            raise UserError(f"--members {w}: no member of the run's records matches")
        if len(found) > 1:
            raise UserError(f"--members {w}: matches {len(found)} members ("
                            + ", ".join(f"{m['id'][:12]}@{m['seed']}" for m in found[:6]) + "); give more of it")
        out.append(found[0])
    return out


def run_export_cmd(args: argparse.Namespace) -> int:
    from nas.ensemble import evaluate_ensemble
    from nas.export import check_out_folder, data_manifest, member_arrays, read_back_note, write_ensemble
    from nas.pool import ensemble_key
    from nas.pool_budget import choose_setting
    from search_space.spec import from_dict as spec_from_dict
    from trainer.data import with_training_subset
    from trainer.retrain import restore_retrained, saved_test_logits

    run = RunDir(args.run)
    cfg = from_dict(run.read_search_config())
    records = run.records()
    if args.members:
        if args.ensemble or args.size or args.sample is not None:
            raise UserError("--members: names the ensemble by itself; drop --ensemble, --size and --sample")
        slug = choose_setting(run, args.setting, "--setting")
        setting = slug_setting(slug)
        chosen = chosen_members(records, [w for w in args.members.split(",") if w], cfg.seed)
        if len({(m["id"], m["seed"]) for m in chosen}) < len(chosen):
            raise UserError(f"--members {args.members}: names a member twice")
        row: dict[str, Any] = {"size": len(chosen), "sample": "members",
                               "ensemble_id": ensemble_key(f"{m['id']}@{m['seed']}" for m in chosen),
                               "latency_max_ms": max(float(m["latency_ms"]) for m in chosen)}
    else:
        row = choose_retrained(retrained_rows(run), args.ensemble, args.size, args.sample, args.setting)
        setting = row_setting(row)
        slug = setting_slug(*setting)
        chosen = row_members(row, records)
    recipe_name, items, reseed = recipe_parts(setting[0])  # the recipe, its --set items, its --reseed
    epochs, subset = setting[1], setting[2] or None
    recipe = retrain_recipe(setting[0], epochs)  # with what `nas retrain --set` changed in it
    specs = member_specs(records)
    out = Path(args.out)
    check_out_folder(out)  # before any loading or compiling (write_ensemble checks again when it writes)
    ds = load_config_dataset(cfg)
    # the images the members were retrained on, over which their batch-norm statistics are recomputed
    train = with_training_subset(ds, cfg.seed, int(subset) if subset else None)
    restorations = []
    for pos, m in enumerate(chosen):
        searched = int(m["seed"]) if m.get("seed") is not None else cfg.seed + pos
        seed = retrain_seed(searched, setting[0])  # moved by `nas retrain --reseed`
        if m["id"] not in specs:
            raise UserError(f"member {m['id'][:12]}: not in {run.path}/records.jsonl")
        restorations.append((m, seed, *member_retraining(run.path, spec_from_dict(specs[m["id"]]), m["id"], seed, slug)))
    if "test_accuracy" not in row:  # members chosen by hand: the ensemble of their saved test logits
        logits = [saved_test_logits(ckpt, epochs, ds) for _, _, _, ckpt in restorations]
        missing = [f"{m['id'][:12]}@{seed}" for (m, seed, _, _), x in zip(restorations, logits) if x is None]
        if missing:
            raise UserError(f"--members: {', '.join(missing)} not retrained to the end in setting {slug} "
                            f"(`nas retrain {run.path}` first)")
        row["test_member_accuracies"] = [float((x.argmax(-1) == ds.y_test).mean()) for x in logits]
        row["test_accuracy"] = evaluate_ensemble(logits, ds.y_test).accuracy
    print(f"exporting size {row['size']} " + (f"#{row['sample']} " if row["sample"] != "members" else "")
          + f"({row['ensemble_id'][:12]}, {setting_label(*setting)}): test accuracy {row['test_accuracy']:.4f}",
          file=sys.stderr)
    members, arrays = [], []
    for pos, (m, seed, spec, ckpt) in enumerate(restorations):
        model = restore_retrained(spec, train, recipe, seed, ckpt)
        arrays.append(member_arrays(model))
        test_acc = row["test_member_accuracies"][pos] if pos < len(row.get("test_member_accuracies", [])) else None
        members.append({"id": spec.id, "seed": seed, "resolution": spec.resolution, "spec": spec.to_dict(),
                        "latency_ms": m.get("latency_ms"), "test_accuracy": test_acc})
        print(f"  member {pos + 1}/{len(chosen)} {m['id'][:12]} seed {seed} {spec.resolution}px: restored "
              f"from {ckpt}", file=sys.stderr, flush=True)
    retrain = {"recipe": recipe_name, "set": items, "epochs": epochs, "train_examples": subset, "setting": slug,
               **({"reseed": reseed} if reseed else {})}
    manifest = {
        **data_manifest(ds, train.x_train, recipe.tta_flip), "members": members, "size": int(row["size"]),
        "sample": row["sample"], "ensemble_id": row["ensemble_id"],
        "latency_max_ms": row.get("latency_max_ms"), "retrain": retrain,
        "source_run": str(run.path.resolve()), "test_accuracy": row["test_accuracy"],
    }
    manifest = write_ensemble(out, manifest, arrays, ds.x_test, ds.y_test)
    got, want = manifest["test_accuracy_exported"], row["test_accuracy"]
    print(f"wrote {out}: {counted(len(members), 'member')}; its weights read back give test "
          f"accuracy {got:.4f} (retraining measured {want:.4f})")
    note = read_back_note(out, got, want)
    if note:
        print(note, file=sys.stderr)
    return 0


def read_images(paths: list[str], size: int, channels: int) -> np.ndarray:
    """Image files (anything Pillow reads) as uint8 (N, size, size, channels): converted to grayscale
    or RGB as the data set is, and where they are not ``size`` px square, cropped to their central
    square and resized (bicubic), as a data set loaded with an ``image_size`` was prepared."""
    from PIL import Image, UnidentifiedImageError

    from trainer.data import center_square

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("L" if channels == 1 else "RGB"), np.uint8)
        except FileNotFoundError:
            raise UserError(f"{p}: no such file") from None
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{p}: not an image Pillow can read ({e})") from None
        out.append(center_square(a[..., None] if channels == 1 else a, size))
    return np.stack(out)


def image_paths(args: list[str]) -> list[str]:
    """The image files `nas predict` was given: each file as it is, and for each folder its .jpg,
    .jpeg and .png files, in it and below, in sorted order. A folder without any is one error."""
    from trainer.data import IMAGE_SUFFIXES

    paths = []
    for a in args:
        if not os.path.isdir(a):
            paths.append(a)
            continue
        found = sorted(str(p) for p in Path(a).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise UserError(f"{a}: a folder without image files ({', '.join(IMAGE_SUFFIXES)}) in it or below")
        paths += found
    return paths


def run_predict_cmd(args: argparse.Namespace) -> int:
    from nas.export import enable_prediction_cache, load_ensemble

    ens = load_ensemble(args.ensemble)
    paths = image_paths(args.images)
    images = read_images(paths, ens.image_size, ens.channels)
    enable_prediction_cache()  # once the input is known good (a test's bad input changes no jax config)
    probs = ens.probabilities(images)
    names = ens.class_names
    k = min(args.top, len(names))
    for path, p in zip(paths, probs):
        top = np.argsort(-p)[:k]
        if args.json:
            print(json.dumps({"image": path, "top": [{"class": names[i], "index": int(i),
                                                      "probability": float(p[i])} for i in top]}))
        else:
            print(f"{path}: " + ", ".join(f"{names[i]} {100 * p[i]:.1f}%" for i in top))
    return 0
