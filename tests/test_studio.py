"""The real studio: `python app.py` launched on localhost, driven through `gradio_client` and through
a headless browser (Debian's chromium, driven by Playwright)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import awkward_images
from imgjax import checkpoint, data, service
from imgjax.bench import CHROMIUM_FLAGS
from imgjax.cnn import predict_probabilities

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "imgjax" / "assets"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, xla_cache: Path, log: Path) -> subprocess.Popen:
    """Launch app.py on ``port`` and return once it answers HTTP (failing with its log if it dies)."""
    env = {**os.environ, "IMGJAX_XLA_CACHE": str(xla_cache), "GRADIO_ANALYTICS_ENABLED": "False"}
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


@pytest.fixture(scope="module")
def server(tmp_path_factory, xla_cache):
    port = _free_port()
    process = _start(port, xla_cache, tmp_path_factory.mktemp("server") / "server.log")
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=30)


def test_second_start_compiles_nothing(server, xla_cache, tmp_path):
    """Start-up compiles every function the page uses into the persistent cache; a second start with
    the same cache finds them all there and adds nothing."""
    after_first = sorted(p.name for p in xla_cache.iterdir())
    assert any(name.startswith("jit_classify_with_saliency") for name in after_first)
    assert any(name.startswith("jit__restore_aligned") for name in after_first)
    second = _start(_free_port(), xla_cache, tmp_path / "second.log")
    second.terminate()
    second.wait(timeout=30)
    assert sorted(p.name for p in xla_cache.iterdir()) == after_first


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server, verbose=False)


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
    assert endpoints == {"/generate", "/interpolate", "/random_seed", "/classify", "/classify_sketch", "/denoise"}


def test_functions_are_mcp_tools(server):
    import json
    tools = json.load(urllib.request.urlopen(server + "gradio_api/mcp/schema", timeout=10))
    names = {tool["name"] for tool in tools}
    assert {"generate", "interpolate", "classify", "denoise"} <= names, names


def test_generated_sneakers_are_sneakers(client, classifier):
    path = client.predict("Sneaker", 11, 16, 1.0, api_name="/generate")
    grid = np.asarray(Image.open(path).convert("L"))[::4, ::4]  # undo the x4 display upscaling
    tiles = np.stack([grid[2 + r * 30:30 + r * 30, 2 + c * 30:30 + c * 30] for r in range(4) for c in range(4)])
    predicted = np.asarray(predict_probabilities(classifier, data.to_float(tiles))).argmax(-1)
    assert np.mean(predicted == data.FASHION_CLASSES.index("Sneaker")) >= 0.75


def test_interpolation_gives_frames_and_an_animated_gif(client):
    strip, gif = client.predict(service.INTERPOLATE_SEEDS, "Coat", 1, 2, 6, 1.0, api_name="/interpolate")
    assert Image.open(strip).size == (6 * 112, 112)
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 6 + 4  # there and back


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
    for kind, level, layer in ((service.GAUSSIAN, 0.2, None), (service.SALT_PEPPER, 0.1, None),
                               (service.MASK, 0.0, tmp_path / "mask.png")):
        slider, baseline, table, note = client.predict(_editor(example, layer), kind, level, 3, False, api_name="/denoise")
        psnr = {row[0]: row[1] for row in table["data"]}
        assert psnr["autoencoder"] > psnr["corrupted"] + 3, (kind, psnr)
        corrupted, restored = (np.asarray(Image.open(p)) for p in slider)
        assert corrupted.shape == restored.shape == (28, 28) or corrupted.shape[:2] == (28, 28)


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
        (lambda: client.predict(_editor(files["bomb.png"]), service.GAUSSIAN, 0.2, 0, False, api_name="/denoise"), "too large"),
        (lambda: client.predict("Sneaker", 0, 1000, 1.0, api_name="/generate"), "between 1 and 64|maximum value 64"),
        (lambda: client.predict("Sneaker", -3, 4, 1.0, api_name="/generate"), "Seed|minimum value 0"),
        (lambda: client.predict("Sneaker", 0, 4, 50.0, api_name="/generate"), "Truncation|maximum value 3"),
        (lambda: client.predict("Socks", 0, 4, 1.0, api_name="/generate"), "Class|Socks"),
        (lambda: client.predict(_editor(ASSETS / "example_0_t-shirt-top.png"), service.GAUSSIAN, 7.0, 0, False,
                                api_name="/denoise"), "Noise level|maximum value 0.5"),
    ]
    # Gradio checks slider and number ranges itself ("Value 1000 is greater than maximum value 64");
    # the service checks again for callers that bypass the components.
    for call, message in cases:
        with pytest.raises(Exception, match=f"(?i){message}"):
            call()
        assert _classify(client, ASSETS / "example_1_trouser.png") == "Trouser"  # still serving


def test_browser_generate_classify_denoise(server, tmp_path):
    """Open the page in headless chromium: each tab arrives with its pictures (the default grid and
    walk, a classified and a restored example); then click through the three tabs and see them change."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("IMGJAX_REQUIRE_DATA"):
            pytest.fail("Debian's chromium is not installed (apt install chromium)")
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(server)

        generated = page.locator("#generated img")
        generated.wait_for(timeout=30_000)  # no click: the default grid comes with the page
        assert generated.evaluate("img => img.complete && img.naturalWidth") == 488  # 4x4 grid, x4
        seed = page.get_by_label("Seed", exact=True)
        seed.fill("7")
        seed.press("Tab")
        arrival = generated.get_attribute("src")
        page.get_by_role("button", name="Generate", exact=True).click()
        page.wait_for_function("src => document.querySelector('#generated img').src !== src", arg=arrival,
                               timeout=30_000)
        assert generated.evaluate("img => img.complete && img.naturalWidth") == 488
        walk = page.locator("#frames img")
        walk.wait_for(timeout=30_000)  # the default walk comes with the page too
        arrival = walk.get_attribute("src")
        page.get_by_label("Second seed", exact=True).fill("5")
        page.get_by_label("Second seed", exact=True).press("Tab")
        page.get_by_role("button", name="Interpolate", exact=True).click()
        page.wait_for_function("src => document.querySelector('#frames img').src !== src", arg=arrival,
                               timeout=30_000)
        page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)

        page.get_by_role("tab", name="Classify").click()
        page.locator("#verdict", has_text="Ankle boot (").wait_for(timeout=30_000)  # the arrival example
        page.locator("#classify-examples button").nth(7).click()  # example_7_sneaker.png
        page.get_by_role("button", name="Classify", exact=True).click()
        page.locator("#verdict", has_text="Sneaker (").wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)

        page.get_by_role("tab", name="Denoise").click()
        page.locator("#scores", has_text="total variation").wait_for(timeout=30_000)  # Gaussian, on arrival
        page.locator("#denoise-examples button").nth(2).click()  # example_2_pullover.png
        page.get_by_label("Salt and pepper").check()
        page.get_by_role("button", name="Corrupt and restore").click()
        page.locator("#scores", has_text="median filter").wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "denoise.png"), full_page=True)
        for row in ("corrupted", "autoencoder"):
            assert row in page.locator("#scores").inner_text()
        browser.close()
