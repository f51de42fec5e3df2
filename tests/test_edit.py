"""Editing through the shipped generator (imgjax.edit, imgjax.service.edit): projection finds a
garment's code, the search is one compiled program, the style directions do what their names say,
sketches get garments that fill them, and malformed codes get plain messages."""

import base64
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from imgjax import checkpoint, edit, gan
from imgjax.metrics import psnr
from imgjax.service.edit import (
    STYLE_DIRECTIONS,
    STYLE_ELSEWHERE,
    EditTab,
    garment_code,
    slider_label,
    style_effects,
)
from imgjax.service.classify import model_view
from imgjax.user_input import InputError


@pytest.fixture(scope="module")
def models():
    return checkpoint.load_model("gan")[0], checkpoint.load_model("cnn")[0], checkpoint.load_model("encoder")[0]


@pytest.fixture(scope="module")
def tab(models):
    return EditTab(*models)


def test_projection_recovers_a_generated_garment(models):
    """A garment the generator made has an exact code: the search finds its class and an image as
    close as a photograph's noise (the test images' figures are `imgjax eval encoder`'s)."""
    generator, classifier, encoder = models
    latents = np.asarray(gan.sample_latents(7, 3, 64))
    labels = np.array([0, 5, 9])  # T-shirt, sandal, ankle boot
    images = np.asarray(gan.generate_images(generator, latents, labels))
    found = edit.project(generator, classifier, encoder, images)
    assert list(found.labels) == list(labels)
    assert np.asarray(psnr(jnp.asarray(images), jnp.asarray(found.images))).min() > 28.0
    # The encoder's start, before any search, is far nearer the garment than the zero latent is.
    # (Where each search ends is no test of it: both land within rounding of the garment.)
    one_start = edit.SearchConfig(classes=1, starts=1)
    start_error = lambda encoder_or_none: float(np.mean(np.square(images - np.asarray(gan.generate_images(
        generator, *edit.starting_points(generator, classifier, encoder_or_none, jnp.asarray(images),
                                         jax.random.key(0), one_start)[:2])))))
    assert start_error(encoder) < 0.5 * start_error(None)


def test_projection_finds_an_emoji_group_and_art_set_and_draws_it_in_its_skin_tone():
    """On the emoji GAN the search's condition is a (group, art set, skin tone): generated people in
    five tones, a face and an animal, projected from zero, come back in their group and art set,
    people in the tone given (read from the picture's colours in the studio), the face and the
    animal in the default tone whatever is given; ``condition_labels`` splits what
    ``conditions_from_labels`` joins."""
    from imgjax import datasets
    generator = checkpoint.load_model("gan", checkpoint.default_weights("gan", "emoji"))[0]
    classifier = checkpoint.load_model("cnn", checkpoint.default_weights("cnn", "emoji"))[0]
    source = datasets.get("emoji")
    toned = tuple(source.classes.index(name) for name in source.toned_classes)
    people, faces, animals = (source.classes.index(name) for name in ("People", "Faces", "Animals"))
    labels = np.array([[people, 0, 0], [people, 1, 1], [people, 2, 3], [people, 0, 5], [people, 1, 4],
                       [faces, 2, 0], [animals, 0, 0]])
    conditions = edit.conditions_from_labels(generator, labels)
    assert (edit.condition_labels(generator, conditions) == labels).all()
    images = np.asarray(gan.generate_images(generator, gan.sample_latents(3, len(labels), 64), jnp.asarray(conditions)))
    tones = np.array([0, 1, 3, 5, 4, 5, 2])  # the face and the animal given tones they are never drawn in
    found = edit.project(generator, classifier, None, images, toned_classes=toned, tones=tones)
    assert (edit.condition_labels(generator, found.labels) == labels).all()
    assert np.median(np.asarray(psnr(jnp.asarray(images), jnp.asarray(found.images)))) > 18.0


