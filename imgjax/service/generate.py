"""The Generate tab's actions: a grid of pictures by class and seed (and art set and skin tone, for a
dataset with them such as the emoji), and walks through the generator's inputs (between two seeds, or across
classes in one style). One tab per dataset (``imgjax.datasets``), read from the generator's card.

Generation runs in batches of 16 or 64 (``GENERATE_BUCKETS``) so XLA compiles two programs.
"""

from __future__ import annotations

import math

import numpy as np

from .. import datasets
from ..gan import generate_blended, sample_latents
from ..images import image_grid, label_rows, to_uint8, upscale
from ..serving import compiling, frozen
from ..user_input import MAX_SEED, check_choice, check_int, check_range
from .edit import garment_code

MAX_IMAGES = 64
MAX_FRAMES = 32
TRUNCATION_RANGE = (0.1, 3.0)  # the top value means no truncation: the generator `imgjax eval gan` measures
ALL_CLASSES = "All classes"
INTERPOLATE_SEEDS, INTERPOLATE_CLASSES = "Between two seeds", "Across classes (same style)"
EVERY_TONE = "Every tone in turn"  # the images of a toned class take the tones one after another
GENERATE_BUCKETS = (16, 64)  # a request for fewer images is padded: one compile serves 1 to 16
ALL_CLASSES_COLUMNS = 16  # "All classes" wraps each class's images at this many columns


