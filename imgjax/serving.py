"""Models served to many threads at once, as pure jitted functions of weights that no call changes.

``nnx.jit`` on a module object rewrites that object's graph around each call, so threads calling it
on one shared module see each other's half-made changes (a request failed with "'Generator' object
has no attribute 'project'"). ``frozen`` splits the modules once into their graph and weights and
jits a function of the weights: each trace merges modules of its own, and nothing shared changes.
"""

from __future__ import annotations

import functools

import jax
from flax import nnx


def frozen(function, *modules, static_argnames: tuple[str, ...] = ()):
    """``function(*modules, *args, **kwargs)`` as a jitted function of ``args`` and ``kwargs`` alone,
    over ``modules`` split once; safe to call from any number of threads at once. The compiled
    program keeps ``function``'s name (the persistent compilation cache files it under it)."""
    graph, weights = nnx.split(modules)

    def call(weights, *args, **kwargs):
        return function(*nnx.merge(graph, weights), *args, **kwargs)

    call.__name__ = call.__qualname__ = getattr(function, "__name__", "served")
    return functools.partial(jax.jit(call, static_argnames=static_argnames), weights)
