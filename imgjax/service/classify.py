"""The Classify tab's action: any image (upload, paste, drawing) to a classifier's top 5, the small
image it saw, a saliency map, and a verdict that says when the input looks unfamiliar. One tab per
dataset (``imgjax.datasets``): garments seen as 28x28 gray, emoji as 32x32 colour, named with their art set."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from .. import checkpoint, datasets
from ..cnn import Familiarity, classify_with_saliency
from ..images import example_garment, to_gray, to_uint8, upscale
from ..serving import compiling, frozen

CLASSIFY_MAX_SIDE = 1024  # the classifier sees 28x28 or 32x32; a long side of 1024 keeps a small garment's detail
SHOWN_SIDE = 224  # the model's view and saliency are shown enlarged to about this side


@dataclasses.dataclass
class Classification:
    probabilities: dict[str, float]  # the top 5 classes, most likely first
    model_input: np.ndarray  # (224, 224[, 3]) uint8: the image the model saw, upscaled
    saliency: np.ndarray  # (224, 224, 3) uint8 overlay
    verdict: str  # one sentence: the answer, or a plain warning that the input looks unfamiliar


class ClassifyTab:
    """A shipped classifier, its familiarity statistics, and the tab's action, on the dataset its
    card names."""

    def __init__(self, classifier, card: dict, checkpoint_dir: Path):
        self.card = card
        self.dataset = datasets.get(card.get("dataset", "fashion-mnist"))
        self.class_names = list(self.dataset.classes)
        self.familiarity = _load_familiarity(checkpoint_dir, card)
        self.classifier = classifier  # read only: served through the compiled function below
        self._classify_fn = frozen(classify_with_saliency, classifier)
        self.compiling = compiling()  # held while compiled in the background (``Studio.warm_up``)

    def with_model(self, classifier, card: dict) -> ClassifyTab:
        """The same action on another classifier (a Lab run's), without the familiarity check: its
        statistics were fitted to the shipped classifier's features."""
        tab = copy.copy(self)
        tab.card, tab.familiarity, tab.classifier = card, None, classifier
        tab._classify_fn = frozen(classify_with_saliency, classifier)
        return tab

    def warm_up(self) -> None:
        """Compile the one shape the tab uses (every image becomes the dataset's side)."""
        self.classify(example_garment())

    def classify(self, rgb: np.ndarray) -> Classification:
        view = model_view(rgb, self.dataset)
        probabilities, saliency, features, styles = self._classify_fn(view[None])
        probabilities, saliency = np.asarray(probabilities[0]), np.asarray(saliency[0])
        order = np.argsort(-probabilities)
        top = {self.class_names[i]: float(probabilities[i]) for i in order[:5]}
        best, confidence = self.class_names[order[0]], float(probabilities[order[0]])
        # The art set, where the model names one: "Animals (91%), drawn in Noto's style (99%)."
        style = ""
        if styles is not None:
            styles = np.asarray(styles[0])
            style = f", drawn in {self.dataset.styles[styles.argmax()]}'s style ({styles.max():.0%})"
        distance = float(self.familiarity.distance(np.asarray(features))[0]) if self.familiarity else 0.0
        noun = self.dataset.noun
        if self.familiarity and distance > self.familiarity.threshold:
            verdict = (f"This does not look like the {noun} the model was trained on: its features are "
                       f"farther from every class than those of 99% of real {noun} (distance {distance:.0f}, "
                       f"limit {self.familiarity.threshold:.0f}). '{best}' ({confidence:.0%}) is only a guess.")
        elif confidence < 0.5:
            verdict = f"Unsure: '{best}' at only {confidence:.0%}{style}; see the other classes below."
        else:
            verdict = f"{best} ({confidence:.0%}){style}."
        factor = SHOWN_SIDE // self.dataset.side
        gray_view = view[..., 0] if view.shape[-1] == 1 else to_gray(view)
        return Classification(top, upscale(to_uint8(view if view.shape[-1] == 3 else view[..., 0]), factor),
                              upscale(heat_overlay(gray_view, saliency), factor), verdict)


def model_view(rgb: np.ndarray, dataset: datasets.Dataset) -> np.ndarray:
    """Any image -> the (side, side, channels) float32 image a model of ``dataset`` sees: a garment
    as Fashion-MNIST draws them (``classifier_view``), an emoji whole on white (``colour_view``)."""
    if dataset.light_on_dark:
        return classifier_view(rgb)[..., None]
    return colour_view(rgb, dataset.side)


def colour_view(rgb: np.ndarray, side: int) -> np.ndarray:
    """Any image -> (side, side, 3) float32: made square with white margins and averaged down, as
    the emoji's pictures were made from their art sets' (on white, the whole box kept: the art sets
    differ in how much of it they fill, and the model has learnt that too)."""
    height, width = rgb.shape[:2]
    long_side = max(height, width)
    square = np.ones((long_side, long_side, 3), np.float32)
    top, left = (long_side - height) // 2, (long_side - width) // 2
    square[top:top + height, left:left + width] = rgb
    picture = Image.fromarray(to_uint8(square))
    resample = Image.Resampling.BOX if long_side >= side else Image.Resampling.BILINEAR
    return np.asarray(picture.resize((side, side), resample), np.float32) / 255.0

def classifier_view(rgb: np.ndarray) -> np.ndarray:
    """Any image -> the (28, 28) float32 image the classifier sees, as Fashion-MNIST draws garments:
    light on a dark background, cropped to the object and centred in a square.

    Polarity comes from the border: a light border (a product photo, a drawing on white) is
    inverted. 28x28 images that already have a dark border are taken as they are."""
    gray = to_gray(rgb)
    border = lambda image: np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    light_background = np.median(border(gray)) > 0.5
    if gray.shape == (28, 28) and not light_background:
        return gray.astype(np.float32)
    if light_background:
        gray = 1.0 - gray
    # Background to black and the garment's brightest pixel to white, as in the training images.
    background = float(np.median(border(gray)))
    gray = np.clip((gray - background) / max(float(gray.max()) - background, 1e-6), 0.0, 1.0)
    foreground = gray > 0.15
    if foreground.any():
        rows, cols = np.nonzero(foreground.any(1))[0], np.nonzero(foreground.any(0))[0]
        gray = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    # Resize the crop first, then centre it on the 28x28 canvas: memory stays that of the crop.
    height, width = gray.shape
    scale = 28 / max(height, width)
    size = (min(28, max(1, round(width * scale))), min(28, max(1, round(height * scale))))
    resized = np.asarray(Image.fromarray(gray.astype(np.float32), mode="F")
                         .resize(size, Image.BOX if scale < 1 else Image.BILINEAR), np.float32)
    view = np.zeros((28, 28), np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    view[top:top + size[1], left:left + size[0]] = resized
    return np.clip(view, 0.0, 1.0)


def heat_overlay(gray: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W) image and (H, W) saliency in [0, 1] -> (H, W, 3) uint8: the image in gray with the
    saliency in red-yellow on top."""
    base = np.repeat(gray[..., None], 3, axis=-1) * 0.55
    color = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], -1)
    alpha = np.clip(heat * 1.5, 0.0, 1.0)[..., None]
    return to_uint8(base * (1 - alpha) + color * alpha)


def _load_familiarity(directory: Path, card: dict) -> Familiarity:
    """The classifier's feature statistics (``imgjax eval cnn --write-card`` writes them), checked
    against the SHA-256 in its card."""
    return Familiarity.from_arrays(checkpoint.load_companion(
        directory, card.get("metrics", {}).get("familiarity"), "cnn.json", "familiarity statistics",
        "imgjax eval cnn --write-card"))
