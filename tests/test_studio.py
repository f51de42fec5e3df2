"""The real studio: `python app.py` launched on localhost, driven through `gradio_client` and through
a headless browser (Debian's chromium, driven by Playwright)."""

import base64
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import awkward_images
import numpy as np
import pytest
from PIL import Image

from imgjax import checkpoint, data
from imgjax.bench import CHROMIUM_FLAGS
from imgjax.cnn import predict_probabilities
from imgjax.service.denoise import GAUSSIAN, MASK, SALT_PEPPER
from imgjax.service.generate import INTERPOLATE_SEEDS
from imgjax.serving import ALL_READY

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "imgjax" / "assets"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, xla_cache: Path, log: Path, **environment) -> subprocess.Popen:
    """Launch app.py on ``port`` and return once it answers HTTP (failing with its log if it dies)."""
    env = {**os.environ, "IMGJAX_XLA_CACHE": str(xla_cache), "GRADIO_ANALYTICS_ENABLED": "False", **environment}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--mcp"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"app.py did not answer within 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xla")


class Server(str):
    """The server's URL, with its process, log and the folders it writes files to."""
    process: subprocess.Popen
    log: Path
    uploads: Path  # Gradio's upload and output cache (GRADIO_TEMP_DIR)
    temp: Path  # TMPDIR: the walks' GIFs


CACHE_LIMIT_MB = 16  # the test server prunes its cache to this, every second


@pytest.fixture(scope="module")
def server(tmp_path_factory, xla_cache):
    port, folder = _free_port(), tmp_path_factory.mktemp("server")
    (folder / "uploads").mkdir()
    (folder / "tmp").mkdir()
    log = folder / "server.log"
    _leave_what_a_crashed_server_leaves(folder)
    process = _start(port, xla_cache, log, GRADIO_TEMP_DIR=str(folder / "uploads"), TMPDIR=str(folder / "tmp"),
                     IMGJAX_CACHE_MAX_MB=str(CACHE_LIMIT_MB), IMGJAX_PRUNE_EVERY_S="1")
    url = Server(f"http://127.0.0.1:{port}/")
    url.process, url.log, url.uploads, url.temp = process, log, folder / "uploads", folder / "tmp"
    yield url
    process.terminate()
    process.wait(timeout=30)


def _leave_what_a_crashed_server_leaves(folder: Path) -> None:
    """An hour-old upload in the upload folder, and a Lab folder of a process that has ended."""
    stale = folder / "uploads" / "0123abcd" / "stale.png"
    stale.parent.mkdir()
    stale.write_bytes(b"an upload")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    run = folder / "tmp" / "imgjax-lab" / f"lab-{ended.stdout.strip()}-crashed" / "run-1"
    run.mkdir(parents=True)
    (run / "cnn.safetensors").write_bytes(b"weights")


def test_a_new_server_removes_what_a_crashed_one_left(server):
    assert not (server.uploads / "0123abcd").exists()
    assert [folder.name.split("-")[1] for folder in (server.temp / "imgjax-lab").iterdir()] == [str(server.process.pid)]


def _wait_for_edit_tab(log: Path) -> None:
    """The Edit tabs and the other datasets' tabs compile in the background once the server answers:
    wait for the line saying they all have."""
    deadline = time.monotonic() + 300
    while ALL_READY not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.mark.slow
def test_second_start_compiles_nothing(server, xla_cache, tmp_path):
    """Start-up compiles every function the page uses into the persistent cache; a second start with
    the same cache finds them all there and adds nothing."""
    _wait_for_edit_tab(server.log)
    after_first = sorted(p.name for p in xla_cache.iterdir())
    assert any(name.startswith("jit_classify_with_saliency") for name in after_first)
    assert any(name.startswith("jit_restore_aligned") for name in after_first)
    assert any(name.startswith("jit__search_chunk") for name in after_first)
    second = _start(_free_port(), xla_cache, tmp_path / "second.log")
    _wait_for_edit_tab(tmp_path / "second.log")
    second.terminate()
    second.wait(timeout=30)
    assert sorted(p.name for p in xla_cache.iterdir()) == after_first


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server, verbose=False)


def _client_per_thread(server: str):
    """A function giving each calling thread a client of its own, as each visitor's page has its own
    session: gradio_client's one stream per client can close under an event another thread just sent
    (the event then ends in CancelledError), so one client is not shared by threads."""
    import threading

    from gradio_client import Client
    local = threading.local()

    def own_client():
        if not hasattr(local, "client"):
            local.client = Client(server, verbose=False)
        return local.client
    return own_client


@pytest.fixture(scope="module")
def classifier():
    return checkpoint.load_model("cnn")[0]


def _editor(path, layer=None):
    from gradio_client import handle_file
    return {"background": handle_file(str(path)), "layers": [handle_file(str(layer))] if layer else [], "composite": None}


def _classify(client, path) -> str:
    from gradio_client import handle_file
    label = client.predict(handle_file(str(path)), api_name="/classify")[0]
    return label["label"]


