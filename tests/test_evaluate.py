"""The committed checkpoints reach the README's figures on the real test set.

CNN: the full 10k test set (fast). AE and GAN: subsets sized for CI, with thresholds set for that
subset size (noted at each); `imgjax eval` measures the full protocol."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imgjax import baselines, checkpoint, corruptions, data, evaluate
from imgjax.ae import restore
from imgjax.cnn import extract_features, predict_in_batches
from imgjax.metrics import frechet_distance, psnr

pytestmark = pytest.mark.realdata


def test_cnn_reaches_target_on_full_test_set(fashion_test, fashion_train, tmp_path):
    model, card = checkpoint.load_model("cnn")
    results = evaluate.eval_cnn(model, fashion_test, fashion_train, tmp_path, log=lambda *_: None)
    assert results["test_accuracy"] >= 0.935
    assert results["test_accuracy"] == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-4)
    assert min(results["per_class_accuracy"].values()) > 0.7  # Shirt is the hardest class
    assert (tmp_path / "cnn_confusion.png").stat().st_size > 1000
    # Familiarity: few real garments flagged, nearly all noise images flagged, and the same fit as
    # the one shipped beside the checkpoint.
    familiarity = results["familiarity"]
    assert familiarity["test_flagged"] < 0.03 and familiarity["uniform_noise_flagged"] > 0.95
    assert familiarity["threshold"] == pytest.approx(card["metrics"]["familiarity"]["threshold"], rel=1e-3)


@pytest.fixture(scope="module")
def ae_sigma_0_2(fashion_test):
    """Clean, noisy (sigma 0.2) and restored versions of the first 1000 test images."""
    model, _ = checkpoint.load_model("ae")
    clean = jnp.asarray(data.to_float(fashion_test.images[:1000]))
    noisy = corruptions.gaussian_noise(jax.random.key(1), clean, 0.2)
    return clean, noisy, restore(model, noisy)


def test_ae_beats_noisy_and_bm3d_at_sigma_0_2(ae_sigma_0_2):
    clean, noisy, restored = ae_sigma_0_2
    ae_psnr = float(psnr(clean, restored).mean())
    # Regression guard at the shipped checkpoint's level: 23.19 dB on these 1000 images (23.18 dB on
    # all 10k); the per-image PSNR spread (~2 dB) gives a standard error of ~0.07 dB here.
    assert ae_psnr >= 23.05
    assert ae_psnr > float(psnr(clean, noisy).mean()) + 6
    subset = slice(0, 20)
    bm3d_psnr = float(psnr(clean[subset], baselines.bm3d_denoise(noisy[subset], 0.2)).mean())
    assert float(psnr(clean[subset], restored[subset]).mean()) > bm3d_psnr + 3


@pytest.mark.xfail(strict=True, reason="issue 2 target (PSNR >= 23.5 dB at sigma 0.2) not met yet: "
                   "the shipped autoencoder measures 23.18 dB on the 10k test set")
def test_ae_psnr_target_at_sigma_0_2(ae_sigma_0_2):
    clean, _, restored = ae_sigma_0_2
    assert float(psnr(clean, restored).mean()) >= 23.5


def test_ae_restores_salt_pepper_and_masks_better_than_classical(fashion_test):
    model, _ = checkpoint.load_model("ae")
    clean = jnp.asarray(data.to_float(fashion_test.images[:500]))
    peppered = corruptions.salt_and_pepper(jax.random.key(2), clean, 0.1)
    assert psnr(clean, restore(model, peppered)).mean() > psnr(clean, baselines.median_filter_3x3(peppered)).mean()
    mask = corruptions.random_box_masks(jax.random.key(3), clean.shape)
    masked = corruptions.apply_mask(clean, mask)
    assert psnr(clean, restore(model, masked)).mean() > psnr(clean, masked).mean() + 3


def test_gan_conditional_accuracy(fashion_test):
    generator, _ = checkpoint.load_model("gan")
    classifier, _ = checkpoint.load_model("cnn")
    # 2000 samples: conditional accuracy has a standard error of ~0.7 points here.
    assert evaluate.conditional_accuracy(generator, classifier, count=2000) >= 0.85


@pytest.fixture(scope="module")
def frechet_ratio_2000(fashion_test, fashion_train):
    """Fréchet distance (classifier features) of 2000 generated images to 2000 test images, divided by
    the same distance from 2000 training images (the floor). Deterministic: fixed seeds and subsets."""
    generator, _ = checkpoint.load_model("gan")
    classifier, _ = checkpoint.load_model("cnn")
    images, _ = evaluate.generate_for_classes(generator, 2000)
    features = lambda x: predict_in_batches(extract_features, classifier, x)
    test_features = features(data.to_float(fashion_test.images[:2000]))
    train_subset = np.random.default_rng(0).permutation(len(fashion_train))[:2000]
    floor = frechet_distance(features(data.to_float(fashion_train.images[train_subset])), test_features)
    return frechet_distance(features(images), test_features) / floor


def test_gan_frechet_distance_does_not_regress(frechet_ratio_2000):
    # Measured 10.8x at 2000 samples for the shipped checkpoint (73x at 10k: the floor shrinks with
    # more samples faster than the GAN's distance does).
    assert frechet_ratio_2000 <= 12.0


@pytest.mark.xfail(strict=True, reason="issue 2 target (Fréchet distance <= 3x the train-vs-test floor) "
                   "not met yet: the shipped GAN measures 73x at 10k samples")
def test_gan_frechet_distance_target(frechet_ratio_2000):
    assert frechet_ratio_2000 <= 3.0


def test_eval_command_prints_json(fashion_test):
    result = subprocess.run([sys.executable, "-m", "imgjax.cli", "eval", "cnn", "--json", "--out", "/tmp"],
                            capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout)
    assert figures["family"] == "cnn" and 0.935 <= figures["test_accuracy"] <= 1.0
    assert len(figures["per_class_accuracy"]) == 10
