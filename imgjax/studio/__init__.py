"""The browser studio: a Gradio Blocks page with one tab per module (``generate``, ``classify``,
``denoise``, ``edit``), each calling its actions in ``imgjax.service``.

This package is only the page: ``build_demo`` assembles the tabs inside the theme and the guards
that keep the server's limits on every route (``imgjax.gradio_guards``); ``launch`` loads the
models, compiles them and serves. ``app.py`` parses flags and calls ``launch``. A new tab is a new
module here with its ``page`` function and one line in ``build_demo``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future

import gradio as gr
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from ..gradio_guards import (
    BodyLimit,
    files_under,
    guard_api,
    keep_pruning,
    patient_start_check,
    prune_cache,
    raw_values,
    temporary_files,
)
from ..service import Studio, start_studio
from ..serving import wait_until_compiled
from . import classify, denoise, edit, generate, lab
from .wiring import ASSETS, GIF_DIR, ModelChoice

# Uploads and outputs are kept 10 minutes and 256 MB at most, checked every 30 s (the environment
# variables let a test server prune sooner).
CACHE_MAX_AGE_S = float(os.environ.get("IMGJAX_CACHE_MAX_AGE_S", "600"))
CACHE_MAX_BYTES = int(float(os.environ.get("IMGJAX_CACHE_MAX_MB", "256")) * 2**20)
PRUNE_EVERY_S = float(os.environ.get("IMGJAX_PRUNE_EVERY_S", "30"))
MAX_UPLOAD = "10mb"
# Small pictures (28x28) are shown enlarged, with their pixels sharp instead of blurred. Gradio shows
# an image no larger than its own size, so the classifier's input and the denoising baseline are
# stretched to their frames (keeping their shape), as large as the pictures beside them.
CSS = ("img { image-rendering: pixelated; }\n"
       # the Lab's charts and labelled pictures hold text, shown smaller than drawn: smoothed, not blocky
       "#lab-curves img, #lab-view img, #lab-mistakes img { image-rendering: auto; }\n"
       "#classify-input img, #baseline img, #edit-input img, #mix-input img"
       " { width: 100%; height: 100%; object-fit: contain; }\n"
       # the message of a refused input, where the result would be, and of a file refused in the browser
       ".status p { color: #9a3412; font-weight: 600; }\n"
       "#imgjax-alert { position: sticky; top: 0; z-index: 1000; padding: 0.75em 1em; cursor: pointer;"
       " background: #fef2f2; color: #991b1b; border: 1px solid #b91c1c; }\n"
       "footer, footer a, footer button { color: #4b5563 !important; }\n"
       # a picture's label above it, not over its top-left corner
       ".block:has(> label.float) > .image-container:not(:has(canvas)) { padding-top: 30px; }\n"
       "#restored > .image-container { margin-top: 30px; height: calc(100% - 30px); }")
# Gradio's default colours, darkened where they miss WCAG 2.1 AA's 4.5:1 (white on orange and the
# selected tab's orange on white were 2.8:1, the slider's limits and the footer 1.9:1).
THEME = gr.themes.Default().set(
    button_primary_background_fill="#c2410c", button_primary_background_fill_hover="#9a3412",
    button_primary_text_color="#ffffff", body_text_color_subdued="#4b5563", color_accent="#c2410c")
HEAD = f"<script>{(ASSETS / 'page.js').read_text()}</script>"
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once rather than piling up
ABOUT = """# imgjax studio
Small models trained with JAX, Flax NNX and Optax on two datasets, garments
([Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)) and colour emoji (Twemoji, Noto
and OpenMoji art), served from their checkpoints: a class-conditional **GAN** that draws them (and,
with an **encoder**, lets you edit any picture through it), a **CNN** that names them and shows what
it looked at, and a denoising **autoencoder** that restores noisy, speckled or masked images, with a
colour sibling trained on photographs (Debian's wallpapers) for your own photos."""


def build_demo(studio: Studio | None = None) -> gr.Blocks:
    studio = studio or Studio()
    with gr.Blocks(title="imgjax studio") as demo:
        gr.Markdown(ABOUT)
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # on a phone too, every tab at a glance
            # A garment's code: made by the Edit tab's projection or sent by the Generate tab's "Edit".
            code = gr.JSON(label="Code", render=False, elem_id="garment-code")
            # Each tab's "Model": the shipped one, or the visitor's own from the Lab.
            choices = {family: ModelChoice(studio.lab_tab, family, tabs) for family, tabs in
                       (("gan", studio.generate_tabs), ("cnn", studio.classify_tabs),
                        ("ae", studio.denoise_tabs))}
            values = generate.page(demo, choices["gan"], send_to_edit=(code, tabs))
            values += classify.page(demo, choices["cnn"])
            values += denoise.page(demo, choices["ae"])
            values += edit.page(demo, studio.edit_tabs, code)
            values += lab.page(demo, studio.lab_tab, studio.shipped_card,
                               {family: choice.radio for family, choice in choices.items()})
        raw_values(*values)
    guard_api(demo)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, mcp: bool = False,
           started: Future | None = None) -> None:
    """Serve the studio ``started`` (``service.start_studio``; None: start one here, with no Lab
    options) once its models are loaded and the tabs the page opens on are compiled."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s imgjax: %(message)s"))
    logging.getLogger("imgjax").addHandler(handler)
    logging.getLogger("imgjax").setLevel(logging.INFO)
    started = started or start_studio()
    # What an earlier server left (it may have crashed): uploads and outputs past their age.
    prune_cache(files_under(get_upload_folder(), GIF_DIR), CACHE_MAX_AGE_S, CACHE_MAX_BYTES)
    studio, seconds = started.result()
    print(f"imgjax studio: models loaded in {seconds:.1f} s", flush=True)
    demo = build_demo(studio)  # while the tabs compile
    for tab in studio.opening_tabs():  # the page answers once the tabs it opens on are compiled
        wait_until_compiled(tab)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    keep_pruning(lambda: temporary_files(demo, GIF_DIR), CACHE_MAX_AGE_S, CACHE_MAX_BYTES, every=PRUNE_EVERY_S)
    patient_start_check()
    demo.launch(server_name=host, server_port=port, share=share, mcp_server=mcp,
                max_file_size=MAX_UPLOAD, show_error=False, allowed_paths=[str(ASSETS)], css=CSS, theme=THEME,
                head=HEAD,
                app_kwargs={"middleware": [Middleware(BodyLimit)]})
