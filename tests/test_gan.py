import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from imgjax import data, datasets, gan
from imgjax.train import TrainConfig


def test_shapes_ranges_and_determinism():
    config = gan.GANConfig()
    generator = gan.Generator(config, rngs=nnx.Rngs(0))
    latents = gan.sample_latents(7, 4, config.latent_dim)
    np.testing.assert_array_equal(latents, gan.sample_latents(7, 4, config.latent_dim))
    images = gan.generate_images(generator, latents, jnp.array([0, 1, 2, 3]))
    assert images.shape == (4, 28, 28, 1) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    discriminator = gan.Discriminator(config, rngs=nnx.Rngs(1))
    assert discriminator(images * 2 - 1, jnp.array([0, 1, 2, 3]))[0].shape == (4,)
    # Labels change the picture: class conditioning reaches the output.
    other = gan.generate_images(generator, latents, jnp.array([5, 5, 5, 5]))
    assert float(jnp.abs(other - images).max()) > 1e-3


def emoji_steps(config: gan.GANConfig, steps: int = 1):
    """``steps`` training steps of an emoji-sized GAN on 8 random pictures in every group, art set
    and tone: (the training, the last step's metrics)."""
    training = gan.GANTraining(config, TrainConfig("gan", epochs=1, batch_size=8, learning_rate=2e-4), 4)
    real = np.random.default_rng(0).random((8, 32, 32, 3)).astype(np.float32)
    labels = np.stack([np.arange(8) % 8, np.arange(8) % 3, np.arange(8) % 7], -1).astype(np.int32)
    for step in range(steps):
        metrics = gan.train_step(training, real, labels, jax.random.key(step))
    return training, metrics


def test_a_colour_gan_is_conditioned_on_each_class_style_and_tone():
    """Sized for emoji (32x32 colour, eight groups, three art sets, seven skin tones), the networks
    embed 24 (group, art set) pairs in each tone; a batch's (group, art set, tone) labels become
    condition tone x 24 + group x 3 + art set (the default tone 0 keeps the pair's index), and a step
    trains on them with differentiable augmentation."""
    config = datasets.get("emoji").sized(gan.GANConfig(diff_augment="colour,translation,cutout"), "gan")
    assert (config.side, config.channels, config.num_classes, config.num_styles, config.num_tones) == (32, 3, 8, 3, 7)
    assert (config.conditions, config.tone_stride) == (168, 24)
    np.testing.assert_array_equal(gan.conditions_of(np.array([[0, 0], [2, 1], [7, 2]]), 3), [0, 7, 23])
    np.testing.assert_array_equal(gan.conditions_of(np.array([[0, 0, 0], [1, 1, 5], [7, 2, 6]]), 3, 24), [0, 124, 167])
    np.testing.assert_array_equal(gan.conditions_of(np.array([[1, 1, 5]]), 3), [4])  # a model without tones
    np.testing.assert_array_equal(gan.conditions_of(np.array([4, 9]), 0), [4, 9])
    generator = gan.Generator(config, rngs=nnx.Rngs(0))
    assert generator.untoned_conditions == 24
    latents = gan.sample_latents(0, 4, config.latent_dim)
    images = gan.generate_images(generator, latents, jnp.array([0, 7, 23, 3]))
    assert images.shape == (4, 32, 32, 3)
    # The tone reaches the picture: the same person in another tone differs.
    darker = gan.generate_images(generator, latents, jnp.array([0, 7, 23, 3]) + 5 * 24)
    assert float(jnp.abs(darker - images).max()) > 1e-3
    assert gan.Discriminator(config, rngs=nnx.Rngs(1))(images * 2 - 1, jnp.array([0, 7, 23, 3]))[0].shape == (4,)
    metrics = emoji_steps(config)[1]
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    with pytest.raises(ValueError, match="diff_augment=blur"):
        gan.GANConfig(diff_augment="blur")


