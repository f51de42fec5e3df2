import jax
import numpy as np
from flax import nnx

from imgjax.layers import avg_pool_2x2, depth_to_space, max_pool_2x2, space_to_depth


def test_depth_to_space_inverts_space_to_depth():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
    y = space_to_depth(x)
    assert y.shape == (2, 4, 3, 12)
    np.testing.assert_array_equal(depth_to_space(y), x)


def test_depth_to_space_places_channels_as_2x2_blocks():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(depth_to_space(x)[0, :, :, 0], [[0, 1], [2, 3]])


def test_pooling_by_reshape_matches_flax_pooling_values_and_gradients():
    x = jax.random.normal(jax.random.key(1), (3, 8, 6, 5))  # continuous values: no ties in a window
    weights = jax.random.normal(jax.random.key(2), (3, 4, 3, 5))
    for ours, flax_pool in ((max_pool_2x2, nnx.max_pool), (avg_pool_2x2, nnx.avg_pool)):
        reference = lambda v, flax_pool=flax_pool: flax_pool(v, (2, 2), (2, 2))
        np.testing.assert_allclose(ours(x), reference(x), rtol=1e-6)
        grad = lambda pool: jax.grad(lambda v: (pool(v) * weights).sum())(x)
        np.testing.assert_allclose(grad(ours), grad(reference), rtol=1e-6)
    # max pooling sends each window's gradient to its maximum only
    assert int((jax.grad(lambda v: max_pool_2x2(v).sum())(x) != 0).sum()) == x.size // 4
