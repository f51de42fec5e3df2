"""``imgjax eval``: measure a checkpoint on the 10k test set (the photo denoiser: on the evaluation
photos), beside baselines run in the same call.

* cnn: test accuracy, per-class accuracy, and a confusion-matrix picture.
* ae: PSNR / SSIM for Gaussian noise (sigma 0.1, 0.2, 0.3), salt-and-pepper and masked boxes, beside
  classical baselines on the same corrupted images (total variation, BM3D on a fixed subset, a median
  filter for salt-and-pepper, harmonic inpainting for masks).
* gan: with the shipped classifier, the conditional accuracy of 10k generated images and the Fréchet
  distance of their penultimate-layer features to the test set's, beside the same distance between
  10k training images and the test set (the floor a perfect generator would reach), over 5 latent
  seeds; and the truncation curve, measured on the training images held out of the GAN's training.
* encoder: the Edit tab's figures (``imgjax.edit``): test images projected into the GAN (from the
  encoder's start, from zero, and the encoder alone), class edits of them, garments for sketches.
* photo: the photo denoiser on scikit-image's sample photos (never trained on), beside BM3D, total
  variation tuned on the validation photos, and the garment model (``imgjax.photos``).
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint, data, datasets
from .cnn import balanced_accuracy
from .images import save_png, to_uint8

SEED = 0


# ----------------------------------------------------------------------------- per family

def eval_cnn(model, test, train_and_held_out, classes, out: Path, log) -> dict:
    """Accuracy on the test pictures, plain and balanced (the mean over classes), per class, of the
    style head where there is one, and per skin tone where the pictures have them; the same figures
    of k-nearest-neighbour votes in pixel space beside them; the familiarity statistics, fitted on
    the trained-on pictures with their threshold set on the held-out ones."""
    from .cnn import confusion_matrix, predict_in_batches, predict_style_probabilities
    from .images import confusion_matrix_image
    matrix = confusion_matrix(model, test)
    per_class = np.diag(matrix) / matrix.sum(1)
    picture = out / "cnn_confusion.png"
    save_png(confusion_matrix_image(matrix, classes), picture)
    log(f"confusion matrix: {picture}")
    results = {
        "test_accuracy": float(np.trace(matrix) / matrix.sum()),
        "test_balanced_accuracy": balanced_accuracy(matrix),
        "per_class_accuracy": {name: float(a) for name, a in zip(classes, per_class)},
    }
    styles = None
    if test.styles is not None and model.style_head is not None:
        styles = predict_in_batches(predict_style_probabilities, model, data.to_float(test.images)).argmax(-1)
        results["test_style_accuracy"] = float(np.mean(styles == test.styles))
    if test.tone_labels is not None:
        results["per_tone_accuracy"] = per_tone_accuracy(test, predicted_classes(model, test))
    log(f"test accuracy {results['test_accuracy']:.1%}, balanced {results['test_balanced_accuracy']:.1%}"
        + (f", style {results['test_style_accuracy']:.1%}" if styles is not None else ""))
    # the neighbours are the pictures the classifier trained on
    results["pixel_neighbours"] = {f"{k}-NN": neighbour_figures(train_and_held_out[0], test, k) for k in (1, 5)}
    results["familiarity"] = fit_familiarity(model, *train_and_held_out, test, out / FAMILIARITY_FILE, log)
    return results


def predicted_classes(model, split) -> np.ndarray:
    """The classifier's class for every picture of ``split``."""
    from .cnn import predict_in_batches, predict_probabilities
    return predict_in_batches(predict_probabilities, model, data.to_float(split.images)).argmax(-1)


def per_tone_accuracy(split, predicted) -> dict[str, float]:
    """The accuracy on the pictures of people (``emoji.TONED_GROUP``) per skin tone: the gap
    between tones is the classifier's bias."""
    from .emoji import SKIN_TONES, TONED_GROUP
    people = split.classes.index(TONED_GROUP)
    return {tone: float(np.mean(predicted[(split.labels == people) & (split.tones == t)] == people))
            for t, tone in enumerate(SKIN_TONES) if ((split.labels == people) & (split.tones == t)).any()}