def test_the_skin_channel_shows_d_where_a_picture_has_the_asked_tones_skin():
    """With ``skin_channel_width``, D sees one more channel: 1 where a pixel is the skin colour of the
    condition's art set and tone, near -1 a tone away, -1 in the default tone; so with its projection
    zeroed, D scores the same picture differently when asked for another tone, and a step trains
    through it."""
    # A palette (art set, tone, RGB) whose tones are a tenth of the scale apart, as the drawings' are.
    palette = np.broadcast_to(0.9 - 0.1 * np.arange(7)[None, :, None] + 0.02 * np.arange(3)[:, None, None], (3, 7, 3))
    config = dataclasses.replace(datasets.get("emoji").sized(gan.GANConfig(), "gan"), skin_channel_width=0.05,
                                 tone_palette=tuple(palette.ravel().tolist()))
    discriminator = gan.Discriminator(config, rngs=nnx.Rngs(0))
    assert discriminator.conv14.in_features == 4 * 4  # space-to-depth of RGB and the skin channel
    medium, dark = 3 * 24 + 1 * 3 + 2, 5 * 24 + 1 * 3 + 2  # people in OpenMoji's style, medium and dark
    picture = jnp.broadcast_to(jnp.asarray(2 * palette[2, 3] - 1, jnp.float32), (2, 32, 32, 3))
    colours = jnp.asarray(discriminator.skin_colours)[jnp.array([medium, dark])]
    closeness = gan.skin_closeness(picture, colours, discriminator.skin_width)
    np.testing.assert_allclose(closeness[0], 1.0, atol=1e-6)
    assert float(closeness[1].max()) < -0.9
    default = 1 * 3 + 2  # people in OpenMoji's style, the default tone: no skin colour asked
    channel = discriminator.skin_channel(picture, jnp.array([medium, default]))
    np.testing.assert_allclose(channel[0], closeness[0])
    assert float(channel[1].max()) == -1.0
    discriminator.class_projection.embedding[...] = jnp.zeros_like(discriminator.class_projection.embedding[...])
    scores = discriminator(picture, jnp.array([medium, dark]))[0]
    assert abs(float(scores[0] - scores[1])) > 1e-4
    plain = gan.Discriminator(dataclasses.replace(config, skin_channel_width=0.0), rngs=nnx.Rngs(0))
    plain.class_projection.embedding[...] = jnp.zeros_like(plain.class_projection.embedding[...])
    assert float(jnp.ptp(plain(picture, jnp.array([medium, dark]))[0])) == 0.0  # without it, no difference
    metrics = emoji_steps(config, 2)[1]
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))


def test_the_skin_mask_fills_where_g_marks_with_a_colour_of_the_condition():
    """With ``skin_mask``, G's last channel is a mask, nearly empty at first, and where it is full the
    picture is one colour drawn from the condition's vector: per condition its own, for a blend of
    two conditions' vectors that of the blend; a step trains it."""
    config = dataclasses.replace(datasets.get("emoji").sized(gan.GANConfig(), "gan"), skin_mask=True)
    generator = gan.Generator(config, rngs=nnx.Rngs(0))
    latents, conditions = gan.sample_latents(0, 3, config.latent_dim), jnp.array([1 * 3, 3 * 24 + 3, 5 * 24 + 3])
    vectors = generator.embed(conditions)
    colours = np.tanh(np.asarray(generator.skin_colour(vectors)))
    drawn = np.asarray(generator(latents, conditions))
    painted = nnx.clone(generator)  # its colour white: the picture moves a little towards it, not more
    painted.skin_colour.bias[...] = jnp.full_like(painted.skin_colour.bias[...], 100.0)
    moved = np.asarray(painted(latents, conditions)) - drawn
    assert (moved > 0).all() and 0.001 < moved.mean() < 0.05
    generator.to_image.bias[...] = generator.to_image.bias[...].at[-1].set(100.0)  # the mask full everywhere
    np.testing.assert_allclose(generator(latents, conditions), np.broadcast_to(colours[:, None, None, :], drawn.shape),
                               atol=1e-5)
    assert np.abs(colours[1] - colours[2]).max() > 1e-3  # medium and dark people: colours of their own
    halfway = generator.synthesize(latents[:1], (vectors[1:2] + vectors[2:3]) / 2)
    np.testing.assert_allclose(halfway[0, 0, 0], np.tanh(np.asarray(generator.skin_colour((vectors[1] + vectors[2]) / 2))),
                               atol=1e-5)
    metrics = emoji_steps(config, 2)[1]
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))


