"""The browser studio: a Gradio Blocks page with Generate, Classify and Denoise tabs.

This module is only the page: every action calls ``imgjax.service.Studio``, and its
``InputError`` messages become ``gr.Error`` pop-ups (and error replies to API clients) while the
server goes on serving. ``app.py`` parses flags and calls ``launch``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image
from starlette.middleware import Middleware

from . import service, user_input
from .gradio_guards import (
    BodyLimit,
    guard_api,
    keep_pruning,
    raw_editor,
    raw_image,
    raw_values,
    temporary_files,
)
from .service import Studio
from .user_input import InputError

ASSETS = Path(__file__).parent / "assets"
GIF_DIR = Path(tempfile.gettempdir()) / "imgjax-gifs"  # the walks' animations, pruned with Gradio's cache
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
       "#classify-input img, #baseline img { width: 100%; height: 100%; object-fit: contain; }\n"
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
# What each tab shows on arrival, computed when the page loads (a few milliseconds each): a visitor
# sees what every model does before touching a control.
ARRIVAL_CLASSIFY = "example_9_ankle-boot.png"
ARRIVAL_DENOISE = "example_0_t-shirt-top.png"

STRIP_COLUMNS = 8  # the walk's frames, this many to a row
# No truncation (the slider's top): on 10k training images the untruncated generator and 2.5 tie
# (Fréchet distance 5.25 and 5.23, seeds' ranges overlapping), and it keeps the most variety (93% of
# real); from 2.0 down the distance climbs (7.2, 18, 56). docs/gan-recipe.md has the whole curve.
DEFAULT_TRUNCATION = service.TRUNCATION_RANGE[1]
log = logging.getLogger("imgjax.studio")

ABOUT = """# imgjax studio
Three small models trained on [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)
with JAX, Flax NNX and Optax, served from their checkpoints: a class-conditional **GAN** that
draws garments, a **CNN** that names them (and shows what it looked at), and a denoising
**autoencoder** that restores noisy, speckled or masked images."""


def _editor_image(value) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """An editor's value (sources from ``raw_editor``) -> (RGB image at most DENOISE_MAX_SIDE on its
    long side, painted mask or None, the upload's own (width, height))."""
    if not value or value.get("background") is None:
        raise InputError("Choose an image first: upload one or click an example.")
    image = user_input.open_image(value["background"])
    original_size = image.size
    rgb = user_input.read_image(image, service.DENOISE_MAX_SIDE)
    masks = [user_input.read_mask(layer, rgb.shape[:2]) for layer in value.get("layers") or [] if layer is not None]
    return rgb, (np.maximum.reduce(masks) if masks else None), original_size


def _wrap(frames: list[np.ndarray], columns: int) -> np.ndarray:
    """Equal-sized frames -> one picture, ``columns`` to a row (the last row padded with black)."""
    rows = [frames[i:i + columns] for i in range(0, len(frames), columns)]
    rows[-1] = rows[-1] + [np.zeros_like(frames[0])] * (len(rows[0]) - len(rows[-1]))
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def _for_page(action, name: str, outputs: int):
    """``action`` for the page's own events: a user's error clears the results (they belonged to
    other inputs) and shows its message in the status line above them (returned last)."""
    def run(*args):
        try:
            result = action(*args)
        except InputError as error:
            log.info("refused %s (page): %s", name, error)
            return (*[None] * outputs, f"⚠️ {error}")
        return (*(result if outputs > 1 else (result,)), "")
    return run


def truncation_curve(card: dict) -> None:
    """The trade-off ``imgjax eval gan`` measured (5 latent seeds, 10k images each), as a table
    under the truncation slider: distance to real garments against variety."""
    curve = card.get("metrics", {}).get("truncation_curve")
    if not curve:
        return
    lines = ["| truncation | distance to real (x floor) | variety within a class | named as its class |",
             "|---|---|---|---|"]
    for point in curve:
        low, high = point["frechet_ratio_to_floor_range"]
        lines.append(f"| {point['truncation'] or 'none'} | {point['frechet_ratio_to_floor']:.2f} ({low:.2f}-{high:.2f}) "
                     f"| {point['within_class_spread']:.0%} of real | {point['conditional_accuracy']:.1%} |")
    with gr.Accordion("What truncation does (measured)", open=False):
        gr.Markdown("\n".join(lines) + "\n\nDistance: Fréchet distance of 10k samples to the test set in the "
                    "classifier's features, as a multiple of the distance between real training and test "
                    "images (mean and range over 5 seeds). Variety: the samples' feature variance within "
                    "each class, as a share of real garments'. `imgjax eval gan` measures both.")


