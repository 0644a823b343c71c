"""The SpikePack model file: validation, save/load round trips, and rejection of broken files."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import layout_network, unpack_network
from spikepack.firmware.model import (FORMAT_NAME, FORMAT_VERSION, ConvLayer, InputEncoding, Layer, MaxPoolLayer,
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
    assert header["format"] == "spikepack-model" and header["version"] == 2
    assert header["input_shape"] == [6] and header["layers"][0]["kind"] == "dense"
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
    # and every decode level theta*tau**(T-1) below 2**62 (thresholds reach 2**32 - 1 here)
    assume(((1 << 32) - 1) << (tau_shift * (T - 1)) < 1 << 62)
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
    for (w, b, t, _), layer in zip(back, model.layers):
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


def test_decode_levels_must_stay_within_int64():
    a, b = _layers()
    big = Layer(a.weights, a.bias, np.full(3, (1 << 32) - 1))
    SpikePackModel(14, 2, 8, (big, b))                     # 2**32 * 4**13 = 2**58: fine
    with pytest.raises(ModelFormatError, match=r"layer 0: threshold 4294967295 with T = 16 and "
                                                r"tau = 8 gives decode levels .* up to 2\*\*77"):
        SpikePackModel(16, 3, 8, (big, b))


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
    (_set("version", 3), "unsupported format version 3; this reader understands versions 1 and 2"),
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
    assert FORMAT_NAME == "spikepack-model" and FORMAT_VERSION == 2


# --- version 1 files ---------------------------------------------------------------------------

FIXTURE_V1 = Path(__file__).parent / "data" / "model_v1.npz"


def fixture_v1_model():
    """The model in tests/data/model_v1.npz, which the version-1 writer (commit fcc1ed6) wrote."""
    widths = (5, 4, 3, 2)
    layers = []
    for i, (n, m) in enumerate(zip(widths[:-1], widths[1:])):
        w = (np.arange(m * n).reshape(m, n) * 37 + 11 * i) % 255 - 127
        b = (np.arange(m) * 101 - 150) * (i + 1)
        t = None if i == len(widths) - 2 else np.arange(m) * 13 + 7
        layers.append(Layer(w, b, t))
    return SpikePackModel(timesteps=5, tau_shift=2, weight_bits=8, layers=tuple(layers),
                          input_encoding=InputEncoding(scale=31, offset=8, threshold=16),
                          metadata={"written_by": "spikepack model format version 1 (commit fcc1ed6)"})


def test_version_1_file_still_loads(tmp_path):
    raw = dict(np.load(FIXTURE_V1, allow_pickle=False))
    assert json.loads(str(raw["header"]))["version"] == 1 and "input_shape" not in str(raw["header"])
    loaded = SpikePackModel.load(FIXTURE_V1)
    expected = fixture_v1_model()
    assert loaded == expected and loaded.input_shape == (5,) and loaded.shapes == ((5,), (4,), (3,), (2,))
    np.testing.assert_array_equal(loaded.forward(np.arange(15).reshape(3, 5) % 32)[0],
                                  expected.forward(np.arange(15).reshape(3, 5) % 32)[0])
    # the version-1 writer path gives the very bytes of the old writer; saving upgrades to 2
    assert expected.to_bytes(version=1) == FIXTURE_V1.read_bytes()
    again = SpikePackModel.load(loaded.save(tmp_path / "v2.npz"))
    assert again == expected
    assert json.loads(str(np.load(tmp_path / "v2.npz")["header"]))["version"] == 2


def test_version_1_has_no_version_2_fields(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(FIXTURE_V1.read_bytes())
    _rewrite(path, _set("input_shape", [5]))
    with pytest.raises(ModelFormatError, match="unknown header field\\(s\\) input_shape \\(a version 1"):
        SpikePackModel.load(path)
    path.write_bytes(FIXTURE_V1.read_bytes())
    _rewrite(path, lambda h, a: h["layers"][0].update(kind="dense"))
    with pytest.raises(ModelFormatError, match=r"header 'layers'\[0\] must be an object with fan_in"):
        SpikePackModel.load(path)
    with pytest.raises(ModelFormatError, match="version 1 holds dense layers"):
        conv_model().to_bytes(version=1)
    with pytest.raises(ModelFormatError, match="cannot write format version 3"):
        random_model().to_bytes(version=3)


# --- conv models (version 2) -------------------------------------------------------------------

def conv_model(seed=0, T=4, tau_shift=1, weight_bits=8, neuron="spikepack", encoding=True):
    """1x8x8 -> conv 3x3 pad 1 (4 ch) -> maxpool 2 -> conv 2x2 stride 2 (3 ch) -> dense 5 -> dense 3."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), 1 << (weight_bits - 1)
    layers = (
        ConvLayer(rng.integers(lo, hi, (4, 1, 3, 3)), rng.integers(-500, 500, 4),
                  rng.integers(1, 200, 4), stride=1, padding=(1, 1)),
        MaxPoolLayer((2, 2)),
        ConvLayer(rng.integers(lo, hi, (3, 4, 2, 2)), rng.integers(-500, 500, 3),
                  rng.integers(1, 200, 3), stride=(2, 2)),
        Layer(rng.integers(lo, hi, (5, 12)), rng.integers(-500, 500, 5), rng.integers(1, 200, 5)),
        Layer(rng.integers(lo, hi, (3, 5)), rng.integers(-500, 500, 3)),
    )
    return SpikePackModel(timesteps=T, tau_shift=tau_shift, weight_bits=weight_bits, layers=layers,
                          neuron=neuron, input_shape=(1, 8, 8),
                          input_encoding=InputEncoding.for_pixels(255, T, tau_shift) if encoding else None,
                          metadata={"kind": "conv test"})