def test_a_shared_tone_embedding_gives_each_condition_its_pairs_vector_plus_its_tones():
    """With ``share_tone_embedding``, G's condition vectors and D's projections are a (group, art
    set) pair's plus a tone's: one tone's step is the same for every pair, and a step trains them."""
    config = datasets.get("emoji").sized(gan.GANConfig(share_tone_embedding=True, class_loss_weight=1.0), "gan")
    generator, discriminator = gan.Generator(config, rngs=nnx.Rngs(0)), gan.Discriminator(config, rngs=nnx.Rngs(1))
    for embed in (generator.embed, discriminator.class_projection):
        table = np.asarray(embed.embedding).reshape(7, 24, -1)  # tone, pair
        assert (embed.num_embeddings, embed.features) == (168, table.shape[-1])
        steps = table[5] - table[0]  # the default tone to tone 5, pair by pair
        np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-6)
        np.testing.assert_allclose(np.asarray(embed(jnp.array([3, 5 * 24 + 3]))), table[[0, 5], 3], atol=1e-6)
    unshared = gan.Generator(dataclasses.replace(config, share_tone_embedding=False), rngs=nnx.Rngs(0))
    free = np.asarray(unshared.embed.embedding[...]).reshape(7, 24, -1)
    assert np.abs((free[5] - free[0]) - (free[5, 0] - free[0, 0])).max() > 0.1  # free vectors: no shared step
    latents = gan.sample_latents(0, 2, config.latent_dim)
    np.testing.assert_allclose(gan.generate_images(generator, latents, jnp.array([3, 123])),
                               gan.generate_blended(generator, latents, jnp.eye(168)[jnp.array([3, 123])]), atol=1e-5)
    metrics = emoji_steps(config)[1]
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))


def test_conditional_norm_starts_as_the_plain_generator_and_learns_a_gain_per_condition():
    """With ``conditional_norm``, G's gains and biases come from the condition's vector: zero at
    first, so it draws what the plain network draws; a training step makes them differ by condition."""
    config = datasets.get("emoji").sized(gan.GANConfig(conditional_norm=True, share_tone_embedding=True), "gan")
    generator = gan.Generator(config, rngs=nnx.Rngs(0))
    plain = gan.Generator(dataclasses.replace(config, conditional_norm=False), rngs=nnx.Rngs(0))
    latents, conditions = gan.sample_latents(0, 4, config.latent_dim), jnp.array([0, 3, 24, 123])
    np.testing.assert_allclose(gan.generate_images(generator, latents, conditions),
                               gan.generate_images(plain, latents, conditions), atol=1e-6)
    trained = emoji_steps(config, steps=2)[0].generator
    gains = np.asarray(trained.film2(trained.embed(conditions)))
    assert np.abs(gains).max() > 0 and np.abs(gains[0] - gains[3]).max() > 0  # learnt, and per condition


def test_diff_augment_draws_per_image_and_lets_gradients_through():
    """Each image gets its own shift, colour and hole; the operations are differentiable, so G learns
    through them; no policy leaves images as they are."""
    images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (6, 16, 16, 3)).astype(np.float32))
    policy = ("colour", "translation", "cutout")
    augmented = gan.diff_augment(jax.random.key(0), images, policy)
    assert augmented.shape == images.shape
    changes = np.abs(np.asarray(augmented - images)).mean(axis=(1, 2, 3))
    assert (changes > 0.01).all() and len(set(np.round(changes, 4))) == 6
    holes = np.asarray(gan._cutout(jax.random.key(1), jnp.ones((6, 16, 16, 1))))
    assert ((holes == 0).sum(axis=(1, 2, 3)) <= 64).all() and (holes == 0).any()  # at most an 8x8 square
    shifted = np.asarray(gan._translation(jax.random.key(2), images))
    assert (shifted == 0).any() and np.isin(shifted[shifted != 0], np.asarray(images)).all()  # moved, not changed
    gradient = jax.grad(lambda x: gan.diff_augment(jax.random.key(0), x, policy).sum())(images)
    assert float(jnp.abs(gradient).sum()) > 0
    np.testing.assert_array_equal(gan.diff_augment(jax.random.key(0), images, ()), images)