def test_every_function_has_an_api_name(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    # exactly these: the page-load events that fill each tab on arrival stay private
    assert endpoints == {"/generate", "/interpolate", "/random_seed", "/classify", "/classify_sketch", "/denoise",
                         "/denoise_bm3d", "/edit_project", "/edit_classes", "/edit_render", "/edit_animation", "/edit_mix", "/edit_sketch",
                         "/lab_start", "/lab_status", "/lab_control"}


def test_functions_are_mcp_tools(server):
    import json
    tools = json.load(urllib.request.urlopen(server + "gradio_api/mcp/schema", timeout=10))
    names = {tool["name"] for tool in tools}
    assert {"generate", "interpolate", "classify", "denoise"} <= names, names


def test_the_truncation_curve_sits_under_its_slider(server):
    """The trade-off the default was chosen on, measured on images held out of the GAN's training,
    is on the page where users choose (the card's curve, one row per level)."""
    import httpx
    _, card = checkpoint.load_model("gan")
    config = httpx.get(f"{server}config", timeout=30).json()
    texts = [c["props"].get("value") for c in config["components"] if c["type"] == "markdown"]
    table = next(t for t in texts if isinstance(t, str) and "| truncation |" in t)
    assert f"{card['metrics']['held_out_images']:,} training images held out" in table
    assert table.count("\n| ") == len(card["metrics"]["truncation_curve"])  # a row per level under the header
    assert "| none |" in table


def test_generated_sneakers_are_sneakers(client, classifier):
    path = client.predict("Sneaker", 11, 16, 1.0, api_name="/generate")
    grid = np.asarray(Image.open(path).convert("L"))[::4, ::4]  # undo the x4 display upscaling
    tiles = np.stack([grid[2 + r * 30:30 + r * 30, 2 + c * 30:30 + c * 30] for r in range(4) for c in range(4)])
    predicted = np.asarray(predict_probabilities(classifier, data.to_float(tiles))).argmax(-1)
    assert np.mean(predicted == data.FASHION_CLASSES.index("Sneaker")) >= 0.75


def test_interpolation_gives_frames_and_an_animated_gif(client):
    strip, gif = client.predict(INTERPOLATE_SEEDS, "Coat", 1, 2, 6, 1.0, api_name="/interpolate")
    assert Image.open(strip).size == (6 * 112, 112)
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 6 + 4  # there and back


def test_every_edit_endpoint(client, classifier, tmp_path):
    """Project a test-set coat, then each edit through the API: the class row, a class change with
    a style move, the animation, a mix with a sneaker, and garments for a sketch."""
    from gradio_client import handle_file
    pair, code, summary = client.predict(handle_file(str(ASSETS / "example_4_coat.png")), api_name="/edit_project")
    # image | reconstruction | the latent alone, 28x28 each, x8
    assert Image.open(pair).size == ((3 * 30 + 2) * 8, 32 * 8)
    assert code["class"] in data.FASHION_CLASSES and len(code["latent"]) == 64 and "dB PSNR" in summary
    assert code["dataset"] == "fashion-mnist" and len(code["detail"]) == 12_544  # 7x7x96 float16 values, base64
    row = np.asarray(Image.open(client.predict(code, api_name="/edit_classes")).convert("L"))[:128:4, ::4]
    tiles = np.stack([row[2:30, 2 + 30 * c:30 + 30 * c] for c in range(10)])  # undo the x4; 2 px borders
    named = np.asarray(predict_probabilities(classifier, data.to_float(tiles))).argmax(-1)
    assert np.mean(named == np.arange(10)) >= 0.8  # the same style, drawn as each class
    edited = np.asarray(Image.open(client.predict(code, "Sneaker", 0.0, 0.0, 0.5, 0.0, api_name="/edit_render"))
                        .convert("L"))[::8, ::8]
    named = np.asarray(predict_probabilities(classifier, data.to_float(edited[None]))).argmax()
    assert data.FASHION_CLASSES[named] == "Sneaker"
    animation = Image.open(client.predict(code, "Bag", 0.0, 1.0, 0.0, 0.0, api_name="/edit_animation"))
    assert animation.format == "GIF" and animation.n_frames == 16
    mixed = Image.open(client.predict(code, handle_file(str(ASSETS / "example_7_sneaker.png")), api_name="/edit_mix"))
    assert mixed.size == ((4 * 30 + 2) * 4, 32 * 4)  # four garments in a row, x4
    sketch = np.full((200, 200, 3), 128, np.uint8)
    sketch[30:170, 60:140] = 255  # a tall block: a dress or trousers
    sketch[:, :30] = sketch[:, 170:] = 0
    Image.fromarray(sketch).save(tmp_path / "sketch.png")
    garments, codes = client.predict({"background": None, "layers": [],
                                      "composite": handle_file(str(tmp_path / "sketch.png"))}, api_name="/edit_sketch")
    assert len(garments) == len(codes) == 6 and all(g["caption"].endswith("% agree") for g in garments)
    assert client.predict(codes[0], api_name="/edit_classes")  # a sketched garment's code edits like any other
    with pytest.raises(Exception, match="list of 64 numbers"):
        client.predict({"class": "Coat", "latent": [0.0]}, api_name="/edit_classes")


def test_edit_endpoints_on_emoji(client, tmp_path):
    """The same endpoints on the emoji: the dataset as the projection's optional last argument, then
    every edit follows the code's dataset; the art set and skin tone as the render's optional last
    arguments; an unknown dataset and a code's unknown dataset are refused in a sentence."""
    from gradio_client import handle_file
    person = handle_file(str(ASSETS / "emoji_1_people_female-technologist-noto.png"))
    pair, code, summary = client.predict(person, "Emoji", api_name="/edit_project")
    assert Image.open(pair).size == ((3 * 34 + 2) * 7, 36 * 7)  # three 32x32 pictures, x7
    assert code["dataset"] == "emoji" and code["art_set"] in ("Twemoji", "Noto", "OpenMoji") and "detail" in code
    assert Image.open(client.predict(code, api_name="/edit_classes")).size[0] == (8 * 34 + 2) * 3
    people = {**code, "class": "People", "tone": "dark"}
    dark = np.asarray(Image.open(client.predict(people, "People", 0, 0, 0, 0, api_name="/edit_render")).convert("RGB"))
    light = np.asarray(Image.open(client.predict(people, "People", 0, 0, 0, 0, None, "light",
                                                 api_name="/edit_render")).convert("RGB"))
    assert dark.shape == (224, 224, 3) and dark.mean() < light.mean()
    openmoji = client.predict(code, "Animals", 0, 0, 0, 0, "OpenMoji", api_name="/edit_render")
    assert Image.open(openmoji).size == (224, 224)
    turtle = handle_file(str(ASSETS / "emoji_3_animals_turtle-twemoji.png"))
    assert Image.open(client.predict(code, turtle, api_name="/edit_mix")).size == ((4 * 34 + 2) * 3, 36 * 3)
    with pytest.raises(Exception, match="Dataset must be one of"):
        client.predict(person, "Cats", api_name="/edit_project")
    for dataset in ("cats", ["emoji"]):
        with pytest.raises(Exception, match="A code's dataset is one of"):
            client.predict({**code, "dataset": dataset}, api_name="/edit_classes")
    sketch = np.full((200, 200, 3), 255, np.uint8)  # a red blob on white
    sketch[50:150, 60:140] = (221, 46, 68)
    Image.fromarray(sketch).save(tmp_path / "emoji-sketch.png")
    found, codes = client.predict({"background": None, "layers": [], "composite": handle_file(
        str(tmp_path / "emoji-sketch.png"))}, "Emoji", api_name="/edit_sketch")
    assert len(found) == 6 and all(c["dataset"] == "emoji" for c in codes)
    assert client.predict(codes[0], api_name="/edit_classes")  # a sketched emoji's code edits like any other


LAB_KNOBS = {"CNN (classifier)": ("0.004", "128"), "Autoencoder (denoiser)": ("0.004", "64"),
             "GAN (generator)": ("0.002", "64")}


def _lab_start(client, family: str, budget: float, seed: int = 0) -> str:
    learning_rate, batch = LAB_KNOBS[family]
    return client.predict(family, float(learning_rate), batch, "1", seed, budget, "Non-saturating", True, True, False,
                          0.65, 0.175, 0.175, api_name="/lab_start")


def _lab_wait(client, until, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        news = client.predict(api_name="/lab_status")
        if until(news):
            return news
        time.sleep(0.5)
    pytest.fail(f"the Lab run did not get there in {timeout} s: {news[0]}")


@pytest.mark.slow
def test_lab_api_drives_a_run_whose_model_serves_its_session_only(server, tmp_path):
    """Through the API: start a run, watch it, pause, step, resume, see it finish, download its model,
    then classify with it in the same session; another session has no such model. The session's
    name climbs out of every folder: the run's files still stay inside the server's Lab folder."""
    import json

    from gradio_client import Client, handle_file

    from imgjax.service.lab import LAB_FOLDERS
    client = Client(server, verbose=False)
    client.session_hash = "../" * 8 + str(tmp_path / "escaped")
    with pytest.raises(Exception, match="No run to control"):
        client.predict("pause", api_name="/lab_control")
    with pytest.raises(Exception, match="Time budget 4000 s"):
        _lab_start(client, "CNN (classifier)", 4000)
    _lab_start(client, "CNN (classifier)", 6)
    news = _lab_wait(client, lambda news: "**Training**" in news[0])
    assert news[1] is not None and news[2] is not None  # the curves and the confusion matrix
    assert "The recipe reaches 91% test accuracy in about 1,000 steps" in news[0]  # what to expect, and when
    assert "Paus" in client.predict("pause", api_name="/lab_control")  # "Pausing…" on a busy host, or "Paused"
    before = _lab_wait(client, lambda news: "**Paused**" in news[0])[0]
    step = lambda text: int(text.split("step ", 1)[1].split(" ")[0].replace(",", ""))
    client.predict("step", api_name="/lab_control")
    after = _lab_wait(client, lambda news: step(news[0]) == step(before) + 1)[0]
    assert "**Paused**" in after
    client.predict("resume", api_name="/lab_control")
    progress, curves, view, mistakes, result, files = _lab_wait(client, lambda news: bool(news[4]))
    assert "**Finished**" in progress and "your model" in result and "93.62%" in result  # beside the shipped one
    weights, card = sorted(files, key=lambda f: f.endswith(".json"))
    card = json.loads(Path(card).read_text())
    # What the code controls, not how far this host got in 6 s: steps taken, images counted, a figure.
    assert card["family"] == "cnn" and 0 <= card["metrics"]["test_accuracy"] <= 1
    assert 0 < card["images_trained"] <= card["steps"] * 128 and f"step {card['steps']:,} " in progress
    assert card["lab_config"]["budget_s"] == 6 and Path(weights).stat().st_size < 10 * 2**20
    assert not list(tmp_path.glob("escaped*"))
    assert list((server.temp / LAB_FOLDERS.name).glob(f"lab-{server.process.pid}-*/run-*/cnn.safetensors"))
    example = handle_file(str(ASSETS / "example_7_sneaker.png"))
    mine = client.predict(example, "Yours (Lab)", api_name="/classify")
    assert mine[3] and mine[0]["label"] in data.FASHION_CLASSES
    assert client.predict(example, api_name="/classify")[0]["label"] == "Sneaker"  # left out: the shipped one
    with pytest.raises(Exception, match="train one in the Lab tab first"):
        Client(server, verbose=False).predict(example, "Yours (Lab)", api_name="/classify")


@pytest.mark.slow
@pytest.mark.realdata
def test_lab_api_trains_on_emoji_and_that_model_serves_emoji_only(server, emoji_pictures):
    """The dataset as the last value of /lab_start: a run on the training emoji, measured on the test
    emoji beside the shipped emoji classifier, then offered on Emoji and refused on Garments."""
    import json

    from gradio_client import Client, handle_file

    from imgjax import datasets, emoji
    client = Client(server, verbose=False)
    learning_rate, batch = LAB_KNOBS["CNN (classifier)"]
    client.predict("CNN (classifier)", float(learning_rate), batch, "1", 0, 6, "Non-saturating", True, True, False,
                   0.65, 0.175, 0.175, "Emoji", api_name="/lab_start")
    progress, curves, view, mistakes, result, files = _lab_wait(client, lambda news: bool(news[4]))
    shipped = json.loads((ROOT / "checkpoints" / "emoji" / "cnn.json").read_text())["metrics"]
    assert "balanced test accuracy" in result and f"{shipped['test_balanced_accuracy']:.2%}" in result
    assert f"the {len(datasets.get('emoji').test(None)):,} test pictures" in result
    card = json.loads(Path(sorted(files, key=lambda f: f.endswith(".json"))[1]).read_text())
    assert card["dataset"] == "emoji" and card["config"]["channels"] == 3
    example = handle_file(sorted(str(p) for p in ASSETS.glob("emoji_*.png"))[0])
    assert client.predict(example, "Yours (Lab)", "Emoji", api_name="/classify")[0]["label"] in emoji.GROUPS
    with pytest.raises(Exception, match="trained on emoji: choose Emoji, or train one on garments"):
        client.predict(example, "Yours (Lab)", "Garments", api_name="/classify")


@pytest.mark.slow
def test_33_visitors_start_at_once_and_the_line_holds_eight(server):
    """33 visitors (each a session from an address of its own) press Start together: one trains, eight
    wait, the rest are told the line is full. A second session from a waiting visitor's address is
    refused; the waiting visitor's own new Start keeps their place."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    from imgjax.service.lab import MAX_WAITING
    visitor = lambda address: Client(server, verbose=False, headers={"X-Forwarded-For": address})
    addresses = [f"10.9.0.{i}" for i in range(33)]
    visitors = [visitor(address) for address in addresses]

    def start(client):
        try:
            return _lab_start(client, "CNN (classifier)", 60)
        except Exception as error:  # noqa: BLE001 (refusals are counted below)
            return f"refused: {error}"
    with ThreadPoolExecutor(33) as pool:
        replies = list(pool.map(start, visitors))
    full = [reply for reply in replies if "line is full" in reply]
    waiting = [client for client, reply in zip(visitors, replies) if reply.startswith("Waiting")]
    assert len(waiting) == MAX_WAITING and len(full) == 33 - 1 - MAX_WAITING, replies
    with pytest.raises(Exception, match="Another page from your address"):
        _lab_start(visitor(addresses[visitors.index(waiting[0])]), "CNN (classifier)", 60)
    place = _lab_start(waiting[0], "GAN (generator)", 60)
    assert place.startswith("Waiting") and place == replies[visitors.index(waiting[0])]
    for client in waiting:
        assert client.predict("stop", api_name="/lab_control") == "Left the line."
    training = next(client for client, reply in zip(visitors, replies) if not reply.startswith(("Waiting", "refused")))
    training.predict("stop", api_name="/lab_control")
    assert "Stopped" in _lab_wait(training, lambda news: "Stopped" in news[0] or "Finished" in news[0])[0]


@pytest.mark.realdata
def test_classify_test_images_gives_their_labels(client, fashion_test, tmp_path):
    correct = 0
    for i in range(20):
        path = tmp_path / f"{i}.png"
        Image.fromarray(fashion_test.images[i]).save(path)
        correct += _classify(client, path) == data.FASHION_CLASSES[fashion_test.labels[i]]
    assert correct >= 18  # the model is 93.6% accurate


def test_sketch_strokes_in_the_alpha_channel_are_seen(client, tmp_path):
    """The sketchpad sends black strokes on a transparent canvas: RGB all zero, the drawing only in
    alpha. Read as grayscale without compositing, that is an empty image."""
    from gradio_client import handle_file
    boot = np.asarray(Image.open(ASSETS / "example_9_ankle-boot.png"))
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = np.kron(boot, np.ones((10, 10), np.uint8))
    Image.fromarray(canvas, "RGBA").save(tmp_path / "sketch.png")
    value = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "sketch.png"))}
    label, seen, _, verdict = client.predict(value, api_name="/classify_sketch")
    assert label["label"] == "Ankle boot", verdict
    assert np.asarray(Image.open(seen).convert("L")).mean() > 20  # the model saw the drawing


def test_denoise_raises_psnr_for_each_corruption(client, tmp_path):
    example = ASSETS / "example_2_pullover.png"
    mask = np.zeros((28, 28, 4), np.uint8)
    mask[8:20, 6:22] = 255
    Image.fromarray(mask, "RGBA").save(tmp_path / "mask.png")
    for kind, level, layer in ((GAUSSIAN, 0.2, None), (SALT_PEPPER, 0.1, None),
                               (MASK, 0.0, tmp_path / "mask.png")):
        slider, baseline, table, note = client.predict(_editor(example, layer), kind, level, 3, False, api_name="/denoise")
        psnr = {row[0]: row[1] for row in table["data"]}
        assert psnr["garment model"] > psnr["corrupted"] + 3, (kind, psnr)
        corrupted, restored = (np.asarray(Image.open(p)) for p in slider)
        assert corrupted.shape == restored.shape == (28, 28) or corrupted.shape[:2] == (28, 28)


@pytest.fixture(scope="module")
def colour_photo(tmp_path_factory) -> Path:
    """A 96x128 crop of scikit-image's astronaut (an evaluation photo: the photo model never trained on it)."""
    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()[40:136, 180:308]).save(path)
    return path


def test_photos_go_to_the_photo_model_and_bm3d_runs_beside_it(client, colour_photo):
    slider, _, table, note = client.predict(_editor(colour_photo), GAUSSIAN, 0.15, 4, False, api_name="/denoise")
    assert "restored by the photo model" in note and "colour, restored jointly" in note
    psnr = {row[0]: row[1] for row in table["data"]}
    tv = next(name for name in psnr if name.startswith("total variation") and "tuned on photos" in name)
    assert psnr["photo model"] > psnr[tv] > psnr["corrupted"], psnr
    restored = np.asarray(Image.open(slider[1]))
    assert restored.shape == (96, 128, 3)
    # BM3D on the same noisy image: its row, beside the model's, and the photo model ahead.
    picture, rows = client.predict(_editor(colour_photo), 0.15, 4, False, api_name="/denoise_bm3d")
    assert np.asarray(Image.open(picture)).shape == (96, 128, 3)
    ((name, bm3d_psnr, _),) = rows["data"]
    assert name.startswith("BM3D") and psnr["corrupted"] + 5 < bm3d_psnr
    # The garment model on request (channel by channel), and a clear refusal of an unknown model.
    _, _, table, note = client.predict(_editor(colour_photo), GAUSSIAN, 0.15, 4, False, "Shipped", "Garment model",
                                       api_name="/denoise")
    assert "each channel restored separately" in note and "garment model" in {row[0] for row in table["data"]}
    with pytest.raises(Exception, match="Denoiser must be one of"):
        client.predict(_editor(colour_photo), GAUSSIAN, 0.15, 4, False, "Shipped", "Best model", api_name="/denoise")


@pytest.mark.parametrize("name", ["16bit.png", "palette.png", "cmyk.jpg", "rgba.png", "photo_dark_on_light.png"])
def test_awkward_but_valid_images_are_classified(client, tmp_path, name):
    example = np.asarray(Image.open(ASSETS / "example_9_ankle-boot.png"))
    files = awkward_images.garment(example, tmp_path)
    assert _classify(client, files[name]) == "Ankle boot"


def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    files = awkward_images.unusable(tmp_path, ASSETS / "example_7_sneaker.png")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + os.urandom(11 * 2**20))  # over the 10 MB upload limit
    cases = [
        (lambda: client.predict(handle_file(str(files["not_an_image.png"])), api_name="/classify"), "image"),
        (lambda: client.predict(handle_file(str(files["truncated.png"])), api_name="/classify"), "truncated|corrupt|read"),
        (lambda: client.predict(handle_file(str(files["bomb.png"])), api_name="/classify"), "too large"),
        (lambda: client.predict(handle_file(str(files["one_pixel.png"])), api_name="/classify"), "1x1"),
        (lambda: client.predict(handle_file(str(huge)), api_name="/classify"), "size|large|limit|exceed"),
        (lambda: client.predict(_editor(files["bomb.png"]), GAUSSIAN, 0.2, 0, False, api_name="/denoise"), "too large"),
        (lambda: client.predict("Sneaker", 0, 1000, 1.0, api_name="/generate"), "between 1 and 64|maximum value 64"),
        (lambda: client.predict("Sneaker", -3, 4, 1.0, api_name="/generate"), "Seed|minimum value 0"),
        (lambda: client.predict("Sneaker", 0, 4, 50.0, api_name="/generate"), "Truncation|maximum value 3"),
        (lambda: client.predict("Socks", 0, 4, 1.0, api_name="/generate"), "Class|Socks"),
        (lambda: client.predict(_editor(ASSETS / "example_0_t-shirt-top.png"), GAUSSIAN, 7.0, 0, False,
                                api_name="/denoise"), "Noise level|maximum value 0.5"),
    ]
    # Gradio checks slider and number ranges itself ("Value 1000 is greater than maximum value 64");
    # the service checks again for callers that bypass the components.
    for call, message in cases:
        with pytest.raises(Exception, match=f"(?i){message}"):
            call()
        assert _classify(client, ASSETS / "example_1_trouser.png") == "Trouser"  # still serving


