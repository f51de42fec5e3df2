"""Data parallelism on JAX's own engine: one mesh over the devices, each batch split along it.

The training loop calls the same ``nnx.jit`` train step whatever the device count. Each batch is
sharded along the mesh's ``data`` axis (``NamedSharding``); small parameters are replicated on every
device and large ones, with their optimizer moments, split across the devices (``DataParallel.place``);
XLA's SPMD partitioner then inserts the collectives (gradient reductions, weight gathers and the
cross-device batch-norm statistics), so 1, 4 or 256 devices compute the same update for the same
global batch. On one device the shardings are trivial and cost nothing measurable.

On a CPU, JAX shows one device for the whole machine by default. ``configure_cpu_for_training`` (called by
the ``imgjax train`` and ``imgjax bench`` commands before JAX is imported) asks XLA for two host
devices per core instead, and ``default_device_count`` gives each at least 32 images of the batch:
with the batch split across them every core works on every step (docs/devices.md has the figures).
"""

from __future__ import annotations

import os
from pathlib import Path

# JAX is imported inside the functions: the command line imports this module to set XLA's flags,
# which only take effect if JAX has not started yet.

DATA_AXIS = "data"
# Arrays of at least this many elements are split across the devices, smaller ones replicated:
# splitting saves each device most of an array's optimizer update, but its weights must then be
# gathered for every forward pass, which costs more for small arrays (docs/devices.md).
SHARD_MIN_SIZE = 1 << 20


class DeviceCountError(ValueError):
    """``--devices`` or ``--batch-size`` do not fit the devices there are."""

# Variables whose presence means this process is one of several in a multi-host job; with any of
# them set, ``jax.distributed.initialize()`` finds the coordinator and process ids by itself
# (explicit JAX variables, Slurm, Open MPI, or a multi-host Cloud TPU slice).
_MULTI_HOST_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


# XLA:CPU flags for training, by the jaxlib version they were measured with (XLA aborts on a flag
# it does not know, so other versions get none), then by (processor vendor, family), "default" for
# the rest. jaxlib 0.10.2 sends every convolution to YNNPACK: slower than XLA's own convolutions for
# every family on AMD EPYC and for the GAN and photo denoiser on Intel Xeon, faster for the
# classifier and the autoencoder on Intel Xeon (docs/speed.md).
YNN_CONVOLUTIONS_OFF = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
TRAINING_XLA_FLAGS = {"0.10.2": {"default": [YNN_CONVOLUTIONS_OFF],
                                 ("GenuineIntel", "cnn"): [], ("GenuineIntel", "ae"): []}}


# XLA:CPU devices per core, and the fewest images one device should get. Two devices per core keep
# a core busy while the other device on it waits (for the gradient all-reduce, for instance), but a
# device with fewer than 32 images runs its small convolutions inefficiently (docs/devices.md).
DEVICES_PER_CORE = 2
MIN_IMAGES_PER_CPU_DEVICE = 32


def cpu_vendor() -> str:
    """This processor's vendor as /proc/cpuinfo names it ("GenuineIntel", "AuthenticAMD"), or ""."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def tuned_training_flags(family: str | None, vendor: str | None = None) -> list[str]:
    """``TRAINING_XLA_FLAGS`` for the installed jaxlib, this processor (or ``vendor``) and ``family``;
    none without a family (they were measured per family) or on a jaxlib they were not measured with."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        by_host = TRAINING_XLA_FLAGS.get(version("jaxlib")) if family else None
    except PackageNotFoundError:
        by_host = None
    if not by_host:
        return []
    return list(by_host.get((vendor if vendor is not None else cpu_vendor(), family), by_host["default"]))