def test_conv_model_round_trip_and_header(tmp_path):
    model = conv_model(1)
    assert model.shapes == ((1, 8, 8), (4, 8, 8), (4, 4, 4), (3, 2, 2), (5,), (3,))
    assert model.widths == [64, 256, 64, 12, 5, 3] and not model.dense_only
    path = model.save(tmp_path / "c.npz")
    raw = dict(np.load(path, allow_pickle=False))
    header = json.loads(str(raw.pop("header")))
    assert header["version"] == 2 and header["input_shape"] == [1, 8, 8]
    assert header["layers"][0] == {"kind": "conv", "in_shape": [1, 8, 8], "out_shape": [4, 8, 8],
                                   "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}
    assert header["layers"][1] == {"kind": "maxpool", "in_shape": [4, 8, 8],
                                   "out_shape": [4, 4, 4], "window": [2, 2]}
    assert header["layers"][3] == {"kind": "dense", "fan_in": 12, "neurons": 5, "readout": False}
    assert sorted(raw) == sorted(f"layer{i}.{n}" for i in (0, 2, 3) for n in ("weights", "bias", "threshold")) + ["layer4.bias", "layer4.weights"]
    assert raw["layer0.weights"].shape == (4, 1, 3, 3)
    loaded = SpikePackModel.load(path)
    assert loaded == model and loaded.to_bytes() == model.to_bytes()
    assert loaded.layers[2].stride == (2, 2) and loaded.layers[0].padding == (1, 1)
    assert conv_model(1) != conv_model(2)
    assert model.needed_bits()["max_fan_in"] == 16          # the second conv: 4 x 2 x 2


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 12), tau_shift=st.sampled_from([1, 2]),
       neuron=st.sampled_from(["spikepack", "lif"]), C=st.integers(1, 3), H=st.integers(2, 7),
       W=st.integers(2, 7), kernel=st.integers(1, 2), stride=st.integers(1, 2),
       padding=st.integers(0, 1), pool=st.booleans(), out=st.integers(1, 4))