def test_the_search_runs_as_compiled_chunks_without_a_loop(models):
    """Each compiled chunk holds its steps written out (a lax.scan unrolled): no while loop, which
    XLA:CPU runs ~3.6x slower; only the feature chunk's program holds the classifier's convolutions."""
    import optax
    generator, classifier, _ = models
    inputs, labels = (jnp.zeros((2, 64)), jnp.zeros((2, *generator.detail_shape))), jnp.array([0, 1])
    images, features = jnp.zeros((2, 28, 28, 1)), jnp.zeros((2, 256))
    state = optax.adam(0.1).init(inputs[0])
    graph, weights = nnx.split((generator, classifier))
    programs = {with_features: edit._search_chunk.lower(graph, weights, inputs, state, labels, images, images,
                                                        features, edit.SearchConfig(), with_features, False).as_text()
                for with_features in (False, True)}
    for text in programs.values():  # the step is one function, called once per step: XLA inlines it
        assert "stablehlo.while" not in text and text.count("call @closed_call") == edit.CHUNK
    assert programs[True].count("stablehlo.convolution") > programs[False].count("stablehlo.convolution")
    with pytest.raises(ValueError, match=f"multiples of {edit.CHUNK}"):
        edit.project(generator, classifier, None, images[:1], edit.SearchConfig(steps=edit.CHUNK * 3 + 1))


def test_the_chunked_search_takes_every_step_of_a_plain_loop(models):
    """The compiled chunks, their Adam state carried between calls, land where the same steps taken
    one at a time do: the latents (the feature distance in the second chunk), then a chunk on the
    detail alone, each phase from the same start."""
    import optax
    generator, classifier, encoder = models
    config = edit.SearchConfig(steps=2 * edit.CHUNK, feature_steps=edit.CHUNK, detail_steps=edit.CHUNK)
    images = jnp.asarray(np.asarray(gan.generate_images(generator, gan.sample_latents(2, 4, 64), jnp.arange(4))))
    start, labels, features = edit.starting_points(generator, classifier, encoder, images, jax.random.key(0), config)
    class_vectors = generator.embed(labels)
    optimizer = lambda detail: (optax.adam(config.detail_learning_rate, eps=edit.DETAIL_EPSILON) if detail
                                else optax.adam(config.learning_rate))

    def step(inputs, state, with_features, detail):  # detail: the detail fitted alone, else the latent
        loss = lambda x: edit._losses(generator, classifier, x, class_vectors, images, images, features, config,
                                      with_features)[0].sum()
        grad_z, grad_d = jax.grad(loss)(inputs)
        updates, state = optimizer(detail).update(grad_d if detail else grad_z, state)
        moved = optax.apply_updates(inputs[int(detail)], updates)
        return ((inputs[0], moved) if detail else (moved, inputs[1])), state

    step = jax.jit(step, static_argnums=(2, 3))

    def plain_loop(inputs, steps, detail):
        state = optimizer(detail).init(inputs[int(detail)])
        for i in range(steps):
            inputs, state = step(inputs, state, not detail and i >= config.steps - config.feature_steps, detail)
        return inputs

    found, details, rendered, _ = edit.search(generator, classifier, start, labels, images, images, features, config)
    no_details = jnp.zeros((len(start), *generator.detail_shape))
    # The latents: a step missed, or the feature distance a step late, moves some latent by 0.017 or
    # more; rounding differences stay near 1e-6, except where the feature steps meet a kink of the
    # classifier (a ReLU or a max pooling switching; one of these four garments: 6e-4): the bound sits between.
    assert float(jnp.abs(found - plain_loop((start, no_details), config.steps, False)[0]).max()) < 3e-3
    # The detail, from the search's own latents: Adam scales each detail value's step by its own
    # gradient, however tiny, so compare what they draw. The search is the two phases in turn.
    detail_only = dataclasses.replace(config, steps=0, feature_steps=0)
    drawn_alone = edit.search(generator, classifier, found, labels, images, images, features, detail_only)[2]
    assert float(jnp.abs(drawn_alone - rendered).max()) < 1e-5
    plain_details = plain_loop((found, no_details), config.detail_steps, True)[1]
    drawn = (generator.synthesize(found, class_vectors, details=plain_details) + 1) / 2
    assert float(jnp.abs(rendered - drawn).max()) < 1e-2 and float(jnp.median(jnp.abs(details - plain_details))) < 1e-4
    assert float(jnp.abs(found - start).max()) > 0.1 and float(jnp.abs(details).max()) > 0.01  # both moved


