"""What every tab's page shares: the assets folder, the status line where a refused input's message
shows, and ``action``, which wires one function to its button, the page's load and its API name."""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
import typing
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from ..gradio_guards import optional
from ..service.lab import SHIPPED, YOURS
from ..serving import wait_until_compiled
from ..user_input import InputError, check_choice

ASSETS = Path(__file__).parent.parent / "assets"
EXAMPLES = sorted(str(p) for p in ASSETS.glob("example_*.png"))  # one test-set image per class
GIF_DIR = Path(tempfile.gettempdir()) / "imgjax-gifs"  # animations, pruned with Gradio's cache
log = logging.getLogger("imgjax.studio")


def save_gif(frames: list[np.ndarray], frame_ms: int = 80) -> str:
    """uint8 pictures -> the path of a looping GIF of them in ``GIF_DIR``."""
    GIF_DIR.mkdir(parents=True, exist_ok=True)
    fd, gif = tempfile.mkstemp(suffix=".gif", dir=GIF_DIR)
    os.close(fd)
    pictures = [Image.fromarray(frame) for frame in frames]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return gif


def for_page(function, name: str, outputs: int, clears_status: bool = True):
    """``function`` for the page's own events: a user's error clears the results (they belonged to
    other inputs) and shows its message in the status line above them (returned last); success
    clears that line, unless ``clears_status`` is False (a step chained after another keeps its line)."""
    def run(*args):
        try:
            result = function(*args)
        except InputError as error:
            log.info("refused %s (page): %s", name, error)
            return (*[None] * outputs, f"⚠️ {error}")
        return (*(result if outputs > 1 else (result,)), "" if clears_status else gr.update())
    # The same parameters and types, so Gradio passes gr.Request where ``function`` asks for it.
    run.__signature__, run.__annotations__ = inspect.signature(function), typing.get_type_hints(function)
    return run


class ModelChoice:
    """A tab's "Model" choice: the shipped model, or the visitor's own from the Lab (the radio shows
    once they have one), and its "Dataset" choice where models of more than one are shipped.
    ``tab(request, choice, dataset)`` gives the tab's actions on the chosen model."""

    def __init__(self, lab, family: str, by_dataset: dict):
        """``by_dataset``: the tab's actions on each dataset's shipped model, by the dataset's title; the
        first (``shipped``) is the one a client that names no dataset gets."""
        self.lab, self.family, self.by_dataset = lab, family, by_dataset
        self.first_dataset = next(iter(by_dataset))
        self.shipped = by_dataset[self.first_dataset]
        self.radio = optional(gr.Radio([SHIPPED, YOURS], value=SHIPPED, label="Model (yours: trained in the Lab tab)",
                                       visible=False, render=False, elem_id=f"{family}-model"))
        self.dataset_radio = optional(gr.Radio(list(by_dataset), value=self.first_dataset, label="Dataset",
                                               visible=len(by_dataset) > 1, render=False, elem_id=f"{family}-dataset"))

    def tab(self, request: gr.Request, choice: str, dataset: str | None = None):
        dataset = check_choice("Dataset", self.first_dataset if dataset is None else dataset, tuple(self.by_dataset))
        shipped = self.by_dataset[dataset]
        wait_until_compiled(shipped)  # compiled in the background as the server started (``Studio.warm_up``)
        return self.lab.tab_for(request.session_hash, self.family, choice, shipped)


def examples_by_dataset(tabs: dict, inputs, elem_id: str) -> list:
    """Each dataset's test-set examples (its ``Dataset.examples`` in the assets) for ``inputs``, in a
    column of its own, the first dataset's shown; ``shown_for`` says which to show after a choice."""
    columns = []
    for index, tab in enumerate(tabs.values()):
        with gr.Column(visible=index == 0) as column:
            gr.Examples(sorted(str(p) for p in ASSETS.glob(tab.dataset.examples)), inputs=inputs,
                        label="Test-set examples", elem_id=elem_id if index == 0 else f"{elem_id}-{index}")
        columns.append(column)
    return columns


def shown_for(tabs: dict, title: str) -> list:
    """Updates showing only the column of the dataset ``title`` (``examples_by_dataset``)."""
    return [gr.update(visible=name == title) for name in tabs]


def status(elem_id: str) -> gr.Markdown:
    """The line above a tab's results where a refused input's message shows."""
    return gr.Markdown(elem_id=elem_id, elem_classes="status")


def action(demo: gr.Blocks, button, function, inputs, outputs, status_line, api_name: str, limit: int = 2,
           load: bool = True, rerun_on=()):
    """Wire ``function`` twice, sharing one concurrency limit: the visible ``button`` (and page
    load) with errors shown in ``status_line``, and a hidden button carrying the API name, whose
    clients receive errors as errors (``guard_api`` turns InputError into their message). A change
    to any of ``rerun_on`` runs it again, so its outputs always match the controls. Returns the
    visible button's event, for steps that follow it."""
    page = for_page(function, api_name, len(outputs))
    clicked = button.click(page, inputs, [*outputs, status_line], api_visibility="private", concurrency_id=api_name,
                           concurrency_limit=limit)
    if rerun_on:
        gr.on([control.change for control in rerun_on], page, inputs, [*outputs, status_line],
              api_visibility="private", concurrency_id=api_name, trigger_mode="always_last", show_progress="hidden")
    gr.Button(visible=False).click(function, inputs, outputs, api_name=api_name,
                                   concurrency_id=api_name, concurrency_limit=limit)
    if load:  # every tab arrives with its pictures
        demo.load(page, inputs, [*outputs, status_line], api_visibility="private", concurrency_id=api_name)
    return clicked
