"""The Lab tab's actions: visitors' training runs, one at a time, each in a process of its own.

A visitor (a browser session, or an API client's) asks for a run with some knobs (``imgjax.lab``'s
``LabConfig``); the run waits in line while another trains (``LabTab.max_runs`` at once, 1 by
default: a Space has 2 cores for everyone), then trains in a spawned process at the lowest CPU
priority, so the other tabs keep answering. The page polls ``status`` about once a second; a run
whose visitor stops polling (the tab closed) is stopped, and so is one paused too long or past the
server's time cap. A finished run's model is loaded for its visitor alone (``trained``): the other
tabs offer it beside the shipped one, and its checkpoint and card download. The shipped checkpoints
are never touched.

A visitor is a session (which the client names) from an address: each may hold one run or one place
in line, the line holds ``MAX_WAITING`` places, and a visitor's new Start takes over their own place.
Nothing a client sends becomes part of a path: runs are written to folders the server names.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..datasets import get as get_dataset
from ..lab import DATASETS, WIDTHS, LabConfig, Update, resolved, start_process
from ..user_input import (
    MAX_SEED,
    InputError,
    check_choice,
    check_int,
    check_range,
    shown,
)

log = logging.getLogger("imgjax.lab")

# A run whose page has not asked for news this long is taken as abandoned (the page asks every second).
ABANDONED_AFTER_S = 15.0
PAUSE_LIMIT_S = 300.0  # a paused run is stopped after this long, so it cannot hold the line forever
# A run that has not started training after this much of its process's own CPU time is stopped; the
# worker runs at idle priority, so on a busy host the clock alone would stop compiles that are merely waiting.
COMPILE_CPU_LIMIT_S = 180.0
COMPILE_WALL_LIMIT_S = 900.0  # ... or after this long on the clock (a hung compile spends no CPU time)
MAX_BUDGET_S = 300.0  # the default time cap per run (``python app.py --lab-max-seconds``)
MEMORY_LIMIT_BYTES = 3 * 2**30  # a run's process resident above this is stopped (one takes ~1-1.5 GB)
KEEP_SESSIONS = 32  # visitors whose trained models are kept (the least recently seen are dropped)
MAX_WAITING = 8  # places in the Lab's line; later visitors are asked to come back
LAB_FOLDERS = Path(tempfile.gettempdir()) / "imgjax-lab"  # one folder per server process: lab-<pid>
COMMANDS = ("pause", "resume", "step", "stop")
SHIPPED, YOURS = "Shipped", "Yours (Lab)"  # the other tabs' "Model" choice
COMMAND_WAIT_S = 5.0  # a control answers once its run has taken the command, or after this long
# What a control's answer says when its run has not taken the command within COMMAND_WAIT_S (a busy host).
PENDING = {"pause": "Pausing after the step under way…", "resume": "Resuming…", "step": "Taking one step…",
           "stop": "Stopping after the step under way…"}
# For each command, given the run's Update when it was sent: whether a later Update shows it done.
_COMMAND_DONE = {
    "pause": lambda before: lambda update: update.state != "training",
    "resume": lambda before: lambda update: update.state != "paused",
    "step": lambda before: lambda update: update.step > before.step or update.state != "paused",
    "stop": lambda before: lambda update: update.state not in ("training", "paused"),
}


FAMILY_LABELS = {"CNN (classifier)": "cnn", "Autoencoder (denoiser)": "ae", "GAN (generator)": "gan"}
GAN_LOSS_LABELS = {"Non-saturating": "non-saturating", "Hinge": "hinge"}
BATCH_SIZES = (32, 64, 128, 256)
WIDTH_LABELS = tuple(f"{width:g}" for width in WIDTHS)  # "0.5", "1", "1.5"
DATASET_LABELS = {get_dataset(name).title: name for name in DATASETS}  # "Garments", "Emoji"


def lab_config(family, learning_rate, batch_size, width, seed, budget_s, gan_loss="Non-saturating", r1=True,
               ema=True, augment=True, gaussian=0.65, salt_and_pepper=0.175, boxes=0.175,
               dataset="Garments") -> LabConfig:
    """The page's knobs, as sent, -> a LabConfig; raises InputError naming a knob out of range."""
    family = FAMILY_LABELS[check_choice("Model", family, list(FAMILY_LABELS))]
    dataset = DATASET_LABELS[check_choice("Dataset", dataset, list(DATASET_LABELS))]
    flags = {"R1 penalty": r1, "EMA": ema, "Augmentation": augment}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false, got {value!r}.")
    return LabConfig(
        family=family, dataset=dataset, learning_rate=check_range("Learning rate", learning_rate, 1e-5, 0.1),
        batch_size=int(check_choice("Batch size", str(batch_size), [str(b) for b in BATCH_SIZES])),
        width=float(check_choice("Width", width, WIDTH_LABELS)), seed=check_int("Seed", seed, 0, MAX_SEED),
        budget_s=check_range("Time budget", budget_s, 5, MAX_BUDGET_S * 100),
        gan_loss=GAN_LOSS_LABELS[check_choice("GAN loss", gan_loss, list(GAN_LOSS_LABELS))],
        r1=r1, ema=ema, augment=augment,
        corruption_shares=(check_range("Gaussian share", gaussian, 0, 1),
                           check_range("Salt-and-pepper share", salt_and_pepper, 0, 1),
                           check_range("Boxes share", boxes, 0, 1)))


