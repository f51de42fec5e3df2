"""What the studio serves, without the UI: the three shipped models loaded once, input checking,
and one function per action (generate, interpolate, classify, denoise) from plain values to
numpy pictures and figures.

Every problem with a user's input raises ``InputError`` with a message meant for that user; the UI
shows it and goes on serving. Nothing here imports Gradio.

Shapes are bucketed so that XLA compiles a bounded set of programs, all of them during ``warm_up``
for the common cases: generation runs in batches of 1, 4, 16 or 64; 28x28 images go straight
through; larger images are padded to multiples of 64 pixels.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from PIL import Image, ImageOps, UnidentifiedImageError

from . import baselines, checkpoint, corruptions, data
from .images import image_grid, to_uint8
from .metrics import psnr, ssim


class InputError(ValueError):
    """A user's input cannot be used; the message says why and what would work."""


# ----------------------------------------------------------------------------- limits

MAX_PIXELS = 25_000_000  # uploads above this many pixels are refused before decoding (decompression bombs)
MIN_SIDE = 8  # smaller images carry too little to classify or denoise
DENOISE_MAX_SIDE = 512  # larger images are downscaled to this long side before denoising
MAX_SEED = 2**31 - 1
MAX_IMAGES = 64
TRUNCATION_RANGE = (0.1, 3.0)
GAUSSIAN_RANGE = (0.0, 0.5)
SALT_PEPPER_RANGE = (0.0, 0.5)
MAX_FRAMES = 32

GAUSSIAN, SALT_PEPPER, MASK = "Gaussian noise", "Salt and pepper", "Brush mask"
CORRUPTIONS = (GAUSSIAN, SALT_PEPPER, MASK)
ALL_CLASSES = "All classes"
INTERPOLATE_SEEDS, INTERPOLATE_CLASSES = "Between two seeds", "Across classes (same style)"

# Pillow refuses to open images more than twice this size (DecompressionBombError) and warns above it.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# ----------------------------------------------------------------------------- reading images

def read_image(source) -> np.ndarray:
    """A file path, bytes or PIL image -> (H, W, 3) float32 RGB in [0, 1].

    Handles 1-bit, 8-bit, 16-bit and float grayscale, palette, RGB, CMYK and images with alpha
    (composited onto white, so black strokes on a transparent sketch canvas stay black); applies
    the EXIF orientation. Raises InputError for anything that is not a usable image."""
    try:
        image = source if isinstance(source, Image.Image) else Image.open(source)
    except UnidentifiedImageError:
        raise InputError("That file is not an image (or not in a format Pillow can read): try PNG or JPEG.") from None
    except Image.DecompressionBombError:
        raise InputError(f"That image is too large: at most {MAX_PIXELS // 1_000_000} megapixels.") from None
    except OSError as error:
        raise InputError(f"Could not open the image: {error}.") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InputError(f"That image is too large ({width}x{height} pixels): at most {MAX_PIXELS // 1_000_000} megapixels.")
    if min(width, height) < MIN_SIDE:
        raise InputError(f"That image is only {width}x{height} pixels: at least {MIN_SIDE}x{MIN_SIDE} is needed.")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb_float(image)
    except (OSError, ValueError, SyntaxError) as error:  # Pillow's errors for truncated or corrupt data
        raise InputError(f"The image file is truncated or corrupt ({error}).") from None


def _to_rgb_float(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # high bit depth grayscale
        values = np.asarray(image, np.float32)
        if image.mode == "F":
            top = 1.0 if values.max() <= 1.0 else values.max()
        else:
            top = 65535.0 if values.max() <= 65535 else float(values.max())
        gray = np.clip(values / max(top, 1e-12), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)  # onto white
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) luminance (ITU-R 601 weights, as Pillow's 'L'); gray images exactly."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def read_mask(source, shape: tuple[int, int]) -> np.ndarray:
    """A painted layer (strokes opaque on transparent, or white on black) -> (H, W) {0, 1} float32
    mask resized to ``shape``: 1 where painted."""
    image = source if isinstance(source, Image.Image) else Image.open(source)
    if "A" in image.getbands() or "transparency" in image.info:
        values = np.asarray(image.convert("RGBA"))[..., 3]
    else:
        values = np.asarray(image.convert("L"))
    mask = Image.fromarray(((values > 127) * 255).astype(np.uint8)).resize(shape[::-1], Image.NEAREST)
    return (np.asarray(mask) > 127).astype(np.float32)


def check_range(name: str, value, low: float, high: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}.") from None
    if not (low <= value <= high) or math.isnan(value):
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {value:g}.")
    return value


def check_int(name: str, value, low: int, high: int) -> int:
    number = check_range(name, value, low, high)
    if number != int(number):
        raise InputError(f"{name} must be a whole number, got {value!r}.")
    return int(number)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return value


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
    side = max(gray.shape)
    square = np.zeros((side, side), np.float32)
    top, left = (side - gray.shape[0]) // 2, (side - gray.shape[1]) // 2
    square[top:top + gray.shape[0], left:left + gray.shape[1]] = gray
    resized = Image.fromarray(square, mode="F").resize((28, 28), Image.BOX if side > 28 else Image.BILINEAR)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)


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