@pytest.fixture(scope="module")
def emoji_tab():
    generator, card = checkpoint.load_model("gan", checkpoint.default_weights("gan", "emoji"))
    return EditTab(generator, checkpoint.load_model("cnn", checkpoint.default_weights("cnn", "emoji"))[0], None,
                   card=card)


@pytest.mark.parametrize("dataset, name", [(dataset, name) for dataset, named in STYLE_DIRECTIONS.items()
                                           for _, name in named])
def test_style_sliders_do_what_their_names_say_in_every_class_or_say_where_not(tab, emoji_tab, dataset, name):
    """Per class, not only overall, on each dataset: at least half of a class's pictures move the way
    the slider's name says, or the slider names that class and what happens there instead
    (``STYLE_ELSEWHERE``)."""
    tab = {"fashion-mnist": tab, "emoji": emoji_tab}[dataset]
    shares = style_effects(tab, name)
    elsewhere = {cls: effect for effect, classes in STYLE_ELSEWHERE[dataset].get(name, {}).items() for cls in classes}
    assert set(elsewhere) <= set(tab.class_names)
    for c, cls in enumerate(tab.class_names):
        if cls in elsewhere:
            assert shares[name.lower()][c] < 0.5 <= shares[elsewhere[cls]][c], (name, cls)
        else:
            assert shares[name.lower()][c] >= 0.5, (name, cls, shares[name.lower()][c])
    label = slider_label(name, tab.style_elsewhere)
    assert label.startswith(name) and all(cls in label for cls in elsewhere)


def test_sketched_silhouettes_get_garments_that_fill_them(models, fashion_test):
    generator = models[0]
    ious = []
    for image in fashion_test.images[:4]:
        image = image[..., None] / 255.0
        lower, upper = edit.sketch_bounds(*edit.silhouette_sketch(image))
        _, conditions, found, losses = edit.pictures_for_sketch(generator, lower, upper,
                                                                edit.sketch_conditions(generator))
        assert len(set(conditions)) == len(conditions) == 6 and np.all(np.diff(losses) >= 0)  # one per class, best first
        ious.append(edit.mask_iou(found[:1], image[None])[0])
    assert np.mean(ious) > 0.7


def test_colour_sketches_bound_painted_pixels_near_their_colour_and_leave_the_rest_free():
    """A colour sketch: a painted pixel within the tolerance of its colour in each channel, clipped to
    [0, 1]; unpainted pixels free; agreement counts painted pixels inside their bounds only."""
    colours = np.zeros((4, 4, 3), np.float32)
    colours[..., 0] = 1.0  # red
    painted = np.zeros((4, 4), bool)
    painted[:2] = True
    lower, upper = edit.colour_sketch_bounds(colours, painted)
    tolerance = edit.COLOUR_TOLERANCE
    np.testing.assert_allclose(lower[0, 0, 0], [1 - tolerance, 0, 0])
    np.testing.assert_allclose(upper[0, 0, 0], [1, tolerance, tolerance])
    assert np.all(lower[0, 2:] == 0) and np.all(upper[0, 2:] == 1)
    image = np.ones((1, 4, 4, 3), np.float32)  # white: outside red's bounds where painted
    image[0, 0, :2] = (0.9, 0.1, 0.1)  # two of the eight painted pixels reddish
    assert edit.sketch_agreement(image, lower, upper, painted)[0] == pytest.approx(2 / 8)
    # A picture in the sketch colours: every pixel painted, each in its nearest colour.
    drawn, all_painted = edit.poster_sketch(np.array([[[0.98, 0.97, 0.99], [0.95, 0.75, 0.3]]], np.float32))
    assert all_painted.all() and np.allclose(drawn[0], [edit.SKETCH_COLOURS["white"], edit.SKETCH_COLOURS["yellow"]])
    assert edit.ink(drawn[None], light_on_dark=False).tolist() == [[[False, True]]]


