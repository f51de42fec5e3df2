"""The photo denoiser: its training data and step, and the shipped model against the tuned
total-variation filter on held-out photos (the evaluation photos, never trained on)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imgjax import baselines, checkpoint, corruptions, evaluate, photo, photos
from imgjax.metrics import psnr
from imgjax.service.denoise import tv_weights_from_card


def test_noisy_pairs_are_reoriented_gray_in_a_share_and_noisy_up_to_the_range():
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((256, 8, 8, 3), np.float32) * 0.5 + 0.25)  # clipping never reached
    noisy, clean, sigma = photo.noisy_pair(jax.random.key(0), images)
    gray = np.all(np.asarray(clean[..., :1] == clean), axis=(1, 2, 3))
    assert 0.1 < gray.mean() < 0.3  # GRAY_SHARE of 0.2
    assert np.all(np.asarray(noisy[gray][..., :1] == noisy[gray]))  # gray patches get gray noise
    sigmas = np.asarray(jnp.std(noisy - clean, axis=(1, 2, 3)))
    assert sigmas.max() < photo.SIGMA_RANGE[1] * 1.3 and sigmas.min() < 0.03 and sigmas.mean() > 0.1
    assert np.corrcoef(sigmas, np.asarray(sigma))[0, 1] > 0.95  # the level returned is the one applied
    # Colour patches are the originals in one of eight orientations.
    for i in np.flatnonzero(~gray)[:10]:
        original = np.asarray(images[i])
        orientations = [np.rot90(variant, k) for variant in (original, original[::-1]) for k in range(4)]
        assert any(np.array_equal(np.asarray(clean[i]), o) for o in orientations)


def test_restore_keeps_the_shape_of_gray_and_colour_photos_of_any_size():
    from flax import nnx

    from imgjax import ae
    model = ae.DenoisingAutoencoder(photo.CONFIG, rngs=nnx.Rngs(0))  # zero-initialised output: the identity
    for shape in ((1, 30, 45, 3), (2, 17, 9, 1)):
        x = np.random.default_rng(0).random(shape, np.float32)
        np.testing.assert_allclose(photo.restore(model, x), x, atol=1e-6)


@pytest.fixture(scope="module")
def installed_photos():
    try:
        return photos.photo_paths()
    except photos.DataError as error:
        if os.environ.get("IMGJAX_REQUIRE_DATA") == "1":  # CI installs the packages
            pytest.fail(f"IMGJAX_REQUIRE_DATA=1 but {error}")
        pytest.skip(str(error))


def test_training_and_validation_photos_are_apart(installed_photos):
    validation = set(photos.photo_paths(photos.VALIDATION))
    assert len(validation) == len(photos.VALIDATION) and len(installed_photos) > 3 * len(validation)
    photo_read = photos.read_photo(installed_photos[0], 512)
    assert max(photo_read.shape[:2]) == 512 and photo_read.dtype == np.uint8 and photo_read.shape[2] == 3
    patches = photos.random_patches(photo_read, 5, photos.PATCH, np.random.default_rng(0))
    assert patches.shape == (5, photos.PATCH, photos.PATCH, 3)


def test_training_never_sees_an_evaluation_photo(installed_photos):
    """scikit-image's samples in training are read whole, so an evaluation photo among them would
    match one in size and pixels."""
    from PIL import Image
    samples = pytest.importorskip("skimage.data")
    evaluation = [np.asarray(getattr(samples, name)()) for name in evaluate.PHOTO_EVALUATION]
    trained = [path for path in installed_photos if "skimage" in path.parts]
    assert len(trained) == sum(len(source.files) for source in photos.SOURCES if source.from_pypi)
    for path in trained:
        with Image.open(path) as image:
            pixels = np.asarray(image)
        assert not any(pixels.shape == e.shape and np.array_equal(pixels, e) for e in evaluation), path


def test_small_photos_are_read_once_and_missing_photos_are_named(tmp_path, monkeypatch):
    from PIL import Image
    Image.new("RGB", (300, 200)).save(tmp_path / "small.png")
    Image.new("RGB", (2000, 1000)).save(tmp_path / "large.png")
    assert photos.training_sides(tmp_path / "small.png") == (300,)
    assert photos.training_sides(tmp_path / "large.png") == photos.TRAINING_SIDES
    monkeypatch.setattr(photos, "SOURCES", photos.SOURCES + (
        photos.PhotoSource("some-package", "CC0-1.0", str(tmp_path), ("large.png", "gone.jpg")),))
    with pytest.raises(photos.DataError, match=r"gone\.jpg.*sudo apt install .*some-package"):
        photos.training_splits()


def test_the_photo_model_beats_the_tuned_total_variation_filter_on_held_out_crops():
    """The shipped photo model on 96x96 crops of scikit-image's sample photos (gray and colour), at
    the two evaluated noise levels, against TV with the weight `imgjax eval photo` tuned on the
    validation photos (read from the card, as the studio does)."""
    pytest.importorskip("skimage")
    model, card = checkpoint.load_model("photo")
    sigmas, weights = tv_weights_from_card(card, "photo")
    evaluation = evaluate.evaluation_photos()
    for name in ("camera", "astronaut"):
        clean = jnp.asarray(evaluation[name][None, 80:176, 80:176])
        for sigma in (0.1, 0.2):
            noisy = corruptions.gaussian_noise(jax.random.key(7), clean, sigma)
            tv = baselines.per_channel(baselines.tv_denoise, noisy, float(np.interp(sigma, sigmas, weights)))
            ours, theirs = float(psnr(clean, photo.restore(model, noisy))[0]), float(psnr(clean, tv)[0])
            assert ours > theirs + 0.5, (name, sigma, ours, theirs)


def test_the_card_records_what_the_photo_model_was_measured_at():
    card = json.loads(checkpoint.default_weights("photo").with_suffix(".json").read_text())
    assert card["family"] == "photo" and card["dataset"] == photo.FAMILY.dataset
    for sigma in ("0.1", "0.2"):
        row = card["metrics"][f"gaussian_{sigma}"]
        assert set(row["mean"]) >= {"photo_model", "bm3d", "tv", "noisy"} and row["tv_weight"] > 0
