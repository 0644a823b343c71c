"""The quantizer (SPEC section 5) for FloatNetworks: the digits MLP gives exactly the integers of
the original direct converter; conv / max-pool / flatten networks fold their channel scales
correctly, track the float network, and bad networks or options are refused by name."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikepack.firmware import convert as cv
from spikepack.firmware.graph import FloatConv, FloatDense, FloatMaxPool, FloatNetwork
from spikepack.firmware.model import (ConvLayer, InputEncoding, Layer, MaxPoolLayer,
                                      SpikePackModel)
from spikepack.firmware.quantize import (QuantizeError, float_network_from_sklearn, quantize)
from spikepack.sim import golden


# --- the direct digits converter as it was before the quantizer (commit fcc1ed6), frozen here as
# the reference: convert() and the FloatNetwork path must reproduce its integers exactly ---------

def legacy_float_activations(mlp, x):
    a = np.asarray(x, dtype=np.float64) / 16
    out = []
    layers = [(np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64))
              for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    for w, b in layers[:-1]:
        a = np.maximum(a @ w.T + b, 0.0)
        out.append(a)
    return out


def legacy_quantize_layer(w_folded, b, s_out, weight_bits, bias_max, theta_max, per_channel):
    """Integers for one layer. ``w_folded`` (M, N) and ``b`` (M,) map p(z_in) to the float
    pre-activation; ``s_out`` (M,) is the wanted output scale (None for the readout). Returns
    (weights, bias, threshold or None, q) where q is the potential unit (per channel)."""
    w_max = (1 << (weight_bits - 1)) - 1
    M = w_folded.shape[0]
    if per_channel:
        q = np.abs(w_folded).max(axis=1) / w_max
    else:
        q = np.full(M, np.abs(w_folded).max() / w_max)
    tiny = np.finfo(np.float64).tiny
    if s_out is not None:
        q = np.where(q > 0, q, s_out)                   # all-zero weights: any unit will do
        q = np.maximum(q, s_out / theta_max)             # theta = s/q must fit
    else:
        q = np.where(q > 0, q, 1.0)
    q = np.maximum(q, tiny)
    for _ in range(1000):
        weights = np.clip(np.rint(w_folded / q[:, None]), -w_max - 1, w_max).astype(np.int64)
        bias = np.rint(b / q).astype(np.int64)
        if s_out is not None:
            theta = np.clip(np.rint(s_out / q), 1, theta_max).astype(np.int64)
            bias = bias + theta // 2                      # floor decode -> round to nearest
        else:
            theta = None
        over = np.abs(bias) > bias_max
        if not over.any():
            return weights, bias, theta, q
        # coarsen the potential unit where the bias does not fit (per-tensor for the readout)
        q = np.where(over, q * 1.05, q) if per_channel else q * 1.05
    raise ValueError("could not fit the biases into the bias width")  # pragma: no cover




def legacy_convert(mlp, calib_x, timesteps=4, tau_shift=1, weight_bits=8, neuron="spikepack", *,
                   percentile=99.9, bias_bits=16, threshold_bits=15):
    P = golden.packed_max(timesteps, tau_shift)
    bias_max = (1 << (bias_bits - 1)) - 1
    theta_max = (1 << threshold_bits) - 1
    float_layers = [(np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64))
                    for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    calib_x = np.asarray(calib_x)
    encoding = InputEncoding(scale=P, offset=16 // 2, threshold=16, x_min=0, x_max=16)
    s_in = np.full(float_layers[0][0].shape[1], 1.0 / P)
    calib = legacy_float_activations(mlp, calib_x)
    layers = []
    for index, (w, b) in enumerate(float_layers):
        readout = index == len(float_layers) - 1
        w_folded = w * s_in[None, :]
        if readout:
            weights, bias, _, q = legacy_quantize_layer(w_folded, b, None, weight_bits, bias_max,
                                                        theta_max, per_channel=False)
            layers.append(Layer(weights, bias, None))
        else:
            a = calib[index]
            level = np.percentile(a, percentile, axis=0)
            level = np.where(level > 0, level, a.max(axis=0))
            level = np.where(level > 0, level, 1.0)
            s_out = level / P
            weights, bias, theta, q = legacy_quantize_layer(w_folded, b, s_out, weight_bits,
                                                            bias_max, theta_max, per_channel=True)
            layers.append(Layer(weights, bias, theta))
            s_in = theta * q
    return SpikePackModel(timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits,
                          layers=tuple(layers), neuron=neuron, input_encoding=encoding)


@pytest.fixture(scope="module")
def trained():
    return cv.train_float_mlp((64, 32), seed=0)


def assert_same_integers(model, reference):
    assert (model.timesteps, model.tau_shift, model.weight_bits, model.neuron) == (
        reference.timesteps, reference.tau_shift, reference.weight_bits, reference.neuron)
    assert model.input_encoding == reference.input_encoding
    assert model.input_shape == reference.input_shape
    assert len(model.layers) == len(reference.layers)
    for i, (a, b) in enumerate(zip(model.layers, reference.layers)):
        assert type(a) is type(b), f"layer {i}"
        np.testing.assert_array_equal(a.weights, b.weights, err_msg=f"layer {i} weights")
        np.testing.assert_array_equal(a.bias, b.bias, err_msg=f"layer {i} bias")
        assert (a.threshold is None) == (b.threshold is None)
        if a.threshold is not None:
            np.testing.assert_array_equal(a.threshold, b.threshold, err_msg=f"layer {i} threshold")


def sklearn_float_network(mlp):
    """A FloatNetwork of dense layers built here from coefs_ (in x out) and intercepts_."""
    n = len(mlp.coefs_)
    return FloatNetwork(input_shape=(mlp.coefs_[0].shape[0],), layers=tuple(
        FloatDense(weight=np.array(mlp.coefs_[i], dtype=np.float64).T.copy(),
                   bias=np.array(mlp.intercepts_[i], dtype=np.float64), relu=i < n - 1)
        for i in range(n)))


@pytest.mark.parametrize("options", [
    dict(), dict(timesteps=8), dict(timesteps=2, weight_bits=4), dict(tau_shift=2, timesteps=6),
    dict(neuron="lif"), dict(bias_bits=10, threshold_bits=8), dict(percentile=99.0),
])
def test_digits_mlp_quantizes_to_the_direct_converters_integers(trained, options):
    mlp, split = trained
    reference = legacy_convert(mlp, split.x_calib, **options)
    assert_same_integers(cv.convert(mlp, split.x_calib, **options), reference)
    q_options = {k: v for k, v in options.items()}
    model = quantize(sklearn_float_network(mlp), split.x_calib, x_max=16, **q_options)
    assert_same_integers(model, reference)
    assert model.metadata["converter"] == "spikepack.firmware.quantize"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), widths=st.lists(st.integers(1, 12), min_size=2, max_size=4),
       T=st.integers(1, 8), tau_shift=st.sampled_from([1, 2]), weight_bits=st.integers(2, 12))
def test_random_mlps_quantize_like_the_direct_converter(seed, widths, T, tau_shift, weight_bits):
    rng = np.random.default_rng(seed)
    sizes = [64, *widths]
    mlp = SimpleNamespace(activation="relu",
                          coefs_=[rng.normal(0, 0.3, (n, m)) for n, m in zip(sizes, sizes[1:])],
                          intercepts_=[rng.normal(0, 0.2, m) for m in sizes[1:]])
    calib = rng.integers(0, 17, (40, 64))
    reference = legacy_convert(mlp, calib, T, tau_shift, weight_bits)
    assert_same_integers(quantize(float_network_from_sklearn(mlp), calib, x_max=16, timesteps=T,
                                  tau_shift=tau_shift, weight_bits=weight_bits), reference)


# --- conv networks -------------------------------------------------------------------------------

def digits_cnn(trained, second_conv=False, pool=True):
    """A small float CNN on the 8x8 digits: fixed random 3x3 conv filters (ReLU), max pooling,
    optionally a second conv, and a dense readout fitted by ridge regression on the features."""
    _, split = trained
    rng = np.random.default_rng(11)
    layers = [FloatConv(rng.normal(0, 0.5, (6, 1, 3, 3)), rng.normal(0, 0.05, 6), (1, 1), (1, 1),
                        name="conv1")]
    if pool:
        layers.append(FloatMaxPool((2, 2), name="pool1"))
    if second_conv:
        layers.append(FloatConv(rng.normal(0, 0.3, (5, 6, 2, 2)), rng.normal(0, 0.05, 5), (1, 1),
                                (0, 0), name="conv2"))
    body = FloatNetwork((1, 8, 8), tuple(layers))
    features_shape = body.shapes()[-1]
    f = body.forward(split.x_train.reshape(-1, 1, 8, 8) / 16)[-1].reshape(len(split.x_train), -1)
    y = np.eye(10)[split.y_train]
    f1 = np.hstack([f, np.ones((len(f), 1))])
    coef = np.linalg.solve(f1.T @ f1 + 1e-2 * np.eye(f1.shape[1]), f1.T @ y)
    readout = FloatDense(coef[:-1].T.copy(), coef[-1].copy(), relu=False, name="fc")
    assert readout.weight.shape[1] == int(np.prod(features_shape))
    return FloatNetwork((1, 8, 8), tuple(layers + [readout]))


def float_predict(net, x, x_max=16):
    return np.argmax(net.forward(np.asarray(x, dtype=np.float64).reshape(-1, *net.input_shape)
                                 / x_max)[-1], axis=1)


@pytest.mark.parametrize("second_conv", [False, True])
def test_cnn_converts_near_losslessly_at_T8(trained, second_conv):
    _, split = trained
    net = digits_cnn(trained, second_conv=second_conv)
    model = quantize(net, split.x_calib, x_max=16, timesteps=8, weight_bits=8)
    kinds = [layer.kind for layer in model.layers]
    assert kinds == ["conv", "maxpool"] + ["conv"] * second_conv + ["dense"]
    assert model.input_shape == (1, 8, 8) and model.input_encoding == InputEncoding.for_pixels(16, 8, 1)
    assert isinstance(model.layers[0], ConvLayer) and model.layers[0].padding == (1, 1)
    assert isinstance(model.layers[1], MaxPoolLayer) and model.layers[1].window == (2, 2)
    float_pred = float_predict(net, split.x_test)
    snn_pred = model.predict(split.x_test.reshape(-1, 1, 8, 8))
    float_acc, snn_acc = np.mean(float_pred == split.y_test), np.mean(snn_pred == split.y_test)
    print(f"float {100 * float_acc:.2f}%  SNN {100 * snn_acc:.2f}%  agreement "
          f"{100 * np.mean(float_pred == snn_pred):.2f}%")
    assert float_acc >= 0.85
    assert snn_acc >= float_acc - 0.02
    assert np.mean(float_pred == snn_pred) >= 0.95
    assert SpikePackModel.from_bytes(model.to_bytes()) == model


def test_channel_scales_fold_through_conv_pool_and_flatten(trained):
    """At high precision the readout potentials times the readout scale are the float logits:
    a wrongly folded channel scale (another channel's, or a position's) would be far off."""
    _, split = trained
    net = digits_cnn(trained, second_conv=True)
    x = split.x_test[:100]
    # calibrated on these very images at the 100th percentile, so that nothing saturates
    model = quantize(net, x, x_max=16, timesteps=12, weight_bits=14, bias_bits=32,
                     threshold_bits=24, percentile=100)
    logits, acts = model.forward(model.encode(x.reshape(-1, 1, 8, 8)))
    approx = logits * model.metadata["readout_scale"]
    exact = net.forward(x.reshape(-1, 1, 8, 8) / 16)[-1]
    err = np.abs(approx - exact).max() / np.abs(exact).max()
    print(f"largest logit error {100 * err:.3f}% of the largest logit")
    assert err < 0.01
    # and every hidden map, in its own channel scale theta*q, tracks the float activation
    float_acts = net.forward(x.reshape(-1, 1, 8, 8) / 16)
    for i in (1, 3):                                       # after conv1 and after conv2
        z = acts[i].astype(np.float64)
        a = float_acts[i - 1] if i == 1 else float_acts[2]
        assert z.shape == a.shape
        live = z.sum(axis=(0, 2, 3)) > 0
        scale = (z * a).sum(axis=(0, 2, 3))[live] / (z * z).sum(axis=(0, 2, 3))[live]
        residual = np.linalg.norm(z[:, live] * scale[None, :, None, None] - a[:, live]) / np.linalg.norm(a[:, live])
        assert residual < 0.01, f"layer {i}"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(1, 10), M=st.integers(1, 8),
       T=st.integers(1, 8), weight_bits=st.sampled_from([4, 8]))
def test_1x1_conv_network_quantizes_like_the_dense_network(seed, N, M, T, weight_bits):
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(0, 0.4, (M, N)), rng.normal(0, 0.1, M)
    w2, b2 = rng.normal(0, 0.4, (3, M)), rng.normal(0, 0.1, 3)
    dense = FloatNetwork((N,), (FloatDense(w1, b1), FloatDense(w2, b2, relu=False)))
    conv = FloatNetwork((N, 1, 1), (FloatConv(w1[:, :, None, None], b1),
                                    FloatDense(w2, b2, relu=False)))
    calib = rng.integers(0, 256, (30, N))
    a = quantize(dense, calib, x_max=255, timesteps=T, weight_bits=weight_bits)
    c = quantize(conv, calib.reshape(30, N, 1, 1), x_max=255, timesteps=T, weight_bits=weight_bits)
    np.testing.assert_array_equal(c.layers[0].weights[:, :, 0, 0], a.layers[0].weights)
    for name in ("bias", "threshold"):
        np.testing.assert_array_equal(getattr(c.layers[0], name), getattr(a.layers[0], name))
    np.testing.assert_array_equal(c.layers[1].weights, a.layers[1].weights)
    np.testing.assert_array_equal(c.layers[1].bias, a.layers[1].bias)
    x = rng.integers(0, 256, (20, N))
    np.testing.assert_array_equal(c.forward(c.encode(x.reshape(20, N, 1, 1)))[0],
                                  a.forward(a.encode(x))[0])


def test_lif_and_tau4_conv_models(trained):
    _, split = trained
    net = digits_cnn(trained)
    for options in (dict(neuron="lif"), dict(tau_shift=2)):
        model = quantize(net, split.x_calib, x_max=16, timesteps=4, **options)
        pred = model.predict(split.x_test[:30])
        assert pred.shape == (30,) and 0 <= pred.min() and pred.max() <= 9
    base = quantize(net, split.x_calib, x_max=16, timesteps=4)
    lif = quantize(net, split.x_calib, x_max=16, timesteps=4, neuron="lif")
    assert lif.neuron == "lif" and all(a == b for a, b in zip(lif.layers, base.layers))


def _tiny(layers, shape=(1, 4, 4)):
    return FloatNetwork(shape, tuple(layers))


_W = np.ones((2, 1, 3, 3))


@pytest.mark.parametrize("net, message", [
    (_tiny([FloatConv(_W, np.zeros(2), relu=False, name="c"), FloatDense(np.ones((2, 8)), np.zeros(2))]),
     r"layer 0 \(FloatConv 'c'\): a hidden layer needs a ReLU"),
    (_tiny([FloatMaxPool((2, 2), name="p"), FloatDense(np.ones((2, 4)), np.zeros(2))]),
     r"layer 0 \(FloatMaxPool 'p'\): max pooling must follow a conv layer"),
    (_tiny([FloatConv(_W, np.zeros(2), name="c")]), r"layer 0 .*readout \(last layer\) must be dense"),
    (_tiny([FloatConv(_W, np.zeros(2)), FloatDense(np.ones((2, 9)), np.zeros(2))]),
     "expects 9 inputs, gets 8"),
    (_tiny([FloatConv(_W * np.nan, np.zeros(2)), FloatDense(np.ones((2, 8)), np.zeros(2))]),
     "weight holds NaN"),
])
def test_unconvertible_networks_are_named(net, message):
    with pytest.raises(QuantizeError, match=message):
        quantize(net, np.zeros((3, 1, 4, 4), dtype=int), x_max=255)


@pytest.mark.parametrize("options, names, message", [
    (dict(threshold_bits=0), ("threshold_bits",), "between 1 and 32, not 0"),
    (dict(timesteps=0), ("timesteps",), "between 1 and 16"),
    (dict(weight_bits=17), ("weight_bits",), "between 2 and 16"),
    (dict(tau_shift=4), ("tau_shift",), "one of 1, 2, 3"),
    (dict(percentile=0), ("percentile",), r"\(0, 100\]"),
    (dict(neuron="izh"), ("neuron",), "spikepack, lif"),
    (dict(timesteps=16, tau_shift=3), ("timesteps", "tau_shift"), "scale P must be at most 2\\*\\*40"),
    (dict(timesteps=14, tau_shift=3, threshold_bits=32), ("threshold_bits", "timesteps", "tau_shift"),
     "decode levels .* up to 2\\*\\*71"),
    (dict(timesteps=14, tau_shift=3, weight_bits=16), ("timesteps", "tau_shift", "weight_bits"),
     r"layer 0 \(wide, fan-in 4096\): .* potential could reach 2\*\*67"),
])
def test_bad_options_name_the_option(options, names, message):
    net = _tiny([FloatConv(_W, np.zeros(2)), FloatDense(np.ones((2, 8)), np.zeros(2), relu=False)])
    x = np.zeros((3, 1, 4, 4), dtype=int)
    if "potential" in message:
        net = FloatNetwork((4096,), (FloatDense(np.ones((2, 4096)), np.zeros(2), name="wide"),
                                     FloatDense(np.ones((2, 2)), np.zeros(2), relu=False)))
        x = np.zeros((3, 4096), dtype=int)
    with pytest.raises(QuantizeError, match=message) as info:
        quantize(net, x, x_max=255, **options)
    assert info.value.options == names
    assert str(info.value).startswith(", ".join(names) + ": ")


def test_calibration_inputs_are_checked():
    net = _tiny([FloatConv(_W, np.zeros(2)), FloatDense(np.ones((2, 8)), np.zeros(2), relu=False)])
    with pytest.raises(QuantizeError, match=r"calibration inputs must have shape \(S, 1, 4, 4\)"):
        quantize(net, np.zeros((3, 15), dtype=int), x_max=255)
    with pytest.raises(QuantizeError, match="pixels in 0..255"):
        quantize(net, np.full((3, 16), 256), x_max=255)
    with pytest.raises(QuantizeError, match="no calibration inputs"):
        quantize(net, np.zeros((0, 16), dtype=int), x_max=255)
    model = quantize(net, np.arange(48).reshape(3, 16), x_max=255)   # flat samples are fine
    assert model.input_shape == (1, 4, 4)


def test_dense_network_on_an_image_input(trained):
    """An MLP that reads the image flattened (ONNX Flatten -> Gemm) keeps the image input shape;
    its integers are those of the same MLP on the 64-vector."""
    mlp, split = trained
    flat = quantize(float_network_from_sklearn(mlp), split.x_calib, x_max=16)
    image = quantize(float_network_from_sklearn(mlp, input_shape=(1, 8, 8)),
                     split.x_calib.reshape(-1, 1, 8, 8), x_max=16)
    assert image.input_shape == (1, 8, 8) and flat.input_shape == (64,)
    assert all(a == b for a, b in zip(image.layers, flat.layers))
    np.testing.assert_array_equal(image.predict(split.x_test.reshape(-1, 1, 8, 8)),
                                  flat.predict(split.x_test))
    assert SpikePackModel.from_bytes(image.to_bytes()) == image