def test_truncation_bounds_latents():
    latents = gan.sample_latents(0, 1000, 64, truncation=0.5)
    assert float(jnp.abs(latents).max()) <= 0.5


def test_train_steps_teach_the_discriminator_and_move_the_ema(tiny_dataset):
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    training = gan.GANTraining(gan.GANConfig(), TrainConfig("gan", epochs=1, batch_size=32, learning_rate=2e-4), 15)
    images, labels = data.to_float(split.images[:32]), split.labels[:32]
    before = nnx.state(training.ema_generator, nnx.Param)
    before = jax.tree.map(np.asarray, before)
    metrics = [gan.train_step(training, images, labels, jax.random.key(i)) for i in range(15)]
    assert float(metrics[-1]["d_loss"]) < float(metrics[0]["d_loss"])
    after = nnx.state(training.ema_generator, nnx.Param)
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), after, before)
    assert max(jax.tree.leaves(moved)) > 0


def test_minibatch_std_channel_measures_each_group_of_consecutive_images():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(8, 7, 7, 5)).astype(np.float32)
    h[4:] = h[4]  # the second group of four: identical images, no spread
    out = np.asarray(gan.append_minibatch_std(jnp.asarray(h), 4))
    assert out.shape == (8, 7, 7, 6)
    np.testing.assert_array_equal(out[..., :5], h)
    expected = np.sqrt(h[:4].var(axis=0)).mean()
    np.testing.assert_allclose(out[:4, ..., 5], expected, rtol=1e-4)
    np.testing.assert_allclose(out[4:, ..., 5], 1e-4, rtol=1e-3)  # sqrt of the 1e-8 floor
    # A batch that is not a multiple of the group: groups of gcd(6, 4) = 2.
    np.testing.assert_allclose(np.asarray(gan.append_minibatch_std(jnp.asarray(h[:6]), 4))[:2, ..., 5],
                               np.sqrt(h[:2].var(axis=0)).mean(), rtol=1e-4)

    # In D, an image's score depends on the other images of its group and on no others.
    discriminator = gan.Discriminator(gan.GANConfig(minibatch_std_group=4, minibatch_std_by_class=False),
                                      rngs=nnx.Rngs(0))
    images = jnp.asarray(rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32))
    labels = jnp.arange(8) % 10
    scores = np.asarray(discriminator(images, labels)[0])
    changed = np.asarray(discriminator(images.at[1].set(-images[1]), labels)[0])
    assert np.abs(changed[[0, 2, 3]] - scores[[0, 2, 3]]).min() > 0
    np.testing.assert_array_equal(changed[4:], scores[4:])


def test_class_std_channel_measures_the_images_of_each_class_within_each_group():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(8, 7, 7, 6)).astype(np.float32)
    labels = np.array([0, 1, 0, 0, 2, 2, 5, 2])  # groups of 4: {0, 2, 3} share class 0; {4, 5, 7} class 2
    h[5] = h[4]
    out = np.asarray(gan.append_class_std(jnp.asarray(h), jnp.asarray(labels), 4, 10))
    assert out.shape == (8, 7, 7, 7)
    np.testing.assert_array_equal(out[..., :6], h)
    spread = lambda members: np.sqrt(h[members].var(axis=0) + 1e-8).mean()
    expected = [spread([0, 2, 3]), 1e-4, spread([0, 2, 3]), spread([0, 2, 3]),
                spread([4, 5, 7]), spread([4, 5, 7]), 1e-4, spread([4, 5, 7])]  # alone in its class: sqrt(1e-8)
    np.testing.assert_allclose(out[:, 3, 3, 6], expected, rtol=1e-4)
    assert np.ptp(out[..., 6], axis=(1, 2)).max() == 0  # one value per image, everywhere in the map

    # In D, an image's score depends on the other images of its class in its group and on no others.
    discriminator = gan.Discriminator(gan.GANConfig(minibatch_std_group=4, minibatch_std_by_class=True),
                                      rngs=nnx.Rngs(0))
    images = jnp.asarray(rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32))
    scores = np.asarray(discriminator(images, jnp.asarray(labels))[0])
    changed = np.asarray(discriminator(images.at[0].set(-images[0]), jnp.asarray(labels))[0])
    assert np.abs(changed[[2, 3]] - scores[[2, 3]]).min() > 0
    np.testing.assert_array_equal(changed[[1, 4, 5, 6, 7]], scores[[1, 4, 5, 6, 7]])