@pytest.mark.parametrize("code, message", [
    (None, "Project a garment first"),
    ({"class": "Coat"}, "Project a garment first"),
    ({"class": "Coat", "latent": [0.0] * 63}, "list of 64 numbers"),
    ({"class": "Coat", "latent": ["a"] * 64}, "list of 64 numbers"),
    ({"class": "Coat", "latent": [1e9] * 64}, "between -10 and 10"),
    ({"class": "Hat", "latent": [0.0] * 64}, "Class must be one of"),
])
def test_malformed_codes_get_plain_messages(tab, code, message):
    with pytest.raises(InputError, match=message):
        tab.classes_row(code)


def test_edits_keep_the_style_and_change_what_they_say(tab):
    code = garment_code("Sneaker", np.asarray(gan.sample_latents(3, 1, 64))[0])
    row = tab.classes_row(code)
    assert row.shape == (32 * 4 + 44, (10 * 30 + 2) * 4)  # ten garments x4, two caption lines under them
    same = tab.render(code, "Sneaker", 0.0, 0.0, 0.0, 0.0)
    assert not np.array_equal(same, tab.render(code, "Sneaker", 1.0, 0.0, 0.0, 0.0))
    assert not np.array_equal(same, tab.render(code, "Coat", 0.0, 0.0, 0.0, 0.0))
    frames = tab.animation(code, "Coat", 0.0, 0.0, 0.0, 0.0, frames=5)
    last = tab.render(code, "Coat", 0.0, 0.0, 0.0, 0.0)[::8, ::8].astype(int)
    assert len(frames) == 5 and np.abs(frames[-1][::4, ::4].astype(int) - last).max() <= 1
    with pytest.raises(InputError, match="Smaller must be between"):
        tab.render(code, "Coat", 5.0, 0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="4 style strengths"):
        tab.render(code, "Coat", 0.0)
    with pytest.raises(InputError, match="no light pixels"):
        tab.sketch(np.full((100, 100, 3), 0.5, np.float32))
    sketch = np.full((100, 100, 3), 0.5, np.float32)
    sketch[20:80, 35:65] = 1.0
    garments, codes = tab.sketch(sketch)
    assert len(garments) == len(codes) == 6 and [c["class"] for c in codes] == [g[1].split(",")[0] for g in garments]
    assert np.array_equal(tab.garment(codes[0])[::2, ::2], garments[0][0])  # a code draws its garment


def test_the_generate_tabs_first_garment_arrives_with_its_exact_code(tab):
    """"Edit the first garment" sends the grid's first garment's code: it draws that garment, no search."""
    from imgjax.service.generate import GenerateTab
    generate_tab = GenerateTab(*checkpoint.load_model("gan"))
    code = generate_tab.first_code("Coat", 5, 3.0)
    assert code["class"] == "Coat" and "seed 5" in code["from"]
    grid = generate_tab.generate("Coat", 5, 1, 3.0)[::4, ::4][2:30, 2:30].astype(int)  # one garment, 2 px border
    assert np.abs(tab.garment(code)[::8, ::8].astype(int) - grid).max() <= 1


