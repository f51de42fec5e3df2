"""Class-conditional DCGAN: a generator and a projection discriminator, non-saturating loss, an
exponential moving average (EMA) of the generator's weights for sampling, and truncated sampling.

Reads top to bottom: config, generator, discriminator, losses, jit-compiled train step, inference.
Upsampling is a 3x3 convolution followed by depth-to-space instead of a transposed convolution
(see ``imgjax.layers``); downsampling in the discriminator is space-to-depth followed by a
convolution, the same receptive field as DCGAN's strided 4x4 convolutions. Each network has one
3x3 convolution more per resolution than DCGAN's (the ``refine`` layers). The last section measures
a generator in the shipped classifier's features (``imgjax eval gan`` and the per-epoch figures).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .family import Family, scheduled_optimizer
from .images import colour_shares
from .layers import (
    compute_dtype,
    conv_by_patches,
    depth_to_space,
    full_float32,
    random_shift,
    space_to_depth,
)
from .metrics import frechet_distance, kernel_distance


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """The architecture and recipe; docs/gan-recipe.md ("Why each default") has the runs behind each value."""

    latent_dim: int = 64
    num_classes: int = 10
    # With styles (emoji: the art sets) the GAN is conditioned on each (class, style) pair, as one
    # of num_classes x num_styles conditions (``conditions``): "an animal in OpenMoji's style".
    num_styles: int = 0
    # With tones (emoji: skin tones) a third label: every (class, style) pair in each tone, tone t's
    # pairs after t blocks of them (``conditions_of``), so the default tone 0 keeps a pair's index.
    # A pair never seen in a tone (a building in a dark tone) is never asked for.
    num_tones: int = 0
    side: int = 28  # the pictures' side (a multiple of 4) and channels (``datasets.Dataset.sized``)
    channels: int = 1
    class_embedding: int = 32
    generator_widths: tuple[int, int, int] = (96, 48, 24)  # channels at side/4, side/2, side
    discriminator_widths: tuple[int, int] = (64, 128)  # channels at side/2, side/4
    # Sampling uses this moving average of G's weights (a memory of ~1400 steps, 1.5 epochs).
    ema_decay: float = 0.9993
    # R1 penalty (Mescheder et al. 2018): gamma/2 x the squared gradient of D's score on real images,
    # which keeps D smooth where the data are.
    r1_gamma: float = 1.0
    # Lazy regularisation (StyleGAN2): the penalty, weighted by the interval, on every r1_interval-th
    # step only, since its second backward pass costs a sixth of a step.
    r1_interval: int = 8
    # Both learning rates are constant, then decay to 0 over this last fraction of the steps, so the
    # last epochs refine rather than wander.
    decay_fraction: float = 0.6
    decay_shape: str = "linear"  # or "cosine"
    # Adam's (beta1, beta2) for both players: no momentum and a short second-moment memory, as in
    # the R1 paper and StyleGAN2, instead of DCGAN's (0.5, 0.999).
    adam_betas: tuple[float, float] = (0.0, 0.99)
    # Minibatch standard deviation (ProGAN), within each class: D sees, as one extra channel, how much
    # each class's images vary within a block of this many images, so too-alike samples are caught.
    # 32 is one device's shard at batch 64 on 2 devices, so no block spans two shards. 0: off.
    minibatch_std_group: int = 32
    minibatch_std_by_class: bool = True
    loss: str = "non-saturating"  # or "hinge" (``LOSSES``)
    # Differentiable augmentation (Zhao et al. 2020): D sees real and fake images alike randomly
    # shifted, recoloured and cut out, so on few images it cannot memorise them; G learns through
    # the same operations, and its samples carry none of them. "": off; else a comma-separated list
    # of ``AUGMENTATIONS``.
    diff_augment: str = ""
    # Auxiliary classification (AC-GAN, Odena et al. 2017, beside the projection): D also names
    # each real image's condition, weighted by this, and G is pushed to have its fakes named as
    # theirs, so samples carry what tells their condition apart. 0: off (no head).
    class_loss_weight: float = 0.0
    # With tones, a second head of D's names each real picture's skin tone alone, weighted by this,
    # and G is pushed to have its fakes' tones read as asked: within the condition head's 168-way
    # naming, neighbouring tones were drawn alike (docs/emoji.md, "Skin tones"). 0: no tone head.
    tone_loss_weight: float = 0.0
    # With tones, G is also pushed to give each tone's fakes in a batch the colours of that tone's
    # real pictures in it (``tone_colour_loss``: their mean colour histograms), weighted by this:
    # D's heads let a tone's skin drift by a shade to the next tone's (docs/emoji.md). 0: off.
    tone_colour_weight: float = 0.0
    # With tones, each condition's vector (G's embedding, D's projection) is its (class, style)
    # pair's plus its tone's (``ToneSharingEmbed``), so a tone is learnt from every picture in it,
    # not from each pair's few; False: a free vector per condition.
    share_tone_embedding: bool = False
    # Conditional normalisation (BigGAN): after each of G's normalisations past the first, a gain
    # and a bias drawn linearly from the condition's vector, so the condition steers every
    # resolution, not only the input it is concatenated to. Starts as the plain network (zeros).
    conditional_norm: bool = False
    # With tones, D also sees, as one more channel, how near each pixel's colour is to the skin
    # colour of the asked (art set, tone) (``skin_closeness``), within this width on [0, 1]: a skin a
    # shade off the tone asked is plain to D, where DiffAugment and the projection blur it; empty in
    # the default tone. 0: off.
    skin_channel_width: float = 0.0
    # G draws a mask beside its picture and fills it with one colour drawn linearly from the
    # condition's vector (``Generator.synthesize``): a tone's skin is one colour per (art set,
    # tone) in the drawings, which this gives G at once instead of through its whole network.
    skin_mask: bool = False
    # Each style's skin colour in each tone, (num_styles x num_tones x 3) in [0, 1], flat: filled
    # from the data (``datasets.Dataset.sized``, ``emoji.skin_palette``) where skin_channel_width is set.
    tone_palette: tuple[float, ...] = ()

    def __post_init__(self):  # `imgjax train --set` takes any string
        if self.decay_shape not in ("linear", "cosine"):
            raise ValueError(f"decay_shape={self.decay_shape}: expected linear or cosine")
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss}: expected {' or '.join(LOSSES)}")
        unknown = set(filter(None, self.diff_augment.split(","))) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"diff_augment={self.diff_augment}: expected a comma-separated list of {', '.join(AUGMENTATIONS)}")
        if self.side % 4:
            raise ValueError(f"side={self.side}: the generator doubles side/4 twice, so it must be a multiple of 4")

    @property
    def conditions(self) -> int:
        """How many conditions the networks embed: a class, a (class, style) pair, or one in a tone."""
        return self.num_classes * max(self.num_styles, 1) * max(self.num_tones, 1)

    @property
    def tone_stride(self) -> int:
        """The step from one tone's conditions to the next's (the (class, style) pairs); 0 without tones."""
        return self.num_classes * max(self.num_styles, 1) if self.num_tones else 0


def conditions_of(labels, num_styles: int, tone_stride: int = 0):
    """Batch labels (``data.Split.labels_at``) as condition indices: (B,) classes as they are; (B, 2)
    classes and styles as class x num_styles + style (a model without styles: style 0); (B, 3) plus
    tone x ``tone_stride`` (0: the model has no tones, and the third label is left out)."""
    if labels.ndim == 1:
        return labels
    pair = labels[:, 0] * max(num_styles, 1) + labels[:, 1]
    return pair + labels[:, 2] * tone_stride if labels.shape[1] == 3 else pair


def labels_of(conditions, num_styles: int, tone_stride: int = 0) -> np.ndarray:
    """``conditions_of``'s way back: (N,) condition indices as (N, 3) labels, class, style and tone
    (0 where the model has none)."""
    conditions = np.asarray(conditions)
    pairs = conditions % tone_stride if tone_stride else conditions
    tones = conditions // tone_stride if tone_stride else np.zeros_like(conditions)
    return np.stack([pairs // max(num_styles, 1), pairs % max(num_styles, 1), tones], axis=-1)


# ----------------------------------------------------------------------------- generator

class ToneSharingEmbed(nnx.Module):
    """``nnx.Embed``'s interface (``embedding``, ``num_embeddings``, ``features``, a call on indices)
    for conditions in tones: condition c's vector is the sum of its (class, style) pair's,
    c % ``tone_stride``, and its tone's, c // ``tone_stride``."""

    def __init__(self, num_embeddings: int, features: int, tone_stride: int, *, rngs: nnx.Rngs):
        self.num_embeddings, self.features, self.tone_stride = num_embeddings, features, tone_stride
        self.pairs = nnx.Embed(tone_stride, features, rngs=rngs)
        self.tones = nnx.Embed(num_embeddings // tone_stride, features, rngs=rngs)

    @property
    def embedding(self) -> jax.Array:
        """(num_embeddings, features): every condition's vector, tone by tone."""
        return (self.tones.embedding[...][:, None, :] + self.pairs.embedding[...][None]).reshape(-1, self.features)

    def __call__(self, conditions):
        return self.pairs(conditions % self.tone_stride) + self.tones(conditions // self.tone_stride)


def condition_embed(config: GANConfig, features: int, rngs: nnx.Rngs):
    """A vector of ``features`` per condition: ``ToneSharingEmbed`` where the config shares tones."""
    if config.share_tone_embedding and config.tone_stride:
        return ToneSharingEmbed(config.conditions, features, config.tone_stride, rngs=rngs)
    return nnx.Embed(config.conditions, features, rngs=rngs)


class Generator(nnx.Module):
    """(latents (N, latent_dim), conditions (N,) int) -> images (N, side, side, channels) float32 in [-1, 1].
    (Names follow the garments' sizes: 7, 14 and 28 are side/4, side/2 and side.)"""

    def __init__(self, config: GANConfig, *, rngs: nnx.Rngs, dtype=None):
        c7, c14, c28 = config.generator_widths
        self.base = config.side // 4
        self.embed = condition_embed(config, config.class_embedding, rngs)
        self.project = nnx.Linear(config.latent_dim + config.class_embedding, self.base ** 2 * c7, dtype=dtype,
                                  rngs=rngs)
        self.norm0 = nnx.BatchNorm(self.base ** 2 * c7, rngs=rngs)
        self.up1 = nnx.Conv(c7, 4 * c14, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm1 = nnx.BatchNorm(c14, rngs=rngs)
        # After each upsampling, a 3x3 convolution at the new resolution (refine1, refine2).
        self.refine1 = nnx.Conv(c14, c14, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.refine_norm1 = nnx.BatchNorm(c14, rngs=rngs)
        self.up2 = nnx.Conv(c14, 4 * c28, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm2 = nnx.BatchNorm(c28, rngs=rngs)
        self.refine2 = nnx.Conv(c28, c28, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.refine_norm2 = nnx.BatchNorm(c28, rngs=rngs)
        self.to_image = nnx.Conv(c28, config.channels + (1 if config.skin_mask else 0), (3, 3), dtype=dtype, rngs=rngs)
        self.skin_colour = nnx.Linear(config.class_embedding, config.channels, rngs=rngs) if config.skin_mask else None
        # Per normalisation after the first: its (gain, bias) from the condition's vector, or None.
        film = lambda width: nnx.Linear(config.class_embedding, 2 * width, kernel_init=nnx.initializers.zeros,
                                        rngs=rngs) if config.conditional_norm else None
        self.film1, self.refine_film1, self.film2, self.refine_film2 = film(c14), film(c14), film(c28), film(c28)
        self.c7 = c7
        self.num_styles = config.num_styles  # condition c is class c // num_styles, style c % num_styles
        self.tone_stride = config.tone_stride  # and with tones, in tone c // tone_stride

    @property
    def untoned_conditions(self) -> int:
        """The conditions in the default tone 0 (every class, or (class, style) pair, once)."""
        return self.tone_stride or self.embed.num_embeddings

    def untoned(self, conditions):
        """Each of ``conditions`` in the default tone: its class, or (class, style) pair, whatever its tone."""
        return conditions % self.untoned_conditions

    def __call__(self, latents, labels, train: bool = False):
        return self.synthesize(latents, self.embed(labels), train)

    @property
    def detail_shape(self) -> tuple[int, int, int]:
        """The shape of one picture's first features (side/4, side/4, channels), where ``synthesize``
        adds a projection's detail."""
        return self.base, self.base, self.c7

    def synthesize(self, latents, class_vectors, train: bool = False, details=None):
        """Images from latents and class embedding vectors (N, class_embedding): blends of two
        classes' vectors give the in-between garments of a class interpolation. ``details``
        (N, *detail_shape), added to the first features: what a projection found that the latent
        alone does not draw (``imgjax.edit``)."""
        def norm(layer, x, film=None):
            x = layer(x, use_running_average=not train)
            if film is not None:  # the condition's gain and bias, per channel
                gain, bias = jnp.split(film(class_vectors)[:, None, None, :], 2, axis=-1)
                x = x * (1 + gain) + bias
            return nnx.relu(x)

        h = self.project(jnp.concatenate([latents, class_vectors], axis=-1))
        h = norm(self.norm0, h).reshape(latents.shape[0], self.base, self.base, self.c7)
        if details is not None:
            h = h + details
        h = norm(self.norm1, depth_to_space(self.up1(h)), self.film1)  # 14x14
        h = norm(self.refine_norm1, self.refine1(h), self.refine_film1)
        h = norm(self.norm2, depth_to_space(self.up2(h)), self.film2)  # 28x28
        h = norm(self.refine_norm2, self.refine2(h), self.refine_film2)
        drawn = self.to_image(h).astype(jnp.float32)
        if self.skin_colour is None:
            return jnp.tanh(drawn)
        # The last channel is the mask (nearly empty at first: the logit less 4), the rest the picture.
        mask = jax.nn.sigmoid(drawn[..., -1:] - 4.0)
        colour = jnp.tanh(self.skin_colour(class_vectors).astype(jnp.float32))[:, None, None, :]
        return jnp.tanh(drawn[..., :-1]) * (1 - mask) + colour * mask


# ----------------------------------------------------------------------------- discriminator

class Discriminator(nnx.Module):
    """(images (N, side, side, channels) in [-1, 1], conditions (N,)) -> (real/fake logits (N,), the
    naming head's condition logits (N, conditions), the tone head's logits (N, tones); a head's
    logits are None without it).

    Class conditioning by projection (Miyato & Koyama 2018): the logit is an unconditional score
    plus the inner product of a class embedding with the image features."""

    def __init__(self, config: GANConfig, *, rngs: nnx.Rngs, dtype=None):
        c14, c7 = config.discriminator_widths
        # The skin colour per condition, (conditions, 3) on [-1, 1], the width D sees it within, and
        # whether the condition asks for a skin colour; tuples, so the jit-compiled step holds them
        # as constants. () : no skin channel.
        self.skin_colours, self.skin_width, self.skin_asked = (), 2 * config.skin_channel_width, ()
        if config.skin_channel_width and config.tone_palette:
            palette = np.asarray(config.tone_palette, np.float32).reshape(max(config.num_styles, 1), config.num_tones, 3)
            _, styles, tones = labels_of(np.arange(config.conditions), config.num_styles, config.tone_stride).T
            self.skin_colours = tuple(map(tuple, (2 * palette[styles, tones] - 1).tolist()))
            # The default tone asks for no skin colour: its channel is empty. Held to the default
            # yellow, G drew hands & body as pink organs, which have no skin (docs/emoji.md).
            self.skin_asked = tuple((tones > 0).tolist())
        channels = config.channels + (1 if self.skin_colours else 0)
        # Four input channels: computed as a product of patches, 2x faster than XLA:CPU's convolution
        # here with the input gradients G's update and the R1 penalty need (see conv_by_patches).
        self.conv14 = nnx.Conv(4 * channels, c14, (3, 3), dtype=dtype, rngs=rngs,
                               conv_general_dilated=conv_by_patches)
        self.conv7 = nnx.Conv(4 * c14, c7, (2, 2), dtype=dtype, rngs=rngs)
        # A 3x3 convolution at 7x7 before the score: the recipe search's largest single gain.
        self.std_group = config.minibatch_std_group
        self.std_by_class = config.minibatch_std_by_class
        self.num_classes = config.conditions
        self.refine7 = nnx.Conv(c7 + (1 if self.std_group else 0), c7, (3, 3), dtype=dtype, rngs=rngs)
        features = (config.side // 4) ** 2 * c7
        self.score = nnx.Linear(features, 1, dtype=dtype, rngs=rngs)
        self.class_projection = condition_embed(config, features, rngs)
        self.class_head = (nnx.Linear(features, config.conditions, dtype=dtype, rngs=rngs)
                           if config.class_loss_weight else None)
        self.tone_head = (nnx.Linear(features, config.num_tones, dtype=dtype, rngs=rngs)
                          if config.tone_loss_weight and config.num_tones else None)

    def __call__(self, images, labels):
        if self.skin_colours:
            images = jnp.concatenate([images, self.skin_channel(images, labels)], axis=-1)
        h = nnx.leaky_relu(self.conv14(space_to_depth(images)), 0.2)   # 14x14
        h = nnx.leaky_relu(self.conv7(space_to_depth(h)), 0.2)         # 7x7
        if self.std_group and self.std_by_class:
            h = append_class_std(h, labels, self.std_group, self.num_classes)
        elif self.std_group:
            h = append_minibatch_std(h, self.std_group)
        h = nnx.leaky_relu(self.refine7(h), 0.2)
        h = h.reshape(h.shape[0], -1).astype(jnp.float32)
        scores = self.score(h)[:, 0].astype(jnp.float32) + jnp.sum(self.class_projection(labels) * h, axis=-1)
        head = lambda layer: None if layer is None else layer(h).astype(jnp.float32)
        return scores, head(self.class_head), head(self.tone_head)

    def skin_channel(self, images, labels):
        """(N, side, side, 1) on [-1, 1]: each pixel's ``skin_closeness`` to the skin colour of the
        asked (art set, tone); -1 everywhere where the default tone is asked."""
        near = skin_closeness(images, jnp.asarray(self.skin_colours)[labels], self.skin_width)
        return jnp.where(jnp.asarray(self.skin_asked)[labels][:, None, None, None], near, -1.0)


def skin_closeness(images, colours, width: float):
    """(N, side, side, 3) images and (N, 3) colours, both on [-1, 1] -> (N, side, side, 1) on [-1, 1]:
    1 where a pixel is the image's colour, falling as a Gaussian of ``width`` with the distance to it."""
    distance = jnp.sum((images - colours[:, None, None, :]) ** 2, axis=-1, keepdims=True)
    return 2 * jnp.exp(-distance / (2 * width ** 2)) - 1


def append_minibatch_std(h, group: int):
    """(N, H, W, C) -> (N, H, W, C + 1): the extra channel holds, for each image, the mean over
    features of their standard deviation across its group of ``group`` images (fewer where N is not
    a multiple of ``group``: the greatest common divisor of the two)."""
    n, height, width, channels = h.shape
    group = math.gcd(group, n)
    # Groups of consecutive images, so that no group spans two devices' shards of the batch
    # (ProGAN's strided groups would need an all-gather across devices).
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
    # Each class's mean and mean square in each block, as matrix products with the membership, in
    # full float32: with TF32 operands (a GPU's default) the spread, their difference, loses its digits.
    mean = jnp.einsum("bik,bif->bkf", members, features, precision="highest") / count
    square = jnp.einsum("bik,bif->bkf", members, features * features, precision="highest") / count
    spread = jnp.sqrt(jnp.maximum(square - mean * mean, 0.0) + 1e-8).mean(axis=-1)  # (blocks, K)
    per_image = jnp.einsum("bik,bk->bi", members, spread, precision="highest").reshape(n, 1, 1, 1)
    return jnp.concatenate([h, jnp.broadcast_to(per_image, (n, height, width, 1)).astype(h.dtype)], axis=-1)


# ----------------------------------------------------------------------------- losses

# Each loss as three functions of D's scores (logits): D's term on real images, D's term on fakes,
# and G's term on fakes. Non-saturating (Goodfellow et al. 2014): -log D(real) - log(1 - D(fake)) for
# D and -log D(G(z)) for G, in logits via softplus; G's term gives strong gradients early, when D
# rejects its fakes easily. Hinge (Lim & Ye 2017, used by SAGAN and BigGAN): D only pushes scores
# past a margin of 1, and G raises D's score of its fakes.
LOSSES = {
    "non-saturating": (lambda s: jax.nn.softplus(-s), lambda s: jax.nn.softplus(s), lambda s: jax.nn.softplus(-s)),
    "hinge": (lambda s: jax.nn.relu(1.0 - s), lambda s: jax.nn.relu(1.0 + s), lambda s: -s),
}


def naming_loss(logits, labels):
    """A head's cross-entropy against the labels asked; 0 for a head D does not have (``logits`` None)."""
    if logits is None:
        return 0.0
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def heads_loss(outputs, labels, class_weight: float, tone_weight: float, tone_stride: int):
    """D's heads' weighted cross-entropies on ``outputs`` (``Discriminator.__call__``): the condition
    head's against ``labels``, the tone head's against their tones (``labels // tone_stride``)."""
    _, class_logits, tone_logits = outputs
    tones = labels // tone_stride if tone_stride else labels
    return class_weight * naming_loss(class_logits, labels) + tone_weight * naming_loss(tone_logits, tones)


def tone_colour_loss(fake, real, labels, tone_stride: int, num_tones: int):
    """The squared distance between each tone's mean colour histogram (``images.colour_shares``,
    square roots) over the batch's fakes and over its real pictures of that tone (both in [-1, 1]),
    summed over the tones; the fakes are drawn in the real pictures' conditions, so every tone in the
    batch has both."""
    in_tone = jax.nn.one_hot(labels // tone_stride, num_tones, dtype=fake.dtype)  # (B, tones)
    histograms = lambda pictures: jnp.sqrt(colour_shares((pictures + 1.0) / 2.0) + 1e-6)
    per_tone = lambda pictures: (in_tone.T @ histograms(pictures)) / jnp.maximum(in_tone.sum(0), 1.0)[:, None]
    return jnp.sum((per_tone(fake) - jax.lax.stop_gradient(per_tone(real))) ** 2)


def discriminator_loss(discriminator, real, fake, labels, r1_gamma: float = 0.0, loss: str = "non-saturating",
                       class_weight: float = 0.0, tone_weight: float = 0.0, tone_stride: int = 0):
    """D's ``loss`` (``LOSSES``) on a batch of real and fake images, plus the R1 penalty on real images
    and, with ``class_weight`` and ``tone_weight``, its heads' naming of the real images' conditions
    and tones (``heads_loss``)."""
    real_term, fake_term, _ = LOSSES[loss]
    fake_term = fake_term(discriminator(fake, labels)[0])

    def total_and_outputs(images):  # the scores' sum (for R1's gradient), and D's outputs as aux
        outputs = discriminator(images, labels)
        return jnp.sum(outputs[0]), outputs

    if r1_gamma:  # a Python float: without the penalty, no second backward pass is traced
        # Without the minibatch feature D scores each image on its own (no batch norm), so the
        # gradient of the summed scores with respect to the batch holds every image's own gradient;
        # with it, each also carries the small pull of its group's scores through their spread (as
        # in StyleGAN2's R1).
        (_, outputs), score_gradients = jax.value_and_grad(total_and_outputs, has_aux=True)(real)
        penalty = jnp.mean(jnp.sum(score_gradients ** 2, axis=(1, 2, 3)))
    else:
        outputs, penalty = total_and_outputs(real)[1], 0.0
    return (jnp.mean(real_term(outputs[0]) + fake_term) + 0.5 * r1_gamma * penalty
            + heads_loss(outputs, labels, class_weight, tone_weight, tone_stride))


def generator_loss(generator, discriminator, latents, labels, loss: str = "non-saturating", augment=None,
                   class_weight: float = 0.0, tone_weight: float = 0.0, tone_stride: int = 0,
                   real=None, colour_weight: float = 0.0, num_tones: int = 0):
    """G's ``loss`` (``LOSSES``) on fakes drawn from ``latents`` (D judging them through ``augment``
    where given), plus, with ``class_weight`` and ``tone_weight``, D's heads naming their conditions
    and tones wrongly (``heads_loss``), and with ``colour_weight``, its tones' colours against the
    ``real`` pictures' (``tone_colour_loss``); also returns the fakes, so D's step reuses them."""
    fake = generator(latents, labels, train=True)
    outputs = discriminator(augment(fake) if augment else fake, labels)
    total = jnp.mean(LOSSES[loss][2](outputs[0])) + heads_loss(outputs, labels, class_weight, tone_weight, tone_stride)
    if colour_weight:  # a Python float: without it, no histogram is traced
        total = total + colour_weight * tone_colour_loss(fake, real, labels, tone_stride, num_tones)
    return total, fake


# ----------------------------------------------------------------------------- differentiable augmentation

def _colour(key, images):
    """Per image: brightness shifted by up to 0.5, saturation scaled by 0 to 2, contrast by 0.5 to 1.5
    (DiffAugment's values, on images in [-1, 1])."""
    k_bright, k_saturation, k_contrast = jax.random.split(key, 3)
    draw = lambda k, low, high: jax.random.uniform(k, (images.shape[0], 1, 1, 1), minval=low, maxval=high)
    images = images + draw(k_bright, -0.5, 0.5)
    grey = images.mean(axis=-1, keepdims=True)
    images = (images - grey) * draw(k_saturation, 0.0, 2.0) + grey
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return (images - mean) * draw(k_contrast, 0.5, 1.5) + mean


def _translation(key, images, fraction: float = 0.125):
    """Per image: shifted by up to ``fraction`` of the side each way, the uncovered border zero."""
    return random_shift(key, images, max(1, round(images.shape[1] * fraction)))


def _cutout(key, images, fraction: float = 0.5):
    """Per image: a square of ``fraction`` of the side, anywhere (partly outside too), set to zero."""
    n, height, width, _ = images.shape
    size = round(height * fraction)
    corner = jax.random.randint(key, (n, 2), -(size // 2), height - size // 2 + 1)
    inside = lambda length, start: (jnp.arange(length)[None] >= start[:, None]) & (jnp.arange(length)[None] < start[:, None] + size)
    hole = inside(height, corner[:, 0])[:, :, None] & inside(width, corner[:, 1])[:, None, :]
    return jnp.where(hole[..., None], 0.0, images)


AUGMENTATIONS = {"colour": _colour, "translation": _translation, "cutout": _cutout}


def diff_augment(key, images, policy: tuple[str, ...]):
    """``images`` through each augmentation of ``policy`` in turn, each drawn afresh per image."""
    for name, k in zip(policy, jax.random.split(key, max(len(policy), 1))):
        images = AUGMENTATIONS[name](k, images)
    return images


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


def _schedule(config: GANConfig, train_config, total_steps: int):
    return learning_rate_schedule(train_config.learning_rate, total_steps, config.decay_fraction, config.decay_shape)


class GANTraining(nnx.Module):
    """Both players, their optimizers and the averaged generator. ``total_steps`` None: the learning
    rate is set from outside as time passes (``family.scheduled_optimizer``)."""

    def __init__(self, config: GANConfig, train_config, total_steps: int | None):
        rngs, dtype = nnx.Rngs(train_config.seed), compute_dtype(train_config.precision)
        self.generator = Generator(config, rngs=rngs, dtype=dtype)
        self.discriminator = Discriminator(config, rngs=rngs, dtype=dtype)
        self.ema_generator = nnx.clone(self.generator)
        b1, b2 = config.adam_betas
        adam = scheduled_optimizer(lambda learning_rate: optax.adam(learning_rate, b1, b2),
                                   lambda steps: _schedule(config, train_config, steps), total_steps)
        self.g_optimizer = nnx.Optimizer(self.generator, adam, wrt=nnx.Param)
        self.d_optimizer = nnx.Optimizer(self.discriminator, adam, wrt=nnx.Param)
        self.loss = config.loss
        self.ema_decay = config.ema_decay
        self.r1_gamma = config.r1_gamma
        self.r1_interval = config.r1_interval
        self.latent_dim = config.latent_dim
        self.num_styles = config.num_styles
        self.tone_stride = config.tone_stride
        self.augmentations = tuple(filter(None, config.diff_augment.split(",")))
        self.class_loss_weight = config.class_loss_weight
        self.tone_loss_weight = config.tone_loss_weight
        self.tone_colour_weight = config.tone_colour_weight if config.num_tones else 0.0
        self.num_tones = config.num_tones


# graph=False (NNX's tree mode) flattens the training state as a plain pytree on each call instead
# of walking NNX's object graph, which for three networks and two optimizers costs milliseconds of
# the cores XLA computes on; the values are the same bit for bit.
@functools.partial(nnx.jit, static_argnames="with_r1", graph=False)
def train_step(training: GANTraining, images, labels, key, with_r1: bool = False):
    """One step for D and G on a batch of real images (B, side, side, channels) in [0, 1] with labels
    (B,) or (B, 2) (``conditions_of``; the fakes are drawn for the same), then the EMA generator is updated. ``with_r1`` adds the R1
    penalty, weighted by the interval: the two variants are two compiled programs, chosen per step
    in Python (``step_options``), since under ``lax.cond`` XLA:CPU runs convolutions 20-45x slower."""
    # Every convolution and matrix product in full float32, whatever the device: the GAN's training
    # is sensitive to a GPU's default TF32 rounding (docs/gan-recipe.md). --precision bfloat16 stays so.
    with full_float32():
        real = images * 2.0 - 1.0
        labels = conditions_of(labels, training.num_styles, training.tone_stride)
        latents = jax.random.normal(key, (images.shape[0], training.latent_dim))
        augment = None
        if training.augmentations:  # each pass through D its own draw (DiffAugment)
            k_fake, k_real, k_fake_for_d = jax.random.split(jax.random.fold_in(key, 1), 3)
            augment = lambda k: functools.partial(diff_augment, k, policy=training.augmentations)
        # Both players' gradients come from the same fakes and the same discriminator (simultaneous
        # updates): one generator forward pass per step instead of two, a quarter less work.
        g_grad_fn = nnx.value_and_grad(generator_loss, has_aux=True)
        heads = (training.class_loss_weight, training.tone_loss_weight, training.tone_stride)
        (g_loss, fake), g_grads = g_grad_fn(training.generator, training.discriminator, latents, labels, training.loss,
                                            augment(k_fake) if augment else None, *heads, real,
                                            training.tone_colour_weight, training.num_tones)
        fake = jax.lax.stop_gradient(fake)
        if augment:
            real, fake = augment(k_real)(real), augment(k_fake_for_d)(fake)
        r1_gamma = training.r1_gamma * training.r1_interval if with_r1 else 0.0
        d_loss, d_grads = nnx.value_and_grad(discriminator_loss)(training.discriminator, real, fake, labels, r1_gamma,
                                                                 training.loss, *heads)
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
def generate_blended(generator: Generator, latents, class_weights, details=None):
    """Like ``generate_images`` with (N, num_classes) class weights instead of labels: each image's
    class vector is the weighted mix of the class embeddings (one-hot weights give the classes);
    ``details``: as ``Generator.synthesize``'s."""
    return (generator.synthesize(latents, class_weights @ generator.embed.embedding[...], details=details) + 1.0) / 2.0


# ----------------------------------------------------------------------------- measuring

# How a generator is judged: 10k images, its conditions in the proportions of a reference set's
# real images (garments: classes 0..9 in turn), in the shipped classifier's penultimate features,
# against those real images (docs/gan-recipe.md).
MEASURE_SAMPLES = 10_000


def conditions_like(reference_conditions: np.ndarray, count: int, num_conditions: int) -> np.ndarray:
    """``count`` conditions in the proportions of ``reference_conditions``, each the one furthest
    behind its share so far: where every condition is as common, 0, 1, ... in turn. A distance to
    real pictures compares like with like only in their mix (emoji: people are 63% of them)."""
    share = np.bincount(reference_conditions, minlength=num_conditions) / len(reference_conditions)
    taken, conditions = np.zeros(num_conditions), np.empty(count, np.int32)
    for i in range(count):
        conditions[i] = np.argmax(share * (i + 1) - taken)
        taken[conditions[i]] += 1
    return conditions


def generate_for_classes(generator: Generator, count: int, seed: int = 0, truncation=None, conditions=None):
    """``count`` images, of ``conditions`` (default: cycling 0, 1, ... through the default tone's),
    in batches of 1000: ((count, side, side, channels) in [0, 1], (count,) conditions)."""
    labels = np.arange(count) % generator.untoned_conditions if conditions is None else np.asarray(conditions)
    latents = sample_latents(seed, count, generator.project.in_features - generator.embed.features, truncation)
    images = [np.asarray(generate_images(generator, latents[i:i + 1000], labels[i:i + 1000]))
              for i in range(0, count, 1000)]
    return np.concatenate(images), labels


def real_features(classifier, reference, train) -> dict:
    """The classifier's features of the ``reference`` images (with their labels), and the Fréchet and
    kernel distances to them from as many ``train`` images: the floors a perfect generator would reach.
    In full float32: a GPU's TF32 rounding is not negligible on a floor of about 1.5."""
    from .cnn import extract_features, predict_in_batches
    from .data import to_float
    with full_float32():
        features = predict_in_batches(extract_features, classifier, to_float(reference.images))
        subset = np.random.default_rng(0).permutation(len(train))[:len(reference)]
        train_features = predict_in_batches(extract_features, classifier, to_float(train.images[subset]))
    return {"features": features, "labels": np.asarray(reference.labels), "classes": reference.classes,
            "styles": None if reference.styles is None else np.asarray(reference.styles),
            "label_columns": reference.labels_at(np.arange(len(reference))),  # as the training step takes them
            "floor": frechet_distance(train_features, features),
            "kernel_floor": kernel_distance(train_features, features)}


def within_class_spread(features, labels, reference: dict) -> float:
    """Mean over classes of the total feature variance of ``features`` within the class, as a
    fraction of the reference's: 1.0 is as varied as real garments; truncation lowers it."""
    variance = lambda x: float(np.trace(np.cov(x, rowvar=False)))
    return float(np.mean([variance(features[labels == c]) / variance(reference["features"][reference["labels"] == c])
                          for c in np.unique(reference["labels"])]))


def sample_features(generator: Generator, classifier, seed: int = 0, truncation=None, reference: dict | None = None):
    """``MEASURE_SAMPLES`` images from latent ``seed``, in the mix of ``reference``'s conditions
    (``real_features``; None: every condition equally): their features, the classes asked and seen,
    and with styles, the styles asked and seen (else None, None)."""
    from .cnn import features_and_names, predict_in_batches
    styles, conditions = generator.num_styles, None
    if reference is not None:
        real = conditions_of(reference["label_columns"], styles, generator.tone_stride)
        conditions = conditions_like(real, MEASURE_SAMPLES, generator.embed.num_embeddings)
    with full_float32():
        images, conditions = generate_for_classes(generator, MEASURE_SAMPLES, seed, truncation, conditions)
        features, predicted, seen_styles = predict_in_batches(features_and_names, classifier, images)
    if not styles:
        return features, conditions, predicted, None, None
    pairs = generator.untoned(conditions)
    return features, pairs // styles, predicted, pairs % styles, seen_styles


def compare_to_real(features, labels, predicted, styles, seen_styles, reference: dict) -> dict:
    """Conditional accuracy (overall and per class; with styles, the style's too), Fréchet distance to
    the reference images, as a multiple of its floor, the kernel distance (KID) beside its floor, and
    within-class spread of sampled features."""
    distance = frechet_distance(features, reference["features"])
    figures = {
        "conditional_accuracy": float(np.mean(predicted == labels)),
        "balanced_conditional_accuracy": float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)])),
        "per_class_conditional_accuracy": {name: float(np.mean(predicted[labels == c] == c))
                                           for c, name in enumerate(reference["classes"])},
        "frechet_distance": distance,
        "frechet_distance_floor": reference["floor"],
        "frechet_ratio_to_floor": distance / reference["floor"],
        "kernel_distance": kernel_distance(features, reference["features"]),
        "kernel_distance_floor": reference["kernel_floor"],
        "within_class_spread": within_class_spread(features, labels, reference),
    }
    if styles is not None:
        figures["style_accuracy"] = float(np.mean(seen_styles == styles))
    return figures


def measure_generator(generator: Generator, classifier, reference: dict, seed: int = 0, truncation=None) -> dict:
    return compare_to_real(*sample_features(generator, classifier, seed, truncation, reference), reference)


# ----------------------------------------------------------------------------- plugging into the loop

def _epoch_picture(training: GANTraining, _held_out):
    """A grid from fixed latents: one row per condition (in the default tone), ten columns, one per latent."""
    from .images import image_grid
    config_classes = training.generator.untoned_conditions
    latents = jnp.tile(sample_latents(0, 10, training.latent_dim), (config_classes, 1))
    labels = jnp.repeat(jnp.arange(config_classes), 10)
    return image_grid(generate_images(training.ema_generator, latents, labels), rows=config_classes)


# The classifier and the held-out images' features, computed at the first epoch and reused while
# training on the same splits (held here, so the identity test cannot match other splits).
_REFERENCE: dict = {}


def _evaluate(training: GANTraining, held_out, train) -> dict:
    """The EMA generator's conditional accuracy and Fréchet distance to the held-out images, also as a
    multiple of its floor, when the shipped classifier exists."""
    from .checkpoint import load_if_present
    from .datasets import of_split
    if _REFERENCE.get("held_out") is not held_out or _REFERENCE.get("train") is not train:
        classifier = load_if_present("cnn", of_split(train).name)
        if classifier is None:
            return {}
        _REFERENCE.update(held_out=held_out, train=train, classifier=classifier,
                          features=real_features(classifier, held_out, train))
    figures = measure_generator(training.ema_generator, _REFERENCE["classifier"], _REFERENCE["features"])
    return {k: figures[k] for k in ("conditional_accuracy", "style_accuracy", "frechet_distance",
                                     "frechet_ratio_to_floor") if k in figures}


FAMILY = Family(
    name="gan",
    model_config=GANConfig(),
    defaults={"epochs": 20, "batch_size": 64, "learning_rate": 5e-4},
    create=GANTraining,
    train_step=train_step,
    step_options=step_options,
    evaluate=_evaluate,
    epoch_picture=_epoch_picture,
    build_model=lambda config: Generator(config, rngs=nnx.Rngs(0)),
    serving_model=lambda training: training.ema_generator,
    schedule=_schedule,
)