def test_class_std_products_ask_for_full_precision_on_every_device():
    # A GPU rounds float32 matrix products to TF32 by default, a TPU to bfloat16, and the spread is a
    # difference of two such products (mean square minus squared mean): on an H100 that took the
    # cosine-decay recipe from 4.7x to 6-7x the Fréchet floor after 14 epochs. A CPU computes them in full
    # whatever the setting, so what can be checked here is the lowered program: each of the channel's
    # matrix products carries HIGHEST precision, so no device may round its operands.
    h, labels = jnp.ones((8, 7, 7, 6)), jnp.arange(8) % 10
    lowered = jax.jit(gan.append_class_std, static_argnums=(2, 3)).lower(h, labels, 4, 10).as_text()
    products = [line for line in lowered.splitlines() if "dot_general" in line]
    assert len(products) == 3
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in products), products


def test_train_step_computes_every_product_in_full_float32_on_every_device():
    # A GPU's default TF32 made the recipe's results worse and far more seed-dependent (gan.train_step).
    # As above, what a CPU can check is the lowered program: every convolution and matrix product
    # of the step, forward and backward, carries HIGHEST precision.
    training = gan.GANTraining(gan.GANConfig(), TrainConfig("gan", epochs=1, batch_size=8, learning_rate=1e-3), 10)
    images, labels = jnp.zeros((8, 28, 28, 1)), jnp.arange(8) % 10
    lowered = gan.train_step.lower(training, images, labels, jax.random.key(0), with_r1=True).as_text()
    products = [line for line in lowered.splitlines() if "stablehlo.convolution" in line or "dot_general" in line]
    assert len(products) > 30
    assert all(line.count("HIGHEST") == 2 for line in products), [p for p in products if p.count("HIGHEST") != 2][:3]


# Without the minibatch feature, so that each image's score depends on that image alone.
PER_IMAGE_D = gan.GANConfig(minibatch_std_group=0)


def test_r1_penalty_is_half_gamma_times_each_real_images_squared_gradient():
    discriminator = gan.Discriminator(PER_IMAGE_D, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    real = jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)).astype(np.float32))
    fake = jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)).astype(np.float32))
    labels = jnp.arange(6) % 10
    plain = float(gan.discriminator_loss(discriminator, real, fake, labels, r1_gamma=0.0))
    penalised = float(gan.discriminator_loss(discriminator, real, fake, labels, r1_gamma=4.0))
    # Independently: each image's gradient on its own, one at a time.
    one_score = lambda image, label: discriminator(image[None], label[None])[0][0]
    squared = [float(jnp.sum(jax.grad(one_score)(real[i], labels[i]) ** 2)) for i in range(6)]
    assert np.mean(squared) > 0
    assert penalised - plain == pytest.approx(0.5 * 4.0 * np.mean(squared), rel=1e-4)
    # The adversarial part is the non-saturating loss.
    expected = np.mean(jax.nn.softplus(-discriminator(real, labels)[0]) + jax.nn.softplus(discriminator(fake, labels)[0]))
    assert plain == pytest.approx(float(expected), rel=1e-5)


