"""What the training loop, the checkpoints and the CLI need to know about a model family.

Each family module (``imgjax.cnn``, ``imgjax.ae``, ``imgjax.gan``) ends with its ``FAMILY`` record:
plain functions that create the training state, run one jit-compiled step, measure an epoch, draw
an epoch picture and pick the model to serve. This module imports no family: ``load_family`` finds
one by name, so dependencies run one way (families below the loop, checkpoints and evaluation).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

NAMES = ("gan", "cnn", "ae", "encoder")


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


def load_family(name: str) -> Family:
    """The Family record of ``imgjax.<name>``, imported on demand so ``imgjax --help`` stays fast."""
    if name not in NAMES:
        raise ValueError(f"no model family {name!r}; the families are {', '.join(NAMES)}")
    return importlib.import_module(f"imgjax.{name}").FAMILY
