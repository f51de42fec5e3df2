"""Class-conditional DCGAN: a generator and a projection discriminator, non-saturating loss, an
exponential moving average (EMA) of the generator's weights for sampling, and truncated sampling.

Reads top to bottom: config, generator, discriminator, losses, jit-compiled train step, inference.
Upsampling is a 3x3 convolution followed by depth-to-space instead of a transposed convolution
(see ``imgjax.layers``); downsampling in the discriminator is space-to-depth followed by a
convolution, the same receptive field as DCGAN's strided 4x4 convolutions. Each network has one
3x3 convolution more per resolution than DCGAN's (the ``refine`` layers): with them the 20-epoch
recipe reached 3.8x the Fréchet floor instead of 7.6x (docs/gan-recipe.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from .layers import (
    compute_dtype,
    conv_by_patches,
    depth_to_space,
    full_float32,
    space_to_depth,
)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    latent_dim: int = 64
    num_classes: int = 10
    class_embedding: int = 32
    generator_widths: tuple[int, int, int] = (96, 48, 24)  # channels at 7x7, 14x14, 28x28
    # Channels at 14x14, 7x7. Wider (80, 160) costs a quarter more time an epoch and ended at 3.21x
    # the floor against 3.01x after 20 epochs (2 cores; level all the way: docs/gan-recipe.md).
    discriminator_widths: tuple[int, int] = (64, 128)
    # Sampling uses this moving average of G's weights. 0.9993 (a memory of ~1400 steps, 1.5 epochs):
    # on the linear decay below (then over the last half), 3.01x the floor after 20 epochs against
    # 3.02x, 3.03x, 3.05x for 0.9992, 0.9991, 0.999 and 3.03x for 0.9995 (2 cores, the same training,
    # the averages kept side by side).
    # On an H100, 0.9997 was behind 0.9995 in every run (3.59x against 3.25x, 3.73x against 3.53x).
    ema_decay: float = 0.9993
    # R1 penalty (Mescheder et al. 2018): gamma/2 x the squared gradient of D's score on real images.
    # It keeps D smooth where the data are; at 12 epochs (GPU) gamma 1 took the Fréchet distance from
    # 62x to 29x the floor (gamma 10: 33x; hinge loss or a two-time-scale update rule: no better);
    # on later recipes gamma 0.3, 0.5 and 3 were behind too, and on the shipped one gamma 0.1 (8.1x
    # against 6.10x after 10 epochs, 2 cores).
    r1_gamma: float = 1.0
    # Lazy regularisation (Karras et al. 2020, StyleGAN2): the penalty, weighted by the interval, on
    # every r1_interval-th step only. Its second backward pass costs 16% of a step (2 cores: 489
    # against 569 images/s); once in 8 steps, 2%.
    r1_interval: int = 8
    # Both learning rates decay to 0 over this last fraction of the steps (constant before), so the
    # last epochs refine rather than wander. With a constant rate the distance stalls near 6x the
    # floor from epoch 10 on; decaying (along a half cosine) over the last half instead of the last
    # quarter gave 3.54x against 3.77x after 20 epochs (2 cores), ahead after every epoch from the
    # 11th; over the last three quarters, 3.71x after 18 (against 3.43x). Along the line below, the
    # last 60% (from the 9th epoch of 20) beat the last half: 2.96x against 3.01x after 20 epochs,
    # ahead after every epoch from the 9th (the same run until then), and nearer 10k training images
    # too (5.42 against 5.56, a check that leaves the test set out).
    decay_fraction: float = 0.6
    # The decay's shape: "linear" or "cosine". Along a half cosine the last epoch runs below 2.4% of
    # the rate and moved the distance only from 3.08x to 3.07x; along a line it starts that epoch at
    # 10% and the distance fell to the end: 3.03x against 3.07x (2 cores, the same run resumed from
    # its epoch-10 state, where the two schedules are still the same constant; ahead after epochs 11
    # to 16, behind after 17 to 19).
    decay_shape: str = "linear"
    # Adam's (beta1, beta2) for both players: no momentum and a shorter second-moment memory, as in
    # the R1 paper's and StyleGAN2's training, instead of DCGAN's (0.5, 0.999): 14.2x the floor
    # against 16.7x after the 20-epoch compressed recipe (2 cores), ahead at every epoch.
    adam_betas: tuple[float, float] = (0.0, 0.99)
    # Minibatch standard deviation (Karras et al. 2018, ProGAN), measured within each class: D sees,
    # as one extra channel before its last convolution, how much the images of each image's class
    # vary within its block of this many consecutive images, so a generator whose samples of a class
    # are too alike is told so (the generator before it: 84% to 103% of the real features' variance
    # within a class). Real and fake batches share their labels, so D sees the same make-up in both.
    # 32 is one device's shard at batch 64 on 2 devices: no block spans two shards (ProGAN's strided
    # groups did: an all-gather that cost the step 18%). 20 epochs on 2 cores, EMA 0.9995: 3.07x the
    # floor against 3.21x with ProGAN's spread over groups of 4 images of any class
    # (minibatch_std_by_class=False, minibatch_std_group=4) and 3.35x without either; ahead of the
    # groups of 4 at every epoch from the 4th. The step: ~3.5% slower than without (paired windows:
    # 2% for groups of 4, 1.6% more by class). 0: off.
    minibatch_std_group: int = 32
    minibatch_std_by_class: bool = True

    def __post_init__(self):
        if self.decay_shape not in ("linear", "cosine"):  # `imgjax train --set` takes any string
            raise ValueError(f"decay_shape={self.decay_shape}: expected linear or cosine")


# ----------------------------------------------------------------------------- generator

class Generator(nnx.Module):
    """(latents (N, latent_dim), labels (N,) int) -> images (N, 28, 28, 1) float32 in [-1, 1]."""

    def __init__(self, config: GANConfig, *, rngs: nnx.Rngs, dtype=None):
        c7, c14, c28 = config.generator_widths
        self.embed = nnx.Embed(config.num_classes, config.class_embedding, rngs=rngs)
        self.project = nnx.Linear(config.latent_dim + config.class_embedding, 7 * 7 * c7, dtype=dtype, rngs=rngs)
        self.norm0 = nnx.BatchNorm(7 * 7 * c7, rngs=rngs)
        self.up1 = nnx.Conv(c7, 4 * c14, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm1 = nnx.BatchNorm(c14, rngs=rngs)
        # After each upsampling, a 3x3 convolution at the new resolution (refine1, refine2): alone,
        # 7.85x the Fréchet floor against 9.58x (20 epochs, learning rate 3e-4, GPU); with D's extra
        # convolution, 4.33x against 5.56x.
        self.refine1 = nnx.Conv(c14, c14, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.refine_norm1 = nnx.BatchNorm(c14, rngs=rngs)
        self.up2 = nnx.Conv(c14, 4 * c28, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.BatchNorm(c28, rngs=rngs)
        self.refine2 = nnx.Conv(c28, c28, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.refine_norm2 = nnx.BatchNorm(c28, rngs=rngs)
        self.to_image = nnx.Conv(c28, 1, (3, 3), dtype=dtype, rngs=rngs)
        self.c7 = c7

    def __call__(self, latents, labels, train: bool = False):
        return self.synthesize(latents, self.embed(labels), train)

    def synthesize(self, latents, class_vectors, train: bool = False):
        """Images from latents and class embedding vectors (N, class_embedding): blends of two
        classes' vectors give the in-between garments of a class interpolation."""
        norm = lambda layer, x: nnx.relu(layer(x, use_running_average=not train))
        h = self.project(jnp.concatenate([latents, class_vectors], axis=-1))
        h = norm(self.norm0, h).reshape(latents.shape[0], 7, 7, self.c7)
        h = norm(self.norm1, depth_to_space(self.up1(h)))  # 14x14
        h = norm(self.refine_norm1, self.refine1(h))
        h = norm(self.norm2, depth_to_space(self.up2(h)))  # 28x28
        h = norm(self.refine_norm2, self.refine2(h))
        return jnp.tanh(self.to_image(h).astype(jnp.float32))


