"""The Generate tab's page: a grid by class and seed (and art set and skin tone, for the emoji), the
truncation trade-off and the skin tones as measured, and a walk through the latent space as frames and an animation, on the
dataset chosen."""

from __future__ import annotations

import random

import gradio as gr
import numpy as np

from ..images import upscale
from ..service import generate as actions
from ..service.lab import SHIPPED
from ..user_input import MAX_SEED, InputError, check_choice
from ..gradio_guards import optional
from .wiring import ModelChoice, action, for_page, save_gif, status

STRIP_COLUMNS = 8  # the walk's frames, this many to a row
# No truncation (the slider's top): on the curve measured on training images held out of the GAN's
# training it is the nearest to them and the most varied (docs/gan-recipe.md, "The default truncation").
DEFAULT_TRUNCATION = actions.TRUNCATION_RANGE[1]
NO_STYLE = "(none)"  # the art set of a dataset without art sets (garments): ignored


def page(demo: gr.Blocks, choice: ModelChoice, send_to_edit: tuple[gr.JSON, gr.Tabs] | None = None) -> list:
    """Build the tab inside ``demo``; returns its value controls (for ``raw_values``). With
    ``send_to_edit`` (the Edit tab's code and the page's tabs), an "Edit" button sends the grid's
    first garment there."""
    tab = choice.shipped
    classes = tab.class_names
    # The art sets on show; a stand-in where no dataset has them, so API clients may leave it out.
    first_styles = next((t.styles for t in choice.by_dataset.values() if t.styles), [NO_STYLE])
    every_tone = [actions.EVERY_TONE, *next((t.tones for t in choice.by_dataset.values() if t.tones), [])]

    def generate(class_name, seed, count, truncation, model, dataset, art_set, tone, request: gr.Request):
        return choice.tab(request, model, dataset).generate(class_name, seed, count, truncation, art_set, tone)

    def first_code(class_name, seed, truncation, model, dataset, art_set, tone):
        if model != SHIPPED:
            raise InputError("The Edit tab works on the shipped generators (their encoders were trained for them): "
                             "choose Model: Shipped first.")
        dataset = check_choice("Dataset", choice.first_dataset if dataset is None else dataset, tuple(choice.by_dataset))
        return choice.by_dataset[dataset].first_code(class_name, seed, truncation, art_set, tone)

    def interpolate(mode, class_name, seed_a, seed_b, frames, truncation, model, dataset, art_set, tone,
                    request: gr.Request):
        pictures = choice.tab(request, model, dataset).interpolate(mode, class_name, seed_a, seed_b, frames,
                                                                   truncation, art_set, tone)
        loop = pictures + pictures[-2:0:-1] if mode == actions.INTERPOLATE_SEEDS else pictures  # ping-pong
        return wrap(pictures, STRIP_COLUMNS), save_gif([upscale(p, 2) for p in loop])  # ~224 px: large enough to see

    def show_dataset(dataset):
        """The controls of the chosen dataset: its classes (garments open on sneakers; others on all
        classes), its art sets and skin tones where it has them, and its generator's measured
        truncation curve and skin tones."""
        chosen = choice.by_dataset.get(dataset, tab)
        names = chosen.class_names
        garments = chosen is tab
        return (gr.update(choices=[actions.ALL_CLASSES, *names], value="Sneaker" if garments else actions.ALL_CLASSES),
                gr.update(choices=names, value="Ankle boot" if garments else names[0]),
                gr.update(visible=bool(chosen.styles), choices=chosen.styles or first_styles,
                          value=(chosen.styles or first_styles)[0]),
                gr.update(visible=bool(chosen.tones), value=actions.EVERY_TONE),
                curve_text(chosen.card), gr.update(visible=bool(tone_text(chosen.card))), tone_text(chosen.card))

    with gr.Tab("Generate"):
        with gr.Row():
            with gr.Column(scale=1):
                model = choice.radio.render()
                dataset = choice.dataset_radio.render()
                class_name = gr.Dropdown([actions.ALL_CLASSES, *classes], value="Sneaker", label="Class",
                                         elem_id="gan-class")
                # The art set of a dataset with styles (the emoji); hidden for garments, which have none.
                art_set = optional(gr.Radio(first_styles, value=first_styles[0], label="Art set",
                                            visible=False, elem_id="gan-art-set"))
                # The skin tone of people and hands, for a generator conditioned on it (the emoji).
                skin_tone = optional(gr.Dropdown(every_tone, value=actions.EVERY_TONE, visible=False,
                                                 label="Skin tone (people and hands)", elem_id="gan-skin-tone"))
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                    dice = gr.Button("🎲 Random seed", size="sm")
                count = gr.Slider(1, actions.MAX_IMAGES, 16, step=1, label="Images (per class for All classes)")
                truncation = gr.Slider(*actions.TRUNCATION_RANGE, DEFAULT_TRUNCATION, step=0.1,
                                       label="Truncation (3: none, the measured generator; lower: more "
                                             "typical, less varied)")
                with gr.Accordion("What truncation does (measured)", open=False):
                    curve = gr.Markdown(curve_text(tab.card) or NOT_MEASURED)
                with gr.Accordion("Skin tones (measured)", open=False, visible=False) as tones_box:
                    tones = gr.Markdown(tone_text(tab.card))
                generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                edit_button = gr.Button("✏️ Edit the first picture", elem_id="send-to-edit",
                                        visible=send_to_edit is not None)
            with gr.Column(scale=2):
                generate_status = status("generate-status")
                grid = gr.Image(label="Generated (download: the arrow, top right)", format="png",
                                elem_id="generated", alt_text="The generated garments, in a grid")
        gr.Markdown("### Walk the latent space")
        with gr.Row():
            with gr.Column(scale=1):
                mode = gr.Radio([actions.INTERPOLATE_SEEDS, actions.INTERPOLATE_CLASSES],
                                value=actions.INTERPOLATE_SEEDS, label="Interpolate")
                walk_class = gr.Dropdown(classes, value="Ankle boot", label="Class (start class for Across classes)")
                with gr.Row():
                    seed_a = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed (style)")
                    seed_b = gr.Number(1, precision=0, minimum=0, maximum=MAX_SEED, label="Second seed")
                frames = gr.Slider(2, actions.MAX_FRAMES, 10, step=1, label="Frames (per class for Across classes)")
                walk_button = gr.Button("Interpolate", variant="primary")
            with gr.Column(scale=2):
                walk_status = status("walk-status")
                strip = gr.Image(label="Frames", format="png", elem_id="frames",
                                 alt_text="The walk's frames, left to right and top to bottom")
                animation = gr.Image(label="Animation", type="filepath", height=260, elem_id="animation",
                                     alt_text="The walk as an animation")
        if send_to_edit is not None:
            code, tabs = send_to_edit
            edit_button.click(for_page(first_code, "edit_generated", 1),
                              [class_name, seed, truncation, model, dataset, art_set, skin_tone],
                              [code, generate_status], api_visibility="private").success(
                lambda: gr.Tabs(selected="edit"), None, tabs, api_visibility="private")
        dice.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name="random_seed")
        # The grid and the walk follow their controls: a changed class, seed or slider makes them anew.
        grid_inputs = [class_name, seed, count, truncation, model, dataset, art_set, skin_tone]
        action(demo, generate_button, generate, grid_inputs, [grid], generate_status, "generate",
               rerun_on=[c for c in grid_inputs if c is not dataset])
        walk_inputs = [mode, walk_class, seed_a, seed_b, frames, truncation, model, dataset, art_set, skin_tone]
        action(demo, walk_button, interpolate, walk_inputs, [strip, animation], walk_status, "interpolate", limit=1,
               rerun_on=[c for c in walk_inputs if c is not dataset])
        # Another dataset: its classes and art sets first, then the grid and the walk in them.
        dataset.change(show_dataset, dataset, [class_name, walk_class, art_set, skin_tone, curve, tones_box, tones],
                       api_visibility="private",
                       queue=False).then(
            for_page(generate, "generate", 1), grid_inputs, [grid, generate_status], api_visibility="private",
            concurrency_id="generate").then(
            for_page(interpolate, "interpolate", 2), walk_inputs, [strip, animation, walk_status],
            api_visibility="private", concurrency_id="interpolate")
        # Only the controls that apply: a tour across classes keeps one seed.
        mode.change(lambda m: gr.update(visible=m == actions.INTERPOLATE_SEEDS), mode, seed_b,
                    api_visibility="private", queue=False)
    return [class_name, seed, count, truncation, mode, walk_class, seed_a, seed_b, frames, model, dataset, art_set,
            skin_tone]


