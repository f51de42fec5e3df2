"""``imgjax bench``: speed, measured side by side in one run on this machine.

* Training throughput (images/s, the median of timed windows after warm-up) of each family's real
  jit-compiled train step, and of the PyTorch mirror of the same architecture, loss, optimizer and
  batch size (``imgjax/torch_reference.py``; needs the ``bench`` extra), with the ratio JAX / PyTorch.
* Achieved FLOP/s of each JAX train step (FLOPs counted by XLA's cost analysis of the compiled step)
  as a fraction of the machine's peak, with the peak's derivation.
* Inference latency (p50 / p99) of every function the studio serves, in-process, at batch 1 and at
  the batch sizes the page uses, and the compile time of each (first call minus a warm call).
* Cold start: ``python app.py`` from process start to answering HTTP, with an empty persistent
  compilation cache and again with the cache it filled; then the round trip of a click on that
  running app through ``gradio_client`` (queue, HTTP, uploads and downloads included).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _median_rate(step, items: int, windows: int, steps_per_window: int, warmup: int = 2) -> float:
    """Items per second: the median over ``windows`` timed windows of ``steps_per_window`` calls."""
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps_per_window):
            step()
        rates.append(items * steps_per_window / (time.perf_counter() - start))
    return float(np.median(rates))


# ----------------------------------------------------------------------------- training

def jax_train_step(name: str):
    """(step callable that blocks until done, batch size, FLOPs per step) for a family's real step,
    data-parallel over every device exactly as ``imgjax train`` runs it."""
    import jax
    from .parallel import DataParallel
    from .train import TrainConfig, load_family
    family = load_family(name)
    batch = family.defaults["batch_size"]
    training = family.create(family.model_config, TrainConfig(name, **family.defaults), 10_000)
    parallel = DataParallel()
    parallel.replicate(training)
    rng = np.random.default_rng(0)
    images, labels = parallel.shard(rng.random((batch, 28, 28, 1), np.float32),
                                    rng.integers(0, 10, batch).astype(np.int32))
    key = jax.random.key(0)

    # FLOPs from XLA's cost analysis of the lowered step (nnx.jit's own lowering: re-wrapping the
    # step in jax.jit under-counts it, the nested call's backward pass being left out).
    lowered = family.train_step.lower(training, images, labels, key)
    cost = lowered.cost_analysis() or lowered.compile().cost_analysis()  # GPUs count only once compiled
    flops = float(cost.get("flops", 0.0)) if cost else 0.0

    def step():
        jax.block_until_ready(family.train_step(training, images, labels, key))
    return step, batch, flops


def torch_train_step(name: str):
    """The PyTorch mirror's step, on the GPU when JAX is on one (so both sides use the same chip)."""
    import jax
    import torch
    from . import torch_reference
    from .train import load_family
    batch = load_family(name).defaults["batch_size"]
    on_gpu = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    torch.set_default_device("cuda" if on_gpu else "cpu")
    torch.manual_seed(0)
    step_state = torch_reference.STEPS[name]()
    images, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step():
        step_state(images, labels)
        if on_gpu:
            torch.cuda.synchronize()
    return step, batch


# float32 peaks (no tensor cores) from the vendors' datasheets, for the accelerators we have run on.
ACCELERATOR_PEAKS = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12, "L4": 30.3e12}


