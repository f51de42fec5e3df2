import jax
import numpy as np
import pytest
from flax import nnx

from imgjax.layers import (
    avg_pool_2x2,
    conv_by_patches,
    conv_by_taps,
    depth_to_space,
    max_pool_2x2,
    space_to_depth,
)


def _normal(seed, shape):
    """Standard normal float32 values from NumPy: JAX's random draws compile a program per shape,
    ~1.5 s each here, which was most of this file's time."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_depth_to_space_inverts_space_to_depth():
    x = _normal(0, (2, 8, 6, 3))
    y = space_to_depth(x)
    assert y.shape == (2, 4, 3, 12)
    np.testing.assert_array_equal(depth_to_space(y), x)


def test_depth_to_space_places_channels_as_2x2_blocks():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(depth_to_space(x)[0, :, :, 0], [[0, 1], [2, 3]])


def test_pooling_matches_flax_pooling_values_and_gradients_without_ties():
    x = _normal(1, (3, 8, 6, 5))  # continuous values: no ties in a window
    weights = _normal(2, (3, 4, 3, 5))
    for ours, flax_pool in ((max_pool_2x2, nnx.max_pool), (avg_pool_2x2, nnx.avg_pool)):
        reference = lambda v, flax_pool=flax_pool: flax_pool(v, (2, 2), (2, 2))
        np.testing.assert_allclose(ours(x), reference(x), rtol=1e-6)
        grad = lambda pool: jax.grad(lambda v: (pool(v) * weights).sum())(x)
        np.testing.assert_allclose(grad(ours), grad(reference), rtol=1e-6)
    # max pooling sends each window's gradient to its maximum only
    assert int((jax.grad(lambda v: max_pool_2x2(v).sum())(x) != 0).sum()) == x.size // 4


def test_max_pooling_shares_a_windows_gradient_among_tied_maxima_as_jax_does():
    # After batch norm and ReLU a flat background gives windows of equal values: zeros, and
    # positive ties. The written-out gradient must split those windows' gradients as JAX's own
    # gradient of a maximum does, bit for bit.
    x = jax.nn.relu(_normal(5, (2, 8, 6, 3)))
    x = x.at[0, :4, :4].set(0.7).at[1, 4:, 2:].set(0.0).at[1, 0, 0].set(x[1, 0, 1])
    weights = _normal(6, (2, 4, 3, 3))
    jax_max = lambda v: v.reshape(2, 4, 2, 3, 2, 3).max(axis=(2, 4))
    grad = lambda pool: np.asarray(jax.grad(lambda v: (pool(v) * weights).sum())(x))
    np.testing.assert_array_equal(max_pool_2x2(x), jax_max(x))
    np.testing.assert_array_equal(grad(max_pool_2x2), grad(jax_max))
    assert np.allclose(grad(max_pool_2x2)[0, :2, :2], weights[0, 0, 0] / 4)  # four tied maxima


@pytest.mark.parametrize("convolution", [conv_by_patches, conv_by_taps])
def test_convolution_as_matrix_products_matches_flax_convolution_values_and_gradients(convolution):
    rngs = nnx.Rngs(0)
    x, weights = _normal(3, (2, 6, 5, 4)), _normal(4, (2, 6, 5, 7))

    def outputs_and_gradients(model):  # for the parameters and the input; one compiled program, as eager is slow
        def loss(m, v):
            y = m(v)
            return (y * weights).sum(), y
        (_, y), grads = nnx.jit(nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True))(model, x)
        return y, jax.tree.leaves(grads)

    # Full float32 products on both sides: GPUs otherwise round convolutions and matrix products to
    # TensorFloat-32 each in their own way (measured on an H200: 1.2e-3 apart).
    with jax.default_matmul_precision("highest"):
        _compare_convolutions(rngs, outputs_and_gradients, convolution)


def _compare_convolutions(rngs, outputs_and_gradients, convolution):
    for kernel_size in ((3, 3), (2, 2), (1, 3), (5, 4)):
        initial = {"kernel_init": lambda key, shape, dtype: _normal(1, shape),
                   "bias_init": lambda key, shape, dtype: _normal(2, shape)}
        reference = nnx.Conv(4, 7, kernel_size, rngs=rngs, **initial)
        ours = nnx.Conv(4, 7, kernel_size, rngs=rngs, conv_general_dilated=convolution, **initial)
        nnx.update(ours, nnx.state(reference))  # the same parameters, so checkpoints carry over
        (y_ours, grads_ours), (y_reference, grads_reference) = map(outputs_and_gradients, (ours, reference))
        np.testing.assert_allclose(y_ours, y_reference, rtol=1e-5, atol=1e-5)
        assert len(grads_ours) == len(grads_reference) == 3  # the kernel's, the bias's and the input's
        for a, b in zip(grads_ours, grads_reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("convolution", [conv_by_patches, conv_by_taps])
def test_convolution_as_matrix_products_refuses_what_it_does_not_compute(convolution):
    rngs = nnx.Rngs(0)
    x = jax.numpy.ones((1, 6, 6, 2))
    for options in ({"strides": 2}, {"padding": "VALID"}, {"kernel_dilation": 2}):
        conv = nnx.Conv(2, 3, (3, 3), rngs=rngs, conv_general_dilated=convolution, **options)
        with pytest.raises(ValueError, match="stride-1 'SAME'"):
            conv(x)
    if convolution is conv_by_taps:  # its products take no precision options
        conv = nnx.Conv(2, 3, (3, 3), rngs=rngs, conv_general_dilated=convolution, precision="highest")
        with pytest.raises(ValueError, match="default precision"):
            conv(x)
