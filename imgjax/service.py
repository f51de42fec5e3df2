"""What the studio serves, without the UI: the three shipped models loaded once, and one function
per action (generate, interpolate, classify, denoise) from plain values to numpy pictures and
figures.

Every problem with a user's input raises ``InputError`` (``imgjax.user_input``, which also reads
their images within the server's limits) with a message meant for that user; the UI shows it and
goes on serving. Nothing here imports Gradio.

Shapes are bucketed so that XLA compiles a bounded set of programs (the common ones during
``warm_up``): generation runs in batches of 16 or 64; 28x28 images go straight through; larger
images are padded to a square of side 64, 128, 256 or 512 (``DENOISE_SIDES``), one or three
channels, and every jitted step of a denoise (corruption, models, baselines, scores) runs at that
shape.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from . import baselines, checkpoint, corruptions, data
from .images import image_grid, to_uint8
from .metrics import ssim_map
from .user_input import InputError, check_choice, check_int, check_range

# ----------------------------------------------------------------------------- limits

DENOISE_MAX_SIDE = 512  # larger images are downscaled to this long side before denoising
CLASSIFY_MAX_SIDE = 1024  # the classifier sees 28x28; a long side of 1024 keeps a small garment's detail
MAX_SEED = 2**31 - 1
MAX_IMAGES = 64
TRUNCATION_RANGE = (0.1, 3.0)  # the top value means no truncation: the generator `imgjax eval gan` measures
GAUSSIAN_RANGE = (0.0, 0.5)
SALT_PEPPER_RANGE = (0.0, 0.5)
MAX_FRAMES = 32

GAUSSIAN, SALT_PEPPER, MASK = "Gaussian noise", "Salt and pepper", "Brush mask"
CORRUPTIONS = (GAUSSIAN, SALT_PEPPER, MASK)
ALL_CLASSES = "All classes"
INTERPOLATE_SEEDS, INTERPOLATE_CLASSES = "Between two seeds", "Across classes (same style)"


# ----------------------------------------------------------------------------- reading images

def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luminance (ITU-R 601 weights, as Pillow's 'L'); gray images exactly."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


# ----------------------------------------------------------------------------- classifier input

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


def label_rows(grid: np.ndarray, names, left: int) -> np.ndarray:
    """(H, W) uint8 grid of len(names) equal blocks stacked vertically -> (H, left + W) with each
    block's name written in the margin at its middle (white on the grid's gray)."""
    from PIL import ImageDraw, ImageFont
    canvas = Image.fromarray(np.pad(grid, ((0, 0), (left, 0)), constant_values=64))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=22)
    block = grid.shape[0] / len(names)
    for i, name in enumerate(names):
        draw.text((8, (i + 0.5) * block), name, fill=255, font=font, anchor="lm")
    return np.asarray(canvas)


def upscale(picture: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling, so that 28-pixel images stay crisp on screen."""
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def heat_overlay(gray: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W) image and (H, W) saliency in [0, 1] -> (H, W, 3) uint8: the image in gray with the
    saliency in red-yellow on top."""
    base = np.repeat(gray[..., None], 3, axis=-1) * 0.55
    color = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], -1)
    alpha = np.clip(heat * 1.5, 0.0, 1.0)[..., None]
    return to_uint8(base * (1 - alpha) + color * alpha)


# ----------------------------------------------------------------------------- results

@dataclasses.dataclass
class Classification:
    probabilities: dict[str, float]  # the top 5 classes, most likely first
    model_input: np.ndarray  # (224, 224) uint8: the 28x28 image the model saw, upscaled
    saliency: np.ndarray  # (224, 224, 3) uint8 overlay
    verdict: str  # one sentence: the answer, or a plain warning that the input looks unfamiliar


@dataclasses.dataclass
class Restoration:
    corrupted: np.ndarray  # uint8, gray (H, W) or colour (H, W, 3)
    restored: np.ndarray
    baseline: np.ndarray
    baseline_name: str
    figures: list[list]  # rows of [name, PSNR dB, SSIM] against the clean image; empty without one
    note: str  # how the image was processed


# ----------------------------------------------------------------------------- the service

GENERATE_BUCKETS = (16, 64)
ALL_CLASSES_COLUMNS = 16  # "All classes" wraps each class's images at this many columns
CLASS_LABEL_WIDTH = 150  # pixels left of the "All classes" grid for the class names  # a request for fewer images is padded: one compile serves 1 to 16


class Studio:
    """The three shipped checkpoints, loaded once, and the studio's actions."""

    def __init__(self, checkpoint_dir: Path | None = None):
        path = lambda name: None if checkpoint_dir is None else Path(checkpoint_dir) / f"{name}.safetensors"
        self.classifier, self.classifier_card = checkpoint.load_model("cnn", path("cnn"))
        self.autoencoder, self.autoencoder_card = checkpoint.load_model("ae", path("ae"))
        self.generator, self.generator_card = checkpoint.load_model("gan", path("gan"))
        self.tv_weights = tv_weights_from_card(self.autoencoder_card)
        # The jitted functions with their model bound once: nnx.jit otherwise walks the model's graph
        # on every call, which cost ~7 ms of a 13 ms denoise.
        from .ae import _restore_aligned
        from .cnn import classify_with_saliency
        from .gan import generate_blended
        self._restore_fn = nnx.cached_partial(_restore_aligned, self.autoencoder)
        self._classify_fn = nnx.cached_partial(classify_with_saliency, self.classifier)
        self._generate_fn = nnx.cached_partial(generate_blended, self.generator)
        self.familiarity = _load_familiarity(Path(checkpoint_dir or checkpoint.CHECKPOINT_DIR), self.classifier_card)
        self.latent_dim = self.generator_card["config"]["latent_dim"]
        self.class_names = list(data.FASHION_CLASSES)

    # -- warm-up ---------------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Run every action once per compiled shape the page uses, so the first click is as fast as
        the rest (with the persistent compilation cache, a second start loads these from disk).
        Returns the seconds it took."""
        start = time.perf_counter()
        for count in GENERATE_BUCKETS:
            self.generate(self.class_names[0], 0, count, 1.0)
        self.interpolate(INTERPOLATE_SEEDS, self.class_names[0], 0, 1, 8, 1.0)
        self.interpolate(INTERPOLATE_CLASSES, self.class_names[0], 0, 1, 8, 1.0)
        example = np.zeros((28, 28, 3), np.float32)
        example[6:22, 8:20] = 0.8
        self.classify(example)
        for kind in CORRUPTIONS:
            mask = np.zeros((28, 28), np.float32)
            mask[10:16, 10:16] = 1
            self.denoise(example, kind, 0.2, 0, mask=mask)
        return time.perf_counter() - start

    # -- generate --------------------------------------------------------------------------------

    def _latents(self, seed: int, count: int, truncation: float) -> np.ndarray:
        from .gan import sample_latents
        truncation = None if truncation >= TRUNCATION_RANGE[1] else truncation
        return np.asarray(sample_latents(seed, count, self.latent_dim, truncation))

    def _generate(self, latents: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
        """(N, latent) and (N, classes) -> (N, 28, 28) float images, in bucketed batches."""
        outputs = []
        for start in range(0, len(latents), GENERATE_BUCKETS[-1]):
            chunk = slice(start, start + GENERATE_BUCKETS[-1])
            n = len(latents[chunk])
            size = next(b for b in GENERATE_BUCKETS if b >= n)
            pad = ((0, size - n), (0, 0))
            images = self._generate_fn(np.pad(latents[chunk], pad), np.pad(class_weights[chunk], pad))
            outputs.append(np.asarray(images)[:n, ..., 0])
        return np.concatenate(outputs)

    def _one_hot(self, labels) -> np.ndarray:
        return np.eye(len(self.class_names), dtype=np.float32)[np.asarray(labels)]

    def generate(self, class_name: str, seed, count, truncation) -> np.ndarray:
        """A uint8 grid of ``count`` images of ``class_name``, or for 'All classes' one row per class
        with the same latents in every row (each column keeps its 'style' across garments)."""
        check_choice("Class", class_name, [ALL_CLASSES, *self.class_names])
        seed = check_int("Seed", seed, 0, MAX_SEED)
        count = check_int("Number of images", count, 1, MAX_IMAGES)
        truncation = check_range("Truncation", truncation, *TRUNCATION_RANGE)
        latents = self._latents(seed, count, truncation)
        if class_name != ALL_CLASSES:
            images = self._generate(latents, self._one_hot(np.full(count, self.class_names.index(class_name))))
            grid = image_grid(images, rows=max(1, round(math.sqrt(count))))
            return upscale(grid, max(1, min(4, 1024 // grid.shape[1])))
        classes = len(self.class_names)
        images = self._generate(np.tile(latents, (classes, 1)), self._one_hot(np.repeat(np.arange(classes), count)))
        # One block per class, wrapped at ALL_CLASSES_COLUMNS images, its name on the left.
        rows = -(-count // ALL_CLASSES_COLUMNS)
        blocks = [image_grid(images[c * count:(c + 1) * count], rows=rows)[:-2] for c in range(classes)]
        grid = upscale(np.concatenate(blocks + [blocks[0][:2] * 0 + 64]), 4)
        return label_rows(grid, self.class_names, left=CLASS_LABEL_WIDTH)

    def interpolate(self, mode: str, class_name: str, seed_a, seed_b, frames, truncation) -> list[np.ndarray]:
        """Frames (each (112, 112) uint8) of a walk through the generator's inputs:
        between two seeds' latents within one class (spherical interpolation), or, with one seed
        (one 'style'), through every class in turn, blending class embeddings between neighbours."""
        check_choice("Interpolation", mode, [INTERPOLATE_SEEDS, INTERPOLATE_CLASSES])
        class_name = check_choice("Class", class_name, self.class_names)
        seed_a, seed_b = check_int("First seed", seed_a, 0, MAX_SEED), check_int("Second seed", seed_b, 0, MAX_SEED)
        frames = check_int("Frames", frames, 2, MAX_FRAMES)
        truncation = check_range("Truncation", truncation, *TRUNCATION_RANGE)
        start = self.class_names.index(class_name)
        if mode == INTERPOLATE_SEEDS:
            a, b = self._latents(seed_a, 1, truncation)[0], self._latents(seed_b, 1, truncation)[0]
            t = np.linspace(0.0, 1.0, frames)[:, None]
            latents = slerp(a, b, t)
            weights = self._one_hot(np.full(frames, start))
        else:
            classes = len(self.class_names)
            # positions along the tour start -> start+1 -> ... -> back to start, frames per class
            position = np.linspace(0.0, classes, frames * classes, endpoint=False)
            low = (start + np.floor(position).astype(int)) % classes
            high = (low + 1) % classes
            t = (position - np.floor(position))[:, None]
            weights = (1 - t) * self._one_hot(low) + t * self._one_hot(high)
            latents = np.tile(self._latents(seed_a, 1, truncation), (len(weights), 1))
        images = self._generate(latents.astype(np.float32), weights.astype(np.float32))
        return [upscale(to_uint8(image), 4) for image in images]

    # -- classify --------------------------------------------------------------------------------

    def classify(self, rgb: np.ndarray) -> Classification:
        view = classifier_view(rgb)
        probabilities, saliency, features = self._classify_fn(view[None, ..., None])
        probabilities, saliency = np.asarray(probabilities[0]), np.asarray(saliency[0])
        order = np.argsort(-probabilities)
        top = {self.class_names[i]: float(probabilities[i]) for i in order[:5]}
        best, confidence = self.class_names[order[0]], float(probabilities[order[0]])
        distance = float(self.familiarity.distance(np.asarray(features))[0])
        if distance > self.familiarity.threshold:
            verdict = (f"This does not look like the garments the model was trained on: its features are "
                       f"farther from every class than 99% of real garments' (distance {distance:.0f}, "
                       f"limit {self.familiarity.threshold:.0f}). '{best}' ({confidence:.0%}) is only a guess.")
        elif confidence < 0.5:
            verdict = f"Unsure: '{best}' at only {confidence:.0%}; see the other classes below."
        else:
            verdict = f"{best} ({confidence:.0%})."
        return Classification(top, upscale(to_uint8(view), 8), upscale(heat_overlay(view, saliency), 8), verdict)

    # -- denoise ---------------------------------------------------------------------------------

    def denoise(self, rgb: np.ndarray, kind: str, level, seed, mask: np.ndarray | None = None,
                already_noisy: bool = False, original_size: tuple[int, int] | None = None) -> Restoration:
        """Corrupt a clean image (unless ``already_noisy``) and restore it with the autoencoder and
        with the classical baseline for that corruption; figures against the clean image.

        Colour images are restored one channel at a time (the model is grayscale); images with a
        long side over 512 pixels are first downscaled to it; the autoencoder, being fully
        convolutional, runs at the image's own resolution (padded to its bucket).
        ``original_size`` (width, height) is the uploaded file's, when the caller already reduced it."""
        check_choice("Corruption", kind, CORRUPTIONS)
        limits = GAUSSIAN_RANGE if kind == GAUSSIAN else SALT_PEPPER_RANGE
        level = check_range("Noise level" if kind == GAUSSIAN else "Amount", level, *limits)
        seed = check_int("Seed", seed, 0, MAX_SEED)
        original_size = original_size or (rgb.shape[1], rgb.shape[0])
        if max(rgb.shape[:2]) > DENOISE_MAX_SIDE:
            scale = DENOISE_MAX_SIDE / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = np.stack([np.asarray(Image.fromarray(rgb[..., c], mode="F").resize(size, Image.BOX)) for c in range(3)], -1)
        h, w = rgb.shape[:2]
        notes = [f"{original_size[0]}x{original_size[1]}"]
        if (w, h) != tuple(original_size):
            notes.append(f"downscaled to {w}x{h} (the long side is capped at {DENOISE_MAX_SIDE} pixels)")
        colour = bool(np.abs(rgb - rgb.mean(-1, keepdims=True)).max() > 2 / 255)
        # channels as a batch of grayscale images (N, H, W, 1), padded to the bucket's square
        clean = (np.moveaxis(rgb, -1, 0) if colour else to_gray(rgb)[None])[..., None].astype(np.float32)
        clean = pad_to_bucket(np.clip(clean, 0.0, 1.0))
        notes.append("colour: each channel restored separately" if colour else "grayscale")

        if kind == MASK:
            if mask is None or not np.any(mask):
                raise InputError("Paint over the part of the image to mask (Brush mask), or choose another corruption.")
            mask = np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").resize((w, h), Image.NEAREST)) > 0.5
            mask = np.broadcast_to(_pad_zeros(mask, clean.shape[1:3]), clean.shape).astype(np.float32)
        else:
            mask = np.zeros_like(clean)

        corrupted = clean if already_noisy else np.asarray(_corrupt(kind, jax.random.key(seed), clean, level, mask))
        restored = self._restore(corrupted)
        if kind == GAUSSIAN:
            # The weights tuned at sigma 0.1 / 0.2 / 0.3, interpolated (and held beyond them).
            weight = float(np.interp(level, *self.tv_weights))
            baseline_name = f"total variation (weight {weight:.2f})"
            baseline = baselines.tv_denoise(corrupted, weight)
        elif kind == SALT_PEPPER:
            baseline_name = "3x3 median filter"
            baseline = baselines.median_filter_3x3(corrupted)
        else:
            baseline_name = "harmonic inpainting (told the mask)"
            baseline = baselines.harmonic_inpaint(corrupted, mask)
        baseline = np.asarray(baseline)

        figures = []
        if not already_noisy:
            psnrs, ssims = _quality(clean, np.stack([corrupted, baseline, restored]), h, w)
            with_ssim = min(h, w) >= 11  # SSIM's 11x11 window
            for name, p_value, s_value in zip(("corrupted", baseline_name, "autoencoder"), psnrs, ssims):
                figures.append([name, round(float(p_value), 2), round(float(s_value), 3) if with_ssim else None])

        def picture(batch):
            channels = to_uint8(batch[:, :h, :w, 0])
            return np.moveaxis(channels, 0, -1) if colour else channels[0]

        note = ", ".join(notes) + "; the autoencoder runs fully convolutionally at this resolution."
        return Restoration(picture(corrupted), picture(restored), picture(baseline), baseline_name, figures, note)

    def _restore(self, padded: np.ndarray) -> np.ndarray:
        """(N, S, S, 1) -> restored, one channel at a time: a 512x512 channel's activations take
        ~110 MB, and three at once would triple a request's memory."""
        return np.concatenate([np.asarray(self._restore_fn(channel[None])) for channel in padded])


