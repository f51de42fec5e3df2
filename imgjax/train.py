"""The one training loop shared by all model families.

A family is a module (``imgjax.cnn``, ``imgjax.ae``, ``imgjax.gan``) adapted here by its ``Family``
record (``imgjax.family``). The loop owns everything else: data, the held-out images, progress,
per-epoch evaluation and pictures, atomic checkpoints, and resuming after an interruption.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

import jax
from tqdm import tqdm

from . import checkpoint, data, datasets
from .family import Family
from .images import save_png
from .parallel import DataParallel, default_device_count


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of ``imgjax train``; each maps one-to-one onto a command-line flag."""

    family: str
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int = 0
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    out: str | None = None  # default runs/<family>
    devices: int | None = None  # data-parallel over this many devices (default: parallel.default_device_count)
    precision: str = "float32"  # or "bfloat16": float32 master weights, bfloat16 convolutions and matmuls
    held_out: int = data.HELD_OUT_IMAGES  # training images kept out of training for per-epoch figures
    init_from: str | None = None  # serving weights to start from (a fresh optimizer and schedule), not random

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.family}")


def override_config(config, assignments: list[str]):
    """``config`` (a frozen dataclass) with ``FIELD=VALUE`` assignments applied (``imgjax train --set``),
    each value read as its field's default is typed: ``ema_decay=0.9995``, ``generator_widths=128,64,32``.
    Raises ValueError naming the field and what it accepts."""
    fields = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    changes = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        if not equals or name not in fields:
            raise ValueError(f"--set {assignment}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        default = fields[name]
        try:
            if isinstance(default, tuple):
                parts = text.split(",")
                if len(parts) != len(default):
                    raise ValueError
                changes[name] = tuple(_parsed(d, part) for d, part in zip(default, parts))
            else:
                changes[name] = _parsed(default, text)
        except (ValueError, KeyError):
            raise ValueError(f"--set {assignment}: {name} takes {_described(default)}") from None
    return dataclasses.replace(config, **changes)


def _parsed(default, text: str):
    if isinstance(default, bool):  # bool("false") would be True
        return {"true": True, "false": False}[text.lower()]
    return type(default)(text)


def _described(default) -> str:
    if isinstance(default, tuple):
        return f"{len(default)} comma-separated {type(default[0]).__name__}s like {','.join(map(str, default))}"
    kind = type(default).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} like {default}"