def test_r1_penalty_runs_every_interval_th_step_weighted_by_the_interval(tiny_dataset):
    """Lazy regularisation: the loop's options put the penalty on steps 0, k, 2k, ..., and that step's
    discriminator loss is the plain one plus gamma x k / 2 x the mean squared gradient on real images."""
    config = PER_IMAGE_D
    k = config.r1_interval
    training = gan.GANTraining(config, TrainConfig("gan", epochs=1, batch_size=8, learning_rate=2e-4), 100)
    assert k > 1
    assert [s for s in range(3 * k) if gan.step_options(training, s)["with_r1"]] == [0, k, 2 * k]
    split = data.load_split("train", "mnist", data_dir=tiny_dataset)
    images, labels = jnp.asarray(data.to_float(split.images[:8])), jnp.asarray(split.labels[:8])
    one_score = lambda image, label: training.discriminator(image[None], label[None])[0][0]
    squared = [float(jnp.sum(jax.grad(one_score)(images[i] * 2 - 1, labels[i]) ** 2)) for i in range(8)]
    twin = nnx.clone(training)  # the same state: the same fakes and the same scores
    plain = float(gan.train_step(training, images, labels, jax.random.key(0))["d_loss"])
    regularised = float(gan.train_step(twin, images, labels, jax.random.key(0), with_r1=True)["d_loss"])
    assert np.mean(squared) > 0
    assert regularised - plain == pytest.approx(0.5 * config.r1_gamma * k * np.mean(squared), rel=1e-3)


def test_the_naming_head_adds_its_cross_entropy_to_both_players_losses():
    """With class_loss_weight w, D's loss adds w x its head's cross-entropy on the real images' conditions
    (with and without R1), and G's adds it on its fakes; the head leaves D's scores as they were."""
    headless = gan.Discriminator(PER_IMAGE_D, rngs=nnx.Rngs(0))
    assert headless.class_head is None  # off: no head, no new weights
    config = dataclasses.replace(PER_IMAGE_D, class_loss_weight=0.5)
    discriminator = gan.Discriminator(config, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    real, fake = (jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)).astype(np.float32)) for _ in range(2))
    labels = jnp.arange(6) % 10
    cross_entropy = lambda images: float(np.mean(-jax.nn.log_softmax(
        discriminator(images, labels)[1])[np.arange(6), labels]))
    scores, class_logits, tone_logits = discriminator(real, labels)
    assert class_logits.shape == (6, 10) and headless(real, labels)[1] is None and tone_logits is None
    np.testing.assert_allclose(scores, headless(real, labels)[0], rtol=1e-6)  # the head was made last
    for r1_gamma in (0.0, 4.0):
        named = float(gan.discriminator_loss(discriminator, real, fake, labels, r1_gamma, class_weight=0.5))
        plain = float(gan.discriminator_loss(discriminator, real, fake, labels, r1_gamma))
        assert named - plain == pytest.approx(0.5 * cross_entropy(real), rel=1e-4)
    generator = gan.Generator(config, rngs=nnx.Rngs(1))
    latents = gan.sample_latents(0, 6, config.latent_dim)
    named, fakes = gan.generator_loss(generator, discriminator, latents, labels, class_weight=0.5)
    plain, _ = gan.generator_loss(generator, discriminator, latents, labels)
    assert float(named - plain) == pytest.approx(0.5 * cross_entropy(fakes), rel=1e-4)


