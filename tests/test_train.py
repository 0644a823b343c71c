"""The demo CNN: the committed models/mnist_cnn.onnx imports to the network the accelerator runs,
our float forward pass agrees with onnxruntime, and onnxruntime's accuracy on the 1,000 held-out
MNIST images is at least 97.5%. Retraining with the documented command (slow; needs the
``train`` extra) gives the same network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikepack.firmware.graph import FloatConv, FloatDense, FloatMaxPool
from spikepack.firmware.onnx_import import load_onnx, onnx_float_predict

MODEL = Path(__file__).resolve().parents[1] / "models" / "mnist_cnn.onnx"
#: the float accuracy models/README.md reports; onnxruntime must reach it on the test split
REPORTED_ACCURACY = 0.975


@pytest.fixture(scope="module")
def mnist():
    from spikepack.firmware.datasets import load_mnist_split
    return load_mnist_split()


def test_committed_model_is_the_demo_cnn():
    assert MODEL.stat().st_size < 300_000
    net = load_onnx(MODEL)
    assert net.input_shape == (1, 28, 28)
    assert [type(layer) for layer in net.layers] == [FloatConv, FloatMaxPool, FloatConv,
                                                     FloatMaxPool, FloatDense]
    c1, p1, c2, p2, out = net.layers
    assert c1.weight.shape == (16, 1, 3, 3) and c1.padding == (1, 1) and c1.relu
    assert c2.weight.shape == (32, 16, 3, 3) and c2.padding == (1, 1) and c2.relu
    assert p1.window == p2.window == (2, 2)
    assert out.weight.shape == (10, 32 * 7 * 7) and not out.relu
    assert net.shapes()[-2] == (32, 7, 7)


def test_committed_model_forward_matches_onnxruntime(mnist):
    net = load_onnx(MODEL)
    x = mnist.x_test[:100]
    ref = onnx_float_predict(MODEL, x)
    got = net.forward(x)[-1]
    err = np.abs(got - ref).max()
    assert err <= 1e-4 * np.abs(ref).max(), f"max |forward - ORT| = {err}"
    assert np.array_equal(got.argmax(axis=1), ref.argmax(axis=1))


def test_committed_model_float_accuracy(mnist):
    logits = onnx_float_predict(MODEL, mnist.x_test)
    accuracy = float(np.mean(logits.argmax(axis=1) == mnist.y_test))
    print(f"onnxruntime float accuracy {100 * accuracy:.2f}% on {len(mnist.y_test)} test images")
    assert len(mnist.y_test) == 1000
    assert accuracy >= REPORTED_ACCURACY


def _train(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spikepack.train", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=1800)


@pytest.mark.parametrize("args, fragment", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--shift", "-1"], "--shift must be >= 0"),
    (["--lr", "0"], "--lr must be > 0"),
])
def test_train_bad_usage(tmp_path, args, fragment):
    out = tmp_path / "m.onnx"
    r = _train(*args, "-o", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikepack train: ")
    try:
        import flax, jax, jax2onnx, optax  # noqa: F401
    except ImportError:
        assert "training extra" in lines[0]
    else:
        assert fragment in lines[0]
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.train
def test_retraining_reproduces_committed_model(tmp_path, mnist):
    out = tmp_path / "mnist_cnn.onnx"
    r = _train("--dataset", "mnist", "--seed", "0", "-q", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "float accuracy (onnxruntime)" in r.stdout
    mine, committed = load_onnx(out), load_onnx(MODEL)
    for a, b in zip(mine.layers, committed.layers):
        assert type(a) is type(b)
        if hasattr(a, "weight"):
            scale = np.abs(b.weight).max()
            np.testing.assert_allclose(a.weight, b.weight, rtol=0, atol=1e-3 * scale)
            np.testing.assert_allclose(a.bias, b.bias, rtol=0, atol=1e-3 * scale)
    logits_mine = onnx_float_predict(out, mnist.x_test)
    logits_committed = onnx_float_predict(MODEL, mnist.x_test)
    agree = np.mean(logits_mine.argmax(axis=1) == logits_committed.argmax(axis=1))
    assert agree >= 0.998, f"retrained and committed networks disagree on {1 - agree:.1%}"
