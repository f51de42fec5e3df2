"""`imgjax bench --quick --json` runs end to end and reports every figure (speed targets themselves
live in the bench's output and the README, never in tests)."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_bench_quick_json_reports_every_field():
    result = subprocess.run([sys.executable, "-m", "imgjax.cli", "bench", "--quick", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["quick"] is True and figures["machine"]["jax"] and figures["machine"]["torch"]
    training = figures["training"]
    assert _positive(training["peak_flops"]) and "FLOP/cycle" in training["peak_derivation"]
    for family in ("cnn", "ae", "gan"):
        row = training[family]
        for field in ("batch_size", "jax_images_per_s", "torch_images_per_s", "jax_over_torch", "flops_per_step",
                      "achieved_flops", "fraction_of_peak"):
            assert _positive(row[field]), (family, field, row[field])
        assert row["fraction_of_peak"] < 1.0
        assert math.isclose(row["jax_over_torch"], row["jax_images_per_s"] / row["torch_images_per_s"])
    for action in ("generate_1", "generate_16", "generate_64", "interpolate_10", "classify_28x28",
                   "classify_256x256_photo", "denoise_gaussian_28x28", "denoise_salt_pepper_28x28",
                   "denoise_mask_28x28", "denoise_gaussian_256x256_colour"):
        latency = figures["inference"][action]
        assert _positive(latency["p50_ms"]) and latency["p99_ms"] >= latency["p50_ms"]
        assert latency["compile_s"] >= 0
    assert _positive(figures["cold_start"]["first_start_s"]) and _positive(figures["cold_start"]["second_start_s"])
    for click in ("click_generate_16", "click_classify", "click_denoise", "browser_click_generate_16"):
        latency = figures["cold_start"][click]
        assert _positive(latency["p50_ms"]) and latency["p99_ms"] >= latency["p50_ms"]
    assert training["jax_data_parallel_devices"] >= 1
