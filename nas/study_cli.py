"""`nas study KIND --run-dir D`: run, resume or extend a scaling study, then write its CSVs and plot."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from nas.config import apply_overrides, config_batch_note, from_dict, load_config, load_config_dataset
from nas.store import RunDir
from nas.study import StudyConfig, run_study, study_split
from search_space.errors import UserError

NAMED_STUDIES = {"wrn": "experiments.study_wrn", "efficientnet": "experiments.study_efficientnet",
                 "efficientnet-cifar": "experiments.study_efficientnet_cifar",
                 "mobilenetv2-cifar": "experiments.study_mobilenetv2_cifar"}


def study_config(kind: str) -> StudyConfig:
    """A named study's config (experiments/study_*.py) or a config file's."""
    if kind in NAMED_STUDIES:
        return importlib.import_module(NAMED_STUDIES[kind]).get_config()
    if kind.endswith(".py"):
        return load_config(kind, StudyConfig)
    raise UserError(f"study: unknown study {kind!r}; use {', '.join(NAMED_STUDIES)} or a config file (.py)")


def run_study_cmd(args: argparse.Namespace) -> int:
    from nas.cli import check_backend, evaluator_from_args

    run = RunDir(args.run_dir)
    base = from_dict(run.read_study_config(), StudyConfig) if args.resume else study_config(args.study)
    config = apply_overrides(base, args.set or [])  # resumed, e.g. members=12 extends a study
    # Loaded and split before the run directory is written, so a missing data set or a split it
    # cannot give (train_examples=70000 of 60,000 images) leaves nothing behind, and a resumed
    # study's config is not rewritten with it.
    dataset = load_config_dataset(config)
    study_split(config, dataset)
    check_backend(args, config.trainer.compile_unit)
    evaluator = evaluator_from_args(args)  # checked before the run directory is written
    try:
        if not args.resume:
            run.create(config.to_dict())
        with run.exclusive("study"):  # one study writes a run at a time
            if args.resume:
                run.write_config(config.to_dict())  # an extended study (e.g. members=12) keeps its new size
            run.append_launch(getattr(args, "argv", []), args.resume)
            note = config_batch_note(base, args.set or [])
            if note:
                print(note, file=sys.stderr)
            out = run_study(run, config, dataset=dataset, max_minutes=args.max_minutes, train=not args.no_train,
                            evaluator=evaluator)
    finally:
        evaluator.close()
    if args.json:
        print(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}))
    else:
        trained = ", ".join(f"{a}: {k}" for a, k in out["trained"].items())
        print(f"study {run.path}: members {trained}; points {out['points']}; figure {out['figure']}")
    return 0