def test_random_conv_models_round_trip_and_run_the_golden_model(seed, T, tau_shift, neuron, C, H,
                                                                W, kernel, stride, padding, pool,
                                                                out):
    from spikepack.sim import golden
    rng = np.random.default_rng(seed)
    conv = ConvLayer(rng.integers(-128, 128, (out, C, kernel, kernel)), rng.integers(-99, 99, out),
                     rng.integers(1, 50, out), stride, padding)
    shape = conv.out_shape((C, H, W))
    layers = [conv]
    if pool and shape[1] >= 2 and shape[2] >= 2:
        layers.append(MaxPoolLayer(2))
        shape = (shape[0], shape[1] // 2, shape[2] // 2)
    layers.append(Layer(rng.integers(-128, 128, (3, int(np.prod(shape)))), rng.integers(-99, 99, 3)))
    model = SpikePackModel(T, tau_shift, 8, tuple(layers), neuron=neuron, input_shape=(C, H, W))
    assert model.shapes[-2] == shape
    loaded = SpikePackModel.from_bytes(model.to_bytes())
    assert loaded == model and loaded.header() == model.header()
    z = rng.integers(0, 1 << T, (4, C, H, W))
    logits, acts = loaded.forward(z)
    # the golden model by hand, layer by layer
    f = golden.spikepack_conv if neuron == "spikepack" else golden.lif_conv
    a = f(z, conv.weights, conv.bias, conv.threshold, T, tau_shift, conv.stride, conv.padding)
    if len(layers) == 3:
        a = golden.maxpool_words(a, 2)
    np.testing.assert_array_equal(acts[-1], a)
    np.testing.assert_array_equal(
        logits, golden.global_potential(a.reshape(4, -1), layers[-1].weights, layers[-1].bias, T,
                                        tau_shift))


def test_conv_model_encodes_images_and_predicts():
    model = conv_model(3, T=4)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (7, 8, 8))
    z = model.encode(x)
    assert z.shape == (7, 1, 8, 8)
    np.testing.assert_array_equal(model.encode(x.reshape(7, 1, 8, 8)), z)
    np.testing.assert_array_equal(model.encode(x.reshape(7, 64)), z)
    # pixels 0..255: z = x * 15 / 255 rounded to nearest (tau = 2)
    assert np.all(np.abs(z[:, 0] - 15 * x / 255) <= 0.5)
    logits, _ = model.forward(z)
    np.testing.assert_array_equal(model.predict(x), np.argmax(logits, axis=1))
    np.testing.assert_array_equal(model.predict(x, batch=2), np.argmax(logits, axis=1))
    with pytest.raises(ValueError, match="expects \\(S, 1, 8, 8\\) or 64 values"):
        model.encode(np.zeros((2, 63), dtype=int))


def test_pixel_encoding_matches_the_digits_encoding():
    for T, k in ((4, 1), (6, 2)):
        from spikepack.sim.golden import packed_max
        assert InputEncoding.for_pixels(16, T, k) == InputEncoding(packed_max(T, k), 8, 16, 0, 16)
        assert InputEncoding.for_pixels(255, T, k) == InputEncoding(packed_max(T, k), 127, 255, 0, 255)


def _conv(c_out=2, c_in=1, k=3, threshold=True, **geometry):
    return ConvLayer(np.zeros((c_out, c_in, k, k), dtype=int), np.zeros(c_out, dtype=int),
                     np.ones(c_out, dtype=int) if threshold else None, **geometry)


def _dense(m, n, threshold=False):
    return Layer(np.zeros((m, n), dtype=int), np.zeros(m, dtype=int),
                 np.ones(m, dtype=int) if threshold else None)