def wrap(frames: list[np.ndarray], columns: int) -> np.ndarray:
    """Equal-sized frames -> one picture, ``columns`` to a row (the last row padded with black)."""
    rows = [frames[i:i + columns] for i in range(0, len(frames), columns)]
    rows[-1] = rows[-1] + [np.zeros_like(frames[0])] * (len(rows[0]) - len(rows[-1]))
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


NOT_MEASURED = "No truncation curve was measured for this generator (`imgjax eval gan` on held-out images)."


def curve_text(card: dict) -> str:
    """The trade-off ``imgjax eval gan`` measured (5 latent seeds, 10k images each, on training images
    held out of the GAN's training), as a table under the truncation slider: distance against variety;
    "" where none was measured."""
    metrics = card.get("metrics", {})
    curve = metrics.get("truncation_curve")
    if not curve or not metrics.get("held_out_images"):  # only a curve measured on images held out
        return ""
    lines = ["| truncation | distance to real (x floor) | variety within a class | named as its class |",
             "|---|---|---|---|"]
    for point in curve:
        low, high = point["frechet_ratio_to_floor_range"]
        lines.append(f"| {point['truncation'] or 'none'} | {point['frechet_ratio_to_floor']:.2f} ({low:.2f}-{high:.2f}) "
                     f"| {point['within_class_spread']:.0%} of real | {point['conditional_accuracy']:.1%} |")
    return ("\n".join(lines) + f"\n\nDistance: Fréchet distance of 10k samples to the "
            f"{metrics['held_out_images']:,} training images held out of the GAN's training, in "
            "the classifier's features, as a multiple of the distance to them from as many images it "
            "trained on (mean and range over 5 seeds). Variety: the samples' feature variance within "
            "each class, as a share of the real ones'. `imgjax eval gan` measures both.")


