"""Editing through the shipped generator: put an image into the generator's inputs (projection),
then change its class or style, or find pictures that agree with a sketch.

Reads top to bottom: the search (one compiled program), projection, sketch to picture, style
directions. Both projection and sketch are one search: gradient descent (Adam) on many latents at
once, each paired with a class, towards per-pixel bounds. Projection bounds each pixel to the
image's value, and adds the distance in the shipped classifier's features, so the result is the
same kind of garment and not only close in pixels; a sketch bounds painted pixels to be garment
(above ``INK``) or empty (below it), or near the colour painted, and leaves the rest free. The
search runs as compiled chunks of ``CHUNK`` steps, each a ``lax.scan`` unrolled when compiled:
XLA:CPU runs a loop body about 3.6x slower than the same steps written out, and one program of all
the steps takes a minute to compile (docs/edit.md).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .encoder import Encoder
from .gan import conditions_of, labels_of

INK = 0.1  # a pixel above this is garment, at or below it background (Fashion-MNIST's is 0)
SKETCH_MARGIN = 0.05  # a painted pixel is pushed this far past INK


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """How a search runs; the defaults were chosen on held-out training images (docs/edit.md)."""

    steps: int = 90
    classes: int = 1  # projection: the classifier's likeliest classes, each tried
    starts: int = 1  # latents per class: the encoder's, then copies moved by ``jitter``
    jitter: float = 0.5
    learning_rate: float = 0.1
    feature_weight: float = 0.003  # classifier-feature distance next to the pixel distance ...
    feature_steps: int = 30  # ... in the last steps only (a step with it costs twice one without)
    prior_weight: float = 0.003  # mean squared latent, which keeps latents where the generator trained
    # Then ``detail_steps`` more steps fit a detail alone, the latent kept (edits to another class
    # start from the latent alone): what the picture has that no latent draws, added to the
    # generator's first features (``Generator.synthesize``), its mean square weighed by ``detail_weight``.
    detail_steps: int = 60
    detail_weight: float = 0.01
    detail_learning_rate: float = 0.05


# Detail gradients are about 1e-5: Adam's epsilon at 1e-6 moves a value whose gradient is below that
# in proportion to it rather than by a full step, so rounding noise cannot steer it.
DETAIL_EPSILON = 1e-6


def _optimizer(config: SearchConfig, details: bool):
    """Adam for the latents, or for the details (a phase of its own, with its own state)."""
    return (optax.adam(config.detail_learning_rate, eps=DETAIL_EPSILON) if details
            else optax.adam(config.learning_rate))


def bounds_loss(images, lower, upper):
    """(N, side, side, channels) images against per-pixel bounds -> (N,) mean squared violation."""
    return jnp.mean(jax.nn.relu(lower - images) ** 2 + jax.nn.relu(images - upper) ** 2, axis=(1, 2, 3))


CHUNK = 15  # steps per compiled program (steps, feature_steps and detail_steps are multiples of it)


def _losses(generator, classifier, inputs, class_vectors, lower, upper, target_features, config, with_features):
    """``inputs``: the latents (N, latent_dim) and details (N, *detail_shape) searched."""
    latents, details = inputs
    images = (generator.synthesize(latents, class_vectors, details=details) + 1.0) / 2.0
    total = (bounds_loss(images, lower, upper) + config.prior_weight * jnp.mean(latents ** 2, axis=-1)
             + config.detail_weight * jnp.mean(details ** 2, axis=(1, 2, 3)))
    if with_features:
        total += config.feature_weight * jnp.mean((classifier.features(images) - target_features) ** 2, -1)
    return total, images


@functools.partial(jax.jit, static_argnames=("graph", "config", "with_features", "with_details"))
def _search_chunk(graph, weights, inputs, state, labels, lower, upper, target_features,
                  config: SearchConfig, with_features: bool, with_details: bool):
    """``CHUNK`` Adam steps on the details alone ``with_details``, else on the latents alone, of
    ``inputs`` (latents, details), unrolled (``state``: that part's Adam state); then the inputs, the
    state, images, losses. The models come split (``nnx.split``) so that the calls of one search
    pay for that once."""
    generator, classifier = nnx.merge(graph, weights)
    class_vectors = generator.embed(labels)
    optimizer, part = _optimizer(config, with_details), int(with_details)
    losses = functools.partial(_losses, generator, classifier, class_vectors=class_vectors, lower=lower, upper=upper,
                               target_features=target_features, config=config, with_features=with_features)
    with_part = lambda inputs, value: (value, inputs[1]) if part == 0 else (inputs[0], value)

    def step(carry, _):
        inputs, state = carry
        # Candidates are independent: the gradient of their summed losses, in one pass.
        grads = jax.grad(lambda value: losses(with_part(inputs, value))[0].sum())(inputs[part])
        updates, state = optimizer.update(grads, state)
        return (with_part(inputs, optax.apply_updates(inputs[part], updates)), state), None

    (inputs, state), _ = jax.lax.scan(step, (inputs, state), None, length=CHUNK, unroll=True)
    total, images = losses(inputs)
    return inputs, state, images, total


def search(generator, classifier, latents, labels, lower, upper, target_features, config: SearchConfig):
    """Adam on (N, latent_dim) ``latents`` with fixed (N,) ``labels`` for ``config.steps`` steps, the
    last ``config.feature_steps`` with the feature distance, then on details alone for
    ``config.detail_steps``. Returns the final latents, details (N, *detail_shape; zeros without
    detail steps), images (N, side, side, channels) in [0, 1] and losses (N,)."""
    if any(n % CHUNK for n in (config.steps, config.feature_steps, config.detail_steps)) or (
            config.feature_steps > config.steps):
        raise ValueError(f"steps, feature_steps and detail_steps are multiples of {CHUNK}, feature_steps at most steps")
    inputs = (latents, jnp.zeros((len(latents), *generator.detail_shape)))
    with_features = bool(config.feature_weight) and config.feature_steps > 0
    graph, weights = nnx.split((generator, classifier))
    # Two phases, each with its part's own Adam state: the latents (the feature distance in their
    # last chunks), then the details; each a list of chunks, by whether the chunk adds the features.
    phases = ((False, [with_features and start >= config.steps - config.feature_steps
                       for start in range(0, config.steps, CHUNK)]),
              (True, [False] * (config.detail_steps // CHUNK)))
    for details_now, chunks in phases:
        state = _optimizer(config, details_now).init(inputs[int(details_now)])
        for features_now in chunks:
            inputs, state, images, total = _search_chunk(graph, weights, inputs, state, labels, lower, upper,
                                                         target_features, config, features_now, details_now)
    return *inputs, images, total


# ----------------------------------------------------------------------------- projection

@dataclasses.dataclass(frozen=True)
class Projection:
    """Per image: the best latent, its detail, its class, the generator's image of them and the search's loss."""

    latents: np.ndarray  # (N, latent_dim)
    details: np.ndarray  # (N, *generator.detail_shape): zeros where the search fits none
    labels: np.ndarray  # (N,) the generator's conditions (``condition_labels`` splits them)
    images: np.ndarray  # (N, side, side, channels) in [0, 1]
    losses: np.ndarray  # (N,)


def starting_points(generator, classifier, encoder: Encoder | None, images, key, config: SearchConfig,
                    toned_classes: tuple[int, ...] = (), tones=None):
    """Every image's candidates, flattened: latents (N * K, latent_dim), the generator's conditions
    (N * K,), the images' classifier features repeated (N * K, features), K = classes x starts: the
    classifier's likeliest classes (in the art set its style head names, where the generator has art
    sets; in the image's skin tone ``tones`` (N,) for ``toned_classes``, else the default tone), each
    from the encoder's latent (zero without one) and copies of it moved by ``jitter``. The models are
    only read (split, then merged inside the compiled program), so threads may share them."""
    graph, weights = nnx.split((generator, classifier, encoder))
    tones = jnp.zeros(len(images), jnp.int32) if tones is None else jnp.asarray(tones, jnp.int32)
    return _starting_points(graph, weights, images, tones, key, config, tuple(toned_classes))


@functools.partial(jax.jit, static_argnames=("graph", "config", "toned_classes"))
def _starting_points(graph, weights, images, tones, key, config: SearchConfig, toned_classes: tuple[int, ...]):
    generator, classifier, encoder = nnx.merge(graph, weights)
    n, latent_dim = images.shape[0], generator.project.in_features - generator.embed.features
    class_logits, style_logits = classifier.both_logits(images)
    classes = jax.lax.top_k(class_logits, config.classes)[1]  # (N, classes)
    # The encoder answers per (class, art set) pair: the generator's conditions in the default tone.
    pairs = classes * generator.num_styles + style_logits.argmax(-1)[:, None] if generator.num_styles else classes
    if encoder is None:
        start = jnp.zeros((n, config.classes, latent_dim))
    else:
        start = jnp.take_along_axis(encoder(images), pairs[..., None], axis=1)
    toned = jnp.isin(classes, jnp.asarray(toned_classes, jnp.int32))
    conditions = pairs + generator.tone_stride * jnp.where(toned, tones[:, None], 0)
    noise = config.jitter * jax.random.normal(key, (n, config.classes, config.starts, latent_dim))
    latents = start[:, :, None] + noise.at[:, :, 0].set(0.0)
    k = config.classes * config.starts
    return (latents.reshape(n * k, latent_dim), jnp.repeat(conditions, config.starts, axis=1).reshape(-1),
            jnp.repeat(classifier.features(images), k, axis=0))


def project(generator, classifier, encoder, images, config: SearchConfig | None = None, seed: int = 0,
            toned_classes: tuple[int, ...] = (), tones=None) -> Projection:
    """Project (N, side, side, channels) float32 images in [0, 1] into the generator (``encoder`` None:
    from zero) with ``config`` (default: the shipped ``SearchConfig()``); ``toned_classes``: the
    classes whose pictures come in skin tones (``datasets.Dataset.toned_classes``, as indices), drawn
    in each image's tone ``tones`` (N,) (read by a ``tone_reader.ToneReader``)."""
    config = config or SearchConfig()
    images = jnp.asarray(images, jnp.float32)
    latents, labels, features = starting_points(generator, classifier, encoder, images, jax.random.key(seed), config,
                                                toned_classes, tones)
    k = config.classes * config.starts
    targets = jnp.repeat(images, k, axis=0)
    latents, details, rendered, losses = (np.asarray(x) for x in search(
        generator, classifier, latents, labels, targets, targets, features, config))
    best = losses.reshape(-1, k).argmin(1) + np.arange(len(images)) * k
    return Projection(latents[best], details[best], np.asarray(labels)[best], rendered[best], losses[best])


def condition_labels(generator, conditions) -> np.ndarray:
    """The generator's (N,) conditions as (N, 3) labels: class, art set and skin tone (0 where the
    generator has none); ``conditions_from_labels`` is the way back."""
    return labels_of(conditions, generator.num_styles, generator.tone_stride)


def conditions_from_labels(generator, labels) -> np.ndarray:
    """(N, 3) labels (class, art set, skin tone) as the generator's (N,) conditions."""
    return conditions_of(np.asarray(labels), generator.num_styles, generator.tone_stride)


# ----------------------------------------------------------------------------- sketch to picture

SKETCH_CONFIG = SearchConfig(steps=30, feature_weight=0.0, prior_weight=0.01, detail_steps=0)
# Latents a sketch's search moves at once, which sets its time: as many random starts in each
# condition as fit (garments: two in each of 10 classes; emoji: one in each (group, art set) pair).
SKETCH_CANDIDATES = 24
# The colours a colour dataset's sketch is painted in (the page's brushes, the first at hand; near
# Twemoji's palette), [0, 1] RGB. White is the background every emoji is drawn on.
SKETCH_COLOURS = {"yellow": (1.0, 0.8, 0.3), "white": (1.0, 1.0, 1.0), "black": (0.16, 0.18, 0.2),
                  "orange": (0.96, 0.56, 0.05), "red": (0.87, 0.18, 0.27), "brown": (0.6, 0.37, 0.2),
                  "green": (0.47, 0.7, 0.35), "blue": (0.23, 0.53, 0.76)}
COLOUR_TOLERANCE = 0.2  # a pixel painted in a colour may differ from it by this much in each channel


def ink(images, light_on_dark: bool) -> np.ndarray:
    """(N, side, side, channels) images -> (N, side, side) masks of the pixels farther than ``INK``
    from the background in some channel (black for pictures drawn light on dark, else white)."""
    images = np.asarray(images)
    return np.abs(images - (0.0 if light_on_dark else 1.0)).max(-1) > INK


def sketch_bounds(garment, empty):
    """(28, 28) boolean masks of pixels painted as garment and as empty -> lower and upper bounds."""
    lower = np.where(garment, INK + SKETCH_MARGIN, 0.0)
    upper = np.where(empty, INK - SKETCH_MARGIN, 1.0)
    return (lower.astype(np.float32)[None, ..., None], upper.astype(np.float32)[None, ..., None])


def colour_sketch_bounds(colours, painted):
    """(side, side, 3) colours in [0, 1] and the (side, side) mask of painted pixels -> lower and upper
    bounds: a painted pixel within ``COLOUR_TOLERANCE`` of its colour in each channel, the rest free."""
    painted = np.asarray(painted)[..., None]
    lower = np.where(painted, np.clip(colours - COLOUR_TOLERANCE, 0.0, 1.0), 0.0)
    upper = np.where(painted, np.clip(colours + COLOUR_TOLERANCE, 0.0, 1.0), 1.0)
    return lower.astype(np.float32)[None], upper.astype(np.float32)[None]


def sketch_agreement(images, lower, upper, painted) -> np.ndarray:
    """(N,) the share of each image's painted pixels ((side, side) mask) within the sketch's bounds."""
    inside = np.all((np.asarray(images) >= lower) & (np.asarray(images) <= upper), axis=-1)
    return inside[:, painted].mean(-1)


def sketch_conditions(generator, style: int | None = None) -> np.ndarray:
    """The conditions a sketch is searched in: every class in art set ``style`` (None: in every art
    set), in the default tone."""
    styles = max(generator.num_styles, 1)
    classes = generator.untoned_conditions // styles
    return conditions_from_labels(generator, [(c, s, 0) for c in range(classes)
                                              for s in (range(styles) if style is None else [style])])


def pictures_for_sketch(generator, lower, upper, conditions, count: int = 6, seed: int = 0,
                        config: SearchConfig = SKETCH_CONFIG):
    """Pictures that agree with a sketch's (1, side, side, channels) bounds: the best of each of the
    generator's ``conditions`` (from ``SKETCH_CANDIDATES`` random starts in all), the ``count`` that
    agree best. Returns (latents, conditions, images, losses), best first."""
    conditions = np.asarray(conditions)
    config = dataclasses.replace(config, starts=max(1, SKETCH_CANDIDATES // len(conditions)))
    labels = jnp.repeat(jnp.asarray(conditions), config.starts)
    latents = jax.random.normal(jax.random.key(seed), (len(labels), generator.project.in_features
                                                       - generator.embed.features))
    latents, _, images, losses = (np.asarray(x) for x in search(generator, None, latents, labels, lower, upper,
                                                                None, config))
    per_condition = losses.reshape(-1, config.starts)
    best = per_condition.argmin(1) + np.arange(len(per_condition)) * config.starts
    chosen = best[np.argsort(losses[best])][:count]
    return latents[chosen], conditions[chosen // config.starts], images[chosen], losses[chosen]


def mask_iou(a, b, light_on_dark: bool = True) -> np.ndarray:
    """Intersection over union of the ``ink`` masks of two image batches."""
    a, b = ink(a, light_on_dark), ink(b, light_on_dark)
    axes = tuple(range(1, a.ndim))
    return (a & b).sum(axes) / np.maximum((a | b).sum(axes), 1)


# ----------------------------------------------------------------------------- style directions

def style_directions(generator, count: int = 5) -> np.ndarray:
    """(count, latent_dim) unit directions in latent space along which the generator's first features
    vary most (GANSpace, Härkönen et al. 2020), largest first. Those features (the first layer's
    output after batch norm, before its ReLU) are linear in the latent, so their principal
    components for Gaussian latents are exactly the leading singular vectors of that linear map:
    no sampling. Each is signed so its largest entry is positive."""
    latent_dim = generator.project.in_features - generator.embed.features
    norm = generator.norm0
    scale = np.asarray(norm.scale[...]) / np.sqrt(np.asarray(norm.var[...]) + norm.epsilon)
    linear_map = np.asarray(generator.project.kernel[...], np.float64)[:latent_dim] * scale  # (latent, features)
    directions = np.linalg.svd(linear_map, full_matrices=False)[0].T[:count]
    directions *= np.sign(directions[np.arange(count), np.abs(directions).argmax(1)])[:, None]
    return directions.astype(np.float32)


# ----------------------------------------------------------------------------- measuring

def _names(classifier, images) -> tuple[np.ndarray, np.ndarray]:
    """The classes and art sets (-1 without a style head) the classifier names ``images`` as."""
    from .cnn import features_and_names, predict_in_batches
    return predict_in_batches(features_and_names, classifier, np.asarray(images))[1:]


def measure_projection(generator, classifier, encoder, images, labels, config: SearchConfig | None = None,
                       seed: int = 0, batch: int = 10, toned_classes: tuple[int, ...] = (), tones=None) -> dict:
    """Project (N, side, side, channels) images ``batch`` at a time; the reconstructions' PSNR (median,
    mean, 10th percentile) and how often the classifier gives them the images' class (``labels`` (N,),
    or (N, 2+) classes then art sets, whose art set it then checks too). Also returns the latents and
    conditions found (``latents``, ``conditions``), for edits. ``toned_classes``, ``tones``: as ``project``'s."""
    tones = np.zeros(len(images), int) if tones is None else np.asarray(tones)
    found = [project(generator, classifier, encoder, images[i:i + batch], config, seed + i, toned_classes,
                     tones[i:i + batch]) for i in range(0, len(images), batch)]
    latents, conditions, rendered = (np.concatenate([getattr(f, k) for f in found])
                                     for k in ("latents", "labels", "images"))
    return {**_reconstruction_figures(classifier, images, labels, rendered), "latents": latents,
            "conditions": conditions}


def _reconstruction_figures(classifier, images, labels, rendered) -> dict:
    from .metrics import psnr
    scores = np.asarray(psnr(jnp.asarray(images), jnp.asarray(rendered)))
    labels = np.asarray(labels)
    classes, styles = _names(classifier, rendered)
    as_original = _names(classifier, images)[0]
    figures = {"median_psnr": float(np.median(scores)), "mean_psnr": float(scores.mean()),
               "psnr_10th_percentile": float(np.percentile(scores, 10)),
               "named_as_original": float((classes == (labels if labels.ndim == 1 else labels[:, 0])).mean()),
               # the classifier's name for the reconstruction and for the image agree (right or not)
               "named_as_the_original_is": float((classes == as_original).mean())}
    if labels.ndim == 2:
        figures["art_set_kept"] = float((styles == labels[:, 1]).mean())
    return figures


def measure_encoder_alone(generator, classifier, encoder, images, labels, toned_classes: tuple[int, ...] = (),
                          tones=None, batch: int = 100) -> dict:
    """The encoder's latent in the classifier's likeliest class (and art set, and the image's tone),
    rendered with no search."""
    config = SearchConfig(classes=1, starts=1)
    tones = np.zeros(len(images), int) if tones is None else np.asarray(tones)
    starts = [starting_points(generator, classifier, encoder, jnp.asarray(images[i:i + batch]), jax.random.key(0),
                              config, toned_classes, tones[i:i + batch])[:2] for i in range(0, len(images), batch)]
    latents, conditions = (np.concatenate([np.asarray(s[k]) for s in starts]) for k in (0, 1))
    return _reconstruction_figures(classifier, images, labels, _rendered(generator, latents, conditions))


def _rendered(generator, latents, labels, batch: int = 500) -> np.ndarray:
    """The generator's images of many (latent, condition) pairs, ``batch`` at a time."""
    from .gan import generate_images
    return np.concatenate([np.asarray(generate_images(generator, latents[i:i + batch], labels[i:i + batch]))
                           for i in range(0, len(latents), batch)])


def measure_class_edits(generator, classifier, latents, conditions, toned_classes: tuple[int, ...] = ()) -> dict:
    """Each latent rendered in each of the other classes (its art set kept, and its skin tone where
    the target class has tones): how often the classifier names the target class, overall and per
    target class. With art sets, also each latent in each other art set (its class and tone kept):
    how often the classifier names the target art set."""
    labels = condition_labels(generator, conditions)
    num_classes = generator.untoned_conditions // max(generator.num_styles, 1)

    def edited(column: int, count: int):  # every label moved to each other value of one column
        edits = np.repeat(labels, count - 1, axis=0)
        edits[:, column] = (edits[:, column] + np.tile(np.arange(1, count), len(labels))) % count
        edits[:, 2] *= np.isin(edits[:, 0], toned_classes)  # a class without tones in the default one
        rendered = _rendered(generator, np.repeat(latents, count - 1, axis=0), conditions_from_labels(generator, edits))
        return edits, _names(classifier, rendered)

    targets, (named, _) = edited(0, num_classes)
    hit = named == targets[:, 0]
    figures = {"named_as_target": float(hit.mean()), "edits": int(hit.size),
               "per_target_class": [float(hit[targets[:, 0] == c].mean()) for c in range(num_classes)]}
    if generator.num_styles:
        targets, (_, styles) = edited(1, generator.num_styles)
        figures["art_set_named_as_target"] = float((styles == targets[:, 1]).mean())
    return figures


def silhouette_sketch(image) -> tuple[np.ndarray, np.ndarray]:
    """A garment's silhouette as a fully painted sketch: (garment, empty) masks from (28, 28, 1)."""
    garment = np.asarray(image)[..., 0] > INK
    return garment, ~garment


def poster_sketch(image) -> tuple[np.ndarray, np.ndarray]:
    """A colour picture as a fully painted sketch: each pixel in the nearest ``SKETCH_COLOURS``
    colour; (colours (side, side, 3), painted (side, side))."""
    palette = np.array(list(SKETCH_COLOURS.values()), np.float32)
    nearest = np.square(np.asarray(image)[..., None, :] - palette).sum(-1).argmin(-1)
    return palette[nearest], np.ones(nearest.shape, bool)


def measure_sketches(generator, images, labels=None, light_on_dark: bool = True, seed: int = 0) -> dict:
    """Each image as a fully painted sketch (a garment's silhouette; a colour picture in the sketch
    colours, searched in its art set, ``labels`` (N, 2+) column 1): the ink mask IoU of the best
    picture found and of all six, the share of the sketch the best agrees with, and how often the
    best is in the image's class (``labels`` given)."""
    best, all_six, agree, same_class = [], [], [], []
    for i, image in enumerate(images):
        if light_on_dark:
            garment, empty = silhouette_sketch(image)
            (lower, upper), painted, style = sketch_bounds(garment, empty), np.ones(garment.shape, bool), 0
        else:
            colours, painted = poster_sketch(image)
            lower, upper = colour_sketch_bounds(colours, painted)
            style = int(labels[i][1])
        _, conditions, found, _ = pictures_for_sketch(generator, lower, upper, sketch_conditions(generator, style),
                                                      seed=seed + i)
        iou = mask_iou(found, np.repeat(np.asarray(image)[None], len(found), 0), light_on_dark)
        best.append(iou[0])
        all_six.append(iou.mean())
        agree.append(sketch_agreement(found[:1], lower, upper, painted)[0])
        if labels is not None:
            same_class.append(condition_labels(generator, conditions[:1])[0, 0] == np.atleast_1d(labels[i])[0])
    figures = {"mean_iou": float(np.mean(best)), "mean_iou_of_six": float(np.mean(all_six)),
               "iou_10th_percentile": float(np.percentile(best, 10)), "agreement": float(np.mean(agree)),
               "sketches": len(images)}
    if same_class:
        figures["best_in_class"] = float(np.mean(same_class))
    return figures
