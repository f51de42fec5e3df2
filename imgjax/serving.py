"""Models served to many threads at once, as pure jitted functions of weights that no call changes.

``nnx.jit`` on a module object rewrites that object's graph around each call, so threads calling it
on one shared module see each other's half-made changes (a request failed with "'Generator' object
has no attribute 'project'"). ``frozen`` splits the modules once into their graph and weights and
jits a function of the weights: each trace merges modules of its own, and nothing shared changes.
"""

from __future__ import annotations

import functools
import threading
import time

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


def compiling() -> threading.RLock:
    """A tab's ``compiling`` lock: held while ``warm_up_in_background`` compiles the tab, by the thread
    doing so (which may call the tab's actions); ``wait_until_compiled`` waits for it."""
    return threading.RLock()


def wait_until_compiled(tab) -> None:
    """Return once no thread compiles ``tab`` (at once where none ever did)."""
    with tab.compiling:
        pass


def warm_up_in_background(named_tabs: dict, log=print, at_once: int = 0) -> None:
    """Compile ``named_tabs`` (``warm_up``) while the server starts: the first ``at_once`` of them
    together, each in a thread of its own (XLA compiles without Python's lock, so they share the
    cores), then the rest in turn in one more thread. Returns once those threads hold every tab's
    ``compiling`` lock: a request for a tab waits until that tab is done (not the ones after it),
    rather than compile the same programs a second time."""
    names = list(named_tabs)
    together = [{name: named_tabs[name]} for name in names[:at_once]]
    holding = threading.Barrier(len(together) + 2)
    first = [threading.Thread(target=_compile, args=(tabs, log, holding), daemon=True) for tabs in together]

    def rest():
        _compile({name: named_tabs[name] for name in names[at_once:]}, log, holding, after=first)
        log(f"imgjax studio: {ALL_READY}")

    for thread in [*first, threading.Thread(target=rest, name="warm-up", daemon=True)]:
        thread.start()
    holding.wait()


def _compile(named_tabs: dict, log, holding: threading.Barrier, after: list = ()) -> None:
    """Hold each tab's lock, meet the other warm-up threads at ``holding``, wait for the threads
    ``after``, then compile the tabs in turn, each freed as soon as it is done (or failed)."""
    for tab in named_tabs.values():
        tab.compiling.acquire()
    holding.wait()
    for thread in after:
        thread.join()
    for name, tab in named_tabs.items():
        start = time.perf_counter()
        try:
            tab.warm_up()
            log(f"imgjax studio: {name} compiled in {time.perf_counter() - start:.1f} s")
        except Exception as error:  # noqa: BLE001 - the tab compiles on first use; the others go on
            log(f"imgjax studio: {name} failed to compile ({error}); it compiles on first use")
        finally:
            tab.compiling.release()


ALL_READY = "every tab compiled"  # the line the server prints once the background compiles are done
