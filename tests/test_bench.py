"""`imgjax bench --workload smoke --json` runs end to end and reports every figure (speed targets themselves
live in the bench's output and the README, never in tests)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_smoke_json_reports_every_field():
    result = subprocess.run([sys.executable, "-m", "imgjax.cli", "bench", "--workload", "smoke", "--json", "--only", "training",
                             "--only", "inference", "--only", "cold_start"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["workload"] == "smoke" and figures["machine"]["jax"] and figures["machine"]["torch"]
    processor = figures["machine"]["processor"]
    assert processor["model"] and processor["cores"] >= 1 and "avx2" in processor["vector_extensions"]  # x86-64 CI
    training = figures["training"]
    assert _positive(training["peak_flops"]) and "FLOP/cycle" in training["peak_derivation"]
    # a bfloat16 comparison beside float32 exactly where the processor has AMX
    assert ("bfloat16" in training) == ("amx_bf16" in processor["vector_extensions"])
    rows = [(training[family], "float32") for family in ("cnn", "ae", "gan")]
    rows += [(training["bfloat16"][family], "bfloat16") for family in ("cnn", "ae", "gan") if "bfloat16" in training]
    for row, precision in rows:
        assert row["precision"] == precision
        for field in ("batch_size", "jax_images_per_s", "torch_images_per_s", "jax_over_torch", "flops_per_step",
                      "achieved_flops", "fraction_of_peak", "torch_tuned_malloc_images_per_s",
                      "jax_over_torch_tuned_malloc"):
            assert _positive(row[field]), (precision, field, row[field])
        assert row["fraction_of_peak"] < 1.0 or precision == "bfloat16"  # AMX's bfloat16 peak is far above float32's
        assert math.isclose(row["jax_over_torch"], row["jax_images_per_s"] / row["torch_images_per_s"])
        assert math.isclose(row["jax_over_torch_tuned_malloc"],
                            row["jax_images_per_s"] / row["torch_tuned_malloc_images_per_s"])
    for action in ("generate_1", "generate_16", "generate_16_emoji", "generate_64", "interpolate_10", "classify_28x28",
                   "classify_emoji_64x64",
                   "classify_256x256_photo", "denoise_gaussian_28x28", "denoise_salt_pepper_28x28",
                   "denoise_mask_28x28", "denoise_gaussian_256x256_colour", "photo_model_512x512_colour",
                   "denoise_gaussian_512x512_colour", "bm3d_256x256_colour", "edit_project", "edit_render",
                   "edit_classes_row", "edit_sketch", "edit_project_emoji", "edit_render_emoji", "edit_sketch_emoji"):
        latency = figures["inference"][action]
        assert _positive(latency["p50_ms"]) and latency["p99_ms"] >= latency["p50_ms"]
        assert latency["compile_s"] >= 0
    for start in ("first_start_s", "second_start_s", "first_edit_ready_s", "second_edit_ready_s", "first_all_ready_s",
                  "second_all_ready_s"):
        assert _positive(figures["cold_start"][start])
    for click in ("click_generate_16", "click_classify", "click_denoise", "click_edit_render", "click_edit_classes",
                  "browser_new_seed_generate_16"):
        latency = figures["cold_start"][click]
        assert _positive(latency["p50_ms"]) and latency["p99_ms"] >= latency["p50_ms"]
    assert training["jax_devices_available"] >= 1
    assert training["processes"] == "one per framework"  # on the CPU (CI has no GPU)
    assert all(training[f]["jax_pid"] != training[f]["torch_pid"] for f in ("cnn", "ae", "gan"))
    assert all(1 <= training[f]["jax_devices"] <= training["jax_devices_available"] for f in ("cnn", "ae", "gan"))


def test_jax_and_pytorch_windows_take_turns():
    from imgjax.bench import _median_rates, in_process
    calls, waited = [], []
    side = lambda name: in_process(lambda: calls.append(name) or name, waited.append)
    rates = _median_rates([side("jax"), side("torch")], items=8, windows=3, steps_per_window=2, warmup=1)
    assert calls == ["jax", "torch"] + ["jax"] * 2 + ["torch"] * 4 + ["jax"] * 4 + ["torch"] * 2
    assert waited == ["jax", "torch", "jax", "torch", "torch", "jax", "jax", "torch"]  # once per window
    assert len(rates) == 2 and all(_positive(rate) for rate in rates)


@pytest.mark.slow
def test_each_framework_trains_in_a_process_of_its_own_on_the_cpu():
    # Sharing a process, each framework inherits the other's allocator state (PyTorch's autoencoder
    # step ran 15-20% faster beside JAX's than alone): the bench times each in its own process, as
    # its users run it, the windows still taking turns.
    pytest.importorskip("torch")
    import os

    from imgjax.bench import TrainingWorker, _median_rates
    from imgjax.parallel import tuned_training_flags
    workers = [TrainingWorker("jax", "ae"), TrainingWorker("torch", "ae")]
    try:
        jax_info, torch_info = (worker.info for worker in workers)
        assert len({os.getpid(), jax_info["pid"], torch_info["pid"]}) == 3
        assert jax_info["jax_started"] and not torch_info["jax_started"]
        assert jax_info["batch"] == torch_info["batch"] == 128 and jax_info["flops"] > 1e9
        # the JAX worker trains with the XLA flags `imgjax train ae` would use on this processor
        assert set(tuned_training_flags("ae")) <= set(jax_info["xla_flags"].split())
        rates = _median_rates(workers, items=128, windows=1, steps_per_window=1, warmup=1)
        assert all(_positive(rate) for rate in rates)
    finally:
        for worker in workers:
            worker.close()
    assert all(worker.process.poll() == 0 for worker in workers)  # both ended cleanly


def test_pytorch_mirrors_have_the_same_parameters_as_the_jax_models():
    """Same architecture on both sides of the speed comparison: the same parameter count per model."""
    import jax
    import numpy as np
    from flax import nnx
    torch_reference = pytest.importorskip("imgjax.torch_reference")
    from imgjax import ae, cnn, gan

    def jax_count(*models):
        return sum(int(np.prod(x.shape)) for m in models for x in jax.tree.leaves(nnx.state(m, nnx.Param)))

    def torch_count(*models):
        return sum(p.numel() for m in models for p in m.parameters())

    rngs = nnx.Rngs(0)
    assert jax_count(cnn.Classifier(cnn.CNNConfig(), rngs=rngs)) == torch_count(torch_reference.Classifier())
    assert (jax_count(ae.DenoisingAutoencoder(ae.AEConfig(), rngs=rngs))
            == torch_count(torch_reference.DenoisingAutoencoder()))
    for config in (gan.GANConfig(), gan.GANConfig(minibatch_std_by_class=False, minibatch_std_group=4),
                   gan.GANConfig(minibatch_std_group=0)):
        assert (jax_count(gan.Generator(config, rngs=rngs), gan.Discriminator(config, rngs=rngs))
                == torch_count(torch_reference.Generator(config), torch_reference.Discriminator(config)))


def test_pytorch_mirror_measures_the_same_class_spread_as_the_jax_discriminator():
    import jax.numpy as jnp
    import numpy as np
    torch = pytest.importorskip("torch")
    torch_reference = pytest.importorskip("imgjax.torch_reference")
    from imgjax import gan
    rng = np.random.default_rng(0)
    h, labels = rng.normal(size=(64, 7, 7, 16)).astype(np.float32), rng.integers(0, 10, 64)
    expected = np.asarray(gan.append_class_std(jnp.asarray(h), jnp.asarray(labels), 32, 10))
    mirrored = torch_reference.append_class_std(torch.from_numpy(h).permute(0, 3, 1, 2), torch.from_numpy(labels),
                                                32, 10)
    assert float(np.ptp(expected[..., -1])) > 0.1  # the spreads differ between classes and groups
    np.testing.assert_allclose(mirrored.permute(0, 2, 3, 1).numpy(), expected, rtol=1e-5, atol=1e-6)


# The schedulers are stepped without optimizer steps here, which PyTorch warns about.
@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
@pytest.mark.parametrize("decay_fraction, decay_shape", [(0.5, "linear"), (0.5, "cosine"), (1.0, "cosine")])
def test_gan_learning_rate_schedule_is_the_same_on_both_sides(decay_fraction, decay_shape):
    """Constant, then down to 0 along a line or a half cosine over the last ``decay_fraction``, in JAX
    and in the PyTorch mirror."""
    import dataclasses

    import numpy as np
    torch_reference = pytest.importorskip("imgjax.torch_reference")
    from imgjax import gan
    total, hold = 400, int(400 * (1 - decay_fraction))
    schedule = gan.learning_rate_schedule(2e-4, total, decay_fraction, decay_shape)
    jax_rates = np.array([float(schedule(step)) for step in range(total + 1)])
    assert np.allclose(jax_rates[:hold + 1], 2e-4, rtol=1e-6)
    assert jax_rates[(hold + total) // 2] == pytest.approx(1e-4, rel=1e-3)  # half way down
    quarter = jax_rates[hold + (total - hold) // 4]  # a quarter of the way: the line is lower
    assert quarter == pytest.approx(1.5e-4 if decay_shape == "linear" else 2e-4 * (1 + np.cos(np.pi / 4)) / 2, rel=1e-3)
    assert jax_rates[total] == pytest.approx(0.0, abs=1e-12) and np.all(np.diff(jax_rates) <= 0)
    config = dataclasses.replace(gan.GANConfig(), decay_fraction=decay_fraction, decay_shape=decay_shape)
    step = torch_reference.GANStep(2e-4, config, total_steps=total)
    torch_rates = []
    for _ in range(total + 1):
        torch_rates.append(step.g_optimizer.param_groups[0]["lr"])
        for scheduler in step.schedules:
            scheduler.step()
    np.testing.assert_allclose(torch_rates, jax_rates, rtol=1e-4, atol=1e-10)  # JAX computes in float32


def test_train_step_flops_are_the_models_forward_and_backward_arithmetic():
    """The FLOP count is the step's arithmetic whatever the device (a GPU's compiled count leaves
    cuDNN's convolutions out): about 3x the forward convolutions (forward, input and weight
    gradients), a little less because XLA does not count the taps that fall on 'SAME' padding."""
    from imgjax import ae
    from imgjax.bench import jax_train_step
    config = ae.AEConfig()
    half, quarter = config.widths
    n_half, n_quarter, n_decode = config.depths
    conv = lambda pixels, cin, cout, k=3: 2 * pixels * cin * cout * k * k  # multiply-adds x 2
    forward = (conv(196, 4, half) + (n_half - 1 + n_decode) * conv(196, half, half) + conv(196, half, 4)
               + conv(49, half, quarter) + (n_quarter - 1) * conv(49, quarter, quarter) + conv(49, quarter, 4 * half, k=1))
    step = jax_train_step("ae")
    ratio = step["flops"] / step["batch"] / forward
    assert 2.4 < ratio < 3.2, ratio
