"""Classical restoration baselines run beside the autoencoder on the same images.

All take (N, H, W, 1) float32 in [0, 1] and return the same shape; ``per_channel`` runs one on colour
images channel by channel, and BM3D takes colour directly.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .images import to_gray


def _gradient(u):
    """Forward differences along H and W, zero past the last row/column: (N,H,W,1) -> (N,H,W,2)."""
    gy = jnp.concatenate([u[:, 1:] - u[:, :-1], jnp.zeros_like(u[:, :1])], axis=1)
    gx = jnp.concatenate([u[:, :, 1:] - u[:, :, :-1], jnp.zeros_like(u[:, :, :1])], axis=2)
    return jnp.concatenate([gy, gx], axis=-1)


def _divergence(p):
    """The negative adjoint of ``_gradient``: (N,H,W,2) -> (N,H,W,1)."""
    py = p[..., :1].at[:, -1].set(0.0)
    px = p[..., 1:].at[:, :, -1].set(0.0)
    return (py - jnp.pad(py, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
            + px - jnp.pad(px, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1])


@partial(jax.jit, static_argnames="iterations")
def tv_denoise(images, weight: float, iterations: int = 100):
    """Total-variation denoising, min_u ||u - f||^2 / 2 + weight * TV(u), by Chambolle's (2004)
    dual projection algorithm (step 1/8, which guarantees convergence)."""
    tau = 0.125

    def body(_, p):
        g = _gradient(_divergence(p) - images / weight)
        return (p + tau * g) / (1.0 + tau * jnp.sqrt(jnp.sum(g**2, axis=-1, keepdims=True)))

    p = jax.lax.fori_loop(0, iterations, body, jnp.zeros(images.shape[:-1] + (2,), images.dtype))
    return jnp.clip(images - weight * _divergence(p), 0.0, 1.0)


def tune_tv_weight(clean, noisy, weights=(0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3)) -> float:
    """The TV weight with the best mean PSNR on (clean, noisy) pairs; tune on training images."""
    from .metrics import psnr
    scores = [float(psnr(clean, tv_denoise(noisy, w)).mean()) for w in weights]
    return weights[int(np.argmax(scores))]


@jax.jit
def median_filter_3x3(images):
    """3x3 median filter with edge padding: the classical remedy for salt-and-pepper noise."""
    h, w = images.shape[1:3]
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    shifts = jnp.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
    return jnp.median(shifts, axis=0)


@partial(jax.jit, static_argnames="iterations")
def harmonic_inpaint(images, mask, iterations: int = 300):
    """Fill masked pixels (mask == 1) by iterated 4-neighbour averaging: the harmonic (Laplace)
    interpolation of the known border. Unlike the autoencoder, it is told where the mask is."""
    known = mask < 0.5
    start = jnp.where(known, images, jnp.mean(images, axis=(1, 2, 3), keepdims=True))

    def body(_, u):
        p = jnp.pad(u, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        average = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4.0
        return jnp.where(known, images, average)

    return jax.lax.fori_loop(0, iterations, body, start)


def channels_as_images(images) -> np.ndarray:
    """(N, H, W, C) -> (N * C, H, W, 1): each channel a grayscale image (in NumPy: no program to
    compile per shape)."""
    n, h, w, c = images.shape
    return np.moveaxis(np.asarray(images), -1, 1).reshape(n * c, h, w, 1)


def per_channel(denoise, images, *args) -> np.ndarray:
    """``denoise`` (made for (N, H, W, 1)) applied to each channel of (N, H, W, C) images."""
    n, h, w, c = images.shape
    return np.moveaxis(np.asarray(denoise(channels_as_images(images), *args)).reshape(n, c, h, w), 1, -1)


def bm3d_denoise(images, sigma: float) -> np.ndarray:
    """BM3D (Dabov et al. 2007; PyPI ``bm3d``) per image, given the true noise level ``sigma``;
    colour (N, H, W, 3) images by its colour variant (CBM3D: ``bm3d_rgb``, which denoises in a
    luminance-chrominance space, as its authors recommend for colour)."""
    import bm3d
    images = np.asarray(images, np.float32)
    if images.shape[-1] == 3:
        return np.stack([np.clip(bm3d.bm3d_rgb(image, sigma_psd=sigma), 0.0, 1.0) for image in images]).astype(np.float32)
    return np.stack([np.clip(bm3d.bm3d(image[..., 0], sigma_psd=sigma), 0.0, 1.0)[..., None] for image in images])


def mean_colour_table(images, bins: int = 64) -> np.ndarray:
    """The gray-to-mean-colour baseline of colourisation, fitted on (N, H, W, 3) colour images in [0, 1]:
    (bins, 3), each gray level's mean colour over the pixels of that luminance (a level never seen
    stays gray)."""
    pixels = np.asarray(images, np.float32).reshape(-1, 3)
    levels = np.minimum((to_gray(pixels) * bins).astype(int), bins - 1)
    counts = np.bincount(levels, minlength=bins)[:, None]
    table = np.stack([np.bincount(levels, pixels[:, c], minlength=bins) for c in range(3)], -1) / np.maximum(counts, 1)
    unseen = counts[:, 0] == 0
    table[unseen] = ((np.arange(bins) + 0.5) / bins)[unseen, None]
    return table.astype(np.float32)


def colour_from_table(table: np.ndarray, gray) -> np.ndarray:
    """Gray (..., C) images (every channel equal) -> colour (..., 3) by ``mean_colour_table``'s table."""
    levels = np.minimum((np.asarray(gray)[..., 0] * len(table)).astype(int), len(table) - 1)
    return np.asarray(table)[levels]