class GenerateTab:
    """A shipped generator and its card, and the tab's two actions, on the dataset its card names.
    Actions take a ``style`` (an art set's name) and a ``tone`` (a skin tone's name, or ``EVERY_TONE``)
    that a generator without them ignores; the tone applies to the dataset's toned classes only."""

    def __init__(self, generator, card: dict):
        self.card = card
        self.dataset = datasets.get(card.get("dataset", "fashion-mnist"))
        self.class_names = list(self.dataset.classes)
        self.styles = list(self.dataset.styles)
        self.tones = list(self.dataset.tones) if card["config"].get("num_tones") else []
        self._toned_classes = [self.class_names.index(name) for name in self.dataset.toned_classes]
        self.latent_dim = card["config"]["latent_dim"]
        self.generator = generator  # read only: served through the compiled function below
        self._generate_fn = frozen(generate_blended, generator)
        self.compiling = compiling()  # held while compiled in the background (``Studio.warm_up``)

    def with_model(self, generator, card: dict) -> GenerateTab:
        """The same actions on another generator (a Lab run's)."""
        return GenerateTab(generator, card)

    def warm_up(self) -> None:
        """Compile every shape the tab uses."""
        for count in GENERATE_BUCKETS:
            self.generate(self.class_names[0], 0, count, 1.0)
        for mode in (INTERPOLATE_SEEDS, INTERPOLATE_CLASSES):
            self.interpolate(mode, self.class_names[0], 0, 1, 8, 1.0)

    def _style(self, style) -> int:
        """The index of the art set named ``style`` (None: the first); 0 for a dataset without styles."""
        if not self.styles:
            return 0
        return self.styles.index(check_choice("Art set", self.styles[0] if style is None else style, self.styles))

    def _tones(self, tone, count: int) -> np.ndarray:
        """(count,) the tone index of each image: ``tone``'s, or with ``EVERY_TONE`` (None) the tones in
        turn; zeros (the default tone) for a generator without tones."""
        if not self.tones:
            return np.zeros(count, int)
        tone = check_choice("Skin tone", EVERY_TONE if tone is None else tone, [EVERY_TONE, *self.tones])
        if tone == EVERY_TONE:
            return np.arange(count) % len(self.tones)
        return np.full(count, self.tones.index(tone))

    def _latents(self, seed: int, count: int, truncation: float) -> np.ndarray:
        truncation = None if truncation >= TRUNCATION_RANGE[1] else truncation
        # Drawn a bucket at a time (one compiled draw per bucket) and cut: a seed's first rows are the same.
        drawn = next((size for size in GENERATE_BUCKETS if size >= count), count)
        return np.asarray(sample_latents(seed, drawn, self.latent_dim, truncation))[:count]

    def _generate(self, latents: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
        """(N, latent) and (N, conditions) weights -> (N, side, side[, 3]) float images, in bucketed batches."""
        outputs = []
        for start in range(0, len(latents), GENERATE_BUCKETS[-1]):
            chunk = slice(start, start + GENERATE_BUCKETS[-1])
            n = len(latents[chunk])
            size = next(b for b in GENERATE_BUCKETS if b >= n)
            pad = ((0, size - n), (0, 0))
            images = self._generate_fn(np.pad(latents[chunk], pad), np.pad(class_weights[chunk], pad))
            images = np.asarray(images)[:n]
            outputs.append(images[..., 0] if images.shape[-1] == 1 else images)
        return np.concatenate(outputs)

    def _one_hot(self, labels, style: int = 0, tones=0) -> np.ndarray:
        """Class indices in the art set ``style`` and ``tones`` (for the toned classes; others take the
        default tone 0) -> one-hot weights over the generator's conditions."""
        labels, styles = np.asarray(labels), max(len(self.styles), 1)
        pairs = len(self.class_names) * styles
        toned = np.isin(labels, self._toned_classes)
        conditions = labels * styles + style + np.where(toned, tones, 0) * pairs
        return np.eye(pairs * max(len(self.tones), 1), dtype=np.float32)[conditions]

    def generate(self, class_name: str, seed, count, truncation, style: str | None = None,
                 tone: str | None = None) -> np.ndarray:
        """A uint8 grid of ``count`` images of ``class_name`` (in the art set ``style`` and skin
        ``tone``), or for 'All classes' one row per class with the same latents in every row (each
        column keeps its 'style' across classes)."""
        check_choice("Class", class_name, [ALL_CLASSES, *self.class_names])
        seed = check_int("Seed", seed, 0, MAX_SEED)
        count = check_int("Number of images", count, 1, MAX_IMAGES)
        truncation = check_range("Truncation", truncation, *TRUNCATION_RANGE)
        style, tones = self._style(style), self._tones(tone, count)
        latents = self._latents(seed, count, truncation)
        if class_name != ALL_CLASSES:
            images = self._generate(latents, self._one_hot(np.full(count, self.class_names.index(class_name)), style,
                                                           tones))
            grid = image_grid(images, rows=max(1, round(math.sqrt(count))))
            return upscale(grid, max(1, min(4, 1024 // grid.shape[1])))
        classes = len(self.class_names)
        images = self._generate(np.tile(latents, (classes, 1)),
                                self._one_hot(np.repeat(np.arange(classes), count), style, np.tile(tones, classes)))
        # One block per class, wrapped at ALL_CLASSES_COLUMNS images, its name on the left.
        rows = -(-count // ALL_CLASSES_COLUMNS)
        blocks = [image_grid(images[c * count:(c + 1) * count], rows=rows)[:-2] for c in range(classes)]
        grid = upscale(np.concatenate(blocks + [blocks[0][:2] * 0 + 64]), max(1, 112 // self.dataset.side))
        return label_rows(grid, self.class_names)

    def first_code(self, class_name: str, seed, truncation, style: str | None = None, tone: str | None = None) -> dict:
        """The code of the grid's first picture (for "All classes", the first class's), to edit: in
        the art set ``style`` and the first picture's skin tone where the dataset has them."""
        check_choice("Class", class_name, [ALL_CLASSES, *self.class_names])
        seed = check_int("Seed", seed, 0, MAX_SEED)
        truncation = check_range("Truncation", truncation, *TRUNCATION_RANGE)
        class_name = class_name if class_name != ALL_CLASSES else self.class_names[0]
        style, shade = self._style(style), self._tones(tone, 1)[0]
        toned = self.class_names.index(class_name) in self._toned_classes and self.tones
        code = garment_code(class_name, self._latents(seed, 1, truncation)[0], self.styles[style] if self.styles else None,
                            self.tones[shade] if toned else None, dataset=self.dataset.name)
        return {**code, "from": f"the Generate tab ({class_name}, seed {seed})"}

    def interpolate(self, mode: str, class_name: str, seed_a, seed_b, frames, truncation,
                    style: str | None = None, tone: str | None = None) -> list[np.ndarray]:
        """Frames (each about 112 pixels a side, uint8) of a walk through the generator's inputs, in
        the art set ``style`` and skin ``tone`` where the dataset has them (``EVERY_TONE``: the first):
        between two seeds' latents within one class (spherical interpolation), or, with one seed
        (one 'style'), through every class in turn, blending class embeddings between neighbours."""
        check_choice("Interpolation", mode, [INTERPOLATE_SEEDS, INTERPOLATE_CLASSES])
        class_name = check_choice("Class", class_name, self.class_names)
        seed_a, seed_b = check_int("First seed", seed_a, 0, MAX_SEED), check_int("Second seed", seed_b, 0, MAX_SEED)
        frames = check_int("Frames", frames, 2, MAX_FRAMES)
        truncation = check_range("Truncation", truncation, *TRUNCATION_RANGE)
        style, tone = self._style(style), self._tones(tone, 1)[0]
        start = self.class_names.index(class_name)
        if mode == INTERPOLATE_SEEDS:
            a, b = self._latents(seed_a, 1, truncation)[0], self._latents(seed_b, 1, truncation)[0]
            t = np.linspace(0.0, 1.0, frames)[:, None]
            latents = slerp(a, b, t)
            weights = self._one_hot(np.full(frames, start), style, tone)
        else:
            classes = len(self.class_names)
            # positions along the tour start -> start+1 -> ... -> back to start, frames per class
            position = np.linspace(0.0, classes, frames * classes, endpoint=False)
            low = (start + np.floor(position).astype(int)) % classes
            high = (low + 1) % classes
            t = (position - np.floor(position))[:, None]
            weights = (1 - t) * self._one_hot(low, style, tone) + t * self._one_hot(high, style, tone)
            latents = np.tile(self._latents(seed_a, 1, truncation), (len(weights), 1))
        images = self._generate(latents.astype(np.float32), weights.astype(np.float32))
        return [upscale(to_uint8(image), max(1, 112 // self.dataset.side)) for image in images]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latents a and b: stays on the shell where Gaussian latents
    live, where a straight line would pass through atypical low-norm points."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
