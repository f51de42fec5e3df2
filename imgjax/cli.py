"""The ``imgjax`` command: ``imgjax train {gan,cnn,ae}``, ``imgjax eval {gan,cnn,ae}`` and ``imgjax bench``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .data import HELD_OUT_IMAGES
from .family import NAMES as FAMILY_NAMES

PRECISIONS = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgjax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model family (resumes from its last epoch)")
    train.add_argument("family", choices=FAMILY_NAMES)
    train.add_argument("--epochs", type=int, help="default: the family's target-reaching value")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "mnist"))
    train.add_argument("--data-dir", help="folder with the IDX files (else IMGJAX_DATA_DIR, cache, system, download)")
    train.add_argument("--out", help="output folder (default runs/<family>)")
    train.add_argument("--devices", type=int, help="data-parallel over the first N devices (default: all GPUs or "
                       "TPUs; on a CPU, two devices per core, at most one per 32 images of the batch)")
    train.add_argument("--held-out", type=int, default=HELD_OUT_IMAGES, metavar="N",
                       help=f"training images kept out of training, for the per-epoch figures (default "
                       f"{HELD_OUT_IMAGES}; 0 trains on all and skips them); training never reads the test set")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                       help="change a field of the family's model config, e.g. --set ema_decay=0.9995 "
                       "--set generator_widths=128,64,32 (the card records the config trained)")
    train.add_argument("--init-from", metavar="WEIGHTS", help="start from this checkpoint's weights (e.g. "
                       "checkpoints/photo.safetensors) with a fresh optimizer and schedule, instead of random ones")
    train.add_argument("--precision", choices=PRECISIONS, default="float32", type=lambda v: PRECISIONS.get(v, v),
                       help="bf16 (= bfloat16): float32 master weights, bfloat16 convolutions and matmuls "
                       "(for GPUs and TPUs)")

    evaluate = commands.add_parser("eval", help="measure a checkpoint on the 10k test set")
    evaluate.add_argument("family", choices=FAMILY_NAMES)
    evaluate.add_argument("--checkpoint", help="weights file (default checkpoints/<family>.safetensors)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--out", help="folder for pictures and statistics (default runs/eval/<family>)")
    evaluate.add_argument("--write-card", action="store_true", help="store the metrics in the checkpoint's JSON card "
                          "and write the pictures and statistics beside it (ignores --out)")
    evaluate.add_argument("--bm3d-images", type=int, default=200, help="test images for the BM3D baseline")

    bench = commands.add_parser("bench", help="training and serving speed, side by side with PyTorch")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (every figure still reported)")
    bench.add_argument("--only", action="append", choices=("training", "inference", "cold_start", "lab"),
                       help="run only this section (repeatable; default: all four)")
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
        results = run_bench(quick=args.quick, sections=args.only, log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
        if args.json:
            print(json.dumps(results))
        return 0
    from .evaluate import run_eval
    results = run_eval(args.family, args.checkpoint, data_dir=args.data_dir, out=args.out,
                       write_card=args.write_card, bm3d_images=args.bm3d_images,
                       log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
