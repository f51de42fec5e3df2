"""The Classify tab's page: an image (upload, paste, example) or a drawing, and what the classifier
makes of it: a verdict, the top 5, the 28x28 image it saw and its saliency."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import user_input
from ..gradio_guards import raw_editor, raw_image
from ..service import classify as actions
from ..user_input import InputError
from .wiring import ASSETS, EXAMPLES, ModelChoice, action, for_page, status

ARRIVAL_IMAGE = ASSETS / "example_9_ankle-boot.png"  # classified when the page loads


def page(demo: gr.Blocks, choice: ModelChoice) -> list:
    """Build the tab inside ``demo``; returns its value controls (the model choice; the images are
    checked where they are read)."""

    def answer(rgb, model, request):
        result = choice.tab(request, model).classify(rgb)
        return result.probabilities, result.model_input, result.saliency, result.verdict

    def classify(path, model, request: gr.Request):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        return answer(user_input.read_image(path, actions.CLASSIFY_MAX_SIDE), model, request)

    def classify_if_any(path, model, request: gr.Request):
        """The image changed: classify it, or clear the results when the image was removed."""
        return classify(path, model, request) if path is not None else (None, None, None, "")

    def classify_sketch(value, model, request: gr.Request):
        if not value or value.get("composite") is None:
            raise InputError("Draw something on the sketchpad first.")
        rgb = user_input.read_image(value["composite"], actions.CLASSIFY_MAX_SIDE)
        if np.ptp(rgb) < 0.05:
            raise InputError("The sketchpad is empty: draw a garment first.")
        return answer(rgb, model, request)

    def classify_sketch_if_any(value, model, request: gr.Request):
        """The Draw tab was chosen: its drawing's results, or none (not the Image tab's) before one."""
        try:
            return classify_sketch(value, model, request)
        except InputError:
            return None, None, None, "Draw a garment on the sketchpad, then click **Classify drawing**."

    with gr.Tab("Classify"):
        with gr.Row():
            with gr.Column():
                model = choice.radio.render()
                with gr.Tab("Image") as image_tab:
                    photo = raw_image(gr.Image(str(ARRIVAL_IMAGE), label="Upload or paste an image",
                                               type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                               height=280, elem_id="classify-input"))
                    photo_button = gr.Button("Classify", variant="primary")
                    gr.Examples(EXAMPLES, inputs=photo, label="Test-set examples", elem_id="classify-examples")
                with gr.Tab("Draw") as draw_tab:
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
        outputs = [top5, seen, saliency, verdict]
        action(demo, photo_button, classify, [photo, model], outputs, classify_status, "classify")
        action(demo, sketch_button, classify_sketch, [sketch, model], outputs, classify_status, "classify_sketch",
               load=False)
        # A new image (upload, paste, example) is classified at once: it takes milliseconds.
        photo.change(for_page(classify_if_any, "classify", 4), [photo, model], [*outputs, classify_status],
                     api_visibility="private", concurrency_id="classify", show_progress="hidden")
        # The results beside the sub-tab on show are that sub-tab's input's.
        # (Milliseconds each, so outside the queue: no progress overlay when the tab opens.)
        image_tab.select(for_page(classify_if_any, "classify", 4), [photo, model], [*outputs, classify_status],
                         api_visibility="private", queue=False, show_progress="hidden")
        draw_tab.select(for_page(classify_sketch_if_any, "classify_sketch", 4), [sketch, model],
                        [*outputs, classify_status], api_visibility="private", queue=False, show_progress="hidden")
    return [model]
