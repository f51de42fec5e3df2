import jax
import numpy as np

from imgjax.layers import depth_to_space, space_to_depth


def test_depth_to_space_inverts_space_to_depth():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
    y = space_to_depth(x)
    assert y.shape == (2, 4, 3, 12)
    np.testing.assert_array_equal(depth_to_space(y), x)


def test_depth_to_space_places_channels_as_2x2_blocks():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(depth_to_space(x)[0, :, :, 0], [[0, 1], [2, 3]])