def _call_raw(server, api_name: str, body: str) -> tuple[str, object]:
    """POST a JSON body as any HTTP client can (inline data, NaN, wrong types) to /gradio_api/call;
    returns the event ("complete" or "error") and its data, or ("http <status>", text)."""
    import json

    import httpx
    reply = httpx.post(f"{server}gradio_api/call/{api_name}", content=body, timeout=60,
                       headers={"content-type": "application/json"})
    if reply.status_code != 200:
        return f"http {reply.status_code}", reply.text
    with httpx.stream("GET", f"{server}gradio_api/call/{api_name}/{reply.json()['event_id']}", timeout=120) as events:
        lines = "".join(events.iter_text()).strip().splitlines()
    # Each event line, then its data line; heartbeats keep a waiting call's stream open (an action
    # waits while its tab compiles in the background) and are passed over.
    pairs = [(line.split(": ", 1)[1], data.split(": ", 1)[1]) for line, data in zip(lines, lines[1:])
             if line.startswith("event: ") and data.startswith("data: ")]
    event, data = next((event, data) for event, data in pairs if event != "heartbeat")
    return event, json.loads(data)


def _inline(png: bytes) -> dict:
    import base64
    return {"path": None, "url": "data:image/png;base64," + base64.b64encode(png).decode(),
            "meta": {"_type": "gradio.FileData"}}