def configure_cpu_for_training(cores: int | None = None, family: str | None = None) -> None:
    """Before JAX starts (it has no effect after): ``DEVICES_PER_CORE`` XLA:CPU devices per core,
    and ``family``'s flags from ``tuned_training_flags``; a choice already in XLA_FLAGS wins.
    Neither affects GPUs or TPUs."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if not any("xla_force_host_platform_device_count" in flag for flag in flags):
        count = DEVICES_PER_CORE * (cores or len(os.sched_getaffinity(0)))
        flags.append(f"--xla_force_host_platform_device_count={count}")
    tuned = tuned_training_flags(family)
    flags += [flag for flag in tuned if not any(f.startswith(flag.split("=")[0]) for f in flags)]
    os.environ["XLA_FLAGS"] = " ".join(flags)


def default_device_count(batch_size: int) -> int:
    """Devices to train on when ``--devices`` is not given: every GPU or TPU (and every device of a
    multi-host job); on a CPU, the most devices that split the batch evenly with at least
    ``MIN_IMAGES_PER_CPU_DEVICE`` images each."""
    import jax
    available = jax.device_count()
    if jax.devices()[0].platform != "cpu" or jax.process_count() > 1:
        return available
    fitting = [n for n in range(1, available + 1)
               if batch_size % n == 0 and batch_size // n >= MIN_IMAGES_PER_CPU_DEVICE]
    return max(fitting, default=1)


def initialize_distributed() -> bool:
    """Join a multi-host job when the environment describes one. Returns whether it did."""
    import jax
    if multi_host_environment(os.environ) and not jax.distributed.is_initialized():
        jax.distributed.initialize()
        return True
    return False


def multi_host_environment(environ) -> bool:
    """Whether these environment variables describe one process of several."""
    for name in _MULTI_HOST_VARIABLES:
        value = environ.get(name)
        if not value:
            continue
        if name == "TPU_WORKER_HOSTNAMES":
            if "," in value:  # a single-host TPU VM lists only itself
                return True
        elif name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
            if value.isdigit() and int(value) > 1:
                return True
        else:
            return True
    return False


def describe_devices(count: int) -> str:
    """'2 x AMD EPYC 7763 (cpu)' or '8 x NVIDIA H100 80GB HBM3': what a run trained on."""
    import jax
    device = jax.devices()[0]
    kind = device.device_kind
    if device.platform == "cpu":
        try:
            models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
            kind = f"{models[0]} (cpu)" if models else kind
        except OSError:
            pass
    return f"{count} x {kind}"


class DataParallel:
    """A one-axis mesh over ``devices`` devices (default: all of them, on every host)."""

    def __init__(self, devices: int | None = None):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        available = jax.devices()
        count = len(available) if devices is None else devices
        if not 1 <= count <= len(available):
            raise DeviceCountError(f"--devices {count}: this machine has {len(available)} "
                                   f"{available[0].platform.upper()} device(s)")
        if count != len(available) and jax.process_count() > 1:
            raise DeviceCountError("--devices: a multi-host job uses every device of every host")
        self.mesh = Mesh(available[:count], (DATA_AXIS,))
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    @property
    def device_count(self) -> int:
        return self.mesh.devices.size

    def describe(self) -> str:
        return describe_devices(self.device_count)

    def check_batch_size(self, batch_size: int) -> None:
        """The global batch is split evenly: each device gets ``batch_size / devices`` images."""
        if batch_size % self.device_count:
            raise DeviceCountError(
                f"--batch-size {batch_size} does not split evenly over {self.device_count} devices: "
                f"choose a multiple of {self.device_count} (the global batch size is the same whatever "
                "the device count) or pass --devices")

    def place(self, module) -> None:
        """Put every array of an NNX module (model and optimizer state) on the mesh, in place: arrays
        under ``SHARD_MIN_SIZE`` replicated on every device, larger ones split along their largest
        axis that divides evenly (as in ZeRO / FSDP: each device keeps and updates a slice, XLA
        gathers the weights for the forward pass and reduce-scatters their gradients)."""
        import jax
        from flax import nnx
        nnx.update(module, jax.tree.map(lambda a: jax.device_put(a, self.sharding_for(a)), nnx.state(module)))

    def sharding_for(self, array):
        """Where ``place`` puts ``array``: replicated, or split along one axis (see ``SHARD_MIN_SIZE``)."""
        from jax.sharding import NamedSharding, PartitionSpec
        count = self.device_count
        if count == 1 or array.size < SHARD_MIN_SIZE:
            return self.replicated
        axes = [i for i in range(array.ndim) if array.shape[i] % count == 0]
        if not axes:
            return self.replicated
        axis = max(axes, key=lambda i: array.shape[i])
        return NamedSharding(self.mesh, PartitionSpec(*[DATA_AXIS if i == axis else None for i in range(array.ndim)]))

    def shard(self, *arrays):
        """Split host batches (leading axis = global batch) across the devices. Every process passes
        the same global batch and contributes its own slice of it."""
        import jax
        processes, index = jax.process_count(), jax.process_index()
        placed = []
        for array in arrays:
            rows = array.shape[0] // processes
            local = array[index * rows:(index + 1) * rows]
            placed.append(jax.make_array_from_process_local_data(self.batch_sharding, local, array.shape))
        return placed


XLA_CACHE_MAX_BYTES = 512 * 2**20  # the page's bounded set of programs takes a small part of it


def enable_compilation_cache(directory: str | None = None) -> Path:
    """Turn on JAX's persistent compilation cache (default ``~/.cache/imgjax/xla``, or
    ``IMGJAX_XLA_CACHE``), keeping every program up to ``XLA_CACHE_MAX_BYTES`` (least recently used
    dropped first), so that a second start compiles nothing."""
    import jax
    path = Path(directory or os.environ.get("IMGJAX_XLA_CACHE") or Path.home() / ".cache" / "imgjax" / "xla")
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", XLA_CACHE_MAX_BYTES)
    return path
