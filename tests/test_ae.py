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