def _png_bytes(array: np.ndarray) -> bytes:
    import io
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _vm_peak_mb(process, field: str = "VmHWM") -> float:
    """The server's peak resident memory so far (Linux's VmHWM; ``field`` "VmRSS": now), in MB."""
    line = next(l for l in Path(f"/proc/{process.pid}/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_a_thousand_mixed_requests_from_32_threads(server, client, tmp_path):
    """Every endpoint at once from 32 threads, 1,000 requests, a tenth of them bad: no request fails
    but the bad ones, each with its message, and the log holds no traceback; once idle, the server's memory is within 150 MB of its
    level after one round of every request, and its peak stays under the 1.5 GB budget."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import handle_file
    coat, sneaker = (handle_file(str(ASSETS / name)) for name in ("example_4_coat.png", "example_7_sneaker.png"))
    code = client.predict(coat, api_name="/edit_project")[1]
    sketch = {"background": None, "layers": [], "composite": handle_file(str(ASSETS / "example_8_bag.png"))}
    # The requests of tenths of a second (searches, BM3D, GIFs) ten times each; the rest are quick ones.
    slow = [("/interpolate", (INTERPOLATE_SEEDS, "Coat", 1, 2, 6, 1.0)),
            ("/denoise_bm3d", (_editor(ASSETS / "example_1_trouser.png"), 0.2, 1, False)),
            ("/edit_project", (coat,)), ("/edit_animation", (code, "Bag", 0, 1, 0, 0)), ("/edit_mix", (code, sneaker)),
            ("/edit_sketch", (sketch,))]
    quick = [("/generate", ("Sneaker", 3, 16, 1.0)), ("/generate", ("All classes", 4, 2, 2.0)), ("/random_seed", ()),
             ("/classify", (sneaker,)), ("/classify_sketch", (sketch,)),
             ("/denoise", (_editor(ASSETS / "example_1_trouser.png"), GAUSSIAN, 0.2, 1, False)),
             ("/denoise", (_editor(ASSETS / "example_1_trouser.png"), SALT_PEPPER, 0.1, 1, False)),
             ("/edit_classes", (code,)), ("/edit_render", (code, "Dress", 1, 0, 0, 0)), ("/lab_status", ())]
    bad = [("/generate", ("Sneaker", "x", 16, 1.0), "Seed must be"), ("/edit_render", (code, "Socks", 0, 0, 0, 0), "Class"),
           ("/lab_control", ("dance",), "The command must be one of"), ("/classify", (None,), "Choose an image")]
    own_client = _client_per_thread(server)
    call = lambda endpoint, args: own_client().predict(*args, api_name=endpoint)
    for endpoint, args in slow + quick:  # one round: every program compiled, every cache filled
        call(endpoint, args)
    settled = _vm_peak_mb(server.process, "VmRSS")
    chooser = random.Random(0)
    plan = [(*request, "", False) for request in slow * 10] + [(*chooser.choice(bad), True) for _ in range(100)]
    plan += [(*chooser.choice(quick), "", False) for _ in range(1000 - len(plan))]
    chooser.shuffle(plan)

    def attempt(request):
        endpoint, args, message, refused = request
        try:
            call(endpoint, args)
            return "" if not refused else f"{endpoint} accepted a bad request"
        except Exception as error:  # noqa: BLE001 (each compared with what the request deserved)
            return "" if refused and message in str(error) else f"{endpoint}: {error!r}"[:300]
    with ThreadPoolExecutor(32) as pool:
        problems = [problem for problem in pool.map(attempt, plan) if problem]
    assert problems == [] and "Traceback" not in server.log.read_text()
    time.sleep(3)  # idle
    assert _vm_peak_mb(server.process, "VmRSS") < settled + 150
    assert _vm_peak_mb(server.process) < 1500


def test_every_route_keeps_the_size_and_pixel_limits(server, client, tmp_path):
    """Uploads, inline data: URLs and editor layers are all refused from the header when they are too
    large, too many pixels or a long thin strip, before anything is decoded."""
    import json

    from gradio_client import handle_file
    Image.fromarray(np.zeros((8, 30000), np.uint8)).save(tmp_path / "strip.png")  # 325 bytes, 240k pixels
    with pytest.raises(Exception, match="strip more than 20 times longer"):
        client.predict(handle_file(str(tmp_path / "strip.png")), api_name="/classify")
    bomb = _png_bytes(np.zeros((7000, 7000), np.uint8))  # 49 MP in 60 kB
    event, reply = _call_raw(server, "classify", json.dumps({"data": [_inline(bomb)]}))
    assert event == "error" and "too large (7000x7000 pixels)" in reply["error"]
    big = _png_bytes(np.random.default_rng(0).integers(0, 255, (1900, 1900, 3), np.uint8))  # 10.3 MB of noise
    assert len(big) > 10 * 2**20
    event, reply = _call_raw(server, "classify", json.dumps({"data": [_inline(big)]}))
    assert event == "error" and "larger than 10 MB" in reply["error"]
    small = _png_bytes(np.asarray(Image.open(ASSETS / "example_9_ankle-boot.png")))
    event, reply = _call_raw(server, "classify", json.dumps({"data": [_inline(small)]}))
    assert event == "complete" and reply[0]["label"] == "Ankle boot"  # inline data itself is fine
    (tmp_path / "layer.png").write_bytes(bomb)  # a brush-mask layer far larger than its image
    editor = {"background": handle_file(str(ASSETS / "example_9_ankle-boot.png")),
              "layers": [handle_file(str(tmp_path / "layer.png"))], "composite": None}
    with pytest.raises(Exception, match=r"too large \(7000x7000 pixels\)"):
        client.predict(editor, MASK, 0.2, 0, False, api_name="/denoise")
    event, reply = _call_raw(server, "generate", json.dumps({"data": ["x" * (17 * 2**20)]}))
    assert event == "http 413" and "at most 16 MB" in reply


def test_editor_blobs_keep_the_limits(server, client):
    """The image editor sends its layers ahead of a click (component_server's accept_blobs): a layer
    index of a billion (which would have Gradio allocate a list of a billion entries) and unknown
    parts are refused with a plain 400, and a file over the limit never reaches the editor."""
    import json

    import httpx
    config = httpx.get(f"{server}config", timeout=30).json()
    editor = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "denoise-input")
    before = _vm_peak_mb(server.process)

    def send(kind, index, size=1000):
        fields = {"component_id": str(editor), "session_hash": "blobtest", "fn_name": "accept_blobs",
                  "type": kind, "index": index, "id": "blob-1"}
        return httpx.post(f"{server}gradio_api/component_server/", data=fields, timeout=30,
                          files={"file": ("blob", b"\0" * size, "application/octet-stream")})
    refused = send("layer", "1000000000")
    assert refused.status_code == 400 and "one layer" in json.loads(refused.text)["detail"]
    assert send("bomb", "null").status_code == 400
    assert send("layer", "0", size=10 * 2**20 + 1).status_code in (400, 413)
    assert send("layer", "0").status_code == 200
    assert _vm_peak_mb(server.process) < before + 100
    # An example click updates the editor, and Gradio then gives the session an editor of its own,
    # made afresh from the component's class: the limits hold for it too.
    dependencies = config["dependencies"]
    load_example = next(d for d in dependencies if d["outputs"] == [editor] and d["targets"][0][1] == "click")
    loaded = httpx.post(f"{server}gradio_api/run/predict", timeout=30, json={
        "fn_index": load_example["id"], "data": [0], "session_hash": "blobtest", "trigger_id": load_example["targets"][0][0]})
    assert loaded.status_code == 200 and "background" in loaded.text
    assert send("bomb", "null").status_code == 400
    assert _classify(client, ASSETS / "example_1_trouser.png") == "Trouser"


@pytest.mark.slow
def test_worst_allowed_inputs_at_once_stay_under_the_memory_budget(server, client, tmp_path):
    """The largest inputs the limits allow (25 MP in RGBA, 16-bit and float, a 20:1 strip), sent to
    every image route at once, twice over: the server's peak memory stays under 1.5 GB."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import handle_file
    awkward_images.largest_allowed(tmp_path)
    files = [str(tmp_path / name) for name in ("rgba.png", "gray16.png", "float.tiff", "strip.png")]
    assert all(Path(f).stat().st_size < 10 * 2**20 for f in files)
    editor = lambda f: {"background": handle_file(f), "layers": [handle_file(str(tmp_path / "layer.png"))],
                        "composite": None}
    own_client = _client_per_thread(server)
    calls = [lambda f=f: own_client().predict(handle_file(f), api_name="/classify") for f in files]
    calls += [lambda f=f: own_client().predict(editor(f), MASK, 0.2, 0, False, api_name="/denoise") for f in files[:3]]
    calls += [lambda f=f: own_client().predict({"background": None, "layers": [], "composite": handle_file(f)},
                                               api_name="/classify_sketch") for f in files[:2]]
    calls += [lambda f=f: own_client().predict(handle_file(f), api_name="/edit_project") for f in files[:2]]
    calls += [lambda: own_client().predict(
        {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "layer.png"))}, api_name="/edit_sketch")]
    with ThreadPoolExecutor(len(calls) * 2) as pool:
        results = list(pool.map(lambda call: call(), calls * 2))
    assert all(result is not None for result in results)
    assert _vm_peak_mb(server.process) < 1500


@pytest.mark.slow
def test_new_image_sizes_reuse_compiled_programs(server, client, xla_cache, tmp_path):
    """Forty image sizes in one bucket (sides 30 to 64) compile one bucket's programs, not forty."""
    from gradio_client import handle_file
    before = {p.name for p in xla_cache.iterdir()}
    rng = np.random.default_rng(0)
    for i in range(40):
        size = (30 + i % 35, 64 - i % 33)
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, size[::-1], np.uint8)).save(path)
        client.predict({"background": handle_file(str(path)), "layers": [], "composite": None},
                       GAUSSIAN, 0.1, i, False, api_name="/denoise")
    # each program is stored as <name>-<hash>-cache with an -atime file beside it
    added = {name.rsplit("-", 1)[0] for name in {p.name for p in xla_cache.iterdir()} - before}
    assert len(added) <= 4, sorted(added)  # corruption, model, baseline, scores at the 64x64 bucket


