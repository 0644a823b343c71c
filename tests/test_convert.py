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
    assert "--hidden: hidden must be comma-separated" in capsys.readouterr().err
    assert _run_cli(["--timesteps", "0"]) == 2
    assert "-T/--timesteps: must be an integer between 1 and 16, not 0" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--threshold-bits", "0"], "spikepack convert: --threshold-bits: must be an integer between "
                                "1 and 32, not 0"),
    (["-T", "16", "--tau-shift", "3"], "spikepack convert: -T/--timesteps, --tau-shift: T = 16 "
                                       "with tau = 8 gives P = 40210710958665"),
    (["-T", "14", "--tau-shift", "3", "--threshold-bits", "32"],
     "spikepack convert: --threshold-bits, -T/--timesteps, --tau-shift: 32-bit thresholds"),
    (["--tau-shift", "4"], "spikepack convert: --tau-shift: must be one of 1, 2, 3, not 4"),
    (["--weight-bits", "1"], "spikepack convert: --weight-bits: must be an integer between 2 and 16"),
    (["--bias-bits", "40"], "spikepack convert: --bias-bits: must be an integer between 2 and 32"),
    (["--percentile", "0"], "spikepack convert: --percentile: must be in (0, 100]"),
    (["--neuron", "izhikevich"], "spikepack convert: --neuron: must be one of spikepack, lif"),
    (["--dataset", "mnist"], "spikepack convert: --dataset and --calib go with --onnx"),
])
def test_cli_names_the_option_at_fault(argv, message, tmp_path):
    """Issue 12: one line naming the option the user gave, exit 2, no traceback, no file."""
    import subprocess
    import sys
    out = tmp_path / "m.npz"
    run = subprocess.run([sys.executable, "-m", "spikepack", "convert", *argv, "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(message), run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr and run.stdout == ""
    assert not out.exists()


def test_every_option_has_help():
    parser = argparse.ArgumentParser()
    cv.add_arguments(parser)
    for action in parser._actions:
        assert action.help and action.help.strip(), f"{action.option_strings} has no help"
    neuron = next(a for a in parser._actions if "--neuron" in a.option_strings)
    assert "lif" in neuron.help and "spikepack" in neuron.help


# --- convert --onnx (the importer is the onnx branch's; here the CLI path runs on FloatNetworks
# built in the test, read back from an .npz standing in for the .onnx file) -----------------------

def _save_network(net, path):
    """Store a FloatNetwork of dense / conv / maxpool layers as an .npz (the test's "ONNX file")."""
    from spikepack.firmware.graph import FloatConv, FloatMaxPool
    arrays = {"input_shape": np.array(net.input_shape)}
    for i, layer in enumerate(net.layers):
        if isinstance(layer, FloatMaxPool):
            arrays[f"{i}.window"] = np.array(layer.window)
            continue
        arrays[f"{i}.weight"], arrays[f"{i}.bias"] = layer.weight, layer.bias
        arrays[f"{i}.relu"] = np.array(layer.relu)
        if isinstance(layer, FloatConv):
            arrays[f"{i}.stride"], arrays[f"{i}.padding"] = np.array(layer.stride), np.array(layer.padding)
    np.savez(path, **arrays)
    return path


def _load_network(path):
    from spikepack.firmware.graph import FloatConv, FloatDense, FloatMaxPool, FloatNetwork
    a = dict(np.load(path))
    layers, i = [], 0
    while f"{i}.window" in a or f"{i}.weight" in a:
        if f"{i}.window" in a:
            layers.append(FloatMaxPool(tuple(int(v) for v in a[f"{i}.window"])))
        elif f"{i}.stride" in a:
            layers.append(FloatConv(a[f"{i}.weight"], a[f"{i}.bias"],
                                    tuple(int(v) for v in a[f"{i}.stride"]),
                                    tuple(int(v) for v in a[f"{i}.padding"]), bool(a[f"{i}.relu"])))
        else:
            layers.append(FloatDense(a[f"{i}.weight"], a[f"{i}.bias"], bool(a[f"{i}.relu"])))
        i += 1
    return FloatNetwork(tuple(int(v) for v in a["input_shape"]), tuple(layers))


@pytest.fixture
def float_onnx(monkeypatch):
    """``convert --onnx`` reads FloatNetworks from the test's files; the float reference is the
    network's own NumPy forward pass (onnxruntime's role after the merge)."""
    def predict(path, x):
        net = _load_network(path)
        return net.forward(np.asarray(x, dtype=np.float64).reshape((len(x),) + net.input_shape))[-1]
    monkeypatch.setattr(cv, "_onnx_tools", lambda: (_load_network, predict))


def test_onnx_path_on_the_digits_mlp_gives_the_convert_model(tmp_path, capsys, trained,
                                                             default_model, float_onnx):
    from spikepack.firmware.quantize import float_network_from_sklearn
    mlp, split = trained
    onnx = _save_network(float_network_from_sklearn(mlp), tmp_path / "mlp.npz")
    out = tmp_path / "m.npz"
    assert _run_cli(["--onnx", str(onnx), "-o", str(out), "--inputs-out",
                     str(tmp_path / "in.npz")]) == 0        # 64 inputs: digits by default
    text = capsys.readouterr().out
    summary = json.loads(text.strip().splitlines()[-1])
    model = SpikePackModel.load(out)
    assert model.layers == default_model.layers and model.input_encoding == default_model.input_encoding
    result = cv.evaluate(mlp, model, split.x_test, split.y_test)
    assert summary["float_accuracy"] == pytest.approx(result["float_accuracy"])
    assert summary["snn_accuracy"] == model.metadata["snn_test_accuracy"] == result["snn_accuracy"]
    assert "float accuracy (onnxruntime): " in text and "golden SNN accuracy: " in text
    inputs = dict(np.load(tmp_path / "in.npz"))
    np.testing.assert_array_equal(inputs["z"], model.encode(split.x_test))


def _digits_cnn(split):
    from spikepack.firmware.graph import FloatConv, FloatDense, FloatMaxPool, FloatNetwork
    rng = np.random.default_rng(5)
    body = FloatNetwork((1, 8, 8), (FloatConv(rng.normal(0, 0.5, (6, 1, 3, 3)), rng.normal(0, 0.05, 6),
                                              (1, 1), (1, 1)), FloatMaxPool((2, 2))))
    f = body.forward(split.x_train.reshape(-1, 1, 8, 8) / 16)[-1].reshape(len(split.x_train), -1)
    f1 = np.hstack([f, np.ones((len(f), 1))])
    coef = np.linalg.solve(f1.T @ f1 + 1e-2 * np.eye(f1.shape[1]), f1.T @ np.eye(10)[split.y_train])
    return FloatNetwork((1, 8, 8), body.layers + (FloatDense(coef[:-1].T.copy(), coef[-1].copy(),
                                                             relu=False),))


def test_onnx_path_with_a_calibration_file_converts_a_cnn(tmp_path, capsys, trained, float_onnx):
    from spikepack.firmware.quantize import quantize
    _, split = trained
    net = _digits_cnn(split)
    onnx = _save_network(net, tmp_path / "cnn.npz")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=split.x_calib.reshape(-1, 1, 8, 8), x_max=np.int64(16),
             x_test=split.x_test.reshape(-1, 1, 8, 8), y_test=split.y_test)
    out = tmp_path / "cnn_model.npz"
    assert _run_cli(["--onnx", str(onnx), "--calib", str(calib), "-T", "6", "-o", str(out),
                     "--inputs-out", str(tmp_path / "in.npz")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = SpikePackModel.load(out)
    assert [layer.kind for layer in model.layers] == ["conv", "maxpool", "dense"]
    assert model == quantize(net, split.x_calib, x_max=16, timesteps=6, metadata=model.metadata)
    float_pred = np.argmax(net.forward(split.x_test.reshape(-1, 1, 8, 8) / 16)[-1], axis=1)
    snn_pred = model.predict(split.x_test)
    assert summary["float_accuracy"] == pytest.approx(np.mean(float_pred == split.y_test))
    assert summary["snn_accuracy"] == pytest.approx(np.mean(snn_pred == split.y_test))
    assert summary["agreement"] == pytest.approx(np.mean(snn_pred == float_pred))
    assert summary["snn_accuracy"] >= summary["float_accuracy"] - 0.03
    assert summary["shapes"] == [[1, 8, 8], [6, 8, 8], [6, 4, 4], [10]]
    inputs = dict(np.load(tmp_path / "in.npz"))
    assert inputs["z"].shape == (360, 1, 8, 8)
    np.testing.assert_array_equal(inputs["logits"], model.forward(inputs["z"])[0])
    # no test set: the model is still written, the accuracy is not claimed
    np.savez(calib, x=split.x_calib.reshape(-1, 64), x_max=np.int64(16))
    assert _run_cli(["--onnx", str(onnx), "--calib", str(calib), "-T", "6", "-o",
                     str(tmp_path / "again.npz")]) == 0
    assert "accuracy not measured" in capsys.readouterr().out
    assert SpikePackModel.load(tmp_path / "again.npz").layers == model.layers


@pytest.mark.parametrize("make, argv, message", [
    (None, ["--onnx", "{tmp}/missing.onnx"], "missing.onnx: no such ONNX file"),
    (None, ["--onnx", "{tmp}"], ": not a regular file (the ONNX model is read twice)"),
    ("cnn", ["--onnx", "{net}", "--calib", "{tmp}/nothing.npz"], "nothing.npz: no such file"),
    ("cnn", ["--onnx", "{net}", "--calib", "{calib_no_max}"], "array 'x_max' is missing"),
    ("cnn", ["--onnx", "{net}", "--calib", "{calib_extra}"], "unknown array(s) weights"),
    ("cnn", ["--onnx", "{net}", "--calib", "{calib_float}"], "x must be an integer array"),
    ("cnn", ["--onnx", "{net}", "--calib", "{calib_half}"], "x_test and y_test come together"),
    ("cnn", ["--onnx", "{net}", "--calib", "{calib_big}"], "calibration inputs must be pixels in 0..16"),
    ("cnn", ["--onnx", "{net}", "--dataset", "digits"], None),   # 64-vectors fit a 1x8x8 input
    ("odd", ["--onnx", "{net}"], "--onnx: the network's input is 3 x 5 x 5; give --dataset or --calib"),
    ("wide", ["--onnx", "{net}", "--calib", "{calib_wide}", "-T", "14", "--tau-shift", "3",
              "--weight-bits", "16"], "-T/--timesteps, --tau-shift, --weight-bits: layer 0"),
])
def test_onnx_path_errors_are_one_line(tmp_path, capsys, float_onnx, trained, make, argv, message):
    from spikepack.firmware.graph import FloatConv, FloatDense, FloatNetwork
    _, split = trained
    nets = {"cnn": lambda: _digits_cnn(split),
            "odd": lambda: FloatNetwork((3, 5, 5), (FloatConv(np.ones((2, 3, 5, 5)), np.zeros(2)),
                                                    FloatDense(np.ones((2, 2)), np.zeros(2), relu=False))),
            "wide": lambda: FloatNetwork((4096,), (FloatDense(np.ones((2, 4096)), np.zeros(2)),
                                                   FloatDense(np.ones((2, 2)), np.zeros(2), relu=False)))}
    net = _save_network(nets[make](), tmp_path / "net.npz") if make else None
    files = {"calib_no_max": dict(x=np.zeros((2, 64), dtype=int)),
             "calib_extra": dict(x=np.zeros((2, 64), dtype=int), x_max=16, weights=np.zeros(2)),
             "calib_float": dict(x=np.zeros((2, 64)), x_max=16),
             "calib_half": dict(x=np.zeros((2, 64), dtype=int), x_max=16, x_test=np.zeros((2, 64), dtype=int)),
             "calib_big": dict(x=np.full((2, 64), 17), x_max=16),
             "calib_wide": dict(x=np.zeros((2, 4096), dtype=int), x_max=16)}
    names = {"tmp": str(tmp_path), "net": str(net)}
    for name, arrays in files.items():
        names[name] = str(tmp_path / f"{name}.npz")
        np.savez(names[name], **arrays)
    if message is None:
        assert _run_cli([a.format(**names) for a in argv] + ["-o", str(tmp_path / "ok.npz")]) == 0
        capsys.readouterr()
        return
    assert _run_cli([a.format(**names) for a in argv] + ["-o", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikepack convert: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.npz").exists()


def test_without_the_importer_onnx_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_importer(name, *args, **kwargs):
        if name == "spikepack.firmware.onnx_import":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_importer)
    assert _run_cli(["--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "--onnx needs the ONNX importer" in capsys.readouterr().err


# --- the tables in docs/conversion.md --------------------------------------------------------------

def _fake_rows(base):
    return [{"T": T, "weight_bits": b, "tau_shift": k, "snn_accuracy": base - 0.01 * k,
             "agreement": 0.9, "bias_bits_needed": 12, "threshold_bits_needed": 9}
            for k in cv.TABLE_TAU for b in cv.TABLE_BITS for T in cv.TABLE_T]


def test_table_docs_keep_both_sections(tmp_path):
    digits = {"hidden": [64, 32], "seed": 0, "float_accuracy": 0.97, "rows": _fake_rows(0.96),
              "lif_accuracy": 0.5}
    md, png = cv.write_table_docs(digits, tmp_path)
    assert png.read_bytes().startswith(b"\x89PNG") and "Not generated yet" in md.read_text()
    onnx = {"source": "mnist_cnn.onnx", "dataset": "mnist", "network": "input 1x28x28 - conv 8@3x3",
            "test_images": 1000, "calibration_images": 400, "float_accuracy": 0.98,
            "rows": _fake_rows(0.975), "lif": {**_fake_rows(0.3)[0], "T": 4, "weight_bits": 8,
                                                "tau_shift": 1, "neuron": "lif", "snn_accuracy": 0.3}}
    md, png2 = cv.write_onnx_table_docs(onnx, tmp_path, onnx_path="models/mnist_cnn.onnx")
    assert png2.name == "conversion_mnist.png" and png2.read_bytes().startswith(b"\x89PNG")
    text = md.read_text()
    assert "Not generated yet" not in text and "**98.00%** on the 1000 test images" in text
    assert "| 4 | 8 | 2 (LIF) | 30.00% | -68.00 |" in text
    assert text.count("| 2 | 4 | 2 | 96.50% | -1.50 |") == 1          # the MNIST row
    assert text.count("| 2 | 4 | 2 | 95.00% | -2.00 |") == 1          # the digits row
    # regenerating the digits table keeps the MNIST section
    cv.write_table_docs({**digits, "float_accuracy": 0.95}, tmp_path)
    again = md.read_text()
    assert "**95.00%**" in again and "**98.00%** on the 1000 test images" in again
    assert again.count(cv.MNIST_BEGIN) == 1 and again.count(cv.MNIST_END) == 1


def test_onnx_table_runs_the_grid(tmp_path, trained, float_onnx, monkeypatch):
    _, split = trained
    net = _digits_cnn(split)
    onnx = _save_network(net, tmp_path / "cnn.npz")
    table = cv.onnx_accuracy_table(onnx, "digits", progress=False)
    assert len(table["rows"]) == 16 and table["lif"]["neuron"] == "lif"
    assert table["test_images"] == 360 and table["dataset"] == "digits"
    float_pred = np.argmax(net.forward(split.x_test.reshape(-1, 1, 8, 8) / 16)[-1], axis=1)
    assert table["float_accuracy"] == pytest.approx(np.mean(float_pred == split.y_test))
    by = {(r["T"], r["weight_bits"], r["tau_shift"]): r for r in table["rows"]}
    assert by[(8, 8, 1)]["snn_accuracy"] >= table["float_accuracy"] - 0.03
    assert all(0 <= r["snn_accuracy"] <= 1 and 0 <= r["agreement"] <= 1 for r in table["rows"])
    assert table["network"] == "input 1x8x8 - conv 6@3x3 p1 - maxpool 2x2 - dense 10"


# --- with the real importer and onnxruntime ---------------------------------------------------------

@pytest.mark.parametrize("double", [False, True])
def test_skl2onnx_digits_mlp_converts_to_the_direct_model(tmp_path, capsys, trained, default_model,
                                                          double):
    """Issue 15 item 6: the digits MLP exported with skl2onnx (float32 or float64 weights),
    through load_onnx and `spikepack convert --onnx`, gives the integers of the direct path."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    mlp, split = trained
    kind = DoubleTensorType if double else FloatTensorType
    onx = to_onnx(mlp, initial_types=[("x", kind([None, 64]))],
                  options={id(mlp): {"zipmap": False}}, target_opset=17)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(onx.SerializeToString())
    out = tmp_path / "m.npz"
    assert _run_cli(["--onnx", str(path), "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = SpikePackModel.load(out)
    assert model.layers == default_model.layers
    assert model.input_encoding == default_model.input_encoding
    result = cv.evaluate(mlp, default_model, split.x_test, split.y_test)
    assert summary["float_accuracy"] == pytest.approx(result["float_accuracy"])   # onnxruntime
    assert summary["snn_accuracy"] == pytest.approx(result["snn_accuracy"])


def test_mnist_cnn_converts_near_losslessly(tmp_path, capsys):
    """The committed demo CNN at the default setting (T = 4, 8-bit weights, tau = 2)."""
    from pathlib import Path
    onnx = Path(__file__).parent.parent / "models" / "mnist_cnn.onnx"
    out = tmp_path / "cnn.npz"
    assert _run_cli(["--onnx", str(onnx), "-o", str(out)]) == 0      # 1x28x28: mnist by default
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    print(summary)
    model = SpikePackModel.load(out)
    assert [layer.kind for layer in model.layers] == ["conv", "maxpool", "conv", "maxpool", "dense"]
    assert summary["images"] == 1000 and summary["float_accuracy"] >= 0.975
    assert summary["snn_accuracy"] >= summary["float_accuracy"] - 0.01
    assert summary["agreement"] >= 0.98
    assert model.needed_bits()["bias_bits"] <= 16 and model.needed_bits()["threshold_bits"] <= 15
