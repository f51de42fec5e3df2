"""The Denoise tab's page: an image to corrupt (or one already noisy), the autoencoder's restoration
beside the classical baseline's, and their scores against the clean image."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import user_input
from ..gradio_guards import raw_editor
from ..service import denoise as actions
from ..user_input import MAX_SEED, InputError
from .wiring import ASSETS, EXAMPLES, ModelChoice, action, status

ARRIVAL_IMAGE = ASSETS / "example_0_t-shirt-top.png"  # corrupted and restored when the page loads


def page(demo: gr.Blocks, choice: ModelChoice) -> list:
    """Build the tab inside ``demo``; returns its value controls (for ``raw_values``)."""

    def denoise(value, kind, level, seed, already_noisy, model, request: gr.Request):
        if not isinstance(already_noisy, bool):
            raise InputError(f"'Already noisy' must be true or false, got {user_input.shown(already_noisy)}.")
        rgb, mask, original_size = editor_image(value)
        result = choice.tab(request, model).denoise(rgb, kind, level, seed, mask=mask, already_noisy=already_noisy,
                             original_size=original_size)
        table = result.figures or [["(no clean image to compare with)", None, None]]
        return (result.corrupted, result.restored), result.baseline, table, result.note

    with gr.Tab("Denoise"):
        with gr.Row():
            with gr.Column():
                editor = raw_editor(gr.ImageEditor(
                    str(ARRIVAL_IMAGE), label="Image (for Brush mask: paint over what to hide)",
                    type="pil", image_mode=None,
                    sources=["upload", "clipboard"], brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=4),
                    transforms=(), layers=False, height=360, elem_id="denoise-input"))
                gr.Examples(EXAMPLES, inputs=editor, label="Test-set examples", elem_id="denoise-examples")
            with gr.Column():
                model = choice.radio.render()
                kind = gr.Radio(list(actions.CORRUPTIONS), value=actions.GAUSSIAN, label="Corruption")
                level = gr.Slider(*actions.GAUSSIAN_RANGE, 0.2, step=0.01,
                                  label="Level: noise sigma, or salt-and-pepper amount")
                noise_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Noise seed")
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
                    f"whose long side exceeds {actions.DENOISE_MAX_SIDE} pixels.")
        action(demo, denoise_button, denoise, [editor, kind, level, noise_seed, already_noisy, model],
               [slider, baseline, scores, note], denoise_status, "denoise")
        # Only the controls that apply: a painted mask has no level.
        kind.change(lambda k: gr.update(visible=k != actions.MASK), kind, level, api_visibility="private",
                    queue=False)
    return [kind, level, noise_seed, already_noisy, model]


def editor_image(value) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """An editor's value (sources from ``raw_editor``) -> (RGB image at most DENOISE_MAX_SIDE on its
    long side, painted mask or None, the upload's own (width, height))."""
    if not value or value.get("background") is None:
        raise InputError("Choose an image first: upload one or click an example.")
    image = user_input.open_image(value["background"])
    original_size = image.size
    rgb = user_input.read_image(image, actions.DENOISE_MAX_SIDE)
    masks = [user_input.read_mask(layer, rgb.shape[:2]) for layer in value.get("layers") or [] if layer is not None]
    return rgb, (np.maximum.reduce(masks) if masks else None), original_size