def test_uploads_and_outputs_stay_within_the_cache_limit(server, client, tmp_path):
    """One request carries at most 16 MB, however many files; the upload and output cache is pruned
    to its limit (16 MB on the test server), and the walks' GIFs share one pruned folder."""
    import httpx
    chunk = os.urandom(2**20)
    many = [("files", (f"{i}.png", chunk)) for i in range(20)]
    assert httpx.post(f"{server}gradio_api/upload", files=many, timeout=60).status_code == 413
    for request in range(6):
        reply = httpx.post(f"{server}gradio_api/upload", timeout=60,
                           files=[("files", (f"{request}-{i}.png", os.urandom(2**20))) for i in range(8)])
        assert reply.status_code == 200
    for seed in range(3):
        client.predict(INTERPOLATE_SEEDS, "Coat", seed, seed + 1, 4, 1.0, api_name="/interpolate")

    def size():  # the server prunes while this walks: files vanish
        total = 0
        for root, _, names in os.walk(server.uploads):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    total += (Path(root) / name).stat().st_size
        return total
    deadline = time.monotonic() + 30
    while size() > CACHE_LIMIT_MB * 2**20 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert size() <= CACHE_LIMIT_MB * 2**20
    assert [p.name for p in server.temp.iterdir() if "gif" in p.name] == ["imgjax-gifs"]


def test_pruning_to_the_size_limit_spares_files_still_on_their_way(tmp_path):
    """Over the size limit, the oldest files go first, but none written in the last seconds: under a
    burst of requests those are outputs whose clients have not fetched them yet."""
    from imgjax.gradio_guards import IN_FLIGHT_S, prune_cache
    files = [tmp_path / f"{i}.png" for i in range(4)]
    for age, path in zip((3600, 600, 1, 0), files):
        path.write_bytes(bytes(2**20))
        os.utime(path, (time.time() - age, time.time() - age))
    prune_cache(files, max_age=7200, max_bytes=2**20)
    assert [path.exists() for path in files] == [False, False, True, True] and IN_FLIGHT_S > 1


def test_bad_values_get_messages_that_name_them(server, tmp_path):
    """Wrong types, NaN, a wrong argument count or a malformed editor payload: each message names
    the input and says what it takes; a fractional seed is refused as a fractional count is."""
    import json
    sneaker = _inline(_png_bytes(np.asarray(Image.open(ASSETS / "example_7_sneaker.png"))))
    cases = [
        ('{"data": ["Sneaker", "abc", 4, 1.0]}', "generate", "Seed must be a number; got 'abc'"),
        ('{"data": ["Sneaker", null, 4, 1.0]}', "generate", "Seed must be a number between 0 and 2147483647"),
        ('{"data": ["Sneaker", NaN, 4, 1.0]}', "generate", "Seed must be between 0 and 2147483647, got nan"),
        ('{"data": ["Sneaker", 1.5, 4, 1.0]}', "generate", "Seed must be a whole number, got 1.5"),
        ('{"data": ["Sneaker", 1, 1.5, 1.0]}', "generate", "Number of images must be a whole number, got 1.5"),
        ('{"data": ["Sneaker", 1]}', "generate", "takes 8 values"),
        ('{"data": ["Sneaker", 1, 4, 1.0, "Shipped", "Garments", "Noto", "dark", 5]}', "generate", "takes 8 values"),
        ('{"data": ["People", 1, 4, 1.0, "Shipped", "Emoji", "Noto", "green"]}', "generate",
         "Skin tone must be one of 'Every tone in turn', 'default'"),
        ('{"data": ["Sneaker", 1, 4, 1.0, "Shipped", "Shoes"]}', "generate", "Dataset must be one of 'Garments'"),
        ('{"data": ["Sneaker", 1, 4, 1.0, "Mine"]}', "generate", "Model must be one of 'Shipped', 'Yours (Lab)'"),
        ('{"data": [{"background": 5}, "Gaussian noise", 0.2, 0, false]}', "denoise", "must be background and"),
        (json.dumps({"data": [{"background": sneaker, "layers": "x"}, "Gaussian noise", 0.2, 0, False]}), "denoise",
         "layers a list of files"),
        (json.dumps({"data": [sneaker, "Shipped", "Garments", 1]}), "classify", "takes 3 values"),
        (json.dumps({"data": [sneaker, "Shipped", "Cats"]}), "classify", "Dataset must be one of 'Garments', 'Emoji'"),
        (json.dumps({"data": [sneaker, "Yours (Lab)", "Emoji"]}), "classify", "You have no CNN of your own yet"),
        (json.dumps({"data": [{"background": sneaker, "layers": [], "composite": None}, "Gaussian noise", 0.2, 0,
                              "yes"]}), "denoise", "must be true or false"),
        # Huge numbers, booleans as numbers, long strings and lists: one short sentence each.
        ('{"data": ["Sneaker", ' + "9" * 400 + ', 4, 1.0]}', "generate",
         "Seed must be between 0 and 2147483647, got a number far outside that."),
        ('{"data": ["Sneaker", 1e300, 4, 1.0]}', "generate", "Seed must be between 0 and 2147483647, got a number far"),
        ('{"data": ["Between two seeds", "Coat", 0, 2, 8, -' + "9" * 400 + ']}', "interpolate", "Truncation must be"),
        (json.dumps({"data": [{"class": "Coat", "latent": [True] * 64}]}), "edit_classes", "list of 64 numbers"),
        ('{"data": [{"class": "Coat", "latent": [' + "9" * 400 + ', ' + "0, " * 62 + '0]}]}', "edit_classes",
         "latent values lie between -10 and 10"),
        (json.dumps({"data": ["CNN (classifier)", float("1" + "0" * 300), "128", "1", 0, 60, "Non-saturating", True,
                              True, False, 0.65, 0.175, 0.175]}), "lab_start", "Learning rate must be between"),
        (json.dumps({"data": ["CNN (classifier)", 0.004, "128", "1", 0, 60, "Non-saturating", True, True, False, 0.65,
                              0.175, 0.175, "Cats"]}), "lab_start", "Dataset must be one of 'Garments', 'Emoji'"),
        (json.dumps({"data": ["x" * 100_000]}), "lab_control", "Command must be at most 1,000 characters long"),
        (json.dumps({"data": [{"class": "Coat", "latent": [0.0] * 5000}]}), "edit_classes", "at most 1,000 values"),
    ]
    log_before = server.log.stat().st_size
    for body, api_name, message in cases:
        event, reply = _call_raw(server, api_name, body)
        assert event == "error" and message in (reply["error"] or ""), (body[:80], reply)
        assert len(reply["error"]) < 300, reply["error"]
    assert server.log.stat().st_size - log_before < 200 * len(cases)  # nothing echoed at length
    Image.fromarray(np.full((64, 64), np.nan, np.float32), "F").save(tmp_path / "nan.tiff")
    from gradio_client import Client, handle_file
    with pytest.raises(Exception, match="not numbers"):
        Client(server, verbose=False).predict(handle_file(str(tmp_path / "nan.tiff")), api_name="/classify")


