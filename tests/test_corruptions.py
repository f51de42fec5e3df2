import jax
import jax.numpy as jnp
import numpy as np

from imgjax import corruptions

IMAGES = jnp.full((64, 28, 28, 1), 0.5)


def test_gaussian_noise_level_and_range():
    noisy = corruptions.gaussian_noise(jax.random.key(0), IMAGES, 0.1)
    assert noisy.shape == IMAGES.shape and 0.0 <= noisy.min() and noisy.max() <= 1.0
    assert abs(float(jnp.std(noisy - IMAGES)) - 0.1) < 0.005  # no clipping at 0.5 +- 5 sigma
    per_image = corruptions.gaussian_noise(jax.random.key(0), IMAGES[:2], jnp.array([0.0, 0.3]))
    assert float(jnp.abs(per_image[0] - 0.5).max()) == 0.0 and float(jnp.std(per_image[1])) > 0.2


def test_salt_and_pepper_fraction_and_values():
    out = corruptions.salt_and_pepper(jax.random.key(1), IMAGES, 0.2)
    changed = np.asarray(out != 0.5)
    assert abs(changed.mean() - 0.2) < 0.01
    assert set(np.unique(np.asarray(out)[changed])) == {0.0, 1.0}


def test_masks_cover_boxes_and_apply():
    mask = corruptions.random_box_masks(jax.random.key(2), IMAGES.shape, n_boxes=3, max_size=12)
    coverage = np.asarray(mask).mean(axis=(1, 2, 3))
    assert np.all(coverage > 0) and np.all(coverage <= 3 * 144 / 784)
    masked = corruptions.apply_mask(IMAGES, mask)
    np.testing.assert_array_equal(np.asarray(masked == 0.0), np.asarray(mask == 1.0))


def test_random_corruption_mixes_all_kinds_deterministically():
    a = corruptions.random_corruption(jax.random.key(3), IMAGES)
    np.testing.assert_array_equal(a, corruptions.random_corruption(jax.random.key(3), IMAGES))
    values = np.asarray(a).reshape(64, -1)
    is_mask = [(v == 0).any() and set(np.unique(v)) <= {0.0, 0.5} for v in values]
    is_sp = [set(np.unique(v)) == {0.0, 0.5, 1.0} for v in values]
    is_gauss = [len(np.unique(v)) > 100 for v in values]
    assert any(is_mask) and any(is_sp) and any(is_gauss)
    assert all(m + s + g == 1 for m, s, g in zip(is_mask, is_sp, is_gauss))


def test_colour_images_turned_gray_for_colourisation_in_their_share():
    """Gray is each pixel's luminance in all three channels; with a gray share, about that share of a
    batch is turned gray (the rest corrupted as before), and without one the mix is drawn as it was."""
    colour = jnp.asarray(np.random.default_rng(0).random((400, 8, 8, 3)).astype(np.float32))
    gray = np.asarray(corruptions.grayscale(colour))
    np.testing.assert_allclose(gray[..., 0], np.asarray(colour) @ np.array([0.299, 0.587, 0.114]), rtol=1e-5)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    mixed = np.asarray(corruptions.random_corruption(jax.random.key(3), colour, gray_share=0.3))
    turned_gray = np.all(np.isclose(mixed, gray, atol=1e-6), axis=(1, 2, 3))
    assert 0.22 < turned_gray.mean() < 0.38
    np.testing.assert_array_equal(corruptions.random_corruption(jax.random.key(3), colour),
                                  corruptions.random_corruption(jax.random.key(3), colour, gray_share=0.0))
