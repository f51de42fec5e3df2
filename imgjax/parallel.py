"""Data parallelism on JAX's own engine: one mesh over the devices, each batch split along it.

The training loop calls the same ``nnx.jit`` train step whatever the device count. Parameters and
optimizer state are replicated on every device and each batch is sharded along the mesh's ``data``
axis (``NamedSharding``); XLA's SPMD partitioner then inserts the gradient all-reduce (and the
cross-device batch-norm statistics), so 1, 4 or 256 devices compute the same update for the same
global batch. On one device the shardings are trivial and cost nothing measurable.

On a CPU, JAX shows one device for the whole machine by default. ``use_all_cpu_cores`` (called by
the ``imgjax train`` and ``imgjax bench`` commands before JAX is imported) asks XLA for one host
device per core instead: with the batch split across them both cores of a 2-core machine work on
every step, which measured 1.5x the single-device throughput for the autoencoder.
"""

from __future__ import annotations

import os

# JAX is imported inside the functions: the command line imports this module to set XLA's flags,
# which only take effect if JAX has not started yet.

DATA_AXIS = "data"


class DeviceCountError(ValueError):
    """``--devices`` or ``--batch-size`` do not fit the devices there are."""

# Variables whose presence means this process is one of several in a multi-host job; with any of
# them set, ``jax.distributed.initialize()`` finds the coordinator and process ids by itself
# (explicit JAX variables, Slurm, Open MPI, or a multi-host Cloud TPU slice).
_MULTI_HOST_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


def use_all_cpu_cores(cores: int | None = None) -> None:
    """Ask XLA:CPU for one device per core, unless the user already chose a count. Must run before
    JAX initialises its backends; it has no effect on GPUs or TPUs."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = cores or len(os.sched_getaffinity(0))
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


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

    def replicate(self, module) -> None:
        """Place every array of an NNX module (model and optimizer state) on all devices, in place."""
        import jax
        from flax import nnx
        nnx.update(module, jax.device_put(nnx.state(module), self.replicated))

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
