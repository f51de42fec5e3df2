import jax
import numpy as np
from flax import nnx

from imgjax import ae, data
from imgjax.train import TrainConfig


def test_untrained_model_is_identity_and_restores_any_size():
    model = ae.DenoisingAutoencoder(ae.AEConfig(), rngs=nnx.Rngs(0))
    for shape in ((2, 28, 28, 1), (1, 33, 45, 1), (1, 1, 1, 1)):
        x = np.random.default_rng(0).random(shape, np.float32)
        out = ae.restore(model, x)
        assert out.shape == shape
        np.testing.assert_allclose(out, x, atol=1e-6)  # zero-initialised residual output


def test_train_steps_lower_the_loss(tiny_dataset):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    training = ae.AETraining(ae.AEConfig(), TrainConfig("ae", epochs=1, batch_size=32, learning_rate=2e-3), 60)
    images = data.to_float(split.images[:32])
    key = jax.random.key(0)
    losses = [float(ae.train_step(training, images, None, key)["loss"]) for _ in range(60)]
    assert losses[-1] < 0.6 * losses[0]
    restored = ae.restore(training.model, np.asarray(images))
    assert restored.min() >= 0.0 and restored.max() <= 1.0


def test_identity_layer_only_for_the_square_layers_after_a_relu():
    kernel = ae.identity_layer("encode_quarter/4/kernel", (3, 3, 8, 8))
    assert kernel.shape == (3, 3, 8, 8) and np.array_equal(kernel[1, 1], np.eye(8)) and kernel.sum() == 8
    assert not ae.identity_layer("decode_half/2/bias", (8,)).any()
    assert ae.identity_layer("encode_quarter/0/kernel", (3, 3, 4, 8)) is None  # changes the width: no identity
    assert ae.identity_layer("output/kernel", (3, 3, 8, 8)) is None  # no ReLU before it
    assert ae.identity_layer("upsample/kernel", (1, 1, 8, 8)) is None


def test_the_colour_feature_loss_weighs_the_gray_pictures_in_the_shipped_classifiers_eyes():
    """With a colour feature weight the autoencoder trains beside the dataset's shipped classifier:
    the loss adds the distance between its features of the coloured and the original pictures, over
    the pictures turned gray alone; the step lowers it."""
    train_config = lambda dataset: TrainConfig("ae", epochs=1, batch_size=4, learning_rate=2e-3, dataset=dataset)
    config = ae.AEConfig(channels=3, gray_share=0.5, colour_feature_weight=0.1)
    training = ae.AETraining(config, train_config("emoji"), 5)
    assert training.classifier is not None and ae.AETraining(ae.AEConfig(), train_config("fashion-mnist"), 1).classifier is None
    rng = np.random.default_rng(0)
    clean = rng.random((4, 32, 32, 3), np.float32)
    gray = np.repeat(clean.mean(-1, keepdims=True), 3, -1)
    pixel = float(ae.loss_fn(training.model, gray, clean))
    none_gray, all_gray = (float(ae.loss_fn(training.model, gray, clean, training.classifier, np.full(4, flag), 0.1))
                           for flag in (False, True))
    assert none_gray == pixel < all_gray
    key = jax.random.key(0)
    losses = [float(ae.train_step(training, clean, None, key)["loss"]) for _ in range(5)]
    assert losses[-1] < losses[0]
