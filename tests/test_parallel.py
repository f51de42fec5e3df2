"""Data parallelism and mixed precision: 4 simulated CPU devices compute the same training as 1,
an uneven batch gets a clear error, and bfloat16 computes convolutions in bfloat16 on float32 weights.

The device count of a JAX process is fixed when it starts, so the multi-device checks run in a
subprocess started with ``--xla_force_host_platform_device_count=4``."""

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from imgjax.family import load_family
from imgjax.parallel import (
    DataParallel,
    DeviceCountError,
    configure_cpu_for_training,
    cpu_vendor,
    multi_host_environment,
    tuned_training_flags,
)
from imgjax.train import TrainConfig


def _four_device_env(count: int = 4):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}


# Trains each family for a few steps twice from the same seed and the same batches: once on a
# 1-device mesh, once on a 4-device mesh. Prints how far the two training states (parameters,
# optimizer moments, batch-norm statistics, the GAN's EMA weights) are apart, relative to how far
# training moved them. Measured: 6e-4 (cnn), 2e-6 (ae), 1.6e-3 (gan); not exactly 0 because the
# sums run in another order, and Adam magnifies that for weights whose true gradient is ~0 (a bias
# before batch norm): its first step moves every weight by the learning rate times the sign of its
# gradient, whatever the gradient's size. Per-device batch-norm statistics or unaveraged gradients
# give 1e-1 and more. The GAN takes one step, not three: its generator's gradients pass through four
# batch norms, whose backward passes subtract means, and the simultaneous two-player updates feed
# each difference back, so after three steps its float differences alone reached 1.5e-2 to 4.9e-2
# from one run to the next (1 step: 1.6e-3).
SAME_STEPS_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from flax import nnx
    from imgjax import checkpoint
    from imgjax.parallel import DataParallel
    from imgjax.family import load_family
    from imgjax.train import TrainConfig

    results = {"devices": jax.device_count()}
    rng = np.random.default_rng(0)
    for name in ("cnn", "ae", "gan"):
        family = load_family(name)
        batches = [(rng.random((16, 28, 28, 1), np.float32), rng.integers(0, 10, 16).astype(np.int32))
                   for _ in range(1 if name == "gan" else 3)]
        states, placements = [], []
        for devices in (1, 4):
            config = TrainConfig(name, 1, 16, family.defaults["learning_rate"], devices=devices)
            training = family.create(family.model_config, config, 100)
            initial = checkpoint.state_arrays(training)
            parallel = DataParallel(devices)
            parallel.place(training)
            for step, (images, labels) in enumerate(batches):
                images, labels = parallel.shard(images, labels)
                family.train_step(training, images, labels, jax.random.key(step))
            leaves = jax.tree.leaves(nnx.state(training))
            placements.append({"batch": len(images.sharding.device_set),
                               "params": min(len(p.sharding.device_set) for p in leaves),
                               "split": sum(not p.sharding.is_fully_replicated for p in leaves)})
            states.append(checkpoint.state_arrays(training))
        one, four = states
        assert one.keys() == four.keys()
        floats = [k for k in one if one[k].dtype.kind == "f"]
        norm = lambda arrays: float(np.sqrt(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays)))
        moved = norm(one[k] - initial[k] for k in floats)
        difference = norm(one[k] - four[k] for k in floats)
        results[name] = {"relative_difference": difference / moved, "moved": moved, "placements": placements}
    print(json.dumps(results))
