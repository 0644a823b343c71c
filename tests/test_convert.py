"""ANN-to-SNN conversion of the digits MLP (SPEC section 5), checked with the golden model."""

import argparse
import json

import numpy as np
import pytest

from spikepack.config import HardwareConfig
from spikepack.firmware import convert as cv
from spikepack.firmware.layout import layout_network
from spikepack.firmware.model import SpikePackModel
from spikepack.sim.golden import signed_bits, unsigned_bits


@pytest.fixture(scope="module")
def trained():
    """The 64-64-32-10 MLP, trained once for this module."""
    return cv.train_float_mlp((64, 32), seed=0)


@pytest.fixture(scope="module")
def default_model(trained):
    mlp, split = trained
    return cv.convert(mlp, split.x_calib, timesteps=4, tau_shift=1, weight_bits=8)


def test_split_is_fixed_and_held_out(trained):
    _, split = trained
    assert split.x_test.shape == (360, 64) and split.y_test.shape == (360,)
    assert split.x_train.shape == (1797 - 360, 64)
    assert split.x_test.dtype == np.int64 and split.x_test.min() == 0 and split.x_test.max() == 16
    # stratified: every class has 36 (+-1) test images
    assert np.all(np.abs(np.bincount(split.y_test, minlength=10) - 36) <= 1)
    train_rows = {row.tobytes() for row in split.x_train}
    assert all(row.tobytes() in train_rows for row in split.x_calib)   # calibration from training
    assert len(split.x_calib) == round(0.1 * len(split.x_train))
    again = cv.load_split()
    np.testing.assert_array_equal(again.x_test, split.x_test)
    np.testing.assert_array_equal(again.x_calib, split.x_calib)


def test_snn_accuracy_within_one_point_of_float(trained, default_model):
    mlp, split = trained
    result = cv.evaluate(mlp, default_model, split.x_test, split.y_test)
    float_acc = np.mean(mlp.predict(split.x_test / 16) == split.y_test)
    snn_acc = np.mean(np.argmax(default_model.forward(default_model.encode(split.x_test))[0],
                                axis=1) == split.y_test)
    print(f"float {100 * float_acc:.2f}%  SNN {100 * snn_acc:.2f}% on {len(split.y_test)} images")
    assert result["float_accuracy"] == pytest.approx(float_acc)
    assert result["snn_accuracy"] == pytest.approx(snn_acc)
    assert result["images"] == 360
    assert float_acc >= 0.95, "the float MLP itself should reach ~97% on digits"
    assert abs(snn_acc - float_acc) <= 0.01 + 1e-12
    assert result["agreement"] >= 0.97


def test_converted_integers_fit_the_default_hardware(default_model):
    config = HardwareConfig()
    model = default_model
    assert (model.timesteps, model.tau_shift, model.weight_bits) == (4, 1, 8)
    assert model.widths == [64, 64, 32, 10]
    for i, layer in enumerate(model.layers):
        assert -128 <= layer.weights.min() and layer.weights.max() <= 127
        assert np.abs(layer.weights).max() == 127 or i == len(model.layers) - 1
        assert np.abs(layer.bias).max() < 2**15, f"layer {i} bias needs more than 16 bits"
        assert layer.fan_in <= config.max_fan_in and layer.neurons <= config.max_neurons
        if layer.threshold is not None:
            assert 1 <= layer.threshold.min() and layer.threshold.max() < 2**15
    biases = np.concatenate([layer.bias for layer in model.layers])
    assert model.metadata["bias_bits_needed"] == signed_bits(biases.min(), biases.max()) <= 16
    t_max = max(int(layer.threshold.max()) for layer in model.layers[:-1])
    assert model.metadata["threshold_bits_needed"] == unsigned_bits(t_max) <= 16
    image = layout_network(model.as_layer_tuples(), config)   # raises LayoutError if not
    assert image.layer_count == 3


def test_tighter_widths_are_respected(trained):
    mlp, split = trained
    model = cv.convert(mlp, split.x_calib, 4, 1, 8, bias_bits=10, threshold_bits=8)
    for layer in model.layers:
        assert np.abs(layer.bias).max() <= 511
        if layer.threshold is not None:
            assert layer.threshold.max() <= 255
    assert cv.evaluate(mlp, model, split.x_test, split.y_test)["snn_accuracy"] >= 0.95