@dataclasses.dataclass
class Trained:
    """A visitor's model from a finished run."""

    family: str
    model: object
    card: dict
    weights: Path  # its safetensors file; the card's JSON lies beside it
    dataset: str  # what it was trained on (``datasets.DATASETS``' names)
    tabs: dict = dataclasses.field(default_factory=dict)  # the other tabs' actions on it, made on first use


@dataclasses.dataclass
class Status:
    """What the page shows of a visitor's run: its latest Update, or its place in line."""

    update: Update | None
    place_in_line: int = 0  # 1: next to start; 0: not waiting
    message: str = ""
    active: bool = False  # waiting, starting or training: more news to come
    pending: str = ""  # a command the run has not taken yet (``PENDING``)


class _Run:
    def __init__(self, name: str, session: str, address: str, config: LabConfig, directory: Path):
        self.name = name  # the server's name for the run, in its folder and the log
        self.session, self.address, self.config, self.directory = session, address, config, directory
        self.latest: Update | None = None
        self.process = None
        self.connection = None
        self.started = self.paused_since = None
        self.stop_reason = ""  # why the server stopped it, if it did
        self.stopping = False  # asked to stop: it no longer counts as its visitor's run
        self.finished = threading.Event()


class LabTab:
    """Every visitor's runs and trained models, and the supervisor that starts, watches and stops
    the runs. ``max_budget_s`` caps the time budget a visitor may ask for."""

    def __init__(self, max_runs: int = 1, max_budget_s: float = MAX_BUDGET_S, data_dir=None,
                 cache_dir: str | None = None, abandoned_after_s: float = ABANDONED_AFTER_S):
        self.max_runs, self.max_budget_s = max_runs, max_budget_s
        self.data_dir, self.cache_dir, self.abandoned_after_s = data_dir, cache_dir, abandoned_after_s
        self.root = lab_folder()
        self._numbers = itertools.count(1)
        self._lock = threading.RLock()
        self._waiting: list[_Run] = []
        self._running: list[_Run] = []
        self._ended: dict[str, _Run] = {}  # each visitor's last ended run, until they start another
        self._seen: dict[str, float] = {}  # sessions with a run or a model: when they last asked
        self._trained: dict[str, dict[str, Trained]] = {}
        threading.Thread(target=self._supervise, daemon=True, name="imgjax-lab").start()

    # ------------------------------------------------------------------ actions

    def start(self, session: str, config: LabConfig, address: str = "") -> Status:
        """Queue a run for ``session`` from client ``address``: a new place in line, or their waiting
        place taken over (their running run, if any, is stopped). Raises InputError on a knob out of
        range, when another session from ``address`` holds a run or a place, or when the line is full."""
        try:
            config = resolved(config)
        except ValueError as error:
            raise InputError(str(error)) from None
        if not 5 <= config.budget_s <= self.max_budget_s:
            raise InputError(f"Time budget {config.budget_s:g} s: choose 5 to {self.max_budget_s:g} seconds.")
        if config.batch_size not in BATCH_SIZES:
            raise InputError(f"Batch size {config.batch_size}: choose one of {', '.join(map(str, BATCH_SIZES))}.")
        with self._lock:
            waiting = next((run for run in self._waiting if run.session == session), None)
            if waiting is not None:  # the visitor's new knobs, in the place they already hold
                waiting.config = config
                run = waiting
            else:
                if address and any(run.address == address and run.session != session and not run.stopping
                       for run in [*self._waiting, *self._running]):
                    raise InputError("Another page from your address already has a Lab run training or waiting: "
                                     "stop it there, or wait until it ends.")
                if len(self._waiting) >= MAX_WAITING:
                    raise InputError(f"The Lab's line is full ({MAX_WAITING} runs waiting): try again in a few minutes.")
                self.leave(session, forget_models=False)
                name = f"run-{next(self._numbers)}"
                run = _Run(name, session, address, config, self.root / name)
                self._waiting.append(run)
            self._seen[session] = time.monotonic()
        log.info("lab %s queued: %s", run.name, config)
        self._supervise_once()
        return self.status(session)

    def command(self, session: str, command: str) -> Status:
        """Pause, resume, take one step (while paused) or stop ``session``'s run."""
        if command not in COMMANDS:
            raise InputError(f"The command must be one of {', '.join(COMMANDS)}; got {shown(command)}.")
        with self._lock:
            run = self._find(session)
            if run is None:
                raise InputError("No run to control: start one first.")
            if run in self._waiting:
                if command == "stop":
                    self._waiting.remove(run)
                    return Status(None, message="Left the line.")
                raise InputError("Your run has not started yet.")
            if run.finished.is_set():
                raise InputError("Your run has ended: start another.")
            if command != "stop" and (run.latest is None or run.latest.state == "compiling"):
                raise InputError("Your run is still compiling: wait until it trains.")
            if command == "step" and run.latest.state != "paused":
                raise InputError("Step takes one step of a paused run: pause it first.")
            if command == "pause":
                run.paused_since = time.monotonic()
            elif command == "resume":
                run.paused_since = None
            done = _COMMAND_DONE[command](run.latest) if run.latest else (lambda update: True)
            try:
                run.connection.send(command)
            except OSError:
                pass
        # Answer with the run as the command left it (the run takes it between two steps).
        deadline = time.monotonic() + COMMAND_WAIT_S
        while time.monotonic() < deadline and not done(run.latest) and not run.finished.is_set():
            time.sleep(0.02)
        status = self.status(session)
        if not done(run.latest) and not run.finished.is_set():
            status.pending = PENDING[command]
        return status

    def status(self, session: str) -> Status:
        """``session``'s run as it stands (asking counts as the visitor still being there)."""
        with self._lock:
            if self._find(session) is not None or session in self._trained:
                self._seen[session] = time.monotonic()
            for place, run in enumerate(self._waiting, start=1):
                if run.session == session:
                    ahead = place - 1 + len(self._running)
                    return Status(None, place, f"Waiting: {ahead} run{'s' if ahead != 1 else ''} ahead of yours.",
                                  active=True)
            run = self._find(session)
            if run is None:
                return Status(None, message="")
            return Status(run.latest, message=(run.latest.message if run.latest else "Starting a process…"),
                          active=not run.finished.is_set())

    def trained(self, session: str, family: str) -> Trained | None:
        """``session``'s model of ``family`` from its last finished run, or None."""
        with self._lock:
            return self._trained.get(session, {}).get(family)

    def tab_for(self, session: str, family: str, choice: str, shipped):
        """The actions of a tab (``shipped``: its ``...Tab`` on a dataset's shipped model) on the model
        the visitor chose: ``SHIPPED``, or ``YOURS``, their Lab run's, if trained on the same dataset."""
        if check_choice("Model", choice, (SHIPPED, YOURS)) == SHIPPED:
            return shipped
        trained = self.trained(session, family)
        if trained is None:
            raise InputError(f"You have no {family.upper()} of your own yet: train one in the Lab tab first.")
        if trained.dataset != shipped.dataset.name:
            raise InputError(f"Your {family.upper()} from the Lab was trained on {get_dataset(trained.dataset).noun}: "
                             f"choose {get_dataset(trained.dataset).title}, or train one on {shipped.dataset.noun}.")
        key = type(shipped).__name__
        with self._lock:
            if key not in trained.tabs:
                trained.tabs[key] = shipped.with_model(trained.model, trained.card)
            return trained.tabs[key]

    def leave(self, session: str, forget_models: bool = True) -> None:
        """The visitor has gone (or starts over): stop and forget their run; with ``forget_models``,
        their trained models too."""
        with self._lock:
            self._waiting = [run for run in self._waiting if run.session != session]
            for run in self._running:
                if run.session == session:
                    self._stop(run)
            self._ended.pop(session, None)
            if forget_models:
                for trained in self._trained.pop(session, {}).values():
                    shutil.rmtree(trained.weights.parent, ignore_errors=True)
                self._seen.pop(session, None)

    def close(self) -> None:
        """Stop every run (the server is going down)."""
        with self._lock:
            self._waiting.clear()
            for run in list(self._running):
                self._stop(run)

    # ------------------------------------------------------------------ the supervisor

    def _find(self, session: str) -> _Run | None:
        for run in [*self._waiting, *self._running]:
            if run.session == session:
                return run
        return self._ended.get(session)

    def _supervise(self) -> None:
        while True:
            time.sleep(0.5)
            try:
                self._supervise_once()
            except Exception:  # the supervisor must outlive any one run's trouble
                log.exception("lab supervisor")

    def _supervise_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            gone = lambda run: now - self._seen.get(run.session, 0.0) > self.abandoned_after_s
            for run in [run for run in self._waiting if gone(run)]:
                self._waiting.remove(run)
                log.info("lab %s left the line", run.name)
            for run in list(self._running):
                reason = self._reason_to_stop(run, now, gone(run))
                if reason and not run.stop_reason:
                    log.info("lab %s stopped by the server: %s", run.name, reason)
                    run.stop_reason = reason
                    self._stop(run, kill="memory" in reason)
            while self._waiting and len(self._running) < self.max_runs:
                self._launch(self._waiting.pop(0))
            kept = set(self._trained) | set(self._ended)
            if len(kept) > KEEP_SESSIONS:
                oldest = sorted(kept, key=lambda s: self._seen.get(s, 0.0))
                for session in oldest[:len(kept) - KEEP_SESSIONS]:
                    self.leave(session)

    def _reason_to_stop(self, run: _Run, now: float, gone: bool) -> str:
        if gone:
            return "its page has gone"
        if run.paused_since is not None and now - run.paused_since > PAUSE_LIMIT_S:
            return f"paused for more than {PAUSE_LIMIT_S:.0f} s"
        if run.latest is None or run.latest.state == "compiling":
            if now - run.started > COMPILE_WALL_LIMIT_S:
                return f"not training after {COMPILE_WALL_LIMIT_S / 60:.0f} minutes"
            if cpu_seconds(run.process.pid, default=now - run.started) > COMPILE_CPU_LIMIT_S:
                return f"not training after {COMPILE_CPU_LIMIT_S:.0f} s of compiling"
        if resident_bytes(run.process.pid) > MEMORY_LIMIT_BYTES:
            return f"its process held more than {MEMORY_LIMIT_BYTES / 2**30:.0f} GB of memory"
        return ""

    def _launch(self, run: _Run) -> None:
        run.started = time.monotonic()
        run.process, run.connection = start_process(run.config, run.directory, self.cache_dir, self.data_dir)
        self._running.append(run)
        threading.Thread(target=self._follow, args=(run,), daemon=True, name="imgjax-lab-follow").start()
        log.info("lab %s started: %s", run.name, run.config.family)

    def _follow(self, run: _Run) -> None:
        """Read the run's updates until it ends; then hand its model to its visitor (before the
        last update shows, so a page that sees the run finished finds the model in the other tabs)."""
        while True:
            try:
                update = run.connection.recv()
            except (EOFError, OSError):
                update = Update("failed", run.config.family,
                                message=f"The run's process ended before it finished{_because(run)}.")
            if update.done:
                break
            run.latest = update
        if update.done and run.stop_reason and update.state != "failed":
            update.message += f" The server stopped it: {run.stop_reason}."
        run.process.join(timeout=10)
        if run.process.is_alive():
            run.process.kill()
        with self._lock:
            if update.checkpoint and run.session in self._seen:
                self._keep(run, update)
            run.latest = update
            if run in self._running:
                self._running.remove(run)
            self._ended[run.session] = run
        run.finished.set()
        self._supervise_once()  # the next in line starts now, not at the next tick

    def _keep(self, run: _Run, update: Update) -> None:
        weights = Path(update.checkpoint)
        try:
            model, card = checkpoint.load_model(run.config.family, weights)
        except checkpoint.CheckpointError as error:
            update.message += f" The trained model could not be loaded: {error}"
            return
        old = self._trained.setdefault(run.session, {}).get(run.config.family)
        if old is not None and old.weights.parent != weights.parent:
            shutil.rmtree(old.weights.parent, ignore_errors=True)
        self._trained[run.session][run.config.family] = Trained(run.config.family, model, card, weights,
                                                                run.config.dataset)

    def _stop(self, run: _Run, kill: bool = False) -> None:
        """Ask the run to stop (it still measures and saves its model), or ``kill`` its process;
        kill it too if it has not ended 30 s after being asked."""
        run.stopping = True
        if kill and run.process is not None:
            run.process.kill()
            return
        try:
            run.connection.send("stop")
        except (OSError, AttributeError):
            pass

        def kill_later():
            if not run.finished.wait(30.0) and run.process is not None and run.process.is_alive():
                run.process.kill()
        threading.Thread(target=kill_later, daemon=True).start()


