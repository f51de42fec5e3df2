"""Small array operations shared by the model families.

Why depth-to-space and not transposed convolutions: on XLA:CPU a 4x4 stride-2 transposed convolution
is many times slower than PyTorch's, while a 3x3 convolution followed by depth-to-space (sub-pixel
upsampling, Shi et al. 2016) is fast and learns the same family of upsamplers.

Why pooling by strided slices: ``nnx.max_pool`` is a reduce-window whose gradient JAX computes by
tracking the argmax of every window in four extra index arrays, slowly on XLA:CPU. A 2x2 window with
stride 2 tiles the image, so each window's four pixels are four strided slices, and the maximum and
its gradient are elementwise (see ``max_pool_2x2``).

Why some convolutions are matrix products: see ``conv_by_patches`` (few input channels) and
``conv_by_taps`` (few output channels). docs/speed.md ("What made JAX faster") has the timings.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax


def compute_dtype(precision: str):
    """The dtype convolutions and matmuls compute in for ``--precision``; ``None`` keeps float32.
    Parameters stay float32 either way (Flax's ``param_dtype``), so the optimizer updates float32
    master weights, and normalisation, losses and outputs stay float32."""
    return {"float32": None, "bfloat16": jnp.bfloat16}[precision]


def full_float32():
    """A context in which every convolution and matrix product computes in full float32, whatever the
    device: a GPU rounds float32 operands to TF32 by default (a TPU to bfloat16). The GAN trains and is
    measured in it (see ``gan.train_step`` and ``evaluate``). A CPU computes float32 in full anyway:
    there it changes nothing. Explicit lower precisions (``--precision bfloat16``) stay as they are."""
    return jax.default_matmul_precision("highest")


def _require_plain_convolution(name, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                               feature_group_count):
    if (any(s != 1 for s in window_strides) or padding != "SAME" or feature_group_count != 1
            or any(d != 1 for d in (lhs_dilation or ())) or any(d != 1 for d in (rhs_dilation or ()))
            or (dimension_numbers is not None and tuple(dimension_numbers.lhs_spec) != (0, 3, 1, 2))):
        raise ValueError(f"{name} computes stride-1 'SAME' NHWC convolutions without dilation or groups")


def _neighbourhoods(x, kh: int, kw: int, reversed_: bool = False):
    """(N, H, W, C) -> (N, H, W, kh * kw * C): pixel (i, j)'s values at (i + dy - ph, j + dx - pw) for
    each kernel tap (dy, dx) in order, channels last, with ph, pw = (kh - 1) // 2, (kw - 1) // 2 as
    'SAME' places a kernel (zeros outside the image). ``reversed_``: at (i - dy + ph, j - dx + pw)."""
    h, w = x.shape[1:3]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    before, after = ((kh - 1 - ph, ph), (kw - 1 - pw, pw)) if reversed_ else ((ph, kh - 1 - ph), (pw, kw - 1 - pw))
    padded = jnp.pad(x, ((0, 0), before, after, (0, 0)))
    offset = lambda d, k: k - 1 - d if reversed_ else d
    return jnp.concatenate([padded[:, offset(dy, kh):offset(dy, kh) + h, offset(dx, kw):offset(dx, kw) + w]
                            for dy in range(kh) for dx in range(kw)], axis=-1)


def conv_by_patches(inputs, kernel, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None,
                    dimension_numbers=None, feature_group_count=1, precision=None,
                    preferred_element_type=None, out_sharding=None):
    """A stride-1 'SAME' 2-D convolution (NHWC input, HWIO kernel) as one matrix product of the input's
    patches (im2col): the same values as ``lax.conv_general_dilated``, whose place it takes in
    ``nnx.Conv(..., conv_general_dilated=conv_by_patches)``, so parameters and checkpoints are unchanged.

    Why: with few input channels a convolution's input gradient is inefficient on XLA:CPU (the GAN
    discriminator's first convolution, 4 to 64 channels, takes under half the time this way). With
    many input channels the patches are 9x the activations and cost more than they save, so this is
    only for thin inputs."""
    _require_plain_convolution("conv_by_patches", window_strides, padding, lhs_dilation, rhs_dilation,
                               dimension_numbers, feature_group_count)
    kh, kw, cin, cout = kernel.shape
    # Channels ordered (dy, dx, c), the order of the HWIO kernel flattened.
    return lax.dot_general(_neighbourhoods(inputs, kh, kw), kernel.reshape(kh * kw * cin, cout),
                           (((3,), (0,)), ((), ())), precision=precision,
                           preferred_element_type=preferred_element_type, out_sharding=out_sharding)


def conv_by_taps(inputs, kernel, window_strides, padding, *, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None, out_sharding=None):
    """The same convolution as ``conv_by_patches``, for few *output* channels, computed from matrix
    products on thin tensors only. Forward: one product gives every pixel's contribution to each
    kernel tap (kh * kw * C_out channels), and each output pixel sums its neighbours' contributions.
    Backward: the output gradient's neighbourhoods (kh * kw * C_out channels again) times the kernel
    give the input gradient, and the input times them the kernel gradient.

    Why: XLA:CPU's own convolution is slow for thin outputs (the autoencoder's last one, 64 to 4
    channels, takes under half the time this way). Its gradient is written out (a custom VJP):
    differentiating the forward pass as written is slow in the gradient of the neighbour sums."""
    _require_plain_convolution("conv_by_taps", window_strides, padding, lhs_dilation, rhs_dilation,
                               dimension_numbers, feature_group_count)
    if precision is not None or preferred_element_type is not None:
        raise ValueError("conv_by_taps computes in its inputs' dtype at the default precision")
    return _conv_by_taps(inputs, kernel)


@jax.custom_vjp
def _conv_by_taps(inputs, kernel):
    kh, kw, cin, cout = kernel.shape
    h, w = inputs.shape[1:3]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    # contributions[q, (dy, dx, o)] = inputs[q] . kernel[dy, dx, :, o]
    contributions = inputs @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    padded = jnp.pad(contributions, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    # output[p] = sum over taps t of contributions[p + t - (ph, pw), t]
    taps = [padded[:, dy:dy + h, dx:dx + w, (dy * kw + dx) * cout:(dy * kw + dx + 1) * cout]
            for dy in range(kh) for dx in range(kw)]
    return functools.reduce(jnp.add, taps)


def _conv_by_taps_forward(inputs, kernel):
    return _conv_by_taps(inputs, kernel), (inputs, kernel)


def _conv_by_taps_backward(saved, output_gradient):
    inputs, kernel = saved
    kh, kw, cin, cout = kernel.shape
    # neighbours[q, (dy, dx, o)] = output_gradient[q - t + (ph, pw), o]: the outputs input q fed via tap t
    neighbours = _neighbourhoods(output_gradient, kh, kw, reversed_=True)
    input_gradient = neighbours @ kernel.transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
    kernel_gradient = jnp.einsum("nhwc,nhwk->ck", inputs, neighbours)
    return input_gradient, kernel_gradient.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)


_conv_by_taps.defvjp(_conv_by_taps_forward, _conv_by_taps_backward)


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


def _window_corners(x: jnp.ndarray):
    """(N, H, W, C) -> four (N, H / 2, W / 2, C): each 2x2 window's top-left, top-right, bottom-left
    and bottom-right pixel."""
    return x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]


@jax.custom_vjp
def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max pooling with stride 2 (H and W even): the same values as
    ``nnx.max_pool(x, (2, 2), (2, 2))``, and the same gradients as JAX's own gradient of the maximum
    over each window: a window's gradient goes to its maximum, shared equally when the maximum is
    tied (``nnx.max_pool``, like PyTorch, gives it all to one of the tied pixels). Ties are common
    here: the flat background of a Fashion-MNIST image gives equal activations after batch norm and
    ReLU.

    The gradient is written out because JAX's (the same numbers) counts each window's ties with a
    reduction over a reshaped 2x2 axis, which XLA:CPU runs slowly; over the four corners it is all
    elementwise."""
    top_left, top_right, bottom_left, bottom_right = _window_corners(x)
    return jnp.maximum(jnp.maximum(top_left, top_right), jnp.maximum(bottom_left, bottom_right))


