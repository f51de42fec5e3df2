"""What the training loop, the checkpoints and the CLI need to know about a model family.

Each family module (``imgjax.cnn``, ``imgjax.ae``, ``imgjax.gan``, ...) ends with its ``FAMILY`` record:
plain functions that create the training state, run one jit-compiled step, measure an epoch, draw
an epoch picture and pick the model to serve. This module imports no family: ``load_family`` finds
one by name, so dependencies run one way (families below the loop, checkpoints and evaluation).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

NAMES = ("gan", "cnn", "ae", "encoder", "photo")


@dataclasses.dataclass(frozen=True)
class Family:
    """How the loop drives one model family."""

    name: str
    model_config: Any  # the family's architecture dataclass
    defaults: dict[str, Any]  # epochs, batch_size, learning_rate that reach the targets
    create: Callable[..., Any]  # (model_config, TrainConfig, total_steps) -> training state (nnx.Module)
    train_step: Callable[..., dict]  # (training, images, labels, key, **options) -> metrics (jit-compiled)
    evaluate: Callable[..., dict]  # (training, held-out Split, trained-on Split) -> per-epoch metrics (floats)
    epoch_picture: Callable[..., Any]  # (training, held-out Split) -> uint8 picture
    build_model: Callable[..., Any]  # model_config -> a fresh serving nnx.Module (weights loaded after)
    serving_model: Callable[..., Any]  # training -> the nnx.Module written to <family>.safetensors
    # (training, global step number) -> train_step's keyword options at that step: the GAN adds its
    # R1 penalty every few steps only; the other families' steps are all alike.
    step_options: Callable[[Any, int], dict] = lambda training, step: {}
    # (model_config, TrainConfig, total_steps) -> the optax schedule of the learning rate over a run
    # of that many steps; ``create`` builds its optimizers on it (``scheduled_optimizer``) and the Lab
    # follows it by the fraction of its time budget spent (``learning_rate_at``).
    schedule: Callable[..., Any] = lambda model_config, train_config, total_steps: train_config.learning_rate
    # TrainConfig -> (training Split, held-out Split) for a family that does not train on
    # Fashion-MNIST (the photo denoiser), and the name of what it reads, for the checkpoint's card.
    load_data: Callable[..., Any] | None = None
    dataset: str | None = None
    # (array name, shape) -> starting values for a layer that ``--init-from``'s checkpoint lacks (a
    # deeper model grown from a shallower one), or None where the family cannot start it so.
    grow_layer: Callable[[str, tuple], Any] | None = None

    def learning_rate_at(self, model_config, train_config, fraction: float) -> float:
        """The learning rate ``schedule`` gives when ``fraction`` (0 to 1) of a run is done."""
        return float(self.schedule(model_config, train_config, NOMINAL_STEPS)(min(fraction, 1.0) * NOMINAL_STEPS))


# The length over which a run with a time budget, not a step count, reads its schedule.
NOMINAL_STEPS = 100_000


def scheduled_optimizer(make_optimizer, schedule, total_steps: int | None):
    """``make_optimizer(learning_rate)`` (an optax constructor such as ``optax.adam``; its argument must
    be named ``learning_rate``) with the rate kept in the optimizer's state (``optax.inject_hyperparams``):
    for a run of ``total_steps`` steps, ``schedule(total_steps)`` evaluated at each step inside the
    compiled step; for a run with a time budget (``total_steps=None``, the Lab), a value the loop sets
    as time passes (``set_learning_rate``), so one compiled step serves any budget."""
    import optax
    rate = schedule(total_steps) if total_steps else 0.0
    return optax.inject_hyperparams(make_optimizer)(learning_rate=rate)


def set_learning_rate(training, rate: float) -> None:
    """Set the learning rate of every optimizer in ``training`` (built by ``scheduled_optimizer`` for
    a run with a time budget), keeping each value on the devices where it lives."""
    import jax
    import numpy as np
    from flax import nnx
    for _, node in nnx.iter_graph(training):
        if isinstance(node, nnx.Optimizer):
            value = node.opt_state.hyperparams["learning_rate"]
            value.set_value(jax.device_put(np.float32(rate), value.get_value().sharding))


def load_family(name: str) -> Family:
    """The Family record of ``imgjax.<name>``, imported on demand so ``imgjax --help`` stays fast."""
    if name not in NAMES:
        raise ValueError(f"no model family {name!r}; the families are {', '.join(NAMES)}")
    return importlib.import_module(f"imgjax.{name}").FAMILY
