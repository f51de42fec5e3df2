"""The Denoise tab's page: an image to corrupt (or one already noisy), a denoising model's restoration
(the garment or the photo model) beside the classical baseline's and, for small images, BM3D's, and
their scores against the clean image."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import user_input
from ..gradio_guards import optional, raw_editor
from ..service import denoise as actions
from ..user_input import MAX_SEED, InputError
from .wiring import ASSETS, ModelChoice, action, examples_by_dataset, for_page, shown_for, status

ARRIVAL_IMAGE = ASSETS / "example_0_t-shirt-top.png"  # corrupted and restored when the page loads


def page(demo: gr.Blocks, choice: ModelChoice) -> list:
    """Build the tab inside ``demo``; returns its value controls (for ``raw_values``)."""

    tabs = choice.by_dataset  # by dataset title

    def denoise(value, kind, level, seed, already_noisy, model, denoiser, dataset, request: gr.Request):
        """(corrupted | restored, baseline, figures, note, the inputs used, for the BM3D step after it)."""
        check_bool("Already noisy", already_noisy)
        rgb, mask, original_size = editor_image(value)
        result = choice.tab(request, model, dataset).denoise(rgb, kind, level, seed, mask=mask,
                                                             already_noisy=already_noisy,
                                                             original_size=original_size, denoiser=denoiser)
        table = result.figures or [["(no clean image to compare with)", None, None]]
        used = (rgb, original_size, kind, level, seed, already_noisy, model, denoiser, dataset)
        return (result.corrupted, result.restored), result.baseline, table, result.note, used

    def bm3d_of(rgb, original_size, level, seed, already_noisy, model, denoiser, dataset, request):
        return choice.tab(request, model, dataset).bm3d(rgb, level, seed, already_noisy=already_noisy,
                                                        original_size=original_size, denoiser=denoiser)

    def bm3d(value, level, seed, already_noisy, model, denoiser, dataset, request: gr.Request):
        """BM3D on the image ``denoise`` corrupted (the same noise): (picture, its row of figures)."""
        check_bool("Already noisy", already_noisy)
        rgb, _, original_size = editor_image(value)
        return bm3d_of(rgb, original_size, level, seed, already_noisy, model, denoiser, dataset, request)

    def show_dataset(dataset):
        """The chosen dataset's examples and corruptions (colourisation where its model colours), and
        the Denoiser choice only where there is a photo model beside the dataset's."""
        chosen = tabs.get(dataset, choice.shipped)
        kinds = list(actions.CORRUPTIONS if chosen.colourises else actions.CORRUPTIONS[:-1])
        return shown_for(tabs, dataset) + [
            gr.update(choices=kinds, value=actions.GAUSSIAN),
            gr.update(visible=chosen.has_photo_model, value=actions.AUTOMATIC)]

    def bm3d_after_denoise(used, table, request: gr.Request):
        """The page's BM3D step, run after each restoration on the image and settings it used (kept
        decoded in a State: the editor may have changed since); only for Gaussian noise on small images."""
        if used is None or not table:  # the restoration was refused: its message stays
            return gr.update(value=None, visible=False), table
        rgb, original_size, kind, level, seed, already_noisy, model, denoiser, dataset = used
        if kind != actions.GAUSSIAN or rgb.shape[0] * rgb.shape[1] > actions.BM3D_MAX_PIXELS:
            return gr.update(value=None, visible=False), table
        picture, figures = bm3d_of(rgb, original_size, level, seed, already_noisy, model, denoiser, dataset, request)
        return (gr.update(value=picture, visible=True),
                [row for row in table if not str(row[0]).startswith("BM3D")] + figures)

    with gr.Tab("Denoise"):
        with gr.Row():
            with gr.Column():
                editor = raw_editor(gr.ImageEditor(
                    str(ARRIVAL_IMAGE), label="Image (for Brush mask: paint over what to hide)",
                    type="pil", image_mode=None,
                    sources=["upload", "clipboard"], brush=gr.Brush(colors=["#ff0000"], color_mode="fixed", default_size=4),
                    transforms=(), layers=False, height=360, elem_id="denoise-input"))
                example_sets = examples_by_dataset(tabs, editor, "denoise-examples")
            with gr.Column():
                model = choice.radio.render()
                dataset = choice.dataset_radio.render()
                denoiser = optional(gr.Radio(
                    list(actions.DENOISERS), value=actions.AUTOMATIC, label="Denoiser", elem_id="denoiser",
                    info="Automatic: 28x28 garments to the garment model, Gaussian noise on anything else to the "
                    "photo model (trained on colour photos, Gaussian noise only)"))
                kind = gr.Radio(list(actions.CORRUPTIONS[:-1]), value=actions.GAUSSIAN, label="Corruption")
                level = gr.Slider(*actions.GAUSSIAN_RANGE, 0.2, step=0.01,
                                  label="Level: noise sigma, or salt-and-pepper amount")
                noise_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Noise seed")
                already_noisy = gr.Checkbox(False, label="My image is already noisy (restore it as it is; no scores)")
                denoise_button = gr.Button("Corrupt and restore", variant="primary")
        denoise_status = status("denoise-status")
        with gr.Row():
            slider = gr.ImageSlider(label="Corrupted | restored by the model (drag)", format="png",
                                    elem_id="restored")
            baseline = gr.Image(label="Classical baseline", format="png", height=400, elem_id="baseline",
                                alt_text="The classical baseline's restoration")
            # Shown once BM3D has run (Gaussian noise, images up to 256x256).
            bm3d_image = gr.Image(label="BM3D, told the noise level (seconds)", format="png", height=400,
                                  elem_id="bm3d", alt_text="BM3D's restoration", visible=False)
        scores = gr.Dataframe(headers=["result", "PSNR (dB)", "SSIM"], label="Against the clean image",
                              interactive=False, elem_id="scores", wrap=True, type="array",
                              column_widths=["50%", "25%", "25%"])
        note = gr.Markdown(elem_id="denoise-note")
        gr.Markdown("Any size and mode: both models are fully convolutional and run at the image's own "
                    f"resolution, after downscaling images whose long side exceeds {actions.DENOISE_MAX_SIDE} "
                    "pixels. The garment model restores colour channel by channel, the photo model jointly.")
        inputs = [editor, kind, level, noise_seed, already_noisy, model, denoiser, dataset]
        used = gr.State()  # the restoration's image and settings, for the BM3D step (API clients never see a State)
        restoration = action(demo, denoise_button, denoise, inputs, [slider, baseline, scores, note, used],
                             denoise_status, "denoise")
        # BM3D follows each restoration on the page (the loading timer on its picture shows it running).
        bm3d_page = for_page(bm3d_after_denoise, "denoise_bm3d", 2, clears_status=False)
        restoration.then(bm3d_page, [used, scores], [bm3d_image, scores, denoise_status], api_visibility="private",
                         concurrency_id="denoise_bm3d", concurrency_limit=1)
        gr.Button(visible=False).click(bm3d, [editor, level, noise_seed, already_noisy, model, denoiser, dataset],
                                       [bm3d_image, scores], api_name="denoise_bm3d", concurrency_id="denoise_bm3d",
                                       concurrency_limit=1)
        # Only the controls that apply: a painted mask and colourisation have no level.
        kind.change(lambda k: gr.update(visible=k not in (actions.MASK, actions.GRAY)), kind, level,
                    api_visibility="private", queue=False)
        dataset.change(show_dataset, dataset, [*example_sets, kind, denoiser], api_visibility="private", queue=False)
    return [kind, level, noise_seed, already_noisy, model, denoiser, dataset]


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"'{name}' must be true or false, got {user_input.shown(value)}.")
    return value


def editor_image(value) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """An editor's value (sources from ``raw_editor``) -> (RGB image at most DENOISE_MAX_SIDE on its
    long side, painted mask or None, the upload's own (width, height))."""
    if not value or value.get("background") is None:
        raise InputError("Choose an image first: upload one or click an example.")
    # The size from the header alone: an opened image kept here would hold its decoded pixels (100 MB
    # at 25 MP) while the masks decode.
    original_size = user_input.open_image(value["background"]).size
    rgb = user_input.read_image(value["background"], actions.DENOISE_MAX_SIDE)
    masks = [user_input.read_mask(layer, rgb.shape[:2]) for layer in value.get("layers") or [] if layer is not None]
    return rgb, (np.maximum.reduce(masks) if masks else None), original_size