def neighbour_figures(train, test, k: int, chunk: int = 500) -> dict:
    """A k-nearest-neighbour vote among the training pictures in pixel space (squared distance):
    its plain and balanced accuracy on ``test``, and its style accuracy where pictures have one."""
    reference = train.images.reshape(len(train), -1).astype(np.float32) / 255.0
    squared = (reference ** 2).sum(1)
    votes, style_votes = [], []
    for start in range(0, len(test), chunk):
        x = test.images[start:start + chunk].reshape(-1, reference.shape[1]).astype(np.float32) / 255.0
        nearest = np.argpartition(squared[None] - 2.0 * x @ reference.T, k - 1, axis=1)[:, :k]  # the k nearest
        vote = lambda labels, count: np.array([np.bincount(row, minlength=count).argmax() for row in labels[nearest]])
        votes.append(vote(train.labels, len(test.classes)))
        if test.styles is not None:
            style_votes.append(vote(train.styles, int(train.styles.max()) + 1))
    predicted = np.concatenate(votes)
    count = len(test.classes)
    matrix = np.bincount(test.labels * count + predicted, minlength=count * count).reshape(count, count)
    figures = {"accuracy": float(np.mean(predicted == test.labels)), "balanced_accuracy": balanced_accuracy(matrix)}
    if style_votes:
        figures["style_accuracy"] = float(np.mean(np.concatenate(style_votes) == test.styles))
    return figures


FAMILIARITY_FILE = "cnn_familiarity.safetensors"
FAMILIARITY_HELDOUT = 10_000  # garments kept out of the fit to set the threshold (emoji: the held-out emoji)


def fit_familiarity(model, trained_on, held_out, test, path: Path, log) -> dict:
    """Fit the classifier's familiarity statistics (class means, shared covariance) on the pictures
    trained on, set its threshold on the held-out ones, write it beside the checkpoint, and measure
    the fraction of test pictures it flags and of noise pictures it recognises as unfamiliar."""
    from safetensors.numpy import save as save_safetensors_bytes

    from .checkpoint import atomic_write, sha256_file
    from .cnn import Familiarity, extract_channel_means, predict_in_batches
    features = lambda x: predict_in_batches(extract_channel_means, model, data.to_float(x))
    familiarity = Familiarity.fit(features(trained_on.images), trained_on.labels, features(held_out.images))
    atomic_write(path, save_safetensors_bytes(familiarity.arrays()))
    noise = (np.random.default_rng(SEED).random((1000, *test.images.shape[1:])) * 255).astype(np.uint8)
    results = {
        "file": path.name, "sha256": sha256_file(path), "heldout_percentile": 99.0,
        "threshold": familiarity.threshold,
        "test_flagged": float(np.mean(familiarity.unfamiliar(features(test.images)))),
        "uniform_noise_flagged": float(np.mean(familiarity.unfamiliar(features(noise)))),
    }
    log(f"familiarity: threshold {results['threshold']:.1f}; flags {results['test_flagged']:.1%} of test images, "
        f"{results['uniform_noise_flagged']:.1%} of uniform-noise images")
    return results


def _scores(clean, restored) -> dict:
    from .metrics import psnr, ssim
    return {"psnr": float(psnr(clean, restored).mean()), "ssim": float(ssim(clean, restored).mean())}


def _timed(fn, *args):
    result = jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    result = jax.block_until_ready(fn(*args))
    return result, time.perf_counter() - start


def eval_colourisation(model, clean, labels, train, classifier, log) -> dict:
    """Test pictures turned gray and coloured back by the autoencoder, beside the gray-to-mean-colour
    baseline: PSNR and SSIM in colour, and how often the dataset's classifier (where shipped) names
    the pictures' classes (``labels``) in colour, in gray and coloured back."""
    from . import baselines, corruptions
    from .ae import restore
    from .cnn import predict_in_batches, predict_probabilities
    gray = np.asarray(corruptions.grayscale(clean))
    coloured = restore(model, gray)
    table = baselines.mean_colour_table(data.to_float(train.images))
    results = {"gray": _scores(clean, gray), "autoencoder": _scores(clean, coloured),
               "gray_to_mean_colour": _scores(clean, baselines.colour_from_table(table, gray))}
    if classifier is not None:
        named = lambda x: float(np.mean(predict_in_batches(predict_probabilities, classifier, np.asarray(x)).argmax(-1)
                                        == labels))
        results["named_by_the_classifier"] = {"colour": named(clean), "gray": named(gray), "autoencoder": named(coloured)}
    results["colour_table"] = table.round(4).tolist()  # the page's baseline (serving reads no data)
    log("colourisation: " + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in results.items() if "psnr" in v)
        + (", named: " + ", ".join(f"{k} {v:.1%}" for k, v in results["named_by_the_classifier"].items())
           if classifier is not None else ""))
    return results