def lab_folder() -> Path:
    """A new, empty folder for a LabTab's runs (``LAB_FOLDERS``/lab-<pid>-<random>), after removing
    those of server processes that have ended (a crash leaves them behind)."""
    LAB_FOLDERS.mkdir(parents=True, exist_ok=True)
    for folder in LAB_FOLDERS.glob("lab-*"):
        if not _process_alive(folder.name.split("-")[1]):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"lab-{os.getpid()}-", dir=LAB_FOLDERS))


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def resident_bytes(pid: int) -> int:
    """A process's resident memory (Linux's /proc; 0 where unknown)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0


def cpu_seconds(pid: int, default: float) -> float:
    """The CPU time a process has spent, its threads' included (Linux's /proc; ``default`` where unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks
    except (OSError, IndexError, ValueError):
        return default


def _because(run: _Run) -> str:
    return f": the server stopped it ({run.stop_reason})" if run.stop_reason else ""


# ----------------------------------------------------------------------------- what the page says

STATE_WORDS = {"compiling": "Compiling the train step", "training": "Training", "paused": "Paused",
               "measuring": "Measuring on the test set", "finished": "Finished", "stopped": "Stopped",
               "failed": "Failed"}
# The headline figure of each family, as its card and the shipped model's card name it.
HEADLINE = {"cnn": ("test_balanced_accuracy", "balanced test accuracy (the mean over classes)", "{:.2%}"),
            "ae": ("psnr_gaussian_0.2", "PSNR at Gaussian σ 0.2", "{:.2f} dB"),
            "gan": ("conditional_accuracy", "samples named as their class by the shipped classifier", "{:.1%}")}