def test_a_bad_file_gets_one_plain_message_on_every_tab(server, client, tmp_path):
    """The same broken files give the same words on Classify, Draw, Denoise and Edit, with no server paths
    and no exception names."""
    from gradio_client import handle_file
    files = awkward_images.unusable(tmp_path, ASSETS / "example_7_sneaker.png")
    for name in ("not_an_image.png", "truncated.png", "bomb.png"):
        upload = handle_file(str(files[name]))
        messages = []
        for call in (lambda f=upload: client.predict(f, api_name="/classify"),
                     lambda f=upload: client.predict({"background": None, "layers": [], "composite": f},
                                                     api_name="/classify_sketch"),
                     lambda f=upload: client.predict({"background": f, "layers": [], "composite": None},
                                                     GAUSSIAN, 0.2, 0, False, api_name="/denoise"),
                     lambda f=upload: client.predict(f, api_name="/edit_project")):
            with pytest.raises(Exception) as refused:
                call()
            messages.append(str(refused.value))
        assert len(set(messages)) == 1, messages
        assert "/" not in messages[0] and "Error" not in messages[0], messages[0]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("IMGJAX_REQUIRE_DATA"):
            pytest.fail("Debian's chromium is not installed (apt install chromium)")
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


# True once no output on the page has waited for an event (Gradio marks those ``.pending`` and shows
# their status tracker) for half a second: the events a tab fires when it first shows have run.
SETTLED = """() => { const busy = document.querySelector('.block.pending, [data-testid=status-tracker]:not(.hide)');
    if (busy) { window.__imgjaxQuietSince = null; return false; }
    window.__imgjaxQuietSince ??= performance.now();
    return performance.now() - window.__imgjaxQuietSince > 500; }"""
# Waits until the picture in ``selector`` differs from ``before`` and has loaded: what the test asserts.
NEW_PICTURE = """([selector, before]) => { const img = document.querySelector(selector);
    return img && img.src !== before && img.complete && img.naturalWidth > 0; }"""


def test_browser_generate_classify_denoise(server, browser, tmp_path, colour_photo):
    """Open the page in headless chromium: each tab arrives with its pictures (the default grid and
    walk, a classified and a restored example); then click through the three tabs and see them change;
    last, upload a colour photo to the Denoise tab: the photo model restores it, and BM3D follows."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(server)

    generated = page.locator("#generated img")
    generated.wait_for(timeout=30_000)  # no click: the default grid comes with the page
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", ""], timeout=30_000)
    assert generated.evaluate("img => img.naturalWidth") == 488  # 4x4 grid, x4
    # The grid follows its controls: a new seed, then a new class, each make a new grid, no click.
    arrival = generated.get_attribute("src")
    seed = page.get_by_label("Seed", exact=True)
    seed.fill("7")
    seed.press("Tab")
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    assert generated.evaluate("img => img.naturalWidth") == 488
    arrival = generated.get_attribute("src")
    page.get_by_role("button", name="🎲 Random seed").click()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    walk = page.locator("#frames img")
    walk.wait_for(timeout=30_000)  # the default walk comes with the page too
    arrival = walk.get_attribute("src")
    page.get_by_label("Second seed", exact=True).fill("5")
    page.get_by_label("Second seed", exact=True).press("Tab")
    page.get_by_role("button", name="Interpolate", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#frames img", arrival], timeout=30_000)
    page.get_by_label("Across classes (same style)").check()  # a tour keeps one seed: no second seed
    page.get_by_label("Second seed", exact=True).wait_for(state="hidden", timeout=10_000)
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)
    # Emoji: the grid follows the dataset, and then its art set, in colour.
    arrival = generated.get_attribute("src")
    page.locator("#gan-dataset").get_by_label("Emoji").check()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    arrival = generated.get_attribute("src")
    page.locator("#gan-art-set").get_by_label("OpenMoji").check()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    served = urllib.request.urlopen(urllib.parse.urljoin(server, generated.get_attribute("src")), timeout=10).read()
    assert np.asarray(Image.open(io.BytesIO(served)).convert("RGB"), np.float32).std(axis=-1).mean() > 5  # colour
    # People in a skin tone: the grid follows the tone asked, and the tones as measured are on the page.
    arrival = generated.get_attribute("src")
    page.locator("#gan-class input").click()
    page.get_by_role("option", name="People", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    arrival = generated.get_attribute("src")
    page.locator("#gan-skin-tone input").click()
    page.get_by_role("option", name="dark", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", arrival], timeout=30_000)
    page.get_by_text("Skin tones (measured)").click()
    page.get_by_text("Largest gap between the two shares").wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "generate_emoji.png"), full_page=True)

    page.get_by_role("tab", name="Classify").click()
    page.locator("#verdict", has_text="Ankle boot (").wait_for(timeout=30_000)  # the arrival example
    page.locator("#classify-examples button").nth(7).click()  # example_7_sneaker.png: classified at once
    page.locator("#verdict", has_text="Sneaker (").wait_for(timeout=30_000)
    # The verdict is the sub-tab's on show: none beside an empty sketchpad, the image's again after.
    page.get_by_role("tab", name="Draw").click()
    page.locator("#verdict", has_text="Draw on the sketchpad").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Image").click()
    page.locator("#verdict", has_text="Sneaker (").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
    # Emoji: the sneaker is judged by the emoji model at once, then an emoji example, in colour.
    page.locator("#cnn-dataset").get_by_label("Emoji").check()
    page.locator("#verdict", has_text="emoji the model was trained on").wait_for(timeout=30_000)
    page.locator("#classify-examples-1 button").nth(3).click()  # emoji_3_animals_turtle-twemoji.png
    page.locator("#verdict", has_text="drawn in Twemoji's style").wait_for(timeout=30_000)
    assert "32x32 in colour" in page.locator("#classify-note").inner_text()
    # The classifier's bias, as measured: its accuracy on people per skin tone, from its card.
    page.locator("#classify-tones-box").get_by_text("Skin tones (measured)").click()
    page.locator("#classify-tones", has_text="Largest gap between the five skin tones").wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "classify_emoji.png"), full_page=True)
    page.locator("#cnn-dataset").get_by_label("Garments").check()
    page.wait_for_function("() => !document.querySelector('#verdict').innerText.includes('style')", timeout=30_000)
    page.locator("#classify-tones-box").wait_for(state="hidden", timeout=10_000)  # garments have no tones

    page.get_by_role("tab", name="Denoise").click()
    page.locator("#scores", has_text="total variation").wait_for(timeout=30_000)  # Gaussian, on arrival
    page.locator("#denoise-examples button").nth(2).click()  # example_2_pullover.png
    page.get_by_label("Salt and pepper").check()
    page.get_by_role("button", name="Corrupt and restore").click()
    page.locator("#scores", has_text="median filter").wait_for(timeout=30_000)
    for row in ("corrupted", "garment model"):
        assert row in page.locator("#scores").inner_text()
    page.get_by_label("Brush mask").check()  # the level does not apply to a mask
    page.get_by_label("Level: noise sigma, or salt-and-pepper amount").first.wait_for(state="hidden", timeout=10_000)
    page.screenshot(path=str(tmp_path / "denoise.png"), full_page=True)

    page.get_by_label("Gaussian noise").check()
    # After an example click the editor takes about two seconds to settle (Gradio's page re-sends its
    # previous picture meanwhile, then loads the example again): a file chosen before then gives way
    # to the example. Its status tracker says when it has settled.
    page.wait_for_function("""() => document.querySelector(
        "#denoise-input [data-testid=status-tracker], #denoise-input .wrap")?.classList.contains("hidden")""",
                           timeout=30_000)
    page.locator("#denoise-input button[aria-label='Clear canvas']").click()
    page.locator("#denoise-input input[type=file]").set_input_files(str(colour_photo))
    page.get_by_role("button", name="Corrupt and restore").click()
    # The note names the model that ran (the garment model restored the pullover before).
    page.locator("#denoise-note", has_text="restored by the photo model").wait_for(timeout=60_000)
    assert "128x96, colour, restored jointly" in page.locator("#denoise-note").inner_text()
    # A small photo: BM3D runs after the model, on the same noisy photo, and adds its row.
    page.wait_for_function("""() => { const img = document.querySelector("#bm3d img");
        return img && img.complete && img.naturalWidth === 128 && img.naturalHeight === 96; }""", timeout=60_000)
    page.locator("#scores", has_text="BM3D").wait_for(timeout=10_000)
    for row in ("photo model", "tuned on photos"):
        assert row in page.locator("#scores").inner_text()
    page.screenshot(path=str(tmp_path / "denoise_photo.png"), full_page=True)
    # Emoji: their examples, and the emoji model colouring a gray emoji beside its baseline.
    page.locator("#ae-dataset").get_by_label("Emoji").check()
    page.get_by_label("Gray (colourise)").check()
    page.locator("#denoise-examples-1 button").nth(4).click()  # emoji_4_food_pizza-noto.png
    page.wait_for_function("""() => document.querySelector(
        "#denoise-input [data-testid=status-tracker], #denoise-input .wrap")?.classList.contains("hidden")""",
                           timeout=30_000)
    page.get_by_role("button", name="Corrupt and restore").click()
    page.locator("#scores", has_text="gray to mean colour").wait_for(timeout=60_000)
    assert "emoji model" in page.locator("#scores").inner_text()
    page.screenshot(path=str(tmp_path / "denoise_emoji.png"), full_page=True)
    page.close()


def _stroke(page, canvas_selector: str) -> None:
    """A stroke down the middle of a sketchpad, in its brush's first colour."""
    canvas = page.locator(canvas_selector).first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=12)
    page.mouse.up()


