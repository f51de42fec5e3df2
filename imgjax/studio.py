"""The browser studio: a Gradio Blocks page with Generate, Classify and Denoise tabs.

This module is only the page: every action calls ``imgjax.service.Studio``, and its
``InputError`` messages become ``gr.Error`` pop-ups (and error replies to API clients) while the
server goes on serving. ``app.py`` parses flags and calls ``launch``.
"""

from __future__ import annotations

import functools
import os
import random
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from . import service
from .service import InputError, Studio

ASSETS = Path(__file__).parent / "assets"
MAX_UPLOAD = "10mb"
# Small pictures (28x28) are shown enlarged, with their pixels sharp instead of blurred. Gradio shows
# an image no larger than its own size, so the classifier's input and the denoising baseline are
# stretched to their frames (keeping their shape), as large as the pictures beside them.
CSS = ("img { image-rendering: pixelated; }\n"
       "#classify-input img, #baseline img { width: 100%; height: 100%; object-fit: contain; }")
QUEUE_SIZE = 32  # requests waiting beyond this are refused at once rather than piling up
# What each tab shows on arrival, computed when the page loads (a few milliseconds each): a visitor
# sees what every model does before touching a control.
ARRIVAL_CLASSIFY = "example_9_ankle-boot.png"
ARRIVAL_DENOISE = "example_0_t-shirt-top.png"

ABOUT = """# imgjax studio
Three small models trained on [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist)
with JAX, Flax NNX and Optax, served from their checkpoints: a class-conditional **GAN** that
draws garments, a **CNN** that names them (and shows what it looked at), and a denoising
**autoencoder** that restores noisy, speckled or masked images."""


def _user_errors(function):
    """Run ``function``; turn the service's InputError into a gr.Error the page shows."""
    @functools.wraps(function)
    def wrapper(*args):
        try:
            return function(*args)
        except InputError as error:
            raise gr.Error(str(error), title="Input problem") from None
    return wrapper


def _checked(component):
    """``component`` (an image input) with its upload decoding wrapped, so that failures (not an
    image, truncated, too large) reach the user as a clear gr.Error instead of a server traceback.
    Wrapped on the instance: subclassing a Gradio component would make Gradio write a type-stub
    file beside this module at import time."""
    decode = component.preprocess

    def preprocess(payload):
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise gr.Error(f"That image is too large: at most {service.MAX_PIXELS // 1_000_000} megapixels.") from None
        except Exception as error:  # Pillow raises many types for undecodable files
            raise gr.Error(f"Could not read that file as an image ({type(error).__name__}: {error}).") from None

    component.preprocess = preprocess
    return component


def _editor_image(value) -> tuple[np.ndarray, np.ndarray | None]:
    """An ImageEditor value -> (RGB image, painted mask or None)."""
    if not value or value.get("background") is None:
        raise InputError("Choose an image first: upload one or click an example.")
    rgb = service.read_image(value["background"])
    masks = [service.read_mask(layer, rgb.shape[:2]) for layer in (value.get("layers") or []) if layer is not None]
    return rgb, (np.maximum.reduce(masks) if masks else None)