# What each recipe reaches at its default budget, and in how many steps (`imgjax bench --only lab` on an
# idle 2-core host, docs/lab.md): a run that has taken far fewer steps cannot be expected to show it.
RECIPE_REACHES = {
    "fashion-mnist": {"cnn": (1_000, "91% test accuracy"), "ae": (2_300, "22.8 dB at Gaussian σ 0.2"),
                      "gan": (1_400, "85% of samples named as their class (before a few hundred steps: noise)")},
    # Held-out emoji (docs/lab.md#emoji); the autoencoder's with a training run beside it, fewer steps.
    "emoji": {"cnn": (570, "61% balanced accuracy (held-out emoji)"),
              "ae": (440, "21.5 dB at Gaussian σ 0.2 (held-out emoji)"),
              "gan": (880, "86% of samples named as their group (before a few hundred steps: noise)")},
}


def shipped_headline(family: str, card: dict) -> float | None:
    """The shipped model's figure comparable to a Lab run's (``HEADLINE``), from its card."""
    metrics = card.get("metrics", {})
    if family == "ae":
        return metrics.get("gaussian_0.2", {}).get("autoencoder", {}).get("psnr")
    if family == "cnn" and "test_balanced_accuracy" not in metrics and metrics.get("per_class_accuracy"):
        return float(np.mean(list(metrics["per_class_accuracy"].values())))  # the same figure, by definition
    return metrics.get(HEADLINE[family][0])