def test_browser_edit(server, browser, tmp_path):
    """The Edit tab arrives with a projected coat and its class row; a slider and the class change
    the edited picture; a sketch gets garments; "Edit the first picture" on Generate brings its code;
    then the same on the emoji, whose sketchpad paints in colour."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(server)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#projection-summary", has_text="Projected as Coat").wait_for(timeout=60_000)  # on arrival
    page.wait_for_function(NEW_PICTURE, arg=["#all-classes img", ""], timeout=30_000)
    page.locator("#edit-examples button").nth(7).click()  # example_7_sneaker.png: projected at once
    page.locator("#projection-summary", has_text="Projected as Sneaker").wait_for(timeout=60_000)
    page.wait_for_function(NEW_PICTURE, arg=["#edited img", ""], timeout=30_000)
    before = page.locator("#edited img").get_attribute("src")
    page.locator("#style-0 input[type=number]").fill("1.5")
    page.locator("#style-0 input[type=number]").press("Enter")
    page.wait_for_function(NEW_PICTURE, arg=["#edited img", before], timeout=30_000)
    before = page.locator("#edited img").get_attribute("src")
    page.locator("#edit-class input").click()
    page.get_by_role("option", name="Bag", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#edited img", before], timeout=30_000)
    page.get_by_role("button", name="Animate: original to edit").click()
    page.wait_for_function(NEW_PICTURE, arg=["#edit-animation img", ""], timeout=30_000)

    page.get_by_role("tab", name="Sketch").click()
    _stroke(page, "#edit-sketch canvas")  # white, the brush's first colour
    page.get_by_role("button", name="Find garments").click()
    page.locator("#sketch-garments img").nth(5).wait_for(timeout=60_000)
    page.locator("#sketch-garments button.thumbnail-item").first.click()  # the best garment, to edit
    page.locator("#projection-summary", has_text="from your sketch").wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "edit.png"), full_page=True)

    page.get_by_role("tab", name="Generate").click()
    page.locator("#generated img").wait_for(timeout=30_000)
    row = page.locator("#all-classes img").get_attribute("src")
    page.get_by_role("button", name="Edit the first picture").click()
    page.locator("#projection-summary", has_text="from the Generate tab").wait_for(timeout=30_000)
    page.wait_for_function(NEW_PICTURE, arg=["#all-classes img", row], timeout=30_000)
    page.locator("#edit-input img").wait_for(state="detached", timeout=10_000)  # not the old image's garment
    # Removing the image keeps the code, its edits and the class list, and says so in plain words.
    page.locator("button[role=tab]:visible", has_text="Image").click()  # the Edit tab's, left for Sketch above
    page.locator("#edit-examples button").nth(4).click()  # example_4_coat.png
    page.locator("#projection-summary", has_text="Projected as Coat").wait_for(timeout=60_000)
    page.locator("#edit-input").get_by_role("button", name="Remove Image").click()
    page.locator("#projection-summary", has_text="No image").wait_for(timeout=30_000)
    assert page.locator("#edit-class input").input_value() == "Coat"
    assert page.locator("#style-0 input[type=number]").input_value() == "0"
    assert "latent" not in page.locator("#edit-status").inner_text()

    # Emoji: the dataset's arrival picture is projected with its art set; the skin tone and the art
    # set change the edit; Generate's "Edit the first picture" on emoji brings the code and the dataset.
    logged_before = len(server.log.read_text())
    page.locator("#edit-dataset").get_by_label("Emoji").check()
    page.locator("#projection-summary", has_text="'s style").wait_for(timeout=60_000)
    page.locator("#edit-art-set").wait_for(state="visible", timeout=30_000)  # the code's controls follow it
    page.locator("#style-1", has_text="Darker (smaller for Hands").wait_for(timeout=30_000)
    page.locator("button[role=tab]:visible", has_text="Sketch").click()  # the sketchpad follows the dataset
    before = page.locator("#sketch-garments img").first.get_attribute("src")
    _stroke(page, "#edit-sketch canvas")  # the emoji brushes' first colour, yellow
    page.get_by_role("button", name="Find emoji").click()
    page.wait_for_function(NEW_PICTURE, arg=["#sketch-garments img", before], timeout=60_000)
    page.locator("#sketch-garments button.thumbnail-item").first.click()
    page.locator("#projection-summary", has_text="from your sketch").wait_for(timeout=30_000)
    assert page.locator("#edit-dataset").get_by_label("Emoji").is_checked()
    page.locator("button[role=tab]:visible", has_text="Image").click()
    page.locator("#edit-examples-1 button").nth(3).click()  # the turtle
    page.locator("#projection-summary", has_text="Projected as Animals").wait_for(timeout=60_000)
    before = page.locator("#edited img").get_attribute("src")
    page.locator("#edit-art-set").get_by_label("OpenMoji").check()
    page.wait_for_function(NEW_PICTURE, arg=["#edited img", before], timeout=30_000)
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gan-dataset").get_by_label("Emoji").check()
    page.locator("#gan-class input").click()
    page.get_by_role("option", name="People", exact=True).click()
    page.get_by_role("button", name="Edit the first picture").click()
    page.locator("#projection-summary", has_text="A People from the Generate tab").wait_for(timeout=30_000)
    assert page.locator("#edit-class input").input_value() == "People"
    assert page.locator("#edit-dataset").get_by_label("Emoji").is_checked()
    before = page.locator("#edited img").get_attribute("src")
    page.locator("#edit-skin-tone input").click()
    page.get_by_role("option", name="dark", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#edited img", before], timeout=30_000)
    page.screenshot(path=str(tmp_path / "edit-emoji.png"), full_page=True)
    page.close()
    # No edit was rendered with the other dataset's class while the new dataset's controls arrived.
    assert "refused edit_render" not in server.log.read_text()[logged_before:]


def _lab_step(page) -> int:
    return int(page.locator("#lab-progress").inner_text().split("step ", 1)[1].split(" ")[0].replace(",", ""))


@pytest.mark.slow
def test_browser_lab(server, browser, tmp_path):
    """Train each family for a few seconds in the Lab tab: the curves and pictures come and change;
    pause, a single step, resume and stop work; then the trained models serve the other tabs."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(server)
    page.get_by_role("tab", name="Lab").click()
    budget = page.locator("#lab-budget input[type=number]")
    curves = ""
    for family, seconds in (("GAN (generator)", 5), ("Autoencoder (denoiser)", 5), ("CNN (classifier)", 60)):
        page.get_by_label(family).check()
        page.wait_for_timeout(300)  # the family's recipe fills the knobs
        budget.fill(str(seconds))
        budget.press("Tab")
        assert budget.input_value() == str(seconds)
        page.get_by_role("button", name="Start", exact=True).click()
        page.wait_for_function("() => !document.querySelector('#lab-result').innerText.includes('your model')",
                               timeout=30_000)  # the last run's result cleared
        page.wait_for_function(NEW_PICTURE, arg=["#lab-curves img", curves], timeout=120_000)
        first = page.locator("#lab-view img").get_attribute("src")
        page.wait_for_function(NEW_PICTURE, arg=["#lab-view img", first], timeout=60_000)  # it changes as it learns
        if family.startswith("CNN"):
            page.locator("#lab-mistakes img").wait_for(timeout=30_000)
            page.get_by_role("button", name="Pause").click()
            page.locator("#lab-progress", has_text="Paused").wait_for(timeout=30_000)
            paused_at = _lab_step(page)
            page.get_by_role("button", name="Step").click()
            page.wait_for_function(f"() => document.querySelector('#lab-progress').innerText"
                                   f".includes('step {paused_at + 1:,} ')", timeout=30_000)
            page.get_by_role("button", name="Resume").click()
            page.locator("#lab-progress", has_text="Training").wait_for(timeout=30_000)
            page.get_by_role("button", name="Stop").click()
        result = page.locator("#lab-result", has_text="your model")
        result.wait_for(timeout=120_000)
        if not family.startswith("CNN"):  # the budget asked for, not the recipe's
            trained = int(result.inner_text().split(" s of training")[0].rsplit(" ", 1)[1])
            assert seconds <= trained <= seconds + 1
        page.locator("#lab-files").wait_for(timeout=30_000)
        curves = page.locator("#lab-curves img").get_attribute("src")
        # Legible at desktop size: the pictures' text (18 px in the charts, 17 in the matrix, 24 in the
        # grids' row names) shows at 12 px or more.
        for selector, text_px in (("#lab-curves img", 18), ("#lab-view img", 17 if family.startswith("CNN") else 24)):
            shown = page.locator(selector).evaluate("image => image.clientWidth / image.naturalWidth")
            assert text_px * shown >= 12, (family, selector, shown)
    assert "Stopped" in page.locator("#lab-progress").inner_text()  # the CNN ended by Stop, long before 60 s
    page.screenshot(path=str(tmp_path / "lab.png"), full_page=True)

    page.get_by_role("tab", name="Classify").click()
    page.locator("#cnn-model").get_by_label("Yours (Lab)").check()
    page.locator("#classify-examples button").nth(7).click()
    page.locator("#verdict", has_text="(").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Generate").click()
    before = page.locator("#generated img").get_attribute("src")
    page.locator("#gan-model").get_by_label("Yours (Lab)").check()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(NEW_PICTURE, arg=["#generated img", before], timeout=30_000)
    page.get_by_role("tab", name="Denoise").click()
    page.locator("#ae-model").get_by_label("Yours (Lab)").check()
    page.get_by_role("button", name="Corrupt and restore").click()
    page.locator("#scores", has_text="your Lab model").wait_for(timeout=30_000)
    assert "⚠" not in page.locator("#denoise-status").inner_text()
    page.close()


