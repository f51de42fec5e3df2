"""Small array operations shared by the model families.

Why depth-to-space and not transposed convolutions: on XLA:CPU a 4x4 stride-2 transposed convolution
measured ~9x slower than PyTorch's, while a 3x3 convolution followed by depth-to-space (sub-pixel
upsampling, Shi et al. 2016) is several times faster and learns the same family of upsamplers.

Why pooling by reshaping: ``nnx.max_pool`` is a reduce-window whose gradient JAX computes by
tracking the argmax of every window in four extra index arrays; on XLA:CPU that took ~40% of the
classifier's training step. A 2x2 window with stride 2 tiles the image, so the same maximum is a
plain reduction over a reshaped axis, whose gradient is one fused compare-and-select.
"""

import jax.numpy as jnp


def compute_dtype(precision: str):
    """The dtype convolutions and matmuls compute in for ``--precision``; ``None`` keeps float32.
    Parameters stay float32 either way (Flax's ``param_dtype``), so the optimizer updates float32
    master weights, and normalisation, losses and outputs stay float32."""
    return {"float32": None, "bfloat16": jnp.bfloat16}[precision]


def depth_to_space(x: jnp.ndarray, block: int = 2) -> jnp.ndarray:
    """(N, H, W, C * block**2) -> (N, H * block, W * block, C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, block, block, c // block**2)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * block, w * block, c // block**2)


def space_to_depth(x: jnp.ndarray, block: int = 2) -> jnp.ndarray:
    """(N, H, W, C) -> (N, H / block, W / block, C * block**2); the inverse of depth_to_space."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // block, block, w // block, block, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // block, w // block, c * block**2)


def _tiles_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """(N, H, W, C) -> (N, H / 2, 2, W / 2, 2, C): each non-overlapping 2x2 window on axes 2 and 4."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max pooling with stride 2 (H and W even): the same values as ``nnx.max_pool(x, (2, 2), (2, 2))``."""
    return _tiles_2x2(x).max(axis=(2, 4))


def avg_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 average pooling with stride 2 (H and W even): the same values as ``nnx.avg_pool(x, (2, 2), (2, 2))``."""
    return _tiles_2x2(x).mean(axis=(2, 4))