GENERATE_BUCKETS = (16, 64)  # a request for fewer images is padded: one compile serves 1 to 16


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
        if class_name == ALL_CLASSES:
            classes = len(self.class_names)
            images = self._generate(np.tile(latents, (classes, 1)), self._one_hot(np.repeat(np.arange(classes), count)))
            rows = classes
        else:
            images = self._generate(latents, self._one_hot(np.full(count, self.class_names.index(class_name))))
            rows = max(1, round(math.sqrt(count)))
        grid = image_grid(images, rows=rows)
        return upscale(grid, max(1, min(4, 1024 // grid.shape[1])))

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
                already_noisy: bool = False) -> Restoration:
        """Corrupt a clean image (unless ``already_noisy``) and restore it with the autoencoder and
        with the classical baseline for that corruption; figures against the clean image.

        Colour images are restored one channel at a time (the model is grayscale); images with a
        long side over 512 pixels are first downscaled to it; the autoencoder, being fully
        convolutional, runs at the image's own resolution."""
        check_choice("Corruption", kind, CORRUPTIONS)
        limits = GAUSSIAN_RANGE if kind == GAUSSIAN else SALT_PEPPER_RANGE
        level = check_range("Noise level" if kind == GAUSSIAN else "Amount", level, *limits)
        seed = check_int("Seed", seed, 0, MAX_SEED)
        notes = []
        if max(rgb.shape[:2]) > DENOISE_MAX_SIDE:
            scale = DENOISE_MAX_SIDE / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = np.stack([np.asarray(Image.fromarray(rgb[..., c], mode="F").resize(size, Image.BOX)) for c in range(3)], -1)
            notes.append(f"downscaled to {size[0]}x{size[1]} (the long side is capped at {DENOISE_MAX_SIDE} pixels)")
        colour = bool(np.abs(rgb - rgb.mean(-1, keepdims=True)).max() > 2 / 255)
        # channels as a batch of grayscale images (N, H, W, 1)
        clean = (np.moveaxis(rgb, -1, 0) if colour else to_gray(rgb)[None])[..., None].astype(np.float32)
        clean = np.clip(clean, 0.0, 1.0)
        notes.append("colour: each channel restored separately" if colour else "grayscale")
        h, w = clean.shape[1:3]

        if kind == MASK:
            if mask is None or not np.any(mask):
                raise InputError("Paint over the part of the image to mask (Brush mask), or choose another corruption.")
            mask = np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").resize((w, h), Image.NEAREST)) > 0.5
            mask = np.broadcast_to(mask[None, ..., None], clean.shape).astype(np.float32)

        if already_noisy:
            corrupted = clean
        else:
            corrupted = _corrupt(kind, jax.random.key(seed), clean, level, mask)
        corrupted = np.asarray(corrupted, np.float32)

        padded = pad_to_bucket(corrupted)
        restored = self._restore(padded)[:, :h, :w]
        if kind == GAUSSIAN:
            # The weights tuned at sigma 0.1 / 0.2 / 0.3, interpolated (and held beyond them).
            weight = float(np.interp(level, *self.tv_weights))
            baseline_name = f"total variation (weight {weight:.2f})"
            baseline = np.asarray(baselines.tv_denoise(padded, weight))[:, :h, :w]
        elif kind == SALT_PEPPER:
            baseline_name = "3x3 median filter"
            baseline = np.asarray(baselines.median_filter_3x3(padded))[:, :h, :w]
        else:
            baseline_name = "harmonic inpainting (told the mask)"
            baseline = np.asarray(baselines.harmonic_inpaint(padded, pad_to_bucket(mask)))[:, :h, :w]

        figures = []
        if not already_noisy:
            estimates = np.stack([corrupted, baseline, restored])
            with_ssim = min(h, w) >= 11  # SSIM's 11x11 window
            psnrs, ssims = _quality(clean, estimates, with_ssim)
            for name, p_value, s_value in zip(("corrupted", baseline_name, "autoencoder"), psnrs, ssims):
                figures.append([name, round(float(p_value), 2), round(float(s_value), 3) if with_ssim else None])

        def picture(batch):
            channels = to_uint8(batch[..., 0])
            return np.moveaxis(channels, 0, -1) if colour else channels[0]

        note = f"{w}x{h}, " + ", ".join(notes) + "; the autoencoder runs fully convolutionally at this resolution."
        return Restoration(picture(corrupted), picture(restored), picture(baseline), baseline_name, figures, note)

    def _restore(self, padded: np.ndarray) -> np.ndarray:
        return np.asarray(self._restore_fn(padded))


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


@partial(jax.jit, static_argnames="with_ssim")
def _quality(clean, estimates, with_ssim: bool):
    """Mean PSNR and SSIM over the batch of each of the (K, N, H, W, 1) estimates, in one program."""
    mean_psnr = jax.vmap(lambda e: psnr(clean, e).mean())(estimates)
    if not with_ssim:
        return mean_psnr, mean_psnr * 0
    return mean_psnr, jax.vmap(lambda e: ssim(clean, e).mean())(estimates)


def pad_to_bucket(images: np.ndarray, multiple: int = 64) -> np.ndarray:
    """Pad (N, H, W, C) by reflection to the next multiple of ``multiple`` (28x28 stays as it is),
    so that uploads of many sizes share a few compiled programs."""
    h, w = images.shape[1:3]
    if (h, w) == (28, 28):
        return images
    pad = ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0))
    return np.pad(images, pad, mode="symmetric")


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


def enable_compilation_cache(directory: str | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (default ``~/.cache/imgjax/xla``, or
    ``IMGJAX_XLA_CACHE``), keeping every program, so that a second start compiles nothing."""
    path = Path(directory or os.environ.get("IMGJAX_XLA_CACHE") or Path.home() / ".cache" / "imgjax" / "xla")
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