def _load_familiarity(directory: Path, card: dict):
    """The classifier's feature statistics (``imgjax eval cnn --write-card`` writes them), checked
    against the SHA-256 in its card."""
    from safetensors.numpy import load_file

    from .cnn import Familiarity
    info = card.get("metrics", {}).get("familiarity")
    if info is None:
        raise checkpoint.CheckpointError(f"{directory}/cnn.json: no familiarity statistics; run `imgjax eval cnn --write-card`")
    path = directory / info["file"]
    if not path.is_file() or checkpoint.sha256_file(path) != info["sha256"]:
        raise checkpoint.CheckpointError(f"{path}: missing, or its SHA-256 does not match cnn.json")
    return Familiarity.from_arrays(load_file(path))


@partial(jax.jit, static_argnames="kind")
def _corrupt(kind: str, key, clean, level, mask):
    if kind == GAUSSIAN:
        return corruptions.gaussian_noise(key, clean, level)
    if kind == SALT_PEPPER:
        return corruptions.salt_and_pepper(key, clean, level)
    return corruptions.apply_mask(clean, mask)


@jax.jit
def _quality(clean, estimates, height, width):
    """Mean PSNR and SSIM over the batch of each of the (K, N, S, S, 1) estimates, counting only
    the image's own (height, width) corner of its padded square: one program per bucket."""
    size = clean.shape[1]
    inside = lambda n, margin: ((jnp.arange(n)[:, None] < height - margin)
                                & (jnp.arange(n)[None, :] < width - margin))[None, ..., None]
    pixels = inside(size, 0)
    windows = inside(size - 10, 10)  # SSIM's valid 11x11 windows that lie inside the image

    def scores(estimate):
        mse = jnp.sum(jnp.where(pixels, (clean - estimate) ** 2, 0.0)) / (jnp.sum(pixels) * clean.shape[0])
        structural = jnp.sum(jnp.where(windows, ssim_map(clean, estimate), 0.0)) / jnp.maximum(
            jnp.sum(windows) * clean.shape[0], 1)
        return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-12)), structural

    return jax.vmap(scores)(estimates)


