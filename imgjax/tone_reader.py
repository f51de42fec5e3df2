"""The reader of skin tones: a small CNN (``cnn.Classifier``, one class per tone) that names the
skin tone of a picture of people, ``emoji.SKIN_TONES`` but mixed. It measures the GAN's people per
tone (``evaluate.people_per_tone``) and reads an uploaded picture's tone for the Edit tab.

Trained on the training people and ``emoji.shaded`` copies of them (blurred, relit, noisy), it reads
a generator's softer pictures as it reads the drawings: a reader of colour histograms read a third
of the held-out people wrongly once blurred by one pixel, and so took a GAN's soft edges for a darker
tone (docs/emoji.md, "The tone reader").
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from . import checkpoint, cnn
from .data import Split, batches, steps_per_epoch, to_float
from .emoji import SIDE, SKIN_TONES, EmojiSplit, shaded, single_toned_people
from .serving import frozen

TONES = SKIN_TONES.index("mixed")  # the tones it names: the default and five skin tones
CONFIG = cnn.CNNConfig(widths=(16, 32, 64), hidden=64, dropout=0.2, num_classes=TONES, side=SIDE, channels=3)
BATCH = 100  # pictures read per compiled call (the last batch padded)


def tone_of(model: cnn.Classifier, images):
    """(N, side, side, 3) float32 in [0, 1] -> (N,) the index of the likeliest tone."""
    return model(images).argmax(-1)


class ToneReader:
    """A trained ``cnn.Classifier`` of tones, read through a compiled function of its frozen weights,
    so any number of threads may read at once."""

    def __init__(self, model: cnn.Classifier):
        self.model = model
        self._read_fn = frozen(tone_of, model)

    @classmethod
    def fit(cls, split: EmojiSplit, epochs: int = 8, shaded_copies: int = 3, seed: int = 0) -> "ToneReader":
        """Train on the split's ``single_toned_people`` and ``shaded_copies`` ``shaded`` copies of
        each, with the CNN family's step (flips, shifts, dropout, one-cycle AdamW)."""
        from .train import TrainConfig
        images, tones = single_toned_people(split)
        people = Split(np.concatenate([images, *(shaded(images, copy) for copy in range(shaded_copies))]),
                       np.tile(tones, 1 + shaded_copies).astype(np.int32), classes=SKIN_TONES[:TONES])
        config = TrainConfig(family="cnn", epochs=epochs, batch_size=128, learning_rate=2e-3, seed=seed)
        training = cnn.CNNTraining(CONFIG, config, epochs * steps_per_epoch(people, config.batch_size))
        key = jax.random.key(seed)
        for epoch in range(epochs):
            for pixels, labels in batches(people, config.batch_size, seed, epoch):
                key, step_key = jax.random.split(key)
                cnn.train_step(training, pixels, labels, step_key)
        return cls(training.model)

    def read(self, images: np.ndarray) -> np.ndarray:
        """(N, side, side, 3) uint8 -> (N,) tone indices into ``SKIN_TONES``."""
        return cnn.predict_in_batches(lambda _, batch: self._read_fn(batch), None, to_float(images), BATCH)

    def accuracy(self, split: EmojiSplit) -> float:
        """The share of the split's ``single_toned_people`` read as their tone."""
        images, tones = single_toned_people(split)
        return float(np.mean(self.read(images) == tones))

    def arrays(self) -> dict[str, np.ndarray]:
        """Its weights by name, for a safetensors file (``from_arrays`` reads them back)."""
        return checkpoint.state_arrays(self.model)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "tone reader") -> "ToneReader":
        model = cnn.Classifier(CONFIG, rngs=nnx.Rngs(0))
        checkpoint.fill_state(model, arrays, source)
        return cls(model)
