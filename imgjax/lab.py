"""The Lab: train a GAN, a CNN or an autoencoder for a time budget and watch it learn.

A Lab run is the real thing: the family's model and jit-compiled train step, run by the training
loop's own pieces (``train.Steps`` takes the steps, ``train.Progress`` measures them, as in
``imgjax train``), with a recipe fast enough to show something within its default budget
(``RECIPES``). The learning rate follows the family's schedule by the fraction of the budget spent,
so one compiled step serves any budget. About once a second a run reports what the model does now
(``Update``: loss curves, images per second, time left, and the family's live view); it obeys
pause, resume, single steps and stop; at the end it measures the model on the test set and writes
a checkpoint with its card.

``LabRun`` runs in the process it is created in; ``worker`` is the entry point of the process of
its own that ``imgjax.service.lab`` starts for each run, at the lowest CPU priority, so that the
studio's other tabs answer first. Nothing here imports Gradio.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np


FAMILIES = ("cnn", "ae", "gan")
GAN_LOSSES = ("non-saturating", "hinge")
WIDTHS = (0.5, 1.0, 1.5)  # the width knob: channels x this, from the recipe's
UPDATE_EVERY_S = 1.0  # curves, losses, images per second
RATE_EVERY_S = 0.5  # the learning rate follows the schedule in steps this long
# The live view (pictures and test figures) is redrawn as often as keeps its cost under this share
# of the run's time, at most once per update: on 2 cores, every 1 to 6 seconds.
VIEW_SHARE = 0.03
VIEW_IMAGES = 500  # test pictures behind the live figures (the final ones use the whole test set)


@dataclasses.dataclass(frozen=True)
class LabConfig:
    """The knobs of a run; ``None`` takes the family's recipe (``RECIPES``)."""

    family: str = "cnn"
    dataset: str = "fashion-mnist"  # what it trains on (``DATASETS``)
    budget_s: float | None = None  # seconds of training, compile time not included
    learning_rate: float | None = None
    batch_size: int | None = None
    width: float = 1.0
    seed: int = 0
    gan_loss: str = "non-saturating"
    r1: bool = True  # GAN: the R1 penalty on real images
    ema: bool = True  # GAN: sample from the moving average of the generator's weights
    augment: bool = False  # CNN: random flips and shifts
    # Autoencoder: shares of Gaussian noise, salt and pepper, masked boxes in training.
    corruption_shares: tuple[float, float, float] = (0.65, 0.175, 0.175)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a family trains with in the Lab when the knobs are left alone."""

    model_config: object
    batch_size: int
    learning_rate: float
    budget_s: float


def _recipes() -> dict[str, dict[str, Recipe]]:
    """Each dataset's recipes, by family; sized to the dataset's pictures by ``model_config``."""
    from .ae import AEConfig
    from .cnn import CNNConfig
    from .gan import GANConfig
    garments = {
        # Half the shipped classifier's widths and no augmentation: 2.4x the images per second, and in
        # a minute flips and shifts slow learning more than they help (docs/lab.md).
        "cnn": Recipe(CNNConfig(widths=(16, 32, 64), hidden=128, augment=False), batch_size=128,
                      learning_rate=4e-3, budget_s=60),
        # Half the shipped autoencoder's widths and one convolution fewer per stage (4x the images per
        # second), at twice its learning rate and half its batch (more steps in the minute).
        "ae": Recipe(AEConfig(widths=(32, 64), depths=(1, 2, 1)), batch_size=64, learning_rate=4e-3, budget_s=60),
        # Half the shipped GAN's widths (2.5x the images per second) at 4x its learning rate, and an
        # average of the generator that remembers ~100 steps, where the shipped one's ~1,400 would
        # still hold the noise of its start after two minutes.
        "gan": Recipe(GANConfig(generator_widths=(48, 24, 12), discriminator_widths=(32, 64), ema_decay=0.99),
                      batch_size=64, learning_rate=2e-3, budget_s=120),
    }
    # Emoji (docs/lab.md has the runs): the garments' CNN; their autoencoder, colouring a quarter of
    # its batches as the shipped emoji one does; their GAN with shifted pictures for D (DiffAugment),
    # without the minibatch spread, which costs a quarter of each step here, and with D's head naming
    # each picture's condition, as the shipped emoji GAN.
    emoji = {
        "cnn": garments["cnn"],
        "ae": Recipe(AEConfig(widths=(32, 64), depths=(1, 2, 1), gray_share=0.25), batch_size=64,
                     learning_rate=4e-3, budget_s=60),
        "gan": Recipe(dataclasses.replace(garments["gan"].model_config, diff_augment="translation",
                                          minibatch_std_group=0, class_loss_weight=1.0),
                      batch_size=64, learning_rate=2e-3, budget_s=120),
    }
    return {"fashion-mnist": garments, "emoji": emoji}


RECIPES = _recipes()
DATASETS = tuple(RECIPES)  # the datasets the Lab trains on


def recipe(family: str, dataset: str = "fashion-mnist") -> Recipe:
    return RECIPES[dataset][family]


def resolved(config: LabConfig) -> LabConfig:
    """``config`` with every ``None`` replaced by the family's recipe. Raises ValueError on a knob
    out of range, naming it."""
    if config.family not in FAMILIES:
        raise ValueError(f"family {config.family!r}: expected one of {', '.join(FAMILIES)}")
    if config.dataset not in DATASETS:
        raise ValueError(f"dataset {config.dataset!r}: expected one of {', '.join(DATASETS)}")
    chosen = recipe(config.family, config.dataset)
    config = dataclasses.replace(
        config, budget_s=float(config.budget_s or chosen.budget_s),
        learning_rate=float(config.learning_rate or chosen.learning_rate),
        batch_size=int(config.batch_size or chosen.batch_size))
    if config.width not in WIDTHS:
        raise ValueError(f"width {config.width}: expected one of {', '.join(map(str, WIDTHS))}")
    if config.gan_loss not in GAN_LOSSES:
        raise ValueError(f"GAN loss {config.gan_loss!r}: expected {' or '.join(GAN_LOSSES)}")
    shares = config.corruption_shares
    if config.family == "ae" and (len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0):
        raise ValueError("corruption mix: three shares (Gaussian, salt and pepper, boxes), not negative, not all 0")
    return config


def model_config(config: LabConfig):
    """The family's model config for a resolved ``config``: the recipe's, sized to the dataset's
    pictures, with the knobs applied."""
    from .datasets import get
    base = get(config.dataset).sized(recipe(config.family, config.dataset).model_config, config.family)
    scaled = lambda widths: tuple(max(4, round(w * config.width / 4) * 4) for w in widths)
    if config.family == "cnn":
        return dataclasses.replace(base, widths=scaled(base.widths), hidden=scaled((base.hidden,))[0],
                                   augment=config.augment)
    if config.family == "ae":
        total = sum(config.corruption_shares)
        return dataclasses.replace(base, widths=scaled(base.widths),
                                   corruption_shares=tuple(s / total for s in config.corruption_shares))
    return dataclasses.replace(base, generator_widths=scaled(base.generator_widths),
                               discriminator_widths=scaled(base.discriminator_widths), loss=config.gan_loss,
                               r1_gamma=base.r1_gamma if config.r1 else 0.0,
                               ema_decay=base.ema_decay if config.ema else 0.0)


@dataclasses.dataclass
class Update:
    """What a run reports, about once a second and when it ends."""

    state: str  # "compiling", "training", "paused", "measuring", "finished", "stopped", "failed"
    family: str
    step: int = 0
    images: int = 0
    seconds: float = 0.0  # of training, pauses not counted
    budget_s: float = 0.0
    images_per_second: float = 0.0
    compile_s: float = 0.0
    metrics: dict = dataclasses.field(default_factory=dict)  # the last step's losses
    figures: dict = dataclasses.field(default_factory=dict)  # the live view's figures (test images)
    curves: np.ndarray | None = None  # uint8 picture of the losses so far
    view: np.ndarray | None = None  # uint8 picture: the GAN's grid, the confusion matrix, restorations
    mistakes: np.ndarray | None = None  # CNN: uint8 picture of current mistakes
    message: str = ""  # an error, or how the run ended
    checkpoint: str | None = None  # the weights file, when finished
    card: dict | None = None
    dataset: str = "fashion-mnist"  # what the run trains on

    @property
    def seconds_left(self) -> float:
        return max(self.budget_s - self.seconds, 0.0)

    @property
    def done(self) -> bool:
        return self.state in ("finished", "stopped", "failed")


# ----------------------------------------------------------------------------- live views

class LiveView:
    """A family's figures and pictures on fixed test pictures, for the page, while it trains."""

    def __init__(self, family: str, test, classifier=None):
        from .data import to_float
        self.family, self.classes = family, test.classes
        # The same random draw of test pictures all along (a split may be ordered by class).
        chosen = np.sort(np.random.default_rng(0).permutation(len(test.images))[:VIEW_IMAGES])
        self.images = to_float(test.images[chosen])
        self.labels = np.asarray(test.labels[chosen])
        self.classifier = classifier  # the dataset's shipped CNN, which names the GAN's samples
        if family == "gan":  # the same ten latents all along, drawn once
            from .gan import GANConfig, sample_latents
            self.latents = np.tile(np.asarray(sample_latents(0, 10, GANConfig().latent_dim)), (len(self.classes), 1))

    def __call__(self, model) -> tuple[dict, np.ndarray, np.ndarray | None]:
        """The serving model (``on_one_device``) -> (figures, view picture, mistakes picture or None)."""
        return getattr(self, f"_{self.family}")(model)

    def _cnn(self, model):
        from .cnn import balanced_accuracy, predict_in_batches, predict_probabilities
        from .images import confusion_matrix_image
        k = len(self.classes)
        predicted = predict_in_batches(predict_probabilities, model, self.images, VIEW_IMAGES).argmax(-1)
        matrix = np.bincount(self.labels * k + predicted, minlength=k * k).reshape(k, k)
        wrong = np.nonzero(predicted != self.labels)[0][:12]
        mistakes = labelled_tiles(self.images[wrong], [(f"is {self.classes[self.labels[i]]}",
                                                        f"said {self.classes[predicted[i]]}") for i in wrong])
        return ({f"test accuracy, {len(self.labels)} pictures": float(np.mean(predicted == self.labels)),
                 "balanced (mean over classes)": balanced_accuracy(matrix)},
                np.asarray(confusion_matrix_image(matrix, self.classes, cell=40, text=17)), mistakes)

    def _ae(self, model):
        import jax
        import jax.numpy as jnp

        from .ae import corrupted_examples, restore_aligned
        from .corruptions import gaussian_noise
        from .metrics import psnr
        clean = jnp.asarray(self.images[:100])
        restored = restore_aligned(model, gaussian_noise(jax.random.key(0), clean, 0.2))
        examples = jnp.asarray(self.images[:8])
        rows, names = [], []
        for name, corrupted in corrupted_examples(examples).items():
            rows += [corrupted, restore_aligned(model, corrupted)]
            names += [name, "restored"]
        picture = labelled_grid([*rows, examples], [*names, "clean"])
        return {"test PSNR, Gaussian 0.2 (dB), 100 pictures": float(psnr(clean, restored).mean())}, picture, None

    def _gan(self, generator):
        from .cnn import predict_probabilities
        from .gan import generate_for_classes, generate_images
        styles, k = max(generator.num_styles, 1), len(self.classes)
        figures = {}
        if self.classifier is not None:  # each condition (class, or class and style) in turn
            images, conditions = generate_for_classes(generator, 20 * k * styles, seed=1)
            figures[f"named as their class, {len(images)} samples"] = float(np.mean(
                np.asarray(predict_probabilities(self.classifier, images)).argmax(-1) == conditions // styles))
        # The same ten latents all along (one column each), in every class (one row each); with
        # styles, the columns take the styles in turn.
        conditions = np.repeat(np.arange(k), 10) * styles + np.tile(np.arange(10) % styles, k)
        grid = generate_images(generator, self.latents, conditions)
        return figures, labelled_grid(np.split(np.asarray(grid), k), self.classes), None


def on_one_device(module):
    """A copy of an NNX module on the first device. Inference on a model replicated over several
    devices computes the same thing on each of them: on a CPU's host devices, several times the work."""
    import jax
    from flax import nnx
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, jax.device_put(state, jax.devices()[0]))


def labelled_grid(rows: list, names, text: int = 24) -> np.ndarray:
    """Rows of (N, side, side, channels) images, each named in a margin on its left: a uint8 picture whose names
    stay 12 pixels high or more where the page shows it (~55% of its size)."""
    from .images import image_grid, label_rows, upscale
    grid = upscale(image_grid(np.concatenate([np.asarray(row) for row in rows]), rows=len(rows)), 2)
    return label_rows(grid, names, text=text)


def labelled_tiles(images: np.ndarray, captions: list[tuple[str, str]], scale: int = 3, columns: int = 6) -> np.ndarray:
    """(N, side, side, channels) floats and two caption lines each -> one uint8 RGB picture, ``columns``
    a row."""
    from PIL import Image, ImageDraw

    from .images import font, to_uint8, upscale
    letters = font(15)
    side = images.shape[1] if len(images) else 28
    tile, text, width = side * scale, 38, side * scale + 50
    rows = max(1, -(-len(images) // columns))
    picture = Image.new("RGB", (columns * width + 4, rows * (tile + text + 8) + 4), "white")
    draw = ImageDraw.Draw(picture)
    for i, (image, (first, second)) in enumerate(zip(images, captions)):
        r, c = divmod(i, columns)
        left, top = 4 + c * width, 4 + r * (tile + text + 8)
        picture.paste(Image.fromarray(upscale(to_uint8(image if image.shape[-1] == 3 else image[..., 0]), scale)),
                    (left, top))
        draw.text((left, top + tile + 1), first[:17], fill="black", font=letters)
        draw.text((left, top + tile + 19), second[:17], fill="#9a3412", font=letters)
    if not len(images):
        draw.text((8, 8), "no mistakes on these test images", fill="black", font=letters)
    return np.asarray(picture)


# ----------------------------------------------------------------------------- the run

class LabRun:
    """One run, in this process: build, compile, then ``run`` until the budget is spent or ``stop``.

    Commands (``"pause"``, ``"resume"``, ``"step"``, ``"stop"``) come from ``commands()``, called
    between steps, which returns the ones received since; ``report(update)`` receives each Update."""

    def __init__(self, config: LabConfig, out_dir: Path, report, commands=list, data_dir=None,
                 dataset: str | None = None, held_out: int | None = None):
        """``dataset``: read another dataset of the same pictures than ``config.dataset`` (tests: a
        tiny MNIST-format one in ``data_dir``)."""
        from .data import HELD_OUT_IMAGES
        self.config = resolved(config)
        self.out_dir, self.report, self.commands, self.data_dir = Path(out_dir), report, commands, data_dir
        # Trained on the pictures `imgjax train` trains on: the training split less the held-out ones.
        self.dataset = dataset or self.config.dataset
        self.held_out = HELD_OUT_IMAGES if held_out is None else held_out

    def run(self) -> Update:
        try:
            return self._run()
        except Exception as error:  # noqa: BLE001 (the page shows it; the server goes on)
            update = Update("failed", self.config.family, message=f"{type(error).__name__}: {error}")
            self.report(update)
            return update

    def _run(self) -> Update:
        import jax

        from . import checkpoint, datasets
        from .family import load_family, set_learning_rate
        from .parallel import DataParallel, default_device_count
        from .train import Progress, Steps, TrainConfig
        config = self.config
        family = load_family(config.family)
        self.report(Update("compiling", config.family, budget_s=config.budget_s, dataset=config.dataset))
        started = time.perf_counter()
        family_config = model_config(config)
        train_config = TrainConfig(family=config.family, epochs=1, batch_size=config.batch_size,
                                   learning_rate=config.learning_rate, seed=config.seed, dataset=self.dataset,
                                   data_dir=self.data_dir, held_out=self.held_out)
        dataset = datasets.get(self.dataset)
        train_split, _ = dataset.train_and_held_out(self.data_dir, self.held_out)
        test = dataset.test(self.data_dir)
        parallel = DataParallel(default_device_count(config.batch_size))
        parallel.check_batch_size(config.batch_size)
        training = family.create(family_config, train_config, None)  # None: the rate is set here, by time
        parallel.place(training)
        steps = Steps(family, training, train_split, config.batch_size, config.seed, parallel)
        classifier = checkpoint.load_if_present("cnn", config.dataset) if config.family == "gan" else None
        view = LiveView(config.family, test, classifier)
        progress = Progress(config.batch_size)
        history: list[tuple[int, dict]] = []

        def rate_now():
            set_learning_rate(training, family.learning_rate_at(family_config, train_config,
                                                                progress.seconds / config.budget_s))

        # Compile: the first step (and the R1 variant for the GAN), and the live view.
        rate_now()
        jax.block_until_ready(steps())
        if config.family == "gan" and family_config.r1_gamma:
            jax.block_until_ready(steps())
        figures, picture, mistakes = view(on_one_device(family.serving_model(training)))
        compile_s = time.perf_counter() - started
        progress.resume()  # the clock starts now

        state, single_steps, last_update, next_view, next_rate = "training", 0, 0.0, 0.0, 0.0
        snapshot = lambda state, **extra: Update(
            state, config.family, step=steps.step, images=progress.images, seconds=progress.seconds,
            budget_s=config.budget_s, images_per_second=progress.images_per_second, compile_s=compile_s,
            metrics=dict(progress.latest), figures=figures, curves=loss_curves(history, config.family),
            view=picture, mistakes=mistakes, dataset=config.dataset, **extra)
        self.report(snapshot(state))
        while True:
            for command in self.commands():
                if command == "stop":
                    state = "stopped"
                elif command == "pause" and state == "training":
                    progress.pause()
                    state = "paused"
                    self.report(snapshot(state))
                elif command == "resume" and state == "paused":
                    progress.resume()
                    state = "training"
                    self.report(snapshot(state))
                elif command == "step" and state == "paused":
                    single_steps += 1
            if state == "stopped" or progress.seconds >= config.budget_s:
                break
            if state == "paused" and not single_steps:
                time.sleep(0.02)
                continue
            if state == "paused":  # one step, then show it
                progress.resume()
                progress.add(steps())
                history.append((steps.step, progress.finish()))
                progress.pause()
                single_steps -= 1
                figures, picture, mistakes = view(on_one_device(family.serving_model(training)))
                self.report(snapshot("paused"))
                continue
            now = time.perf_counter()
            if now >= next_rate:
                rate_now()
                next_rate = now + RATE_EVERY_S
            finished = progress.add(steps())
            if finished is not None:
                history.append((steps.step - 1, finished))
            if now >= next_view:
                figures, picture, mistakes = view(on_one_device(family.serving_model(training)))
                next_view = now + max(UPDATE_EVERY_S, (time.perf_counter() - now) / VIEW_SHARE)
            if now - last_update >= UPDATE_EVERY_S:
                self.report(snapshot(state))
                last_update = now
        if not progress.images:  # stopped while compiling: nothing trained, nothing to measure or keep
            update = snapshot("stopped", message="Stopped before training began: no model was kept.")
            self.report(update)
            return update
        finished = progress.finish()
        if finished is not None:
            history.append((steps.step, finished))
        ended = "stopped" if state == "stopped" else "finished"
        self.report(snapshot("measuring"))
        serving = on_one_device(family.serving_model(training))
        figures, picture, mistakes = view(serving)
        test_figures = measure(config.family, serving, test, classifier)
        weights = self.out_dir / f"{config.family}.safetensors"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        card = checkpoint.save_serving(weights, serving, {
            "family": config.family,
            "config": dataclasses.asdict(family_config),
            "dataset": self.dataset,
            "lab_config": dataclasses.asdict(config),
            "command": "the studio's Lab tab",
            "steps": steps.step, "images_trained": progress.images,
            "train_seconds": round(progress.seconds, 1), "compile_seconds": round(compile_s, 1),
            "images_per_second": round(progress.images_per_second, 1),
            "metrics": test_figures, "test_pictures": len(test.images),
            "jax": jax.__version__,
            "device": parallel.describe(),
        })
        update = snapshot(ended, checkpoint=str(weights), card=card,
                          message=f"{'Stopped' if ended == 'stopped' else 'Finished'} after {steps.step} steps.")
        self.report(update)
        return update


def measure(family: str, model, test, classifier=None) -> dict:
    """The run's figures on the whole test set, as ``imgjax eval`` gives its headline ones: the CNN's
    accuracy (plain and balanced: the mean over classes), the autoencoder's PSNR at Gaussian sigma
    0.2, the share of the GAN's samples (10,000, conditions in turn) that the dataset's shipped
    classifier names as their class."""
    import jax
    import jax.numpy as jnp

    from .data import to_float
    if family == "cnn":
        from .cnn import balanced_accuracy, confusion_matrix
        matrix = confusion_matrix(model, test)
        return {"test_accuracy": float(np.trace(matrix) / matrix.sum()), "test_balanced_accuracy": balanced_accuracy(matrix)}
    if family == "ae":
        from .ae import restore_aligned
        from .corruptions import gaussian_noise
        from .metrics import psnr
        values = []
        for start in range(0, len(test.images), 1000):
            clean = jnp.asarray(to_float(test.images[start:start + 1000]))
            noisy = gaussian_noise(jax.random.fold_in(jax.random.key(0), start), clean, 0.2)
            values.append(np.asarray(psnr(clean, restore_aligned(model, noisy))))
        return {"psnr_gaussian_0.2": float(np.concatenate(values).mean())}
    if classifier is None:
        return {}
    from .gan import sample_features
    _, labels, predicted, *_ = sample_features(model, classifier, seed=1)
    return {"conditional_accuracy": float(np.mean(predicted == labels))}


def loss_curves(history: list[tuple[int, dict]], family: str) -> np.ndarray:
    """The losses so far against the step, smoothed (an exponential moving average, as TensorBoard
    draws them), as a uint8 RGB picture."""
    from .images import line_chart
    names = ("d_loss", "g_loss") if family == "gan" else ("loss",)
    steps = np.array([step for step, _ in history], np.float32)
    series = {}
    for name in names:
        values = np.array([metrics.get(name, np.nan) for _, metrics in history], np.float32)
        series[{"d_loss": "discriminator", "g_loss": "generator"}.get(name, name)] = (steps, smoothed(values))
    if family == "cnn":
        values = np.array([metrics.get("accuracy", np.nan) for _, metrics in history], np.float32)
        series["batch accuracy (right axis)"] = (steps, smoothed(values))
    return line_chart(series, x_label="step", right_axis="batch accuracy (right axis)" if family == "cnn" else None)


def smoothed(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    out, running = np.empty_like(values), None
    for i, value in enumerate(values):
        running = value if running is None else weight * running + (1 - weight) * value
        out[i] = running
    return out


# ----------------------------------------------------------------------------- its own process

def start_process(config: LabConfig, out_dir: Path, cache_dir: str | None = None, data_dir=None):
    """Start a run in a process of its own (``worker``); returns (process, connection): the run's
    Updates arrive on the connection, and commands sent on it reach the run."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")  # JAX's threads make fork unsafe
    parent, child = context.Pipe()
    process = context.Process(target=worker, args=(config, child, str(out_dir), cache_dir, data_dir), daemon=True,
                              name=f"imgjax-lab-{config.family}")
    process.start()
    child.close()
    return process, parent


def run_in_process(config: LabConfig, out_dir: Path, on_update=lambda update: None, **options) -> Update:
    """Run ``config`` in a process of its own to the end; returns the last Update."""
    process, connection = start_process(config, out_dir, **options)
    update = None
    try:
        while update is None or not update.done:
            update = connection.recv()
            on_update(update)
    except EOFError:
        update = Update("failed", config.family, message="the run's process ended before it finished")
    process.join(timeout=30)
    return update


def worker(config: LabConfig, connection, out_dir: str, cache_dir: str | None = None, data_dir=None) -> None:
    """Entry point of a run's process (``multiprocessing``, spawned): the lowest CPU priority, then
    XLA's devices as ``imgjax train`` sets them, then the run, reporting through ``connection``
    (``Update`` objects in, command strings out). Ends when the run does."""
    try:  # SCHED_IDLE: this process gets the cores only when the server's threads leave them
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    from .parallel import configure_cpu_for_training, enable_compilation_cache
    configure_cpu_for_training(family=config.family)
    enable_compilation_cache(cache_dir)

    def commands():
        received = []
        while connection.poll():
            received.append(connection.recv())
        return received

    try:
        LabRun(config, Path(out_dir), report=connection.send, commands=commands, data_dir=data_dir).run()
    except (BrokenPipeError, EOFError):  # the server has gone: no one to report to
        return
    connection.close()
