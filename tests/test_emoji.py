"""The emoji art sets: found or downloaded with npm's checksums, grouped by Unicode subcategory, drawn
on white at the models' side, and split by emoji so that a test emoji is unseen in every form."""

import dataclasses
import io
import json
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from imgjax import checkpoint, data, datasets, emoji, evaluate, gan, tone_reader


def _png(colour, alpha=255) -> bytes:
    """A 64 px picture: a square of ``colour`` on a transparent ground."""
    picture = np.zeros((64, 64, 4), np.uint8)
    picture[16:48, 16:48] = (*colour, alpha)
    buffer = io.BytesIO()
    Image.fromarray(picture, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _svg(colour) -> bytes:
    """The same square as ``_png`` drawn as an SVG."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect x="16" y="16" width="32" '
            f'height="32" fill="rgb{tuple(colour)}"/></svg>').encode()


COLOURS = [(255, 0, 0), (0, 0, 255), (0, 128, 0)]  # one per art set: Twemoji, Noto, OpenMoji
ENTRIES = [
    {"unified": "1F600", "short_name": "grinning", "image": "1f600.png", "category": "Smileys & Emotion",
     "subcategory": "face-smiling"},
    {"unified": "1F9D1", "short_name": "adult", "image": "1f9d1.png", "category": "People & Body",
     "subcategory": "person", "skin_variations": {
         tone: {"unified": f"1F9D1-{tone}", "image": f"1f9d1-{tone.lower()}.png", "has_img_twitter": True,
                "has_img_google": tone != "1F3FF"} for tone in ("1F3FB", "1F3FF", "1F3FB-1F3FF", "1F3FD-1F3FD")}},
    {"unified": "1F1EA-1F1EC", "short_name": "flag-eg", "image": "flag.png", "category": "Flags",
     "subcategory": "country-flag"},
    {"unified": "1F6B2", "short_name": "bike", "image": "1f6b2.png", "category": "Travel & Places",
     "subcategory": "transport-ground"},
    {"unified": "1F6B8", "short_name": "children_crossing", "image": "1f6b8.png", "category": "Symbols",
     "subcategory": "transport-sign"},
]


@pytest.fixture
def small_art_sets(tmp_path, monkeypatch):
    """Two tiny packages laid out as the npm ones, in IMGJAX_EMOJI_DIR, with their checksums."""
    art_sets = []
    for art_set, colour in zip(emoji.ART_SETS, COLOURS, strict=True):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as package:
            def add(name, raw):
                info = tarfile.TarInfo(name)
                info.size = len(raw)
                package.addfile(info, io.BytesIO(raw))
            if art_set.has_image is None:  # OpenMoji: an SVG per code, all but the bike; no catalogue
                for entry in ENTRIES[:3]:
                    for variant in [entry, *entry.get("skin_variations", {}).values()]:
                        add(f"{art_set.images}/{variant['unified']}.svg", _svg(colour))
            else:
                entries = [{**entry, "has_img_twitter": True, "has_img_google": True} for entry in ENTRIES]
                add("package/emoji.json", json.dumps(entries).encode())
                for entry in entries:
                    for variant in [entry, *entry.get("skin_variations", {}).values()]:
                        add(f"{art_set.images}/{variant['image']}", _png(colour))
        raw = buffer.getvalue()
        (tmp_path / art_set.file_name).write_bytes(raw)
        art_sets.append(dataclasses.replace(art_set, integrity=data.npm_integrity(raw)))
    monkeypatch.setenv("IMGJAX_EMOJI_DIR", str(tmp_path))
    monkeypatch.setattr(emoji, "ART_SETS", tuple(art_sets))
    return tmp_path


def test_packages_are_grouped_toned_and_drawn_on_white(small_art_sets):
    every, codes, names = emoji.load_all(side=16)
    # The flag and the transport sign are left out.
    assert list(codes) == ["1F600", "1F6B2", "1F9D1"] and list(names) == ["grinning", "bike", "adult"]
    assert every.images.shape == (len(every), 16, 16, 3) and every.images.dtype == np.uint8
    # Twemoji: the face, the adult and its 4 variants, the bike; Noto lacks the dark adult; OpenMoji's
    # SVGs (found by code) lack the bike.
    assert list(np.bincount(every.art_sets)) == [7, 6, 6]
    tones = [emoji.SKIN_TONES[t] for t in every.tones[(every.art_sets == 0) & (every.emoji == 2)]]
    assert tones == ["default", "light", "dark", "mixed", "medium"]
    assert {emoji.GROUPS[g] for g in every.labels} == {"Faces", "People", "Vehicles"}
    assert (every.images[:, 0, 0] == 255).all()  # the transparent ground is white
    for art_set, colour in enumerate(COLOURS):
        assert (every.images[every.art_sets == art_set, 8, 8] == colour).all()
    assert next(small_art_sets.glob("emoji-16px-*.npz")).is_file()  # built once, then read


def test_a_package_whose_checksum_differs_is_refused(small_art_sets):
    tampered = small_art_sets / emoji.ART_SETS[0].file_name
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    with pytest.raises(data.DataError, match="do not match npm's checksum"):
        emoji.load_all(side=16)
    tampered.unlink()
    with pytest.raises(data.DataError, match="imgjax data emoji"):  # an explicit folder never downloads
        emoji.load_all(side=16)


def _pictures(groups_of_emoji, pictures_per_emoji=3):
    """An EmojiSplit with the given group for each emoji, each emoji drawn several times."""
    labels = np.repeat(np.asarray(groups_of_emoji, np.int32), pictures_per_emoji)
    count = len(labels)
    return emoji.EmojiSplit(images=np.zeros((count, 2, 2, 3), np.uint8), labels=labels, classes=emoji.GROUPS,
                            art_sets=np.arange(count) % 2, tones=np.zeros(count, np.int32),
                            emoji=np.repeat(np.arange(len(groups_of_emoji)), pictures_per_emoji))


def test_splits_are_by_emoji_one_in_eight_of_each_group(monkeypatch):
    every = _pictures([0] * 80 + [3] * 16 + [7] * 40)
    monkeypatch.setattr(emoji, "load_all", lambda side, allow_download: (every, None, None))
    train, test = emoji.load_split("train"), emoji.load_split("test")
    assert len(train) + len(test) == len(every) and not set(train.emoji) & set(test.emoji)
    assert [len(set(test.emoji[test.labels == g])) for g in (0, 3, 7)] == [10, 2, 5]
    kept, held = emoji.hold_out(train)
    assert not set(kept.emoji) & set(held.emoji) and not set(held.emoji) & set(test.emoji)
    assert [len(set(held.emoji[held.labels == g])) for g in (0, 3, 7)] == [9, 2, 4]  # one in 8 of 70, 14 and 35
    with pytest.raises(ValueError, match="split must be"):
        emoji.load_split("validation")


def test_an_epoch_draws_each_group_equally_often():
    """People are most of the emoji pictures; an epoch draws as many pictures as there are, each group
    as often as the others, where a garment epoch takes each picture once."""
    split = _pictures([0] * 90 + [5] * 10, pictures_per_emoji=1)
    order = np.concatenate([split.epoch_order(np.random.default_rng(seed)) for seed in range(40)])
    assert len(order) == 40 * len(split) and abs((split.labels[order] == 5).mean() - 0.5) < 0.03
    garments = data.Split(np.zeros((100, 28, 28), np.uint8), np.r_[np.zeros(90), np.ones(10)].astype(np.int32))
    assert sorted(garments.epoch_order(np.random.default_rng(0))) == list(range(100))


def test_the_art_sets_give_every_group_60_emoji_and_unseen_test_emoji(emoji_pictures):
    every, codes, _ = emoji_pictures
    assert every.images.shape[1:] == (emoji.SIDE, emoji.SIDE, 3) and len(codes) > 1000
    for group in range(len(emoji.GROUPS)):
        for art_set in range(len(emoji.ART_SETS)):
            assert len(set(every.emoji[(every.labels == group) & (every.art_sets == art_set)])) >= 60
    train, test = emoji.load_split("train"), emoji.load_split("test")
    assert not set(train.emoji) & set(test.emoji) and len(train) + len(test) == len(every)
    assert set(test.labels) == set(range(len(emoji.GROUPS)))
    people = every.labels == emoji.GROUPS.index("People")
    assert set(every.tones[people]) == set(range(len(emoji.SKIN_TONES)))  # every tone, mixed pairs too


def test_the_tone_reader_reads_held_out_peoples_skin_tones_even_blurred(emoji_pictures):
    """Trained on the training people, it names the tone of people it never saw nine times in ten,
    and blurred, relit and noisy (a generator's softness) still more than eight in ten, with each
    tone's share read within 3 points of its true share; its weights read back the same."""
    trained, held = emoji.hold_out(emoji.load_split("train"))
    reader = tone_reader.ToneReader.fit(trained)
    images, tones = emoji.single_toned_people(held)
    read = reader.read(images)
    assert len(set(tones)) == emoji.SKIN_TONES.index("mixed")  # five tones and the default
    assert np.mean(read == tones) > 0.9 and all(np.mean(read[tones == tone] == tone) > 0.8 for tone in set(tones))
    softened = emoji.shaded(images, seed=7)  # copies unlike any it was trained on (seeds 0-2)
    read_softened = reader.read(softened)
    assert np.mean(read_softened == tones) > 0.8
    share = lambda read_tones: np.bincount(read_tones, minlength=len(set(tones))) / len(read_tones)
    assert np.abs(share(read_softened) - share(tones)).max() < 0.03
    again = tone_reader.ToneReader.from_arrays(reader.arrays())
    np.testing.assert_array_equal(again.read(softened), read_softened)
    # A generator's people, read the same way, beside the training pictures' shares of each tone.
    config = datasets.get("emoji").sized(gan.GANConfig(generator_widths=(16, 8, 8)), "gan")
    figures = evaluate.people_per_tone(gan.Generator(config, rngs=nnx.Rngs(0)), trained, held, seeds=(1, 2), count=60,
                                      reader=reader)
    real, generated = (np.array(list(figures[key].values())) for key in ("real_share", "generated_share"))
    trained_tones = emoji.single_toned_people(trained)[1]
    np.testing.assert_allclose(real, np.bincount(trained_tones) / len(trained_tones))
    assert generated.sum() == pytest.approx(1.0) and figures["tone_reader_held_out_accuracy"] > 0.9
    assert figures["largest_gap_points"] == pytest.approx(100 * np.abs(generated - real).max())
    # Conditioned on tones, each sample is asked for one: how often it reads as that tone, per tone.
    assert list(figures["read_as_asked"]) == list(emoji.SKIN_TONES[:-1])
    assert all(0 <= share <= 1 for share in figures["read_as_asked"].values())


def test_each_art_sets_skin_palette_is_its_yellow_then_its_tones_light_to_dark(emoji_pictures):
    """The skin colours found where one emoji's tone variants differ: the default a yellow (blue far
    under red), then each tone darker than the one before in every art set; a GAN asking for the
    skin channel gets them, flat, from the dataset, and one that does not ask gets none."""
    palette = emoji.skin_palette(emoji.hold_out(emoji.load_split("train"))[0])
    assert palette.shape == (len(emoji.ART_SETS), len(emoji.SKIN_TONES), 3)
    default, tones = palette[:, 0], palette[:, 1:emoji.SKIN_TONES.index("mixed")]
    assert (default[:, 0] - default[:, 2] > 0.5).all()
    assert (np.diff(tones.sum(-1), axis=1) < -0.1).all()  # every step a tenth of the scale darker or more
    dataset = datasets.get("emoji")
    asking = dataset.sized(gan.GANConfig(skin_channel_width=0.08), "gan")
    np.testing.assert_allclose(np.reshape(asking.tone_palette, palette.shape), palette, atol=1e-4)
    assert dataset.sized(gan.GANConfig(), "gan").tone_palette == ()


def test_the_dataset_sizes_the_classifier_and_families_not_sized_refuse(small_art_sets, tmp_path):
    """`imgjax train cnn --dataset emoji` builds a 32x32 colour classifier of the eight groups, whose
    checkpoint serves colour pictures with a saliency map per pixel; families whose config has no
    side or channels refuse the emoji with a sentence instead of failing on a shape."""
    from imgjax import cnn, datasets, encoder
    from imgjax.family import load_family
    from imgjax.train import TrainConfig, fit
    emoji_set = datasets.get("emoji")
    assert datasets.get("fashion-mnist").sized(cnn.CNNConfig(), "cnn") == cnn.CNNConfig()
    sized = emoji_set.sized(encoder.EncoderConfig(), "encoder")  # one latent per (group, art set)
    assert (sized.side, sized.channels, sized.conditions) == (32, 3, 24)

    @dataclasses.dataclass(frozen=True)
    class GrayOnly:  # a family whose config has no channels: 28x28 gray pictures only
        num_classes: int = 10
    with pytest.raises(data.DataError, match="the gray family does not train on Emoji"):
        emoji_set.sized(GrayOnly(), "gray")
    config = TrainConfig(family="cnn", epochs=1, batch_size=4, learning_rate=1e-3, dataset="emoji", out=str(tmp_path))
    card = fit(load_family("cnn"), config, log=lambda *_: None)
    assert card["dataset"] == "emoji"
    config = card["config"]
    assert (config["side"], config["channels"], config["num_classes"], config["num_styles"]) == (32, 3, 8, 3)
    model, _ = checkpoint.load_model("cnn", tmp_path / "cnn.safetensors")
    every, _, _ = emoji.load_all()
    pictures = data.to_float(every.images[:3])
    probabilities, saliency, _, styles = cnn.classify_with_saliency(model, pictures)
    assert probabilities.shape == (3, 8) and saliency.shape == (3, 32, 32) and styles.shape == (3, 3)
    assert np.allclose(np.asarray(probabilities).sum(1), 1, atol=1e-5)
    assert np.allclose(np.asarray(styles).sum(1), 1, atol=1e-5)


def test_batches_carry_the_art_set_and_tone_as_more_labels_and_the_loss_counts_both_heads():
    """An emoji batch's labels are (group, art set, skin tone) triples; the classifier's loss is the
    cross-entropy of both its heads (the tone is the GAN's); garments keep one label and a classifier
    without a style head."""
    from imgjax import cnn
    split = _pictures([0] * 8 + [5] * 8, pictures_per_emoji=1)
    split = dataclasses.replace(split, art_sets=np.arange(16, dtype=np.int32) % 3)
    x, labels = next(data.batches(split, 4, seed=0, epoch=0))
    assert x.shape == (4, 2, 2, 3) and labels.shape == (4, 3)
    assert [tuple(triple) for triple in labels] == [(split.labels[i], split.art_sets[i], split.tones[i]) for i in
                                                    split.epoch_order(np.random.default_rng([0, 0]))[:4]]
    garments = data.Split(np.zeros((8, 28, 28), np.uint8), np.arange(8, dtype=np.int32))
    assert next(data.batches(garments, 4, 0, 0))[1].shape == (4,)
    config = cnn.CNNConfig(side=8, channels=3, num_classes=8, num_styles=3, dropout=0.0)
    model = cnn.Classifier(config, rngs=nnx.Rngs(0))
    images = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    pairs = np.array([[0, 2], [5, 0], [7, 1], [1, 1]], np.int32)
    both, _ = cnn.loss_fn(model, images, pairs, jax.random.key(0))
    with_tones = np.concatenate([pairs, np.array([[0], [3], [0], [6]], np.int32)], -1)
    assert float(cnn.loss_fn(model, images, with_tones, jax.random.key(0))[0]) == pytest.approx(float(both), rel=1e-6)
    classes, styles = model.both_logits(images, train=True)
    cross_entropy = lambda logits, y: float(-np.mean(np.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)))
    assert float(both) == pytest.approx(cross_entropy(classes, pairs[:, 0]) + cross_entropy(styles, pairs[:, 1]), rel=1e-5)
    assert float(cnn.loss_fn(model, images, pairs[:, 0], jax.random.key(0))[0]) == pytest.approx(
        cross_entropy(classes, pairs[:, 0]), rel=1e-5)
    assert cnn.Classifier(cnn.CNNConfig(), rngs=nnx.Rngs(0)).style_head is None


def test_the_gray_to_mean_colour_baseline_gives_each_gray_level_its_training_colour():
    """The colourisation baseline learns, per gray level, the mean colour of training pixels of that
    luminance: a picture whose gray levels each had one colour in training gets those colours back."""
    from imgjax import baselines
    red, blue = np.array([200, 40, 40], np.uint8), np.array([40, 40, 230], np.uint8)
    train = np.zeros((2, 4, 4, 3), np.uint8)
    train[0], train[1] = red, blue
    colour = lambda gray: baselines.colour_from_table(baselines.mean_colour_table(train / 255.0), gray)
    gray = np.stack([np.full((4, 4, 3), float(c @ np.array([0.299, 0.587, 0.114])) / 255) for c in (red, blue)])
    np.testing.assert_allclose(colour(gray), np.stack([np.full((4, 4, 3), red / 255), np.full((4, 4, 3), blue / 255)]),
                               atol=1e-6)
    assert np.allclose(colour(np.full((1, 2, 2, 3), 0.99)), 0.99, atol=0.02)  # a level never seen stays gray


def test_the_encoder_answers_each_group_and_art_set_of_the_emoji_gan(tmp_path, monkeypatch):
    """Sized by the dataset, the encoder gives one latent per (group, art set) condition and trains
    against that dataset's generator and classifier (here a small untrained generator beside the
    shipped emoji classifier): on the same generator samples again, its error on their latents falls;
    the generator renders that latent in the picture's skin tone."""
    import shutil

    from imgjax import datasets, encoder, gan
    from imgjax.train import TrainConfig
    emoji_set = datasets.get("emoji")
    shipped = checkpoint.CHECKPOINT_DIR / "emoji" / "cnn.safetensors"
    if not shipped.exists():
        pytest.skip("no shipped emoji classifier")
    (tmp_path / "emoji").mkdir()
    for path in (shipped, checkpoint.card_path(shipped)):
        shutil.copy(path, tmp_path / "emoji" / path.name)
    config = emoji_set.sized(gan.GANConfig(generator_widths=(16, 8, 8), discriminator_widths=(8, 16)), "gan")
    checkpoint.save_serving(tmp_path / "emoji" / "gan.safetensors", gan.Generator(config, rngs=nnx.Rngs(0)),
                            {"family": "gan", "config": dataclasses.asdict(config), "dataset": "emoji"})
    monkeypatch.setattr(checkpoint, "CHECKPOINT_DIR", tmp_path)
    sized = emoji_set.sized(encoder.EncoderConfig(widths=(8, 8, 8), hidden=32), "encoder")
    training = encoder.EncoderTraining(sized, TrainConfig(family="encoder", epochs=1, batch_size=8,
                                                          learning_rate=3e-3, dataset="emoji"), 20)
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3)).astype(np.float32)
    labels = np.stack([rng.integers(0, 8, 8), rng.integers(0, 3, 8), rng.integers(0, 7, 8)], axis=-1).astype(np.int32)
    assert encoder.encode(training.encoder, images).shape == (8, 24, 64)  # a latent per (group, art set) pair
    losses = [float(encoder.train_step(training, images, labels, jax.random.key(0))["latent"]) for _ in range(8)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # One latent for a picture of people, drawn in the picture's tone: the default's and the dark one's differ.
    people = 1 * 3 + 0
    default, dark = (encoder._render_predictions(training.encoder, training.generator, images[:1], jnp.array([c]))
                     for c in (people, people + 5 * 24))
    assert float(jnp.abs(default - dark).max()) > 1e-3
