"""Colour emoji art from open sets: fetch with checksums, group by Unicode subcategory, split by emoji.

Each art set is an npm package: Twemoji's and Noto's hold 64 px PNGs and an ``emoji.json`` that names
every emoji's Unicode category, subcategory and skin-tone variants (the catalogue all sets are read
by); OpenMoji's holds SVGs, drawn at 64 px by librsvg's ``rsvg-convert`` (Debian's librsvg2-bin).
``imgjax data emoji`` (or the first ``load_split``)
downloads the packages into ``~/.cache/imgjax/emoji`` (or finds them there, or in
``IMGJAX_EMOJI_DIR``), checks npm's SHA-512 of each, and builds the images once: composited on white,
averaged down to ``side`` pixels, saved as one ``.npz`` (no pickle) beside the packages.

Splits are by emoji, never by picture: every art set and skin tone of a test emoji is in the test
split, so a test emoji is one no model has seen in any form.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .data import DataError, Split, cache_dir, download, npm_integrity


@dataclasses.dataclass(frozen=True)
class ArtSet:
    """One artist's emoji, as an npm package of PNGs."""

    name: str
    package: str
    version: str
    integrity: str  # npm's dist.integrity of the package file
    images: str  # the folder of pictures inside the package: 64 px PNGs, or SVGs
    has_image: str | None  # the field of emoji.json that says the set draws an emoji; None: look for its SVG
    licence: str
    credit: str

    def members(self, variant: dict) -> list[str]:
        """Where the picture of an emoji.json entry (or skin variation) may lie in the package."""
        if self.has_image is not None:
            return [f"{self.images}/{variant['image']}"] if variant.get(self.has_image) else []
        code = variant["unified"]  # OpenMoji names its SVGs by the code, without variation selectors
        return [f"{self.images}/{code}.svg", f"{self.images}/{code.replace('-FE0F', '')}.svg"]

    @property
    def file_name(self) -> str:
        return f"{self.package}-{self.version}.tgz"

    @property
    def url(self) -> str:
        return f"https://registry.npmjs.org/{self.package}/-/{self.file_name}"


ART_SETS = (
    ArtSet("Twemoji", "emoji-datasource-twitter", "16.0.0",
           "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
           "package/img/twitter/64", "has_img_twitter", "CC-BY 4.0",
           "Twemoji graphics by Twitter, Inc. and other contributors (github.com/jdecked/twemoji), CC-BY 4.0"),
    ArtSet("Noto", "emoji-datasource-google", "16.0.0",
           "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
           "package/img/google/64", "has_img_google", "Apache 2.0",
           "Noto Color Emoji by Google (github.com/googlefonts/noto-emoji), Apache License 2.0"),
    ArtSet("OpenMoji", "openmoji", "17.0.0",
           "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==",
           "package/color/svg", None, "CC BY-SA 4.0",
           "OpenMoji, the open-source emoji and icon project (openmoji.org), CC BY-SA 4.0"),
)
CATALOGUE = "package/emoji.json"  # in the first art set's package


def _in_group(category: str, subcategory: str) -> str | None:
    """The group an emoji belongs to by its Unicode category and subcategory; None: left out
    (flags, symbols, keycaps, activities, weather, time and hearts)."""
    faces = subcategory.startswith("face-") or subcategory in ("cat-face", "monkey-face")
    if category == "Smileys & Emotion" and faces:
        return "Faces"
    if category == "People & Body":
        return "Hands & body" if subcategory.startswith("hand") or subcategory == "body-parts" else "People"
    if category == "Animals & Nature":
        return "Animals" if subcategory.startswith("animal-") else "Food & plants"
    if category == "Food & Drink":
        return "Food & plants"
    if category == "Travel & Places" and (subcategory.startswith("place-") or subcategory == "hotel"):
        return "Buildings & places"
    if category == "Travel & Places" and subcategory.startswith("transport-"):
        return "Vehicles"
    if category == "Objects":
        return "Objects"
    return None


