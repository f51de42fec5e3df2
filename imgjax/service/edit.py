"""The Edit tab's actions: put a picture into the generator (projection), then render it as
another class (and art set and skin tone, on the emoji), move it along style directions, mix two
pictures, or find pictures for a sketch. One tab per dataset with a shipped encoder.

A picture in the generator is its *code*, ``{"class": name, "latent": [64 numbers]}``, with its
``"art_set"`` and ``"tone"`` on a dataset that has them, and the ``"detail"`` a projection found
beyond what the latent draws (``edit.SearchConfig.detail_steps``; float16 values, base64): what the
projection returns and every edit takes, so an API client edits without projecting again.
"""

from __future__ import annotations

import base64
import binascii
import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import datasets, edit
from ..cnn import extract_channel_means, predict_probabilities
from ..gan import generate_blended
from ..images import image_grid, to_gray, to_uint8, upscale
from ..metrics import psnr
from ..serving import compiling, frozen, wait_until_compiled
from ..user_input import InputError, check_choice, check_int, check_range, is_number
from .classify import CLASSIFY_MAX_SIDE, model_view

# Style directions of each dataset's shipped generator (``edit.style_directions``: its index, principal
# component first), named by what moving one way does (docs/edit.md has the figures they were named
# by); garments ordered by how much they change a garment, emoji by index.
STYLE_DIRECTIONS = {"fashion-mnist": ((1, "Smaller"), (4, "Darker"), (2, "Narrower"), (3, "Larger")),
                    "emoji": ((6, "Smaller"), (1, "Darker"), (2, "Larger"), (4, "Lighter"))}
STYLE_SLIDERS = 4  # style directions on every dataset (the page and the API take four strengths)
# Another dataset's generator: its four largest directions, not named by what they do.
UNNAMED_DIRECTIONS = tuple((i, f"Direction {i + 1}") for i in range(STYLE_SLIDERS))
# Where a slider does something else than its name (``style_effects``, checked by tests/test_edit.py):
# what it does there, and in which classes. A shoe's width is the picture's, so it cannot narrow.
STYLE_ELSEWHERE = {
    "fashion-mnist": {"Narrower": {"smaller": ("Sandal", "Sneaker", "Ankle boot")},
                      "Larger": {"darker": ("Sneaker",)}},
    "emoji": {"Darker": {"smaller": ("Hands & body",)}},
}
STYLE_RANGE = 2.0  # a slider moves the latent at most this far either way (latents are standard normal)
MAX_LATENT = 10.0  # a code's latent values beyond this are far outside what the generator saw
MAX_DETAIL = 100.0  # a code's detail values beyond this are far outside the generator's features
MAX_FRAMES = 32
SKETCH_PICTURES = 6  # pictures a sketch gets
SKETCH_GARMENT, SKETCH_EMPTY = 0.75, 0.25  # sketch pixels above / below these are painted garment / empty
SHOWN_SIDE = 224  # pictures are shown this many pixels a side (28x28 eight times larger)
MAX_SIDE = CLASSIFY_MAX_SIDE  # pictures and sketches are read at most this large: they become the model's side


def _after_warm_up(action):
    """``action`` waits while another thread compiles the tab (``warm_up``), then runs at full speed."""
    @functools.wraps(action)
    def run(self, *args, **kwargs):
        wait_until_compiled(self)
        return action(self, *args, **kwargs)
    return run


def garment_code(class_name: str, latent, art_set: str | None = None, tone: str | None = None,
                 detail=None, dataset: str | None = None) -> dict:
    """The JSON form of a generator input: its dataset's name where given, its class (and art set
    and skin tone, where given), its latent (5 decimals: well below any visible change) and its
    detail where it has one."""
    labels = {"class": class_name, "art_set": art_set, "tone": tone}
    code = {**({"dataset": dataset} if dataset else {}), **{k: v for k, v in labels.items() if v is not None},
            "latent": [round(float(v), 5) for v in latent]}
    if detail is not None and np.any(detail):
        kept = np.clip(detail, -MAX_DETAIL, MAX_DETAIL)  # what ``read_detail`` takes back
        code["detail"] = base64.b64encode(np.asarray(kept, "<f2").tobytes()).decode("ascii")
    return code


