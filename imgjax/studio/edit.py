"""The Edit tab's page: bring a picture of the dataset chosen (upload, paste, example, or "Edit"
from the Generate tab), project it into that dataset's generator, then change its class (and art set
and skin tone), move its style, mix it with another, or draw a sketch and get pictures that agree
with it. Every edit follows the code's dataset (a code names it)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from .. import edit, user_input
from ..gradio_guards import long_text, optional, raw_editor, raw_image
from ..images import upscale
from ..service import edit as actions
from ..user_input import InputError, check_choice
from .wiring import ASSETS, action, examples_by_dataset, for_page, save_gif, shown_for, status

# Per dataset, the example projected when the page (or the dataset) opens and the second picture to
# mix; a dataset not named here: its first two examples.
SHOWN_FIRST = {"fashion-mnist": ("example_4_coat.png", "example_7_sneaker.png"),
               "emoji": ("emoji_1_people_female-technologist-noto.png", "emoji_3_animals_turtle-twemoji.png")}
SKETCH_SIZE = 280


def sketch_brush(dataset) -> gr.Brush:
    """Light and dark for a dataset drawn light on dark (garment, nothing); else the sketch colours."""
    colours = ([(1.0, 1.0, 1.0), (0.0, 0.0, 0.0)] if dataset.light_on_dark
               else list(edit.SKETCH_COLOURS.values()))
    hexes = ["#" + "".join(f"{round(255 * c):02x}" for c in colour) for colour in colours]
    return gr.Brush(colors=hexes, default_color=hexes[0], color_mode="fixed", default_size=24)


def sketch_help(dataset) -> str:
    """How to paint a sketch of ``dataset``'s pictures."""
    if dataset.light_on_dark:
        return ("Paint **white** where the garment should be and **black** where it must not be; gray is left "
                "to the generator. Then click a garment to edit it.")
    return (f"Paint {dataset.noun} in the brush colours (**white** is the background); gray is left to the "
            "generator. Then click a picture to edit it.")


def blank_sketch() -> np.ndarray:
    """The sketchpad before painting: all gray, which leaves every pixel to the generator."""
    return np.full((SKETCH_SIZE, SKETCH_SIZE, 3), 128, np.uint8)


NO_IMAGE = ("No image: the code and edits below are still the last picture's. Upload, paste or click an example "
            "to project another.")
INTRO = """Put a picture into the GAN: the studio searches for the generator input (a class, art set
and skin tone where the dataset has them, and 64 latent numbers: the picture's *code*) whose output
matches it, starting from an encoder's guess. Then edit the code: the same style in other classes,
style directions, a mix of two pictures."""


def shown_first(dataset) -> tuple[str, str]:
    """The paths of ``dataset``'s arrival picture and second picture to mix (``SHOWN_FIRST``)."""
    examples = sorted(ASSETS.glob(dataset.examples))
    return tuple(str(ASSETS / name) for name in SHOWN_FIRST.get(dataset.name, [p.name for p in examples[:2]]))


