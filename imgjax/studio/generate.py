"""The Generate tab's page: a grid by class and seed, the truncation trade-off as measured, and a
walk through the latent space as frames and an animation."""

from __future__ import annotations

import random

import gradio as gr
import numpy as np

from ..images import upscale
from ..service import generate as actions
from ..service.lab import SHIPPED
from ..user_input import MAX_SEED, InputError
from .wiring import ModelChoice, action, for_page, save_gif, status

STRIP_COLUMNS = 8  # the walk's frames, this many to a row
# No truncation (the slider's top): on the curve measured on training images held out of the GAN's
# training it is the nearest to them and the most varied (docs/gan-recipe.md, "The default truncation").
DEFAULT_TRUNCATION = actions.TRUNCATION_RANGE[1]


def page(demo: gr.Blocks, choice: ModelChoice, send_to_edit: tuple[gr.JSON, gr.Tabs] | None = None) -> list:
    """Build the tab inside ``demo``; returns its value controls (for ``raw_values``). With
    ``send_to_edit`` (the Edit tab's code and the page's tabs), an "Edit" button sends the grid's
    first garment there."""
    tab = choice.shipped
    classes = tab.class_names

    def generate(class_name, seed, count, truncation, model, request: gr.Request):
        return choice.tab(request, model).generate(class_name, seed, count, truncation)

    def first_code(class_name, seed, truncation, model):
        if model != SHIPPED:
            raise InputError("The Edit tab works on the shipped generator (its encoder was trained for it): "
                             "choose Model: Shipped first.")
        return tab.first_code(class_name, seed, truncation)

    def interpolate(mode, class_name, seed_a, seed_b, frames, truncation, model, request: gr.Request):
        pictures = choice.tab(request, model).interpolate(mode, class_name, seed_a, seed_b, frames, truncation)
        loop = pictures + pictures[-2:0:-1] if mode == actions.INTERPOLATE_SEEDS else pictures  # ping-pong
        return wrap(pictures, STRIP_COLUMNS), save_gif([upscale(p, 2) for p in loop])  # 224 px: large enough to see

    with gr.Tab("Generate"):
        with gr.Row():
            with gr.Column(scale=1):
                model = choice.radio.render()
                class_name = gr.Dropdown([actions.ALL_CLASSES, *classes], value="Sneaker", label="Class")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                    dice = gr.Button("🎲 Random seed", size="sm")
                count = gr.Slider(1, actions.MAX_IMAGES, 16, step=1, label="Images (per class for All classes)")
                truncation = gr.Slider(*actions.TRUNCATION_RANGE, DEFAULT_TRUNCATION, step=0.1,
                                       label="Truncation (3: none, the measured generator; lower: more "
                                             "typical, less varied)")
                truncation_curve(tab.card)
                generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                edit_button = gr.Button("✏️ Edit the first garment", elem_id="send-to-edit",
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
            edit_button.click(for_page(first_code, "edit_generated", 1), [class_name, seed, truncation, model],
                              [code, generate_status], api_visibility="private").success(
                lambda: gr.Tabs(selected="edit"), None, tabs, api_visibility="private")
        dice.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name="random_seed")
        # The grid and the walk follow their controls: a changed class, seed or slider makes them anew.
        grid_inputs = [class_name, seed, count, truncation, model]
        action(demo, generate_button, generate, grid_inputs, [grid], generate_status, "generate", rerun_on=grid_inputs)
        walk_inputs = [mode, walk_class, seed_a, seed_b, frames, truncation, model]
        action(demo, walk_button, interpolate, walk_inputs, [strip, animation], walk_status, "interpolate", limit=1,
               rerun_on=walk_inputs)
        # Only the controls that apply: a tour across classes keeps one seed.
        mode.change(lambda m: gr.update(visible=m == actions.INTERPOLATE_SEEDS), mode, seed_b,
                    api_visibility="private", queue=False)
    return [class_name, seed, count, truncation, mode, walk_class, seed_a, seed_b, frames, model]


def wrap(frames: list[np.ndarray], columns: int) -> np.ndarray:
    """Equal-sized frames -> one picture, ``columns`` to a row (the last row padded with black)."""
    rows = [frames[i:i + columns] for i in range(0, len(frames), columns)]
    rows[-1] = rows[-1] + [np.zeros_like(frames[0])] * (len(rows[0]) - len(rows[-1]))
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def truncation_curve(card: dict) -> None:
    """The trade-off ``imgjax eval gan`` measured (5 latent seeds, 10k images each, on training images
    held out of the GAN's training), as a table under the truncation slider: distance against variety."""
    metrics = card.get("metrics", {})
    curve = metrics.get("truncation_curve")
    if not curve or not metrics.get("held_out_images"):  # only a curve measured on images held out
        return
    lines = ["| truncation | distance to real (x floor) | variety within a class | named as its class |",
             "|---|---|---|---|"]
    for point in curve:
        low, high = point["frechet_ratio_to_floor_range"]
        lines.append(f"| {point['truncation'] or 'none'} | {point['frechet_ratio_to_floor']:.2f} ({low:.2f}-{high:.2f}) "
                     f"| {point['within_class_spread']:.0%} of real | {point['conditional_accuracy']:.1%} |")
    with gr.Accordion("What truncation does (measured)", open=False):
        gr.Markdown("\n".join(lines) + f"\n\nDistance: Fréchet distance of 10k samples to the "
                    f"{metrics['held_out_images']:,} training images held out of the GAN's training, in "
                    "the classifier's features, as a multiple of the distance to them from as many images it "
                    "trained on (mean and range over 5 seeds). Variety: the samples' feature variance within "
                    "each class, as a share of the real ones'. `imgjax eval gan` measures both.")
