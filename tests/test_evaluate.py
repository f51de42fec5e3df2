"""The committed checkpoints reach the README's figures on the real test set.

CNN: the full 10k test set, through `imgjax eval cnn` itself. AE and GAN: subsets sized for CI, with thresholds set for that
subset size (noted at each); `imgjax eval` measures the full protocol."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imgjax import baselines, checkpoint, corruptions, data, datasets, emoji, evaluate
from imgjax.ae import restore
from imgjax.metrics import psnr

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ae_sigma_0_2(fashion_test):
    """Clean, noisy (sigma 0.2) and restored versions of the first 1000 test images."""
    model, _ = checkpoint.load_model("ae")
    clean = jnp.asarray(data.to_float(fashion_test.images[:1000]))
    noisy = corruptions.gaussian_noise(jax.random.key(1), clean, 0.2)
    return clean, noisy, restore(model, noisy)


@pytest.mark.slow
def test_ae_beats_noisy_and_bm3d_at_sigma_0_2(ae_sigma_0_2):
    clean, noisy, restored = ae_sigma_0_2
    ae_psnr = float(psnr(clean, restored).mean())
    # Issue 2's target is 23.5 dB; the shipped checkpoint measures 23.93 dB on these 1000 images
    # (23.91 dB on all 10k). The per-image PSNR spread (~2 dB) gives a standard error of ~0.07 dB
    # here, so 23.5 is 6 standard errors below the measurement and still the target itself.
    assert ae_psnr >= 23.5
    assert ae_psnr > float(psnr(clean, noisy).mean()) + 6
    subset = slice(0, 20)
    bm3d_psnr = float(psnr(clean[subset], baselines.bm3d_denoise(noisy[subset], 0.2)).mean())
    assert float(psnr(clean[subset], restored[subset]).mean()) > bm3d_psnr + 4


@pytest.mark.slow
def test_ae_restores_salt_pepper_and_masks_better_than_classical(fashion_test):
    model, _ = checkpoint.load_model("ae")
    clean = jnp.asarray(data.to_float(fashion_test.images[:500]))
    peppered = corruptions.salt_and_pepper(jax.random.key(2), clean, 0.1)
    assert psnr(clean, restore(model, peppered)).mean() > psnr(clean, baselines.median_filter_3x3(peppered)).mean()
    mask = corruptions.random_box_masks(jax.random.key(3), clean.shape)
    masked = corruptions.apply_mask(clean, mask)
    assert psnr(clean, restore(model, masked)).mean() > psnr(clean, masked).mean() + 3


@pytest.fixture(scope="module")
def gan_figures(fashion_test, fashion_train, tmp_path_factory):
    """``imgjax eval gan``'s own protocol: 10k samples from each of 5 latent seeds, their conditional
    accuracy under the shipped classifier and their Fréchet distance to the 10k test images in its
    features, beside the floor (10k training images to the same test images), and the same samples
    against the training images held out of the GAN's training; untruncated only (the card also
    holds the truncation curve). Deterministic: fixed seeds and subsets. ~100 s."""
    generator, card = checkpoint.load_model("gan")
    split = data.hold_out(fashion_train, card["train_config"]["held_out"])
    return evaluate.eval_gan(generator, fashion_test, fashion_train, tmp_path_factory.mktemp("gan"),
                             log=lambda *_: None, trained_and_held_out=split, truncations=(None,))


@pytest.mark.slow
def test_gan_conditional_accuracy(gan_figures):
    _, card = checkpoint.load_model("gan")
    assert gan_figures["conditional_accuracy"] >= 0.85
    assert gan_figures["conditional_accuracy"] == pytest.approx(card["metrics"]["conditional_accuracy"], abs=1e-4)
    assert min(gan_figures["per_class_conditional_accuracy"].values()) > 0.6  # Shirt is the hardest


@pytest.mark.slow
def test_gan_frechet_distance_does_not_regress(gan_figures):
    # The shipped checkpoint: 2.63x the floor of 1.47 on average over latent seeds 1-5 (2.46x to
    # 3.06x); the checkpoints before it are in docs/gan-recipe.md. Deterministic protocol, so the
    # margin only absorbs float differences between machines.
    _, card = checkpoint.load_model("gan")
    assert gan_figures["seeds"] == [1, 2, 3, 4, 5]
    assert gan_figures["frechet_ratio_to_floor"] == pytest.approx(card["metrics"]["frechet_ratio_to_floor"], rel=1e-3)
    assert gan_figures["frechet_ratio_to_floor"] <= 2.7
    assert gan_figures["frechet_distance_floor"] == pytest.approx(1.465, rel=0.01)


@pytest.mark.slow
def test_gan_truncation_curve_is_measured_on_images_held_out_of_training(gan_figures):
    """The studio's default is chosen on this curve: its images must be ones the GAN never trained
    on, and not the test set (whose floor, 10k against 10k, is 1.465)."""
    _, card = checkpoint.load_model("gan")
    assert gan_figures["held_out_images"] == card["train_config"]["held_out"] == data.HELD_OUT_IMAGES
    untruncated = gan_figures["truncation_curve"][0]
    assert untruncated["truncation"] is None
    assert untruncated["frechet_distance_floor"] != pytest.approx(gan_figures["frechet_distance_floor"], rel=0.05)
    assert untruncated["frechet_ratio_to_floor"] == pytest.approx(card["metrics"]["truncation_curve"][0]["frechet_ratio_to_floor"], rel=1e-3)


@pytest.mark.slow
def test_gan_frechet_distance_target(gan_figures):
    """Issues 2 and 40: at most 3x the floor on average over latent seeds 1-5, for a generator
    trained without the 5,000 held-out images its recipe was chosen on."""
    assert gan_figures["frechet_ratio_to_floor"] <= 3.0


def test_gan_measurement_computes_in_full_float32_on_every_device(monkeypatch):
    # As the GAN's train step (tests/test_gan.py): a GPU's default TF32 would round the products of the
    # generator and of the classifier whose features the Fréchet distance compares, on a floor of 1.47.
    # A CPU computes float32 in full whatever the setting, so what is checked is that every compiled
    # function the measurement calls is called (and so traced) with the full-precision default.
    from flax import nnx

    from imgjax import cnn, gan
    seen = []

    def spy(function):
        def called(*args):
            seen.append((function.__name__, jax.config.jax_default_matmul_precision))
            return function(*args)
        called.__name__ = function.__name__
        return called

    for module, name in ((gan, "generate_images"), (cnn, "extract_features"), (cnn, "features_and_names")):
        monkeypatch.setattr(module, name, spy(getattr(module, name)))
    monkeypatch.setattr(gan, "MEASURE_SAMPLES", 20)
    generator = gan.Generator(gan.GANConfig(), rngs=nnx.Rngs(0))
    classifier = cnn.Classifier(cnn.CNNConfig(), rngs=nnx.Rngs(0))
    split = lambda n: data.Split(np.random.default_rng(n).integers(0, 256, (n, 28, 28), np.uint8), np.arange(n) % 10)
    figures = gan.measure_generator(generator, classifier, gan.real_features(classifier, split(30), split(40)))
    assert figures["frechet_distance"] > 0
    assert {name for name, _ in seen} == {"generate_images", "extract_features", "features_and_names"}
    assert all(precision == "highest" for _, precision in seen), seen


@pytest.mark.slow
def test_the_emoji_autoencoder_colours_test_emoji_that_the_classifier_names_within_5_points(emoji_pictures):
    """Every test emoji turned gray and coloured back by the shipped emoji autoencoder: the card's
    figures reproduced; colours nearer the originals than the gray-to-mean-colour baseline's, and
    named by the shipped classifier within 5 points of the originals (issue 40's targets)."""
    model, card = checkpoint.load_model("ae", checkpoint.default_weights("ae", "emoji"))
    source = datasets.get("emoji")
    test, train = source.test(None), source.train_and_held_out(None, 0)[0]
    figures = evaluate.eval_colourisation(model, data.to_float(test.images), test.labels, train,
                                          checkpoint.load_if_present("cnn", "emoji"), log=lambda line: None)
    named, expected = figures["named_by_the_classifier"], card["metrics"]["colourise"]
    assert named == pytest.approx(expected["named_by_the_classifier"], abs=1e-4)
    assert figures["autoencoder"]["psnr"] == pytest.approx(expected["autoencoder"]["psnr"], abs=1e-3)
    assert figures["autoencoder"]["psnr"] > figures["gray_to_mean_colour"]["psnr"]
    assert named["gray"] < named["colour"] - 0.05 <= named["autoencoder"] <= named["colour"]


@pytest.mark.slow
def test_eval_on_emoji_reports_balanced_art_set_tone_and_neighbour_figures(emoji_pictures, tmp_path):
    """`imgjax eval cnn` on the shipped emoji classifier reads its dataset from the card and
    reproduces the card's figures on the test emoji (unseen in every art set and tone): balanced
    over the groups, the art set, people per skin tone, and pixel-space neighbours beside them."""
    weights = checkpoint.CHECKPOINT_DIR / "emoji" / "cnn.safetensors"
    result = subprocess.run([sys.executable, "-m", "imgjax.cli", "eval", "cnn", "--checkpoint", str(weights), "--json"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    figures, card = json.loads(result.stdout), checkpoint.read_card(weights)
    assert figures["dataset"] == "emoji" and len(figures["per_class_accuracy"]) == len(emoji.GROUPS)
    for key in ("test_accuracy", "test_balanced_accuracy", "test_style_accuracy"):
        assert figures[key] == pytest.approx(card["metrics"][key], abs=1e-4), key
    assert figures["test_balanced_accuracy"] >= 0.70 and figures["test_style_accuracy"] >= 0.95
    assert set(figures["per_tone_accuracy"]) == set(emoji.SKIN_TONES)
    for neighbours in figures["pixel_neighbours"].values():
        assert neighbours["balanced_accuracy"] < figures["test_balanced_accuracy"]
        assert neighbours["style_accuracy"] < figures["test_style_accuracy"]
    assert figures["familiarity"]["test_flagged"] < 0.03 and figures["familiarity"]["uniform_noise_flagged"] > 0.95


@pytest.mark.slow
def test_eval_command_reaches_the_cnn_target_and_leaves_checkpoints_alone(fashion_test, tmp_path):
    """`imgjax eval cnn` on the full 10k test set reproduces the card's figures. Without --write-card
    it writes its pictures and statistics under runs/eval: a rewritten familiarity file whose last
    bits differ would no longer match cnn.json's SHA-256."""
    shipped = sorted(checkpoint.CHECKPOINT_DIR.iterdir())
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in shipped}
    result = subprocess.run([sys.executable, "-m", "imgjax.cli", "eval", "cnn", "--json"], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert sorted(checkpoint.CHECKPOINT_DIR.iterdir()) == shipped
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in shipped} == before
    assert (tmp_path / "runs" / "eval" / "cnn" / "cnn_confusion.png").stat().st_size > 1000
    assert (tmp_path / "runs" / "eval" / "cnn" / evaluate.FAMILIARITY_FILE).is_file()
    figures = json.loads(result.stdout)
    _, card = checkpoint.load_model("cnn")
    assert figures["family"] == "cnn" and figures["test_accuracy"] >= 0.935
    assert figures["test_accuracy"] == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-4)
    assert len(figures["per_class_accuracy"]) == 10
    assert min(figures["per_class_accuracy"].values()) > 0.7  # Shirt is the hardest class
    # Familiarity: few real garments flagged, nearly all noise images flagged, and the same fit as
    # the one shipped beside the checkpoint.
    familiarity = figures["familiarity"]
    assert familiarity["test_flagged"] < 0.03 and familiarity["uniform_noise_flagged"] > 0.95
    assert familiarity["threshold"] == pytest.approx(card["metrics"]["familiarity"]["threshold"], rel=1e-3)


@pytest.mark.parametrize("weights, pictures", [("encoder.safetensors", "fashion_test"),
                                           ("emoji/encoder.safetensors", "emoji_pictures")])
def test_eval_on_held_out_measures_only_images_the_checkpoint_was_trained_without(weights, pictures, request,
                                                                                  monkeypatch, tmp_path):
    """`imgjax eval --held-out`, for choices: the encoder's figures come from the training images held
    out of its training (the card's ``held_out``), the tone reader from the rest; never the test set."""
    request.getfixturevalue(pictures)  # the dataset is here (or the test skips, as every real-data test)
    path = checkpoint.CHECKPOINT_DIR / weights
    card = checkpoint.read_card(path)
    seen = {}
    monkeypatch.setattr(evaluate, "eval_encoder", lambda model, test, out, log, dataset, train: seen.update(
        test=test, train=train, out=out) or {})
    figures = evaluate.run_eval("encoder", path, out=tmp_path, on_held_out=True, log=lambda *_: None)
    trained_on, held_out = datasets.get(card["dataset"]).train_and_held_out(None, card["train_config"]["held_out"])
    assert figures["measured_on"] == "held-out training images" and seen["out"] == tmp_path
    assert np.array_equal(seen["test"].images, held_out.images) and len(held_out) > 0
    if seen["train"] is not None:  # emoji: the reader of skin tones is fitted on what the encoder trained on
        assert np.array_equal(seen["train"].images, trained_on.images)
        assert len(seen["train"]) + len(seen["test"]) == len(datasets.get("emoji").train_and_held_out(None, 0)[0])


@pytest.mark.parametrize("family, options, refusal", [
    ("encoder", ["--write-card"], "stay out of the card"),
    ("cnn", [], "not cnn"),
    ("ae", [], "none is held out"),  # the garment autoencoder trained on every training image
])
def test_eval_on_held_out_refuses_what_it_cannot_measure_in_a_sentence(family, options, refusal, capsys):
    from imgjax.cli import main
    before = checkpoint.read_card(checkpoint.default_weights(family))
    assert main(["eval", family, "--held-out", *options]) == 2
    assert refusal in capsys.readouterr().err
    assert checkpoint.read_card(checkpoint.default_weights(family)) == before
