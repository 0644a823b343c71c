"""The SpikePack model file: validation, save/load round trips, and rejection of broken files."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import layout_network, unpack_network
from spikepack.firmware.model import (FORMAT_NAME, FORMAT_VERSION, InputEncoding, Layer,
                                      ModelFormatError, SpikePackModel)


def random_model(seed=0, widths=(6, 5, 4, 3), T=4, tau_shift=1, weight_bits=8, neuron="spikepack",
                 encoding=True, metadata=None):
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1))
    layers = []
    for i, (n, m) in enumerate(zip(widths[:-1], widths[1:])):
        readout = i == len(widths) - 2
        layers.append(Layer(weights=rng.integers(lo, hi, (m, n)),
                            bias=rng.integers(-1000, 1000, m),
                            threshold=None if readout else rng.integers(1, 300, m)))
    enc = InputEncoding(scale=(1 << T) - 1, offset=8, threshold=16) if encoding else None
    return SpikePackModel(timesteps=T, tau_shift=tau_shift, weight_bits=weight_bits,
                          layers=tuple(layers), neuron=neuron, input_encoding=enc,
                          metadata={"note": "test", "values": [1, 2.5]} if metadata is None else metadata)


# --- round trips -------------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path):
    model = random_model(1)
    path = model.save(tmp_path / "sub" / "m.npz")
    raw = dict(np.load(path, allow_pickle=False))          # an ordinary .npz, no pickles
    header = json.loads(str(raw["header"]))
    assert header["format"] == "spikepack-model" and header["version"] == 1
    assert header["layer_count"] == 3 and header["timesteps"] == 4
    assert "layer2.threshold" not in raw and "layer1.threshold" in raw
    loaded = SpikePackModel.load(path)
    assert loaded == model
    assert loaded.header() == model.header() == header
    for a, b in zip(loaded.layers, model.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.threshold is None) == (b.threshold is None)
        if a.threshold is not None:
            np.testing.assert_array_equal(a.threshold, b.threshold)
        assert a.weights.dtype == np.int64
    assert loaded.input_encoding == model.input_encoding
    assert loaded.metadata == {"note": "test", "values": [1, 2.5]}
    assert loaded.save(tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_same_model_same_bytes():
    assert random_model(3).to_bytes() == random_model(3).to_bytes()
    assert random_model(3).to_bytes() != random_model(4).to_bytes()


def test_arrays_are_read_only_copies():
    w = np.ones((2, 3), dtype=np.int32)
    layer = Layer(w, np.zeros(2, dtype=np.int16))
    w[0, 0] = 5
    assert layer.weights[0, 0] == 1 and layer.weights.dtype == np.int64
    with pytest.raises(ValueError):
        layer.weights[0, 0] = 2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 16), tau_shift=st.sampled_from([1, 2, 3]),
       weight_bits=st.integers(2, 16), neuron=st.sampled_from(["spikepack", "lif"]),
       widths=st.lists(st.integers(1, 9), min_size=2, max_size=5), encoding=st.booleans(),
       extremes=st.booleans())
def test_random_valid_models_round_trip(seed, T, tau_shift, weight_bits, neuron, widths, encoding,
                                        extremes):
    from spikepack.sim.golden import MAX_POTENTIAL_BITS, packed_max
    # a valid model keeps every potential within the datapath's cap (the model refuses the
    # others: T = 16, tau = 8 and 15-bit weights on 7 inputs already reach 2**62); skip those
    bound = max(widths[:-1]) * (1 << (weight_bits - 1)) * packed_max(T, tau_shift) + (1 << 31)
    assume(bound.bit_length() < MAX_POTENTIAL_BITS)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    layers = []
    for i, (n, m) in enumerate(zip(widths[:-1], widths[1:])):
        readout = i == len(widths) - 2
        if extremes:   # the corners of every range
            w = rng.choice([lo, hi], (m, n))
            b = rng.choice([-(1 << 31), (1 << 31) - 1], m)
            t = rng.choice([1, (1 << 32) - 1], m)
        else:
            w = rng.integers(lo, hi + 1, (m, n))
            b = rng.integers(-(1 << 31), 1 << 31, m)
            t = rng.integers(1, 1 << 32, m)
        layers.append(Layer(w, b, None if readout else t))
    model = SpikePackModel(timesteps=T, tau_shift=tau_shift, weight_bits=weight_bits,
                           layers=tuple(layers), neuron=neuron,
                           input_encoding=InputEncoding(int(rng.integers(1, 100)),
                                                        int(rng.integers(-50, 50)),
                                                        int(rng.integers(1, 100)))
                           if encoding else None,
                           metadata={"seed": seed, "list": [T, tau_shift]})
    data = model.to_bytes()
    loaded = SpikePackModel.from_bytes(data)
    assert loaded == model
    assert loaded.header() == model.header()
    assert loaded.to_bytes() == data
    with tempfile.TemporaryDirectory() as d:
        assert SpikePackModel.load(model.save(Path(d) / "m.npz")) == model


# --- golden inference and layout ---------------------------------------------------------------

def test_forward_matches_the_closed_form_decode():
    model = random_model(5)
    rng = np.random.default_rng(5)
    z = rng.integers(0, 16, (50, 6))
    logits, activations = model.forward(z)
    a = z
    for layer in model.layers[:-1]:   # SPEC: tau = 2 closed form, computed here independently
        v = a @ layer.weights.T + layer.bias
        a = np.clip((v - 1) // layer.threshold, 0, 15)
    np.testing.assert_array_equal(logits, a @ model.layers[-1].weights.T + model.layers[-1].bias)
    np.testing.assert_array_equal(activations[0], z)


def test_encode_rounds_pixels_to_spike_words():
    model = random_model(6, T=4)
    x = np.arange(17)[:, None].repeat(6, axis=1)
    z = model.encode(x)
    assert z.dtype == np.int64 and z.shape == (17, 6)
    # 15 * x / 16 rounded to nearest (halves may go either way)
    assert np.all(np.abs(z - 15 * x / 16) <= 0.5)
    assert z.min() == 0 and z.max() == 15
    np.testing.assert_array_equal(model.encode(x.astype(np.float64)), z)
    with pytest.raises(ValueError, match="outside the encoding's range"):
        model.encode(np.full((1, 6), 17))
    with pytest.raises(ValueError, match="whole numbers"):
        model.encode(np.full((1, 6), 2.5))
    with pytest.raises(ValueError, match="expects 6"):
        model.encode(np.zeros((1, 5), dtype=int))
    with pytest.raises(ValueError, match="no input encoding"):
        random_model(6, encoding=False).encode(x)


def test_predict_takes_the_lowest_index_on_ties():
    layers = (Layer(np.zeros((2, 3), dtype=int), np.zeros(2, dtype=int), np.ones(2, dtype=int)),
              Layer(np.zeros((4, 2), dtype=int), np.array([1, 3, 3, 2])))
    model = SpikePackModel(4, 1, 8, layers, input_encoding=InputEncoding(15, 8, 16))
    np.testing.assert_array_equal(model.predict(np.zeros((3, 3), dtype=int)), [1, 1, 1])


def test_layer_tuples_lay_out_on_the_default_hardware():
    model = random_model(7, widths=(64, 64, 32, 10))
    config = HardwareConfig()
    back = unpack_network(layout_network(model.as_layer_tuples(), config), config)
    for (w, b, t), layer in zip(back, model.layers):
        np.testing.assert_array_equal(w, layer.weights)
        np.testing.assert_array_equal(b, layer.bias)
        assert (t is None) == (layer.threshold is None)
    assert model.needed_bits() == {"weight_bits": 8, "bias_bits": 11, "threshold_bits": 9,
                                   "max_fan_in": 64, "max_neurons": 64, "layers": 3}


# --- construction errors -----------------------------------------------------------------------

def _layers(widths=(4, 3, 2)):
    return [Layer(np.zeros((m, n), dtype=int), np.zeros(m, dtype=int),
                  None if i == len(widths) - 2 else np.ones(m, dtype=int))
            for i, (n, m) in enumerate(zip(widths[:-1], widths[1:]))]


@pytest.mark.parametrize("change, message", [
    (dict(timesteps=0), "timesteps must be between 1 and 16"),
    (dict(timesteps=17), "timesteps must be between 1 and 16"),
    (dict(timesteps=True), "timesteps must be an integer"),
    (dict(tau_shift=4), "tau_shift must be one of"),
    (dict(weight_bits=1), "weight_bits must be between 2 and 16"),
    (dict(neuron="izhikevich"), "neuron must be one of"),
    (dict(layers=()), "at least one layer"),
    (dict(metadata={"x": object()}), "metadata must be JSON-serialisable"),
    (dict(input_encoding={"scale": 1}), "input_encoding must be an InputEncoding"),
])
def test_model_fields_are_checked(change, message):
    fields = dict(timesteps=4, tau_shift=1, weight_bits=8, layers=tuple(_layers()))
    fields.update(change)
    with pytest.raises(ModelFormatError, match=message):
        SpikePackModel(**fields)


def test_layer_errors_name_the_layer_and_field():
    a, b = _layers()
    with pytest.raises(ModelFormatError, match=r"layer 1: weights have 5 inputs .* layer 0 has 3"):
        SpikePackModel(4, 1, 8, (a, Layer(np.zeros((2, 5), dtype=int), np.zeros(2, dtype=int))))
    bad = Layer(np.full((3, 4), 128), np.zeros(3, dtype=int), np.ones(3, dtype=int))
    with pytest.raises(ModelFormatError, match=r"layer 0: weights holds 128 at index \(0, 0\), "
                                                r"outside the 8-bit two's complement range \[-128, 127\]"):
        SpikePackModel(4, 1, 8, (bad, b))
    with pytest.raises(ModelFormatError, match="layer 1: the readout .* must have no threshold"):
        SpikePackModel(4, 1, 8, (a, Layer(b.weights, b.bias, np.ones(2, dtype=int))))
    with pytest.raises(ModelFormatError, match="layer 0: a hidden layer needs a threshold"):
        SpikePackModel(4, 1, 8, (Layer(a.weights, a.bias), b))
    with pytest.raises(ModelFormatError, match="threshold holds 0 at index 1"):
        Layer(np.zeros((3, 4), dtype=int), np.zeros(3, dtype=int), np.array([1, 0, 1]))
    with pytest.raises(ModelFormatError, match="weights must have an integer dtype, not float64"):
        Layer(np.zeros((3, 4)), np.zeros(3, dtype=int))
    with pytest.raises(ModelFormatError, match=r"bias has shape \(2,\), expected \(3,\)"):
        Layer(np.zeros((3, 4), dtype=int), np.zeros(2, dtype=int))
    with pytest.raises(ModelFormatError, match="bias holds 2147483648"):
        Layer(np.zeros((3, 4), dtype=int), np.array([0, 1 << 31, 0]))


# --- broken files ------------------------------------------------------------------------------

def _rewrite(path, mutate):
    """Load the raw members, let ``mutate(header, arrays)`` change them, write with numpy."""
    arrays = dict(np.load(path, allow_pickle=False))
    header = json.loads(str(arrays.pop("header")))
    mutate(header, arrays)
    np.savez(path, header=np.array(json.dumps(header)), **arrays)


def _set(key, value):
    def mutate(header, arrays):
        header[key] = value
    return mutate


def _drop(key):
    def mutate(header, arrays):
        del header[key]
    return mutate


def _array(name, fn):
    def mutate(header, arrays):
        arrays[name] = fn(arrays[name])
    return mutate


def _del_array(name):
    def mutate(header, arrays):
        del arrays[name]
    return mutate


def _patch(a, index, value):
    a = a.copy()
    a[index] = value
    return a


@pytest.mark.parametrize("mutate, message", [
    (_set("version", 2), "unsupported format version 2; this reader understands version 1"),
    (_set("version", "1"), "unsupported format version '1'"),
    (_set("format", "onnx"), "not a SpikePack model: header 'format' is 'onnx'"),
    (_drop("format"), "header 'format' is None"),
    (_drop("version"), "header field 'version' is missing"),
    (_drop("tau_shift"), "header field\\(s\\) missing: tau_shift"),
    (_drop("input_encoding"), "header field\\(s\\) missing: input_encoding"),
    (_set("colour", "blue"), "unknown header field\\(s\\) colour"),
    (_set("timesteps", 20), "timesteps must be between 1 and 16, not 20"),
    (_set("tau_shift", 0), "tau_shift must be one of"),
    (_set("neuron", "relu"), "neuron must be one of"),
    (_set("layer_count", 2), "header field 'layers' must list 2 layers"),
    (_set("metadata", [1]), "header field 'metadata' must be an object"),
    (_set("input_encoding", {"kind": "spikepack-decode", "scale": 15}),
     "input_encoding is missing field\\(s\\) offset, threshold, x_min, x_max"),
    (_set("input_encoding", {"kind": "spikepack-decode", "scale": 0, "offset": 0,
                             "threshold": 16, "x_min": 0, "x_max": 16}),
     "input_encoding.scale must be >= 1"),
    (_array("layer1.weights", lambda a: a[:, :-1]),
     r"layer 1: weights has shape \(4, 4\), the header says \(4, 5\)"),
    (_array("layer0.bias", lambda a: a[:-1]), r"layer 0: bias has shape \(4,\), the header says \(5,\)"),
    (_array("layer0.weights", lambda a: _patch(a, (2, 3), 300)),
     r"layer 0: weights holds 300 at index \(2, 3\), outside the 8-bit two's complement range"),
    (_array("layer2.weights", lambda a: _patch(a, (0, 1), -129)),
     r"layer 2: weights holds -129 at index \(0, 1\)"),
    (_array("layer1.threshold", lambda a: _patch(a, 3, 1 << 40)),
     r"layer 1: threshold holds 1099511627776 at index 3, outside the format's 32-bit unsigned"),
    (_array("layer0.threshold", lambda a: _patch(a, 2, 0)),
     r"layer 0: threshold holds 0 at index 2, outside .*theta >= 1"),
    (_array("layer0.threshold", lambda a: _patch(a, 2, -5)), r"layer 0: threshold holds -5"),
    (_array("layer1.bias", lambda a: _patch(a, 0, -(1 << 33))), r"layer 1: bias holds -8589934592"),
    (_array("layer0.weights", lambda a: a.astype(np.float64)),
     "layer 0: weights has dtype float64; only integer dtypes"),
    (_array("layer1.threshold", lambda a: a.astype(np.float32)), "layer 1: threshold has dtype float32"),
    (_array("layer0.bias", lambda a: a > 0), "layer 0: bias has dtype bool"),
    (_del_array("layer0.bias"), "layer 0: array 'layer0.bias' is missing"),
    (_del_array("layer1.threshold"), "layer 1: array 'layer1.threshold' is missing"),
    (_array("layer2.bias", lambda a: a), None),   # control: an untouched rewrite still loads
])
def test_broken_files_are_rejected_with_a_reason(tmp_path, mutate, message):
    path = random_model(2).save(tmp_path / "m.npz")
    _rewrite(path, mutate)
    if message is None:
        assert SpikePackModel.load(path) == random_model(2)
        return
    with pytest.raises(ModelFormatError, match=message) as info:
        SpikePackModel.load(path)
    assert str(path) in str(info.value)


def test_extra_and_readout_threshold_arrays_are_rejected(tmp_path):
    path = random_model(2).save(tmp_path / "m.npz")
    _rewrite(path, lambda h, a: a.update({"layer2.threshold": np.ones(3, dtype=np.int64)}))
    with pytest.raises(ModelFormatError, match="layer 2: the readout layer has a 'layer2.threshold'"):
        SpikePackModel.load(path)
    path = random_model(2).save(tmp_path / "m2.npz")
    _rewrite(path, lambda h, a: a.update({"secret": np.arange(3)}))
    with pytest.raises(ModelFormatError, match="unexpected array\\(s\\) in the file: secret"):
        SpikePackModel.load(path)


def test_header_problems(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, header=np.array("{not json"))
    with pytest.raises(ModelFormatError, match="the header is not valid JSON"):
        SpikePackModel.load(path)
    np.savez(path, header=np.array([1, 2]))
    with pytest.raises(ModelFormatError, match="'header' entry must be a 0-d unicode string"):
        SpikePackModel.load(path)
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ModelFormatError, match="the 'header' entry is missing"):
        SpikePackModel.load(path)
    np.savez(path, header=np.array("[1, 2]"))
    with pytest.raises(ModelFormatError, match="header must be a JSON object"):
        SpikePackModel.load(path)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b[:-30], "truncated or corrupt"),
    (lambda b: b"", "truncated or corrupt"),
    (lambda b: b"this is not a model file at all" * 10, "not an .npz|truncated|corrupt"),
    (lambda b: b[:200] + bytes(0xFF - x for x in b[200:400]) + b[400:], "corrupt|not a valid"),
])
def test_truncated_or_garbage_files_are_rejected(tmp_path, damage, message):
    path = tmp_path / "m.npz"
    path.write_bytes(damage(random_model(2).to_bytes()))
    with pytest.raises(ModelFormatError, match=message):
        SpikePackModel.load(path)


def test_bare_npy_and_missing_file(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4))
    with pytest.raises(ModelFormatError, match="not an .npz archive"):
        SpikePackModel.load(tmp_path / "a.npy")
    with pytest.raises(ModelFormatError, match="no such model file"):
        SpikePackModel.load(tmp_path / "missing.npz")


def test_format_constants():
    assert FORMAT_NAME == "spikepack-model" and FORMAT_VERSION == 1