TONED_GROUP = "People"  # the group whose skin tones are measured (most of the toned pictures)
GROUPS = ("Faces", "People", "Hands & body", "Animals", "Food & plants", "Buildings & places", "Vehicles", "Objects")
TONED_GROUPS = ("People", "Hands & body")  # the groups whose pictures come in skin tones
# Unicode's skin-tone modifiers U+1F3FB..U+1F3FF (Fitzpatrick types 1-2 to 6); "default" is the
# unmodified yellow or grey figure, "mixed" a picture of people of different tones.
SKIN_TONES = ("default", "light", "medium-light", "medium", "medium-dark", "dark", "mixed")
MODIFIED_TONES = SKIN_TONES[1:6]  # the five tones a modifier sets: the bias is the gap between them
_MODIFIERS = {"1F3FB": 1, "1F3FC": 2, "1F3FD": 3, "1F3FE": 4, "1F3FF": 5}
PACKAGE_SIDE = 64
SIDE = 32  # the side the models see
TEST_SHARE = 8  # one emoji in 8 of each group is a test emoji; one in 8 of the rest is held out
TEST_DRAW, HELD_OUT_DRAW = 0, 1  # the seeds of the two draws (``_drawn``)
BUILD = 1  # bump when the built arrays would differ, so a cached build is made again


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmojiSplit(Split):
    """images: (N, side, side, 3) uint8 on white; labels: (N,) group index into ``GROUPS`` (``classes``);
    art_sets: (N,) index into ``ART_SETS``; emoji: (N,) index of the emoji (every art set and skin
    tone of one emoji share it); tones: (N,) index into ``SKIN_TONES``."""

    art_sets: np.ndarray
    emoji: np.ndarray
    tones: np.ndarray

    @property
    def styles(self) -> np.ndarray:
        """The art set is the emoji's second label: models name it and draw in it."""
        return self.art_sets

    @property
    def tone_labels(self) -> np.ndarray:
        """The skin tone is the third label: the GAN draws people in the tone asked."""
        return self.tones

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """As many pictures as the split holds, drawn with each group equally likely: people with their
        skin tones are most of the pictures, and a model trained on them as they come neglects the rest."""
        per_group = np.bincount(self.labels, minlength=len(self.classes))
        weights = 1.0 / per_group[self.labels]
        return rng.choice(len(self), len(self), p=weights / weights.sum())

    def subset(self, keep: np.ndarray) -> "EmojiSplit":
        """The pictures where ``keep`` is true."""
        arrays = ("images", "labels", "art_sets", "emoji", "tones")
        return dataclasses.replace(self, **{name: getattr(self, name)[keep] for name in arrays})


def _tone(modifiers: str | None) -> int:
    if modifiers is None:
        return 0
    tones = {_MODIFIERS[part] for part in modifiers.split("-")}
    return tones.pop() if len(tones) == 1 else SKIN_TONES.index("mixed")


def _folders() -> list[Path]:
    explicit = os.environ.get("IMGJAX_EMOJI_DIR")
    return [Path(explicit)] if explicit else [cache_dir("emoji")]


def package_file(art_set: ArtSet, allow_download: bool = True) -> Path:
    """The art set's package file, found with its checksum checked, else downloaded and checked."""
    for folder in _folders():
        path = folder / art_set.file_name
        if path.is_file():
            if npm_integrity(path.read_bytes()) != art_set.integrity:
                raise DataError(f"{path}: contents do not match npm's checksum for {art_set.package} {art_set.version}")
            return path
    if allow_download and not os.environ.get("IMGJAX_EMOJI_DIR"):
        return download(art_set.url, cache_dir("emoji") / art_set.file_name, None, integrity=art_set.integrity)
    raise DataError(f"{art_set.name}: {art_set.file_name} not found in {', '.join(map(str, _folders()))}; "
                    "run `imgjax data emoji` to download it")


def _pictures(package: tarfile.TarFile, art_set: ArtSet, entries: list[dict]):
    """(emoji.json entry of the base emoji, skin-tone modifiers or None, picture bytes) for every
    picture of a grouped emoji in the package."""
    names = set(package.getnames())
    for entry in entries:
        if _in_group(entry["category"], entry["subcategory"]) is None:
            continue
        variants = [(None, entry)] + list((entry.get("skin_variations") or {}).items())
        for modifiers, variant in variants:
            member = next((name for name in art_set.members(variant) if name in names), None)
            if member is not None:
                yield entry, modifiers, package.extractfile(member).read()


def _rasterise(svg: bytes) -> bytes:
    """An SVG drawn as a 64 px PNG by librsvg (Debian's librsvg2-bin)."""
    try:
        drawn = subprocess.run(["rsvg-convert", "-w", str(PACKAGE_SIDE), "-h", str(PACKAGE_SIDE)], input=svg,
                               capture_output=True, check=True, timeout=60)
    except FileNotFoundError as error:
        raise DataError("OpenMoji's SVGs need rsvg-convert: apt install librsvg2-bin") from error
    return drawn.stdout


def _to_side(picture_bytes: bytes, side: int) -> np.ndarray:
    """A PNG (or SVG) composited on white and averaged down to side x side RGB."""
    if picture_bytes.lstrip()[:1] == b"<":
        picture_bytes = _rasterise(picture_bytes)
    with Image.open(io.BytesIO(picture_bytes)) as picture:
        rgba = picture.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(white, rgba).convert("RGB")
    return np.asarray(flat.resize((side, side), Image.Resampling.BOX))