def tone_text(card: dict) -> str:
    """The generator's people by skin tone as ``imgjax eval gan`` measured them (``people_per_tone``),
    as a table: each tone's share among training people and among samples of people, how often a
    sample reads as the tone asked and is named as people; "" where none was measured."""
    measured = card.get("metrics", {}).get("people_per_tone")
    if not measured:
        return ""
    as_asked, named = measured.get("read_as_asked", {}), measured.get("named_people", {})
    cell = lambda figures, tone: f"{figures[tone]:.1%}" if tone in figures else "not measured"
    lines = ["| skin tone | share of training people | share of generated people | read as the tone asked "
             "| named as people |", "|---|---|---|---|---|"]
    for tone, real in measured["real_share"].items():
        lines.append(f"| {tone} | {real:.1%} | {measured['generated_share'][tone]:.1%} | {cell(as_asked, tone)} "
                     f"| {cell(named, tone)} |")
    return ("\n".join(lines) + f"\n\nLargest gap between the two shares: {measured['largest_gap_points']:.1f} points "
            f"(a gap over 3 is a defect to fix). Tones are read by a small CNN trained on training people and blurred, "
            f"noisy copies of them ({measured['tone_reader_held_out_accuracy']:.1%} right on held-out people); the "
            f"shipped classifier names the group. `imgjax eval gan` measures both.")
