"""Classifier: a small VGG-style CNN with batch norm, dropout and light augmentation.

Reads top to bottom: config, model, augmentation and loss, jit-compiled train step, inference.
Layout: one 3x3 convolution at full size (few input channels, so cheap), then the wide convolutions
at half and quarter size (14x14 and 7x7 for 28x28 garments): on XLA:CPU the cost of a training step
is dominated by wide convolutions at full resolution, and moving them after the first pooling gives
2x the throughput for the same accuracy.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .family import Family, scheduled_optimizer
from .layers import compute_dtype, max_pool_2x2, random_shift


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    widths: tuple[int, int, int] = (32, 64, 128)  # channels at full, half and quarter size
    hidden: int = 256  # penultimate features (also used for the GAN's Fréchet distance)
    dropout: float = 0.3
    num_classes: int = 10
    num_styles: int = 0  # a second head names the picture's style (emoji: its art set); 0: none
    side: int = 28  # the pictures' side and channels (``datasets.Dataset.sized`` sets these four)
    channels: int = 1
    augment: bool = True  # random flips and shifts of the training images (``augment``)


# ----------------------------------------------------------------------------- model

class Classifier(nnx.Module):
    """(N, side, side, channels) float32 in [0, 1] -> logits (N, num_classes); ``style_logits``: the
    second head's (N, num_styles), from the same features."""

    def __init__(self, config: CNNConfig, *, rngs: nnx.Rngs, dtype=None):
        w1, w2, w3 = config.widths
        conv = lambda cin, cout: nnx.Conv(cin, cout, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.conv1, self.norm1 = conv(config.channels, w1), nnx.BatchNorm(w1, rngs=rngs)
        self.conv2, self.norm2 = conv(w1, w2), nnx.BatchNorm(w2, rngs=rngs)
        self.conv3, self.norm3 = conv(w2, w2), nnx.BatchNorm(w2, rngs=rngs)
        self.conv4, self.norm4 = conv(w2, w3), nnx.BatchNorm(w3, rngs=rngs)
        self.hidden = nnx.Linear((config.side // 4) ** 2 * w3, config.hidden, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(config.hidden, config.num_classes, dtype=dtype, rngs=rngs)
        self.style_head = nnx.Linear(config.hidden, config.num_styles, dtype=dtype, rngs=rngs) if config.num_styles else None
        self.dropout = config.dropout

    def blocks(self, images, train: bool = False):
        """The outputs of the four convolution blocks (full, half, half and quarter size)."""
        block = lambda conv, norm, x: nnx.relu(norm(conv(x), use_running_average=not train))
        first = block(self.conv1, self.norm1, images * 2.0 - 1.0)
        second = block(self.conv2, self.norm2, max_pool_2x2(first))
        third = block(self.conv3, self.norm3, second)
        return first, second, third, block(self.conv4, self.norm4, max_pool_2x2(third))

    def channel_means(self, images):
        """(N, sum of widths): every block's channels averaged over space, the statistics the
        familiarity check compares with the training data's."""
        return jnp.concatenate([b.mean(axis=(1, 2)) for b in self.blocks(images)], axis=-1)

    def features(self, images, train: bool = False, dropout_key=None):
        """Penultimate-layer features (N, hidden) float32, after ReLU."""
        x = self.blocks(images, train)[-1]
        h = nnx.relu(self.hidden(x.reshape(x.shape[0], -1))).astype(jnp.float32)
        if train and self.dropout > 0:
            keep = jax.random.bernoulli(dropout_key, 1.0 - self.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - self.dropout), 0.0)
        return h

    def __call__(self, images, train: bool = False, dropout_key=None):
        return self.head(self.features(images, train, dropout_key)).astype(jnp.float32)

    def both_logits(self, images, train: bool = False, dropout_key=None):
        """(class logits, style logits) from one pass; a model without a style head: (logits, None)."""
        h = self.features(images, train, dropout_key)
        styles = self.style_head(h).astype(jnp.float32) if self.style_head is not None else None
        return self.head(h).astype(jnp.float32), styles


# ----------------------------------------------------------------------------- augmentation and loss

def augment(key, images, max_shift: int = 2):
    """Random horizontal flip and a random translation of up to ``max_shift`` pixels (zero fill).
    Garments and emoji mean the same mirrored, so flips are label-preserving."""
    k_flip, k_shift = jax.random.split(key)
    flip = jax.random.bernoulli(k_flip, 0.5, (images.shape[0], 1, 1, 1))
    return random_shift(k_shift, jnp.where(flip, images[:, :, ::-1], images), max_shift)


def loss_fn(model: Classifier, images, labels, dropout_key):
    """Cross-entropy of the classes; labels (B, 2) add the style head's, with the same weight."""
    logits, style_logits = model.both_logits(images, train=True, dropout_key=dropout_key)
    classes = labels[:, 0] if labels.ndim == 2 else labels
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, classes).mean()
    if labels.ndim == 2:
        loss += optax.softmax_cross_entropy_with_integer_labels(style_logits, labels[:, 1]).mean()
    return loss, logits


# ----------------------------------------------------------------------------- training

def learning_rate_schedule(config: CNNConfig, train_config, total_steps: int):
    """One-cycle: a short warm-up then cosine decay reaches a given accuracy in fewer epochs than a
    constant rate (Smith & Topin 2017)."""
    return optax.cosine_onecycle_schedule(total_steps, train_config.learning_rate)


class CNNTraining(nnx.Module):
    """Everything that training changes: the model and its optimizer. ``total_steps`` None: the
    learning rate is set from outside as time passes (``family.scheduled_optimizer``)."""

    def __init__(self, config: CNNConfig, train_config, total_steps: int | None):
        self.model = Classifier(config, rngs=nnx.Rngs(train_config.seed), dtype=compute_dtype(train_config.precision))
        adamw = lambda learning_rate: optax.adamw(learning_rate, weight_decay=5e-4)
        schedule = lambda steps: learning_rate_schedule(config, train_config, steps)
        self.optimizer = nnx.Optimizer(self.model, scheduled_optimizer(adamw, schedule, total_steps), wrt=nnx.Param)
        self.augment = config.augment


@nnx.jit
def train_step(training: CNNTraining, images, labels, key):
    """One optimizer step on a batch: images (B, side, side, channels) in [0, 1], labels (B,) int32
    classes, or (B, 2) classes and styles."""
    augment_key, dropout_key = jax.random.split(key)
    if training.augment:
        images = augment(augment_key, images)
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(training.model, images, labels, dropout_key)
    training.optimizer.update(training.model, grads)
    classes = labels[:, 0] if labels.ndim == 2 else labels
    return {"loss": loss, "accuracy": jnp.mean(logits.argmax(-1) == classes)}


# ----------------------------------------------------------------------------- inference

@nnx.jit
def predict_probabilities(model: Classifier, images):
    """(N, side, side, channels) float32 in [0, 1] -> class probabilities (N, num_classes)."""
    return jax.nn.softmax(model(images))


@nnx.jit
def predict_style_probabilities(model: Classifier, images):
    """(N, side, side, channels) float32 in [0, 1] -> style probabilities (N, num_styles)."""
    return jax.nn.softmax(model.both_logits(images)[1])


@nnx.jit
def extract_channel_means(model: Classifier, images):
    """(N, side, side, channels) float32 in [0, 1] -> the familiarity statistics (N, sum of widths)."""
    return model.channel_means(images)


@nnx.jit
def extract_features(model: Classifier, images):
    """(N, side, side, channels) float32 in [0, 1] -> penultimate features (N, hidden)."""
    return model.features(images)


@nnx.jit
def features_and_names(model: Classifier, images):
    """(N, side, side, channels) float32 in [0, 1] -> penultimate features (N, hidden), the class
    named (N,) and the style named (N,; -1 without a style head), from one pass."""
    h = model.features(images)
    styles = model.style_head(h).argmax(-1) if model.style_head is not None else jnp.full(h.shape[0], -1)
    return h, model.head(h).argmax(-1), styles


@nnx.jit
def classify_with_saliency(model: Classifier, images):
    """Probabilities (N, C), a saliency map (N, H, W) in [0, 1], the channel means used by
    ``Familiarity``, and the style probabilities (N, S) (None without a style head). Saliency: the magnitude of the gradient of the top class's logit with respect to
    each input pixel (the largest over colour channels), normalised per image (Simonyan et al. 2014)."""
    def top_logit(x):
        logits, style_logits = model.both_logits(x)
        return jnp.take_along_axis(logits, logits.argmax(-1)[:, None], axis=1).sum(), (logits, style_logits)

    grads, (logits, style_logits) = jax.grad(top_logit, has_aux=True)(images)
    saliency = jnp.abs(grads).max(-1)
    saliency = saliency / (saliency.max(axis=(1, 2), keepdims=True) + 1e-12)
    styles = jax.nn.softmax(style_logits) if style_logits is not None else None
    return jax.nn.softmax(logits), saliency, model.channel_means(images), styles


@dataclasses.dataclass
class Familiarity:
    """How familiar an input looks to the classifier: the Mahalanobis distance of its feature
    statistics (``Classifier.channel_means``: every block's channels averaged over space) to the
    nearest class mean, under one covariance shared by the classes (after Lee et al. 2018, who use
    every layer's statistics).

    Softmax confidence alone cannot say "this is not a garment" (on uniform noise the network answers
    "Bag" with confidence), nor can penultimate features alone; the statistics of all blocks can.
    ``threshold`` is a percentile of the distances of held-out training images, so that share of
    real garments is flagged by construction."""

    means: np.ndarray  # (classes, features)
    precision: np.ndarray  # (features, features): inverse of the shared covariance
    threshold: float

    @classmethod
    def fit(cls, features, labels, heldout_features, percentile: float = 99.0) -> "Familiarity":
        features = np.asarray(features, np.float64)
        classes = int(labels.max()) + 1
        means = np.stack([features[labels == c].mean(0) for c in range(classes)])
        centred = features - means[labels]
        covariance = centred.T @ centred / len(features)
        covariance += 1e-3 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))  # ridge: some features are rarely active
        familiarity = cls(means.astype(np.float32), np.linalg.inv(covariance).astype(np.float32), 0.0)
        familiarity.threshold = float(np.percentile(familiarity.distance(heldout_features), percentile))
        return familiarity

    def distance(self, features) -> np.ndarray:
        """(N, features) -> (N,) Mahalanobis distance to the nearest class mean."""
        diff = np.asarray(features, np.float32)[:, None, :] - self.means[None]  # (N, C, D)
        squared = np.einsum("ncd,de,nce->nc", diff, self.precision, diff)
        return np.sqrt(np.maximum(squared.min(1), 0.0))

    def unfamiliar(self, features) -> np.ndarray:
        """(N, features) -> (N,) booleans: farther from every class than ``threshold``."""
        return self.distance(features) > self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        return {"means": self.means, "precision": self.precision, "threshold": np.float32([self.threshold])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Familiarity":
        return cls(arrays["means"], arrays["precision"], float(arrays["threshold"][0]))


def predict_in_batches(fn, model, images: np.ndarray, batch_size: int = 1000):
    """Apply a jitted ``fn(model, batch)`` over (N, H, W, C) images in fixed-size batches
    (the last one padded) so only one shape is ever compiled; its output for all N (an array, or a
    tuple of arrays where ``fn`` returns one)."""
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        outputs.append(jax.tree.map(lambda output: np.asarray(output)[:len(chunk)], fn(model, padded)))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


# ----------------------------------------------------------------------------- plugging into the loop

def confusion_matrix(model: Classifier, split) -> np.ndarray:
    """(C, C) int counts: rows true class, columns predicted, over a whole split."""
    from .data import to_float
    predicted = predict_in_batches(predict_probabilities, model, to_float(split.images)).argmax(-1)
    k = model.head.out_features
    return np.bincount(split.labels * k + predicted, minlength=k * k).reshape(k, k)


def balanced_accuracy(matrix: np.ndarray) -> float:
    """The mean over the classes present of each class's accuracy (rows: true classes)."""
    counts = matrix.sum(1)
    return float((np.diag(matrix)[counts > 0] / counts[counts > 0]).mean())


def style_accuracy(model: Classifier, split) -> float:
    """The share of a split's pictures whose style (``Split.styles``) the style head names."""
    from .data import to_float
    predicted = predict_in_batches(predict_style_probabilities, model, to_float(split.images)).argmax(-1)
    return float(np.mean(predicted == split.styles))


def _evaluate(training: CNNTraining, split, _train) -> dict:
    matrix = confusion_matrix(training.model, split)
    figures = {"held_out_accuracy": np.trace(matrix) / matrix.sum(), "held_out_balanced_accuracy": balanced_accuracy(matrix)}
    if training.model.style_head is not None:
        figures["held_out_style_accuracy"] = style_accuracy(training.model, split)
    return figures


def _epoch_picture(training: CNNTraining, split):
    from .images import confusion_matrix_image
    return np.asarray(confusion_matrix_image(confusion_matrix(training.model, split), split.classes))


FAMILY = Family(
    name="cnn",
    model_config=CNNConfig(),
    defaults={"epochs": 15, "batch_size": 128, "learning_rate": 2e-3},
    create=CNNTraining,
    train_step=train_step,
    evaluate=_evaluate,
    epoch_picture=_epoch_picture,
    build_model=lambda config: Classifier(config, rngs=nnx.Rngs(0)),
    serving_model=lambda training: training.model,
    schedule=learning_rate_schedule,
)
