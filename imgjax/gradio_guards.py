"""The studio's defences at the Gradio boundary: every route into the server keeps the same limits
and answers a bad request with one plain sentence.

* ``BodyLimit``: an ASGI middleware refusing any request body over ``MAX_BODY_BYTES`` (uploads,
  JSON with inline ``data:`` images, editor blobs), before it is read into memory.
* ``guard_api``: wraps the page's ``process_api`` so that a wrong argument count or a value of the
  wrong type gets a message naming the input, and user errors log one line instead of a traceback.
* ``raw_image`` / ``raw_editor``: image inputs hand the service the uploaded bytes or file, never
  an image Gradio decoded (the service decodes within its limits).
* ``prune_cache``: keeps Gradio's upload and output cache under an age and a size.
* ``patient_start_check``: Gradio's check that its own server answers waits for a busy host.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import threading
import time
from abc import ABCMeta
from pathlib import Path

import gradio as gr
import pydantic
from gradio import processing_utils
from gradio.components.base import server
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .checkpoint import atomic_write
from .user_input import (
    MAX_FILE_BYTES,
    MAX_ITEMS,
    MAX_TEXT,
    TOO_BIG_FILE,
    InputError,
    shown,
)

MAX_BODY_BYTES = 16 * 2**20  # one request: a 10 MB file with its multipart or base64 overhead
MAX_PENDING_BLOBS = 64  # editor images sent ahead of a click, kept per editor (oldest dropped)
log = logging.getLogger("imgjax.studio")


# ----------------------------------------------------------------------------- request bodies

class BodyLimit:
    """ASGI middleware: 413 for a request whose body exceeds ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        received, started, refused = 0, False, False

        async def limited_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                if refused:
                    return
                started = True
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ClientDisconnect:  # the body was cut off: by us (refused below), or the client left
            if not refused:
                log.info("client disconnected before its request was read: %s", scope.get("path"))
                return
        except Exception as error:  # the route's reaction to the cut-off body: refused below
            if started and isinstance(error.__cause__, HTTPException):
                # Gradio's event stream refusing mid-stream (a session hash two clients share, whose
                # events the other's stream took): the client sees its stream end; one line here.
                log.info("event stream ended: %s (%s)", error.__cause__.detail, scope.get("path"))
                return
            if not refused:
                raise
        if refused and not started:
            await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps({"detail": f"Request too large: at most {self.max_bytes // 2**20} MB."}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- outputs

def _save_pil_to_cache_whole(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's ``processing_utils.save_pil_to_cache``, renamed into place instead of rewritten in
    place: two requests making the same picture (two visitors' default grids) write the same file,
    and a client fetching it meanwhile got it truncated."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    path = (Path(cache_dir) / processing_utils.hash_bytes(data) / f"{name}.{format}").resolve()
    atomic_write(path, data, sync=False)
    return str(path)


processing_utils.save_pil_to_cache = _save_pil_to_cache_whole


# ----------------------------------------------------------------------------- user errors

def user_error(message: str, where: str = "") -> gr.Error:
    """The gr.Error a user sees for ``message``; logged as one line, without a traceback."""
    log.info("refused%s: %s", f" {where}" if where else "", message)
    return gr.Error(message, title="Input problem", print_exception=False)


def _label(component) -> str:
    return str(component.label or type(component).__name__)


def _is_file(value) -> bool:
    return isinstance(value, dict) and (isinstance(value.get("path"), str) or isinstance(value.get("url"), str))


def _check_value(component, value) -> str | None:
    """Why ``value`` cannot be a payload of ``component``, or None when its shape is right (the
    service checks ranges and choices itself)."""
    if value is None:
        return None
    if isinstance(component, gr.ImageEditor):
        if not isinstance(value, dict) or not set(value) <= {"background", "layers", "composite", "id"}:
            return "an object with keys background, layers and composite"
        parts = [value.get("background"), value.get("composite"), *(value.get("layers") or [])]
        if not isinstance(value.get("layers") or [], list) or not all(p is None or _is_file(p) for p in parts):
            return "background and composite each a file (or null), layers a list of files"
        return None
    if isinstance(component, gr.Image):
        return None if _is_file(value) else "a file: {\"path\": ...} from an upload, or {\"url\": \"data:...\"}"
    if isinstance(component, (gr.Number, gr.Slider)):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(component, gr.Checkbox):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(component, (gr.Radio, gr.Dropdown)):
        return None if isinstance(value, str) else "one of the listed choices (a string)"
    return None


def long_text(component, max_text: int):
    """Let an input's strings be up to ``max_text`` characters (not ``MAX_TEXT``): a field that carries
    data as text, such as an edit code's detail."""
    component.max_text = max_text
    return component


def _too_large(value, budget: list | None = None, max_text: int = MAX_TEXT) -> str | None:
    """Why a plain value (not a file) is too large to read: a string over ``max_text`` characters, or
    over ``MAX_ITEMS`` values in its lists and objects, nested ones included; None when it is not."""
    budget = [MAX_ITEMS] if budget is None else budget
    if isinstance(value, str):
        return f"at most {max_text:,} characters long" if len(value) > max_text else None
    if isinstance(value, (list, dict)):
        budget[0] -= len(value)
        if budget[0] < 0:
            return f"at most {MAX_ITEMS:,} values in all"
        for item in [*value.keys(), *value.values()] if isinstance(value, dict) else value:
            problem = _too_large(item, budget, max_text)
            if problem:
                return problem
    return None


def _fits_data_model(component, value) -> bool:
    model = getattr(component, "data_model", None)
    if model is None or value is None:
        return True
    try:
        model.model_validate(value, context={"validate_meta": True})
        return True
    except pydantic.ValidationError:
        return False


def guard_api(demo: gr.Blocks) -> None:
    """Check each request's arguments before Gradio processes them, and turn the errors Gradio
    raises for hostile payloads into plain messages (no exception names, no server paths)."""
    process_api = demo.process_api

    async def checked_process_api(block_fn, inputs, *args, **kwargs):
        fn = demo.fns[block_fn] if isinstance(block_fn, int) else block_fn
        where = f"/{fn.api_name}" if fn.api_name else (fn.name or "")
        components = list(fn.inputs)
        if isinstance(inputs, list) and len(inputs) < len(components) and all(
                getattr(c, "optional_input", False) for c in components[len(inputs):]):
            inputs = inputs + [c.value for c in components[len(inputs):]]  # left out: their defaults
        if not isinstance(inputs, list) or len(inputs) != len(components):
            names = ", ".join(_label(c) for c in components)
            got = len(inputs) if isinstance(inputs, list) else type(inputs).__name__
            raise user_error(f"{where or 'This action'} takes {len(components)} values ({names}); got {got}.", where)
        for component, value in zip(components, inputs):
            is_file_input = isinstance(component, (gr.Image, gr.ImageEditor, gr.File))
            problem = ((None if is_file_input else _too_large(value, max_text=getattr(component, "max_text", MAX_TEXT)))
                       or _check_value(component, value))
            if problem is not None:
                raise user_error(f"{_label(component)} must be {problem}; got {shown(value)}.", where)
        try:
            return await process_api(block_fn, inputs, *args, **kwargs)
        except gr.exceptions.ComponentProcessingError as error:
            if isinstance(error.__cause__, InputError):  # raised by raw_image / raw_editor
                raise user_error(str(error.__cause__), where) from None
            raise user_error(f"{_label(next(iter(components)))} is not in the form this input takes.", where) from None
        except pydantic.ValidationError:
            label = next((_label(c) for c, v in zip(components, inputs) if not _fits_data_model(c, v)), "A value")
            raise user_error(f"{label} is not in the form this input takes (see the page's API description).",
                             where) from None
        except gr.exceptions.InvalidPathError:
            raise user_error("That file is not one this server was sent: upload it first.", where) from None
        except InputError as error:
            raise user_error(str(error), where) from None
        except gr.Error as error:
            if error.print_exception:  # Gradio's own checks: the user's error, logged as such
                log.info("refused %s: %s", where, error.message)
                error.print_exception = False
            raise

    demo.process_api = checked_process_api


# ----------------------------------------------------------------------------- image payloads

def _source(file) -> str | io.BytesIO | bytes | None:
    """A FileData (upload or inline ``data:`` URL) or editor blob -> what user_input.open_image reads."""
    if file is None:
        return None
    if isinstance(file, bytes):
        return file
    url = getattr(file, "url", None) or ""
    if url.startswith("data:"):
        encoded = url.partition(",")[2]
        if len(encoded) > (MAX_FILE_BYTES * 4) // 3 + 4:
            raise InputError(TOO_BIG_FILE)
        try:
            return base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            raise InputError("The inline image is not valid base64 data.") from None
    return file.path


_GUARDED: dict[type, type] = {}  # Gradio's class -> its guarded class (one kind of guard per class)


def _guard(component, **methods):
    """``component`` with ``methods`` (taking ``self``) in place of its class's. Not set on the
    instance: when an event updates a component (an example click, ``gr.update``), Gradio gives that
    session a new one made from the component's class and constructor arguments, which would drop
    them. The class is made without ComponentMeta's hook (it writes a type stub beside the module
    defining a component class) and keeps Gradio's name and module: the page sees the same type."""
    base = type(component)
    if base not in _GUARDED:
        attributes = {"__module__": base.__module__, "__qualname__": base.__qualname__, **methods}
        _GUARDED[base] = ABCMeta.__new__(type(base), base.__name__, (base,), attributes)
    component.__class__ = _GUARDED[base]
    return component


def raw_image(component: gr.Image) -> gr.Image:
    """``component`` handing its function the upload's path (or inline bytes) without decoding it."""
    return _guard(component, preprocess=lambda self, payload: _source(payload))


def _editor_sources(self, payload):
    """An editor's payload -> {"background", "layers", "composite"} as paths or bytes; parts the
    browser sent ahead (``accept_blobs``) are taken from the store once."""
    if payload is None:
        return None
    parts = payload
    if payload.id is not None:
        parts = self.blob_storage.pop(payload.id, None) or payload
    layers = [_source(layer) for layer in (parts.layers or []) if layer is not None]
    return {"background": _source(parts.background), "layers": layers, "composite": _source(parts.composite)}


@server
def _accept_blobs_within_limits(self, data):
    """Gradio's ``accept_blobs`` for parts within the file limit, in a store of bounded size."""
    kind, index = data.data.get("type"), data.data.get("index")
    file = data.files[0][1] if data.files else b""
    problem = (TOO_BIG_FILE if len(file) > MAX_FILE_BYTES
               else "Unknown editor part." if kind not in ("background", "layer", "composite")
               else "This editor has one layer." if kind == "layer" and str(index) not in ("0", "None", "null")
               else None)
    if problem:  # a plain 400 for the client, one log line (a gr.Error here would be a 500 with a traceback)
        log.info("refused editor blob: %s", problem)
        raise HTTPException(status_code=400, detail=problem)
    while len(self.blob_storage) >= MAX_PENDING_BLOBS and data.data.get("id") not in self.blob_storage:
        self.blob_storage.pop(next(iter(self.blob_storage)))
    return gr.ImageEditor.accept_blobs(self, data)


def raw_editor(component: gr.ImageEditor) -> gr.ImageEditor:
    """``component`` handing its function {"background", "layers", "composite"} as paths or bytes,
    and keeping the blobs the browser sends ahead within the file limit and a bounded store."""
    return _guard(component, preprocess=_editor_sources, accept_blobs=_accept_blobs_within_limits)


def optional(component):
    """Mark an input that API calls may leave out at the end of their values (it takes its default):
    one added to an endpoint after clients were written, such as a tab's "Model" choice."""
    component.optional_input = True
    return component


def raw_values(*components):
    """Number, slider, radio, dropdown and checkbox inputs passed as sent: the service checks each
    and names it in its message (Gradio would round a seed of 1.5 and refuse a count of 1.5)."""
    for component in components:
        _guard(component, preprocess=lambda self, payload: payload)
    return components


# ----------------------------------------------------------------------------- disk

def temporary_files(demo: gr.Blocks, *directories) -> list[Path]:
    """The files Gradio wrote for ``demo`` (uploads, outputs; not the examples it keeps) and every
    file under ``directories``."""
    keep = set().union(*(getattr(block, "keep_in_cache", set()) for block in demo.blocks.values()))
    files = {Path(f) for files in list(demo.temp_file_sets) for f in list(files) if f not in keep}
    return sorted(files.union(files_under(*directories)))


def files_under(*directories) -> list[Path]:
    """Every file under ``directories`` (none for one that does not exist)."""
    return [Path(root) / name for directory in directories for root, _, names in os.walk(directory) for name in names]


IN_FLIGHT_S = 10.0  # a file this young may still be on its way to a client: kept whatever the size


def prune_cache(files, max_age: float, max_bytes: int) -> None:
    """Delete the ``files`` older than ``max_age`` seconds, then the oldest until the rest hold at
    most ``max_bytes``, sparing those written in the last ``IN_FLIGHT_S`` seconds (a burst of requests
    would otherwise lose outputs before their clients fetched them); remove the per-file folders
    Gradio made for them once empty."""
    found = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((stat.st_mtime, stat.st_size, path))
    found.sort()
    total, now = sum(size for _, size, _ in found), time.time()
    for modified, size, path in found:
        if now - modified <= max_age and (total <= max_bytes or now - modified < IN_FLIGHT_S):
            break
        path.unlink(missing_ok=True)
        total -= size
        try:
            path.parent.rmdir()  # Gradio keeps each file in a folder of its own hash
        except OSError:
            pass


def keep_pruning(files, max_age: float, max_bytes: int, every: float) -> threading.Thread:
    """Run ``prune_cache(files(), ...)`` every ``every`` seconds in a daemon thread."""
    def loop():
        while True:
            try:
                prune_cache(files(), max_age, max_bytes)
            except Exception:  # a pruning failure must not stop the server; it tries again
                log.exception("pruning the cache failed")
            time.sleep(every)
    thread = threading.Thread(target=loop, name="imgjax-prune", daemon=True)
    thread.start()
    return thread


START_CHECK_S = 60.0  # how long launch waits for the server it started to answer a first request


def patient_start_check() -> None:
    """Gradio's ``launch`` asks its new server for its page (``networking.url_ok``) with a 3 s timeout
    and, on the first timeout, gives up with "localhost is not accessible": on a host whose cores are
    busy (a shared Space, a training run beside it) the first answer can take longer. This check asks
    again until ``START_CHECK_S`` have passed."""
    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + START_CHECK_S
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=10, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                    return True
            except (ConnectionError, httpx.ConnectError, httpx.TimeoutException):
                pass
            time.sleep(0.5)
        return False
    networking.url_ok = url_ok
