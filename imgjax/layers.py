"""Small array operations shared by the model families.

Why depth-to-space and not transposed convolutions: on XLA:CPU a 4x4 stride-2 transposed convolution
measured ~9x slower than PyTorch's, while a 3x3 convolution followed by depth-to-space (sub-pixel
upsampling, Shi et al. 2016) is several times faster and learns the same family of upsamplers.

Why pooling by reshaping: ``nnx.max_pool`` is a reduce-window whose gradient JAX computes by
tracking the argmax of every window in four extra index arrays; on XLA:CPU that took ~40% of the
classifier's training step. A 2x2 window with stride 2 tiles the image, so the same maximum is a
plain reduction over a reshaped axis, whose gradient is one fused compare-and-select.

Why some convolutions are matrix products of patches: see ``conv_by_patches``.
"""

import jax.numpy as jnp
from jax import lax


def compute_dtype(precision: str):
    """The dtype convolutions and matmuls compute in for ``--precision``; ``None`` keeps float32.
    Parameters stay float32 either way (Flax's ``param_dtype``), so the optimizer updates float32
    master weights, and normalisation, losses and outputs stay float32."""
    return {"float32": None, "bfloat16": jnp.bfloat16}[precision]


def conv_by_patches(inputs, kernel, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None,
                    dimension_numbers=None, feature_group_count=1, precision=None,
                    preferred_element_type=None, out_sharding=None):
    """A stride-1 'SAME' 2-D convolution (NHWC input, HWIO kernel) as one matrix product of the input's
    patches (im2col): the same values as ``lax.conv_general_dilated``, whose place it takes in
    ``nnx.Conv(..., conv_general_dilated=conv_by_patches)``, so parameters and checkpoints are unchanged.

    Why: with few input channels a convolution's input gradient is inefficient on XLA:CPU. A 3x3
    convolution from 4 to 64 channels at 14x14 (the GAN discriminator's first), forward and both
    gradients, 32 images on one core: 3.1 ms as a convolution, 1.35 ms as patches (the GAN's whole
    step: +5% images/s). With 64 input channels the patches are 9x the activations and cost more than
    they save (2x slower), so this is only for thin inputs."""
    if (any(s != 1 for s in window_strides) or padding != "SAME" or feature_group_count != 1
            or any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ()))
            or (dimension_numbers is not None and tuple(dimension_numbers.lhs_spec) != (0, 3, 1, 2))):
        raise ValueError("conv_by_patches computes stride-1 'SAME' NHWC convolutions without dilation or groups")
    kh, kw, cin, cout = kernel.shape
    h, w = inputs.shape[1:3]
    # 'SAME' at stride 1: (k - 1) // 2 before, k // 2 after.
    padded = jnp.pad(inputs, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    # Channels ordered (dy, dx, c), the order of the HWIO kernel flattened.
    patches = jnp.concatenate([padded[:, dy:dy + h, dx:dx + w] for dy in range(kh) for dx in range(kw)], axis=-1)
    return lax.dot_general(patches, kernel.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())),
                           precision=precision, preferred_element_type=preferred_element_type,
                           out_sharding=out_sharding)


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
