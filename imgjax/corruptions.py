"""Image corruptions shared by autoencoder training, evaluation and the app.

All take and return (N, H, W, 1) float32 images in [0, 1]; every function is pure and jit-friendly,
drawing its randomness from an explicit key so a (seed, image) pair always gives the same result.
"""

import jax
import jax.numpy as jnp

KINDS = ("gaussian", "salt_pepper", "mask")


def gaussian_noise(key: jax.Array, images: jnp.ndarray, sigma) -> jnp.ndarray:
    """Add N(0, sigma^2) noise, then clip to [0, 1]. ``sigma`` is a scalar or (N,) per image."""
    sigma = jnp.reshape(jnp.asarray(sigma, images.dtype), (-1, 1, 1, 1))
    return jnp.clip(images + sigma * jax.random.normal(key, images.shape, images.dtype), 0.0, 1.0)


def salt_and_pepper(key: jax.Array, images: jnp.ndarray, amount) -> jnp.ndarray:
    """Set a fraction ``amount`` of pixels to 0 or 1 (half each). Scalar or (N,) per image."""
    amount = jnp.reshape(jnp.asarray(amount, images.dtype), (-1, 1, 1, 1))
    hit_key, value_key = jax.random.split(key)
    hit = jax.random.uniform(hit_key, images.shape) < amount
    salt = jax.random.bernoulli(value_key, 0.5, images.shape).astype(images.dtype)
    return jnp.where(hit, salt, images)


def random_box_masks(key: jax.Array, shape: tuple, n_boxes: int = 3, max_size: int = 12) -> jnp.ndarray:
    """(N, H, W, 1) float32 masks, 1 where pixels are missing: ``n_boxes`` boxes of side 4..max_size."""
    n, h, w, _ = shape
    k_y, k_x, k_h, k_w = jax.random.split(key, 4)
    top = jax.random.randint(k_y, (n, n_boxes), 0, h)
    left = jax.random.randint(k_x, (n, n_boxes), 0, w)
    height = jax.random.randint(k_h, (n, n_boxes), 4, max_size + 1)
    width = jax.random.randint(k_w, (n, n_boxes), 4, max_size + 1)
    rows = jnp.arange(h)[None, None, :, None]
    cols = jnp.arange(w)[None, None, None, :]
    inside = ((rows >= top[..., None, None]) & (rows < (top + height)[..., None, None])
              & (cols >= left[..., None, None]) & (cols < (left + width)[..., None, None]))
    return inside.any(axis=1)[..., None].astype(jnp.float32)


def apply_mask(images: jnp.ndarray, mask: jnp.ndarray, fill: float = 0.0) -> jnp.ndarray:
    """Replace masked pixels (mask == 1) by ``fill``."""
    return jnp.where(mask > 0.5, fill, images)


def grayscale(images: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, 3) colour -> the same shape in gray: each pixel's luminance (ITU-R 601 weights) in
    all three channels, the input of colourisation."""
    luminance = images @ jnp.asarray([0.299, 0.587, 0.114], images.dtype)
    return jnp.repeat(luminance[..., None], images.shape[-1], axis=-1)


def random_corruption(key: jax.Array, images: jnp.ndarray, shares=(1 / 3, 1 / 3, 1 / 3),
                      gray_share: float = 0.0) -> jnp.ndarray:
    """The training mix: each image gets one of Gaussian noise (sigma ~ U[0.05, 0.4]), salt-and-pepper
    (amount ~ U[0.02, 0.3]) or box masking, drawn with probabilities ``shares``, so one model learns
    to restore all three; with ``gray_share`` (colour only), that share of the images is turned gray
    instead, so the model also learns to colour them."""
    n = images.shape[0]
    k_kind, k_sigma, k_amount, k_g, k_sp, k_mask = jax.random.split(key, 6)
    kind = jax.random.choice(k_kind, 3, (n, 1, 1, 1), p=jnp.asarray(shares))
    noisy = gaussian_noise(k_g, images, jax.random.uniform(k_sigma, (n,), minval=0.05, maxval=0.4))
    peppered = salt_and_pepper(k_sp, images, jax.random.uniform(k_amount, (n,), minval=0.02, maxval=0.3))
    masked = apply_mask(images, random_box_masks(k_mask, images.shape))
    corrupted = jnp.select([kind == 0, kind == 1], [noisy, peppered], masked)
    if not gray_share:  # a Python float: the garments' mix draws exactly as before
        return corrupted
    return jnp.where(turned_gray(key, n, gray_share), grayscale(images), corrupted)


def turned_gray(key: jax.Array, n: int, gray_share: float) -> jnp.ndarray:
    """(n, 1, 1, 1) booleans: which of ``n`` images ``random_corruption(key, ...)`` turns gray."""
    return jax.random.bernoulli(jax.random.fold_in(key, 1), gray_share, (n, 1, 1, 1))