@pytest.mark.parametrize("layers, input_shape, message", [
    ((_conv(), _dense(2, 72)), None, r"input_shape \(C, H, W\) is needed: layer 0 is a conv layer"),
    ((_conv(), _dense(2, 72)), (1, 6), r"input_shape must be \(N,\) or \(C, H, W\)"),
    ((_conv(), _dense(2, 72)), (1, 0, 6), "input_shape must hold sizes between 1"),
    ((_conv(), _dense(2, 72)), (36,), "layer 0: a conv layer needs a C x H x W feature map, but the "
                                      "model input gives a vector of 36; give the model an input_shape"),
    ((_dense(36, 36, True), _conv(), _dense(2, 8)), (36,), r"layer 1: a conv layer needs a C x H x W "
                                                           r"feature map, but layer 0 \(dense\) gives a vector"),
    ((MaxPoolLayer(2), _dense(2, 9)), (1, 6, 6), "layer 0: max pooling must follow a conv layer "
                                                 r"\(SPEC section 6\), not the model input"),
    ((_conv(), MaxPoolLayer(2), MaxPoolLayer(2), _dense(2, 2)), (1, 6, 6),
     r"layer 2: max pooling must follow a conv layer .*not layer 1 \(maxpool\)"),
    ((_conv(), _conv(c_in=2)), (1, 6, 6), r"layer 1: the readout \(last layer\) must be dense, not conv"),
    ((_conv(), _conv(c_in=3), _dense(2, 8)), (1, 6, 6),
     r"layer 1: weights \(2, 3, 3, 3\) expect 3 input channels, the map 2 x 4 x 4 has 2"),
    ((_conv(k=3), _dense(2, 8)), (1, 2, 6), r"layer 0: a 3x3 kernel with padding \[0, 0\] does not fit the 2x6 map"),
    ((_conv(), MaxPoolLayer(5), _dense(2, 2)), (1, 6, 6), "layer 1: the 5x5 window is larger than the 4x4 map"),
    ((_conv(), _dense(2, 31)), (1, 6, 6), r"layer 1: weights have 31 inputs \(shape \(2, 31\)\) but "
                                          r"layer 0 has 32 outputs \(2 x 4 x 4\)"),
    ((_dense(2, 31),), (1, 6, 6), r"layer 0: weights have 31 inputs .* but the input has 36 features"),
    ((_conv(threshold=False), _dense(2, 32)), (1, 6, 6), "layer 0: a hidden layer needs a threshold"),
    ((ConvLayer(np.full((2, 1, 3, 3), 200), np.zeros(2, int), np.ones(2, int)), _dense(2, 32)), (1, 6, 6),
     r"layer 0: weights holds 200 at index \(0, 0, 0, 0\), outside the 8-bit"),
])
def test_conv_model_errors_name_the_layer_and_field(layers, input_shape, message):
    with pytest.raises(ModelFormatError, match=message):
        SpikePackModel(4, 1, 8, layers, input_shape=input_shape)


@pytest.mark.parametrize("make, message", [
    (lambda: _conv(stride=0), r"stride must hold integers between 1 and 65536, not \[0, 0\]"),
    (lambda: _conv(padding=(1, -1)), r"padding must hold integers between 0"),
    (lambda: _conv(stride=(1, 2, 3)), "stride must be an integer or a pair"),
    (lambda: _conv(stride=1.5), "stride must be an integer or a pair"),
    (lambda: MaxPoolLayer(0), "window must hold integers between 1"),
    (lambda: ConvLayer(np.zeros((2, 3, 3), int), np.zeros(2, int)), "weights must be 4-D"),
    (lambda: ConvLayer(np.zeros((2, 1, 3, 3), int), np.zeros(3, int)),
     r"bias has shape \(3,\), expected \(2,\) to match the 2 output channels"),
    (lambda: ConvLayer(np.zeros((2, 1, 3, 3), int), np.zeros(2, int), np.array([1, 0])),
     "threshold holds 0 at index 1"),
])
def test_conv_layer_fields_are_checked(make, message):
    with pytest.raises(ModelFormatError, match=message):
        make()


def _layer_entry(i, key, value):
    def mutate(header, arrays):
        if value is _DELETE:
            del header["layers"][i][key]
        else:
            header["layers"][i][key] = value
    return mutate


_DELETE = object()


