"""What the studio serves, without the UI: the shipped models loaded once, and one module per tab
with that tab's actions, from plain values to numpy pictures and figures.

* ``generate``: grids by class and seed, walks through the latent space (the GAN);
* ``classify``: top 5, the model's view and saliency for any image (the CNN);
* ``denoise``: corrupt and restore with the garment or the photo denoiser beside classical baselines;
* ``edit``: project a garment into the GAN (with the encoder's start), change its class and style;
* ``lab``: visitors' training runs, each in a process of its own, and the models they trained.

A new tab is a new module here with its ``...Tab`` class, one line in ``Studio``, and its page in
``imgjax.studio``. Every problem with a user's input raises ``InputError`` (``imgjax.user_input``,
which also reads users' images within the server's limits) with a message meant for that user.
Nothing here imports Gradio.
"""

from __future__ import annotations

import ctypes
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .. import checkpoint, datasets
from ..parallel import enable_compilation_cache
from ..serving import warm_up_in_background
from ..tone_reader import ToneReader
from .classify import ClassifyTab
from .denoise import DenoiseTab
from .edit import EditTab
from .generate import GenerateTab
from .lab import MAX_BUDGET_S, LabTab


class Studio:
    """The shipped checkpoints, loaded once, each behind its tab's actions."""

    def __init__(self, checkpoint_dir: Path | None = None, lab_runs: int = 1, lab_max_seconds: float = MAX_BUDGET_S):
        directory = Path(checkpoint_dir or checkpoint.CHECKPOINT_DIR)
        load = lambda name: checkpoint.load_model(name, directory / f"{name}.safetensors")
        (generator, generator_card), (classifier, classifier_card) = load("gan"), load("cnn")
        self.generate_tab = GenerateTab(generator, generator_card)
        self.classify_tab = ClassifyTab(classifier, classifier_card, directory)
        # Each tab on every dataset with a shipped model, by the dataset's title, garments first.
        self.generate_tabs = _by_dataset(self.generate_tab, directory, "gan", lambda model, card, _: GenerateTab(model, card))
        self.classify_tabs = _by_dataset(self.classify_tab, directory, "cnn", ClassifyTab)
        # The photo denoiser is optional: without its checkpoint every image goes to the garment model.
        photo = load("photo") if (directory / "photo.safetensors").exists() else (None, None)
        self.denoise_tab = DenoiseTab(*load("ae"), *photo)
        self.denoise_tabs = _by_dataset(self.denoise_tab, directory, "ae", lambda model, card, _: DenoiseTab(model, card))
        self.edit_tab = EditTab(generator, classifier, load("encoder")[0], familiarity=self.classify_tab.familiarity)
        self.edit_tabs = _by_dataset(self.edit_tab, directory, "encoder", self._edit_tab)
        self.lab_tab = LabTab(max_runs=lab_runs, max_budget_s=lab_max_seconds)

    def _edit_tab(self, encoder, encoder_card: dict, folder: Path) -> EditTab:
        """The Edit tab on another dataset: its encoder with the generator and classifier the other
        tabs serve for that dataset, and its skin-tone reader where the encoder's card names one."""
        title = datasets.get(encoder_card["dataset"]).title
        classify = self.classify_tabs[title]
        info = encoder_card.get("metrics", {}).get("tone_reader")
        tone_reader = ToneReader.from_arrays(checkpoint.load_companion(
            folder, info, "encoder.json", "skin-tone reader", "imgjax eval encoder --write-card"),
            str(folder / info["file"])) if info else None
        return EditTab(self.generate_tabs[title].generator, classify.classifier, encoder, card=encoder_card,
                       familiarity=classify.familiarity, tone_reader=tone_reader)

    def shipped_card(self, family: str, dataset: str) -> dict:
        """The card of the shipped model of ``family`` ("gan", "cnn", "ae") on ``dataset`` (a name), or {}."""
        tabs = {"gan": self.generate_tabs, "cnn": self.classify_tabs, "ae": self.denoise_tabs}[family]
        return next((tab.card for tab in tabs.values() if tab.dataset.name == dataset), {})

    def opening_tabs(self) -> list:
        """The tabs the page opens on: the first dataset's Generate, Classify and Denoise tabs."""
        return [next(iter(tabs.values())) for tabs in (self.generate_tabs, self.classify_tabs, self.denoise_tabs)]

    def warm_up(self, in_background: bool = False) -> None:
        """Run every action once per compiled shape the page uses, so the first click is as fast as
        the rest (with the persistent compilation cache, a second start loads these from disk).
        With ``in_background``, return once threads hold every tab: the tabs the page opens on
        compile together, then the other datasets' tabs, then the Edit tabs (the largest compiles,
        which would slow the page's start beside them); each tab's actions wait for it."""
        named = {f"the {title} {kind} tab": tab for kind, by_dataset in (
            ("Generate", self.generate_tabs), ("Classify", self.classify_tabs), ("Denoise", self.denoise_tabs))
            for title, tab in by_dataset.items()}
        opening = self.opening_tabs()
        # The opening tabs first (a dict keeps the order keys were first given), then the other datasets'.
        tabs = {**{name: tab for name, tab in named.items() if tab in opening}, **named}
        tabs.update({"the Edit tab" if not index else f"the {title} Edit tab": tab
                     for index, (title, tab) in enumerate(self.edit_tabs.items())})
        if in_background:
            warm_up_in_background(tabs, log=lambda line: print(line, flush=True), at_once=len(opening))
        else:
            for tab in tabs.values():
                tab.warm_up()