DENOISE_SIDES = (64, 128, 256, DENOISE_MAX_SIDE)


def pad_to_bucket(images: np.ndarray) -> np.ndarray:
    """Pad (N, H, W, C) by reflection to the smallest square of ``DENOISE_SIDES`` that holds it (28x28
    stays as it is), so that uploads of any size share a few compiled programs."""
    h, w = images.shape[1:3]
    if (h, w) == (28, 28):
        return images
    side = next(s for s in DENOISE_SIDES if s >= max(h, w))
    return np.pad(images, ((0, 0), (0, side - h), (0, side - w), (0, 0)), mode="symmetric")


def _pad_zeros(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) -> (1, *shape, 1): the mask in the top-left corner of a square of zeros."""
    out = np.zeros(shape, np.float32)
    out[:mask.shape[0], :mask.shape[1]] = mask
    return out[None, ..., None]


def tv_weights_from_card(card: dict) -> tuple[list[float], list[float]]:
    """(sigmas, weights): the total-variation weights ``imgjax eval ae`` tuned on training images for
    each Gaussian noise level, read from the autoencoder's card."""
    metrics = card.get("metrics", {})
    pairs = sorted((float(k.split("_")[1]), v["tv"]["weight"]) for k, v in metrics.items() if k.startswith("gaussian_"))
    if not pairs:
        raise checkpoint.CheckpointError("ae.json: no tuned TV weights; run `imgjax eval ae --write-card`")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latents a and b: stays on the shell where Gaussian latents
    live, where a straight line would pass through atypical low-norm points."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


XLA_CACHE_MAX_BYTES = 512 * 2**20  # the page's bounded set of programs takes a small part of it


def enable_compilation_cache(directory: str | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (default ``~/.cache/imgjax/xla``, or
    ``IMGJAX_XLA_CACHE``), keeping every program up to ``XLA_CACHE_MAX_BYTES`` (least recently used
    dropped first), so that a second start compiles nothing."""
    path = Path(directory or os.environ.get("IMGJAX_XLA_CACHE") or Path.home() / ".cache" / "imgjax" / "xla")
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", XLA_CACHE_MAX_BYTES)
    return path
