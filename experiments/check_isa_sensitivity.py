"""Does the CPU's instruction set move a search member's result? Retrain one member of a run, exactly
as the search trained it (its spec, seed, data split and training config), once per XLA CPU
instruction-set cap, each in a fresh process (``XLA_FLAGS=--xla_cpu_max_isa=ISA`` must precede
JAX's start), and print the validation accuracy next to the recorded one.

    python -m experiments.check_isa_sensitivity runs/demo --size 1 --sample 1 --isa native,AVX,SSE4_2

Measured on the 2-core dev machine (AMD EPYC, AVX2; 2026-12-02), the README demo's two one-member
samples (one epoch on 2,000 Fashion-MNIST images): sample 0 60.0% with AVX2 (as recorded) and 61.4%
with AVX; sample 1 25.9% with AVX2 (as recorded), 29.8% with AVX and 29.3% with SSE4_2. Each run
repeats bit for bit on its own; the summation order of another vector width is enough to move a
one-epoch member by several points, which is why records name the host CPU (``host_cpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ISAS = ("NATIVE", "AVX512", "AVX2", "AVX", "SSE4_2")  # NATIVE: no cap, the host's own, as the search ran


def _train_one(run: str, size: int, sample: int, position: int) -> None:
    """In the child process: train the member and print one JSON line."""
    from nas.config import from_dict, load_config_dataset
    from nas.search import search_split
    from nas.store import member_seed
    from nas.store import RunDir
    from search_space.spec import from_dict as spec_from_dict
    from trainer.train import prepare_member, run_member

    rd = RunDir(run)
    config = from_dict(rd.read_config())
    record = next(r for r in rd.records() if r["size"] == size and r["sample"] == sample)
    member = record["members"][position]
    ds = load_config_dataset(config)
    split = search_split(config, ds)
    result = run_member(prepare_member(spec_from_dict(member["spec"]), split, config.trainer,
                                       member_seed(member, config.seed, position)))
    print(json.dumps({"val_accuracy": result.val_accuracy, "recorded": member.get("val_accuracy")}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a search's run directory")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--sample", type=int, required=True)
    p.add_argument("--position", type=int, default=0, help="which member of the ensemble (default 0)")
    p.add_argument("--isa", default="native,AVX", help=f"comma-separated caps among {', '.join(ISAS)} "
                   "(native: none, as the search ran on this host)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _train_one(args.run, args.size, args.sample, args.position)
        return 0
    isas = [x.strip().upper() for x in args.isa.split(",") if x.strip()]
    unknown = [x for x in isas if x not in ISAS]
    if unknown or not isas:
        print(f"check_isa_sensitivity: error: --isa {args.isa}: choose among {', '.join(ISAS)}", file=sys.stderr)
        return 2
    from nas.store import RunDir
    from search_space.errors import UserError

    try:
        RunDir(args.run).read_config()  # one clear error where RUN is not a run directory
        records = RunDir(args.run).records()
    except UserError as e:
        print(f"check_isa_sensitivity: error: {e}", file=sys.stderr)
        return 2
    record = next((r for r in records if r["size"] == args.size and r["sample"] == args.sample), None)
    if record is None or not 0 <= args.position < len(record["members"]):
        print(f"check_isa_sensitivity: error: {args.run} has no size {args.size} sample {args.sample} with a member "
              f"at position {args.position}", file=sys.stderr)
        return 2
    print(f"{'isa cap':>8}{'val accuracy':>14}{'recorded':>10}")
    for isa in isas:
        cap = "" if isa == "NATIVE" else f" --xla_cpu_max_isa={isa}"
        env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')}{cap}".strip()}
        child = subprocess.run([sys.executable, "-m", "experiments.check_isa_sensitivity", args.run, "--size",
                                str(args.size), "--sample", str(args.sample), "--position", str(args.position),
                                "--child"], env=env, capture_output=True, text=True)
        if child.returncode != 0:
            print(f"{isa:>8}  failed: {child.stderr.strip().splitlines()[-1] if child.stderr.strip() else '?'}")
            continue
        out = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{isa:>8}{out['val_accuracy']:>14.4f}{out['recorded']:>10.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
