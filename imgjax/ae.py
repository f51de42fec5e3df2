"""Denoising autoencoder: a small fully convolutional U-Net trained on a mix of corruptions (Gaussian
noise, salt-and-pepper, masked boxes) so that one model restores all of them.

Reads top to bottom: config, model, loss, jit-compiled train step, inference. Being fully
convolutional, the model restores images of any size that is a multiple of 4; ``restore`` pads
other sizes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import corruptions
from .family import Family, scheduled_optimizer
from .layers import (
    avg_pool_2x2,
    compute_dtype,
    conv_by_taps,
    depth_to_space,
    space_to_depth,
)
from .metrics import psnr


@dataclasses.dataclass(frozen=True)
class AEConfig:
    channels: int = 1  # 1 for the grayscale garments, 3 for colour photos (imgjax.photo)
    widths: tuple[int, int] = (64, 128)  # channels at half and at quarter resolution
    depths: tuple[int, int, int] = (2, 3, 2)  # 3x3 convolutions: encoder half, quarter, decoder half
    # Training mix: Gaussian noise, salt-and-pepper, masked boxes. Gaussian gets about two thirds:
    # it is the hardest of the three to restore and the one the quality target is measured on
    # (docs/results.md).
    corruption_shares: tuple[float, float, float] = (0.65, 0.175, 0.175)
    # Colour only: this share of the training images is turned gray instead of corrupted, and the
    # model learns to colour it back (``corruptions.grayscale``). 0: none (garments, photos).
    gray_share: float = 0.0
    # Colour only: weight of the distance between the shipped classifier's features of each picture
    # coloured back and of the original (a perceptual loss on the gray share; 0: pixels alone).
    colour_feature_weight: float = 0.0


# ----------------------------------------------------------------------------- model

class DenoisingAutoencoder(nnx.Module):
    """(N, H, W, C) float32 in [0, 1], H and W multiples of 4 -> restored (N, H, W, C) in [0, 1],
    C = ``config.channels``.

    Like FFDNet (Zhang et al. 2018), the image is first rearranged into four half-resolution
    sub-images (space-to-depth), so no convolution runs at full resolution: on XLA:CPU the weight
    gradient of a full-resolution 3x3 convolution costs ~7x its forward pass, and this layout trains
    a 5x larger network faster than a 32-channel full-resolution one. Then a two-level U-Net: 3x3
    convolutions at half resolution, average pooling, wider ones at quarter resolution, a 1x1
    convolution and depth-to-space back up plus a skip from the encoder, 3x3 convolutions, and a last
    convolution whose 4C channels depth-to-space back to full resolution. The network predicts a
    correction added to its input (residual learning, Zhang et al. 2017 "DnCNN"), which trains faster
    than predicting the clean image outright.
    """

    def __init__(self, config: AEConfig, *, rngs: nnx.Rngs, dtype=None):
        half, quarter = config.widths
        n_half, n_quarter, n_decode = config.depths
        conv = lambda cin, cout, k=3: nnx.Conv(cin, cout, (k, k), dtype=dtype, rngs=rngs)
        self.encode_half = nnx.List([conv(4 * config.channels, half)] + [conv(half, half) for _ in range(n_half - 1)])
        self.encode_quarter = nnx.List([conv(half, quarter)] + [conv(quarter, quarter) for _ in range(n_quarter - 1)])
        self.upsample = conv(quarter, 4 * half, k=1)
        self.decode_half = nnx.List([conv(half, half) for _ in range(n_decode)])
        # Zero-initialised so the untrained network is the identity, the natural start for residual learning.
        # 4C output channels: computed by matrix products, faster than XLA:CPU's convolution at
        # this shape (see conv_by_taps).
        self.output = nnx.Conv(half, 4 * config.channels, (3, 3), kernel_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs,
                               conv_general_dilated=conv_by_taps)

    def __call__(self, images):
        h = space_to_depth(images * 2.0 - 1.0)
        for layer in self.encode_half:
            h = nnx.relu(layer(h))
        skip = h
        h = avg_pool_2x2(h)
        for layer in self.encode_quarter:
            h = nnx.relu(layer(h))
        h = nnx.relu(depth_to_space(self.upsample(h)) + skip)
        for layer in self.decode_half:
            h = nnx.relu(layer(h))
        correction = depth_to_space(self.output(h)).astype(jnp.float32)
        return jnp.clip(images + correction, 0.0, 1.0)


def identity_layer(name: str, shape: tuple):
    """Starting values for a layer of ``encode_half``, ``encode_quarter`` or ``decode_half`` that a
    shallower checkpoint lacks (``imgjax train --set depths=... --init-from``): the identity, a 3x3
    kernel whose centre tap is the identity matrix, and no bias. Each such layer takes the output of
    a ReLU, so it passes that non-negative input through unchanged: the grown network starts out
    computing exactly what the checkpoint's did (Net2DeeperNet, Chen et al. 2016). None otherwise."""
    group, _, leaf = name.rpartition("/")
    if group.split("/")[0] not in ("encode_half", "encode_quarter", "decode_half"):
        return None
    if leaf == "bias":
        return np.zeros(shape, np.float32)
    if leaf == "kernel" and len(shape) == 4 and shape[:2] == (3, 3) and shape[2] == shape[3]:
        kernel = np.zeros(shape, np.float32)
        kernel[1, 1] = np.eye(shape[2], dtype=np.float32)
        return kernel
    return None


# ----------------------------------------------------------------------------- loss

