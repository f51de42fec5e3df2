"""The Lab tab's page: choose a model and its knobs, train it for a time budget, watch its curves
and pictures change every second, pause, step, stop, then use it in the other tabs."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..checkpoint import card_path
from ..gradio_guards import optional
from ..lab import recipe
from ..service import lab as actions
from ..service.lab import DATASET_LABELS, FAMILY_LABELS
from ..user_input import MAX_SEED
from .wiring import for_page, status

POLL_EVERY_S = 1.0
INTRO = """Train one of the studio's models here, from scratch, on Fashion-MNIST's 55,000 training
garments or on the training emoji: the same model code and jit-compiled train step as `imgjax train`,
with a recipe fast enough to watch. The curves and pictures change about every second; the test
figures use 500 test pictures while training and the whole test set at the end. One run trains at a
time on this server (others wait in line); a run stops when you close the page."""
KNOB_NOTES = {
    "cnn": "The classifier: a small VGG-style CNN. Augmentation flips and shifts the training images.",
    "ae": "The denoising autoencoder: restores images corrupted by the mix of noises you choose.",
    "gan": "The class-conditional GAN: both players' losses, and ten fixed latents (columns) in every "
           "class (rows), the same all along, so you see them take shape (emoji: the columns take the art "
           "sets in turn).",
}


def page(demo: gr.Blocks, lab: actions.LabTab, shipped_card, model_choices: dict) -> list:
    """Build the tab inside ``demo``. ``shipped_card(family, dataset)``: the shipped model's card, for
    comparison. ``model_choices``: each family's "Model" radio in the other tabs, made visible when
    this visitor's run of that family finishes. Returns the value controls."""

    def start(family, learning_rate, batch_size, width, seed, budget, gan_loss, r1, ema, augment, gaussian,
              salt_and_pepper, boxes, dataset="Garments", request: gr.Request = None):
        config = actions.lab_config(family, learning_rate, batch_size, width, seed, budget, gan_loss, r1, ema,
                                    augment, gaussian, salt_and_pepper, boxes, dataset)
        return actions.describe(lab.start(request.session_hash, config, address=getattr(request.client, "host", "")))

    def control(command, request: gr.Request):
        return actions.describe(lab.command(request.session_hash, command))

    def news(request: gr.Request):
        """The run as it stands: progress, curves, live view, mistakes, result, files."""
        return _news(lab.status(request.session_hash), shipped_card)

    def poll(request: gr.Request):
        """``news`` for the page: shows only the pictures there are, and stops polling once the run
        has ended; a finished run's family gets its "Model" choice in the other tabs."""
        state = lab.status(request.session_hash)
        progress, curves, view, mistakes, result, files = _news(state, shipped_card)
        offers = [gr.update(visible=True) if lab.trained(request.session_hash, family) else gr.update()
                  for family in model_choices]
        return (progress, gr.update(value=curves, visible=curves is not None),
                gr.update(value=view, visible=view is not None),
                gr.update(value=mistakes, visible=mistakes is not None), result,
                gr.update(value=files, visible=bool(files)), gr.Timer(active=state.active), *offers,
                *usable_controls(state))

    with gr.Tab("Lab", id="lab"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                family = gr.Radio(list(FAMILY_LABELS), value="CNN (classifier)", label="Model to train")
                dataset = optional(gr.Radio(list(DATASET_LABELS), value="Garments", label="Dataset",
                                            elem_id="lab-dataset"))  # API clients may leave it out
                note = gr.Markdown(KNOB_NOTES["cnn"])
                first = recipe("cnn")
                with gr.Row():
                    learning_rate = gr.Number(first.learning_rate, label="Learning rate (peak)", minimum=1e-5,
                                              maximum=0.1, step=1e-4)
                    batch_size = gr.Dropdown([str(b) for b in actions.BATCH_SIZES], value=str(first.batch_size),
                                             label="Batch size")
                width = gr.Radio(list(actions.WIDTH_LABELS), value="1", label="Width (channels, times the recipe's)")
                with gr.Row():
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                    budget = gr.Slider(5, lab.max_budget_s, first.budget_s, step=5, elem_id="lab-budget",
                                       label="Time budget (seconds of training)")
                with gr.Group(visible=False) as gan_knobs:
                    gan_loss = gr.Radio(list(actions.GAN_LOSS_LABELS), value="Non-saturating", label="GAN loss")
                    r1 = gr.Checkbox(True, label="R1 penalty (keeps the discriminator smooth on real images)")
                    ema = gr.Checkbox(True, label="Sample from the moving average of the generator (EMA)")
                with gr.Group() as cnn_knobs:
                    augment = gr.Checkbox(False, label="Augmentation (random flips and shifts; off in the "
                                          "recipe: in a minute it slows learning more than it helps)")
                with gr.Group(visible=False) as ae_knobs:
                    shares = recipe("ae").model_config.corruption_shares
                    gaussian = gr.Slider(0, 1, shares[0], step=0.05, label="Share of Gaussian noise")
                    salt_and_pepper = gr.Slider(0, 1, shares[1], step=0.05, label="Share of salt and pepper")
                    boxes = gr.Slider(0, 1, shares[2], step=0.05, label="Share of masked boxes")
                start_button = gr.Button("Start", variant="primary", elem_id="lab-start")
                with gr.Row():  # usable when they apply to the run (``usable_controls``)
                    buttons = {command: gr.Button(command.capitalize(), size="sm", elem_id=f"lab-{command}",
                                                  interactive=False) for command in actions.COMMANDS}
                lab_status = status("lab-status")  # beside the buttons: what Start and the controls did
                progress = gr.Markdown(idle_note(), elem_id="lab-progress")
            with gr.Column(scale=2):
                with gr.Row():
                    curves = gr.Image(label="Losses (smoothed)", format="png", visible=False, elem_id="lab-curves",
                                      alt_text="The training losses against the step")
                    view = gr.Image(label="What the model does now", format="png", visible=False,
                                    elem_id="lab-view", alt_text="The model's current output on fixed examples")
                mistakes = gr.Image(label="Its current mistakes (test images)", format="png", visible=False,
                                    elem_id="lab-mistakes", alt_text="Test images the classifier now gets wrong")
                result = gr.Markdown(elem_id="lab-result")
                files = gr.File(label="Your model: weights and card", file_count="multiple", visible=False,
                                elem_id="lab-files")
        timer = gr.Timer(POLL_EVERY_S, active=False)

        def chose(family_label, dataset_label):
            """The knobs of the chosen family's recipe on the chosen dataset."""
            name = FAMILY_LABELS[family_label]
            chosen = recipe(name, DATASET_LABELS[dataset_label])
            return (KNOB_NOTES[name], chosen.learning_rate, str(chosen.batch_size), chosen.budget_s,
                    gr.update(visible=name == "gan"), gr.update(visible=name == "cnn"), gr.update(visible=name == "ae"))

        gr.on([family.change, dataset.change], chose, [family, dataset],
              [note, learning_rate, batch_size, budget, gan_knobs, cnn_knobs, ae_knobs], api_visibility="private",
              queue=False)
        knobs = [family, learning_rate, batch_size, width, seed, budget, gan_loss, r1, ema, augment, gaussian,
                 salt_and_pepper, boxes, dataset]
        shown = [progress, curves, view, mistakes, result, files, timer, *model_choices.values(), *buttons.values()]
        # Start and the controls answer at once; the timer brings the news every second.
        start_button.click(for_page(start, "lab_start", 1), knobs, [progress, lab_status], api_visibility="private",
                           concurrency_id="lab").success(lambda: gr.Timer(active=True), None, timer,
                                                         api_visibility="private", queue=False)
        gr.Button(visible=False).click(start, knobs, progress, api_name="lab_start", concurrency_id="lab")
        for command, button in buttons.items():
            button.click(_controlled(control, command), None, [progress, lab_status], api_visibility="private",
                         concurrency_id="lab")
        command_box = gr.Textbox(visible=False, label="Command")
        gr.Button(visible=False).click(control, command_box, progress, api_name="lab_control", concurrency_id="lab")
        timer.tick(poll, None, shown, api_visibility="private", concurrency_id="lab_poll", concurrency_limit=None,
                   show_progress="hidden")
        gr.Button(visible=False).click(news, None, [progress, curves, view, mistakes, result, files],
                                       api_name="lab_status", concurrency_id="lab_poll", concurrency_limit=None)

        def left(request: gr.Request):
            lab.leave(request.session_hash)

        demo.unload(left)
    return knobs


def _news(state: actions.Status, shipped_card) -> tuple:
    update = state.update
    if update is None:
        return actions.describe(state), None, None, None, "", None
    files = [update.checkpoint, str(card_path(Path(update.checkpoint)))] if update.checkpoint else None
    return (actions.describe(state), update.curves, update.view, update.mistakes,
            actions.result(update, shipped_card(update.family, update.dataset)), files)


def idle_note() -> str:
    """What the tab says before a run: what to do, and what each recipe reaches in how long."""
    lines = []
    for title, dataset in DATASET_LABELS.items():
        reaches = actions.RECIPE_REACHES[dataset]
        lines.append(f"{title}: " + "; ".join(
            f"{name.split(' (')[0]}, {reaches[family][1].split(' (')[0]} in about {reaches[family][0]:,} steps "
            f"({recipe(family, dataset).budget_s:.0f} s)" for name, family in FAMILY_LABELS.items()))
    return ("No run yet: choose a model, a dataset and the knobs, then **Start**. On an idle 2-core host the "
            "recipes reach:  \n" + "  \n".join(lines))


def usable_controls(state: actions.Status) -> list:
    """Pause while training, Resume and Step while paused, Stop while the run waits, compiles or
    trains: updates for the buttons in ``COMMANDS`` order."""
    now = state.update.state if state.update else None
    usable = {"pause": now == "training", "resume": now == "paused", "step": now == "paused", "stop": state.active}
    return [gr.update(interactive=usable[command]) for command in actions.COMMANDS]


def _controlled(control, command: str):
    """The page's handler of one control button (the session comes with the request)."""
    def run(request: gr.Request):
        try:
            return control(command, request), ""
        except actions.InputError as error:
            return gr.update(), f"⚠️ {error}"
    return run
