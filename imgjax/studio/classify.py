"""The Classify tab's page: an image (upload, paste, example) or a drawing, and what the classifier
of the chosen dataset makes of it: a verdict, the top 5, the small image it saw and its saliency."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import user_input
from ..emoji import MODIFIED_TONES, TONED_GROUP
from ..gradio_guards import raw_editor, raw_image
from ..service import classify as actions
from ..user_input import InputError
from .wiring import ASSETS, ModelChoice, action, examples_by_dataset, for_page, shown_for, status

ARRIVAL_IMAGE = ASSETS / "example_9_ankle-boot.png"  # classified when the page loads


def how_seen(dataset) -> str:
    """What happens to an image before the dataset's classifier sees it, in a sentence or two."""
    if dataset.light_on_dark:
        return (f"The image is turned to grayscale, inverted if its background is light (the {dataset.noun} in "
                f"it learnt from are light on black), cropped to the object, centred and "
                f"resized to {dataset.side}x{dataset.side}.")
    return (f"The image is made square with white margins and resized to {dataset.side}x{dataset.side} in colour, "
            f"as the {dataset.noun} were. Art: {dataset.credit}.")


def tone_text(card: dict) -> str:
    """The classifier's accuracy on the test pictures of people per skin tone as ``imgjax eval cnn``
    measured it (``per_tone_accuracy``), as a table and the largest gap between the five skin tones;
    "" where none was measured."""
    measured = card.get("metrics", {}).get("per_tone_accuracy")
    if not measured:
        return ""
    lines = [f"| skin tone | test pictures of {TONED_GROUP.lower()} named as {TONED_GROUP.lower()} |", "|---|---|"]
    lines += [f"| {tone} | {accuracy:.1%} |" for tone, accuracy in measured.items()]
    modified = [measured[tone] for tone in MODIFIED_TONES if tone in measured]
    gap = 100 * (max(modified) - min(modified)) if modified else 0.0
    return ("\n".join(lines) + f"\n\nLargest gap between the five skin tones (light to dark): {gap:.1f} points "
            "(a gap over 3 is a defect to fix); default is the unmodified yellow figure, mixed a picture of "
            "people of different tones. The test emoji are unseen in every art set and tone; `imgjax eval cnn` "
            "measures it.")


def page(demo: gr.Blocks, choice: ModelChoice) -> list:
    """Build the tab inside ``demo``; returns its value controls (the model and dataset choices;
    the images are checked where they are read)."""
    tabs = choice.by_dataset  # by dataset title

    def answer(rgb, model, dataset, request):
        result = choice.tab(request, model, dataset).classify(rgb)
        return result.probabilities, result.model_input, result.saliency, result.verdict

    def classify(path, model, dataset, request: gr.Request):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        return answer(user_input.read_image(path, actions.CLASSIFY_MAX_SIDE), model, dataset, request)

    def classify_if_any(path, model, dataset, request: gr.Request):
        """The image changed: classify it, or clear the results when the image was removed."""
        return classify(path, model, dataset, request) if path is not None else (None, None, None, "")

    def classify_sketch(value, model, dataset, request: gr.Request):
        if not value or value.get("composite") is None:
            raise InputError("Draw something on the sketchpad first.")
        rgb = user_input.read_image(value["composite"], actions.CLASSIFY_MAX_SIDE)
        if np.ptp(rgb) < 0.05:
            raise InputError("The sketchpad is empty: draw something first.")
        return answer(rgb, model, dataset, request)

    def classify_sketch_if_any(value, model, dataset, request: gr.Request):
        """The Draw tab was chosen: its drawing's results, or none (not the Image tab's) before one."""
        try:
            return classify_sketch(value, model, dataset, request)
        except InputError:
            return None, None, None, "Draw on the sketchpad, then click **Classify drawing**."

    tones_by_dataset = {title: tone_text(tab.card) for title, tab in tabs.items()}  # the cards do not change

    def show_dataset(dataset):
        """The examples, the note and the measured skin tones of the chosen dataset (an unknown title:
        the first's)."""
        chosen = dataset if dataset in tabs else next(iter(tabs))
        tones = tones_by_dataset[chosen]
        return shown_for(tabs, chosen) + [how_seen(tabs[chosen].dataset), gr.update(visible=bool(tones)), tones]

    with gr.Tab("Classify"):
        with gr.Row():
            with gr.Column():
                model = choice.radio.render()
                dataset = choice.dataset_radio.render()
                with gr.Tab("Image") as image_tab:
                    photo = raw_image(gr.Image(str(ARRIVAL_IMAGE), label="Upload or paste an image",
                                               type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                               height=280, elem_id="classify-input"))
                    photo_button = gr.Button("Classify", variant="primary")
                    example_sets = examples_by_dataset(tabs, photo, "classify-examples")
                with gr.Tab("Draw") as draw_tab:
                    sketch = raw_editor(gr.ImageEditor(
                        label="Draw (black on white)", type="pil", image_mode="RGBA", sources=(),
                        brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=12),
                        canvas_size=(280, 280), height=320, layers=False, transforms=(), elem_id="sketch"))
                    sketch_button = gr.Button("Classify drawing", variant="primary")
            with gr.Column():
                classify_status = status("classify-status")
                verdict = gr.Markdown(elem_id="verdict")
                top5 = gr.Label(num_top_classes=5, label="Top 5")
                with gr.Row():
                    seen = gr.Image(label="What the model saw", format="png", height=224,
                                    alt_text="The small image the classifier saw, enlarged")
                    saliency = gr.Image(label="Saliency: pixels that moved the top class most", format="png",
                                        height=224, alt_text="Saliency map over the classifier's input")
        note = gr.Markdown(how_seen(next(iter(tabs.values())).dataset), elem_id="classify-note")
        first_tones = next(iter(tones_by_dataset.values()))
        with gr.Accordion("Skin tones (measured)", open=False, visible=bool(first_tones),
                          elem_id="classify-tones-box") as tones_box:
            tones = gr.Markdown(first_tones, elem_id="classify-tones")
        outputs = [top5, seen, saliency, verdict]
        action(demo, photo_button, classify, [photo, model, dataset], outputs, classify_status, "classify")
        action(demo, sketch_button, classify_sketch, [sketch, model, dataset], outputs, classify_status,
               "classify_sketch", load=False)
        # A new image (upload, paste, example) is classified at once: it takes milliseconds.
        photo.change(for_page(classify_if_any, "classify", 4), [photo, model, dataset], [*outputs, classify_status],
                     api_visibility="private", concurrency_id="classify", show_progress="hidden")
        # Another dataset: its examples and note, and the image on show classified by its model.
        dataset.change(show_dataset, dataset, [*example_sets, note, tones_box, tones], api_visibility="private",
                       queue=False, show_progress="hidden")
        dataset.change(for_page(classify_if_any, "classify", 4), [photo, model, dataset], [*outputs, classify_status],
                       api_visibility="private", concurrency_id="classify", show_progress="hidden")
        # The results beside the sub-tab on show are that sub-tab's input's.
        # (Milliseconds each, so outside the queue: no progress overlay when the tab opens.)
        image_tab.select(for_page(classify_if_any, "classify", 4), [photo, model, dataset], [*outputs, classify_status],
                         api_visibility="private", queue=False, show_progress="hidden")
        draw_tab.select(for_page(classify_sketch_if_any, "classify_sketch", 4), [sketch, model, dataset],
                        [*outputs, classify_status], api_visibility="private", queue=False, show_progress="hidden")
    return [model, dataset]