# ----------------------------------------------------------------------------- discriminator

class Discriminator(nnx.Module):
    """(images (N, 28, 28, 1) in [-1, 1], labels (N,)) -> real/fake logits (N,).

    Class conditioning by projection (Miyato & Koyama 2018): the logit is an unconditional score
    plus the inner product of a class embedding with the image features."""

    def __init__(self, config: GANConfig, *, rngs: nnx.Rngs, dtype=None):
        c14, c7 = config.discriminator_widths
        # Four input channels: computed as a product of patches, 2x faster than XLA:CPU's convolution
        # here with the input gradients G's update and the R1 penalty need (see conv_by_patches).
        self.conv14 = nnx.Conv(4, c14, (3, 3), dtype=dtype, rngs=rngs, conv_general_dilated=conv_by_patches)
        self.conv7 = nnx.Conv(4 * c14, c7, (2, 2), dtype=dtype, rngs=rngs)
        # A 3x3 convolution at 7x7 before the score: the largest single gain of the recipe search
        # (20 epochs, learning rate 3e-4, GPU: 5.56x the Fréchet floor against 9.58x), for a quarter
        # of the step's time on 2 cores.
        self.std_group = config.minibatch_std_group
        self.std_by_class = config.minibatch_std_by_class
        self.num_classes = config.num_classes
        self.refine7 = nnx.Conv(c7 + (1 if self.std_group else 0), c7, (3, 3), dtype=dtype, rngs=rngs)
        self.score = nnx.Linear(7 * 7 * c7, 1, dtype=dtype, rngs=rngs)
        self.class_projection = nnx.Embed(config.num_classes, 7 * 7 * c7, rngs=rngs)

    def __call__(self, images, labels):
        h = nnx.leaky_relu(self.conv14(space_to_depth(images)), 0.2)   # 14x14
        h = nnx.leaky_relu(self.conv7(space_to_depth(h)), 0.2)         # 7x7
        if self.std_group and self.std_by_class:
            h = append_class_std(h, labels, self.std_group, self.num_classes)
        elif self.std_group:
            h = append_minibatch_std(h, self.std_group)
        h = nnx.leaky_relu(self.refine7(h), 0.2)
        h = h.reshape(h.shape[0], -1).astype(jnp.float32)
        return self.score(h)[:, 0].astype(jnp.float32) + jnp.sum(self.class_projection(labels) * h, axis=-1)