def test_input_encoding_rounds_pixels(default_model, trained):
    _, split = trained
    z = default_model.encode(split.x_test)
    assert z.shape == (360, 64) and z.dtype == np.int64
    assert np.all(np.abs(z - 15 * split.x_test / 16) <= 0.5)


def test_hidden_spikes_track_the_float_activations(trained, default_model):
    """The first hidden layer's spike words, times a per-channel scale, approximate the float
    ReLU activations: a least-squares scale per channel leaves a small residual."""
    mlp, split = trained
    _, activations = default_model.forward(default_model.encode(split.x_test))
    z1 = activations[1].astype(np.float64)
    a1 = cv.float_activations(mlp, split.x_test)[0]
    live = (z1 ** 2).sum(axis=0) > 0
    scale = (z1[:, live] * a1[:, live]).sum(axis=0) / (z1[:, live] ** 2).sum(axis=0)
    residual = np.linalg.norm(z1[:, live] * scale - a1[:, live]) / np.linalg.norm(a1[:, live])
    assert residual < 0.08


def test_convert_is_deterministic(trained, default_model):
    mlp, split = trained
    again = cv.convert(mlp, split.x_calib, timesteps=4, tau_shift=1, weight_bits=8)
    assert again.to_bytes() == default_model.to_bytes()
    other = cv.convert(mlp, split.x_calib, timesteps=6, tau_shift=1, weight_bits=8)
    assert other.to_bytes() != default_model.to_bytes()


def test_lif_and_tau4_models_convert_and_run(trained):
    mlp, split = trained
    for kwargs in (dict(neuron="lif"), dict(tau_shift=2)):
        model = cv.convert(mlp, split.x_calib, **{"timesteps": 4, **kwargs})
        assert SpikePackModel.from_bytes(model.to_bytes()) == model
        pred = model.predict(split.x_test[:20])
        assert pred.shape == (20,) and pred.min() >= 0 and pred.max() <= 9


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    cv.add_arguments(parser)
    return cv.main(parser.parse_args(argv))


def test_cli_writes_model_and_test_inputs(tmp_path, capsys, trained, default_model):
    mlp, split = trained
    model_path, inputs_path = tmp_path / "d" / "model.npz", tmp_path / "d" / "test_inputs.npz"
    assert _run_cli(["-o", str(model_path), "--inputs-out", str(inputs_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert "float MLP accuracy" in out and "golden SNN accuracy" in out
    model = SpikePackModel.load(model_path)
    assert model.layers == default_model.layers          # the CLI trains the same network
    result = cv.evaluate(mlp, model, split.x_test, split.y_test)
    assert summary["snn_accuracy"] == model.metadata["snn_test_accuracy"] == result["snn_accuracy"]
    assert summary["float_accuracy"] == result["float_accuracy"]
    inputs = dict(np.load(inputs_path, allow_pickle=False))
    assert inputs["z"].shape == (360, 64) and inputs["z"].dtype == np.int64
    assert inputs["labels"].shape == (360,)
    np.testing.assert_array_equal(inputs["labels"], split.y_test)
    np.testing.assert_array_equal(inputs["z"], model.encode(split.x_test))
    logits, _ = model.forward(inputs["z"])
    np.testing.assert_array_equal(inputs["logits"], logits)
    assert np.mean(inputs["predictions"] == inputs["labels"]) == pytest.approx(result["snn_accuracy"])
    # same options, same bytes
    assert _run_cli(["-o", str(tmp_path / "again.npz"), "--inputs-out", str(tmp_path / "in2.npz")]) == 0
    assert (tmp_path / "again.npz").read_bytes() == model_path.read_bytes()
    assert (tmp_path / "in2.npz").read_bytes() == inputs_path.read_bytes()


def test_cli_rejects_bad_options(capsys):
    assert _run_cli(["--hidden", "64,x"]) == 2
    assert "comma-separated" in capsys.readouterr().err
    assert _run_cli(["--timesteps", "0"]) == 2
    assert "T must be between 1 and 16" in capsys.readouterr().err