def loss_fn(model: DenoisingAutoencoder, corrupted, clean, classifier=None, gray=None, feature_weight: float = 0.0):
    """Mean squared error to the clean image (minimising it maximises PSNR); with a ``classifier``,
    plus ``feature_weight`` times the mean distance between its features of the restored and the
    clean pictures over those turned ``gray`` (N,): colours it names the picture by, not only the
    average colour a pixel loss settles on."""
    restored = model(corrupted)
    pixel = jnp.mean((restored - clean) ** 2)
    if classifier is None:
        return pixel
    distance = jnp.mean((classifier.features(restored) - jax.lax.stop_gradient(classifier.features(clean))) ** 2, -1)
    return pixel + feature_weight * jnp.sum(jnp.where(gray, distance, 0.0)) / jnp.maximum(jnp.sum(gray), 1)


# ----------------------------------------------------------------------------- training

def learning_rate_schedule(config: AEConfig, train_config, total_steps: int):
    """One-cycle, as for the classifier: warm-up, then cosine decay."""
    return optax.cosine_onecycle_schedule(total_steps, train_config.learning_rate)


class AETraining(nnx.Module):
    def __init__(self, config: AEConfig, train_config, total_steps: int | None):
        self.model = DenoisingAutoencoder(config, rngs=nnx.Rngs(train_config.seed),
                                          dtype=compute_dtype(train_config.precision))
        schedule = lambda steps: learning_rate_schedule(config, train_config, steps)
        self.optimizer = nnx.Optimizer(self.model, scheduled_optimizer(optax.adam, schedule, total_steps),
                                       wrt=nnx.Param)
        self.corruption_shares = config.corruption_shares
        self.gray_share = config.gray_share
        self.colour_feature_weight = config.colour_feature_weight
        from .checkpoint import default_weights, load_model
        # The dataset's shipped classifier, frozen, for the colour feature loss (None: pixels alone).
        self.classifier = (load_model("cnn", default_weights("cnn", train_config.dataset))[0]
                           if config.colour_feature_weight else None)


@nnx.jit
def train_step(training: AETraining, images, labels, key):
    """One step on clean images (B, H, W, 1) in [0, 1]; each gets a random corruption from the mix.
    ``labels`` are unused (the loop's common signature)."""
    corrupted = corruptions.random_corruption(key, images, training.corruption_shares, training.gray_share)
    gray = (None if training.classifier is None
            else corruptions.turned_gray(key, images.shape[0], training.gray_share)[:, 0, 0, 0])
    loss, grads = nnx.value_and_grad(loss_fn)(training.model, corrupted, images, training.classifier, gray,
                                              training.colour_feature_weight)
    training.optimizer.update(training.model, grads)
    return {"loss": loss}


# ----------------------------------------------------------------------------- inference

SIZE_MULTIPLE = 4  # two factor-2 downsamplings


@nnx.jit
def restore_aligned(model: DenoisingAutoencoder, images):
    """Restore (N, H, W, C) images whose sides are multiples of ``SIZE_MULTIPLE`` (no padding)."""
    return model(images)


def restore(model: DenoisingAutoencoder, images) -> np.ndarray:
    """Restore (N, H, W, C) float32 images in [0, 1] of any size; sizes that are not multiples of 4
    are padded by reflection and cropped back."""
    images = np.asarray(images, np.float32)
    h, w = images.shape[1:3]
    pad = ((0, 0), (0, -h % SIZE_MULTIPLE), (0, -w % SIZE_MULTIPLE), (0, 0))
    padded = np.pad(images, pad, mode="reflect" if min(h, w) > SIZE_MULTIPLE else "edge")
    return np.asarray(restore_aligned(model, padded))[:, :h, :w]


# ----------------------------------------------------------------------------- plugging into the loop

EPOCH_EVAL_IMAGES = 1000


def _evaluate(training: AETraining, split, _train) -> dict:
    from .data import to_float
    clean = jnp.asarray(to_float(split.images[:EPOCH_EVAL_IMAGES]))
    noisy = corruptions.gaussian_noise(jax.random.key(0), clean, 0.2)
    figures = {"psnr_gaussian_0.2": float(psnr(clean, restore_aligned(training.model, noisy)).mean())}
    if training.gray_share:
        figures["psnr_colourised"] = float(psnr(clean, restore_aligned(training.model, corruptions.grayscale(clean))).mean())
    return figures


def corrupted_examples(clean, seed: int = 0) -> dict[str, jnp.ndarray]:
    """The fixed corruptions used for pictures: Gaussian 0.2, salt-and-pepper 0.1, masked boxes."""
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        "gaussian 0.2": corruptions.gaussian_noise(keys[0], clean, 0.2),
        "salt & pepper 0.1": corruptions.salt_and_pepper(keys[1], clean, 0.1),
        "masked boxes": corruptions.apply_mask(clean, corruptions.random_box_masks(keys[2], clean.shape)),
    }


def _epoch_picture(training: AETraining, split):
    """Rows of 10 test images: for each corruption kind, corrupted / restored / clean."""
    from .data import to_float
    from .images import image_grid
    clean = jnp.asarray(to_float(split.images[:10]))
    rows = []
    for corrupted in corrupted_examples(clean).values():
        rows += [corrupted, restore_aligned(training.model, corrupted), clean]
    return image_grid(jnp.concatenate(rows), rows=len(rows))


FAMILY = Family(
    name="ae",
    model_config=AEConfig(),
    defaults={"epochs": 16, "batch_size": 128, "learning_rate": 2e-3},
    create=AETraining,
    train_step=train_step,
    evaluate=_evaluate,
    epoch_picture=_epoch_picture,
    build_model=lambda config: DenoisingAutoencoder(config, rngs=nnx.Rngs(0)),
    serving_model=lambda training: training.model,
    schedule=learning_rate_schedule,
    grow_layer=identity_layer,
)