""")


@pytest.mark.slow
def test_four_devices_train_the_same_as_one():
    run = subprocess.run([sys.executable, "-c", SAME_STEPS_SCRIPT], env=_four_device_env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results["devices"] == 4
    for name in ("cnn", "ae", "gan"):
        row = results[name]
        one_device, four_devices = row["placements"]
        assert one_device == {"batch": 1, "params": 1, "split": 0}
        assert four_devices["batch"] == 4 and four_devices["params"] == 4, "the batch and the state must be on 4 devices"
        if name == "cnn":  # its 1.6M-weight hidden layer and that layer's Adam moments
            assert four_devices["split"] == 3, "the large weights and their optimizer moments are split across devices"
        assert row["moved"] > 1e-3, f"{name}: the steps did not change the weights, so the comparison says nothing"
        assert row["relative_difference"] < 5e-3, f"{name}: 4 devices diverged from 1: {row}"


def test_uneven_batch_gets_a_clear_error_from_the_command(tiny_dataset, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "imgjax.cli", "train", "ae", "--epochs", "1", "--batch-size", "30", "--devices", "4",
         "--dataset", "mnist", "--data-dir", str(tiny_dataset), "--held-out", "64", "--out", str(tmp_path / "run")],
        env=_four_device_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "--batch-size 30 does not split evenly over 4 devices" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "state.safetensors").exists()


def test_default_device_count_gives_each_cpu_device_at_least_32_images():
    code = ("import json; from imgjax.parallel import default_device_count as d; "
            "print(json.dumps({b: d(b) for b in (30, 64, 96, 128, 256, 1024)}))")
    run = subprocess.run([sys.executable, "-c", code], env=_four_device_env(8), capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    # 8 devices: the most that split the batch evenly with >= 32 images each, at least one
    assert json.loads(run.stdout) == {"30": 1, "64": 2, "96": 3, "128": 4, "256": 8, "1024": 8}


def test_device_count_checks():
    parallel = DataParallel(1)
    parallel.check_batch_size(30)  # one device takes any batch
    with pytest.raises(DeviceCountError, match=f"--devices {jax.device_count() + 1}: this machine has"):
        DataParallel(jax.device_count() + 1)
    with pytest.raises(DeviceCountError, match="--devices 0"):
        DataParallel(0)


def test_cpu_training_flags_respect_a_users_choice(monkeypatch):
    import imgjax.parallel
    ynn = "--xla_cpu_experimental_ynn_fusion_type"
    monkeypatch.setitem(imgjax.parallel.TRAINING_XLA_FLAGS, version("jaxlib"), {"default": [f"{ynn}=-individual_convolution"]})
    monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count=3 {ynn}=")
    configure_cpu_for_training(8, family="cnn")
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=3", f"{ynn}="]
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    configure_cpu_for_training(8, family="cnn")
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_enable_fast_math=false",
                                               "--xla_force_host_platform_device_count=16",  # 2 per core
                                               f"{ynn}=-individual_convolution"]
    # without a family (the bench's parent process: its workers set their own) only the devices
    monkeypatch.delenv("XLA_FLAGS")
    configure_cpu_for_training(2)
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4"]
    # a jaxlib the flags were not measured with gets none of them: XLA aborts on unknown flags
    monkeypatch.delitem(imgjax.parallel.TRAINING_XLA_FLAGS, version("jaxlib"))
    monkeypatch.delenv("XLA_FLAGS")
    configure_cpu_for_training(2, family="cnn")
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=4"]


def test_training_flags_follow_the_processor_and_family(monkeypatch):
    import imgjax.parallel
    monkeypatch.setitem(imgjax.parallel.TRAINING_XLA_FLAGS, version("jaxlib"),
                        {"default": ["--a=1"], ("GenuineIntel", "cnn"): [], ("GenuineIntel", "gan"): ["--b=2"]})
    assert tuned_training_flags("cnn", "GenuineIntel") == []
    assert tuned_training_flags("gan", "GenuineIntel") == ["--b=2"]
    assert tuned_training_flags("ae", "GenuineIntel") == ["--a=1"]
    assert tuned_training_flags("cnn", "AuthenticAMD") == ["--a=1"]
    assert tuned_training_flags(None, "AuthenticAMD") == []
    assert cpu_vendor() in ("GenuineIntel", "AuthenticAMD", "")  # read from /proc/cpuinfo, as XLA sees it


def test_training_flags_are_known_to_the_pinned_jaxlib():
    """Every tuned flag parses: XLA refuses to start on a flag it does not know."""
    from imgjax.parallel import TRAINING_XLA_FLAGS
    if version("jaxlib") not in TRAINING_XLA_FLAGS:  # a GPU image's jaxlib, say: it is given no flags
        pytest.skip(f"the flags are tuned for jaxlib {', '.join(TRAINING_XLA_FLAGS)}, not {version('jaxlib')}")
    flags = " ".join(sorted({flag for tuned in TRAINING_XLA_FLAGS[version("jaxlib")].values() for flag in tuned}))
    run = subprocess.run([sys.executable, "-c", "import jax; print(jax.numpy.ones(2).sum())"],
                         env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags},
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "2.0", run.stderr[-2000:]


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"SLURM_NTASKS": "1"}, False),
    ({"SLURM_NTASKS": "8"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, False),  # a single-host TPU VM
    ({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3"}, True),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.2:1234"}, True),
])
def test_multi_host_jobs_are_recognised(environ, expected):
    assert multi_host_environment(environ) is expected


@pytest.mark.parametrize("name", ["cnn", "ae", "gan"])
def test_bfloat16_computes_convolutions_in_bfloat16_on_float32_weights(name):
    family = load_family(name)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((8, 28, 28, 1), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 8).astype(np.int32))
    losses = {}
    for precision in ("float32", "bfloat16"):
        training = family.create(family.model_config, TrainConfig(name, 1, 8, 1e-3, precision=precision), 100)
        step_text = str(jax.make_jaxpr(lambda t, x, y: family.train_step(t, x, y, jax.random.key(0)))(
            training, images, labels))
        convolutions = [line for line in step_text.splitlines() if "conv_general_dilated" in line]
        assert convolutions
        in_bf16 = [line for line in convolutions if "bf16" in line.split("conv_general_dilated")[0]]
        assert bool(in_bf16) == (precision == "bfloat16")
        metrics = family.train_step(training, images, labels, jax.random.key(0))
        assert {str(p.dtype) for p in jax.tree.leaves(nnx.state(training, nnx.Param))} == {"float32"}
        losses[precision] = {k: float(v) for k, v in metrics.items() if "loss" in k}
    for key, value in losses["float32"].items():
        assert np.isfinite(losses["bfloat16"][key])
        assert losses["bfloat16"][key] == pytest.approx(value, rel=0.1), key


@pytest.mark.slow
def test_train_command_with_bf16_on_four_devices(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "imgjax.cli", "train", "ae", "--epochs", "1", "--batch-size", "32", "--precision", "bf16",
         "--devices", "4", "--dataset", "mnist", "--data-dir", str(tiny_dataset), "--held-out", "64", "--out", str(out)],
        env=_four_device_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    card = json.loads((out / "ae.json").read_text())
    assert card["train_config"]["precision"] == "bfloat16" and card["device"].startswith("4 x ")
    assert "data-parallel on 4 cpu device(s), 8 images per device per step, bfloat16" in run.stdout + run.stderr
    assert np.isfinite(card["train_metrics"]["psnr_gaussian_0.2"])