def _choose_file(page, selector: str, path: Path, expected) -> None:
    """Give the file input ``selector`` a file until ``expected`` (a locator) shows: an input the page
    replaces while its editor starts up drops a file chosen at that moment, which no user can do."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    deadline = time.monotonic() + 30
    while True:
        page.locator(selector).set_input_files(str(path))
        try:
            expected.wait_for(timeout=2_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise


@pytest.mark.slow
def test_browser_refusals_end_in_a_message_and_a_usable_page(server, browser, tmp_path):
    """A file over 10 MB or 25 megapixels, chosen, dropped or pasted, is refused in the browser with a
    message (Gradio's upload otherwise spins for good on the server's 413); a broken file's message
    shows above the results; the sketchpad draws at once; the page goes on working."""
    Image.new("L", (6000, 4500)).save(tmp_path / "27mp.png")  # 27 MP in 26 kB
    (tmp_path / "11mb.png").write_bytes(b"\x89PNG" + os.urandom(11 * 2**20))
    (tmp_path / "text.png").write_text("not a picture\n" * 20)
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.rstrip("/"))
    page = context.new_page()
    page.goto(server)
    page.get_by_role("tab", name="Classify").click()
    page.locator("#verdict", has_text="Ankle boot (").wait_for(timeout=30_000)
    _choose_file(page, "#classify-input input[type=file]", tmp_path / "text.png",
                 page.locator("#classify-status", has_text="That file is not an image"))
    assert "Ankle boot" not in page.locator("#verdict").inner_text()  # the old verdict went with its image
    _choose_file(page, "#classify-input input[type=file]", tmp_path / "11mb.png",
                 page.locator("#imgjax-alert", has_text="larger than 10 MB"))
    # The upload's clipboard button reads the clipboard itself: a 27 MP image there is refused too.
    page.evaluate("""async (data) => { const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        await navigator.clipboard.write([new ClipboardItem({"image/png": new Blob([bytes], {type: "image/png"})})]); }""",
                  base64.b64encode((tmp_path / "27mp.png").read_bytes()).decode())
    page.locator("#classify-input button[aria-label='Paste from clipboard']").click()
    page.locator("#imgjax-alert", has_text="too large (6000x4500 pixels)").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Draw").click()
    page.locator("#sketch button[aria-label='Brush'].highlight").wait_for(timeout=10_000)
    canvas = page.locator("#sketch canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
    page.mouse.down()  # no tool chosen by the user: the sketchpad opens ready to draw
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.8, steps=12)
    page.mouse.up()
    page.get_by_role("button", name="Classify drawing").click()
    page.locator("#verdict", has_text="%").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Denoise").click()
    page.locator("#scores", has_text="total variation").wait_for(timeout=30_000)
    page.locator("#imgjax-alert").click()  # closes the message
    for name, message in (("11mb.png", "larger than 10 MB"), ("27mp.png", "too large (6000x4500 pixels)")):
        page.evaluate("""([data, name]) => {  // a file dragged onto the image editor
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            document.querySelector("#denoise-input").dispatchEvent(
                new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer}));
        }""", [base64.b64encode((tmp_path / name).read_bytes()).decode(), name])
        page.locator("#imgjax-alert", has_text=message).wait_for(timeout=30_000)
    page.locator("#denoise-examples button").nth(2).click()
    page.get_by_label("Salt and pepper").check()
    page.get_by_role("button", name="Corrupt and restore").click()
    page.locator("#scores", has_text="median filter").wait_for(timeout=30_000)
    context.close()


def _open_tab(page, name: str) -> None:
    """Click a tab's button: at phone size too, every tab shows at a glance (none behind a menu)."""
    tab = page.get_by_role("tab", name=name)
    assert tab.is_visible(), f"the {name} tab is not on show"
    tab.click()


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 1000}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_browser_every_tab_passes_wcag_21_aa_checks(server, browser, viewport):
    """axe-core (bundled with the axe-playwright-python package) finds no WCAG 2.1 A or AA violation
    on any tab, at desktop and phone sizes: names for every control and image, 4.5:1 contrast. Every
    tab's button shows at both sizes."""
    import axe_playwright_python
    axe = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
    page = browser.new_page(viewport=viewport)
    page.goto(server)
    page.locator("#generated img").wait_for(timeout=30_000)
    for tab, ready in (("Generate", "#frames img"), ("Classify", "#verdict p"), ("Denoise", "#scores table"),
                       ("Edit", "#all-classes img"), ("Lab", "#lab-start")):
        _open_tab(page, tab)
        page.locator(ready).first.wait_for(timeout=30_000)
        page.evaluate("window.__imgjaxQuietSince = null")
        page.wait_for_function(SETTLED, timeout=30_000)  # the tab's first events done: the page as it stays
        page.evaluate(axe)
        report = page.evaluate("axe.run(document, {runOnly: {type: 'tag', "
                               "values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
        violations = [(v["id"], [n["target"] for n in v["nodes"][:3]]) for v in report["violations"]]
        assert not violations, (tab, violations)
    page.close()


def test_a_client_that_leaves_mid_upload_is_one_line_in_the_log(server):
    """A browser closed during an upload is no bug: one line in the log, no traceback (checked with
    every other refusal by the next test)."""
    from urllib.parse import urlparse
    address = urlparse(server)
    boundary = "imgjax-boundary"
    head = (f"POST /gradio_api/upload HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n")
    line = "client disconnected before its request was read: /gradio_api/upload"
    # Earlier tests' clients (pages closed mid-upload) may still be logging theirs: wait for a quiet log.
    size, deadline = -1, time.monotonic() + 10
    while server.log.stat().st_size != size and time.monotonic() < deadline:
        size = server.log.stat().st_size
        time.sleep(1.0)
    before = server.log.read_text().count(line)
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(head.encode() + b"\x89PNG" + bytes(4000))
        time.sleep(0.5)  # the route is reading the body when the client goes
    deadline = time.monotonic() + 10
    while server.log.read_text().count(line) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.log.read_text().count(line) == before + 1


def test_clients_sharing_a_live_session_hash_leave_no_traceback(server):
    """Four clients send an event and read the event stream under one session hash at once: the
    streams end (some early), the log holds a line for each such end and no traceback."""
    import threading

    import httpx

    def share(seed):
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as http:
            http.post(f"{server}gradio_api/queue/join", json={
                "data": ["Sneaker", seed, 16, 1.0], "fn_index": None, "api_name": "/generate",
                "session_hash": "shared-by-four", "event_data": None, "trigger_id": None})
            with http.stream("GET", f"{server}gradio_api/queue/data", params={"session_hash": "shared-by-four"}) as reply:
                for _ in reply.iter_lines():
                    pass
    threads = [threading.Thread(target=share, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1)
    assert "Traceback" not in server.log.read_text()


def test_user_errors_log_one_line_without_a_traceback(server, client, tmp_path):
    """A user's error is one line in the server's log; a traceback is for bugs, and none of the
    refusals in this module (run last, after all of them) printed one."""
    from gradio_client import handle_file
    (tmp_path / "text.png").write_text("not a picture\n" * 20)
    before = server.log.read_text().count("imgjax: refused")
    for call in (lambda: client.predict(handle_file(str(tmp_path / "text.png")), api_name="/classify"),
                 lambda: client.predict("Sneaker", 1.5, 4, 1.0, api_name="/generate"),
                 lambda: _call_raw(server, "generate", '{"data": ["Sneaker"]}')):
        with contextlib.suppress(Exception):
            call()
    deadline = time.monotonic() + 10
    while server.log.read_text().count("imgjax: refused") < before + 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the log is written by the server's process
    log = server.log.read_text()
    assert log.count("imgjax: refused") == before + 3
    assert "Traceback" not in log, log[log.index("Traceback") - 300:][:3000]
