"""The Denoise tab's action: corrupt an image (Gaussian noise, salt and pepper, a painted mask),
restore it with a denoising model and with the classical baseline for that corruption, and score
both against the clean image; on request, BM3D beside them.

Two models: the garment model (``imgjax.ae``: 28x28 grayscale garments, trained on all three
corruptions, restoring colour channel by channel) and the photo model (``imgjax.photo``: colour photos
restored jointly, trained on Gaussian noise). "Automatic" sends Fashion-MNIST-sized images to the
first and Gaussian noise on anything else to the second. Another dataset's tab (the emoji) has one
colour model, restoring the channels jointly, which also colours gray pictures ("Gray (colourise)").

Shapes are bucketed so that XLA compiles a bounded set of programs: 28x28 images go straight
through; larger ones are padded to a square of side 64, 128, 256 or 512 (``DENOISE_SIDES``), one or
three channels, and every jitted step (corruption, model, baselines, scores) runs at that shape.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from .. import baselines, checkpoint, corruptions, datasets
from ..ae import restore_aligned
from ..images import example_garment, to_gray, to_uint8
from ..metrics import ssim_map
from ..photo import through_colour
from ..serving import compiling, frozen
from ..user_input import MAX_SEED, InputError, check_choice, check_int, check_range

DENOISE_MAX_SIDE = 512  # larger images are downscaled to this long side before denoising
DENOISE_SIDES = (64, 128, 256, DENOISE_MAX_SIDE)
# Restorations at the largest side run one at a time: each holds ~110 MB (the server's memory budget).
_one_at_the_largest_side = threading.Lock()
GAUSSIAN_RANGE = (0.0, 0.5)
SALT_PEPPER_RANGE = (0.0, 0.5)
GAUSSIAN, SALT_PEPPER, MASK, GRAY = "Gaussian noise", "Salt and pepper", "Brush mask", "Gray (colourise)"
CORRUPTIONS = (GAUSSIAN, SALT_PEPPER, MASK, GRAY)
AUTOMATIC, GARMENT_MODEL, PHOTO_MODEL = "Automatic", "Garment model", "Photo model"
DENOISERS = (AUTOMATIC, GARMENT_MODEL, PHOTO_MODEL)
GARMENT_SIZE = (28, 28)  # Fashion-MNIST's: what "Automatic" gives the garment model
BM3D_MAX_PIXELS = 256 * 256  # BM3D runs in the page up to this size (a few seconds on 2 cores)


@dataclasses.dataclass
class Restoration:
    corrupted: np.ndarray  # uint8, gray (H, W) or colour (H, W, 3)
    restored: np.ndarray
    baseline: np.ndarray
    baseline_name: str
    figures: list[list]  # rows of [name, PSNR dB, SSIM] against the clean image; empty without one
    note: str  # how the image was processed


class DenoiseTab:
    """The shipped denoising models, the baselines' tuned settings from their cards, and the tab's
    actions, on the dataset the autoencoder's card names. Without a photo model (``photo_model``
    None), every image goes to the autoencoder, which restores colour jointly where it was trained
    in colour (and then may colour gray pictures, with a gray-to-mean-colour baseline beside it)."""

    def __init__(self, autoencoder, card: dict, photo_model=None, photo_card: dict | None = None):
        self.card = card
        self.dataset = datasets.get(card.get("dataset", "fashion-mnist"))
        self.joint = card["config"].get("channels", 1) == 3  # the model takes colour jointly
        colourise = card.get("metrics", {}).get("colourise", {})
        self.colour_table = np.asarray(colourise["colour_table"], np.float32) if "colour_table" in colourise else None
        self.colourises = self.joint and card["config"].get("gray_share", 0.0) > 0 and self.colour_table is not None
        self.tv_weights = tv_weights_from_card(card)
        self.photo_tv_weights = tv_weights_from_card(photo_card, "photo") if photo_model is not None else None
        self._restore_fn = frozen(restore_aligned, autoencoder)
        self._photo_fn = frozen(restore_aligned, photo_model) if photo_model is not None else None
        self.compiling = compiling()  # held while compiled in the background (``Studio.warm_up``)
        self.photos_to_photo_model = True  # what AUTOMATIC does with photos
        # how notes (and, without "the", figures) name the autoencoder: "the garment model"
        self.garment_model_name = f"the {self.dataset.noun.removesuffix('s')} model"

    @property
    def has_photo_model(self) -> bool:
        return self._photo_fn is not None

    def with_model(self, autoencoder, card: dict) -> DenoiseTab:
        """The same actions with another garment model (a Lab run's), beside the same photo model;
        AUTOMATIC gives that model every image (the visitor chose it)."""
        tab = copy.copy(self)
        tab.card, tab._restore_fn = card, frozen(restore_aligned, autoencoder)
        tab.photos_to_photo_model = False
        tab.garment_model_name = "your Lab model"
        return tab

    def warm_up(self) -> None:
        """Compile every corruption at the dataset's side (larger sizes compile on first use, one program
        per bucket)."""
        side = self.dataset.side
        mask = np.zeros((side, side), np.float32)
        mask[10:16, 10:16] = 1
        example = np.asarray(Image.fromarray(to_uint8(example_garment())).resize((side, side)), np.float32) / 255
        for kind in CORRUPTIONS if self.colourises else CORRUPTIONS[:-1]:
            self.denoise(example, kind, 0.2, 0, mask=mask)

    def denoiser_for(self, rgb: np.ndarray, kind: str, choice: str) -> str:
        """The model ``choice`` names; for AUTOMATIC, the photo model for Gaussian noise on anything but
        a 28x28 image (it is trained on Gaussian noise only), else the garment model (or the Lab's)."""
        choice = check_choice("Denoiser", choice, DENOISERS)
        if choice == PHOTO_MODEL and self._photo_fn is None:
            raise InputError(f"There is no photo model for {self.dataset.noun} here; choose Automatic.")
        if choice != AUTOMATIC:
            return choice
        photo_like = rgb.shape[:2] != GARMENT_SIZE and kind == GAUSSIAN and self.photos_to_photo_model
        return PHOTO_MODEL if photo_like and self._photo_fn is not None else GARMENT_MODEL

    def denoise(self, rgb: np.ndarray, kind: str, level, seed, mask: np.ndarray | None = None,
                already_noisy: bool = False, original_size: tuple[int, int] | None = None,
                denoiser: str = AUTOMATIC) -> Restoration:
        """Corrupt a clean image (unless ``already_noisy``) and restore it with the chosen model and
        with the classical baseline for that corruption; figures against the clean image.

        The garment model restores colour one channel at a time, the photo model all three at once;
        images with a long side over 512 pixels are first downscaled to it; both models, being fully
        convolutional, run at the image's own resolution (padded to its bucket).
        ``original_size`` (width, height) is the uploaded file's, when the caller already reduced it."""
        prepared = self._prepare(rgb, kind, level, seed, mask, original_size, denoiser)
        largest = prepared.clean.shape[1] == DENOISE_MAX_SIDE
        with _one_at_the_largest_side if largest else contextlib.nullcontext():
            return self._restoration(prepared, kind, already_noisy)

    def _restoration(self, prepared: Prepared, kind: str, already_noisy: bool) -> Restoration:
        """``denoise`` on its prepared image: the model's and the baseline's restorations, and figures."""
        clean, corrupted, h, w = prepared.clean, prepared.corrupted, prepared.height, prepared.width
        if already_noisy:
            corrupted = clean
        photo = prepared.denoiser == PHOTO_MODEL
        if kind == GRAY:
            restored = prepared.padded(self._colourise(prepared.image(corrupted)))
        else:
            restored = self.restore_photo(corrupted) if photo else self._restore(corrupted)
        if kind == GRAY:
            baseline_name = f"gray to mean colour (each gray level the mean colour of training {self.dataset.noun} at it)"
            baseline = baselines.colour_from_table(self.colour_table, corrupted)
        elif kind == GAUSSIAN:
            # The weights tuned at each noise level, interpolated (and held beyond them).
            weight = float(np.interp(prepared.level, *(self.photo_tv_weights if photo else self.tv_weights)))
            baseline_name = f"total variation (weight {weight:.2f}, tuned on {'photos' if photo else 'garments'})"
            baseline = baselines.per_channel(baselines.tv_denoise, corrupted, weight)
        elif kind == SALT_PEPPER:
            baseline_name = "3x3 median filter"
            baseline = baselines.median_filter_3x3(corrupted)
        else:
            baseline_name = "harmonic inpainting (told the mask)"
            baseline = baselines.harmonic_inpaint(corrupted, prepared.mask)
        baseline = np.asarray(baseline)

        figures = []
        model_name = "the photo model" if photo else self.garment_model_name
        if not already_noisy:
            figures = self._figures(clean, [("corrupted", corrupted), (baseline_name, baseline),
                                            (model_name.removeprefix("the "), restored)], h, w)
        colour_note = ("colour, restored jointly" if photo or self.joint else "colour: each channel restored separately") \
            if prepared.colour else "grayscale"
        note = (", ".join([*prepared.notes, colour_note]) + f"; restored by {model_name}, fully convolutionally "
                "at this resolution.")
        return Restoration(prepared.picture(corrupted), prepared.picture(restored), prepared.picture(baseline),
                           baseline_name, figures, note)

    def bm3d(self, rgb: np.ndarray, level, seed, already_noisy: bool = False,
             original_size: tuple[int, int] | None = None, denoiser: str = AUTOMATIC) -> tuple[np.ndarray, list]:
        """BM3D (CBM3D for colour) told the noise level, on the image ``denoise`` corrupts with Gaussian
        noise at ``level`` and ``seed`` (the same noise, for the same ``denoiser``): (picture, its row of
        figures, empty when ``already_noisy``). Refused above BM3D_MAX_PIXELS: it takes seconds per
        256x256 image where the models take milliseconds."""
        prepared = self._prepare(rgb, GAUSSIAN, level, seed, None, original_size, denoiser)
        if prepared.height * prepared.width > BM3D_MAX_PIXELS:
            raise InputError(f"BM3D runs here on images of at most {BM3D_MAX_PIXELS:,} pixels (256x256); this one "
                             f"has {prepared.height * prepared.width:,}: `imgjax eval photo` runs it on larger photos.")
        corrupted = prepared.clean if already_noisy else prepared.corrupted
        restored = prepared.padded(baselines.bm3d_denoise(prepared.image(corrupted)[None], max(prepared.level, 1e-3))[0])
        name = f"BM3D (told the noise level, {prepared.level:g})"
        figures = [] if already_noisy else self._figures(prepared.clean, [(name, restored)], prepared.height,
                                                         prepared.width)
        return prepared.picture(restored), figures

    def _prepare(self, rgb, kind, level, seed, mask, original_size, denoiser) -> Prepared:
        """Check the inputs, downscale, pad to the bucket and corrupt: what ``denoise`` and ``bm3d``
        share. The garment model's images are (channels, S, S, 1); the photo model's (1, S, S, C)."""
        check_choice("Corruption", kind, CORRUPTIONS)
        if kind == GRAY and not self.colourises:
            raise InputError(f"The {self.dataset.noun.removesuffix('s')} model does not colour pictures: choose "
                             "another corruption (the emoji model colours gray pictures).")
        limits = GAUSSIAN_RANGE if kind == GAUSSIAN else SALT_PEPPER_RANGE
        level = check_range("Noise level" if kind == GAUSSIAN else "Amount", level, *limits)
        seed = check_int("Seed", seed, 0, MAX_SEED)
        denoiser = self.denoiser_for(rgb, kind, denoiser)
        original_size = original_size or (rgb.shape[1], rgb.shape[0])
        if max(rgb.shape[:2]) > DENOISE_MAX_SIDE:
            scale = DENOISE_MAX_SIDE / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            rgb = np.stack([np.asarray(Image.fromarray(rgb[..., c], mode="F").resize(size, Image.BOX)) for c in range(3)], -1)
        h, w = rgb.shape[:2]
        notes = [f"{original_size[0]}x{original_size[1]}"]
        if (w, h) != tuple(original_size):
            notes.append(f"downscaled to {w}x{h} (the long side is capped at {DENOISE_MAX_SIDE} pixels)")
        # Colourisation answers in colour whatever it is given; scores need a colour original.
        colour = bool(np.abs(rgb - rgb.mean(-1, keepdims=True)).max() > 2 / 255) or kind == GRAY
        channels = rgb if colour else to_gray(rgb)[..., None]
        # The photo model (and a colour autoencoder) take the channels together; the garment model as
        # a batch of grayscale images.
        joint = denoiser == PHOTO_MODEL or self.joint
        clean = channels[None] if joint else np.moveaxis(channels, -1, 0)[..., None]
        clean = pad_to_bucket(np.clip(clean, 0.0, 1.0).astype(np.float32))

        if kind == MASK:
            if mask is None or not np.any(mask):
                raise InputError("Paint over the part of the image to mask (Brush mask), or choose another corruption.")
            mask = np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").resize((w, h), Image.NEAREST)) > 0.5
            mask = np.broadcast_to(_pad_zeros(mask, clean.shape[1:3]), clean.shape).astype(np.float32)
        else:
            mask = np.zeros_like(clean)
        corrupted = np.asarray(_corrupt(kind, jax.random.key(seed), clean, level, mask))
        return Prepared(clean, corrupted, mask, h, w, colour, level, denoiser, notes, joint)

    def _restore(self, padded: np.ndarray) -> np.ndarray:
        """A colour autoencoder: (1, S, S, C) restored jointly (grayscale through colour). Else (N, S, S, 1)
        restored one channel at a time: a 512x512 channel's activations take ~110 MB, and three at
        once would triple a request's memory."""
        if self.joint:
            return through_colour(self._restore_fn, padded)
        return np.concatenate([np.asarray(self._restore_fn(channel[None])) for channel in padded])

    def _colourise(self, gray: np.ndarray) -> np.ndarray:
        """(H, W, 3) gray (equal channels) -> colour: the model colours the picture at the dataset's
        side (it learnt colour from whole emoji of that size), and its colour, less its luminance, is
        laid over the picture's own gray at full size."""
        side = self.dataset.side
        resized = lambda image, size: np.stack([np.asarray(Image.fromarray(image[..., c], mode="F").resize(
            size, Image.BILINEAR)) for c in range(image.shape[-1])], -1)
        small = resized(gray.astype(np.float32), (side, side))
        coloured = through_colour(self._restore_fn, small[None])[0]
        chroma = coloured - to_gray(coloured)[..., None]
        return np.clip(gray + resized(chroma.astype(np.float32), (gray.shape[1], gray.shape[0])), 0.0, 1.0)

    def restore_photo(self, padded: np.ndarray) -> np.ndarray:
        """(1, S, S, C), sides a multiple of 4 -> restored by the photo model (grayscale through colour)."""
        return through_colour(self._photo_fn, padded)

    @staticmethod
    def _figures(clean, named_estimates, h, w) -> list[list]:
        """Rows of [name, PSNR dB, SSIM] (SSIM only where the image holds its 11x11 window)."""
        psnrs, ssims = _quality(clean, np.stack([estimate for _, estimate in named_estimates]), h, w)
        with_ssim = min(h, w) >= 11
        return [[name, round(float(p_value), 2), round(float(s_value), 3) if with_ssim else None]
                for (name, _), p_value, s_value in zip(named_estimates, psnrs, ssims)]


@dataclasses.dataclass
class Prepared:
    """An image ready for the models: clean and corrupted, padded to its bucket."""

    clean: np.ndarray
    corrupted: np.ndarray
    mask: np.ndarray
    height: int
    width: int
    colour: bool
    level: float
    denoiser: str
    notes: list[str]
    joint: bool  # the channels in one image (1, S, S, C), else a batch of gray ones (C, S, S, 1)

    def image(self, batch: np.ndarray) -> np.ndarray:
        """The padded batch back to the image's own size: (H, W, C) floats."""
        if self.joint:
            return batch[0, :self.height, :self.width]
        return np.moveaxis(batch[:, :self.height, :self.width, 0], 0, -1)

    def padded(self, image: np.ndarray) -> np.ndarray:
        """The inverse of ``image``: (H, W, C) into the model's batch layout, padded with zeros."""
        batch = np.zeros_like(self.clean)
        if self.joint:
            batch[0, :self.height, :self.width] = image
        else:
            batch[:, :self.height, :self.width, 0] = np.moveaxis(image, -1, 0)
        return batch

    def picture(self, batch: np.ndarray) -> np.ndarray:
        """The padded batch as a uint8 picture of the image's own size: (H, W) or (H, W, 3)."""
        image = to_uint8(self.image(batch))
        return image if self.colour else image[..., 0]


@partial(jax.jit, static_argnames="kind")
def _corrupt(kind: str, key, clean, level, mask):
    if kind == GAUSSIAN:
        return corruptions.gaussian_noise(key, clean, level)
    if kind == SALT_PEPPER:
        return corruptions.salt_and_pepper(key, clean, level)
    if kind == GRAY:
        return corruptions.grayscale(clean)
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

    images = clean.shape[0] * clean.shape[-1]  # the mean runs over every image and channel

    def scores(estimate):
        mse = jnp.sum(jnp.where(pixels, (clean - estimate) ** 2, 0.0)) / (jnp.sum(pixels) * images)
        structural = jnp.sum(jnp.where(windows, ssim_map(clean, estimate), 0.0)) / jnp.maximum(
            jnp.sum(windows) * images, 1)
        return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-12)), structural

    return jax.vmap(scores)(estimates)


