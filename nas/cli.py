"""The `nas` command line. Every user mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Callable, NoReturn, Sequence

from search_space.errors import UserError, seed_arg

if TYPE_CHECKING:  # nas.evaluators imports JAX, which the CLI loads only for commands that train
    from nas.evaluators import Evaluator


# trainer.retrain.RECIPES in words (that module loads JAX, which --help does not need);
# tests/nas/test_train_cli.py checks these against trainer.retrain.describe_recipe.
RECIPE_NAMES = ["fast", "wrn"]
RECIPE_HELP = ("the training recipe; fast (default): 40 epochs at batch 256, SGD with Nesterov momentum 0.9, "
               "lr 0.2 after 2 warm-up epochs, cosine to 0, weight decay 0.0005, label smoothing 0.1; wrn "
               "(Zagoruyko & Komodakis's for WRNs): 200 epochs at batch 128, SGD with Nesterov momentum 0.9, "
               "lr 0.1 x0.2 at epochs 60, 120, 160, weight decay 0.0005, label smoothing 0; both with random "
               "crops and flips")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _sizes(text: str) -> list[int]:
    """Comma-separated positive ensemble sizes, e.g. 1,2,3."""
    try:
        return [_positive_int(t) for t in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None


def _budgets(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds separated by commas, got {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be positive milliseconds, got {text!r}")
    return values


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < v < float("inf"):  # float() reads 'inf' and '1e309' as infinity, 'nan' as nan
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


SMALL_INPUT_HELP = ("the small-input rule (stem stride 1, the first stride-2 block at stride 1: total stride 8) "
                    "that `nas train`, `nas study` and the searches give networks on data of 64 px or less")
NUM_CLASSES_HELP = ("classifier outputs (default: an exported ensemble's own classes, else 1000, or 10 for a WRN, "
                    "as each network's published figures)")


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC",
                   help="a JSON spec file, an exported ensemble's folder (`nas export`), a named architecture "
                        "(mobilenetv2, mnasnet-a1, mnasnet-b1, mnasnet-small, efficientnet-b0..b7, wrn-16-8, ...) "
                        "or quoted block strings ('r1_k3_s11_e1_i32_o16 ...')")
    p.add_argument("--resolution", type=_positive_int, help="input resolution in pixels (default: the spec's)")
    p.add_argument("--width-multiplier", type=_positive_float, default=1.0,
                   help="MnasNet width multiplier: channels x M rounded to multiples of 8, never below 90%%")
    p.add_argument("--stem", type=_positive_int, default=32, help="stem filters for block strings (default 32)")
    p.add_argument("--head", type=int, default=1280, help="head filters for block strings (default 1280; 0 = none)")


def add_member_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--member", type=_nonnegative_int, metavar="I",
                   help="with an ensemble as SPEC (a front point's spec file, an exported folder): its member I, "
                        "counted from 0 as `nas show --front` numbers them from 1")


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "processes", "pipelined", "sequential", "stacked", "ray"],
                   default="auto",
                   help="where members train: processes (worker processes share the GPU: each compiles, "
                        "autotunes and trains its own member), pipelined (compile ahead on threads while "
                        "training), sequential (compile, train, next), stacked (with "
                        "trainer.compile_unit=stacked: members of one input resolution trained --stack-slots "
                        "at a time as one program), or ray (Ray tasks); auto (default) is processes on a GPU "
                        "and pipelined elsewhere; results are the same")
    p.add_argument("--workers", type=_positive_int, default=4, help="processes: members in flight at once")
    p.add_argument("--compile-workers", type=_positive_int, default=2, help="pipelined: members compiled at once")
    p.add_argument("--train-workers", type=_positive_int, default=1, help="pipelined: members trained at once")
    p.add_argument("--stack-slots", type=_positive_int, default=8,
                   help="stacked: members per stack (each frame's program trains this many)")
    p.add_argument("--stack-ahead", type=_positive_int,
                   help="stacked: stacks built and compiled on threads while one trains (default: a quarter "
                        "of this machine's cores, 1 to 4)")
    p.add_argument("--address", help="ray: address of an existing Ray cluster (default: start a local instance)")
    p.add_argument("--gpus-per-member", type=_positive_float,
                   help="ray: GPUs per member task, a fraction shares a GPU (default: 1 GPU where the cluster has "
                        "GPUs, else 1 CPU)")


def check_backend(args: argparse.Namespace, compile_unit: str) -> None:
    """Refuse a backend the run's ``trainer.compile_unit`` cannot use (one error line): the
    stacked backend trains stacked members only."""
    if args.backend == "stacked" and compile_unit != "stacked":
        raise UserError(f"--backend stacked: needs trainer.compile_unit=stacked (--set trainer.compile_unit=stacked), "
                        f"this run's is {compile_unit!r}")


def evaluator_from_args(args: argparse.Namespace) -> Evaluator:
    """The evaluator that add_backend_arguments' options ask for; the caller closes it."""
    from nas.evaluators import make_evaluator

    if args.address and args.backend != "ray":
        raise UserError("--address: only with --backend ray")
    return make_evaluator(args.backend, compile_workers=args.compile_workers, train_workers=args.train_workers,
                          workers=args.workers, address=args.address, gpus_per_member=args.gpus_per_member,
                          slots=args.stack_slots, stack_ahead=args.stack_ahead)


