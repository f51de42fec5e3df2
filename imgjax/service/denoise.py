"""The Denoise tab's action: corrupt an image (Gaussian noise, salt and pepper, a painted mask),
restore it with the autoencoder and with the classical baseline for that corruption, and score both
against the clean image.

Shapes are bucketed so that XLA compiles a bounded set of programs: 28x28 images go straight
through; larger ones are padded to a square of side 64, 128, 256 or 512 (``DENOISE_SIDES``), one or
three channels, and every jitted step (corruption, model, baselines, scores) runs at that shape.
"""

from __future__ import annotations

import copy
import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from .. import baselines, checkpoint, corruptions
from ..ae import restore_aligned
from ..images import example_garment, to_gray, to_uint8
from ..metrics import ssim_map
from ..user_input import MAX_SEED, InputError, check_choice, check_int, check_range

DENOISE_MAX_SIDE = 512  # larger images are downscaled to this long side before denoising
DENOISE_SIDES = (64, 128, 256, DENOISE_MAX_SIDE)
GAUSSIAN_RANGE = (0.0, 0.5)
SALT_PEPPER_RANGE = (0.0, 0.5)
GAUSSIAN, SALT_PEPPER, MASK = "Gaussian noise", "Salt and pepper", "Brush mask"
CORRUPTIONS = (GAUSSIAN, SALT_PEPPER, MASK)


@dataclasses.dataclass
class Restoration:
    corrupted: np.ndarray  # uint8, gray (H, W) or colour (H, W, 3)
    restored: np.ndarray
    baseline: np.ndarray
    baseline_name: str
    figures: list[list]  # rows of [name, PSNR dB, SSIM] against the clean image; empty without one
    note: str  # how the image was processed


class DenoiseTab:
    """The shipped autoencoder, the baselines' tuned settings from its card, and the tab's action."""

    def __init__(self, autoencoder, card: dict):
        self.card = card
        self.tv_weights = tv_weights_from_card(card)
        self._restore_fn = nnx.cached_partial(restore_aligned, autoencoder)

    def with_model(self, autoencoder, card: dict) -> DenoiseTab:
        """The same action on another autoencoder (a Lab run's), beside the same tuned baselines."""
        tab = copy.copy(self)
        tab.card, tab._restore_fn = card, nnx.cached_partial(restore_aligned, autoencoder)
        return tab

    def warm_up(self) -> None:
        """Compile every corruption at 28x28 (larger sizes compile on first use, one program per bucket)."""
        mask = np.zeros((28, 28), np.float32)
        mask[10:16, 10:16] = 1
        for kind in CORRUPTIONS:
            self.denoise(example_garment(), kind, 0.2, 0, mask=mask)

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