@pytest.mark.parametrize("mutate, message", [
    (_drop("input_shape"), "header field\\(s\\) missing: input_shape"),
    (_set("input_shape", [1, 8]), "header field 'input_shape' must be \\[N\\] or \\[C, H, W\\]"),
    (_set("input_shape", [1, 9, 8]), r"layer 0: header 'in_shape' is \[1, 8, 8\], but the input_shape gives \[1, 9, 8\]"),
    (_layer_entry(0, "kind", "deconv"), "layer 0: header 'kind' must be one of dense, conv, maxpool, not 'deconv'"),
    (_layer_entry(0, "kind", ["conv"]), r"layer 0: header 'kind' must be one of .*, not \['conv'\]"),
    (lambda h, a: h["layers"].__setitem__(1, "maxpool"), r"layer 1: header 'kind' must be one of .*, not None"),
    (_layer_entry(0, "stride", _DELETE), r"layer 0 \(conv\): header entry is missing stride"),
    (_layer_entry(1, "colour", 1), r"layer 1 \(maxpool\): header entry has unknown field\(s\) colour"),
    (_layer_entry(0, "kernel", [3, 0]), r"layer 0 \(conv\): header kernel must hold integers between 1"),
    (_layer_entry(0, "kernel", [2, 3]), r"layer 0: weights has shape \(4, 1, 3, 3\), the header says \(4, 1, 2, 3\)"),
    (_layer_entry(0, "padding", [0, 0]), r"layer 0: header 'out_shape' is \[4, 8, 8\], but the layer gives \[4, 6, 6\]"),
    (_layer_entry(2, "stride", "2"), r"layer 2 \(conv\): header stride must be an integer or a pair"),
    (_layer_entry(1, "window", [2, 0]), r"layer 1 \(maxpool\): header window must hold integers between 1"),
    (_layer_entry(1, "out_shape", [4, 4]), r"layer 1 \(maxpool\): header 'out_shape' must be \[C, H, W\]"),
    (_layer_entry(3, "kind", "conv"), r"layer 3 \(conv\): header entry is missing in_shape"),
    (_array("layer2.threshold", lambda a: _patch(a, 1, 0)), "layer 2: threshold holds 0 at index 1"),
    (_del_array("layer0.threshold"), "layer 0: array 'layer0.threshold' is missing"),
    (_array("layer0.weights", lambda a: a.astype(np.float32)), "layer 0: weights has dtype float32"),
    (lambda h, a: a.update({"layer1.weights": np.zeros((1, 1), dtype=np.int64)}),
     r"unexpected array\(s\) in the file: layer1.weights"),
    (_array("layer4.bias", lambda a: a), None),   # control: an untouched rewrite still loads
])
def test_broken_conv_files_are_rejected_with_a_reason(tmp_path, mutate, message):
    path = conv_model(2).save(tmp_path / "c.npz")
    _rewrite(path, mutate)
    if message is None:
        assert SpikePackModel.load(path) == conv_model(2)
        return
    with pytest.raises(ModelFormatError, match=message) as info:
        SpikePackModel.load(path)
    assert str(path) in str(info.value)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous file, and no temporary file, behind."""
    path = random_model(1).save(tmp_path / "m.npz")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        random_model(2).save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_pack_refuses_a_conv_model_in_one_line(tmp_path):
    """Dense-only hardware (conv = false) runs no conv layer: `spikepack pack` says so, without
    a traceback (conv hardware packs it: tests/test_layout_conv.py)."""
    import subprocess
    import sys
    config = HardwareConfig(conv=False)
    model = conv_model(4, T=config.timesteps, tau_shift=config.tau_shift,
                       weight_bits=config.weight_bits, neuron=config.neuron)
    path = model.save(tmp_path / "conv.npz")
    toml = tmp_path / "hw.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in config.as_dict().items()))
    run = subprocess.run([sys.executable, "-m", "spikepack", "pack", str(path), "--config",
                          str(toml), "-o", str(tmp_path / "out.bin")], capture_output=True, text=True)
    assert run.returncode != 0 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "layer 0 is a conv layer, but this hardware has no convolution (conv = false)" \
        in run.stderr
    assert not (tmp_path / "out.bin").exists()


def _leaves(value, path=()):
    """Every (path, value) of a JSON tree, containers included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, path + (i,))


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                  st.floats(allow_nan=False), st.text(max_size=4),
                  st.lists(st.integers(-3, 3), max_size=4), st.just({}), st.just({"kind": "conv"}))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_damaged_conv_header_is_a_model_format_error(data):
    """Replacing any field of a conv model's header with junk gives a ModelFormatError (or, if
    the junk happens to be valid, a model), never another exception."""
    import io
    import zipfile
    raw = conv_model(5).to_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in zf.namelist()}
    header = json.loads(str(arrays.pop("header")))
    paths = [p for p, _ in _leaves(header) if p and p[0] != "metadata"]
    path = data.draw(st.sampled_from(paths))
    junk = data.draw(_JUNK)
    node = header
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
    try:
        SpikePackModel.from_bytes(buffer.getvalue())
    except ModelFormatError:
        pass