def test_the_tone_head_names_each_conditions_tone_and_adds_its_weighted_cross_entropy():
    """With tones and tone_loss_weight w, D has a head over the tones alone: both players' losses
    add w x its cross-entropy against each condition's tone (condition // tone_stride), beside the
    condition head's; without tones there is no tone head whatever the weight."""
    assert gan.Discriminator(dataclasses.replace(PER_IMAGE_D, tone_loss_weight=1.0), rngs=nnx.Rngs(0)).tone_head is None
    config = dataclasses.replace(PER_IMAGE_D, num_classes=2, num_styles=2, num_tones=3,
                                 class_loss_weight=0.5, tone_loss_weight=2.0)
    assert (config.conditions, config.tone_stride) == (12, 4)
    discriminator = gan.Discriminator(config, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    real, fake = (jnp.asarray(rng.uniform(-1, 1, (6, 28, 28, 1)).astype(np.float32)) for _ in range(2))
    labels = jnp.array([0, 3, 4, 7, 8, 11])  # tones 0, 0, 1, 1, 2, 2
    tone_logits = discriminator(real, labels)[2]
    assert tone_logits.shape == (6, 3)
    tone_entropy = float(np.mean(-jax.nn.log_softmax(tone_logits)[np.arange(6), [0, 0, 1, 1, 2, 2]]))
    heads = dict(class_weight=0.5, tone_stride=4)
    with_tone = float(gan.discriminator_loss(discriminator, real, fake, labels, tone_weight=2.0, **heads))
    without = float(gan.discriminator_loss(discriminator, real, fake, labels, **heads))
    assert with_tone - without == pytest.approx(2.0 * tone_entropy, rel=1e-4)
    generator = gan.Generator(config, rngs=nnx.Rngs(1))
    latents = gan.sample_latents(0, 6, config.latent_dim)
    toned, fakes = gan.generator_loss(generator, discriminator, latents, labels, tone_weight=2.0, **heads)
    plain, _ = gan.generator_loss(generator, discriminator, latents, labels, **heads)
    fake_entropy = float(np.mean(-jax.nn.log_softmax(discriminator(fakes, labels)[2])[np.arange(6), [0, 0, 1, 1, 2, 2]]))
    assert float(toned - plain) == pytest.approx(2.0 * fake_entropy, rel=1e-4)


def test_the_tone_colour_loss_pulls_each_tones_fakes_to_its_real_pictures_colours():
    """Zero where each tone's fakes have its real pictures' colours (whatever the drawing), above zero
    where one tone's fakes take another tone's colour; its gradient moves the fakes' colours, and G's
    loss adds it times its weight."""
    rng = np.random.default_rng(0)
    skin = lambda colour, count: np.broadcast_to(np.array(colour, np.float32) / 127.5 - 1, (count, 32, 32, 3))
    light, darker = (255, 220, 200), (160, 110, 80)
    real = jnp.asarray(np.concatenate([skin(light, 3), skin(darker, 3)]))
    labels = jnp.array([0, 0, 0, 8, 8, 8])  # tone stride 8: tones 0, 0, 0, 1, 1, 1
    moved = np.array(real)
    moved[:, :16] = 1.0  # half of every picture white: drawn elsewhere, the same colours
    assert float(gan.tone_colour_loss(jnp.asarray(moved), real, labels, 8, 3)) == pytest.approx(0.0, abs=1e-6)
    swapped = jnp.asarray(np.concatenate([skin(darker, 3), skin(light, 3)]))
    assert float(gan.tone_colour_loss(swapped, real, labels, 8, 3)) > 0.5
    assert float(jnp.abs(jax.grad(gan.tone_colour_loss)(swapped, real, labels, 8, 3)).sum()) > 0
    config = datasets.get("emoji").sized(gan.GANConfig(generator_widths=(16, 8, 8), discriminator_widths=(8, 8),
                                                       minibatch_std_group=0), "gan")
    generator, discriminator = gan.Generator(config, rngs=nnx.Rngs(0)), gan.Discriminator(config, rngs=nnx.Rngs(1))
    latents, conditions = gan.sample_latents(0, 6, config.latent_dim), labels * config.tone_stride // 8
    real = jnp.asarray(rng.uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32))
    coloured, fakes = gan.generator_loss(generator, discriminator, latents, conditions, real=real, colour_weight=3.0,
                                         tone_stride=config.tone_stride, num_tones=config.num_tones)
    plain, _ = gan.generator_loss(generator, discriminator, latents, conditions, tone_stride=config.tone_stride)
    expected = 3.0 * gan.tone_colour_loss(fakes, real, conditions, config.tone_stride, config.num_tones)
    assert float(coloured - plain) == pytest.approx(float(expected), rel=1e-4)


def test_samples_are_measured_in_the_mix_of_the_real_pictures_they_are_compared_with():
    """Conditions in a reference's proportions: a balanced one gives the cycle 0, 1, ...; an
    unbalanced one its shares in every prefix, to within one sample a condition."""
    np.testing.assert_array_equal(gan.conditions_like(np.repeat(np.arange(10), 1000), 25, 10), np.arange(25) % 10)
    reference = np.repeat([0, 1, 2], [630, 270, 100])
    drawn = gan.conditions_like(reference, 500, 4)
    for end in (10, 77, 500):
        counts = np.bincount(drawn[:end], minlength=4)
        assert np.all(np.abs(counts - end * np.array([0.63, 0.27, 0.1, 0.0])) <= 1)
