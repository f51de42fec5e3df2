"""Encoder: predicts the shipped generator's latent for an image, the starting point of the Edit
tab's projection (``imgjax.edit``), as in in-domain GAN inversion (Zhu et al. 2020).

Reads top to bottom: config, model, loss, jit-compiled train step, plugging into the loop. The
encoder answers for every class at once (one latent per class), so a search can start from the
latent the image would have as a T-shirt, as a Shirt, and so on. It trains against the frozen
shipped generator and classifier of its dataset (``checkpoints/gan.safetensors``, ``cnn.safetensors``;
emoji: ``checkpoints/emoji/``) with two
losses: on real training images, the generator's rendering of the predicted latent in the image's
class should match the image in pixels and in the classifier's features; on the generator's own
samples, the predicted latent should be the one that made them, which keeps predictions where
the generator was trained (in-domain).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .family import Family, scheduled_optimizer
from .gan import conditions_of
from .layers import compute_dtype, max_pool_2x2


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    widths: tuple[int, int, int] = (32, 64, 64)  # channels at side, side/2, side/4
    hidden: int = 256
    latent_dim: int = 64  # the generator's
    num_classes: int = 10
    # As the generator's: with styles (emoji: the art sets) one latent per (class, style) condition.
    num_styles: int = 0
    side: int = 28  # the pictures' side (a multiple of 4) and channels (``datasets.Dataset.sized``)
    channels: int = 1
    feature_weight: float = 0.01  # classifier-feature distance next to the pixel distance
    latent_weight: float = 0.1  # latent regression on the generator's own samples

    @property
    def conditions(self) -> int:
        return self.num_classes * max(self.num_styles, 1)


# ----------------------------------------------------------------------------- model

class Encoder(nnx.Module):
    """(N, side, side, channels) float32 in [0, 1] -> latents (N, conditions, latent_dim): one per
    condition (a class, or a class and a style) the generator takes."""

    def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs, dtype=None):
        w1, w2, w3 = config.widths
        conv = lambda cin, cout: nnx.Conv(cin, cout, (3, 3), dtype=dtype, rngs=rngs)
        self.conv1, self.conv2, self.conv3, self.conv4 = (conv(config.channels, w1), conv(w1, w2), conv(w2, w2),
                                                          conv(w2, w3))
        self.hidden = nnx.Linear((config.side // 4) ** 2 * w3, config.hidden, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(config.hidden, config.conditions * config.latent_dim, dtype=dtype, rngs=rngs)
        self.shape = (config.conditions, config.latent_dim)

    def __call__(self, images):
        h = nnx.relu(self.conv1(images * 2.0 - 1.0))
        h = nnx.relu(self.conv3(nnx.relu(self.conv2(max_pool_2x2(h)))))
        h = nnx.relu(self.conv4(max_pool_2x2(h)))
        h = nnx.relu(self.hidden(h.reshape(h.shape[0], -1)))
        return self.head(h).astype(jnp.float32).reshape(-1, *self.shape)


def latents_for(encoder: Encoder, images, labels):
    """(N, latent_dim): each image's predicted latent in the condition ``labels`` (N,) gives it."""
    return jnp.take_along_axis(encoder(images), labels[:, None, None], axis=1)[:, 0]


# ----------------------------------------------------------------------------- loss

def loss_fn(encoder: Encoder, generator, classifier, images, labels, key, feature_weight, latent_weight):
    """Pixel + feature distance of the rendered prediction to real images, + latent regression on
    samples. ``labels``: the generator's conditions; with skin tones, the encoder answers per
    (class, style) pair and the rendering takes the image's tone."""
    rendered = (generator(latents_for(encoder, images, generator.untoned(labels)), labels) + 1.0) / 2.0
    pixel = jnp.mean((rendered - images) ** 2)
    feature = jnp.mean((classifier.features(rendered) - jax.lax.stop_gradient(classifier.features(images))) ** 2)
    latent_key, label_key = jax.random.split(key)
    sample_latents = jax.random.normal(latent_key, (images.shape[0], encoder.shape[1]))
    sample_labels = jax.random.randint(label_key, (images.shape[0],), 0, encoder.shape[0])
    samples = jax.lax.stop_gradient((generator(sample_latents, sample_labels) + 1.0) / 2.0)
    latent = jnp.mean((latents_for(encoder, samples, sample_labels) - sample_latents) ** 2)
    total = pixel + feature_weight * feature + latent_weight * latent
    return total, {"pixel": pixel, "feature": feature, "latent": latent}


