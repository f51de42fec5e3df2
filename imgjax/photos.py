"""Photographs for the photo denoiser (``imgjax.photo``): where they come from, which are kept out of
training, and the patches training reads.

No dataset hub is involved. Training and validation photos are wallpapers that Debian ships as
packages, photographs only (those packages also hold drawings and renders), and some of the sample
photos scikit-image bundles (textures, coins, handwriting, a retina, a tissue slide), each with its licence:

    sudo apt install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers
    pip install scikit-image

``VALIDATION`` names the photos held out for choices (recipes, baseline settings); the evaluation
photos are scikit-image's other sample photographs (``imgjax.evaluate.PHOTO_EVALUATION``), which
training never sees: the README's figures are measured on them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from .data import DataError, Split


@dataclasses.dataclass(frozen=True)
class PhotoSource:
    package: str  # the Debian package (or, with from_pypi, the PyPI project) that installs the files
    licence: str  # as the package's debian/copyright (or the sample's own documentation) states it
    folder: str
    files: tuple[str, ...]
    from_pypi: bool = False


def _scikit_image_samples() -> str:
    """The folder of scikit-image's bundled sample images, found without importing scikit-image
    (serving never needs it); empty when it is not installed."""
    spec = importlib.util.find_spec("skimage")
    return str(Path(spec.submodule_search_locations[0]) / "data") if spec else ""


SOURCES = (
    PhotoSource("lomiri-wallpapers-16.04", "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 (per file)", "/usr/share/backgrounds", (
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")),
    PhotoSource("lomiri-wallpapers-20.04", "CC-BY-SA-3.0", "/usr/share/backgrounds", ("Kleiber_by_Lukas_Baubkus.jpg",)),
    PhotoSource("mate-backgrounds", "GPL-2+", "/usr/share/backgrounds/mate/nature", (
        "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg", "LadyBird.jpg",
        "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg")),
    PhotoSource("plasma-workspace-wallpapers", "GPL-2+", "/usr/share/wallpapers", tuple(
        f"{name}/contents/images/2560x1600.jpg" for name in (
            "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut",
            "Path", "summer_1am"))),
    # Never the evaluation photos (camera, moon, clock_motion, astronaut, coffee, chelsea, rocket).
    PhotoSource("scikit-image", "CC0-1.0 (brick, grass, gravel, retina); public domain or no known copyright "
                "restrictions (text, coins, ihc)", _scikit_image_samples(), (
        "brick.png", "grass.png", "gravel.png", "coins.png", "text.png", "retina.jpg", "ihc.png"), from_pypi=True),
)

# Held out of training, one or two per package: recipes and the baselines' settings are chosen on them.
VALIDATION = ("Dragonfly_by_Bolly.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "LadyBird.jpg",
              "Grey/contents/images/2560x1600.jpg", "ColorfulCups/contents/images/2560x1600.jpg")

EVALUATION_CROP = 256  # the baselines are tuned, and the evaluation measures, on centre crops of this side

# Training sees each photo at these long sides (a smaller one once, at its own size): downscaling the
# multi-megapixel wallpapers removes their JPEG artefacts and sensor noise (the targets must be clean)
# and shows objects at several sizes.
TRAINING_SIDES = (512, 768, 1024)
PATCH = 64  # training patches are PATCH x PATCH
PATCHES_PER_PHOTO_AND_SIDE = 192
VALIDATION_PATCH = 128
VALIDATION_PATCHES_PER_PHOTO = 8


def photo_paths(names=None) -> list[Path]:
    """The installed training and validation photos (``names``: only those); raises DataError with
    the install command when none of the packages is installed."""
    found = [path for path in listed_paths(names) if path.exists()]
    if not found:
        raise DataError(f"no training photos found; install them with: {install_command()}")
    return found


def listed_paths(names=None) -> list[Path]:
    """Where the training and validation photos of SOURCES (``names``: only those) are, installed or not."""
    return [Path(source.folder) / name for source in SOURCES for name in source.files
            if names is None or name in names]


def install_command() -> str:
    debian = " ".join(source.package for source in SOURCES if not source.from_pypi)
    pypi = " ".join(source.package for source in SOURCES if source.from_pypi)
    return f"sudo apt install {debian} && pip install {pypi}"


def read_photo(path: Path, long_side: int) -> np.ndarray:
    """The photo as (H, W, 3) uint8, downscaled (with an antialiasing filter) to ``long_side``."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (long_side, long_side))  # JPEG decodes at a reduced scale directly
            image = image.convert("RGB")
            scale = long_side / max(image.size)
            if scale < 1:
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
            return np.asarray(image)
    except OSError as error:
        raise DataError(f"{path}: cannot read the photo ({error})") from error


def training_sides(path: Path) -> tuple[int, ...]:
    """The long sides the photo is read at: TRAINING_SIDES, those above its own long side replaced by it
    (so a small photo is read once, at its own size, rather than several times unchanged)."""
    with Image.open(path) as image:
        long_side = max(image.size)
    return tuple(sorted({min(side, long_side) for side in TRAINING_SIDES}))


def random_patches(photo: np.ndarray, count: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``side`` x ``side`` crops of an (H, W, 3) photo."""
    h, w = photo.shape[:2]
    ys, xs = rng.integers(0, h - side + 1, count), rng.integers(0, w - side + 1, count)
    return np.stack([photo[y:y + side, x:x + side] for y, x in zip(ys, xs)])


def training_splits(seed: int = 0) -> tuple[Split, Split]:
    """(training patches, validation patches): PATCH-sided crops of the training photos at each of
    ``training_sides``, and VALIDATION_PATCH-sided crops of the VALIDATION photos at 512 pixels. The
    crops are a fixed draw (``seed``; the validation crops from a stream of their own, so they stay put
    when training photos are added); the training step flips, rotates and adds noise afresh at each
    step. Labels are unused (zeros). Raises DataError naming any photo that is missing."""
    missing = [str(path) for path in listed_paths() if not path.exists()]
    if missing:
        raise DataError(f"{len(missing)} training photos are missing ({', '.join(missing[:3])}, ...); "
                        f"install them with: {install_command()}")
    train_rng, held_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    validation = set(photo_paths(VALIDATION))
    train = [random_patches(read_photo(path, side), PATCHES_PER_PHOTO_AND_SIDE, PATCH, train_rng)
             for path in photo_paths() if path not in validation for side in training_sides(path)]
    held = [random_patches(read_photo(path, 512), VALIDATION_PATCHES_PER_PHOTO, VALIDATION_PATCH, held_rng)
            for path in sorted(validation)]
    as_split = lambda patches: Split(np.concatenate(patches), np.zeros(sum(map(len, patches)), np.int32))
    return as_split(train), as_split(held)


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def validation_crops() -> np.ndarray:
    """The VALIDATION photos at 512 pixels, each its centre crop of EVALUATION_CROP pixels, as
    (N, S, S, 3) float32 in [0, 1]: what the baselines' settings are tuned on."""
    return np.stack([centre_crop(read_photo(path, 512), EVALUATION_CROP) for path in photo_paths(VALIDATION)]
                    ).astype(np.float32) / 255.0
