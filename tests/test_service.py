"""The studio's actions in-process (imgjax.service, one module per tab): input reading and checking,
the classifier's view of arbitrary images, and what each action returns on the shipped checkpoints."""

import dataclasses
import time
from pathlib import Path

import awkward_images
import numpy as np
import pytest
from PIL import Image

import imgjax
from imgjax import data, datasets, emoji, images, service, user_input
from imgjax.service import classify, denoise, generate
from imgjax.user_input import InputError

ASSET_SNEAKER = Path(imgjax.__file__).parent / "assets" / "example_7_sneaker.png"  # no Gradio here


@pytest.fixture(scope="module")
def studio():
    return service.Studio()


@pytest.fixture(scope="module")
def sneaker_u8():
    return np.asarray(Image.open(ASSET_SNEAKER))


def test_awkward_modes_read_as_the_same_picture(tmp_path, sneaker_u8):
    files = awkward_images.garment(sneaker_u8, tmp_path)
    expected = sneaker_u8 / 255.0
    for name in ("gray.png", "16bit.png", "palette.png", "rgba.png"):
        rgb = user_input.read_image(files[name])
        assert rgb.shape == (28, 28, 3) and rgb.dtype == np.float32, name
        np.testing.assert_allclose(images.to_gray(rgb), expected, atol=0.03, err_msg=name)
    cmyk = images.to_gray(user_input.read_image(files["cmyk.jpg"]))  # lossy JPEG: close, not exact
    assert np.abs(cmyk - expected).mean() < 0.03


