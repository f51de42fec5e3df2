"""The datasets the families train on, each in one place: its pictures' source and splits, its
classes, side and channels. The loop and the families read a ``Dataset``; none branches on a name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from . import data, emoji


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str  # as ``--dataset`` takes it
    title: str  # as a page names it
    classes: tuple[str, ...]
    side: int
    channels: int
    # (data folder or None, held-out count) -> (pictures to train on, held-out pictures for choices)
    train_and_held_out: Callable[[str | None, int], tuple[data.Split, data.Split]]
    test: Callable[[str | None], data.Split]  # data folder or None -> the test pictures
    credit: str
    noun: str  # what its pictures are, as a sentence names them ("garments")
    light_on_dark: bool  # drawn light on black (Fashion-MNIST), or in colour on white (emoji)
    examples: str  # the file names of its example pictures in ``imgjax/assets`` (a glob pattern)
    styles: tuple[str, ...] = ()  # the names of the second label (emoji: the art sets); () none
    tones: tuple[str, ...] = ()  # the names of the third label (emoji: the skin tones); () none
    toned_classes: tuple[str, ...] = ()  # the classes whose pictures come in those tones
    # () -> each style's skin colour in each tone, flat (``emoji.skin_palette``); read only by a
    # config that asks for it (the GAN's ``skin_channel_width``). None: the dataset has none.
    tone_palette: Callable[[], tuple[float, ...]] | None = None

    def sized(self, model_config, family: str):
        """``model_config`` with its ``side``, ``channels``, ``num_classes``, ``num_styles`` and ``num_tones``
        set to this dataset's, those it has, and its ``tone_palette`` where the config asks (a GAN's
        ``skin_channel_width``); a family whose config has no channels (a fully convolutional one
        needs no side) takes only 28x28 gray pictures and refuses others."""
        sizes = {"side": self.side, "channels": self.channels, "num_classes": len(self.classes),
                 "num_styles": len(self.styles), "num_tones": len(self.tones)}
        fields = {field.name for field in dataclasses.fields(model_config)}
        if getattr(model_config, "skin_channel_width", 0) and self.tone_palette:
            sizes["tone_palette"] = self.tone_palette()
        if "channels" not in fields and (self.side, self.channels) != (28, 1):
            raise data.DataError(f"the {family} family does not train on {self.title} ({self.side}x{self.side}, "
                                 f"{self.channels} channels) yet")
        return dataclasses.replace(model_config, **{k: v for k, v in sizes.items() if k in fields})


def _idx(spec: data.DatasetSpec, title: str, credit: str, noun: str, examples: str) -> Dataset:
    """An IDX dataset of 28x28 gray pictures (``data``), holding out a fixed draw of training images."""
    return Dataset(spec.name, title, spec.classes, 28, 1,
                   lambda folder, held_out: data.hold_out(data.load_split("train", spec.name, folder), held_out),
                   lambda folder: data.load_split("test", spec.name, folder), credit, noun, True, examples)


def _emoji_train_and_held_out(folder: str | None, held_out: int):
    """The training emoji, one in ``emoji.TEST_SHARE`` of them held out (``held_out`` 0: none)."""
    train = emoji.load_split("train")
    return emoji.hold_out(train) if held_out else (train, train.subset(np.zeros(len(train), bool)))


DATASETS = {dataset.name: dataset for dataset in (
    _idx(data.FASHION_MNIST, "Garments", "Fashion-MNIST by Zalando Research (MIT)", "garments", "example_*.png"),
    _idx(data.MNIST, "Digits", "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges", "digits", ""),
    Dataset("emoji", "Emoji", emoji.GROUPS, emoji.SIDE, 3, _emoji_train_and_held_out,
            lambda folder: emoji.load_split("test"), "; ".join(a.credit for a in emoji.ART_SETS), "emoji", False,
            "emoji_*.png", styles=tuple(a.name for a in emoji.ART_SETS), tones=emoji.SKIN_TONES,
            toned_classes=emoji.TONED_GROUPS, tone_palette=emoji.training_palette),
)}
NAMES = tuple(DATASETS)


def of_split(split: data.Split) -> Dataset:
    """The dataset a split's pictures come from, known by its classes."""
    return next(dataset for dataset in DATASETS.values() if dataset.classes == split.classes)


def by_title(title: str) -> Dataset:
    """The dataset a page names ``title``."""
    return next(dataset for dataset in DATASETS.values() if dataset.title == title)


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise data.DataError(f"no dataset {name!r}; the datasets are {', '.join(NAMES)}")
    return DATASETS[name]
