import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imgjax.metrics import frechet_distance, kernel_distance, psnr, ssim


def test_psnr_known_value():
    clean = jnp.zeros((1, 28, 28, 1))
    assert abs(float(psnr(clean, clean + 0.1)[0]) - 20.0) < 1e-4  # 10 log10(1 / 0.01)


def test_ssim_identity_and_ordering():
    key = jax.random.key(0)
    clean = jax.random.uniform(key, (4, 28, 28, 1))
    assert np.allclose(ssim(clean, clean), 1.0, atol=1e-5)
    mild = jnp.clip(clean + 0.05 * jax.random.normal(key, clean.shape), 0, 1)
    strong = jnp.clip(clean + 0.3 * jax.random.normal(key, clean.shape), 0, 1)
    assert np.all(ssim(clean, strong) < ssim(clean, mild)) and np.all(ssim(clean, mild) < 1.0)
    assert float(ssim(clean, 1.0 - clean).mean()) < 0


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5000, 4))
    assert frechet_distance(a, a) < 1e-6
    shifted = frechet_distance(a, a + np.array([3.0, 0, 0, 0]))
    assert abs(shifted - 9.0) < 1e-6  # same covariance: only |mu_a - mu_b|^2 remains
    scaled = frechet_distance(a, 2 * a)  # tr(S + 4S - 2*2S) = tr(S) ~ 4
    assert abs(scaled - 4.0) < 0.3


def test_kernel_distance_is_the_unbiased_mmd_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 3)), rng.normal(0.5, 1.0, size=(30, 3))
    k = lambda x, y: (float(np.dot(x, y)) / 3 + 1) ** 3  # pair by pair, as in the paper's definition
    pairs = lambda s: sum(k(s[i], s[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    cross = sum(k(x, y) for x in a for y in b) / 900
    assert kernel_distance(a, b, subsets=1) == pytest.approx(pairs(a) + pairs(b) - 2 * cross, rel=1e-9)
    same = kernel_distance(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)))
    apart = kernel_distance(rng.normal(size=(3000, 8)), rng.normal(0.3, 1.0, size=(3000, 8)))
    assert abs(same) < 0.02 * apart and apart > 0