def page(demo: gr.Blocks, tabs: dict[str, actions.EditTab], code: gr.JSON) -> list:
    """Build the tab inside ``demo`` on ``tabs`` (the Edit tab's actions by dataset title, the first
    shown). ``code`` (created unrendered, so the Generate tab can send a picture to it) is rendered
    here. Returns its value controls (for ``raw_values``)."""
    if any(len(tab.style_names) != actions.STYLE_SLIDERS for tab in tabs.values()):
        raise ValueError(f"every dataset's Edit tab has {actions.STYLE_SLIDERS} style directions")
    first = next(iter(tabs.values()))
    by_name = {tab.dataset.name: tab for tab in tabs.values()}
    arrival, second = shown_first(first.dataset)
    # The page and the API send codes back with their detail, longer than other text a user sends.
    long_text(code, max(actions.detail_length(tab.generator.detail_shape) for tab in tabs.values()))
    # Art sets and skin tones where a dataset has them; None (an API client leaving them out) keeps the code's.
    styles = next((tab.styles for tab in tabs.values() if tab.styles), [])
    tones = next((tab.tones for tab in tabs.values() if tab.tones), [])

    def chosen(dataset) -> actions.EditTab:
        """The tab of the dataset titled ``dataset`` (None: the first)."""
        return tabs[check_choice("Dataset", next(iter(tabs)) if dataset is None else dataset, tuple(tabs))]

    def of_code(code_value) -> actions.EditTab:
        """The tab of the dataset a code names (none named: the first)."""
        name = code_value.get("dataset", first.dataset.name) if isinstance(code_value, dict) else first.dataset.name
        if not isinstance(name, str) or name not in by_name:
            raise InputError(f"A code's dataset is one of {', '.join(by_name)}; got {str(name)[:40]!r}.")
        return by_name[name]

    def project(path, dataset=None):
        if path is None:
            raise InputError("Choose an image first: upload one, paste one or click an example.")
        return chosen(dataset).project(user_input.read_image(path, actions.MAX_SIDE))

    def classes_row(code_value):
        return of_code(code_value).classes_row(code_value)

    # The API's edits take the four style strengths, then the art set and skin tone (None: the code's).
    def render(code_value, class_name, style_1, style_2, style_3, style_4, art_set=None, tone=None):
        return of_code(code_value).render(code_value, class_name, style_1, style_2, style_3, style_4, art_set=art_set,
                                          tone=tone)

    def mix(code_value, path):
        if path is None:
            raise InputError("Choose the second picture first: upload or paste one.")
        tab = of_code(code_value)
        return tab.mix(code_value, tab.project(user_input.read_image(path, actions.MAX_SIDE))[1])

    def animate(code_value, class_name, style_1, style_2, style_3, style_4, art_set=None, tone=None):
        frames = of_code(code_value).animation(code_value, class_name, style_1, style_2, style_3, style_4,
                                               frames=actions.MAX_FRAMES // 2, art_set=art_set, tone=tone)
        return save_gif([upscale(frame, 2) for frame in frames])  # 224 px, as large as the edited picture

    def from_sketch(value, dataset=None):
        if not value or value.get("composite") is None:
            raise InputError("Paint on the sketchpad first.")
        return chosen(dataset).sketch(user_input.read_image(value["composite"], actions.MAX_SIDE))

    def show_dataset(dataset):
        """A dataset chosen on the page: its examples, its arrival picture (projected at once), its
        second picture to mix, and its sketch brushes."""
        tab = chosen(dataset)
        return (*shown_for(tabs, dataset), *shown_first(tab.dataset), *sketch_controls(tab.dataset))

    def sketch_controls(shown) -> tuple:
        """The sketch's help, brushes (a new brush empties the sketchpad) and button for dataset ``shown``."""
        return sketch_help(shown), gr.update(brush=sketch_brush(shown)), gr.update(value=f"Find {shown.noun}")

    with gr.Tab("Edit", id="edit"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                dataset = optional(gr.Radio(list(tabs), value=next(iter(tabs)), label="Dataset",
                                            visible=len(tabs) > 1, elem_id="edit-dataset"))
                with gr.Tab("Image"):
                    photo = raw_image(gr.Image(arrival, label="Picture to edit", type="filepath",
                                               image_mode=None, sources=["upload", "clipboard"], height=260,
                                               elem_id="edit-input"))
                    project_button = gr.Button("Project into the generator", variant="primary",
                                               elem_id="project-button")
                    example_sets = examples_by_dataset(tabs, photo, "edit-examples")
                with gr.Tab("Sketch"):
                    how_to_sketch = gr.Markdown(sketch_help(first.dataset))
                    sketch = raw_editor(gr.ImageEditor(
                        value=blank_sketch(), label="Sketch", type="pil",
                        image_mode="RGBA", sources=(), canvas_size=(SKETCH_SIZE, SKETCH_SIZE), height=320,
                        brush=sketch_brush(first.dataset), layers=False, transforms=(), elem_id="edit-sketch"))
                    sketch_button = gr.Button(f"Find {first.dataset.noun}", variant="primary", elem_id="sketch-button")
                    sketch_status = status("sketch-status")
                    garments = gr.Gallery(label="Pictures that agree with the sketch, and the share of painted pixels "
                                                "each agrees with (click one to edit it)",
                                          columns=3, height="auto", elem_id="sketch-garments", allow_preview=False,
                                          format="png", visible=False)
                    sketch_codes = gr.JSON(visible=False)
            with gr.Column(scale=1):
                project_status = status("project-status")
                pair = gr.Image(label="Image | reconstruction | the latent alone (what edits to another class "
                                      "draw)", format="png", elem_id="projection",
                                alt_text="The picture as the generator takes it, and the generator's reconstruction")
                summary = gr.Markdown(elem_id="projection-summary")
                with gr.Accordion("The picture's code (what the generator takes; the API's edits take it)",
                                  open=False):
                    code.render()
        gr.Markdown("### Same style, other class")
        classes = gr.Image(label="The code's latent in every class, with the classifier's confidence in each",
                           format="png", elem_id="all-classes", alt_text="The picture's style in each class")
        gr.Markdown("### Edit")
        with gr.Row():
            with gr.Column(scale=1):
                edit_status = status("edit-status")
                class_name = gr.Dropdown(first.class_names, value=first.class_names[0], label="Class",
                                         elem_id="edit-class")
                art_set = optional(gr.Radio(styles, value=None, label="Art set", visible=bool(first.styles),
                                            elem_id="edit-art-set"))
                skin_tone = optional(gr.Dropdown(tones, value=None, label="Skin tone (people and hands)",
                                                 visible=bool(first.tones), elem_id="edit-skin-tone"))
                sliders = [gr.Slider(-actions.STYLE_RANGE, actions.STYLE_RANGE, 0.0, step=0.1,
                                     label=actions.slider_label(name, first.style_elsewhere),
                                     elem_id=f"style-{i}") for i, name in enumerate(first.style_names)]
                gif_button = gr.Button("Animate: original to edit")
            with gr.Column(scale=1):
                edited = gr.Image(label="Edited (download: the arrow, top right)", format="png", height=260,
                                  elem_id="edited", alt_text="The picture after the edit")
                animation = gr.Image(label="Animation", type="filepath", height=260, elem_id="edit-animation",
                                     alt_text="Frames from the original to the edit", visible=False)
        gr.Markdown("### Mix: this picture's style in another's class, and the other way round")
        with gr.Row():
            with gr.Column(scale=1):
                other = raw_image(gr.Image(second, label="Second picture", type="filepath", image_mode=None,
                                           sources=["upload", "clipboard"], height=200, elem_id="mix-input"))
                mix_button = gr.Button("Mix")
            with gr.Column(scale=2):
                mix_status = status("mix-status")
                mixed = gr.Image(label="This picture | second | this style as second's class | second's style "
                                       "as this class", format="png", elem_id="mixed", visible=False)

        strengths = [class_name, *sliders, art_set, skin_tone]
        action(demo, project_button, project, [photo, dataset], [pair, code, summary], project_status, "edit_project")
        # A new image is projected at once. Emptied by the page (a picture sent from another tab), it
        # changes nothing; removed by the visitor, its projection goes and the code stays, said so.
        photo.change(for_page(lambda p, d: project(p, d) if p is not None else (gr.skip(),) * 3, "edit_project", 3),
                     [photo, dataset], [pair, code, summary, project_status], api_visibility="private",
                     concurrency_id="edit_project")
        photo.clear(lambda: (None, NO_IMAGE), None, [pair, summary], api_visibility="private", queue=False)
        # A dataset the visitor picks: its examples, and its arrival picture in the input (projected by
        # the change above). A dataset set by an arriving code (below) changes neither.
        dataset.input(show_dataset, dataset, [*example_sets, photo, other, how_to_sketch, sketch, sketch_button],
                      api_visibility="private", queue=False)

        def code_changed(code_value, shown_dataset):
            """A new code (projected, or sent from another tab): its dataset's classes, art sets and
            tones, its class row, the edit reset to it; a code sent from elsewhere also replaces the
            projection's picture and summary, empties the image input (the picture is no longer that
            image's) and shows its dataset (and that dataset's sketchpad, where another was shown)."""
            if code_value is None:
                return (gr.skip(),) * len(changed_outputs)
            tab = of_code(code_value)
            row = tab.classes_row(code_value)  # checks the code
            arrived = (gr.skip(),) * (8 + len(example_sets))
            if code_value.get("from"):
                message = (f"A **{code_value['class']}** from {code_value['from']}: its code is the generator's "
                           "own, so nothing to project.")
                title = tab.dataset.title
                sketching = sketch_controls(tab.dataset) if title != shown_dataset else (gr.skip(),) * 3
                arrived = (tab.garment(code_value), message, None, title, *shown_for(tabs, title),
                           shown_first(tab.dataset)[1], *sketching)
            controls = (gr.update(choices=tab.class_names, value=code_value["class"]),
                        gr.update(visible=bool(tab.styles), value=code_value.get("art_set")),
                        gr.update(visible=bool(tab.tones), value=code_value.get("tone", tab.tones[0] if tab.tones
                                                                                 else None)),
                        *[gr.update(value=0.0, label=actions.slider_label(name, tab.style_elsewhere))
                          for name in tab.style_names])
            return row, *controls, *arrived

        changed_outputs = [classes, class_name, art_set, skin_tone, *sliders, pair, summary, photo, dataset,
                           *example_sets, other, how_to_sketch, sketch, sketch_button]
        code.change(for_page(code_changed, "edit_classes", len(changed_outputs)), [code, dataset],
                    [*changed_outputs, edit_status], api_visibility="private")
        action(demo, gr.Button(visible=False), classes_row, code, [classes], edit_status, "edit_classes", load=False)

        def render_shown(code_value, class_name, *rest):
            """The page's render: a class control still naming another dataset's class (a code from
            that other dataset just arrived, its classes on their way) waits for them."""
            if isinstance(code_value, dict) and class_name not in of_code(code_value).class_names:
                return gr.skip()
            return render(code_value, class_name, *rest)

        render_page = for_page(render_shown, "edit_render", 1)
        for control in strengths:
            control.change(render_page, [code, *strengths], [edited, edit_status], api_visibility="private",
                           trigger_mode="always_last", concurrency_id="edit_render")
        action(demo, gr.Button(visible=False), render, [code, *strengths], [edited], edit_status,
               "edit_render", load=False)
        action(demo, gif_button, animate, [code, *strengths], [animation], edit_status, "edit_animation",
               load=False, limit=1)
        action(demo, mix_button, mix, [code, other], [mixed], mix_status, "edit_mix", load=False)
        action(demo, sketch_button, from_sketch, [sketch, dataset], [garments, sketch_codes], sketch_status,
               "edit_sketch", load=False, limit=1)

        def pick(codes, selected: gr.SelectData):
            return codes[selected.index]

        garments.select(pick, sketch_codes, code, api_visibility="private", queue=False)
        # Pictures that come only on request are hidden until then (an empty picture box is only noise).
        for button, output in ((gif_button, animation), (mix_button, mixed), (sketch_button, garments)):
            button.click(lambda: gr.update(visible=True), None, output, api_visibility="private", queue=False)
    return [dataset, class_name, *sliders, art_set, skin_tone]
