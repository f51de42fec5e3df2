import jax
import numpy as np
from flax import nnx

from imgjax import cnn, data
from imgjax.train import TrainConfig


def test_shapes_probabilities_and_saliency():
    model = cnn.Classifier(cnn.CNNConfig(), rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).random((3, 28, 28, 1), np.float32)
    probabilities, saliency, features, styles = cnn.classify_with_saliency(model, x)
    assert styles is None  # garments have no second label
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert saliency.shape == (3, 28, 28) and float(saliency.min()) >= 0 and np.allclose(saliency.max((1, 2)), 1.0)
    assert cnn.extract_features(model, x).shape == (3, cnn.CNNConfig().hidden)


def test_augment_keeps_shape_and_content():
    x = np.zeros((8, 28, 28, 1), np.float32)
    x[:, 10:18, 10:18] = 1.0
    out = cnn.augment(jax.random.key(0), x)
    assert out.shape == x.shape
    assert np.allclose(np.asarray(out).sum((1, 2, 3)), 64.0)  # a shift of <= 2 px keeps the centred square
    assert not np.array_equal(np.asarray(out), x)


def test_train_steps_lower_the_loss(tiny_dataset):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    training = cnn.CNNTraining(cnn.CNNConfig(), TrainConfig("cnn", epochs=1, batch_size=64, learning_rate=3e-3), 30)
    images, labels = data.to_float(split.images[:64]), split.labels[:64]
    losses = [float(cnn.train_step(training, images, labels, jax.random.key(i))["loss"]) for i in range(30)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
