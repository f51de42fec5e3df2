"""Image-quality and distribution metrics: PSNR, SSIM, the Fréchet and the kernel distance."""

import jax
import jax.numpy as jnp
import numpy as np


def psnr(reference: jnp.ndarray, estimate: jnp.ndarray, max_value: float = 1.0) -> jnp.ndarray:
    """Peak signal-to-noise ratio in dB per image. Inputs (N, H, W, C) in [0, max_value]; returns (N,)."""
    mse = jnp.mean((reference - estimate) ** 2, axis=(1, 2, 3))
    return 10.0 * jnp.log10(max_value**2 / jnp.maximum(mse, 1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> jnp.ndarray:
    x = jnp.arange(size) - (size - 1) / 2
    g = jnp.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: jnp.ndarray, window: jnp.ndarray) -> jnp.ndarray:
    """Separable 'valid' Gaussian filter over H and W of (N, H, W, C)."""
    c = x.shape[-1]
    kh = jnp.tile(window[:, None, None, None], (1, 1, 1, c))
    kw = jnp.tile(window[None, :, None, None], (1, 1, 1, c))
    dn = ("NHWC", "HWIO", "NHWC")
    x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)
    return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)


def ssim(reference: jnp.ndarray, estimate: jnp.ndarray, max_value: float = 1.0) -> jnp.ndarray:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03,
    valid region), the mean SSIM per image. Inputs (N, H, W, C) with H, W >= 11; returns (N,)."""
    return ssim_map(reference, estimate, max_value).mean(axis=(1, 2, 3))


def ssim_map(reference: jnp.ndarray, estimate: jnp.ndarray, max_value: float = 1.0) -> jnp.ndarray:
    """SSIM of every 11x11 window lying inside the (N, H, W, C) images: (N, H - 10, W - 10, C)."""
    window = _gaussian_window()
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    mu_x, mu_y = _blur(reference, window), _blur(estimate, window)
    var_x = _blur(reference**2, window) - mu_x**2
    var_y = _blur(estimate**2, window) - mu_y**2
    cov = _blur(reference * estimate, window) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (as in FID):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    tr((S_a S_b)^(1/2)) is computed as the sum of square roots of the eigenvalues of
    S_a^(1/2) S_b S_a^(1/2), which is symmetric, so only NumPy's eigh is needed (no scipy.sqrtm).
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eigvals, eigvecs = np.linalg.eigh(cov_a)
    sqrt_a = (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T
    middle = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, subset: int = 1000, subsets: int = 10,
                    seed: int = 0) -> float:
    """Kernel distance (KID, Binkowski et al. 2018) between two (N, D) feature sets: the unbiased squared
    MMD under the cubic kernel k(x, y) = (x.y / D + 1)^3, averaged over ``subsets`` random draws of
    ``subset`` features from each (fewer where a set is smaller). Unlike the Fréchet distance it is
    unbiased in the sample size: two samples of one distribution give about 0."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size, dimension = min(subset, len(a), len(b)), a.shape[1]
    rng = np.random.default_rng(seed)
    kernel = lambda x, y: (x @ y.T / dimension + 1.0) ** 3
    within = lambda k: (k.sum() - np.trace(k)) / (size * (size - 1))  # off the diagonal: unbiased
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        values.append(within(kernel(x, x)) + within(kernel(y, y)) - 2.0 * kernel(x, y).mean())
    return float(np.mean(values))
