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