def build(side: int = SIDE, allow_download: bool = True) -> dict[str, np.ndarray]:
    """Every grouped picture of every art set at ``side`` pixels, with its labels, as arrays."""
    if not 8 <= side <= PACKAGE_SIDE:
        raise ValueError(f"side must be between 8 and {PACKAGE_SIDE}, got {side}")
    pictures, groups, art_sets, unified, tones, names = [], [], [], [], [], []
    with tarfile.open(package_file(ART_SETS[0], allow_download)) as package:
        entries = json.load(package.extractfile(CATALOGUE))
    for index, art_set in enumerate(ART_SETS):
        with tarfile.open(package_file(art_set, allow_download)) as package:
            for entry, modifiers, picture in _pictures(package, art_set, entries):
                pictures.append(picture)
                groups.append(GROUPS.index(_in_group(entry["category"], entry["subcategory"])))
                art_sets.append(index)
                unified.append(entry["unified"])
                tones.append(_tone(modifiers))
                names.append(entry["short_name"])
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # rsvg-convert runs as processes of their own
        images = list(pool.map(lambda picture: _to_side(picture, side), pictures))
    emoji_codes = sorted(set(unified))
    number = {code: i for i, code in enumerate(emoji_codes)}
    emoji_names = dict(zip(unified, names))
    return {"images": np.stack(images), "labels": np.array(groups, np.int32), "art_sets": np.array(art_sets, np.int32),
            "emoji": np.array([number[code] for code in unified], np.int32), "tones": np.array(tones, np.int32),
            "emoji_codes": np.array(emoji_codes), "emoji_names": np.array([emoji_names[c] for c in emoji_codes])}


def _build_file(side: int) -> Path:
    fingerprint = "-".join(art_set.integrity[7:15].replace("/", "_").replace("+", "-") for art_set in ART_SETS)
    return _folders()[0] / f"emoji-{side}px-build{BUILD}-{fingerprint}.npz"


def load_all(side: int = SIDE, allow_download: bool = True) -> tuple[EmojiSplit, np.ndarray, np.ndarray]:
    """Every picture (an ``EmojiSplit``), each emoji's Unicode code and short name; built once and cached."""
    path = _build_file(side)
    if not path.is_file():
        arrays = build(side, allow_download)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, **arrays)
        os.replace(partial, path)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    every = EmojiSplit(images=arrays["images"], labels=arrays["labels"], classes=GROUPS, art_sets=arrays["art_sets"],
                       emoji=arrays["emoji"], tones=arrays["tones"])
    return every, arrays["emoji_codes"], arrays["emoji_names"]


def _drawn(pictures: EmojiSplit, seed: int) -> np.ndarray:
    """Per picture, whether its emoji is among one in ``TEST_SHARE`` of each group's emoji drawn
    with ``seed``: every art set and skin tone of an emoji fall on the same side."""
    count = int(pictures.emoji.max()) + 1
    group_of = np.full(count, -1, np.int32)
    group_of[pictures.emoji] = pictures.labels
    chosen = np.zeros(count, bool)
    rng = np.random.default_rng(seed)
    for group in range(len(GROUPS)):
        members = np.flatnonzero(group_of == group)
        chosen[rng.permutation(members)[:round(len(members) / TEST_SHARE)]] = True
    return chosen[pictures.emoji]


def load_split(split: str, side: int = SIDE, allow_download: bool = True) -> EmojiSplit:
    """The ``train`` or ``test`` pictures: every art set and skin tone of the split's emoji."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    every, _, _ = load_all(side, allow_download)
    in_test = _drawn(every, TEST_DRAW)
    return every.subset(in_test if split == "test" else ~in_test)


def hold_out(split: EmojiSplit) -> tuple[EmojiSplit, EmojiSplit]:
    """``split`` divided by emoji into the pictures to train on and a held-out one in ``TEST_SHARE``
    of each group's emoji (a different draw from the test one), for every choice of recipe."""
    held = _drawn(split, HELD_OUT_DRAW)
    return split.subset(~held), split.subset(held)


# The studio's examples: a test emoji per group, each art set in turn, picked by name before any
# model saw them (``write_examples`` draws them into ``imgjax/assets``).
# ----------------------------------------------------------------------------- skin tones