def append_minibatch_std(h, group: int):
    """(N, H, W, C) -> (N, H, W, C + 1): the extra channel holds, for each image, the mean over
    features of their standard deviation across its group of ``group`` images (fewer where N is not
    a multiple of ``group``: the greatest common divisor of the two)."""
    n, height, width, channels = h.shape
    group = math.gcd(group, n)
    # Groups of consecutive images, so that no group spans two devices' shards of the batch
    # (ProGAN's strided groups did: an all-gather that cost the step 18%).
    grouped = h.astype(jnp.float32).reshape(n // group, group, height, width, channels)
    spread = jnp.repeat(jnp.sqrt(jnp.var(grouped, axis=1) + 1e-8).mean(axis=(1, 2, 3)), group)  # (N,)
    feature = jnp.broadcast_to(spread[:, None, None, None], (n, height, width, 1)).astype(h.dtype)
    return jnp.concatenate([h, feature], axis=-1)


def append_class_std(h, labels, group: int, num_classes: int):
    """Like ``append_minibatch_std``, but each image's value is the spread of the features over the
    images of its own class within its block of ``group`` consecutive images (an image alone of its
    class there: sqrt(1e-8), no spread)."""
    n, height, width, _ = h.shape
    group = math.gcd(group, n)
    features = h.astype(jnp.float32).reshape(n // group, group, -1)             # (blocks, group, F)
    members = jax.nn.one_hot(labels.reshape(n // group, group), num_classes)    # (blocks, group, K)
    count = jnp.maximum(members.sum(axis=1), 1.0)[..., None]                    # (blocks, K, 1)
    # Each class's mean and mean square in each block, as matrix products with the membership, at
    # full float32 precision: a GPU rounds their operands to TF32 by default (a TPU to bfloat16), and
    # the spread, a difference of the two, then loses most of its digits (on an H100, 20 epochs of
    # the cosine-decay recipe ended 4.5x to 6.0x the Fréchet floor instead of ~3x). The CPU computes
    # float32 products in full anyway: there the results are the same bit for bit.
    mean = jnp.einsum("bik,bif->bkf", members, features, precision="highest") / count
    square = jnp.einsum("bik,bif->bkf", members, features * features, precision="highest") / count
    spread = jnp.sqrt(jnp.maximum(square - mean * mean, 0.0) + 1e-8).mean(axis=-1)  # (blocks, K)
    per_image = jnp.einsum("bik,bk->bi", members, spread, precision="highest").reshape(n, 1, 1, 1)
    return jnp.concatenate([h, jnp.broadcast_to(per_image, (n, height, width, 1)).astype(h.dtype)], axis=-1)


# ----------------------------------------------------------------------------- losses

def discriminator_loss(discriminator, real, fake, labels, r1_gamma: float = 0.0):
    """Non-saturating GAN loss for D: -log D(real) - log(1 - D(fake)), in logits via softplus, plus
    the R1 penalty on real images."""
    fake_term = jax.nn.softplus(discriminator(fake, labels))
    if not r1_gamma:  # a Python float: without the penalty, no second backward pass is traced
        return jnp.mean(jax.nn.softplus(-discriminator(real, labels)) + fake_term)

    def total_and_scores(images):
        scores = discriminator(images, labels)
        return jnp.sum(scores), scores

    # Without the minibatch feature D scores each image on its own (no batch norm), so the gradient
    # of the summed scores with respect to the batch holds every image's own gradient; with it, each
    # also carries the small pull of its group's scores through their spread (as in StyleGAN2's R1).
    # The scores come back as the aux output.
    (_, real_scores), score_gradients = jax.value_and_grad(total_and_scores, has_aux=True)(real)
    penalty = jnp.mean(jnp.sum(score_gradients ** 2, axis=(1, 2, 3)))
    return jnp.mean(jax.nn.softplus(-real_scores) + fake_term) + 0.5 * r1_gamma * penalty


def generator_loss(generator, discriminator, latents, labels):
    """Non-saturating loss for G (Goodfellow et al. 2014): -log D(G(z)), stronger early gradients
    than minimising log(1 - D(G(z))). Also returns the fakes, so D's step reuses them."""
    fake = generator(latents, labels, train=True)
    return jnp.mean(jax.nn.softplus(-discriminator(fake, labels))), fake


# ----------------------------------------------------------------------------- training

def learning_rate_schedule(rate: float, total_steps: int, decay_fraction: float, decay_shape: str):
    """``rate``, then down to 0 along a line (``decay_shape`` "linear") or a half cosine ("cosine")
    over the last ``decay_fraction`` of ``total_steps``."""
    decay_steps = int(total_steps * decay_fraction)
    if decay_steps < 1:
        return rate
    decay = (optax.linear_schedule(rate, 0.0, decay_steps) if decay_shape == "linear"
             else optax.cosine_decay_schedule(rate, decay_steps))
    return optax.join_schedules([optax.constant_schedule(rate), decay], [total_steps - decay_steps])


class GANTraining(nnx.Module):
    def __init__(self, config: GANConfig, train_config, total_steps: int):
        rngs, dtype = nnx.Rngs(train_config.seed), compute_dtype(train_config.precision)
        self.generator = Generator(config, rngs=rngs, dtype=dtype)
        self.discriminator = Discriminator(config, rngs=rngs, dtype=dtype)
        self.ema_generator = nnx.clone(self.generator)
        b1, b2 = config.adam_betas
        schedule = learning_rate_schedule(train_config.learning_rate, total_steps, config.decay_fraction,
                                          config.decay_shape)
        adam = optax.adam(schedule, b1, b2)
        self.g_optimizer = nnx.Optimizer(self.generator, adam, wrt=nnx.Param)
        self.d_optimizer = nnx.Optimizer(self.discriminator, adam, wrt=nnx.Param)
        self.ema_decay = config.ema_decay
        self.r1_gamma = config.r1_gamma
        self.r1_interval = config.r1_interval
        self.latent_dim = config.latent_dim


# graph=False (NNX's tree mode) flattens the training state as a plain pytree on each call instead
# of walking NNX's object graph: for the GAN's three networks and two optimizers that walk cost the
# Python thread 7.6 ms of CPU a step (tree mode: 1.6 ms), taken from the cores XLA computes on. The
# same values bit for bit. (The other families' steps, with one network each, gained nothing.)
@functools.partial(nnx.jit, static_argnames="with_r1", graph=False)
def train_step(training: GANTraining, images, labels, key, with_r1: bool = False):
    """One step for D and G on a batch of real images (B, 28, 28, 1) in [0, 1] with labels (the fakes
    are drawn for the same labels), then the EMA generator is updated. ``with_r1`` adds the R1
    penalty, weighted by the interval: the two variants are two compiled programs, chosen per step
    in Python (``step_options``), since under ``lax.cond`` XLA:CPU runs convolutions 20-45x slower."""
    # Every convolution and matrix product in full float32, whatever the device: a GPU rounds their
    # operands to TF32 by default (a TPU to bfloat16), and the GAN's training is sensitive to it: on
    # an H100, after 18 epochs of this recipe, seeds 0 to 5 measured 3.30x to 3.46x the Fréchet floor
    # in full float32 (mean 3.38x) against 3.30x to 3.99x with TF32 (mean 3.64x). A CPU computes
    # float32 in full anyway: there this changes nothing. (--precision bfloat16 stays bfloat16.)
    with full_float32():
        real = images * 2.0 - 1.0
        latents = jax.random.normal(key, (images.shape[0], training.latent_dim))
        # Both players' gradients come from the same fakes and the same discriminator (simultaneous
        # updates): one generator forward pass per step instead of two, a quarter less work.
        g_grad_fn = nnx.value_and_grad(generator_loss, has_aux=True)
        (g_loss, fake), g_grads = g_grad_fn(training.generator, training.discriminator, latents, labels)
        fake = jax.lax.stop_gradient(fake)
        r1_gamma = training.r1_gamma * training.r1_interval if with_r1 else 0.0
        d_loss, d_grads = nnx.value_and_grad(discriminator_loss)(training.discriminator, real, fake, labels, r1_gamma)
        training.g_optimizer.update(training.generator, g_grads)
        training.d_optimizer.update(training.discriminator, d_grads)

        # EMA of all generator state, batch-norm statistics included, so the averaged model's
        # normalisation matches its averaged weights when sampling in inference mode.
        decay = training.ema_decay
        averaged = jax.tree.map(lambda e, g: decay * e + (1.0 - decay) * g,
                                nnx.state(training.ema_generator), nnx.state(training.generator))
        nnx.update(training.ema_generator, averaged)
        return {"d_loss": d_loss, "g_loss": g_loss}


def step_options(training: GANTraining, step: int) -> dict:
    """``train_step``'s options at global step ``step``: the R1 penalty on every r1_interval-th step.
    (Reads only ``r1_gamma`` and ``r1_interval``, so the PyTorch mirror follows the same schedule.)"""
    return {"with_r1": bool(training.r1_gamma) and step % training.r1_interval == 0}


# ----------------------------------------------------------------------------- inference

def sample_latents(seed: int, count: int, latent_dim: int, truncation: float | None = None) -> jnp.ndarray:
    """(count, latent_dim) standard-normal latents from ``seed``. With ``truncation`` t, each value is
    drawn from the normal truncated to [-t, t]: lower t trades variety for typical-looking images
    (the truncation trick, Brock et al. 2019)."""
    key = jax.random.key(seed)
    if truncation is None:
        return jax.random.normal(key, (count, latent_dim))
    return jax.random.truncated_normal(key, -truncation, truncation, (count, latent_dim))


@nnx.jit
def generate_images(generator: Generator, latents, labels):
    """(N, latent_dim) latents and (N,) class ids -> (N, 28, 28, 1) float32 images in [0, 1]."""
    return (generator(latents, labels) + 1.0) / 2.0


@nnx.jit
def generate_blended(generator: Generator, latents, class_weights):
    """Like ``generate_images`` with (N, num_classes) class weights instead of labels: each image's
    class vector is the weighted mix of the class embeddings (one-hot weights give the classes)."""
    return (generator.synthesize(latents, class_weights @ generator.embed.embedding[...]) + 1.0) / 2.0


# ----------------------------------------------------------------------------- plugging into the loop

def _epoch_picture(training: GANTraining, split):
    """A 10x10 grid from fixed latents: one row per class, one column per latent (the same 'style')."""
    from .images import image_grid
    config_classes = training.generator.embed.num_embeddings
    latents = jnp.tile(sample_latents(0, 10, training.latent_dim), (config_classes, 1))
    labels = jnp.repeat(jnp.arange(config_classes), 10)
    return image_grid(generate_images(training.ema_generator, latents, labels), rows=config_classes)


# The classifier and the reference features, computed at the first epoch and reused while training
# on the same splits (held here, so the identity test cannot match other splits).
_REFERENCE: dict = {}


def _evaluate(training: GANTraining, test, train) -> dict:
    """``imgjax eval``'s figures for the EMA generator (10k samples), when the shipped classifier
    exists: the conditional accuracy and the Fréchet distance, also as a multiple of its floor."""
    from . import evaluate
    if _REFERENCE.get("test") is not test or _REFERENCE.get("train") is not train:
        classifier = evaluate.load_classifier_if_present()
        if classifier is None:
            return {}
        _REFERENCE.update(test=test, train=train, classifier=classifier,
                          features=evaluate.reference_features(classifier, test, train))
    figures = evaluate.measure_generator(training.ema_generator, _REFERENCE["classifier"], _REFERENCE["features"])
    return {k: figures[k] for k in ("conditional_accuracy", "frechet_distance", "frechet_ratio_to_floor")}


def _family():
    from .train import Family
    return Family(
        name="gan",
        model_config=GANConfig(),
        # 20 epochs: 57 minutes on 2 cores. Learning rate 5e-4 for both players (3e-4: 4.33x the
        # floor, 7e-4: 4.71x, against 3.80x; 20 epochs with the last-quarter decay, GPU).
        defaults={"epochs": 20, "batch_size": 64, "learning_rate": 5e-4},
        create=GANTraining,
        train_step=train_step,
        step_options=step_options,
        evaluate=_evaluate,
        epoch_picture=_epoch_picture,
        build_model=lambda config: Generator(config, rngs=nnx.Rngs(0)),
        serving_model=lambda training: training.ema_generator,
    )


FAMILY = _family()