def _spec_from_args(args: argparse.Namespace):
    from nas.specs import resolve_spec

    return resolve_spec(args.spec, resolution=args.resolution, width_multiplier=args.width_multiplier,
                        stem=args.stem, head=args.head)


def _spec_as_trained(args: argparse.Namespace, what: str):
    """``_spec_from_args``, with ``--small-input`` applied to every member it fits. Without it, a
    note on stderr where a member at 64 px or less would be trained otherwise than described: on
    data that small, `nas train` and `nas study` give ImageNet networks the small-input rule (stride
    8 instead of 32), which multiplies their multiply-adds (EfficientNet-b0 at 32 px: 9.7M as
    published, 117.4M as trained)."""
    from search_space.space import SMALL_INPUT_MAX, adapt_for_small_input
    from search_space.spec import EnsembleSpec, MobileNetSpec

    spec = _spec_from_args(args)
    members = spec.members if isinstance(spec, EnsembleSpec) else (spec,)
    fits = [isinstance(m, MobileNetSpec) and m.stem_stride == 2 for m in members]
    if args.small_input:
        if not any(fits):
            raise UserError("--small-input: no member of SPEC has a stride-2 stem for the rule to change "
                            "(a WRN, or a network already adapted, as a searched member on small data is)")
        adapted = tuple(adapt_for_small_input(m) if f else m for m, f in zip(members, fits))
        return EnsembleSpec(adapted) if isinstance(spec, EnsembleSpec) else adapted[0]
    small = sorted({m.resolution for m, f in zip(members, fits) if f and m.resolution <= SMALL_INPUT_MAX})
    if small:
        print(f"note: on data of {SMALL_INPUT_MAX} px or less (this is at {'/'.join(map(str, small))} px), "
              "`nas train` and `nas study` train ImageNet networks with the small-input rule (stride 8, not 32); "
              f"--small-input {what} that", file=sys.stderr)
    return spec


def _num_classes(args: argparse.Namespace) -> int | None:
    """--num-classes, else an exported ensemble's own (its manifest's class names), else None: each
    member's published figure's (nas.describe.default_num_classes)."""
    from nas.manifest import is_exported, read_manifest

    if args.num_classes is None and is_exported(args.spec):
        return len(read_manifest(args.spec)[0]["class_names"])
    return args.num_classes


def cmd_describe(args: argparse.Namespace) -> int:
    from nas.describe import describe, format_description

    d = describe(_spec_as_trained(args, "describes"), _num_classes(args), device=args.device)
    print(json.dumps(d) if args.json else format_description(d))
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from nas.latency_cli import format_latency, latency_dict

    d = latency_dict(_spec_as_trained(args, "estimates"), device=args.device, era=args.era,
                     num_classes=_num_classes(args))
    print(json.dumps(d) if args.json else format_latency(d))
    return 0