def build_demo(studio: Studio | None = None) -> gr.Blocks:
    studio = studio or Studio()
    examples = sorted(str(p) for p in ASSETS.glob("example_*.png"))
    classes = studio.class_names

    def generate(class_name, seed, count, truncation):
        return studio.generate(class_name, seed, count, truncation)

    def interpolate(mode, class_name, seed_a, seed_b, frames, truncation):
        pictures = studio.interpolate(mode, class_name, seed_a, seed_b, frames, truncation)
        loop = pictures + pictures[-2:0:-1] if mode == service.INTERPOLATE_SEEDS else pictures  # ping-pong
        GIF_DIR.mkdir(parents=True, exist_ok=True)
        fd, gif = tempfile.mkstemp(suffix=".gif", dir=GIF_DIR)
        os.close(fd)
        frames_pil = [Image.fromarray(service.upscale(p, 2)) for p in loop]  # 224 px: large enough to see
        frames_pil[0].save(gif, save_all=True, append_images=frames_pil[1:], duration=80, loop=0)
        return _wrap(pictures, STRIP_COLUMNS), gif

    def classify(path):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        result = studio.classify(user_input.read_image(path, service.CLASSIFY_MAX_SIDE))
        return result.probabilities, result.model_input, result.saliency, result.verdict

    def classify_if_any(path):
        """The image changed: classify it, or clear the results when the image was removed."""
        return classify(path) if path is not None else (None, None, None, "")

    def classify_sketch(value):
        if not value or value.get("composite") is None:
            raise InputError("Draw something on the sketchpad first.")
        rgb = user_input.read_image(value["composite"], service.CLASSIFY_MAX_SIDE)
        if np.ptp(rgb) < 0.05:
            raise InputError("The sketchpad is empty: draw a garment first.")
        result = studio.classify(rgb)
        return result.probabilities, result.model_input, result.saliency, result.verdict

    def denoise(value, kind, level, seed, already_noisy):
        if not isinstance(already_noisy, bool):
            raise InputError(f"'Already noisy' must be true or false, got {user_input.shown(already_noisy)}.")
        rgb, mask, original_size = _editor_image(value)
        result = studio.denoise(rgb, kind, level, seed, mask=mask, already_noisy=already_noisy,
                                original_size=original_size)
        table = result.figures or [["(no clean image to compare with)", None, None]]
        return (result.corrupted, result.restored), result.baseline, table, result.note

    def status(elem_id: str) -> gr.Markdown:
        return gr.Markdown(elem_id=elem_id, elem_classes="status")

    def action(button, function, inputs, outputs, status_line, api_name, limit=2, load=True):
        """Wire ``function`` twice, sharing one concurrency limit: the visible ``button`` (and page
        load) with errors shown in ``status_line``, and a hidden button carrying the API name, whose
        clients receive errors as errors (``guard_api`` turns InputError into their message)."""
        page = _for_page(function, api_name, len(outputs))
        button.click(page, inputs, [*outputs, status_line], api_visibility="private", concurrency_id=api_name,
                     concurrency_limit=limit)
        gr.Button(visible=False).click(function, inputs, outputs, api_name=api_name,
                                       concurrency_id=api_name, concurrency_limit=limit)
        if load:  # every tab arrives with its pictures
            demo.load(page, inputs, [*outputs, status_line], api_visibility="private", concurrency_id=api_name)
        return page

    with gr.Blocks(title="imgjax studio") as demo:
        gr.Markdown(ABOUT)
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    class_name = gr.Dropdown([service.ALL_CLASSES, *classes], value="Sneaker", label="Class")
                    with gr.Row():
                        seed = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Seed")
                        dice = gr.Button("🎲 Random seed", size="sm")
                    count = gr.Slider(1, service.MAX_IMAGES, 16, step=1, label="Images (per class for All classes)")
                    truncation = gr.Slider(*service.TRUNCATION_RANGE, DEFAULT_TRUNCATION, step=0.1,
                                           label="Truncation (3: none, the measured generator; lower: more "
                                                 "typical, less varied)")
                    truncation_curve(studio.generator_card)
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column(scale=2):
                    generate_status = status("generate-status")
                    grid = gr.Image(label="Generated (download: the arrow, top right)", format="png",
                                    elem_id="generated", alt_text="The generated garments, in a grid")
            gr.Markdown("### Walk the latent space")
            with gr.Row():
                with gr.Column(scale=1):
                    mode = gr.Radio([service.INTERPOLATE_SEEDS, service.INTERPOLATE_CLASSES],
                                    value=service.INTERPOLATE_SEEDS, label="Interpolate")
                    walk_class = gr.Dropdown(classes, value="Ankle boot", label="Class (start class for Across classes)")
                    with gr.Row():
                        seed_a = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Seed (style)")
                        seed_b = gr.Number(1, precision=0, minimum=0, maximum=service.MAX_SEED, label="Second seed")
                    frames = gr.Slider(2, service.MAX_FRAMES, 10, step=1, label="Frames (per class for Across classes)")
                    walk_button = gr.Button("Interpolate", variant="primary")
                with gr.Column(scale=2):
                    walk_status = status("walk-status")
                    strip = gr.Image(label="Frames", format="png", elem_id="frames",
                                     alt_text="The walk's frames, left to right and top to bottom")
                    animation = gr.Image(label="Animation", type="filepath", height=260, elem_id="animation",
                                         alt_text="The walk as an animation")
            dice.click(lambda: random.randint(0, service.MAX_SEED), None, seed, api_name="random_seed")
            action(generate_button, generate, [class_name, seed, count, truncation], [grid], generate_status,
                   "generate")
            action(walk_button, interpolate, [mode, walk_class, seed_a, seed_b, frames, truncation],
                   [strip, animation], walk_status, "interpolate", limit=1)
            # Only the controls that apply: a tour across classes keeps one seed.
            mode.change(lambda m: gr.update(visible=m == service.INTERPOLATE_SEEDS), mode, seed_b,
                        api_visibility="private", queue=False)

        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    with gr.Tab("Image"):
                        photo = raw_image(gr.Image(str(ASSETS / ARRIVAL_CLASSIFY), label="Upload or paste an image",
                                                   type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                                   height=280, elem_id="classify-input"))
                        photo_button = gr.Button("Classify", variant="primary")
                        gr.Examples(examples, inputs=photo, label="Test-set examples", elem_id="classify-examples")
                    with gr.Tab("Draw"):
                        sketch = raw_editor(gr.ImageEditor(
                            label="Draw a garment (black on white)", type="pil", image_mode="RGBA", sources=(),
                            brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=12),
                            canvas_size=(280, 280), height=320, layers=False, transforms=(), elem_id="sketch"))
                        sketch_button = gr.Button("Classify drawing", variant="primary")
                with gr.Column():
                    classify_status = status("classify-status")
                    verdict = gr.Markdown(elem_id="verdict")
                    top5 = gr.Label(num_top_classes=5, label="Top 5")
                    with gr.Row():
                        seen = gr.Image(label="What the model saw (28x28)", format="png", height=224,
                                        alt_text="The 28x28 grayscale image the classifier saw")
                        saliency = gr.Image(label="Saliency: pixels that moved the top class most", format="png",
                                            height=224, alt_text="Saliency map over the classifier's input")
            gr.Markdown("The image is turned to grayscale, inverted if its background is light (the garments "
                        "in Fashion-MNIST are light on black), cropped to the object, centred and resized to 28x28.")
            classify_outputs = [top5, seen, saliency, verdict]
            action(photo_button, classify, photo, classify_outputs, classify_status, "classify")
            action(sketch_button, classify_sketch, sketch, classify_outputs, classify_status, "classify_sketch",
                   load=False)
            # A new image (upload, paste, example) is classified at once: it takes milliseconds.
            photo.change(_for_page(classify_if_any, "classify", 4), photo, [*classify_outputs, classify_status],
                         api_visibility="private", concurrency_id="classify")

        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column():
                    editor = raw_editor(gr.ImageEditor(
                        str(ASSETS / ARRIVAL_DENOISE), label="Image (for Brush mask: paint over what to hide)",
                        type="pil", image_mode=None,
                        sources=["upload", "clipboard"], brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=4),
                        transforms=(), layers=False, height=360, elem_id="denoise-input"))
                    gr.Examples(examples, inputs=editor, label="Test-set examples", elem_id="denoise-examples")
                with gr.Column():
                    kind = gr.Radio(list(service.CORRUPTIONS), value=service.GAUSSIAN, label="Corruption")
                    level = gr.Slider(*service.GAUSSIAN_RANGE, 0.2, step=0.01,
                                      label="Level: noise sigma, or salt-and-pepper amount")
                    noise_seed = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Noise seed")
                    already_noisy = gr.Checkbox(False, label="My image is already noisy (restore it as it is; no scores)")
                    denoise_button = gr.Button("Corrupt and restore", variant="primary")
            denoise_status = status("denoise-status")
            with gr.Row():
                slider = gr.ImageSlider(label="Corrupted | restored by the autoencoder (drag)", format="png",
                                        elem_id="restored")
                baseline = gr.Image(label="Classical baseline", format="png", height=400, elem_id="baseline",
                                    alt_text="The classical baseline's restoration")
            scores = gr.Dataframe(headers=["result", "PSNR (dB)", "SSIM"], label="Against the clean image",
                                  interactive=False, elem_id="scores", wrap=True,
                                  column_widths=["50%", "25%", "25%"])
            note = gr.Markdown()
            gr.Markdown("Any size and mode: colour images are restored channel by channel, and the autoencoder "
                        f"(fully convolutional) runs at the image's own resolution, after downscaling images "
                        f"whose long side exceeds {service.DENOISE_MAX_SIDE} pixels.")
            action(denoise_button, denoise, [editor, kind, level, noise_seed, already_noisy],
                   [slider, baseline, scores, note], denoise_status, "denoise")
            kind.change(lambda k: gr.update(visible=k != service.MASK), kind, level, api_visibility="private",
                        queue=False)
        raw_values(class_name, seed, count, truncation, mode, walk_class, seed_a, seed_b, frames, kind, level,
                   noise_seed, already_noisy)
    guard_api(demo)
    return demo


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Have glibc's malloc share two arenas among the server's threads (M_ARENA_MAX) instead of up to
    16: with one arena per worker thread, freed image buffers stayed resident and a burst of the
    largest allowed inputs peaked at 1.6 GB, then 1.8 GB on the next (0.9-1.0 GB with two)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX; set before the first worker thread
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, mcp: bool = False,
           cache_dir: str | None = None) -> None:
    """Load the checkpoints, compile everything (from the persistent cache when warm), serve."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s imgjax: %(message)s"))
    logging.getLogger("imgjax").addHandler(handler)
    logging.getLogger("imgjax").setLevel(logging.INFO)
    _limit_malloc_arenas()
    service.enable_compilation_cache(cache_dir)
    studio = Studio()
    seconds = studio.warm_up()
    print(f"imgjax studio: models loaded and compiled in {seconds:.1f} s", flush=True)
    demo = build_demo(studio)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    keep_pruning(lambda: temporary_files(demo, GIF_DIR), CACHE_MAX_AGE_S, CACHE_MAX_BYTES, every=PRUNE_EVERY_S)
    demo.launch(server_name=host, server_port=port, share=share, mcp_server=mcp,
                max_file_size=MAX_UPLOAD, show_error=False, allowed_paths=[str(ASSETS)], css=CSS, theme=THEME,
                head=HEAD,
                app_kwargs={"middleware": [Middleware(BodyLimit)]})