def peak_flops() -> tuple[float, str]:
    """Single-precision peak of this CPU: cores x clock x FLOPs per cycle per core (two FMA units of
    8 (AVX2) or 16 (AVX-512) float32 lanes, 2 FLOPs each), with the derivation as text."""
    cores = os.cpu_count() or 1
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", info)]
    ghz = max(mhz) / 1000 if mhz else 2.0
    flags = set(re.findall(r"flags\s*:\s*(.*)", info)[0].split()) if "flags" in info else set()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = 2 * 2 * lanes  # 2 FMA units x 2 FLOPs x lanes
    peak = cores * ghz * 1e9 * per_cycle
    model = re.findall(r"model name\s*:\s*(.*)", info)
    text = (f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle (2 FMA units x {lanes} float32 lanes "
            f"x 2) = {peak / 1e9:.0f} GFLOP/s ({model[0] if model else platform.processor()})")
    return peak, text


def device_peak_flops() -> tuple[float, str]:
    """The float32 peak of the device JAX trains on: a CPU's from its clock and vector width, a
    GPU's from the datasheet table above (0 where unknown)."""
    import jax
    device = jax.devices()[0]
    if device.platform == "cpu":
        return peak_flops()
    for name, peak in ACCELERATOR_PEAKS.items():
        if name in device.device_kind:
            return peak, f"{device.device_kind}: {peak / 1e12:.1f} TFLOP/s float32 (datasheet, no tensor cores)"
    return 0.0, f"{device.device_kind}: peak unknown"


def bench_training(quick: bool, log) -> dict:
    windows, per_window = (3, 2) if quick else (7, 5)
    peak, derivation = device_peak_flops()
    import jax
    results = {"peak_flops": peak, "peak_derivation": derivation,
               "jax_data_parallel_devices": jax.device_count()}
    for name in ("cnn", "ae", "gan"):
        step, batch, flops = jax_train_step(name)
        jax_rate = _median_rate(step, batch, windows, per_window)
        row = {"batch_size": batch, "jax_images_per_s": jax_rate, "flops_per_step": flops,
               "achieved_flops": flops * jax_rate / batch,
               "fraction_of_peak": flops * jax_rate / batch / peak if peak else None}
        try:
            torch_step, _ = torch_train_step(name)
            row["torch_images_per_s"] = _median_rate(torch_step, batch, windows, per_window)
            row["jax_over_torch"] = jax_rate / row["torch_images_per_s"]
        except ImportError as error:
            row["torch_images_per_s"] = row["jax_over_torch"] = None
            row["torch_missing"] = f"{error} (pip install -e '.[bench]')"
        results[name] = row
        log(f"train {name}: JAX {jax_rate:.0f} img/s, PyTorch "
            f"{row['torch_images_per_s'] or float('nan'):.0f} img/s, ratio {row['jax_over_torch'] or float('nan'):.2f}, "
            f"{row['achieved_flops'] / 1e9:.1f} GFLOP/s = {row['fraction_of_peak'] or 0:.1%} of peak")
    return results


# ----------------------------------------------------------------------------- serving

def bench_inference(quick: bool, log) -> dict:
    """p50 / p99 latency of the studio's actions, and each one's compile time (first call minus a
    warm one) in this process, with the persistent compilation cache off."""
    from . import service
    calls = 20 if quick else 200
    studio = service.Studio()
    example = service.read_image(ROOT / "imgjax" / "assets" / "example_7_sneaker.png")
    mask = np.zeros((28, 28), np.float32)
    mask[8:18, 8:18] = 1
    photo = np.random.default_rng(0).random((256, 256, 3)).astype(np.float32)
    actions = {
        "generate_1": lambda: studio.generate("Sneaker", 0, 1, 1.0),
        "generate_16": lambda: studio.generate("Sneaker", 0, 16, 1.0),
        "generate_64": lambda: studio.generate("Sneaker", 0, 64, 1.0),
        "interpolate_10": lambda: studio.interpolate(service.INTERPOLATE_SEEDS, "Coat", 0, 1, 10, 1.0),
        "classify_28x28": lambda: studio.classify(example),
        "classify_256x256_photo": lambda: studio.classify(photo),
        "denoise_gaussian_28x28": lambda: studio.denoise(example, service.GAUSSIAN, 0.2, 0),
        "denoise_salt_pepper_28x28": lambda: studio.denoise(example, service.SALT_PEPPER, 0.1, 0),
        "denoise_mask_28x28": lambda: studio.denoise(example, service.MASK, 0.0, 0, mask=mask),
        "denoise_gaussian_256x256_colour": lambda: studio.denoise(photo, service.GAUSSIAN, 0.2, 0),
    }
    results = {}
    for name, action in actions.items():
        start = time.perf_counter()
        action()
        first = time.perf_counter() - start
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        results[name] = {"p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99, "compile_s": max(first - p50, 0.0), "calls": calls}
        log(f"{name}: p50 {1e3 * p50:.1f} ms, p99 {1e3 * p99:.1f} ms, compile {max(first - p50, 0.0):.2f} s")
    return results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(cache: Path):
    """Start ``python app.py``; yields (seconds from process start to its first HTTP answer, port)."""
    port = _free_port()
    env = {**os.environ, "IMGJAX_XLA_CACHE": str(cache), "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                if time.perf_counter() - start > 300:
                    raise RuntimeError("app.py did not answer within 300 s") from None
                time.sleep(0.05)
        yield time.perf_counter() - start, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_clicks(port: int, calls: int, log) -> dict:
    """Round trip of a click as a client sees it: a ``gradio_client`` call through the app's queue,
    over HTTP on localhost, uploads and result downloads included (the browser does the same work)."""
    from gradio_client import Client, handle_file
    from . import service
    example = str(ROOT / "imgjax" / "assets" / "example_7_sneaker.png")
    editor = lambda: {"background": handle_file(example), "layers": [], "composite": None}
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    clicks = {
        "click_generate_16": lambda: client.predict("Sneaker", 0, 16, 1.0, api_name="/generate"),
        "click_classify": lambda: client.predict(handle_file(example), api_name="/classify"),
        "click_denoise": lambda: client.predict(editor(), service.GAUSSIAN, 0.2, 0, False, api_name="/denoise"),
    }
    results = {}
    for name, click in clicks.items():
        click()  # the first call opens the event stream
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            click()
            times.append(time.perf_counter() - start)
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        results[name] = {"p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99, "calls": calls}
        log(f"{name}: p50 {1e3 * p50:.1f} ms, p99 {1e3 * p99:.1f} ms (HTTP round trip)")
    return results


def bench_cold_start(quick: bool, log) -> dict:
    """Cold start with an empty persistent compilation cache and again with the cache it filled;
    the second, warm app then answers timed clicks."""
    cache = Path(tempfile.mkdtemp(prefix="imgjax-bench-xla-"))
    try:
        with running_app(cache) as (first, _):
            pass
        with running_app(cache) as (second, port):
            log(f"cold start: {first:.1f} s with an empty compilation cache, {second:.1f} s with it filled")
            clicks = bench_clicks(port, 10 if quick else 50, log)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {"first_start_s": first, "second_start_s": second, **clicks}


# ----------------------------------------------------------------------------- the command

def machine() -> dict:
    import jax
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for name in ("flax", "optax", "torch", "gradio"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"cpu": peak_flops()[1], "devices": [str(d) for d in jax.devices()], **versions}


def run_bench(quick: bool = False, log=print) -> dict:
    results = {"machine": machine(), "quick": quick}
    log(f"machine: {json.dumps(results['machine'])}")
    sections = {"training": lambda: bench_training(quick, log), "inference": lambda: bench_inference(quick, log),
                "cold_start": lambda: bench_cold_start(quick, log)}
    for name, section in sections.items():
        try:
            results[name] = section()
        except Exception as error:  # one missing piece (say, no gradio on a bare GPU box) keeps the rest
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            log(f"{name}: failed: {results[name]['error']}")
    return results
