"""The imgjax command: train a model family, measure a checkpoint, time training and serving, and
picture the studio."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import __version__
from .data import HELD_OUT_IMAGES
from .datasets import NAMES as DATASET_NAMES
from .family import NAMES as FAMILY_NAMES

PRECISIONS = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def build_parser() -> argparse.ArgumentParser:
    families = ", ".join(FAMILY_NAMES)
    parser = argparse.ArgumentParser(prog="imgjax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"imgjax {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subcommand = lambda name, text: commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")

    train = subcommand("train", f"train a model family ({families}); resumes from its last finished epoch")
    train.add_argument("family", choices=FAMILY_NAMES, metavar="FAMILY", help=f"one of {families}")
    train.add_argument("--epochs", type=int, help="epochs to train (default: the family's target-reaching value)")
    train.add_argument("--batch-size", type=int, help="images per step (default: the family's)")
    train.add_argument("--learning-rate", type=float, help="peak learning rate (default: the family's)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights, the data order and the noise (default: 0)")
    train.add_argument("--dataset", default="fashion-mnist", choices=DATASET_NAMES,
                       help="the images to train on: fashion-mnist (default), mnist or emoji (so far the cnn "
                       "family; the photo family reads its own photos)")
    train.add_argument("--data-dir", help="folder with the IDX files (default: IMGJAX_DATA_DIR, the cache, the "
                       "system's copy, else a download)")
    train.add_argument("--out", help="output folder (default: runs/<family>)")
    train.add_argument("--devices", type=int, help="data-parallel over the first N devices (default: all GPUs or "
                       "TPUs; on a CPU, two devices per core, at most one per 32 images of the batch)")
    train.add_argument("--held-out", type=int, default=HELD_OUT_IMAGES, metavar="N",
                       help=f"training images kept out of training, for the per-epoch figures (default "
                       f"{HELD_OUT_IMAGES}; emoji hold out one emoji in 8 whatever N; 0 trains on all and skips "
                       "them); training never reads the test set")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                       help="change a field of the family's model config, e.g. --set ema_decay=0.9995 "
                       "--set generator_widths=128,64,32 (the card records the config trained)")
    train.add_argument("--init-from", metavar="WEIGHTS", help="start from this checkpoint's weights (e.g. "
                       "checkpoints/photo.safetensors) with a fresh optimizer and schedule, instead of random ones")
    train.add_argument("--precision", choices=PRECISIONS, default="float32", type=lambda v: PRECISIONS.get(v, v),
                       help="float32 (default), or bf16 (= bfloat16): float32 master weights, bfloat16 "
                       "convolutions and matmuls (for GPUs and TPUs)")

    evaluate = subcommand("eval", f"measure a checkpoint ({families}) on its test set, beside baselines")
    evaluate.add_argument("family", choices=FAMILY_NAMES, metavar="FAMILY", help=f"one of {families}")
    evaluate.add_argument("--checkpoint", help="weights file (default: checkpoints/<family>.safetensors)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--data-dir", help="folder with the IDX files (default: as for train)")
    evaluate.add_argument("--out", help="folder for pictures and statistics (default: runs/eval/<family>)")
    evaluate.add_argument("--write-card", action="store_true", help="store the metrics in the checkpoint's JSON card "
                          "and write the pictures and statistics beside it (ignores --out)")
    evaluate.add_argument("--bm3d-images", type=int, default=200, help="test images for the BM3D baseline (default: 200)")
    evaluate.add_argument("--held-out", action="store_true", help="measure on the training images the checkpoint was "
                          "trained without (ae, encoder, gan), not the test set: for choosing recipes and defaults")

    bench = subcommand("bench", "time training and serving, side by side with PyTorch")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--workload", choices=("full", "quick", "smoke"), default="full",
                       help="full (default): the figures the docs quote; quick: fewer repetitions; smoke: every "
                       "figure once on the smallest workload, for the tests (the values mean nothing)")
    bench.add_argument("--lab-dataset", action="append", choices=DATASET_NAMES,
                       help="the Lab section on this dataset (repeatable; default: every dataset)")
    bench.add_argument("--only", action="append", choices=("training", "inference", "cold_start", "lab"),
                       help="run only this section (repeatable; default: all four)")
    fetch = subcommand("data", "download a dataset into the user cache, checksums verified, and build its images")
    fetch.add_argument("dataset", choices=("emoji",), metavar="DATASET",
                       help="emoji: the Twemoji and Noto art sets (Fashion-MNIST comes from Debian's "
                       "dataset-fashion-mnist or downloads itself)")
    pictures = subcommand("pictures", "remake the README's pictures of the studio (needs chromium and Playwright)")
    pictures.add_argument("--out", default="docs", help="folder for the pictures (default: docs)")
    pictures.add_argument("--url", help="a running studio to picture (default: start one)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("train", "bench"):
        # Before JAX starts: on a CPU, two devices per core, so data parallelism uses every core,
        # and the XLA flags measured to train that family faster (the bench's workers set their own).
        from .parallel import configure_cpu_for_training, initialize_distributed
        configure_cpu_for_training(family=getattr(args, "family", None))
        initialize_distributed()
    if args.command == "train":
        from .family import load_family
        from .train import TrainConfig, command_line, fit, override_config
        family = load_family(args.family)
        try:
            family = dataclasses.replace(family, model_config=override_config(family.model_config, args.overrides))
        except ValueError as error:
            print(f"imgjax train: error: {error}", file=sys.stderr)
            return 2
        options = {k: getattr(args, k) for k in family.defaults if getattr(args, k) is not None}
        config = TrainConfig(family=args.family, seed=args.seed, dataset=args.dataset, data_dir=args.data_dir,
                             out=args.out, devices=args.devices, precision=args.precision, held_out=args.held_out,
                             init_from=args.init_from,
                             **{**family.defaults, **options})
        from .checkpoint import CheckpointError
        from .data import DataError
        from .parallel import DeviceCountError
        try:
            card = fit(family, config, command=command_line(argv))
        except (DeviceCountError, CheckpointError, DataError) as error:  # one clear line, no traceback
            print(f"imgjax train: error: {error}", file=sys.stderr)
            return 2
        print(json.dumps(card["train_metrics"]))
        return 0
    if args.command == "bench":
        from .bench import run_bench
        results = run_bench(args.workload, sections=args.only, lab_datasets=args.lab_dataset, log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
        if args.json:
            print(json.dumps(results))
        return 0
    if args.command == "data":
        from .data import DataError
        from .emoji import describe_data
        try:
            print(describe_data())
        except DataError as error:
            print(f"imgjax data: error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "pictures":
        from pathlib import Path

        from .pictures import make_pictures
        make_pictures(Path(args.out), url=args.url)
        return 0
    from .checkpoint import CheckpointError
    from .data import DataError
    from .evaluate import HeldOutError, run_eval
    try:
        results = run_eval(args.family, args.checkpoint, data_dir=args.data_dir, out=args.out,
                           write_card=args.write_card, bm3d_images=args.bm3d_images, on_held_out=args.held_out,
                           log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
    except (HeldOutError, CheckpointError, DataError) as error:  # one clear line, no traceback
        print(f"imgjax eval: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
