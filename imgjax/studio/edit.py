"""The Edit tab's page: bring a garment (upload, paste, example, or "Edit" from the Generate tab),
project it into the generator, then change its class, move its style, mix it with another, or
draw a sketch and get garments that agree with it."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import user_input
from ..gradio_guards import raw_editor, raw_image
from ..images import upscale
from ..service import edit as actions
from ..user_input import InputError
from .wiring import ASSETS, EXAMPLES, action, for_page, save_gif, status

ARRIVAL_IMAGE = ASSETS / "example_4_coat.png"  # projected when the page loads
SKETCH_SIZE = 280
NO_IMAGE = ("No garment image: the code and edits below are still the last garment's. Upload, paste or click "
            "an example to project another.")
INTRO = """Put a garment into the GAN: the studio searches for the generator input (a class and 64
latent numbers, the garment's *code*) whose output matches it, starting from an encoder's guess.
Then edit the code: the same style as other garments, style directions, a mix of two garments."""


def page(demo: gr.Blocks, tab: actions.EditTab, code: gr.JSON) -> list:
    """Build the tab inside ``demo``. ``code`` (created unrendered, so the Generate tab can send a
    garment to it) is rendered here. Returns its value controls (for ``raw_values``)."""

    def project(path):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        return tab.project(user_input.read_image(path, actions.MAX_SIDE))

    def mix(code_value, path):
        if path is None:
            raise InputError("Choose the second garment first: upload or paste one.")
        return tab.mix(code_value, tab.project(user_input.read_image(path, actions.MAX_SIDE))[1])

    def animate(code_value, class_name, *strengths):
        frames = tab.animation(code_value, class_name, *strengths, frames=actions.MAX_FRAMES // 2)
        return save_gif([upscale(frame, 2) for frame in frames])  # 224 px, as large as the edited picture

    def from_sketch(value):
        if not value or value.get("composite") is None:
            raise InputError("Paint on the sketchpad first.")
        return tab.sketch(user_input.read_image(value["composite"], actions.MAX_SIDE))

    with gr.Tab("Edit", id="edit"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Image"):
                    photo = raw_image(gr.Image(str(ARRIVAL_IMAGE), label="Garment to edit", type="filepath",
                                               image_mode=None, sources=["upload", "clipboard"], height=260,
                                               elem_id="edit-input"))
                    project_button = gr.Button("Project into the generator", variant="primary",
                                               elem_id="project-button")
                    gr.Examples(EXAMPLES, inputs=photo, label="Test-set examples", elem_id="edit-examples")
                with gr.Tab("Sketch"):
                    gr.Markdown("Paint **white** where the garment should be and **black** where it must not be; "
                                "gray is left to the generator. Then click a garment to edit it.")
                    sketch = raw_editor(gr.ImageEditor(
                        value=np.full((SKETCH_SIZE, SKETCH_SIZE, 3), 128, np.uint8), label="Sketch", type="pil",
                        image_mode="RGBA", sources=(), canvas_size=(SKETCH_SIZE, SKETCH_SIZE), height=320,
                        brush=gr.Brush(colors=["#ffffff", "#000000"], color_mode="fixed", default_size=24),
                        layers=False, transforms=(), elem_id="edit-sketch"))
                    sketch_button = gr.Button("Find garments", variant="primary", elem_id="sketch-button")
                    sketch_status = status("sketch-status")
                    garments = gr.Gallery(label="Garments that agree with the sketch, and the share of painted pixels "
                                                "each agrees with (click one to edit it)",
                                          columns=3, height="auto", elem_id="sketch-garments", allow_preview=False,
                                          format="png", visible=False)
                    sketch_codes = gr.JSON(visible=False)
            with gr.Column(scale=1):
                project_status = status("project-status")
                pair = gr.Image(label="Image | reconstruction (28x28 each)", format="png", elem_id="projection",
                                alt_text="The garment as the generator takes it, and the generator's reconstruction")
                summary = gr.Markdown(elem_id="projection-summary")
                with gr.Accordion("The garment's code (what the generator takes; the API's edits take it)",
                                  open=False):
                    code.render()
        gr.Markdown("### Same style, other garment")
        classes = gr.Image(label="The code's latent in every class, with the classifier's confidence in each",
                           format="png", elem_id="all-classes", alt_text="The garment's style in each of the ten classes")
        gr.Markdown("### Edit")
        with gr.Row():
            with gr.Column(scale=1):
                edit_status = status("edit-status")
                class_name = gr.Dropdown(tab.class_names, value=tab.class_names[0], label="Class", elem_id="edit-class")
                sliders = [gr.Slider(-actions.STYLE_RANGE, actions.STYLE_RANGE, 0.0, step=0.1,
                                     label=actions.slider_label(name),
                                     elem_id=f"style-{i}") for i, name in enumerate(tab.style_names)]
                gif_button = gr.Button("Animate: original to edit")
            with gr.Column(scale=1):
                edited = gr.Image(label="Edited (download: the arrow, top right)", format="png", height=260,
                                  elem_id="edited", alt_text="The garment after the edit")
                animation = gr.Image(label="Animation", type="filepath", height=260, elem_id="edit-animation",
                                     alt_text="Frames from the original to the edit", visible=False)
        gr.Markdown("### Mix: this garment's style in another's class, and the other way round")
        with gr.Row():
            with gr.Column(scale=1):
                other = raw_image(gr.Image(str(ASSETS / "example_7_sneaker.png"), label="Second garment",
                                           type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                           height=200, elem_id="mix-input"))
                mix_button = gr.Button("Mix")
            with gr.Column(scale=2):
                mix_status = status("mix-status")
                mixed = gr.Image(label="This garment | second | this style as second's class | second's style "
                                       "as this class", format="png", elem_id="mixed", visible=False)

        strengths = [class_name, *sliders]
        action(demo, project_button, project, photo, [pair, code, summary], project_status, "edit_project")
        # A new image is projected at once. Emptied by the page (a garment sent from another tab), it
        # changes nothing; removed by the visitor, its projection goes and the code stays, said so.
        photo.change(for_page(lambda p: project(p) if p is not None else (gr.skip(),) * 3, "edit_project", 3), photo,
                     [pair, code, summary, project_status], api_visibility="private", concurrency_id="edit_project")
        photo.clear(lambda: (None, NO_IMAGE), None, [pair, summary], api_visibility="private", queue=False)

        def code_changed(code_value):
            """A new code (projected, or sent from another tab): its class row, the edit reset to it;
            a code sent from elsewhere also replaces the projection's picture and summary and empties
            the image input (the garment is no longer that image's)."""
            if code_value is None:
                return (gr.skip(),) * (len(sliders) + 5)
            row = tab.classes_row(code_value)  # checks the code
            arrived = (gr.skip(),) * 3
            if code_value.get("from"):
                message = (f"A **{code_value['class']}** from {code_value['from']}: its code is the generator's "
                           "own, so nothing to project.")
                arrived = (tab.garment(code_value), message, None)
            return row, code_value["class"], *[0.0] * len(sliders), *arrived

        code.change(for_page(code_changed, "edit_classes", 5 + len(sliders)), code,
                    [classes, class_name, *sliders, pair, summary, photo, edit_status], api_visibility="private")
        action(demo, gr.Button(visible=False), tab.classes_row, code, [classes], edit_status, "edit_classes",
               load=False)
        render = for_page(tab.render, "edit_render", 1)
        for control in strengths:
            control.change(render, [code, *strengths], [edited, edit_status], api_visibility="private",
                           trigger_mode="always_last", concurrency_id="edit_render")
        action(demo, gr.Button(visible=False), tab.render, [code, *strengths], [edited], edit_status,
               "edit_render", load=False)
        action(demo, gif_button, animate, [code, *strengths], [animation], edit_status, "edit_animation",
               load=False, limit=1)
        action(demo, mix_button, mix, [code, other], [mixed], mix_status, "edit_mix", load=False)
        action(demo, sketch_button, from_sketch, sketch, [garments, sketch_codes], sketch_status, "edit_sketch",
               load=False, limit=1)

        def pick(codes, selected: gr.SelectData):
            return codes[selected.index]

        garments.select(pick, sketch_codes, code, api_visibility="private", queue=False)
        # Pictures that come only on request are hidden until then (an empty picture box is only noise).
        for button, output in ((gif_button, animation), (mix_button, mixed), (sketch_button, garments)):
            button.click(lambda: gr.update(visible=True), None, output, api_visibility="private", queue=False)
    return [class_name, *sliders]