def start_studio(cache_dir: str | None = None, lab_runs: int = 1, lab_max_seconds: float = MAX_BUDGET_S) -> Future:
    """Load the checkpoints in a thread and start compiling every tab in the background (the tabs the
    page opens on first: ``Studio.warm_up``): a future of (the ``Studio``, the seconds it took to
    load). XLA releases Python's lock while it compiles, so the caller imports Gradio and builds the
    page meanwhile (each a large part of a cold start; docs/speed.md)."""
    _return_freed_memory()  # before the first thread
    cache = enable_compilation_cache(cache_dir)

    def start():
        began = time.perf_counter()
        studio = Studio(lab_runs=lab_runs, lab_max_seconds=lab_max_seconds)
        studio.lab_tab.cache_dir = str(cache)  # Lab runs compile into the same cache
        loaded = time.perf_counter() - began
        studio.warm_up(in_background=True)
        return studio, loaded

    pool = ThreadPoolExecutor(1, thread_name_prefix="studio-start")
    started = pool.submit(start)
    pool.shutdown(wait=False)
    return started


def _return_freed_memory(arenas: int = 2, mmap_from_bytes: int = 4 * 2**20) -> None:
    """Have glibc's malloc share two arenas among the server's threads (M_ARENA_MAX) instead of up to
    16, and map every buffer of 4 MB or more on its own (M_MMAP_THRESHOLD, which also stops glibc
    raising that threshold), so a freed image goes back to the system at once. Without both, freed
    image buffers stay resident and the server's peak under the largest allowed inputs exceeds its
    1.5 GB budget (docs/studio.md)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        mallopt(-8, arenas)  # M_ARENA_MAX; set before the first worker thread
        mallopt(-3, mmap_from_bytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _by_dataset(garments_tab, directory: Path, family: str, make_tab) -> dict:
    """``garments_tab`` and the tab ``make_tab(model, card, folder)`` makes for each other dataset's
    shipped model of ``family`` (``checkpoints/<dataset>/<family>.safetensors``), by dataset title."""
    tabs = {garments_tab.dataset.title: garments_tab}
    for path in sorted(directory.glob(f"*/{family}.safetensors")):
        tab = make_tab(*checkpoint.load_model(family, path), path.parent)
        tabs[tab.dataset.title] = tab
    return tabs
