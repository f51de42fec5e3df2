"""The Edit tab's actions: put a garment into the generator (projection), then render it as
another class, move it along style directions, mix two garments, or find garments for a sketch.

A garment in the generator is its *code*, ``{"class": name, "latent": [64 numbers]}``: what the
projection returns and every edit takes, so an API client edits without projecting again.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import edit
from ..cnn import extract_channel_means, predict_probabilities
from ..data import FASHION_CLASSES
from ..gan import generate_blended
from ..images import image_grid, to_gray, to_uint8, upscale
from ..metrics import psnr
from ..serving import compiling, frozen, wait_until_compiled
from ..user_input import InputError, check_choice, check_int, check_range, is_number
from .classify import CLASSIFY_MAX_SIDE, classifier_view

# Style directions of the shipped generator (``edit.style_directions``: its index, principal
# component first), named by what moving one way does, ordered by how much they change a garment
# (docs/edit.md has the pictures and figures they were named by).
STYLE_DIRECTIONS = ((1, "Shorter"), (4, "Darker"), (0, "Wider"), (3, "Smaller"))
# Where a slider does something else than its name (``style_effects``, checked by tests/test_edit.py):
# what it does there, and in which classes. A tall garment cannot get much shorter, a shoe wider.
STYLE_ELSEWHERE = {"Shorter": {"narrower": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt")},
                   "Wider": {"shorter": ("Sandal", "Ankle boot"), "taller": ("Sneaker",)}}
STYLE_RANGE = 2.0  # a slider moves the latent at most this far either way (latents are standard normal)
MAX_LATENT = 10.0  # a code's latent values beyond this are far outside what the generator saw
MAX_FRAMES = 32
SKETCH_GARMENTS = 6
SKETCH_GARMENT, SKETCH_EMPTY = 0.75, 0.25  # sketch pixels above / below these are painted garment / empty
SHOW = 8  # 28x28 pictures are shown this many times larger
MAX_SIDE = CLASSIFY_MAX_SIDE  # garments and sketches are read at most this large: they become 28x28


def _after_warm_up(action):
    """``action`` waits while another thread compiles the tab (``warm_up``), then runs at full speed."""
    @functools.wraps(action)
    def run(self, *args, **kwargs):
        wait_until_compiled(self)
        return action(self, *args, **kwargs)
    return run


def garment_code(class_name: str, latent) -> dict:
    """The JSON form of a generator input: its class and its latent (5 decimals: well below any
    visible change)."""
    return {"class": class_name, "latent": [round(float(v), 5) for v in latent]}


class EditTab:
    """The shipped generator, classifier and encoder, and the tab's actions."""

    def __init__(self, generator, classifier, encoder, search: edit.SearchConfig | None = None, familiarity=None):
        self.class_names = list(FASHION_CLASSES)
        # The Classify tab's check (``cnn.Familiarity``): an image unlike any garment is said to be so.
        self.familiarity = familiarity
        self._channel_means_fn = frozen(extract_channel_means, classifier)
        self.generator, self.classifier, self.encoder = generator, classifier, encoder
        self.search = search or edit.SearchConfig()
        self.latent_dim = generator.project.in_features - generator.embed.features
        directions = edit.style_directions(generator, count=1 + max(i for i, _ in STYLE_DIRECTIONS))
        self.style_names = [name for _, name in STYLE_DIRECTIONS]
        self.style_directions = directions[[i for i, _ in STYLE_DIRECTIONS]]
        self._render_fn = frozen(generate_blended, generator)
        self._classify_fn = frozen(predict_probabilities, classifier)
        # Held while compiling: the server may start answering before this tab is compiled
        # (``Studio.warm_up``), and the tab's actions then wait for it rather than compile twice.
        self.compiling = compiling()

    def warm_up(self) -> None:
        """Compile every shape the tab uses."""
        code = self.project(np.zeros((28, 28, 3), np.float32) + 0.5)[1]
        self.classes_row(code)
        self.render(code, code["class"], *[0.0] * len(self.style_names))
        self.animation(code, code["class"], *[0.0] * len(self.style_names), frames=MAX_FRAMES)
        self.sketch(np.pad(np.ones((14, 14, 3), np.float32), ((7, 7), (7, 7), (0, 0))))

    # -- codes

    def read_code(self, code) -> tuple[np.ndarray, int]:
        """A code from the page or an API client -> (latent, class index); InputError if malformed."""
        if not isinstance(code, dict) or not isinstance(code.get("latent"), list) or "class" not in code:
            raise InputError("Project a garment first (or send a code: {\"class\": name, \"latent\": "
                             f"[{self.latent_dim} numbers]}}).")
        latent = code["latent"]
        if len(latent) != self.latent_dim or not all(is_number(v) for v in latent):
            raise InputError(f"A code's latent is a list of {self.latent_dim} numbers.")
        if not all(abs(v) <= MAX_LATENT for v in latent):  # before float32, which a 400-digit integer overflows
            raise InputError(f"A code's latent values lie between -{MAX_LATENT:g} and {MAX_LATENT:g}.")
        latent = np.asarray(latent, np.float32)
        check_choice("Class", code["class"], self.class_names)
        return latent, self.class_names.index(code["class"])

    def _render(self, latents, class_weights) -> np.ndarray:
        """(N, latent) and (N, classes) -> (N, 28, 28) float images."""
        return np.asarray(self._render_fn(np.asarray(latents, np.float32), np.asarray(class_weights, np.float32)))[..., 0]

    def _one_hot(self, labels) -> np.ndarray:
        return np.eye(len(self.class_names), dtype=np.float32)[np.asarray(labels)]

    def _named(self, images) -> list[tuple[str, float]]:
        probabilities = np.asarray(self._classify_fn(np.asarray(images, np.float32)[..., None]))
        return [(self.class_names[p.argmax()], float(p.max())) for p in probabilities]

    # -- actions

    @_after_warm_up
    def project(self, rgb: np.ndarray):
        """Any image -> (the image and its reconstruction side by side, the code, a summary line).
        The image is first made the 28x28 view the classifier takes."""
        view = classifier_view(rgb)
        found = edit.project(self.generator, self.classifier, self.encoder, view[None, ..., None], self.search)
        reconstruction = found.images[0, ..., 0]
        code = garment_code(self.class_names[int(found.labels[0])], found.latents[0])
        distance = float(psnr(view[None, ..., None], found.images[:1])[0])
        named, confidence = self._named(reconstruction[None])[0]
        summary = (f"Projected as **{code['class']}**: the reconstruction is {distance:.1f} dB PSNR from the "
                   f"image (mean absolute difference {np.abs(view - reconstruction).mean():.3f}); the "
                   f"classifier calls it {named} ({confidence:.0%}).")
        if self.unfamiliar(view):
            summary = ("⚠️ **This does not look like a garment** to the classifier (the Classify tab says the same): "
                       "the projection is the nearest garment the GAN can draw, not this image. " + summary)
        pair = image_grid(np.stack([view, reconstruction]), rows=1)
        return upscale(pair, SHOW), code, summary

    def unfamiliar(self, view: np.ndarray) -> bool:
        """Whether a (28, 28) classifier view lies farther from every class than the Classify tab allows."""
        if self.familiarity is None:
            return False
        return bool(self.familiarity.unfamiliar(np.asarray(self._channel_means_fn(view[None, ..., None])))[0])

    @_after_warm_up
    def garment(self, code) -> np.ndarray:
        """The code's garment as the generator draws it: a uint8 picture."""
        latent, label = self.read_code(code)
        return upscale(to_uint8(self._render(latent[None], self._one_hot([label]))[0]), SHOW)

    @_after_warm_up
    def classes_row(self, code) -> np.ndarray:
        """The code's latent in every class, one picture: ten garments in a row, each captioned with
        its class and the classifier's confidence in it, or what the classifier sees instead."""
        latent, _ = self.read_code(code)
        classes = len(self.class_names)
        images = self._render(np.tile(latent, (classes, 1)), np.eye(classes))
        captions = [(name, f"{p:.0%}" if named == name else f"seen: {named}")
                    for name, (named, p) in zip(self.class_names, self._named(images))]
        return captioned_row(upscale(image_grid(images, rows=1), SHOW // 2), captions, SHOW // 2 * 30)

    def _edited_latent(self, latent, strengths) -> np.ndarray:
        if len(strengths) != len(self.style_names):
            raise InputError(f"Give {len(self.style_names)} style strengths ({', '.join(self.style_names)}).")
        values = np.array([check_range(name, s, -STYLE_RANGE, STYLE_RANGE)
                           for name, s in zip(self.style_names, strengths)], np.float32)
        return latent + values @ self.style_directions

    @_after_warm_up
    def render(self, code, class_name, *strengths) -> np.ndarray:
        """The code's garment as ``class_name``, moved along the style directions by ``strengths``
        (-2 to 2 each): a uint8 picture."""
        latent, _ = self.read_code(code)
        check_choice("Class", class_name, self.class_names)
        latent = self._edited_latent(latent, strengths)
        image = self._render(latent[None], self._one_hot([self.class_names.index(class_name)]))[0]
        return upscale(to_uint8(image), SHOW)

    @_after_warm_up
    def mix(self, style_code, class_code) -> np.ndarray:
        """Two garments crossed: the style of the first in the class of the second and the other way
        round, beside the two originals (one picture, four panels)."""
        style_latent, style_label = self.read_code(style_code)
        class_latent, class_label = self.read_code(class_code)
        images = self._render(np.stack([style_latent, class_latent, style_latent, class_latent]),
                              self._one_hot([style_label, class_label, class_label, style_label]))
        return upscale(image_grid(images, rows=1), SHOW // 2)

    @_after_warm_up
    def animation(self, code, class_name, *strengths, frames: int = 16) -> list[np.ndarray]:
        """Frames from the code's garment to its edit (class and style), both blended linearly."""
        frames = check_int("Frames", frames, 2, MAX_FRAMES)
        latent, label = self.read_code(code)
        check_choice("Class", class_name, self.class_names)
        edited = self._edited_latent(latent, strengths)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
        start, end = self._one_hot([label]), self._one_hot([self.class_names.index(class_name)])
        padded = MAX_FRAMES  # one compiled shape for every frame count
        latents = np.zeros((padded, self.latent_dim), np.float32)
        weights = np.zeros((padded, len(self.class_names)), np.float32)
        latents[:frames], weights[:frames] = (1 - t) * latent + t * edited, (1 - t) * start + t * end
        return [upscale(to_uint8(image), SHOW // 2) for image in self._render(latents, weights)[:frames]]

    @_after_warm_up
    def sketch(self, rgb: np.ndarray) -> tuple[list[tuple[np.ndarray, str]], list[dict]]:
        """A sketch (light: garment here, dark: nothing here, mid-gray: free) -> six garments that
        agree with it, best first, each with a caption (its class, how well it agrees), and their codes."""
        gray = sketch_view(rgb)
        garment, empty = gray > SKETCH_GARMENT, gray < SKETCH_EMPTY
        if not garment.any():
            raise InputError("Paint where the garment should be (white) first: the sketch has no light pixels.")
        latents, labels, images, _ = edit.garments_for_sketch(self.generator, garment, empty, SKETCH_GARMENTS)
        painted = garment | empty
        results, codes = [], []
        for latent, label, image in zip(latents, labels, images[..., 0]):
            agree = ((image > edit.INK) == garment)[painted].mean()
            results.append((upscale(to_uint8(image), SHOW // 2),
                            f"{self.class_names[label]}, {agree:.0%} agree"))  # short: a caption under a small tile
            codes.append({**garment_code(self.class_names[label], latent), "from": "your sketch"})
        return results, codes


# What a style slider can do to a garment, measured on its ink (pixels above ``edit.INK``): larger is
# further that way. A slider's name is one of them; where a class goes another way, the page says so.
STYLE_EFFECTS = {
    "shorter": lambda ink, image: -ink.any(2).sum(1), "taller": lambda ink, image: ink.any(2).sum(1),  # rows
    "narrower": lambda ink, image: -ink.any(1).sum(1), "wider": lambda ink, image: ink.any(1).sum(1),  # columns
    "darker": lambda ink, image: -image.mean((1, 2)), "lighter": lambda ink, image: image.mean((1, 2)),
    "smaller": lambda ink, image: -ink.sum((1, 2)), "larger": lambda ink, image: ink.sum((1, 2)),
}


def slider_label(name: str) -> str:
    """A style slider's name, with what it does instead where its name does not hold."""
    elsewhere = "; ".join(f"{effect} for {', '.join(classes)}" for effect, classes in STYLE_ELSEWHERE.get(name, {}).items())
    return f"{name} ({elsewhere})" if elsewhere else name


def style_effects(tab: EditTab, name: str, per_class: int = 40, seed: int = 11) -> dict[str, np.ndarray]:
    """For style slider ``name`` moved from -2 to +2: for each effect of ``STYLE_EFFECTS``, the share
    of each class's ``per_class`` garments that moved that way (an unchanged garment counts as not)."""
    from ..gan import sample_latents
    classes = len(tab.class_names)
    latents = np.asarray(sample_latents(seed, per_class * classes, tab.latent_dim))
    labels = np.arange(len(latents)) % classes
    direction = tab.style_directions[tab.style_names.index(name)]
    render = lambda moved: np.concatenate([tab._render(moved[i:i + MAX_FRAMES], tab._one_hot(labels[i:i + MAX_FRAMES]))
                                           for i in range(0, len(moved), MAX_FRAMES)])  # the animation's compiled shape
    before, after = render(latents - STYLE_RANGE * direction), render(latents + STYLE_RANGE * direction)
    moved = {effect: measure(after > edit.INK, after) - measure(before > edit.INK, before) > 0
             for effect, measure in STYLE_EFFECTS.items()}
    return {effect: np.array([way[labels == c].mean() for c in range(classes)]) for effect, way in moved.items()}


def captioned_row(row: np.ndarray, captions: list[tuple[str, str]], tile: int) -> np.ndarray:
    """(H, W) uint8 row of equal tiles ``tile`` pixels apart -> the row with two caption lines under
    each tile (white on the grid's gray)."""
    canvas = Image.fromarray(np.pad(row, ((0, 44), (0, 0)), constant_values=64))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=15)
    for i, lines in enumerate(captions):
        for j, line in enumerate(lines):
            draw.text((i * tile + tile // 2 + 1, row.shape[0] + 2 + 19 * j), line, fill=255, font=font, anchor="ma")
    return np.asarray(canvas)


def sketch_view(rgb: np.ndarray) -> np.ndarray:
    """Any sketch image -> (28, 28) gray in [0, 1], each pixel the mean of its block (no cropping:
    the sketch's position is what it asks for)."""
    gray = to_gray(rgb).astype(np.float32)
    return np.asarray(Image.fromarray(gray, mode="F").resize((28, 28), Image.BOX), np.float32)