def eval_ae(model, test, train, out: Path, log, bm3d_images: int = 200, dataset: str = "fashion-mnist") -> dict:
    from . import baselines, corruptions
    from .ae import corrupted_examples, restore
    from .images import image_grid

    clean = jnp.asarray(data.to_float(test.images))
    tune_clean = jnp.asarray(data.to_float(train.images[:100]))
    # The classical baselines work on one channel: colour pictures go through them channel by channel.
    each_channel = lambda fn: lambda x, *args: baselines.per_channel(fn, np.asarray(x), *args)
    tv, median, inpaint = (each_channel(fn) for fn in (baselines.tv_denoise, baselines.median_filter_3x3,
                                                        baselines.harmonic_inpaint))
    channel_images = lambda x: jnp.asarray(baselines.channels_as_images(np.asarray(x)))
    keys = jax.random.split(jax.random.key(SEED), 6)
    results: dict = {"images": len(clean), "bm3d_images": bm3d_images}

    for i, sigma in enumerate((0.1, 0.2, 0.3)):
        noisy = corruptions.gaussian_noise(keys[i], clean, sigma)
        weight = baselines.tune_tv_weight(channel_images(tune_clean),
                                          channel_images(corruptions.gaussian_noise(keys[5], tune_clean, sigma)))
        restored, ae_seconds = _timed(restore, model, noisy)
        row = {"noisy": _scores(clean, noisy), "autoencoder": _scores(clean, restored),
               "tv": {**_scores(clean, tv(noisy, weight)), "weight": weight}}
        subset = slice(0, bm3d_images)
        started = time.perf_counter()
        bm3d_out = baselines.bm3d_denoise(noisy[subset], sigma)
        bm3d_seconds = time.perf_counter() - started
        row["on_bm3d_subset"] = {
            "noisy": _scores(clean[subset], noisy[subset]),
            "autoencoder": _scores(clean[subset], restored[subset]),
            "bm3d": _scores(clean[subset], bm3d_out),
            "tv": _scores(clean[subset], tv(noisy[subset], weight)),
            "bm3d_ms_per_image": 1e3 * bm3d_seconds / bm3d_images,
            "autoencoder_ms_per_image": 1e3 * ae_seconds / len(clean),
        }
        results[f"gaussian_{sigma}"] = row
        log(f"gaussian {sigma}: noisy {row['noisy']['psnr']:.2f} dB, TV {row['tv']['psnr']:.2f}, "
            f"BM3D (first {bm3d_images}) {row['on_bm3d_subset']['bm3d']['psnr']:.2f}, "
            f"autoencoder {row['autoencoder']['psnr']:.2f}")

    peppered = corruptions.salt_and_pepper(keys[3], clean, 0.1)
    weight = baselines.tune_tv_weight(channel_images(tune_clean),
                                      channel_images(corruptions.salt_and_pepper(keys[5], tune_clean, 0.1)))
    results["salt_pepper_0.1"] = {
        "noisy": _scores(clean, peppered), "autoencoder": _scores(clean, restore(model, peppered)),
        "median_3x3": _scores(clean, median(peppered)),
        "tv": {**_scores(clean, tv(peppered, weight)), "weight": weight}}

    mask = corruptions.random_box_masks(keys[4], clean.shape)
    masked = corruptions.apply_mask(clean, mask)
    results["mask_boxes"] = {
        "noisy": _scores(clean, masked), "autoencoder": _scores(clean, restore(model, masked)),
        "harmonic_inpainting_given_mask": _scores(clean, inpaint(masked, channel_images(
            np.repeat(np.asarray(mask), clean.shape[-1], axis=-1))))}
    for name in ("salt_pepper_0.1", "mask_boxes"):
        log(f"{name}: " + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in results[name].items()))

    if clean.shape[-1] == 3:  # colour pictures: colourisation too
        results["colourise"] = eval_colourisation(model, np.asarray(clean), test.labels, train,
                                                  checkpoint.load_if_present("cnn", dataset), log)

    rows = []
    for corrupted in corrupted_examples(clean[:10]).values():
        rows += [corrupted, restore(model, corrupted), clean[:10]]
    picture = out / "ae_examples.png"
    save_png(image_grid(np.concatenate(rows), rows=len(rows)), picture, scale=2)
    log(f"examples: {picture}")
    return results