def fit(family: Family, config: TrainConfig, command: str | None = None, log=print) -> dict:
    """Train ``family`` per ``config``; resumes from ``<out>/state.safetensors`` if present.
    Returns the card of the serving checkpoint written at the last epoch."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    # The test set is never read here: per-epoch figures come from training images held out.
    model_config = family.model_config
    if family.load_data:
        train_split, held_out = family.load_data(config)
    else:
        dataset = datasets.get(config.dataset)
        model_config = dataset.sized(model_config, family.name)
        train_split, held_out = dataset.train_and_held_out(config.data_dir, config.held_out)
    steps = data.steps_per_epoch(train_split, config.batch_size)
    parallel = DataParallel(config.devices or default_device_count(config.batch_size))
    parallel.check_batch_size(config.batch_size)
    training = family.create(model_config, config, steps * config.epochs)
    started_from = None
    if config.init_from:  # fine-tuning: the weights of a serving checkpoint of this family, verified
        parent = checkpoint.verify(Path(config.init_from))
        checkpoint.load_state(Path(config.init_from), family.serving_model(training), fill_missing=family.grow_layer)
        # The card keeps how the starting weights were made: the path may be overwritten later.
        started_from = {key: parent.get(key) for key in ("sha256", "command", "epochs_trained", "train_seconds",
                                                         "started_from")}

    state_path, history_path = out / "state.safetensors", out / "history.jsonl"
    start_epoch, train_seconds = 0, 0.0
    if state_path.exists():
        meta = checkpoint.load_state(state_path, training)
        saved = meta.get("train_config", {})
        if saved and (saved["epochs"], saved["batch_size"]) != (config.epochs, config.batch_size):
            raise checkpoint.CheckpointError(
                f"{state_path}: was trained with --epochs {saved['epochs']} --batch-size {saved['batch_size']}; "
                "resume with the same values or choose another --out")
        start_epoch, train_seconds = meta["epoch"], meta.get("train_seconds", 0.0)
        log(f"resuming {family.name} from {state_path} after epoch {start_epoch}")
    parallel.place(training)
    log(f"training {family.name} data-parallel on {parallel.device_count} {jax.devices()[0].platform} device(s), "
        f"{config.batch_size // parallel.device_count} images per device per step, {config.precision}")

    run = Steps(family, training, train_split, config.batch_size, config.seed, parallel, first_step=start_epoch * steps)
    card = None
    for epoch in range(start_epoch, config.epochs):
        progress = Progress(config.batch_size)
        bar = tqdm(total=steps * config.batch_size, unit="img", unit_scale=True, file=sys.stderr,
                   desc=f"{family.name} epoch {epoch + 1}/{config.epochs}", mininterval=2.0)
        for i in range(steps):
            progress.add(run())
            bar.update(config.batch_size)
            if i % 25 == 0:
                bar.set_postfix_str(progress.describe(fraction_done=(i + 1) / steps), refresh=False)
        bar.close()
        progress.finish()
        train_seconds += progress.seconds
        results = {}
        if len(held_out):
            results = {k: float(v) for k, v in family.evaluate(training, held_out, train_split).items()}
            save_png(family.epoch_picture(training, held_out), out / f"epoch_{epoch + 1:03d}.png", scale=2)
        record = {"epoch": epoch + 1, "train_seconds": round(train_seconds, 1), **results}
        log(json.dumps(record))
        with history_path.open("a") as history:
            history.write(json.dumps(record) + "\n")
        card = checkpoint.save_serving(out / f"{family.name}.safetensors", family.serving_model(training), {
            "family": family.name,
            "config": dataclasses.asdict(model_config),
            "dataset": family.dataset or config.dataset,
            "train_config": dataclasses.asdict(config),
            "command": command or f"imgjax train {family.name}",
            "epochs_trained": epoch + 1,
            "train_seconds": round(train_seconds, 1),
            "train_metrics": results,
            **({"started_from": started_from} if started_from else {}),
            "jax": jax.__version__,
            "device": parallel.describe(),
        })
        # The training state is written last: if we are killed between the two files, the resumed
        # run redoes this epoch rather than skipping one.
        checkpoint.save_state(state_path, training, {
            "epoch": epoch + 1, "train_seconds": train_seconds, "train_config": dataclasses.asdict(config)})
    return card or checkpoint.read_card(out / f"{family.name}.safetensors")


class Steps:
    """A run's training steps, shared by ``fit`` and the Lab (``imgjax.lab``): batches of the training
    split, in a fresh order each epoch (``data.batches``), split over the devices, through the
    family's jit-compiled step with its options. Each call runs one step and returns its metrics
    (device arrays, not waited for)."""

    def __init__(self, family: Family, training, split: data.Split, batch_size: int, seed: int,
                 parallel: DataParallel, first_step: int = 0):
        self.family, self.training, self.split, self.parallel = family, training, split, parallel
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = data.steps_per_epoch(split, batch_size)
        self.step = first_step  # steps taken so far, over every epoch
        self.key = jax.random.key(seed)
        self._batches = None

    def __call__(self) -> dict:
        if self._batches is None or self.step % self.per_epoch == 0:
            epoch, done = divmod(self.step, self.per_epoch)
            self._batches = itertools.islice(data.batches(self.split, self.batch_size, self.seed, epoch), done, None)
        images, labels = self.parallel.shard(*next(self._batches))
        metrics = self.family.train_step(self.training, images, labels, jax.random.fold_in(self.key, self.step),
                                         **self.family.step_options(self.training, self.step))
        self.step += 1
        return metrics


class Progress:
    """How a run is going, as ``fit``'s progress bar and the Lab's page report it: images per second
    over the last few seconds, and each metric's latest value. ``add`` takes one step's metrics; it
    waits for the step before last, so the devices always have the next step queued."""

    def __init__(self, batch_size: int, window_s: float = 5.0):
        self.batch_size, self.window_s = batch_size, window_s
        self.started = time.perf_counter()
        self.seconds = 0.0  # time spent in steps (``pause`` stops the clock)
        self.images = 0
        self.latest: dict[str, float] = {}
        self._pending = None
        self._marks = [(self.started, 0)]  # (time, images) of finished steps, over the window

    def add(self, metrics: dict) -> dict[str, float] | None:
        """Count a step just dispatched; returns the previous step's metrics as floats (None at first)."""
        finished, self._pending = self._pending, metrics
        return self._finish(finished) if finished is not None else None

    def finish(self) -> dict[str, float] | None:
        """Wait for the last step; its metrics as floats."""
        finished, self._pending = self._pending, None
        return self._finish(finished) if finished is not None else None

    def _finish(self, metrics) -> dict[str, float]:
        self.latest = {k: float(v) for k, v in metrics.items()}  # waits for the step
        now = time.perf_counter()
        self.images += self.batch_size
        self.seconds += now - self._marks[-1][0]
        self._marks.append((now, self.images))
        while len(self._marks) > 2 and now - self._marks[1][0] > self.window_s:
            self._marks.pop(0)
        return self.latest

    def pause(self) -> None:
        """Stop the clock (the Lab's pause): time until ``resume`` counts neither in ``seconds`` nor
        in the rate."""
        self.finish()

    def resume(self) -> None:
        self._marks = [(time.perf_counter(), self.images)]

    @property
    def images_per_second(self) -> float:
        (first, first_images), (last, last_images) = self._marks[0], self._marks[-1]
        return (last_images - first_images) / (last - first) if last > first else 0.0

    def seconds_left(self, fraction_done: float) -> float:
        """Time left when ``fraction_done`` of the run is done, at the pace so far."""
        return self.seconds * (1.0 - fraction_done) / fraction_done if fraction_done > 0 else float("inf")

    def describe(self, fraction_done: float) -> str:
        """'2,050 img/s, 1:10 left, loss 0.3120 accuracy 0.8900'."""
        left = self.seconds_left(fraction_done)
        clock = f"{int(left // 60)}:{int(left % 60):02d} left" if left != float("inf") else "starting"
        figures = " ".join(f"{k} {v:.4f}" for k, v in self.latest.items())
        return f"{self.images_per_second:,.0f} img/s, {clock}, {figures}".rstrip(", ")


def command_line(argv: list[str] | None = None) -> str:
    """The ``imgjax`` command as typed: ``argv`` (as given to ``cli.main``), else the process's arguments."""
    return "imgjax " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