def detail_length(shape: tuple[int, ...]) -> int:
    """The characters of a code's detail of ``shape``: float16 values in base64."""
    return 4 * -(-2 * int(np.prod(shape)) // 3)


def read_detail(text, shape: tuple[int, ...]) -> np.ndarray:
    """A code's ``"detail"`` -> float32 ``shape``; InputError if it is not one this generator draws."""
    if not isinstance(text, str) or len(text) != detail_length(shape):
        raise InputError(f"A code's detail is the {detail_length(shape):,} characters a projection gives it "
                         "(or leave it out).")
    try:
        detail = np.frombuffer(base64.b64decode(text, validate=True), "<f2").astype(np.float32).reshape(shape)
    except (binascii.Error, ValueError):
        raise InputError("A code's detail is base64 text, as a projection gives it (or leave it out).") from None
    if not np.all(np.abs(detail) <= MAX_DETAIL):  # NaN fails too
        raise InputError(f"A code's detail values lie between -{MAX_DETAIL:g} and {MAX_DETAIL:g}.")
    return detail


class EditTab:
    """A shipped generator, classifier and encoder of one dataset (the generator's ``card`` names
    it; garments without one), and the tab's actions. With a ``tone_reader`` (``tone_reader.ToneReader``),
    pictures of the dataset's toned classes are projected in the skin tone it reads in them."""

    def __init__(self, generator, classifier, encoder, search: edit.SearchConfig | None = None, familiarity=None,
                 card: dict | None = None, tone_reader=None):
        self.dataset = datasets.get((card or {}).get("dataset", "fashion-mnist"))
        self.class_names = list(self.dataset.classes)
        self.styles = list(self.dataset.styles) if generator.num_styles else []
        self.tones = list(self.dataset.tones) if generator.tone_stride else []
        self._toned = tuple(self.class_names.index(name) for name in self.dataset.toned_classes) if self.tones else ()
        self.tone_reader = tone_reader
        self.show = max(1, SHOWN_SIDE // self.dataset.side)
        # The Classify tab's check (``cnn.Familiarity``): an image unlike any garment is said to be so.
        self.familiarity = familiarity
        self._channel_means_fn = frozen(extract_channel_means, classifier)
        self.generator, self.classifier, self.encoder = generator, classifier, encoder
        self.search = search or edit.SearchConfig()
        self.latent_dim = generator.project.in_features - generator.embed.features
        named = STYLE_DIRECTIONS.get(self.dataset.name, UNNAMED_DIRECTIONS)
        directions = edit.style_directions(generator, count=1 + max(i for i, _ in named))
        self.style_names = [name for _, name in named]
        self.style_elsewhere = STYLE_ELSEWHERE.get(self.dataset.name, {})  # by slider name
        self.style_directions = directions[[i for i, _ in named]]
        self._render_fn = frozen(generate_blended, generator)
        self._classify_fn = frozen(predict_probabilities, classifier)
        # Held while compiling: the server may start answering before this tab is compiled
        # (``Studio.warm_up``), and the tab's actions then wait for it rather than compile twice.
        self.compiling = compiling()

    def warm_up(self) -> None:
        """Compile every shape the tab uses."""
        code = self.project(np.zeros((self.dataset.side, self.dataset.side, 3), np.float32) + 0.5)[1]
        self.classes_row(code)
        self.render(code, code["class"], *[0.0] * len(self.style_names))
        self.animation(code, code["class"], *[0.0] * len(self.style_names), frames=MAX_FRAMES)
        self.sketch(np.pad(np.ones((14, 14, 3), np.float32), ((7, 7), (7, 7), (0, 0)), constant_values=0.5))

    @property
    def _a_picture(self) -> str:
        """One of the dataset's pictures, with its article: "a garment", "an emoji"."""
        noun = self.dataset.noun.removesuffix("s")
        return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"

    # -- codes

    def _style(self, art_set: str | None) -> int | None:
        """The index of ``art_set``, checked; None where it is not given or the dataset has none."""
        return self.styles.index(check_choice("Art set", art_set, self.styles)) if self.styles and art_set else None

    def _labels(self, class_name: str, art_set: str | None, tone: str | None) -> np.ndarray:
        """(3,) the class, art set and skin tone of a picture, checked (None: the first art set, the
        default tone; a class without tones takes the default)."""
        check_choice("Class", class_name, self.class_names)
        style = self._style(art_set) or 0
        shade = self.tones.index(check_choice("Skin tone", tone, self.tones)) if self.tones and tone else 0
        label = self.class_names.index(class_name)
        return np.array([label, style, shade if label in self._toned else 0])

    def _code(self, condition: int, latent, detail=None) -> dict:
        """The code of the generator's ``condition``, ``latent`` and ``detail``."""
        label, style, shade = edit.condition_labels(self.generator, [condition])[0]
        return garment_code(self.class_names[label], latent, self.styles[style] if self.styles else None,
                            self.tones[shade] if label in self._toned else None, detail, self.dataset.name)

    def read_code(self, code) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A code from the page or an API client -> (latent, its (3,) class, art set and tone labels,
        its detail: zeros without one); InputError if malformed."""
        if not isinstance(code, dict) or not isinstance(code.get("latent"), list) or "class" not in code:
            raise InputError(f"Project {self._a_picture} first (or send a code: {{\"class\": name, \"latent\": "
                             f"[{self.latent_dim} numbers]}}).")
        if code.get("dataset", self.dataset.name) != self.dataset.name:
            raise InputError(f"This code is for the {str(code['dataset'])[:40]} generator, not the {self.dataset.title} one.")
        latent = code["latent"]
        if len(latent) != self.latent_dim or not all(is_number(v) for v in latent):
            raise InputError(f"A code's latent is a list of {self.latent_dim} numbers.")
        if not all(abs(v) <= MAX_LATENT for v in latent):  # before float32, which a 400-digit integer overflows
            raise InputError(f"A code's latent values lie between -{MAX_LATENT:g} and {MAX_LATENT:g}.")
        shape = self.generator.detail_shape
        detail = read_detail(code["detail"], shape) if code.get("detail") is not None else np.zeros(shape, np.float32)
        return (np.asarray(latent, np.float32), self._labels(code["class"], code.get("art_set"), code.get("tone")),
                detail)

    def _conditions(self, labels) -> np.ndarray:
        """(N, 3) class, art set and tone labels -> the generator's (N,) conditions."""
        return edit.conditions_from_labels(self.generator, np.atleast_2d(labels))

    def _one_hot(self, conditions) -> np.ndarray:
        return np.eye(self.generator.embed.num_embeddings, dtype=np.float32)[np.asarray(conditions)]

    def _render(self, latents, condition_weights, details=None) -> np.ndarray:
        """(N, latent), (N, conditions) weights and (N, *detail_shape) details (None: none) -> (N, side,
        side, channels) float images."""
        latents = np.asarray(latents, np.float32)
        details = np.zeros((len(latents), *self.generator.detail_shape), np.float32) if details is None else details
        return np.asarray(self._render_fn(latents, np.asarray(condition_weights, np.float32),
                                          np.asarray(details, np.float32)))

    @staticmethod
    def _kept(detail, labels, target) -> np.ndarray:
        """A code's detail where an edit keeps its class, art set and tone (it belongs to the picture
        drawn in them), else zeros: another class is the generator's own drawing of the latent."""
        return detail if np.array_equal(labels, target) else np.zeros_like(detail)

    def _picture(self, images, factor: int) -> np.ndarray:
        """(side, side, channels) floats, or a uint8 grid -> a uint8 picture ``factor`` times larger
        (gray pictures as (H, W))."""
        picture = to_uint8(images) if images.dtype != np.uint8 else images
        return upscale(picture[..., 0] if picture.ndim == 3 and picture.shape[-1] == 1 else picture, factor)

    def _named(self, images) -> list[tuple[str, float]]:
        probabilities = np.asarray(self._classify_fn(np.asarray(images, np.float32)))
        return [(self.class_names[p.argmax()], float(p.max())) for p in probabilities]

    # -- actions

    @_after_warm_up
    def project(self, rgb: np.ndarray):
        """Any image -> (the image and its reconstruction side by side, the code, a summary line).
        The image is first made the view the classifier takes (garments: 28x28 light on dark)."""
        view = model_view(rgb, self.dataset)
        tones = self.tone_reader.read(to_uint8(view[None])) if self.tone_reader is not None else None
        found = edit.project(self.generator, self.classifier, self.encoder, view[None], self.search,
                             toned_classes=self._toned, tones=tones)
        reconstruction = found.images[0]
        code = self._code(int(found.labels[0]), found.latents[0], found.details[0])
        distance = float(psnr(view[None], found.images[:1])[0])
        named, confidence = self._named(reconstruction[None])[0]
        drawn = "".join([f" in {code['art_set']}'s style" if "art_set" in code else "",
                         f", skin tone {code['tone']}" if "tone" in code else ""])
        summary = (f"Projected as **{code['class']}**{drawn}: the reconstruction is {distance:.1f} dB PSNR from the "
                   f"image (mean absolute difference {np.abs(view - reconstruction).mean():.3f}); the "
                   f"classifier calls it {named} ({confidence:.0%}).")
        shown = [view, reconstruction]
        if "detail" in code:  # the latent alone, as edits to another class start from it
            alone = self._render(found.latents[:1], self._one_hot(found.labels[:1]))[0]
            shown.append(alone)
            summary += (f" The latent alone (right; edits to another class draw it) is "
                        f"{float(psnr(view[None], alone[None])[0]):.1f} dB from the image: the rest is the "
                        f"projection's detail, which stays while the class, art set and tone do.")
        if self.unfamiliar(view):
            summary = (f"⚠️ **This does not look like {self._a_picture}** to the classifier (the Classify tab says the "
                       f"same): the projection is the nearest {self._a_picture.split()[-1]} the GAN can draw, not this "
                       "image. " + summary)
        return self._picture(image_grid(np.stack(shown), rows=1), self.show), code, summary

    def unfamiliar(self, view: np.ndarray) -> bool:
        """Whether a (side, side, channels) classifier view lies farther from every class than the
        Classify tab allows."""
        if self.familiarity is None:
            return False
        return bool(self.familiarity.unfamiliar(np.asarray(self._channel_means_fn(view[None])))[0])

    @_after_warm_up
    def garment(self, code) -> np.ndarray:
        """The code's picture as the generator draws it: a uint8 picture."""
        latent, labels, detail = self.read_code(code)
        return self._picture(self._render(latent[None], self._one_hot(self._conditions(labels)), detail[None])[0],
                             self.show)

    @_after_warm_up
    def classes_row(self, code) -> np.ndarray:
        """The code's latent in every class (its art set kept, and its tone where a class has tones),
        one picture: a row, each captioned with its class and the classifier's confidence in it, or
        what the classifier sees instead."""
        latent, labels, detail = self.read_code(code)
        classes = len(self.class_names)
        every = np.repeat(labels[None], classes, axis=0)
        every[:, 0] = np.arange(classes)
        every[:, 2] *= np.isin(every[:, 0], self._toned)
        images = self._render(np.tile(latent, (classes, 1)), self._one_hot(self._conditions(every)),
                              np.stack([self._kept(detail, labels, target) for target in every]))
        captions = [(name, f"{p:.0%}" if named == name else f"seen: {named}")
                    for name, (named, p) in zip(self.class_names, self._named(images))]
        tile = self.show // 2 * (self.dataset.side + 2)
        return captioned_row(self._picture(image_grid(images, rows=1), self.show // 2), captions, tile)

    def _edited_latent(self, latent, strengths) -> np.ndarray:
        if len(strengths) != len(self.style_names):
            raise InputError(f"Give {len(self.style_names)} style strengths ({', '.join(self.style_names)}).")
        values = np.array([check_range(name, s, -STYLE_RANGE, STYLE_RANGE)
                           for name, s in zip(self.style_names, strengths)], np.float32)
        return latent + values @ self.style_directions

    def _target(self, labels, class_name, art_set, tone) -> np.ndarray:
        """The labels of an edit of a picture labelled ``labels`` to ``class_name`` (and ``art_set`` and
        ``tone``; None keeps the picture's own)."""
        art_set = art_set if art_set is not None else (self.styles[labels[1]] if self.styles else None)
        tone = tone if tone is not None else (self.tones[labels[2]] if self.tones else None)
        return self._labels(class_name, art_set, tone)

    @_after_warm_up
    def render(self, code, class_name, *strengths, art_set: str | None = None, tone: str | None = None) -> np.ndarray:
        """The code's picture as ``class_name`` (and ``art_set`` and ``tone``: None keeps the code's),
        moved along the style directions by ``strengths`` (-2 to 2 each): a uint8 picture."""
        latent, labels, detail = self.read_code(code)
        target = self._target(labels, class_name, art_set, tone)
        latent = self._edited_latent(latent, strengths)
        return self._picture(self._render(latent[None], self._one_hot(self._conditions(target)),
                                          self._kept(detail, labels, target)[None])[0], self.show)

    @_after_warm_up
    def mix(self, style_code, class_code) -> np.ndarray:
        """Two pictures crossed: the style of the first in the class (art set and tone) of the second
        and the other way round, beside the two originals (one picture, four panels)."""
        style_latent, style_labels, style_detail = self.read_code(style_code)
        class_latent, class_labels, class_detail = self.read_code(class_code)
        conditions = self._conditions([style_labels, class_labels, class_labels, style_labels])
        details = [style_detail, class_detail, self._kept(style_detail, style_labels, class_labels),
                   self._kept(class_detail, class_labels, style_labels)]
        images = self._render(np.stack([style_latent, class_latent, style_latent, class_latent]),
                              self._one_hot(conditions), np.stack(details))
        return self._picture(image_grid(images, rows=1), self.show // 2)

    @_after_warm_up
    def animation(self, code, class_name, *strengths, frames: int = 16, art_set: str | None = None,
                  tone: str | None = None) -> list[np.ndarray]:
        """Frames from the code's picture to its edit (class, art set, tone and style), blended linearly
        (the detail too: to none where the edit leaves the code's class, art set or tone)."""
        frames = check_int("Frames", frames, 2, MAX_FRAMES)
        latent, labels, detail = self.read_code(code)
        target = self._target(labels, class_name, art_set, tone)
        edited = self._edited_latent(latent, strengths)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
        start, end = self._one_hot(self._conditions(labels)), self._one_hot(self._conditions(target))
        padded = MAX_FRAMES  # one compiled shape for every frame count
        latents = np.zeros((padded, self.latent_dim), np.float32)
        weights = np.zeros((padded, start.shape[1]), np.float32)
        details = np.zeros((padded, *detail.shape), np.float32)
        latents[:frames], weights[:frames] = (1 - t) * latent + t * edited, (1 - t) * start + t * end
        kept = self._kept(detail, labels, target)
        details[:frames] = (1 - t[:, :, None, None]) * detail + t[:, :, None, None] * kept
        return [self._picture(image, self.show // 2) for image in self._render(latents, weights, details)[:frames]]

    @_after_warm_up
    def sketch(self, rgb: np.ndarray, art_set: str | None = None) -> tuple[list[tuple[np.ndarray, str]], list[dict]]:
        """A sketch -> six pictures that agree with it, best first, each with a caption (its class, how
        well it agrees), and their codes. Garments: light is garment, dark nothing, mid-gray free;
        colour pictures (in ``art_set``, None: in every art set): each colour painted is asked for
        there (white: the background), mid-gray free."""
        style = self._style(art_set)
        if self.dataset.light_on_dark:
            gray = sketch_view(to_gray(rgb)[..., None], self.dataset.side)[..., 0]
            garment, empty = gray > SKETCH_GARMENT, gray < SKETCH_EMPTY
            if not garment.any():
                raise InputError("Paint where the garment should be (white) first: the sketch has no light pixels.")
            (lower, upper), painted = edit.sketch_bounds(garment, empty), garment | empty
        else:
            colours, painted = colour_sketch_view(rgb, self.dataset.side)
            if not painted.any():
                raise InputError(f"Paint {self._a_picture} in the brush colours first: the sketch is all gray.")
            lower, upper = edit.colour_sketch_bounds(colours, painted)
        latents, conditions, images, _ = edit.pictures_for_sketch(
            self.generator, lower, upper, edit.sketch_conditions(self.generator, style), SKETCH_PICTURES)
        agree = edit.sketch_agreement(images, lower, upper, painted)
        results, codes = [], []
        for latent, condition, image, share in zip(latents, conditions, images, agree):
            code = {**self._code(int(condition), latent), "from": "your sketch"}
            # short: a caption under a small tile
            results.append((self._picture(image, self.show // 2), f"{code['class']}, {share:.0%} agree"))
            codes.append(code)
        return results, codes


# What a style slider can do to a picture, measured on its ink (``edit.ink``: pixels away from the
# background): larger is further that way. A slider's name is one of them; where a class goes another
# way, the page says so.
def _brightness(images) -> np.ndarray:
    return images.reshape(len(images), -1).mean(1)


STYLE_EFFECTS = {
    "shorter": lambda ink, image: -ink.any(2).sum(1), "taller": lambda ink, image: ink.any(2).sum(1),  # rows
    "narrower": lambda ink, image: -ink.any(1).sum(1), "wider": lambda ink, image: ink.any(1).sum(1),  # columns
    "darker": lambda ink, image: -_brightness(image), "lighter": lambda ink, image: _brightness(image),
    "smaller": lambda ink, image: -ink.sum((1, 2)), "larger": lambda ink, image: ink.sum((1, 2)),
}


def slider_label(name: str, style_elsewhere: dict) -> str:
    """A style slider's name, with what it does instead where its name does not hold (a tab's
    ``style_elsewhere``)."""
    elsewhere = "; ".join(f"{effect} for {', '.join(classes)}" for effect, classes in style_elsewhere.get(name, {}).items())
    return f"{name} ({elsewhere})" if elsewhere else name


def style_effects(tab: EditTab, name: str, per_class: int = 40, seed: int = 11) -> dict[str, np.ndarray]:
    """For style slider ``name`` moved from -2 to +2: for each effect of ``STYLE_EFFECTS``, the share
    of each class's ``per_class`` pictures (in the default art set and tone) that moved that way (an
    unchanged picture counts as not)."""
    from ..gan import sample_latents
    classes = len(tab.class_names)
    latents = np.asarray(sample_latents(seed, per_class * classes, tab.latent_dim))
    labels = np.arange(len(latents)) % classes
    conditions = tab._conditions(np.stack([labels, 0 * labels, 0 * labels], -1))
    direction = tab.style_directions[tab.style_names.index(name)]
    render = lambda moved: np.concatenate([tab._render(moved[i:i + MAX_FRAMES], tab._one_hot(conditions[i:i + MAX_FRAMES]))
                                           for i in range(0, len(moved), MAX_FRAMES)])  # the animation's shape
    before, after = render(latents - STYLE_RANGE * direction), render(latents + STYLE_RANGE * direction)
    ink = lambda images: edit.ink(images, tab.dataset.light_on_dark)
    moved = {effect: measure(ink(after), after) - measure(ink(before), before) > 0
             for effect, measure in STYLE_EFFECTS.items()}
    return {effect: np.array([way[labels == c].mean() for c in range(classes)]) for effect, way in moved.items()}


def captioned_row(row: np.ndarray, captions: list[tuple[str, str]], tile: int) -> np.ndarray:
    """(H, W[, 3]) uint8 row of equal tiles ``tile`` pixels apart -> the row with two caption lines under
    each tile (white on the grid's gray)."""
    canvas = Image.fromarray(np.pad(row, ((0, 44), (0, 0)) + ((0, 0),) * (row.ndim - 2), constant_values=64))
    draw = ImageDraw.Draw(canvas)
    # 15 px, or smaller where a caption would run into its neighbour's ("Buildings & places").
    widest = max(draw.textlength(line, font=ImageFont.load_default(size=15)) for lines in captions for line in lines)
    font = ImageFont.load_default(size=max(9, min(15, int(15 * (tile - 4) / widest))))
    white = 255 if row.ndim == 2 else (255, 255, 255)
    for i, lines in enumerate(captions):
        for j, line in enumerate(lines):
            draw.text((i * tile + tile // 2 + 1, row.shape[0] + 2 + 19 * j), line, fill=white, font=font, anchor="ma")
    return np.asarray(canvas)


def sketch_view(rgb: np.ndarray, side: int) -> np.ndarray:
    """Any sketch image -> (side, side, channels) in [0, 1], each pixel the mean of its block (no
    cropping: the sketch's position is what it asks for); gray for a one-channel ``side``."""
    rgb = np.asarray(rgb, np.float32)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c]), mode="F").resize(
        (side, side), Image.BOX), np.float32) for c in range(rgb.shape[-1])], -1)


SKETCH_FREE = 0.5  # the sketchpad's gray: a pixel of it is left to the generator
PAINTED = 0.1  # a pixel farther than this from that gray in some channel is painted


def colour_sketch_view(rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A colour sketch -> (side, side, 3) colours and (side, side) mask of painted pixels: a pixel is
    painted where most of its block is, in the mean colour of the block's painted part."""
    rgb = np.asarray(rgb, np.float32)[..., :3]
    painted = (np.abs(rgb - SKETCH_FREE).max(-1, keepdims=True) > PAINTED).astype(np.float32)
    share = sketch_view(painted, side)[..., 0]
    colours = sketch_view(rgb * painted, side) / np.maximum(share[..., None], 1e-6)
    return np.clip(colours, 0.0, 1.0), share >= 0.5