def test_large_images_reduce_band_by_band_as_the_whole_image_would(tmp_path, monkeypatch):
    """Every mode a large upload may have (RGBA, 16-bit, palette with transparency, float, 1-bit)
    reads the same converted and reduced a band of rows at a time as whole, the last band partial."""
    monkeypatch.setattr(user_input, "_BAND_PIXELS", 20_000)  # 9 rows of 2,150 per band: 168 bands
    y, x = np.mgrid[0:1501, 0:2150]
    rgba = Image.fromarray(np.stack([x % 251, y % 241, (x * y) % 239, (x + y) % 256], -1).astype(np.uint8), "RGBA")
    palette = Image.fromarray(((x // 7 + y // 5) % 256).astype(np.uint8)).convert("P")
    palette.info["transparency"] = 3
    cases = {"rgba": rgba, "gray16": Image.fromarray(((x * 13 + y) % 65536).astype(np.uint16)),
             "palette": palette, "float": Image.fromarray((x % 97 / 97).astype(np.float32), "F"),
             "bits": Image.fromarray((x + y) % 3 == 0)}
    for name, image in cases.items():
        path = tmp_path / f"{name}.{'tiff' if name == 'float' else 'png'}"
        image.save(path)
        assert user_input.decode(Image.open(path), 300).mode == user_input.decode(Image.open(path)).mode, name
        whole = user_input.decode(Image.open(path))  # converted, not reduced
        expected = whole.reduce(max(whole.size) // 300)
        expected = expected.resize((300, round(expected.height * 300 / expected.width)), Image.BOX)
        np.testing.assert_array_equal(np.asarray(user_input.decode(Image.open(path), 300)), np.asarray(expected),
                                      err_msg=name)


def test_a_25_megapixel_upload_decodes_beside_one_copy_of_itself(tmp_path):
    """The largest allowed RGBA upload adds at most 1.25 times its decoded size (100 MB) to the
    process's peak, read for the classifier, or for the Denoise tab with a 25 MP painted layer: no
    whole-image copy is made while reducing it, and the upload is freed before the layer decodes."""
    import subprocess
    import sys
    files = awkward_images.largest_allowed(tmp_path, ("rgba.png", "layer.png"))
    reads = {"classify": ("from imgjax import user_input", "user_input.read_image(upload, 1024)"),
             "denoise": ("from imgjax.studio.denoise import editor_image",
                         "editor_image({'background': upload, 'layers': [layer]})")}
    for name, (imports, read) in reads.items():
        probe = "\n".join([
            "import sys", imports, "upload, layer = sys.argv[1:]",
            "status = lambda: {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('Vm')}",
            "before = status()['VmRSS']", read, "print((status()['VmHWM'] - before) / 1024)"])
        added_mb = float(subprocess.run([sys.executable, "-c", probe, str(files["rgba.png"]), str(files["layer.png"])],
                                        capture_output=True, text=True, check=True).stdout)
        assert 90 < added_mb < 125, name


def test_transparent_canvas_strokes_stay_visible():
    """A sketch: black strokes on a fully transparent canvas (RGB 0 everywhere, strokes only in
    alpha). Dropping alpha would give an all-black image; compositing on white keeps the strokes."""
    canvas = np.zeros((64, 64, 4), np.uint8)
    canvas[20:44, 30:34, 3] = 255
    rgb = user_input.read_image(Image.fromarray(canvas, "RGBA"))
    assert rgb[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert rgb[30, 31].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("name, message", [
    ("not_an_image.png", "not an image"),
    ("truncated.png", "truncated or corrupt"),
    ("bomb.png", "too large"),
    ("one_pixel.png", "1x1 pixels"),
])
def test_unusable_files_raise_clear_errors(tmp_path, name, message):
    files = awkward_images.unusable(tmp_path, ASSET_SNEAKER)
    with pytest.raises(InputError, match=message):
        user_input.read_image(files[name])


def test_classifier_view_inverts_crops_and_centres(sneaker_u8):
    garment = sneaker_u8 / 255.0
    # The garment dark on white, small, off-centre in a large canvas: what a photo looks like.
    canvas = np.ones((300, 400), np.float32)
    canvas[20:132, 250:362] = 1.0 - np.kron(garment, np.ones((4, 4)))
    view = classify.classifier_view(np.repeat(canvas[..., None], 3, -1))
    assert view.shape == (28, 28)
    assert view[0].mean() < 0.1 and view[:, 0].mean() < 0.1  # dark background again
    assert np.abs(view - garment).mean() < 0.05  # back to (nearly) the training image


def test_28x28_training_images_pass_unchanged(sneaker_u8):
    rgb = np.repeat((sneaker_u8 / 255.0)[..., None], 3, -1).astype(np.float32)
    np.testing.assert_array_equal(classify.classifier_view(rgb), rgb[..., 0])


@pytest.mark.parametrize("call, message", [
    (lambda s: s.generate_tab.generate("Sneaker", 0, 0, 1.0), "Number of images must be between 1 and 64"),
    (lambda s: s.generate_tab.generate("Sneaker", 0, 65, 1.0), "Number of images"),
    (lambda s: s.generate_tab.generate("Sneaker", -1, 4, 1.0), "Seed must be between"),
    (lambda s: s.generate_tab.generate("Sneaker", 1.5, 4, 1.0), "Seed must be a whole number"),
    (lambda s: s.generate_tab.generate("Sneaker", 0, 4, 99.0), "Truncation must be between"),
    (lambda s: s.generate_tab.generate("Sneaker", 0, 4, float("nan")), "Truncation"),
    (lambda s: s.generate_tab.generate("Socks", 0, 4, 1.0), "Class must be one of"),
    (lambda s: s.generate_tab.generate("Sneaker", "abc", 4, 1.0), "Seed must be a number"),
    (lambda s: s.generate_tab.interpolate("Sideways", "Sneaker", 0, 1, 8, 1.0), "Interpolation must be one of"),
    (lambda s: s.generate_tab.interpolate(generate.INTERPOLATE_SEEDS, "Sneaker", 0, 1, 500, 1.0), "Frames"),
    (lambda s: s.denoise_tab.denoise(np.zeros((28, 28, 3), np.float32), denoise.GAUSSIAN, 2.0, 0), "Noise level must be between"),
    (lambda s: s.denoise_tab.denoise(np.zeros((28, 28, 3), np.float32), "Blur", 0.1, 0), "Corruption must be one of"),
    (lambda s: s.denoise_tab.denoise(np.zeros((28, 28, 3), np.float32), denoise.MASK, 0.1, 0), "Paint over"),
])
def test_out_of_range_values_raise_clear_errors(studio, call, message):
    with pytest.raises(InputError, match=message):
        call(studio)


def test_generate_grid_layout_and_determinism(studio):
    grid = studio.generate_tab.generate("Bag", 5, 16, 1.0)
    assert grid.dtype == np.uint8 and grid.shape == (4 * 122, 4 * 122)  # 4x4 tiles of 28 + 2 px, x4
    np.testing.assert_array_equal(grid, studio.generate_tab.generate("Bag", 5, 16, 1.0))
    assert not np.array_equal(grid, studio.generate_tab.generate("Bag", 6, 16, 1.0))
    every_class = studio.generate_tab.generate(generate.ALL_CLASSES, 5, 3, 1.0)
    assert every_class.shape[0] // 4 == 10 * 30 + 2  # one row per class


def test_a_seed_draws_the_same_latents_whatever_the_count(studio):
    """The tab draws latents a bucket at a time and cuts them (one compiled draw per bucket): the
    first images of a seed stay those ``sample_latents`` gives for that count."""
    from imgjax.gan import sample_latents
    tab = studio.generate_tab
    for count in (1, 5, 16, 17, 64):
        for truncation, drawn in ((1.0, 1.0), (generate.TRUNCATION_RANGE[1], None)):
            np.testing.assert_array_equal(tab._latents(7, count, truncation),
                                          np.asarray(sample_latents(7, count, tab.latent_dim, drawn)))


def test_interpolation_frames_start_and_end_at_the_endpoints(studio):
    frames = studio.generate_tab.interpolate(generate.INTERPOLATE_SEEDS, "Dress", 3, 4, 6, 1.0)
    assert len(frames) == 6
    first = studio.generate_tab.generate("Dress", 3, 1, 1.0)  # one image, upscaled x4 inside a 2-px border
    np.testing.assert_allclose(frames[0][::4, ::4].astype(int), first[::4, ::4][2:30, 2:30].astype(int), atol=2)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5  # the walk goes somewhere
    tour = studio.generate_tab.interpolate(generate.INTERPOLATE_CLASSES, "Dress", 3, 4, 3, 1.0)
    assert len(tour) == 3 * 10


@pytest.mark.realdata
def test_classify_flags_unfamiliar_inputs(studio, fashion_test):
    familiar = studio.classify_tab.classify(np.repeat(data.to_float(fashion_test.images[:1])[0], 3, -1))
    assert "only a guess" not in familiar.verdict
    noise = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert "does not look like" in studio.classify_tab.classify(noise).verdict


def test_an_emoji_is_seen_whole_in_colour_on_white():
    """The emoji classifier sees any picture as the emoji were made: square on white, the whole box
    kept, in colour; a garment picture is seen as before, 28x28 light on black."""
    wide = np.zeros((32, 64, 3), np.float32)
    wide[..., 0] = 1.0  # a red band twice as wide as it is high
    view = classify.model_view(wide, datasets.get("emoji"))
    assert view.shape == (32, 32, 3)
    assert np.allclose(view[:7], 1.0) and np.allclose(view[-7:], 1.0)  # white margins above and below
    assert np.allclose(view[9:23], [1.0, 0.0, 0.0])
    garment = classify.model_view(np.ones((50, 40, 3), np.float32) * 0.9, datasets.get("fashion-mnist"))
    assert garment.shape == (28, 28, 1)


def test_the_emoji_classifier_names_the_group_and_the_art_set(studio):
    """The shipped emoji classifier on the page's examples (test emoji: unseen in every art set):
    each answer in colour with its art set, and noise or a garment told apart from the emoji."""
    tab = studio.classify_tabs["Emoji"]
    examples = sorted(ASSET_SNEAKER.parent.glob("emoji_*.png"))
    assert len(examples) == 8
    named = 0
    for path in examples:
        result = tab.classify(user_input.read_image(path))
        assert result.model_input.shape == (224, 224, 3) and result.saliency.shape == (224, 224, 3)
        art_set = path.stem.rsplit("-", 1)[1]
        assert f"drawn in {art_set}'s style" in result.verdict.lower(), (path.name, result.verdict)
        named += result.verdict.startswith(next(g for g in emoji.GROUPS if g.split()[0].lower() == path.stem.split("_")[2]))
    assert named >= 6, named
    noise = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert "does not look like the emoji" in tab.classify(noise).verdict
    assert "Sneaker" in studio.classify_tab.classify(user_input.read_image(ASSET_SNEAKER)).verdict


def test_edit_says_what_classify_says_of_an_unfamiliar_input(studio, fashion_test):
    garment = np.repeat(data.to_float(fashion_test.images[:1])[0], 3, -1)
    assert "does not look like a garment" not in studio.edit_tab.project(garment)[2]
    noise = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert "does not look like a garment" in studio.edit_tab.project(noise)[2]


def test_the_emoji_edit_tab_reads_skin_tones_and_says_what_classify_says(studio):
    """The studio's emoji Edit tab: the shipped encoder, and the tone reader its card names, which
    reads the test people drawn with dark skin as dark (or a shade lighter) nine times in ten; test
    people come back as people in the tone it reads; noise is said to be unlike any emoji."""
    tab = studio.edit_tabs["Emoji"]
    assert tab.dataset.name == "emoji" and tab.tone_reader is not None
    test = emoji.load_split("test")
    labels = test.labels_at(np.arange(len(test)))
    dark = np.flatnonzero((labels[:, 0] == emoji.GROUPS.index("People")) & (labels[:, 2] == emoji.SKIN_TONES.index("dark")))
    views = [classify.model_view(test.images[i].astype(np.float32) / 255, tab.dataset) for i in dark]
    read = [emoji.SKIN_TONES[t] for t in tab.tone_reader.read(images.to_uint8(np.stack(views)))]
    assert np.mean([tone in ("medium-dark", "dark") for tone in read]) >= 0.9, read
    picked = range(0, len(dark), max(1, len(dark) // 5))[:5]
    codes = [tab.project(test.images[dark[k]].astype(np.float32) / 255)[1] for k in picked]
    assert sum(c["class"] == "People" for c in codes) >= 4, codes
    assert all(c["tone"] == read[k] for k, c in zip(picked, codes) if c["class"] == "People"), (codes, read)
    noise = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    assert "does not look like an emoji" in tab.project(noise)[2]


def test_denoise_any_size_and_colour(studio, sneaker_u8):
    rgb = np.zeros((90, 70, 3), np.float32)
    rgb[10:66, 5:61, 0] = np.kron(sneaker_u8 / 255.0, np.ones((2, 2)))
    rgb[..., 2] = 0.5
    result = studio.denoise_tab.denoise(rgb, denoise.SALT_PEPPER, 0.1, 1)
    assert result.corrupted.shape == result.restored.shape == result.baseline.shape == (90, 70, 3)
    names = [row[0] for row in result.figures]
    assert names == ["corrupted", "3x3 median filter", "garment model"]
    psnr = {row[0]: row[1] for row in result.figures}
    assert psnr["garment model"] > psnr["corrupted"] + 5
    big = studio.denoise_tab.denoise(np.ones((1200, 600, 3), np.float32) * 0.5, denoise.GAUSSIAN, 0.1, 0)
    assert big.restored.shape == (512, 256) and "downscaled" in big.note


def test_the_emoji_model_restores_colour_jointly_and_colours_gray_emoji(studio):
    """The emoji tab's autoencoder restores a test emoji's channels together, above its noisy input
    and beside total variation tuned on emoji; it colours the gray picture back, beside the
    gray-to-mean-colour baseline (from its card); the garment model refuses to colour."""
    tab = studio.denoise_tabs["Emoji"]
    turtle = user_input.read_image(ASSET_SNEAKER.parent / "emoji_3_animals_turtle-twemoji.png")
    result = tab.denoise(turtle, denoise.GAUSSIAN, 0.2, 0)
    assert result.restored.shape == (64, 64, 3) and "colour, restored jointly; restored by the emoji model" in result.note
    psnr = {row[0]: row[1] for row in result.figures}
    assert psnr["emoji model"] > psnr["corrupted"] + 3
    coloured = tab.denoise(turtle, denoise.GRAY, 0.0, 0)
    assert (coloured.corrupted[..., 0] == coloured.corrupted[..., 1]).all()  # the model was given gray
    assert coloured.restored.shape == (64, 64, 3) and np.ptp(coloured.restored.astype(int), axis=-1).mean() > 10
    # Over the eight examples (64 px: coloured at 32 px, the colour laid over the full-size gray), the
    # model's colours are nearer the originals than gray is.
    figures = [{row[0]: row[1] for row in tab.denoise(user_input.read_image(path), denoise.GRAY, 0.0, 0).figures}
               for path in sorted(ASSET_SNEAKER.parent.glob("emoji_*.png"))]
    assert np.mean([f["emoji model"] for f in figures]) > np.mean([f["corrupted"] for f in figures])
    with pytest.raises(InputError, match="garment model does not colour pictures"):
        studio.denoise_tab.denoise(turtle, denoise.GRAY, 0.0, 0)


def test_already_noisy_images_are_restored_without_scores(studio, sneaker_u8):
    noisy = np.clip(sneaker_u8 / 255.0 + np.random.default_rng(0).normal(0, 0.2, (28, 28)), 0, 1)
    result = studio.denoise_tab.denoise(np.repeat(noisy[..., None], 3, -1).astype(np.float32), denoise.GAUSSIAN, 0.2, 0,
                            already_noisy=True)
    assert result.figures == []
    np.testing.assert_allclose(result.corrupted, noisy * 255, atol=1)
    clean_error = lambda image: np.abs(image / 255.0 - sneaker_u8 / 255.0).mean()
    assert clean_error(result.restored) < 0.6 * clean_error(result.corrupted)


def test_brush_mask_inpainting(studio, sneaker_u8):
    rgb = np.repeat((sneaker_u8 / 255.0)[..., None], 3, -1).astype(np.float32)
    mask = np.zeros((28, 28), np.float32)
    mask[10:18, 8:20] = 1
    result = studio.denoise_tab.denoise(rgb, denoise.MASK, 0.0, 0, mask=mask)
    assert (result.corrupted[10:18, 8:20] == 0).all()
    psnr = {row[0]: row[1] for row in result.figures}
    assert psnr["garment model"] > psnr["corrupted"] + 3
    assert psnr["harmonic inpainting (told the mask)"] > psnr["corrupted"]


@pytest.mark.slow
def test_serving_never_rewrites_the_shared_models_and_threads_share_them(studio, monkeypatch):
    """Every action, once compiled, runs without NNX's graph updates (``nnx.jit`` on a module
    rewrites that shared object around each call: threads then saw half-made models); then 32
    threads mix every action, 320 calls, with no error."""
    import random
    import threading

    from flax.nnx import graphlib
    garment = np.asarray(Image.open(ASSET_SNEAKER), np.float32)[..., None].repeat(3, -1) / 255
    code = studio.edit_tab.project(garment)[1]
    sketch = np.pad(np.ones((14, 14, 3), np.float32), ((7, 7), (7, 7), (0, 0)))
    actions = [lambda: studio.generate_tab.generate("Bag", random.randrange(99), 16, 1.0),
               lambda: studio.generate_tab.interpolate(generate.INTERPOLATE_SEEDS, "Bag", 0, 1, 8, 1.0),
               lambda: studio.classify_tab.classify(garment),
               lambda: studio.denoise_tab.denoise(garment, denoise.GAUSSIAN, 0.2, 1),
               lambda: studio.denoise_tab.denoise(garment, denoise.SALT_PEPPER, 0.1, 1),
               lambda: studio.edit_tab.project(garment), lambda: studio.edit_tab.classes_row(code),
               lambda: studio.edit_tab.render(code, "Dress", 0.5, 0, 0, 0), lambda: studio.edit_tab.mix(code, code),
               lambda: studio.edit_tab.sketch(sketch)]
    for action in actions:  # compiled here, at the shapes the threads use
        action()
    updates = []
    real_update_context = graphlib.update_context
    monkeypatch.setattr(graphlib, "update_context", lambda tag: updates.append(tag) or real_update_context(tag))
    for action in actions:
        action()
    assert updates == []
    errors = []

    def mix(seed):
        chooser = random.Random(seed)
        for _ in range(10):
            try:
                chooser.choice(actions)()
            except Exception as error:  # noqa: BLE001 (collected, then asserted empty)
                errors.append(repr(error))
    threads = [threading.Thread(target=mix, args=(seed,)) for seed in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and updates == []


# ----------------------------------------------------------------------------- the Lab

def test_lab_knobs_from_the_page_are_checked_by_name():
    from imgjax.service import lab
    config = lab.lab_config("GAN (generator)", 5e-4, "64", "0.5", 3, 30, "Hinge", False, True, False, 1, 0, 0)
    assert (config.family, config.batch_size, config.width, config.gan_loss, config.r1) == ("gan", 64, 0.5, "hinge", False)
    for args, named in (((("RNN",) + (1e-3, "64", "1", 0, 30)), "Model must be one of"),
                        ((("CNN (classifier)", "fast", "64", "1", 0, 30)), "Learning rate must be a number"),
                        ((("CNN (classifier)", 1e-3, "100", "1", 0, 30)), "Batch size must be one of"),
                        ((("CNN (classifier)", 1e-3, "64", "2", 0, 30)), "Width must be one of"),
                        ((("CNN (classifier)", 1e-3, "64", "1", -1, 30)), "Seed must be")):
        with pytest.raises(InputError, match=named):
            lab.lab_config(*args)
    with pytest.raises(InputError, match="R1 penalty must be true or false"):
        lab.lab_config("GAN (generator)", 5e-4, "64", "1", 0, 30, "Hinge", "yes")


def test_a_lab_model_is_named_as_the_visitors_own(studio, sneaker_u8):
    from imgjax import checkpoint
    garment = np.repeat(sneaker_u8[..., None], 3, -1).astype(np.float32) / 255
    yours = studio.denoise_tab.with_model(*checkpoint.load_model("ae"))  # any autoencoder stands in for a Lab run's
    result = yours.denoise(garment, denoise.GAUSSIAN, 0.2, 0)
    assert "your Lab model" in [row[0] for row in result.figures] and "restored by your Lab model" in result.note
    assert "garment model" in [row[0] for row in studio.denoise_tab.denoise(garment, denoise.GAUSSIAN, 0.2, 0).figures]


HOSTILE_SESSIONS = ["../" * 6 + "escaped", "/tmp/escaped", "a\x00b", "x" * 10_000, "..", ""]


def test_lab_runs_are_named_by_the_server_and_the_line_is_bounded(tmp_path):
    """No client value reaches a path: runs under hostile session names get folders the server
    names, inside its own Lab folder. The line holds MAX_WAITING places, one per session and
    address; a visitor's new Start takes over their own place."""
    from imgjax.lab import LabConfig
    from imgjax.service.lab import LAB_FOLDERS, MAX_WAITING, LabTab
    lab = LabTab(max_runs=0)  # nothing starts: every run waits
    for number, session in enumerate(HOSTILE_SESSIONS):
        assert lab.start(session, LabConfig("cnn"), address=f"10.0.0.{number}").place_in_line == number + 1
    folders = [run.directory for run in lab._waiting]
    assert all(folder.parent == lab.root and folder.name.startswith("run-") for folder in folders)
    assert lab.root.parent == LAB_FOLDERS and len(set(folders)) == len(folders)
    # Another session from an address that holds a place is refused; the same session moves its knobs.
    with pytest.raises(InputError, match="Another page from your address"):
        lab.start("another", LabConfig("cnn"), address="10.0.0.1")
    assert lab.start("/tmp/escaped", LabConfig("ae"), address="10.0.0.1").place_in_line == 2
    assert lab._waiting[1].config.family == "ae" and len(lab._waiting) == len(HOSTILE_SESSIONS)
    for number in range(len(HOSTILE_SESSIONS), MAX_WAITING):
        lab.start(f"visitor {number}", LabConfig("cnn"), address=f"10.0.1.{number}")
    with pytest.raises(InputError, match=f"line is full \\({MAX_WAITING} runs waiting\\)"):
        lab.start("one too many", LabConfig("cnn"), address="10.0.2.1")
    assert lab.command("visitor 7", "stop").message == "Left the line."
    assert lab.start("one too many", LabConfig("cnn"), address="10.0.2.1").place_in_line == MAX_WAITING
    # Asking about a session with nothing in the Lab leaves no trace.
    lab.status("never started")
    assert "never started" not in lab._seen
    lab.close()
    assert not (tmp_path / "escaped").exists()


def test_lab_folders_of_ended_servers_are_removed_at_start():
    import subprocess
    import sys

    from imgjax.service.lab import LAB_FOLDERS, LabTab
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    left_behind = LAB_FOLDERS / f"lab-{ended.stdout.strip()}-crashed"
    (left_behind / "run-1").mkdir(parents=True)
    (left_behind / "run-1" / "cnn.safetensors").write_bytes(b"weights")
    lab = LabTab(max_runs=0)
    assert not left_behind.exists() and lab.root.is_dir()
    lab.close()


def test_a_compiling_lab_run_is_stopped_by_its_own_cpu_time_or_a_long_wait(monkeypatch):
    """The Lab's worker runs at idle priority, so a busy host can hold its compile back: a run is
    stopped once its process has spent COMPILE_CPU_LIMIT_S of CPU time without training, or after
    COMPILE_WALL_LIMIT_S on the clock (a hung compile); a run that waits without spending is kept."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from imgjax.lab import Update
    from imgjax.service import lab as service_lab
    lab = service_lab.LabTab(max_runs=0)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        now = time.monotonic()
        compiling = Update("compiling", "cnn")
        reason = lambda process, waited, update=compiling: lab._reason_to_stop(
            SimpleNamespace(latest=update, started=now - waited, paused_since=None, process=process), now, False)
        _wait(lambda: service_lab.cpu_seconds(busy.pid, default=0.0) > 1.0)
        assert service_lab.cpu_seconds(idle.pid, default=0.0) < 1.0
        assert reason(idle, waited=service_lab.COMPILE_WALL_LIMIT_S - 10) == ""  # waiting, spending nothing
        assert reason(idle, waited=service_lab.COMPILE_WALL_LIMIT_S + 1) == "not training after 15 minutes"
        assert reason(busy, waited=1) == ""  # under the CPU limit
        monkeypatch.setattr(service_lab, "COMPILE_CPU_LIMIT_S", 1.0)
        assert reason(busy, waited=1) == "not training after 1 s of compiling"
        assert reason(busy, waited=1, update=Update("training", "cnn")) == ""  # training: no limit
    finally:
        for process in (idle, busy):
            process.kill()
            process.wait()
        lab.close()


def _wait(condition, timeout=180.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("timed out")


@pytest.mark.slow
@pytest.mark.realdata
def test_lab_runs_one_at_a_time_stops_abandoned_runs_and_serves_models_per_session(studio, fashion_test, monkeypatch):
    """Two visitors: the second waits in line and is told so; the first's run pauses, stops, and its
    model then serves that visitor's Classify tab alone. Then the second's run trains, and when that
    visitor stops asking for news (the page closed) the run is stopped."""
    from imgjax.lab import LabConfig
    from imgjax.service import lab as service_lab
    from imgjax.service.lab import SHIPPED, YOURS, LabTab
    lab = LabTab(max_runs=1, max_budget_s=60, abandoned_after_s=5)
    first = lab.start("first", LabConfig("cnn", budget_s=60))
    second = lab.start("second", LabConfig("ae", budget_s=60))
    assert first.place_in_line == 0 and second.place_in_line == 1 and "1 run ahead" in second.message
    with pytest.raises(InputError, match="not started yet"):
        lab.command("second", "pause")
    state = lambda session: (lab.status(session).update or None) and lab.status(session).update.state
    # Both pages ask for news at every check (a page that stops asking is taken as gone).
    states = lambda: (state("first"), state("second"))
    _wait(lambda: states() == ("training", None))
    monkeypatch.setattr(service_lab, "COMMAND_WAIT_S", 0.0)  # a host too busy to take it at once
    assert "**Pausing after the step under way…**" in service_lab.describe(lab.command("first", "pause"))
    _wait(lambda: states() == ("paused", None))
    lab.command("first", "stop")
    _wait(lambda: states()[0] == "stopped" and states()[1] is not None)
    ended = lab.status("first").update
    assert ended.checkpoint and ended.seconds < 60
    assert lab.tab_for("first", "cnn", SHIPPED, studio.classify_tab) is studio.classify_tab
    mine = lab.tab_for("first", "cnn", YOURS, studio.classify_tab)
    garment = np.asarray(Image.open(ASSET_SNEAKER), np.float32)[..., None].repeat(3, -1) / 255
    assert set(mine.classify(garment).probabilities) <= set(data.FASHION_CLASSES)
    with pytest.raises(InputError, match="train one in the Lab tab first"):
        lab.tab_for("second", "cnn", YOURS, studio.classify_tab)
    if "Emoji" in studio.classify_tabs:  # a garment model is not offered on emoji
        with pytest.raises(InputError, match="trained on garments: choose Garments, or train one on emoji"):
            lab.tab_for("first", "cnn", YOURS, studio.classify_tabs["Emoji"])
    # The second visitor stops asking (their page closed): their run is stopped long before its budget.
    run = lab._find("second")
    assert run.finished.wait(120) and run.latest.state == "stopped", run.latest
    assert "its page has gone" in run.latest.message and run.latest.seconds < 50
    lab.leave("first")
    assert lab.trained("first", "cnn") is None and not Path(ended.checkpoint).exists()
    lab.close()


def test_an_emoji_generator_draws_people_and_hands_in_the_skin_tone_asked():
    """Conditioned on skin tones, the grid's people take the tone asked (with "Every tone in turn",
    image i the i-th tone), other groups the default tone whatever is asked; an unknown tone is
    refused by name; a generator without tones offers none."""
    from flax import nnx

    from imgjax import gan
    config = datasets.get("emoji").sized(gan.GANConfig(generator_widths=(16, 8, 8)), "gan")
    card = {"dataset": "emoji", "config": {"latent_dim": config.latent_dim, "num_tones": config.num_tones}}
    tab = generate.GenerateTab(gan.Generator(config, rngs=nnx.Rngs(0)), card)
    assert tab.tones == list(emoji.SKIN_TONES)

    def tile(grid, index):  # a 2x2 grid of 32-pixel pictures, 2 pixels apart, upscaled x4
        row, column = divmod(index, 2)
        return grid[(2 + 34 * row) * 4:(34 + 34 * row) * 4, (2 + 34 * column) * 4:(34 + 34 * column) * 4]

    people = {tone: tab.generate("People", 3, 4, 3.0, "Twemoji", tone) for tone in emoji.SKIN_TONES}
    assert not np.array_equal(people["light"], people["dark"])
    every = tab.generate("People", 3, 4, 3.0, "Twemoji", generate.EVERY_TONE)
    for index in range(4):
        np.testing.assert_array_equal(tile(every, index), tile(people[emoji.SKIN_TONES[index]], index))
    np.testing.assert_array_equal(tab.generate("Animals", 3, 4, 3.0, "Twemoji", "dark"),
                                  tab.generate("Animals", 3, 4, 3.0, "Twemoji", "light"))
    walk = tab.interpolate(generate.INTERPOLATE_SEEDS, "Hands & body", 0, 1, 2, 3.0, "Noto", "dark")
    assert not np.array_equal(walk[0], tab.interpolate(generate.INTERPOLATE_SEEDS, "Hands & body", 0, 1, 2, 3.0,
                                                       "Noto", "light")[0])
    with pytest.raises(InputError, match="Skin tone must be one of"):
        tab.generate("People", 3, 4, 3.0, "Twemoji", "green")
    untoned = generate.GenerateTab(gan.Generator(dataclasses.replace(config, num_tones=0), rngs=nnx.Rngs(0)),
                                   {"dataset": "emoji", "config": {"latent_dim": config.latent_dim}})
    assert untoned.tones == [] and untoned.generate("People", 3, 4, 3.0, "Twemoji", "green").shape == every.shape


def test_the_first_tabs_compile_together_and_the_rest_after_them():
    """``warm_up_in_background(..., at_once=2)``: the first two tabs compile at the same time, each in
    a thread of its own; the third starts only once both are done."""
    import threading

    from imgjax import serving

    class Tab:
        def __init__(self):
            self.compiling, self.started, self.go = serving.compiling(), threading.Event(), threading.Event()

        def warm_up(self):
            self.started.set()
            assert self.go.wait(30)

    first, second, third = Tab(), Tab(), Tab()
    lines = []
    serving.warm_up_in_background({"first": first, "second": second, "third": third}, log=lines.append, at_once=2)
    assert first.started.wait(10) and second.started.wait(10)  # neither waits for the other
    first.go.set()
    time.sleep(0.3)
    assert not third.started.is_set()  # the second is still compiling
    second.go.set()
    assert third.started.wait(10)
    third.go.set()
    deadline = time.monotonic() + 10
    while serving.ALL_READY not in " ".join(lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [line.split(" compiled")[0] for line in lines[:3]] == [f"imgjax studio: {n}" for n in ("first", "second", "third")]


def test_tabs_compiled_in_the_background_hold_their_requests_until_ready():
    """``warm_up_in_background`` returns while its thread compiles the tabs in turn; a request for a
    tab waits until that tab is done (not the ones after it); the compiling thread may call the
    tab's own actions; a warm-up that fails frees its waiters; a line is logged per tab and at the end."""
    import threading

    from imgjax import serving

    class Tab:
        def __init__(self, fail=False):
            self.compiling, self.go, self.fail, self.calls = serving.compiling(), threading.Event(), fail, 0

        def action(self):  # an action that waits for the tab, as the Edit tab's do
            serving.wait_until_compiled(self)
            self.calls += 1

        def warm_up(self):
            assert self.go.wait(30)
            self.action()  # the compiling thread itself is not held up
            if self.fail:
                raise RuntimeError("no compiler today")

    first, second = Tab(fail=True), Tab()
    lines, served = [], []
    serving.warm_up_in_background({"the first tab": first, "the second tab": second}, log=lines.append)
    waiters = [threading.Thread(target=lambda tab=tab: (tab.action(), served.append(tab))) for tab in (first, second)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)
    assert served == [] and lines == []  # both wait for their tab
    first.go.set()
    waiters[0].join(10)
    assert served == [first] and first.calls == 2  # the failed warm-up released it
    assert waiters[1].is_alive()  # the second tab is still compiling
    second.go.set()
    waiters[1].join(10)
    assert served == [first, second] and second.calls == 2
    deadline = time.monotonic() + 10
    while serving.ALL_READY not in " ".join(lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines[0] == "imgjax studio: the first tab failed to compile (no compiler today); it compiles on first use"
    assert lines[1].startswith("imgjax studio: the second tab compiled in ") and serving.ALL_READY in lines[2]