def build_demo(studio: Studio | None = None) -> gr.Blocks:
    studio = studio or Studio()
    gif_dir = Path(tempfile.mkdtemp(prefix="imgjax-gif-"))
    examples = sorted(str(p) for p in ASSETS.glob("example_*.png"))
    classes = studio.class_names

    @_user_errors
    def generate(class_name, seed, count, truncation):
        return studio.generate(class_name, seed, count, truncation)

    @_user_errors
    def interpolate(mode, class_name, seed_a, seed_b, frames, truncation):
        pictures = studio.interpolate(mode, class_name, seed_a, seed_b, frames, truncation)
        columns = frames if mode == service.INTERPOLATE_SEEDS else len(pictures) // len(classes)
        rows = [np.concatenate(pictures[i:i + columns], axis=1) for i in range(0, len(pictures), columns)]
        strip = np.concatenate(rows, axis=0)
        loop = pictures + pictures[-2:0:-1] if mode == service.INTERPOLATE_SEEDS else pictures  # ping-pong
        fd, gif = tempfile.mkstemp(suffix=".gif", dir=gif_dir)
        os.close(fd)
        frames_pil = [Image.fromarray(p) for p in loop]
        frames_pil[0].save(gif, save_all=True, append_images=frames_pil[1:], duration=80, loop=0)
        return strip, gif

    @_user_errors
    def classify(path):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        result = studio.classify(service.read_image(path))
        return result.probabilities, result.model_input, result.saliency, result.verdict

    @_user_errors
    def classify_sketch(value):
        if not value or value.get("composite") is None:
            raise InputError("Draw something on the sketchpad first.")
        rgb = service.read_image(value["composite"])
        if np.ptp(rgb) < 0.05:
            raise InputError("The sketchpad is empty: draw a garment first.")
        result = studio.classify(rgb)
        return result.probabilities, result.model_input, result.saliency, result.verdict

    @_user_errors
    def denoise(value, kind, level, seed, already_noisy):
        rgb, mask = _editor_image(value)
        result = studio.denoise(rgb, kind, level, seed, mask=mask, already_noisy=bool(already_noisy))
        table = result.figures or [["(no clean image to compare with)", None, None]]
        return (result.corrupted, result.restored), result.baseline, table, result.note

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
                    truncation = gr.Slider(*service.TRUNCATION_RANGE, 1.5, step=0.1,
                                           label="Truncation (lower: more typical, less varied)")
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                grid = gr.Image(label="Generated (download: the arrow, top right)", format="png", scale=2, elem_id="generated")
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
                    strip = gr.Image(label="Frames", format="png", elem_id="frames")
                    animation = gr.Image(label="Animation", type="filepath")
            dice.click(lambda: random.randint(0, service.MAX_SEED), None, seed, api_name="random_seed")
            generate_inputs = [class_name, seed, count, truncation]
            walk_inputs, walk_outputs = [mode, walk_class, seed_a, seed_b, frames, truncation], [strip, animation]
            generate_button.click(generate, generate_inputs, grid, api_name="generate", concurrency_limit=2)
            walk_button.click(interpolate, walk_inputs, walk_outputs, api_name="interpolate", concurrency_limit=1)

        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    with gr.Tab("Image"):
                        photo = _checked(gr.Image(str(ASSETS / ARRIVAL_CLASSIFY), label="Upload or paste an image",
                                                  type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                                  height=280, elem_id="classify-input"))
                        photo_button = gr.Button("Classify", variant="primary")
                        gr.Examples(examples, inputs=photo, label="Test-set examples", elem_id="classify-examples")
                    with gr.Tab("Draw"):
                        sketch = _checked(gr.ImageEditor(
                            label="Draw a garment (black on white)", type="pil", image_mode="RGBA", sources=(),
                            brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=12),
                            canvas_size=(280, 280), height=320, layers=False, transforms=()))
                        sketch_button = gr.Button("Classify drawing", variant="primary")
                with gr.Column():
                    verdict = gr.Markdown(elem_id="verdict")
                    top5 = gr.Label(num_top_classes=5, label="Top 5")
                    with gr.Row():
                        seen = gr.Image(label="What the model saw (28x28)", format="png", height=224)
                        saliency = gr.Image(label="Saliency: pixels that moved the top class most", format="png", height=224)
            gr.Markdown("The image is turned to grayscale, inverted if its background is light (the garments "
                        "in Fashion-MNIST are light on black), cropped to the object, centred and resized to 28x28.")
            classify_outputs = [top5, seen, saliency, verdict]
            photo_button.click(classify, photo, classify_outputs, api_name="classify", concurrency_limit=2)
            sketch_button.click(classify_sketch, sketch, classify_outputs, api_name="classify_sketch", concurrency_limit=2)

        with gr.Tab("Denoise"):
            with gr.Row():
                with gr.Column():
                    editor = _checked(gr.ImageEditor(
                        str(ASSETS / ARRIVAL_DENOISE), label="Image (for Brush mask: paint over what to hide)",
                        type="pil", image_mode=None,
                        sources=["upload", "clipboard"], brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=4),
                        transforms=(), layers=False, height=360))
                    gr.Examples(examples, inputs=editor, label="Test-set examples", elem_id="denoise-examples")
                with gr.Column():
                    kind = gr.Radio(list(service.CORRUPTIONS), value=service.GAUSSIAN, label="Corruption")
                    level = gr.Slider(*service.GAUSSIAN_RANGE, 0.2, step=0.01,
                                      label="Level: noise sigma, or salt-and-pepper amount")
                    noise_seed = gr.Number(0, precision=0, minimum=0, maximum=service.MAX_SEED, label="Noise seed")
                    already_noisy = gr.Checkbox(False, label="My image is already noisy (restore it as it is; no scores)")
                    denoise_button = gr.Button("Corrupt and restore", variant="primary")
            with gr.Row():
                slider = gr.ImageSlider(label="Corrupted | restored by the autoencoder (drag)", format="png")
                baseline = gr.Image(label="Classical baseline", format="png", height=400, elem_id="baseline")
            scores = gr.Dataframe(headers=["result", "PSNR (dB)", "SSIM"], label="Against the clean image",
                                  interactive=False, elem_id="scores")
            note = gr.Markdown()
            gr.Markdown("Any size and mode: colour images are restored channel by channel, and the autoencoder "
                        f"(fully convolutional) runs at the image's own resolution, after downscaling images "
                        f"whose long side exceeds {service.DENOISE_MAX_SIDE} pixels.")
            denoise_inputs = [editor, kind, level, noise_seed, already_noisy]
            denoise_outputs = [slider, baseline, scores, note]
            denoise_button.click(denoise, denoise_inputs, denoise_outputs, api_name="denoise", concurrency_limit=2)

        # Every tab arrives with its pictures: the default grid and latent walk, the classified example,
        # the restored one. Private: the API keeps one name per action (the buttons' above).
        demo.load(generate, generate_inputs, grid, api_visibility="private")
        demo.load(interpolate, walk_inputs, walk_outputs, api_visibility="private")
        demo.load(classify, photo, classify_outputs, api_visibility="private")
        demo.load(denoise, denoise_inputs, denoise_outputs, api_visibility="private")
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, mcp: bool = False,
           cache_dir: str | None = None) -> None:
    """Load the checkpoints, compile everything (from the persistent cache when warm), serve."""
    service.enable_compilation_cache(cache_dir)
    studio = Studio()
    seconds = studio.warm_up()
    print(f"imgjax studio: models loaded and compiled in {seconds:.1f} s", flush=True)
    demo = build_demo(studio)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, share=share, mcp_server=mcp,
                max_file_size=MAX_UPLOAD, show_error=False, allowed_paths=[str(ASSETS)], css=CSS)
