"""The photo denoiser: the denoising autoencoder of ``imgjax.ae`` in colour, trained on photographs
(``imgjax.photos``) to remove Gaussian noise of any level from 0 to 0.3 without being told the level.

The garment model restores 28x28 grayscale garments; photographs need colour handled jointly (restored
channel by channel, colour noise leaves coloured speckle) and the statistics of natural scenes. Same
network (fully convolutional, so it runs at a photo's own resolution), three channels in and out,
trained on patches of photos, each patch flipped or rotated at random, one in five turned gray (so
grayscale photos, given as three equal channels, are restored as well), and noise drawn at a level
from 0 to 0.3 per patch. Reads top to bottom: config, train step, per-epoch figures, family record.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import ae, corruptions, photos
from .family import Family
from .metrics import psnr

CONFIG = ae.AEConfig(channels=3, widths=(64, 128), depths=(2, 4, 2), corruption_shares=(1.0, 0.0, 0.0))
SIGMA_RANGE = (0.0, 0.3)  # noise levels drawn in training, on [0, 1] pixel values
GRAY_SHARE = 0.2  # of training patches made grayscale (three equal channels, equal noise in each)
SIGMA_WEIGHT_FLOOR = 0.02  # the loss weights each patch by 1 / (sigma + this) (docs/photo.md)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as PIL's convert("L")


# ----------------------------------------------------------------------------- training

def random_orientation(key, images):
    """Each (N, S, S, C) square image flipped and transposed at random: one of its 8 orientations."""
    flip_y, flip_x, transpose = jax.random.bernoulli(key, 0.5, (3, images.shape[0], 1, 1, 1))
    images = jnp.where(flip_y, images[:, ::-1], images)
    images = jnp.where(flip_x, images[:, :, ::-1], images)
    return jnp.where(transpose, images.transpose(0, 2, 1, 3), images)


def noisy_pair(key, images, sigma_range=SIGMA_RANGE, gray_share=GRAY_SHARE):
    """(noisy, clean, sigma) from clean (N, S, S, 3) patches: reoriented, ``gray_share`` of them gray,
    Gaussian noise at a level ``sigma`` (N,) drawn per patch from ``sigma_range``, clipped to [0, 1]
    as a saved photo is."""
    k_orient, k_gray, k_sigma, k_noise = jax.random.split(key, 4)
    clean = random_orientation(k_orient, images)
    gray = jax.random.bernoulli(k_gray, gray_share, (images.shape[0], 1, 1, 1))
    luma = jnp.broadcast_to(clean @ jnp.asarray(LUMA, clean.dtype)[:, None], clean.shape)
    clean = jnp.where(gray, luma, clean)
    noise = jax.random.normal(k_noise, clean.shape, clean.dtype)
    noise = jnp.where(gray, jnp.broadcast_to(noise[..., :1], noise.shape), noise)
    sigma = jax.random.uniform(k_sigma, (images.shape[0],), minval=sigma_range[0], maxval=sigma_range[1])
    return jnp.clip(clean + sigma[:, None, None, None] * noise, 0.0, 1.0), clean, sigma


def loss_fn(model: ae.DenoisingAutoencoder, noisy, clean, sigma):
    """Squared error, each patch's weighted by 1 / (sigma + SIGMA_WEIGHT_FLOOR) (weights of mean 1 in
    the batch): a restoration's error grows with the noise, so plain MSE would spend the network on
    the noisiest patches; this weighting counts each level closer to what it does to PSNR."""
    weights = 1.0 / (sigma + SIGMA_WEIGHT_FLOOR)
    per_patch = jnp.mean((model(noisy) - clean) ** 2, axis=(1, 2, 3))
    return jnp.mean(per_patch * weights / weights.mean())


@nnx.jit
def train_step(training: ae.AETraining, images, labels, key):
    """One step on clean colour patches (B, S, S, 3) in [0, 1]; ``labels`` are unused."""
    noisy, clean, sigma = noisy_pair(key, images)
    loss, grads = nnx.value_and_grad(loss_fn)(training.model, noisy, clean, sigma)
    training.optimizer.update(training.model, grads)
    return {"loss": loss}


# ----------------------------------------------------------------------------- inference

def through_colour(restore_fn, images) -> np.ndarray:
    """``restore_fn`` (colour in, colour out) on (N, H, W, 3) colour or (N, H, W, 1) grayscale images:
    grayscale goes in as three equal channels (as in training) and comes out as their mean."""
    images = np.asarray(images, np.float32)
    if images.shape[-1] == 1:
        return np.asarray(restore_fn(np.repeat(images, 3, axis=-1))).mean(axis=-1, keepdims=True)
    return np.asarray(restore_fn(images))


def restore(model: ae.DenoisingAutoencoder, images) -> np.ndarray:
    """Colour or grayscale photos (N, H, W, C) in [0, 1], any size -> restored, same shape."""
    return through_colour(lambda colour: ae.restore(model, colour), images)


# ----------------------------------------------------------------------------- per-epoch figures

def _validation_pairs(split, sigma: float):
    from .data import to_float
    clean = jnp.asarray(to_float(split.images))
    return corruptions.gaussian_noise(jax.random.key(0), clean, sigma), clean


def _evaluate(training: ae.AETraining, split, _train) -> dict:
    """Mean PSNR on the validation photos' patches at noise levels 0.1 and 0.2."""
    results = {}
    for sigma in (0.1, 0.2):
        noisy, clean = _validation_pairs(split, sigma)
        results[f"psnr_gaussian_{sigma}"] = float(psnr(clean, ae.restore_aligned(training.model, noisy)).mean())
    return results


def _epoch_picture(training: ae.AETraining, split):
    """Six validation patches at noise 0.2: noisy, restored, clean rows."""
    from .images import image_grid
    noisy, clean = _validation_pairs(split, 0.2)
    chosen = slice(0, len(clean), max(1, len(clean) // 6))
    noisy, clean = noisy[chosen][:6], clean[chosen][:6]
    return image_grid(jnp.concatenate([noisy, ae.restore_aligned(training.model, noisy), clean]), rows=3)


FAMILY = Family(
    name="photo",
    model_config=CONFIG,
    defaults={"epochs": 20, "batch_size": 32, "learning_rate": 1e-3},
    create=ae.AETraining,
    train_step=train_step,
    evaluate=_evaluate,
    epoch_picture=_epoch_picture,
    build_model=lambda config: ae.DenoisingAutoencoder(config, rngs=nnx.Rngs(0)),
    serving_model=lambda training: training.model,
    schedule=ae.learning_rate_schedule,
    load_data=lambda train_config: photos.training_splits(train_config.seed),
    dataset="debian-wallpapers+skimage-samples",
    grow_layer=ae.identity_layer,
)