def pad_to_bucket(images: np.ndarray) -> np.ndarray:
    """Pad (N, H, W, C) by reflection to the smallest square of ``DENOISE_SIDES`` that holds it (28x28
    and 32x32, the datasets' own sides, stay as they are), so that uploads of any size share a few
    compiled programs."""
    h, w = images.shape[1:3]
    if (h, w) in ((28, 28), (32, 32)):
        return images
    side = next(s for s in DENOISE_SIDES if s >= max(h, w))
    return np.pad(images, ((0, 0), (0, side - h), (0, side - w), (0, 0)), mode="symmetric")


def _pad_zeros(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) -> (1, *shape, 1): the mask in the top-left corner of a square of zeros."""
    out = np.zeros(shape, np.float32)
    out[:mask.shape[0], :mask.shape[1]] = mask
    return out[None, ..., None]


def tv_weights_from_card(card: dict, family: str = "ae") -> tuple[list[float], list[float]]:
    """(sigmas, weights): the total-variation weights ``imgjax eval`` tuned for each Gaussian noise
    level (on training garments for "ae", on the validation photos for "photo"), from the card."""
    metrics = card.get("metrics", {})
    weight = lambda row: row["tv"]["weight"] if family == "ae" else row["tv_weight"]
    pairs = sorted((float(k.split("_")[1]), weight(v)) for k, v in metrics.items() if k.startswith("gaussian_"))
    if not pairs:
        raise checkpoint.CheckpointError(f"{family}.json: no tuned TV weights; run `imgjax eval {family} --write-card`")
    return [p[0] for p in pairs], [p[1] for p in pairs]