def _max_pool_2x2_forward(x):
    pooled = max_pool_2x2(x)
    return pooled, (x, pooled)


def _max_pool_2x2_backward(saved, output_gradient):
    x, pooled = saved
    is_maximum = [(corner == pooled).astype(output_gradient.dtype) for corner in _window_corners(x)]
    share = output_gradient / sum(is_maximum)
    n, h, w, c = x.shape
    corners = jnp.stack([mask * share for mask in is_maximum])  # (4, N, H / 2, W / 2, C), corner-major
    corners = corners.reshape(2, 2, n, h // 2, w // 2, c).transpose(2, 3, 0, 4, 1, 5)
    return (corners.reshape(x.shape),)


max_pool_2x2.defvjp(_max_pool_2x2_forward, _max_pool_2x2_backward)


def avg_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 average pooling with stride 2 (H and W even): the same values as ``nnx.avg_pool(x, (2, 2), (2, 2))``."""
    return _tiles_2x2(x).mean(axis=(2, 4))


def random_shift(key, images, shift: int):
    """(N, H, W, C) images each moved by a random whole number of pixels, up to ``shift`` each way along
    both axes, the uncovered border zero (the classifier's augmentation and the GAN's DiffAugment)."""
    n, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * shift + 1)
    crop = lambda image, offset: lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))
    return jax.vmap(crop)(padded, offsets)