def describe(status: Status) -> str:
    """One or two lines of Markdown: where the run is, how fast, how long is left, the last losses and
    the live figures."""
    update = status.update
    if update is None:
        return status.message
    if update.state == "compiling":
        return f"**{STATE_WORDS['compiling']}…** (XLA compiles it once per shape; the budget starts after)"
    if update.state == "failed":
        return f"**Failed**: {update.message}"
    losses = ", ".join(f"{name.replace('_', ' ')} {value:.3f}" for name, value in update.metrics.items())
    figures = ", ".join(f"{name} **{value:.2f}**" if "dB" in name else f"{name} **{value:.1%}**"
                        for name, value in update.figures.items())
    lines = [f"**{status.pending}**"] if status.pending else []
    lines += [(f"**{STATE_WORDS[update.state]}** · step {update.step:,} · {update.images:,} images · "
              f"{update.images_per_second:,.0f} images/s · {update.seconds:.0f} s trained, "
              f"{update.seconds_left:.0f} s left (compiled in {update.compile_s:.1f} s)")]
    if losses or figures:
        lines.append(" · ".join(part for part in (losses, figures) if part))
    steps, reaches = RECIPE_REACHES[update.dataset][update.family]
    lines.append(f"The recipe reaches {reaches} in about {steps:,} steps (an idle 2-core host); this run has taken "
                 f"{update.step:,} on this one.")
    return "  \n".join(lines)


def result(update: Update | None, shipped_card: dict) -> str:
    """The finished run's test figure beside the shipped model's, in Markdown; empty before the end."""
    if update is None or update.card is None:
        return ""
    family = update.family
    key, name, form = HEADLINE[family]
    mine, shipped = update.card.get("metrics", {}).get(key), shipped_headline(family, shipped_card)
    show = lambda value: form.format(value) if value is not None else "not measured"
    card = update.card
    measured_on = "10,000 samples" if family == "gan" else f"the {card.get('test_pictures', 10_000):,} test pictures"
    return (f"| {name} | your model | shipped model |\n|---|---|---|\n| on {measured_on} | **{show(mine)}** | "
            f"{show(shipped)} |\n\nYours: {card['steps']:,} steps, {card['images_trained']:,} images, "
            f"{card['train_seconds']:.0f} s of training on {card['device']}. It is now offered beside the "
            "shipped one in the other tabs (\"Model\"), for this browser session only; download it below "
            "(weights and card).")