# ----------------------------------------------------------------------------- training

def learning_rate_schedule(config: EncoderConfig, train_config, total_steps: int):
    """One-cycle, as for the classifier: warm-up, then cosine decay."""
    return optax.cosine_onecycle_schedule(total_steps, train_config.learning_rate)


class EncoderTraining(nnx.Module):
    """The encoder and its optimizer, beside the frozen shipped generator and classifier."""

    def __init__(self, config: EncoderConfig, train_config, total_steps: int):
        from .checkpoint import default_weights, load_model  # the frozen models it inverts and sees with
        self.generator, self.classifier = (load_model(name, default_weights(name, train_config.dataset))[0]
                                           for name in ("gan", "cnn"))
        self.encoder = Encoder(config, rngs=nnx.Rngs(train_config.seed), dtype=compute_dtype(train_config.precision))
        schedule = lambda steps: learning_rate_schedule(config, train_config, steps)
        self.optimizer = nnx.Optimizer(self.encoder, scheduled_optimizer(optax.adam, schedule, total_steps),
                                       wrt=nnx.Param)
        self.feature_weight, self.latent_weight = config.feature_weight, config.latent_weight
        self.num_styles = config.num_styles


@nnx.jit
def train_step(training: EncoderTraining, images, labels, key):
    """One step on real images (B, side, side, channels) in [0, 1] with their labels (B,), (B, 2) or
    (B, 3) (``gan.conditions_of``)."""
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    conditions = conditions_of(labels, training.num_styles, training.generator.tone_stride)
    (loss, parts), grads = grad_fn(training.encoder, training.generator, training.classifier, images, conditions,
                                   key, training.feature_weight, training.latent_weight)
    training.optimizer.update(training.encoder, grads)
    return {"loss": loss, **parts}


# ----------------------------------------------------------------------------- inference

@nnx.jit
def encode(encoder: Encoder, images):
    """(N, side, side, channels) float32 in [0, 1] -> (N, conditions, latent_dim) latents."""
    return encoder(images)


# ----------------------------------------------------------------------------- plugging into the loop

EPOCH_EVAL_IMAGES = 1000


@nnx.jit
def _render_predictions(encoder: Encoder, generator, images, labels):
    return (generator(latents_for(encoder, images, generator.untoned(labels)), labels) + 1.0) / 2.0


def _rendered(training: EncoderTraining, held_out, count: int):
    """The first ``count`` held-out images, and the generator's rendering of the encoder's
    prediction for each in its own condition."""
    from .data import to_float
    index = np.arange(min(count, len(held_out)))
    images = jnp.asarray(to_float(held_out.images[index]))
    conditions = jnp.asarray(conditions_of(held_out.labels_at(index), training.num_styles,
                                           training.generator.tone_stride))
    return images, _render_predictions(training.encoder, training.generator, images, conditions)


def _evaluate(training: EncoderTraining, held_out, _train) -> dict:
    """Median PSNR of the encoder's prediction alone, rendered in each image's condition, on held-out images."""
    from .metrics import psnr
    images, rendered = _rendered(training, held_out, EPOCH_EVAL_IMAGES)
    return {"held_out_median_psnr": float(jnp.median(psnr(images, rendered)))}


def _epoch_picture(training: EncoderTraining, held_out):
    """Two rows: ten held-out images and the generator's rendering of the encoder's predictions."""
    from .images import image_grid
    return image_grid(jnp.concatenate(_rendered(training, held_out, 10)), rows=2)


FAMILY = Family(
    name="encoder",
    model_config=EncoderConfig(),
    defaults={"epochs": 5, "batch_size": 64, "learning_rate": 1e-3},
    create=EncoderTraining,
    train_step=train_step,
    evaluate=_evaluate,
    epoch_picture=_epoch_picture,
    build_model=lambda config: Encoder(config, rngs=nnx.Rngs(0)),
    serving_model=lambda training: training.encoder,
    schedule=learning_rate_schedule,
)