PHOTO_SIGMAS = (0.1, 0.2, 0.3)  # the targets are at 0.1 and 0.2; 0.3 sets the page's TV weight there
PHOTO_PICTURE = ("camera", "astronaut", "coffee", "chelsea")  # the examples picture, at noise 0.2
# scikit-image's sample photographs (``skimage.data``), the evaluation set: three grayscale, four colour.
PHOTO_EVALUATION = ("camera", "moon", "clock", "astronaut", "coffee", "chelsea", "rocket")


def evaluation_photos() -> dict[str, np.ndarray]:
    """scikit-image's sample photos by name, each its centre crop of ``photos.EVALUATION_CROP`` pixels,
    float32 in [0, 1]: (S, S, 1) grayscale or (S, S, 3) colour."""
    from .photos import EVALUATION_CROP, centre_crop
    try:
        from skimage import data as samples
    except ImportError as error:
        raise data.DataError("the evaluation photos come with scikit-image: pip install scikit-image") from error
    evaluation = {}
    for name in PHOTO_EVALUATION:
        image = np.asarray(getattr(samples, name)(), np.float32) / 255.0
        evaluation[name] = centre_crop(image[..., None] if image.ndim == 2 else image[..., :3], EVALUATION_CROP)
    return evaluation


def eval_photo(model, out: Path, log, garment_model=None) -> dict:
    """The photo denoiser on scikit-image's sample photos (256x256 centre crops; never trained on),
    noise at each of PHOTO_SIGMAS clipped to [0, 1], beside BM3D told the true level (CBM3D for
    colour), total variation with its weight tuned on the validation photos (never on these), and
    the garment model channel by channel (``garment_model``, where given). Per photo and the mean."""
    from . import ae, baselines, corruptions, photo, photos
    from .images import image_grid, save_jpeg
    from .metrics import psnr, ssim
    evaluation = evaluation_photos()
    validation = jnp.asarray(photos.validation_crops())
    results: dict = {"photos": list(evaluation), "crop": photos.EVALUATION_CROP}
    pictures = []
    for i, sigma in enumerate(PHOTO_SIGMAS):
        key = jax.random.key(SEED + 100 + i)
        tune_noisy = corruptions.gaussian_noise(jax.random.fold_in(key, 999), validation, sigma)
        weight = baselines.tune_tv_weight(baselines.channels_as_images(validation), baselines.channels_as_images(tune_noisy))
        row = {"tv_weight": weight, "per_photo": {}}
        seconds = {"photo_model": 0.0, "bm3d": 0.0}
        for j, (name, clean) in enumerate(evaluation.items()):
            clean = jnp.asarray(clean[None])
            noisy = corruptions.gaussian_noise(jax.random.fold_in(key, j), clean, sigma)
            photo.restore(model, noisy)  # compiled (once per shape) outside the timing
            started = time.perf_counter()
            restored = photo.restore(model, noisy)
            seconds["photo_model"] += time.perf_counter() - started
            started = time.perf_counter()
            bm3d_out = baselines.bm3d_denoise(noisy, sigma)
            seconds["bm3d"] += time.perf_counter() - started
            estimates = {"noisy": noisy, "photo_model": restored, "bm3d": bm3d_out,
                         "tv": baselines.per_channel(baselines.tv_denoise, noisy, weight)}
            if garment_model is not None:
                estimates["garment_model"] = baselines.per_channel(partial(ae.restore, garment_model), noisy)
            row["per_photo"][name] = {k: {"psnr": float(psnr(clean, v)[0]), "ssim": float(ssim(clean, v)[0])}
                                      for k, v in estimates.items()}
            if sigma == 0.2 and name in PHOTO_PICTURE:
                pictures.append([noisy[0], restored[0], bm3d_out[0], clean[0]])
        methods = next(iter(row["per_photo"].values()))
        row["mean"] = {k: {m: float(np.mean([p[k][m] for p in row["per_photo"].values()])) for m in ("psnr", "ssim")}
                       for k in methods}
        row["photo_model_wins_over_bm3d"] = {m: sum(p["photo_model"][m] > p["bm3d"][m] for p in row["per_photo"].values())
                                             for m in ("psnr", "ssim")}
        row["ms_per_photo"] = {k: 1e3 * v / len(evaluation) for k, v in seconds.items()}
        results[f"gaussian_{sigma}"] = row
        log(f"gaussian {sigma}: " + ", ".join(f"{k} {v['psnr']:.2f} dB / {v['ssim']:.3f}" for k, v in row["mean"].items())
            + f"; photo model ahead of BM3D on {row['photo_model_wins_over_bm3d']['psnr']} of {len(evaluation)} (PSNR); "
            f"{row['ms_per_photo']['bm3d'] / row['ms_per_photo']['photo_model']:.0f}x faster than BM3D")
    # Rows: noisy, photo model, BM3D, clean (grayscale photos shown in three equal channels).
    columns = [[np.repeat(np.asarray(x), 3 // x.shape[-1], axis=-1) for x in column] for column in pictures]
    picture = out / "photo_examples.jpg"
    save_jpeg(image_grid(np.stack([c[r] for r in range(4) for c in columns]), rows=4), picture)
    log(f"examples: {picture}")
    return results


# Latent seeds of the reported figures: seed 0 is left out, since recipes were once chosen on it.
GAN_SEEDS = (1, 2, 3, 4, 5)
# The studio's truncation levels measured for its trade-off curve (None: the untruncated normal).
TRUNCATIONS = (None, 2.5, 2.0, 1.5, 1.0, 0.5)


def over_seeds(per_seed: list[dict]) -> dict:
    """The mean of each figure over seeds, with the range (min, max) of the scalar ones."""
    summary = {}
    for key, value in per_seed[0].items():
        if isinstance(value, dict):
            summary[key] = {k: float(np.mean([s[key][k] for s in per_seed])) for k in value}
        else:
            values = [s[key] for s in per_seed]
            summary[key] = float(np.mean(values))
            summary[f"{key}_range"] = [float(min(values)), float(max(values))]
    return summary


def eval_gan(generator, test, train, out: Path, log, trained_and_held_out=None, seeds=GAN_SEEDS,
             truncations=TRUNCATIONS, dataset: str = "fashion-mnist") -> dict:
    """The untruncated generator against the test set (the reported figures), and each truncation
    against the training images held out of the GAN's training (``trained_and_held_out``, the pair
    ``data.hold_out`` returns): the curve the studio's default is chosen on. A GAN trained on every
    image has no curve. Measured in the features of ``dataset``'s shipped classifier."""
    from .gan import (
        MEASURE_SAMPLES,
        compare_to_real,
        generate_for_classes,
        real_features,
        sample_features,
    )
    from .images import image_grid
    classifier = checkpoint.load_if_present("cnn", dataset)
    if classifier is None:
        raise checkpoint.CheckpointError(f"the GAN is measured with the shipped classifier: train and ship "
                                         f"{checkpoint.default_weights('cnn', dataset)} first")
    to_test = real_features(classifier, test, train)
    to_held_out = None
    if trained_and_held_out is not None:
        trained_on, held_out = trained_and_held_out
        to_held_out = real_features(classifier, held_out, trained_on)
    on_test, curve = [], []
    for truncation in truncations:
        on_held_out = []
        for seed in seeds:  # the samples in the mix of the real pictures they are compared with
            if truncation is None:
                on_test.append(compare_to_real(*sample_features(generator, classifier, seed, truncation, to_test),
                                               to_test))
            if to_held_out is not None:
                on_held_out.append(compare_to_real(*sample_features(generator, classifier, seed, truncation,
                                                                    to_held_out), to_held_out))
        if on_held_out:
            figures = over_seeds(on_held_out)
            curve.append({"truncation": truncation, **{k: v for k, v in figures.items() if not isinstance(v, dict)}})
            log(f"truncation {truncation}, held-out images: {figures['frechet_ratio_to_floor']:.2f}x the floor "
                f"({figures['frechet_ratio_to_floor_range'][0]:.2f}-{figures['frechet_ratio_to_floor_range'][1]:.2f}), "
                f"spread {figures['within_class_spread']:.2f}, accuracy {figures['conditional_accuracy']:.1%}")
    results = over_seeds(on_test)
    log(f"test set: {results['frechet_ratio_to_floor']:.2f}x the floor ({results['frechet_ratio_to_floor_range'][0]:.2f}"
        f"-{results['frechet_ratio_to_floor_range'][1]:.2f}), accuracy {results['conditional_accuracy']:.1%}")

    if train.tone_labels is not None and trained_and_held_out is not None:
        results["people_per_tone"] = people_per_tone(generator, *trained_and_held_out, seeds, classifier=classifier)
        log(f"people per skin tone: the largest gap to the training pictures' shares is "
            f"{results['people_per_tone']['largest_gap_points']:.1f} points")

    picture = out / "gan_samples.png"  # a row per condition (in the default tone), ten columns
    conditions = generator.untoned_conditions
    samples = generate_for_classes(generator, 10 * conditions)[0]
    grid = samples.reshape(10, conditions, *samples.shape[1:]).transpose(1, 0, 2, 3, 4)
    save_png(image_grid(grid.reshape(samples.shape), rows=conditions), picture, scale=2)
    log(f"samples: {picture}")
    source = datasets.get(dataset)
    styles = len(source.styles)
    if generator.num_styles and set(SHOWCASE) <= set(source.classes):
        showcase = {group: source.classes.index(group) * styles for group in SHOWCASE}
        save_png(art_set_picture(generator, showcase, source.styles), out / "gan_art_sets.png")
        log(f"art sets: {out / 'gan_art_sets.png'}")
    if generator.tone_stride:  # the first toned group (people) in every tone
        people = source.classes.index(source.toned_classes[0]) * styles
        by_tone = {tone: people + t * generator.tone_stride for t, tone in enumerate(source.tones)}
        save_png(art_set_picture(generator, by_tone, source.styles, per_style=4), out / "gan_skin_tones.png")
        log(f"skin tones: {out / 'gan_skin_tones.png'}")
    return {"samples": MEASURE_SAMPLES, "seeds": list(seeds), **results,
            "held_out_images": 0 if to_held_out is None else len(to_held_out["labels"]), "truncation_curve": curve}


def people_per_tone(generator, trained_on, held_out, seeds, count: int = 1000, classifier=None, reader=None) -> dict:
    """The GAN's people by skin tone: ``count`` samples of people per latent seed (the art sets in
    turn; a generator with tones asked for them in the trained-on people's mix), each tone read by
    ``reader`` (None: a ``tone_reader.ToneReader`` fitted on the trained-on pictures; its accuracy on the
    held-out ones beside it). The share of each tone read against its share among the trained-on people: the largest gap,
    in points, is the generator's bias. With tones, also the share read as the tone asked, and with
    a ``classifier`` the share named as people, per tone asked."""
    from .cnn import predict_probabilities
    from .emoji import SKIN_TONES, TONED_GROUP, single_toned_people
    from .gan import conditions_like, generate_images, sample_latents
    from .tone_reader import ToneReader
    reader = ToneReader.fit(trained_on) if reader is None else reader
    tones = SKIN_TONES[:SKIN_TONES.index("mixed")]
    share = lambda read: np.bincount(read, minlength=len(tones)) / len(read)
    real_tones = single_toned_people(trained_on)[1]
    people, styles = trained_on.classes.index(TONED_GROUP), max(generator.num_styles, 1)
    # The tones asked in the people's mix, shuffled so that none goes with one art set more than another.
    asked = (np.random.default_rng(0).permutation(conditions_like(real_tones, count, len(tones)))
             if generator.tone_stride else np.zeros(count, int))
    conditions = jnp.asarray(people * styles + np.arange(count) % styles + asked * generator.tone_stride)
    latent_dim = generator.project.in_features - generator.embed.features
    shares, as_asked, named = [], [], []
    for seed in seeds:
        images = to_uint8(generate_images(generator, sample_latents(seed, count, latent_dim), conditions))
        read = reader.read(images)
        shares.append(share(read))
        as_asked.append([np.mean(read[asked == t] == t) for t in range(len(tones))])
        if classifier is not None:
            groups = np.asarray(predict_probabilities(classifier, images.astype(np.float32) / 255)).argmax(-1)
            named.append([np.mean(groups[asked == t] == people) for t in range(len(tones))])
    generated, real = np.array(shares), share(real_tones)
    per_tone = lambda rows: dict(zip(tones, np.mean(rows, 0).tolist()))
    figures = {"tone_reader_held_out_accuracy": reader.accuracy(held_out),
               "real_share": dict(zip(tones, real.tolist())), "generated_share": per_tone(generated),
               "generated_share_range": {tone: [float(low), float(high)]
                                         for tone, low, high in zip(tones, generated.min(0), generated.max(0))},
               "largest_gap_points": float(100 * np.abs(generated.mean(0) - real).max())}
    if generator.tone_stride:
        figures["read_as_asked"] = per_tone(as_asked)
    if named and generator.tone_stride:
        figures["named_people"] = per_tone(named)
        figures["named_people_gap_points"] = float(100 * np.ptp(np.mean(named, 0)))
    return figures


SHOWCASE = ("Faces", "Animals", "Buildings & places")  # the groups the README's picture shows


def art_set_picture(generator, rows: dict[str, int], styles, per_style: int = 6, seed: int = 0,
                    scale: int = 3) -> np.ndarray:
    """A uint8 picture: one row per entry of ``rows`` (name: its condition in the first style, such as
    group x styles), named on its left, and in it ``per_style`` samples in each style, the styles side
    by side under their names; the same latents in every block, so each column is one latent drawn
    in each row's condition."""
    from PIL import Image, ImageDraw

    from .gan import generate_images, sample_latents
    from .images import font, image_grid, label_rows, upscale
    count = len(styles)
    latents = np.tile(np.asarray(sample_latents(seed, per_style, generator.project.in_features
                                                - generator.embed.features)), (count, 1))
    pictures = [generate_images(generator, latents, np.repeat(first + np.arange(count), per_style))
                for first in rows.values()]
    grid = upscale(image_grid(np.concatenate([np.asarray(row) for row in pictures]), rows=len(rows)), scale)
    labelled = label_rows(grid, list(rows))
    header = Image.new("RGB", (labelled.shape[1], 40), (64, 64, 64))
    draw, block = ImageDraw.Draw(header), (grid.shape[1] - 2 * scale) / count
    for i, name in enumerate(styles):
        draw.text((labelled.shape[1] - grid.shape[1] + (i + 0.5) * block, 22), name, fill="white", font=font(22),
                  anchor="mm")
    return np.concatenate([np.asarray(header), labelled])


EDIT_IMAGES = 1000  # test images projected and edited
EDIT_SKETCHES = 200  # test pictures drawn as sketches (garments: their silhouettes)
EDIT_SEEDS = (0, 1, 2)  # the sketch search's random starts (projection has none: one start, the encoder's)


TONE_READER_FILE = "encoder_tone_reader.safetensors"


def fit_tone_reader(train, test, path: Path, log):
    """Fit the Edit tab's reader of skin tones (``tone_reader.ToneReader``) on the training pictures, write
    it beside the encoder and measure it on the test people: (the reader, its figures)."""
    from safetensors.numpy import save as save_safetensors_bytes

    from .checkpoint import atomic_write, sha256_file
    from .tone_reader import ToneReader
    reader = ToneReader.fit(train)
    atomic_write(path, save_safetensors_bytes(reader.arrays()))
    results = {"file": path.name, "sha256": sha256_file(path), "test_accuracy": reader.accuracy(test)}
    log(f"tone reader: {results['test_accuracy']:.1%} of the test people read as their skin tone")
    return reader, results


def eval_encoder(encoder, test, out: Path, log, images: int = EDIT_IMAGES, sketches: int = EDIT_SKETCHES,
                 seeds=EDIT_SEEDS, dataset: str = "fashion-mnist", train=None) -> dict:
    """The Edit tab's figures with the shipped generator and classifier of ``dataset``: reconstructions
    of test images (the search from the encoder's start, from zero, and the encoder alone), class
    (and art-set) edits of the reconstructions, and pictures for test pictures drawn as sketches
    (garments: their silhouettes; emoji: in the sketch colours; over ``seeds``). Emoji: the first ``images`` of the test
    pictures in a fixed shuffle (the split lists them emoji by emoji), people in the skin tone a
    reader fitted on the ``train`` pictures (written beside the encoder) reads in their colours."""
    from . import edit
    from .images import image_grid
    source = datasets.get(dataset)
    generator, classifier = (checkpoint.load_model(name, checkpoint.default_weights(name, dataset))[0]
                             for name in ("gan", "cnn"))
    toned = tuple(source.classes.index(name) for name in source.toned_classes)
    index = np.arange(len(test)) if source.light_on_dark else np.random.default_rng(0).permutation(len(test))
    index = index[:images]
    x, y = data.to_float(test.images[index]), test.labels_at(index)
    results, tones = {}, None
    if source.tones:
        reader, results["tone_reader"] = fit_tone_reader(train, test, out / TONE_READER_FILE, log)
        tones = reader.read(test.images[index])
    started = time.perf_counter()
    found = edit.measure_projection(generator, classifier, encoder, x, y, toned_classes=toned, tones=tones)
    figures = {k: v for k, v in found.items() if k not in ("latents", "conditions")}
    log(f"search from the encoder's start: median PSNR {figures['median_psnr']:.2f} dB, named as the original "
        f"{figures['named_as_original']:.1%} ({time.perf_counter() - started:.0f} s)")
    from_zero = edit.measure_projection(generator, classifier, None, x, y, toned_classes=toned, tones=tones)
    from_zero.pop("latents"), from_zero.pop("conditions")
    log(f"search from zero: median PSNR {from_zero['median_psnr']:.2f} dB, named {from_zero['named_as_original']:.1%}")
    alone = edit.measure_encoder_alone(generator, classifier, encoder, x, y, toned, tones)
    log(f"encoder alone: median PSNR {alone['median_psnr']:.2f} dB, named {alone['named_as_original']:.1%}")
    class_edits = edit.measure_class_edits(generator, classifier, found["latents"], found["conditions"], toned)
    log(f"class edits named as their target: {class_edits['named_as_target']:.1%}"
        + (f"; art-set edits: {class_edits['art_set_named_as_target']:.1%}" if "art_set_named_as_target" in class_edits
           else ""))
    results.update(images=len(x), search=dataclasses.asdict(edit.SearchConfig()), reconstruction=figures,
                   reconstruction_from_zero=from_zero, encoder_alone=alone, class_edits=class_edits)
    sketch_runs = [edit.measure_sketches(generator, x[:sketches], y[:sketches], source.light_on_dark, seed)
                   for seed in seeds]
    log(f"sketches: mean IoU {np.mean([s['mean_iou'] for s in sketch_runs]):.3f}, best in the image's class "
        f"{np.mean([s['best_in_class'] for s in sketch_runs]):.1%}")
    results.update(sketch_seeds=list(seeds), sketch=over_seeds(sketch_runs))

    picture = out / "edit_examples.png"  # ten test images over their reconstructions
    rendered = edit.project(generator, classifier, encoder, x[:10], toned_classes=toned,
                            tones=None if tones is None else tones[:10]).images
    save_png(image_grid(np.concatenate([x[:10], rendered]), rows=2), picture, scale=2)
    log(f"examples: {picture}")
    return results


HELD_OUT_FAMILIES = ("ae", "encoder", "gan")  # the CNN's familiarity check is fitted on held-out images


class HeldOutError(ValueError):
    """A measure on held-out images that this checkpoint cannot give."""


def run_eval(family_name: str, weights_path=None, data_dir=None, out=None, write_card: bool = False,
             bm3d_images: int = 200, log=print, on_held_out: bool = False) -> dict:
    """Measure a checkpoint on its dataset's test set, or with ``on_held_out`` on the training images
    it was trained without (its card's ``held_out``), for choices that must not read the test set."""
    path = Path(weights_path or checkpoint.default_weights(family_name))
    model, card = checkpoint.load_model(family_name, path)
    dataset = card.get("dataset", "fashion-mnist")
    source = datasets.get(dataset) if family_name != "photo" else None
    train = lambda held_out=0: source.train_and_held_out(data_dir, held_out)  # (trained on, held out)
    held_out_images = card.get("train_config", {}).get("held_out", 0)  # kept out of the checkpoint's training
    if on_held_out:
        if write_card:
            raise HeldOutError("held-out figures are for choices and stay out of the card: leave out --write-card")
        if family_name not in HELD_OUT_FAMILIES:
            raise HeldOutError(f"--held-out measures {', '.join(HELD_OUT_FAMILIES)} checkpoints, not {family_name}")
        if not held_out_images:
            raise HeldOutError(f"{path.name} was trained on every training image: none is held out to measure it on")
        trained_on, test = train(held_out_images)
        train = lambda _held_out=0: (trained_on, test)  # nothing the checkpoint trained on is measured
    else:
        test = source.test(data_dir) if source else None
    # Files beside the checkpoint only with its card (which records their SHA-256); else runs/eval.
    out = path.parent if write_card else Path(out or Path("runs") / "eval" / family_name)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if family_name == "cnn":
        results = eval_cnn(model, test, train(FAMILIARITY_HELDOUT), source.classes, out, log)
    elif family_name == "ae":
        results = eval_ae(model, test, train()[0], out, log, bm3d_images, dataset=dataset)
    elif family_name == "encoder":
        results = eval_encoder(model, test, out, log, dataset=dataset, train=train()[0] if source.tones else None)
    elif family_name == "photo":
        results = eval_photo(model, out, log, garment_model=checkpoint.load_if_present("ae"))
    else:
        results = eval_gan(model, test, train()[0], out, log, train(held_out_images) if held_out_images else None,
                           dataset=dataset)
    # The card names its weights relative to itself: no machine's absolute path.
    results = {"family": family_name, "checkpoint": path.name if write_card else str(path), "dataset": dataset,
               **({"measured_on": "held-out training images"} if on_held_out else {}), **results,
               "eval_seconds": round(time.perf_counter() - started, 1)}
    if write_card:
        checkpoint.update_card(path, metrics=results)
    return results