def shaded(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """``images`` each drawn a shade otherwise, at random: blurred (Gaussian, radius up to 1.3), up to
    4% darker or lighter, with noise (sigma up to 8 of 255): how a generator's samples or an upload
    differ from the drawings, which a reader of colours must read as the drawings themselves."""
    from PIL import ImageFilter
    rng = np.random.default_rng(seed)
    radius, light, noise = rng.uniform(0, 1.3, len(images)), rng.uniform(0.96, 1.04, len(images)), rng.uniform(0, 8, len(images))
    blurred = np.stack([np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(r))))
                        for image, r in zip(images, radius)]).astype(np.float32)
    out = blurred * light[:, None, None, None] + rng.normal(0, 1, images.shape) * noise[:, None, None, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def single_toned_people(split: EmojiSplit) -> tuple[np.ndarray, np.ndarray]:
    """The pictures of people (``TONED_GROUP``) in one skin tone or the default (not mixed), and their tones."""
    keep = (split.labels == GROUPS.index(TONED_GROUP)) & (split.tones != SKIN_TONES.index("mixed"))
    return split.images[keep], split.tones[keep]


def skin_palette(split: EmojiSplit) -> np.ndarray:
    """(art sets, ``SKIN_TONES``, 3) in [0, 1]: each art set's skin colour in each tone, the commonest
    colour (cells of 8 levels of 256, their pixels' mean) of the pixels in which the tone variants of
    one emoji differ; "mixed" takes the commonest of its two tones' pixels."""
    palette = np.zeros((len(ART_SETS), len(SKIN_TONES), 3), np.float32)
    varies = np.zeros(split.images.shape[:3], bool)
    toned = split.tones > 0
    for emoji_index, art_set in set(zip(split.emoji[toned].tolist(), split.art_sets[toned].tolist())):
        variants = np.flatnonzero((split.emoji == emoji_index) & (split.art_sets == art_set))
        pixels = split.images[variants].astype(np.int32)
        varies[variants] = (np.abs(pixels - pixels.mean(0)).sum(-1) > 15).max(0)  # over 15 of 765 off the mean
    for art_set in range(len(ART_SETS)):
        for tone in range(len(SKIN_TONES)):
            chosen = varies & ((split.art_sets == art_set) & (split.tones == tone))[:, None, None]
            pixels = split.images[chosen].astype(np.int32)
            if len(pixels):
                cells = (pixels // 8) @ np.array([1024, 32, 1])
                palette[art_set, tone] = pixels[cells == np.bincount(cells).argmax()].mean(0) / 255
    return palette


def training_palette() -> tuple[float, ...]:
    """``skin_palette`` of the pictures a model trains on (the training emoji but the held-out ones),
    flat, rounded to 4 places, as a config holds it."""
    return tuple(np.round(skin_palette(hold_out(load_split("train"))[0]), 4).ravel().tolist())


EXAMPLES = (("sweat_smile", "Twemoji"), ("female-technologist", "Noto"), ("+1", "OpenMoji"), ("turtle", "Twemoji"),
            ("pizza", "Noto"), ("volcano", "OpenMoji"), ("taxi", "Twemoji"), ("floppy_disk", "Noto"))


def write_examples(folder: Path) -> list[Path]:
    """``EXAMPLES`` as 64 px PNGs on white, named ``emoji_<group>_<name>-<art set>.png``."""
    with tarfile.open(package_file(ART_SETS[0])) as package:
        entries = {entry["short_name"]: entry for entry in json.load(package.extractfile(CATALOGUE))}
    written = []
    for index, (name, set_name) in enumerate(EXAMPLES):
        art_set = next(a for a in ART_SETS if a.name == set_name)
        entry = entries[name]
        with tarfile.open(package_file(art_set)) as package:
            names = set(package.getnames())
            member = next(m for m in art_set.members(entry) if m in names)
            picture = _to_side(package.extractfile(member).read(), PACKAGE_SIDE)
        group = _in_group(entry["category"], entry["subcategory"]).split()[0].lower()
        path = folder / f"emoji_{index}_{group}_{name.replace('+', 'plus')}-{set_name.lower()}.png"
        Image.fromarray(picture).save(path, optimize=True)
        written.append(path)
    return written


def data_available(side: int = SIDE) -> bool:
    """True when the built pictures or every package file lie on this machine (no download)."""
    packages = all(any((folder / a.file_name).is_file() for folder in _folders()) for a in ART_SETS)
    return _build_file(side).is_file() or packages


def describe_data(side: int = SIDE) -> str:
    """Fetch and build the pictures if needed; what there is, by group and art set, in a few lines."""
    every, codes, _ = load_all(side)
    test = _drawn(every, TEST_DRAW)
    lines = [f"{len(every)} pictures of {len(codes)} emoji at {side}x{side} in {_build_file(side)}",
             f"{'group':20s}" + "".join(f"{a.name:>10s}" for a in ART_SETS) + f"{'test emoji':>12s}"]
    for group, name in enumerate(GROUPS):
        in_group = every.labels == group
        counts = [int((in_group & (every.art_sets == a)).sum()) for a in range(len(ART_SETS))]
        test_emoji = len(set(every.emoji[in_group & test]))
        lines.append(f"{name:20s}" + "".join(f"{c:10d}" for c in counts) + f"{test_emoji:12d}")
    lines += [f"{a.name}: {a.credit}" for a in ART_SETS]
    return "\n".join(lines)