def test_the_edit_tab_projects_and_edits_an_emoji_in_its_art_set_and_skin_tone(tab):
    """The tab on the emoji GAN: a projected example comes back in its group and art set, with a code
    naming both and the detail the search found; edits change the group, the art set and (for people)
    the skin tone, keeping what they are not asked to change, and the detail only while the code's
    group, art set and tone stay; bad art sets, tones and details are refused; sketches stay with
    garments."""
    from PIL import Image

    assets = Path(edit.__file__).parent / "assets"
    generator, card = checkpoint.load_model("gan", checkpoint.default_weights("gan", "emoji"))
    classifier = checkpoint.load_model("cnn", checkpoint.default_weights("cnn", "emoji"))[0]
    garments_tab, search = tab, edit.SearchConfig(steps=30, feature_steps=15, detail_steps=15)
    tab = EditTab(generator, classifier, None, search, card=card)
    turtle = np.asarray(Image.open(assets / "emoji_3_animals_turtle-twemoji.png").convert("RGB"), np.float32) / 255
    pair, code, summary = tab.project(turtle)
    assert (code["dataset"], code["class"], code["art_set"], "tone" in code) == ("emoji", "Animals", "Twemoji", False)
    assert pair.shape == (36 * 7, 104 * 7, 3) and "in Twemoji's style" in summary and "latent alone" in summary
    assert tab.classes_row(code).shape[1] == (8 * 34 + 2) * 3
    drawn = tab.garment(code)
    assert drawn.shape == (224, 224, 3) and np.array_equal(tab.render(code, "Animals", 0, 0, 0, 0), drawn)
    # The detail brings the reconstruction closer; another group draws the latent alone.
    alone = {k: v for k, v in code.items() if k != "detail"}
    view = model_view(turtle, tab.dataset)[None]
    drawn_closer = lambda a, b: float(psnr(view, a[None, ::7, ::7] / 255.0)[0]) > float(psnr(view, b[None, ::7, ::7] / 255.0)[0])
    assert drawn_closer(drawn, tab.garment(alone))
    assert np.array_equal(tab.render(code, "Faces", 0, 0, 0, 0), tab.render(alone, "Faces", 0, 0, 0, 0))
    assert np.array_equal(tab.render(code, "Animals", 0, 0, 0, 0, art_set="Noto"),
                          tab.render(alone, "Animals", 0, 0, 0, 0, art_set="Noto"))
    person = {**code, "class": "People", "tone": "dark"}
    dark, light = tab.render(person, "People", 0, 0, 0, 0), tab.render(person, "People", 0, 0, 0, 0, tone="light")
    assert dark.mean() < light.mean()  # the same person, lighter skin
    assert np.array_equal(tab.render(code, "Animals", 0, 0, 0, 0, tone="dark"), drawn)  # animals have no tones
    assert not np.array_equal(tab.render(code, "Animals", 0, 0, 0, 0, art_set="OpenMoji"), drawn)
    assert len(tab.animation(person, "Faces", 0, 0, 0, 0, frames=4, art_set="Noto")) == 4
    assert tab.mix(code, person).shape[2] == 3
    with pytest.raises(InputError, match="Art set must be one of"):
        tab.render({**code, "art_set": "Apple"}, "Animals", 0, 0, 0, 0)
    with pytest.raises(InputError, match="Skin tone must be one of"):
        tab.render(person, "People", 0, 0, 0, 0, tone="green")
    with pytest.raises(InputError, match="Project an emoji first"):
        tab.classes_row({"class": "Animals"})
    with pytest.raises(InputError, match="the sketch is all gray"):
        tab.sketch(np.full((64, 64, 3), 0.5, np.float32))
    sketch = np.full((280, 280, 3), 0.5, np.float32)  # a yellow disc on white, gray around
    sketch[20:260, 20:260] = 1.0
    rows, columns = np.mgrid[:280, :280]
    sketch[(rows - 140) ** 2 + (columns - 140) ** 2 < 100 ** 2] = edit.SKETCH_COLOURS["yellow"]
    found, codes = tab.sketch(sketch, "Noto")
    assert len(found) == len(codes) == 6 and all(c["art_set"] == "Noto" and c["dataset"] == "emoji" for c in codes)
    assert [c["class"] for c in codes] == [caption.split(",")[0] for _, caption in found]
    agree = [int(caption.split(", ")[1].split("%")[0]) for _, caption in found]
    assert agree[0] >= 50, found[0][1]  # the best agrees with most of the painted pixels
    drawn = tab.garment(codes[0])[::7, ::7].astype(int)  # a code draws its picture (7x on the tab, 3x here)
    assert np.abs(drawn - found[0][0][::3, ::3]).max() <= 1
    with pytest.raises(InputError, match="Art set must be one of"):
        tab.sketch(sketch, "Apple")
    not_a_number = base64.b64encode(np.full(8 * 8 * 96, np.nan, "<f2").tobytes()).decode()
    for detail, message in (("AAAA", "detail is the 16,384 characters"), ("*" * 16384, "base64 text"),
                            (not_a_number, "between -100 and 100")):
        with pytest.raises(InputError, match=message):
            tab.garment({**code, "detail": detail})
    with pytest.raises(InputError, match="for the emoji generator, not the Garments one"):
        garments_tab.garment(code)