def cmd_calibrate_latency(args: argparse.Namespace) -> int:
    from nas.latency_cli import run_calibration

    return run_calibration(device=args.device, data_dir=args.data, plot=args.plot, write=args.write,
                           as_json=args.json)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset",
                   help="fashion_mnist, cifar10, tfds:NAME, idx:DIR, jpeg-npz:PATH, cifar-py:DIR, cifar-bin:DIR, "
                        "folder:DIR or npz:PATH; required unless SPEC is an exported ensemble's folder, whose "
                        "data set (at its image size) is the default")
    p.add_argument("--data-dir", help="TFDS data_dir (for tfds:NAME)")
    p.add_argument("--manual-dir", help="TFDS manual_dir with downloaded archives (e.g. ImageNet)")
    p.add_argument("--image-size", type=_positive_int, metavar="PX",
                   help="crop every image to its central square and resize it to PX (sets whose images differ "
                        "in size, e.g. ImageNet or a folder of photos, need it)")


def cmd_train(args: argparse.Namespace) -> int:
    from nas.train_cli import run_train

    return run_train(args, _spec_from_args(args))


def cmd_retrain_spec(args: argparse.Namespace) -> int:
    from nas.train_cli import run_retrain_spec

    return run_retrain_spec(args, _spec_from_args(args))


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search_cli import run_search_cmd

    return run_search_cmd(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from nas.search_cli import run_plot_cmd

    return run_plot_cmd(args)


def cmd_show(args: argparse.Namespace) -> int:
    from nas.search_cli import run_show_cmd

    return run_show_cmd(args)


def cmd_report(args: argparse.Namespace) -> int:
    from nas.report import run_report_cmd

    return run_report_cmd(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from nas.compare import run_compare_cmd

    return run_compare_cmd(args)


def cmd_pool(args: argparse.Namespace) -> int:
    from nas.pool_cli import run_pool_cmd

    return run_pool_cmd(args)


def cmd_seeds(args: argparse.Namespace) -> int:
    from nas.seeds_cli import run_seeds_cmd

    return run_seeds_cmd(args)


def cmd_retrain(args: argparse.Namespace) -> int:
    from nas.retrain_cli import run_retrain_cmd

    return run_retrain_cmd(args)


def cmd_export(args: argparse.Namespace) -> int:
    from nas.export_cli import run_export_cmd

    return run_export_cmd(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from nas.export_cli import run_predict_cmd

    return run_predict_cmd(args)


def cmd_study(args: argparse.Namespace) -> int:
    from nas.study_cli import run_study_cmd

    return run_study_cmd(args)


class _OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (a required argument missing, a bad value, an unknown command) as the
    CLI's others are: one line on stderr and exit code 2. argparse prints the usage above the
    message, up to eight lines for `nas search`; the line names ``--help`` instead."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _CommandParser(_OneLineParser):
    """A command's parser: an argument it does not know is its own error
    (``nas show: error: unrecognized arguments: --size 7``), where argparse would hand it up to
    `nas` and name the usage of `nas` alone."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="nas", description="Neural architecture search of diverse ensembles.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)

    p = sub.add_parser("describe", help="parameters and multiply-adds of an architecture, per layer and in total",
                       description="Print parameters and multiply-adds per layer and in total.")
    add_spec_arguments(p)
    p.add_argument("--num-classes", type=_positive_int, help=NUM_CLASSES_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level params, multiply_adds)")
    p.add_argument("--device", default="pixel1", help="latency device: pixel1, note10 or a device JSON file")
    p.add_argument("--small-input", action="store_true", help=SMALL_INPUT_HELP)
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("latency", help="estimated on-device latency, total and per layer",
                       description="Estimate latency from measured per-layer tables and a calibrated per-op model.")
    add_spec_arguments(p)
    p.add_argument("--num-classes", type=_positive_int, help=NUM_CLASSES_HELP)
    p.add_argument("--device", default="pixel1", help="pixel1 (default), note10, or a device JSON file")
    p.add_argument("--era", help="TFLite era of the estimate (pixel1: 2018 default, or 2019)")
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level latency_ms)")
    p.add_argument("--small-input", action="store_true", help=SMALL_INPUT_HELP)
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("calibrate-latency", help="refit a device's latency model and report its error",
                       description="Refit the per-op latency model from the calibration data, print "
                                   "cross-validated MAPE, worst error and Spearman rank correlation, and "
                                   "write a predicted-vs-measured plot.")
    p.add_argument("--device", default="pixel1", choices=["pixel1", "note10"])
    p.add_argument("--data", help="folder of calibration files (default: the copy shipped in latency/calibration)")
    p.add_argument("--plot", default="latency_calibration.png", help="where to write the plot (PNG)")
    p.add_argument("--write", metavar="PATH", help="also write the fitted device JSON here")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_calibrate_latency)

    p = sub.add_parser("train", help="train one member (proxy schedule) and print its validation metrics",
                       description="Train one member on a seeded train/validation split of the training data and "
                                   "print its validation accuracy. The test split is not used.")
    add_spec_arguments(p)
    add_member_argument(p)
    add_data_arguments(p)
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--lr", type=_positive_float,
                   help="peak learning rate (default: the proxy recipe's 0.2 at batch 256, scaled linearly "
                        "with --batch-size: 0.025 at 32)")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--train-examples", type=_positive_int, help="class-balanced subset of the training split")
    p.add_argument("--val-size", type=_positive_int, default=5000, help="validation examples carved from train")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    p.add_argument("--init", choices=["he_fan_out", "tf_reference", "pytorch_default"], default="he_fan_out",
                   help="weight initialization (trainer.init): the modules' He fan-out initializers "
                        "(torchvision's), the MnasNet reference code's, or PyTorch's layer defaults")
    p.add_argument("--tta-flip", action="store_true",
                   help="score each validation image with its mirror image, mean logits (trainer.tta_flip); "
                        "the output also gives each view's accuracy alone (view_accuracies)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override any trainer setting after the options above, as a search config's "
                        "trainer.KEY (the prefix optional), e.g. --set crop_pad=2 --set zero_init_residual=true")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="keep Orbax checkpoints of the run here; the same command resumes it after a kill or "
                        "--max-minutes (a folder holds one run: member, data, seed and settings)")
    p.add_argument("--every", type=_positive_int, help="with --checkpoint-dir: checkpoint every N epochs (default 1)")
    p.add_argument("--max-minutes", type=_positive_float,
                   help="with --checkpoint-dir: stop at the end of the epoch in which this many minutes pass, "
                        "with a checkpoint there; the same command resumes")
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level val_accuracy)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("retrain-spec", help="train one architecture to convergence with checkpoints; test accuracy",
                       description="Full training on the whole training split with Orbax checkpoints; rerun the "
                                   "same command to resume after an interruption.")
    add_spec_arguments(p)
    add_member_argument(p)
    add_data_arguments(p)
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="fast", help=RECIPE_HELP)
    p.add_argument("--epochs", type=_positive_int, help="override the recipe's epochs")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--every", type=_positive_int, default=5, help="checkpoint every N epochs")
    p.add_argument("--max-minutes", type=_positive_float,
                   help="stop at the end of the epoch in which this many minutes pass, with a checkpoint "
                        "there; the same command resumes")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override any setting of the recipe after --recipe and --epochs, as in nas train, e.g. "
                        "--set ema_decay=0.9999, or --set batch_size=64 --set learning_rate=0.05 (the rate does not follow "
                        "the batch by itself); a checkpoint folder keeps one run's settings")
    p.add_argument("--export", metavar="DIR",
                   help="then write the member as an exported one-member ensemble in DIR (new or empty; as `nas "
                        "export` writes a search's), which `nas predict DIR IMAGE...` reads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrain_spec)

    p = sub.add_parser("search", help="search ensembles of sizes 1..3 (a controller per size) into a run directory",
                       description="Sample ensembles, train members briefly, reward accuracy x (max latency / T)^w, "
                                   "update the controllers, record everything. Rerun with --resume after a kill.")
    p.add_argument("--config", help="a config file defining get_config(), e.g. experiments/demo.py")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. trainer.epochs=3 or controller=evolution "
                        "(reinforce, random or evolution); with --resume, samples_per_size=N or sizes=[1,2,3,4] "
                        "extends the run")
    p.add_argument("--run-dir", required=True, help="where records, member cache, checkpoints and plots go")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir where it stopped (or extend it: --set samples_per_size=N)")
    p.add_argument("--member-cache", metavar="DIR",
                   help="a member cache shared by runs: members another run trained with the same spec, data, "
                        "trainer config and seed are copied from DIR instead of trained, and members trained "
                        "successfully are copied to it")
    p.add_argument("--max-minutes", type=_positive_float,
                   help="start no new round after this many minutes: the round in progress is finished and "
                        "recorded, fronts and plots are written, and --resume continues the run as if never "
                        "stopped")
    p.add_argument("--dry-run", action="store_true",
                   help="print what the search would do (data and split, space, members to train per size, "
                        "where the latency target falls among random ensembles) and stop: nothing is trained "
                        "or written")
    p.add_argument("--precompile", type=_positive_int, metavar="N",
                   help="with trainer.compile_unit=padded: before the first member trains, compile every padded "
                        "layer kind of the space (12 covering members, not trained) in N processes into the run's "
                        "compilation cache, from which the search's members then load them (nas/precompile.py)")
    add_backend_arguments(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("plot", help="Figure 3 (accuracy vs max latency per size, fronts, medians), curves, "
                       "ensembles' gain over their best member, fronts CSV",
                       description="Draw the run's plots and write fronts.csv; works while the search runs.")
    p.add_argument("run", metavar="RUN")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("show", help="a summary table of a run", description="Summarize a run per ensemble size.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--json", action="store_true")
    p.add_argument("--front", action="store_true",
                   help="also list each size's Pareto-front ensembles with their members' block strings")
    p.add_argument("--budgets", type=_budgets, metavar="MS[,MS...]",
                   help="max-latency budgets for the best-accuracy-within table (default: the quartiles and the "
                        "maximum of the samples' max member latency)")
    p.add_argument("--export", metavar="DIR",
                   help="write each front ensemble as a spec JSON file, DIR/sizeN_sampleI.json (for nas describe, "
                        "nas latency)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("report", help="one Markdown page of a run: launch, plots, tables, fronts with "
                       "architectures, retraining", description="Draw the run's plots and write RUN/report.md: how "
                       "it was launched and where it ran, Figure 3, per-size and budget tables, each front's "
                       "members with their block strings, the gain over the best member, costs and failures, "
                       "and the retraining results; works while the search runs.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", metavar="FILE", help="where to write the page (default RUN/report.md)")
    p.add_argument("--budgets", type=_budgets, metavar="MS[,MS...]",
                   help="max-latency budgets for the best-accuracy-within table (default as nas show)")
    p.add_argument("--no-plots", action="store_true", help="link the figures already drawn instead of redrawing")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="several runs side by side: fronts, best accuracy so far, hypervolume",
                       description="Compare searches on the same data, trainer and space (e.g. REINFORCE against "
                                   "random search, or two reward settings): per size, best accuracy, best reward "
                                   "and the hypervolume of each Pareto front, and one figure of the fronts and of "
                                   "the best accuracy found against samples drawn.")
    p.add_argument("runs", metavar="RUN", nargs="+")
    p.add_argument("--out", default="compare.png", help="where to write the figure (PNG; default compare.png)")
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level sizes: a row per size and run)")
    p.add_argument("--retrained", action="store_true",
                   help="compare the searched ensembles `nas retrain` retrained, by test accuracy (runs whose "
                        "proxies differ; the data, space and latency device must agree)")
    p.add_argument("--retrain-setting", metavar="SETTING",
                   help="with --retrained: which retraining setting, e.g. fast4-n10000 (default: the one every run has)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("pool", help="the best ensembles recombined from every member a search trained (no training)",
                       description="Score ensembles of any k members the run has trained (every k-subset up to "
                                   "--limit candidates, else a beam over the size below) by geometric-mean "
                                   "validation accuracy and max member latency; write each size's Pareto front to "
                                   "pool_fronts.csv and plots/pool.png next to the searched fronts. Chosen on the "
                                   "validation images, so optimistic: --holdout measures by how much without training, "
                                   "`nas retrain RUN --pool` measures test accuracy.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--sizes", type=_sizes, help="comma-separated ensemble sizes (default: the run's)")
    p.add_argument("--limit", type=_positive_int,
                   help="most candidates per size scored exhaustively (default 20000; with several reseeded "
                        "--retrain-setting, the most k-subsets of the models, every one scored: default 100000)")
    p.add_argument("--beam", type=_positive_int,
                   help="beyond --limit: the most accurate ensembles one size down that are extended (default 64)")
    p.add_argument("--holdout", action="store_true",
                   help="also choose on one half of the validation images and score on the other, over random "
                        "halvings: how much of the pool's lead over the search survives images it was not "
                        "chosen on (pool_holdout.csv)")
    p.add_argument("--holdout-splits", type=_positive_int, default=10, metavar="N",
                   help="random halvings for --holdout and --retrained (default 10)")
    p.add_argument("--retrained", action="store_true",
                   help="pool the members `nas retrain` retrained instead, by their test logits: under each cost "
                        "budget, the best single model against the best ensemble of each size, each chosen on one "
                        "half of the test images and scored on the other over --holdout-splits random halvings "
                        "(pool_retrained_SETTING_COST.csv, plots/pool_retrained_SETTING_COST.png)")
    p.add_argument("--retrain-setting", metavar="SETTING", action="append",
                   help="with --retrained: which retraining setting, e.g. fast12-n10000 (default: the only one); "
                        "given two or more that differ only in `nas retrain --reseed` (fast4-n10000, "
                        "fast4+reseed=1-n10000, ...), one network's seeds against different networks per budget "
                        "instead (pool_seeds_SETTING_xN_COST.csv, plots/pool_seeds_SETTING_xN_COST.png)")
    p.add_argument("--cost", choices=["latency", "flops"],
                   help="with --retrained: the budget's cost, the max member latency (the search's) or the summed "
                        "FLOPs (the paper's); default latency")
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level sizes and front)")
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("seeds", help="n copies of a searched member (seeds) against the searched diverse ensembles",
                       description="Train the member of chosen one-member samples again with the next seeds, at the "
                                   "search's proxy budget on its data and split, and compare each ensemble of n "
                                   "copies with the best searched n-member ensemble at no higher max latency; write "
                                   "seeds.csv and plots/seeds.png. Members are cached: a rerun trains nothing.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--top", type=_positive_int, default=3, help="the top K one-member samples by reward (default 3)")
    p.add_argument("--sample", type=_nonnegative_int, action="append",
                   help="this one-member sample instead of the top K (repeat for several)")
    p.add_argument("--members", type=_positive_int, default=3, help="copies per ensemble, at most (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object (top-level rows)")
    add_backend_arguments(p)
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("retrain", help="retrain the best ensembles of a run to convergence; test accuracy",
                       description="Retrain the top-K ensembles by reward (or every Pareto point; or, with --pool, "
                                   "ensembles recombined from the trained members) with a full recipe "
                                   "and report test accuracy next to the proxy validation accuracy. Results go to "
                                   "RUN/retrain.jsonl; `nas show RUN` then ranks proxy against test accuracy and "
                                   "compares the retrained ensembles with the retrained single models, and "
                                   "`nas plot RUN` draws plots/retrain-SETTING.png.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--top", type=_positive_int, metavar="K",
                   help="retrain the K ensembles of highest reward of each size (default 1)")
    p.add_argument("--pareto", action="store_true", help="retrain every Pareto-front ensemble instead of the top K")
    p.add_argument("--pool", action="store_true",
                   help="choose among the member pool's front ensembles (`nas pool`) instead of the searched "
                        "samples (the top K by reward as well, or --pareto), of the sizes `nas pool` last "
                        "wrote fronts for (else the run's)")
    p.add_argument("--size", type=_positive_int, help="only ensembles of this many members")
    p.add_argument("--sample", type=_nonnegative_int, action="append",
                   help="with --size: retrain this sample (a point numbered on Figure 3 and in nas show --front); "
                        "repeat for several")
    p.add_argument("--train-examples", type=_positive_int,
                   help="train on a class-balanced subset of this many training images (quick checks)")
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="fast", help=RECIPE_HELP)
    p.add_argument("--epochs", type=_positive_int, help="override the recipe's epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting of the recipe, as `nas train --set` (e.g. label_smoothing=0.0); "
                        "repeatable. What it changes is part of the retraining setting: its own "
                        "checkpoints, rows and plots (e.g. fast4+label_smoothing=0.0)")
    p.add_argument("--reseed", type=_nonnegative_int, default=0, metavar="K",
                   help="retrain each member with its searched seed + K * 1000 instead (default 0: the "
                        "searched seed), a setting of its own (e.g. fast4+reseed=1-n10000): the training "
                        "seed's share of a retrained accuracy, or of a pooled ensemble's lead")
    p.add_argument("--every", type=_positive_int, default=5, help="checkpoint every N epochs")
    p.add_argument("--max-minutes", type=_positive_float,
                   help="start no new member after this many minutes, and stop the members in training at "
                        "the end of their epoch then, with a checkpoint there; the ensembles finished are "
                        "kept, and the same command resumes")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="retrain this many members at once, each in a process of its own (default 1: one "
                        "after another in this process); several small members share one GPU")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("export", help="a retrained ensemble as a folder of its own: specs, weights, class names",
                       description="Write one ensemble `nas retrain` retrained as a folder that needs neither the "
                                   "run nor the training images: ensemble.json (each member's spec, seed and "
                                   "resolution; the class names, image size and normalization; the geometric-mean "
                                   "combination; test accuracies) and a weights file per member (parameters and the "
                                   "batch-norm statistics it was scored with). The folder is read back and scored on "
                                   "the test set before it is put in place. `nas predict DIR IMAGE...` uses it, and "
                                   "so does nas.export.load_ensemble(DIR) from Python.")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new, or empty)")
    p.add_argument("--ensemble", metavar="ID", help="the retrained ensemble whose id starts with ID")
    p.add_argument("--size", type=_positive_int,
                   help="the most accurate retrained ensemble of this many members (default: of any size)")
    p.add_argument("--sample", type=_nonnegative_int, help="with --size: this searched sample")
    p.add_argument("--setting", metavar="SETTING",
                   help="the retraining setting, e.g. fast4-n10000 (needed where an ensemble was retrained in several)")
    p.add_argument("--members", metavar="ID[@SEED],...",
                   help="instead, an ensemble of these retrained members (ids' first characters, each with its seed "
                        "where it was searched with several), e.g. a pick of `nas pool --retrained`, whose CSV names "
                        "them so")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="classify image files with an exported ensemble",
                       description="Read image files (PNG, JPEG, anything Pillow reads), convert them to the "
                                   "ensemble's channels and image size, and print each one's most probable classes "
                                   "under the geometric mean of the members' softmax outputs.")
    p.add_argument("ensemble", metavar="DIR", help="a folder `nas export` wrote")
    p.add_argument("images", metavar="IMAGE", nargs="+",
                   help="an image file, or a folder: its .jpg, .jpeg and .png files, in it and below")
    p.add_argument("--top", type=_positive_int, default=3, help="classes shown per image (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("study", help="the paper's scaling studies: ensembles of n copies per architecture, "
                                     "accuracy vs FLOPs",
                       description="Train several seeds per architecture, evaluate geometric-mean ensembles of "
                                   "n = 1..members (random draws per n), write points.csv, summary.csv, "
                                   "findings.json and plots/scaling.png. Trained members are cached: rerun with "
                                   "--resume after a kill, or with --resume --set members=N to extend.")
    p.add_argument("study", metavar="STUDY", help="wrn, efficientnet (ImageNet), efficientnet-cifar, mobilenetv2-cifar, or a config file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. trainer.epochs=3")
    p.add_argument("--run-dir", required=True, help="where members, CSVs and plots go")
    p.add_argument("--resume", action="store_true", help="continue (or extend) the study in --run-dir")
    p.add_argument("--max-minutes", type=_positive_float,
                   help="start no new member after this many minutes; the rest waits for a --resume")
    p.add_argument("--no-train", action="store_true", help="only evaluate and plot the members already trained")
    p.add_argument("--json", action="store_true", help="print the outputs and findings as one JSON object")
    add_backend_arguments(p)
    p.set_defaults(func=cmd_study)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: `nas search` records it in the run
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as e:
        print(f"nas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`nas show RUN --front | head`): stop quietly, as Unix tools do; stdout
        # points at /dev/null so that the interpreter's final flush does not raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    """The `nas` command (pyproject.toml): ``main``, except that after Ctrl-C it exits at once
    rather than join threads still compiling or training a member (the pipelined evaluator's),
    which the interpreter would wait for. Every file a command writes is whole at any moment (the
    kill -9 tests), so nothing is lost that a rerun or `--resume` does not redo."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        import os

        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
