"""The first layer's fold (docs/array.md, "The first layer"; ``firmware.layout.InputFold``,
``input_fold``, ``fold_layers``, ``hardware_input``): a first conv layer reading the input image
with its K_w kernel columns folded into its channels is the K_h x 1 conv (stride (s_h, 1),
padding (p_h, 0)) of K_w*C_in channels over the folded map (K_w*C_in, H, W_conv), pixel (y, x)
holding channel kx*C_in + c = z[c, y, x*s_w + kx - p_w] (spike word 0 outside the image).

* the transform: over random geometries (hypothesis: C_in, kernel, stride, padding, pooling,
  maps, T, tau, both neuron kinds), the golden model of the folded layer on the folded input
  equals the golden model of the original conv on the input, potentials and pooled spike words
  bit for bit, and so does a whole network packed folded, parsed back and run as the hardware
  computes it from the layout (``test_layout_conv.hardware_forward``);
* the rule: folded exactly when layer 0 is a conv with K_w > 1, C_in*K_w <= ceil(C_in/R)*R,
  W_conv <= W and K_w*C_in <= max_channels (for a network that fits unfolded), restated here
  independently and checked over random models and configurations (seeded, the seed printed);
  never a conv after layer 0; the refusals one by one; a fold never makes a fitting network
  stop fitting; the MNIST first layer: 9 of 24 patch rows, 3x fewer row tiles and cycles.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, note, strategies as st

from spikepack.config import ConfigError, HardwareConfig
from spikepack.firmware import bitstream as bs
from spikepack.firmware.layout import (InputFold, LayoutError, fold_layers, hardware_input,
                                       hardware_layers, input_fold, layout_network, to_storage,
                                       unpack_network)
from spikepack.firmware.model import ConvLayer, Layer, MaxPoolLayer, SpikePackModel
from spikepack.sim import golden, runner

from test_layout_conv import hardware_forward


def _seeded():
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    return seed, np.random.default_rng(seed)


# --- the transform ---------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    """(z, w, b, theta, stride, padding, pool, T, tau_shift) of a random conv layer."""
    T = draw(st.integers(1, 6))
    k = draw(st.integers(1, 3))
    C_in = draw(st.integers(1, 9))
    K_h, K_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    p_h, p_w = draw(st.integers(0, K_h - 1)), draw(st.integers(0, K_w - 1))
    s_h, s_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = draw(st.integers(max(1, K_h - 2 * p_h), 9))
    W = draw(st.integers(max(1, K_w - 2 * p_w), 9))
    H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
    pool = (draw(st.integers(1, min(3, H_out))), draw(st.integers(1, min(3, W_out))))
    C_out = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    note(f"numpy seed {seed}")
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 1 << T, (3, C_in, H, W))
    z[0] = (1 << T) - 1                                      # every spike set: padding shows
    w = rng.integers(-128, 128, (C_out, C_in, K_h, K_w))
    b = rng.integers(-300, 300, C_out)
    theta = rng.integers(1, 400, C_out)
    return z, w, b, theta, (s_h, s_w), (p_h, p_w), pool, T, k


@given(conv_cases())
def test_the_folded_layer_on_the_folded_input_is_the_original_conv(case):
    z, w, b, theta, (s_h, s_w), (p_h, p_w), pool, T, k = case
    C_in, H, W = z.shape[1:]
    fold = InputFold(C_in, H, W, w.shape[3], s_w, p_w)
    zf, wf = fold.fold_input(z), fold.fold_weights(w)
    assert zf.shape == (3,) + fold.shape and wf.shape == (w.shape[0], fold.channels, w.shape[2], 1)
    assert fold.conv_width == golden.conv_output_shape((C_in, H, W), w.shape, (s_h, s_w),
                                                       (p_h, p_w))[2]
    folded = dict(stride=(s_h, 1), padding=(p_h, 0))
    original = dict(stride=(s_h, s_w), padding=(p_h, p_w))
    assert np.array_equal(golden.conv_potential(zf, wf, b, T, k, **folded),
                          golden.conv_potential(z, w, b, T, k, **original))
    assert np.array_equal(golden.conv_step_currents(zf, wf, T, **folded),
                          golden.conv_step_currents(z, w, T, **original))
    for fn in (golden.spikepack_conv, golden.lif_conv):
        got = golden.maxpool_words(fn(zf, wf, b, theta, T, k, **folded), pool)
        want = golden.maxpool_words(fn(z, w, b, theta, T, k, **original), pool)
        assert np.array_equal(got, want)


def test_fold_input_by_hand():
    """C_in = 2, W = 4, a 3-wide kernel, padding 1, stride 1 and 2: channel kx*C_in + c of
    column x is input column x*s_w + kx - 1, 0 where that is outside."""
    z = (np.arange(2 * 2 * 4).reshape(2, 2, 4) % 15) + 1                 # no zero word in z
    for s_w in (1, 2):
        fold = InputFold(2, 2, 4, kernel_w=3, stride_w=s_w, pad_w=1)
        f = fold.fold_input(z)
        assert f.shape == (6, 2, (4 + 2 - 3) // s_w + 1) == (6,) + fold.shape[1:]
        for kx in range(3):
            for c in range(2):
                for y in range(2):
                    for x in range(f.shape[2]):
                        ix = x * s_w + kx - 1
                        assert f[kx * 2 + c, y, x] == (z[c, y, ix] if 0 <= ix < 4 else 0)
    assert np.array_equal(hardware_input(z, None), z)
    with pytest.raises(LayoutError, match="do not end in"):
        InputFold(1, 2, 4, 3).fold_input(z)


# --- whole networks -----------------------------------------------------------------------------

def _model(rng, config, *, C_in, K, stride=(1, 1), padding=(0, 0), H=7, W=7, pool=(1, 1),
           second=False):
    """A random conv network on a (C_in, H, W) image: conv (K) [pool], [a second conv 1x1 or
    3x3], a dense readout; thresholds calibrated so spike words spread."""
    T, k = config.timesteps, config.tau_shift
    layers = []
    z = rng.integers(0, 1 << T, (32, C_in, H, W))
    C = C_in

    def conv(C_out, kernel, s, p):
        nonlocal z, C
        w = rng.integers(-128, 128, (C_out, C) + tuple(kernel))
        v = golden.conv_potential(z, w, np.zeros(C_out, int), T, k, s, p)
        P = ((1 << (k * T)) - 1) // ((1 << k) - 1)
        t = np.clip((np.quantile(v, 0.9, axis=(0, 2, 3)) / P).astype(int), 1, 1000)
        layers.append(ConvLayer(weights=w, bias=rng.integers(-20, 20, C_out), threshold=t,
                                stride=s, padding=p))
        z = golden.spikepack_conv(z, w, layers[-1].bias, t, T, k, s, p)
        C = C_out

    conv(int(rng.integers(1, 6)), K, stride, padding)
    if pool != (1, 1):
        layers.append(MaxPoolLayer(window=pool))
        z = golden.maxpool_words(z, pool)
    if second:
        conv(2, (3, 3) if z.shape[2] >= 3 and z.shape[3] >= 3 else (1, 1), (1, 1), (0, 0))
    n = int(np.prod(z.shape[1:]))
    layers.append(Layer(weights=rng.integers(-128, 128, (3, n)), bias=rng.integers(-20, 20, 3)))
    return SpikePackModel(timesteps=T, tau_shift=k, weight_bits=8, layers=tuple(layers),
                          input_shape=(C_in, H, W), neuron=config.neuron)


def _expected_fold(model, config) -> bool:
    """The rule restated for a network that fits unfolded: layer 0 a conv, K_w > 1, the
    folded channels within the same lane groups, a map no wider, channels within the limit."""
    first = model.layers[0]
    if first.kind != "conv" or not config.conv:
        return False
    C_in, H, W = model.input_shape
    K_w, (s_w, p_w), R = first.kernel[1], (first.stride[1], first.padding[1]), config.rows
    W_conv = (W + 2 * p_w - K_w) // s_w + 1
    return (K_w > 1 and C_in * K_w <= -(-C_in // R) * R and W_conv <= W
            and C_in * K_w <= config.max_channels)


def _configs(rng):
    while True:
        R = int(rng.choice([2, 4, 8]))
        try:
            config = HardwareConfig(
                rows=R, cols=int(rng.choice([2, 4, 8])), timesteps=int(rng.integers(2, 6)),
                tau_shift=int(rng.integers(1, 4)), max_fan_in=512, max_neurons=64, max_layers=4,
                weight_depth=4096, max_channels=int(rng.integers(1, 9)),
                max_map_side=int(rng.integers(4, 12)), max_map_words=int(rng.integers(64, 1024)),
                max_kernel=int(rng.integers(1, 6)), neuron=str(rng.choice(["spikepack", "lif"])))
        except ConfigError:
            continue
        yield config


def test_the_rule_and_the_folded_network_over_random_models():
    """Random first layers (C_in 1..6, kernels 1..5 each way, strides 1..3, padding below the
    kernel, pooling or not, a second conv that must never fold) on random configurations
    (R 2/4/8, tight channel and map limits): for every network that fits unfolded, ``pack``
    folds exactly by the rule, the folded network fits too (loader verdict NONE), parses back
    to ``hardware_model``, re-packs to the same bytes, and computes the unfolded model's
    golden logits on the folded images, also as the hardware does from the layout. Both
    outcomes are drawn many times."""
    seed, rng = _seeded()
    configs = _configs(rng)
    outcomes = {True: 0, False: 0}
    tried = 0
    while min(outcomes.values()) < 25 and tried < 3000:
        tried += 1
        config = next(configs)
        K = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        padding = tuple(int(rng.integers(0, kk)) for kk in K)
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        H, W = int(rng.integers(K[0], 10)), int(rng.integers(K[1], 10))
        H_out = (H + 2 * padding[0] - K[0]) // stride[0] + 1
        W_out = (W + 2 * padding[1] - K[1]) // stride[1] + 1
        pool = (int(rng.integers(1, min(2, H_out) + 1)), int(rng.integers(1, min(2, W_out) + 1)))
        model = _model(rng, config, C_in=int(rng.integers(1, 7)), K=K, stride=stride,
                       padding=padding, H=H, W=W, pool=pool, second=bool(rng.random() < 0.5))
        try:
            unfolded = bs.pack(model, config, fold=False)
        except bs.LayerTooLarge:
            continue
        what = (f"seed {seed}, case {tried}: {config}, input {model.input_shape}, first layer "
                f"{model.layers[0].weights.shape} stride {stride} padding {padding} pool {pool}")
        fold = model.input_fold(config)
        assert (fold is not None) == _expected_fold(model, config), what
        outcomes[fold is not None] += 1
        data = bs.pack(model, config)                        # never refused when unfolded fits
        assert (data == unfolded) == (fold is None), what
        assert bs.loader_outcome(bs.words_of(data), config) == bs.ErrorCode.NONE, what
        back = bs.parse(data, config)
        hw_model = model.hardware_model(config)
        assert back.input_shape == hw_model.input_shape == (fold.shape if fold else
                                                            model.input_shape), what
        assert back.layers == tuple(l for l in hw_model.layers
                                    if not (l.kind == "maxpool" and l.window == (1, 1))), what
        assert bs.pack(back, config) == data, what           # a folded layer never folds again
        if len(model.layers) > 2 and model.layers[-2].kind == "conv":
            assert np.array_equal(back.layers[-2].weights, model.layers[-2].weights), what
        z = rng.integers(0, 1 << config.timesteps, (3,) + model.input_shape)
        z[0] = (1 << config.timesteps) - 1
        want = model.forward(z)[0]
        zh = model.hardware_input(z, config)
        assert np.array_equal(back.forward(zh)[0], want), what
        hw = unpack_network(layout_network(model.hardware_layers(config.rows, fold=fold),
                                           config), config)
        if fold is not None:
            g = hw[0].conv
            assert (g.kernel_w, g.stride_w, g.pad_w, g.in_shape) == (1, 1, 0, fold.shape), what
            assert g.patch(config.rows) == model.layers[0].kernel[0] * config.rows, what
        for s in range(len(z)):
            got = hardware_forward(to_storage(zh[s], config.rows), hw, config)
            assert np.array_equal(got, want[s]), f"{what}: image {s}"
    assert min(outcomes.values()) >= 25, f"seed {seed}: outcomes {outcomes} in {tried} draws"


def _mnist_like(config, C_in=1, K=3, padding=1, W=28, C_out=16):
    """conv KxK C_in -> C_out with padding on a W x W image, max pool 2, dense 10."""
    rng = np.random.default_rng(5)
    side = (W + 2 * padding - K + 1) // 2
    return SpikePackModel(
        timesteps=config.timesteps, tau_shift=1, weight_bits=8, input_shape=(C_in, W, W),
        layers=(ConvLayer(weights=rng.integers(-128, 128, (C_out, C_in, K, K)),
                          bias=np.zeros(C_out, int), threshold=np.full(C_out, 40),
                          padding=padding),
                MaxPoolLayer(window=2),
                Layer(weights=rng.integers(-128, 128, (10, C_out * side * side)),
                      bias=np.zeros(10, int))))


#: the default accelerator at T = 4 with room for the dense layers drawn here
DEFAULT = HardwareConfig(timesteps=4, max_fan_in=4096)


@pytest.mark.parametrize("K,padding,rows", [(3, 1, 9), (5, 2, 25)])
def test_mnist_first_layer_folds_to_fewer_row_tiles(K, padding, rows):
    """The 1-channel first layer on the default 8 x 8 array: K_h*K_w of K_h*K_w*R patch rows
    useful unfolded, K_h*K_w of K_h*R folded (9 of 24 for 3x3, 25 of 40 for 5x5), so K_w times
    fewer row tiles, and the engine's cycle formula falls by about K_w."""
    from spikepack.hw.layer_engine import conv_expected_cycles
    config = DEFAULT
    model = _mnist_like(config, K=K, padding=padding)
    fold = model.input_fold(config)
    assert fold == InputFold(1, 28, 28, K, 1, padding) and fold.shape == (K, 28, 28)
    before = model.hardware_layers(config.rows)[0]
    after = model.hardware_layers(config.rows, fold=fold)[0]
    R = config.rows
    assert before.weights.shape[1] == K * K * R and after.weights.shape[1] == K * R
    assert np.count_nonzero(after.weights.any(axis=0)) <= rows == K * K
    positions = 28 * 28
    ratio = (conv_expected_cycles(config, K * K * R, 16, positions)
             / conv_expected_cycles(config, K * R, 16, positions))
    assert K - 0.1 < ratio <= K, ratio


@pytest.mark.parametrize("change,why", [
    (dict(max_channels=2), "K_w*C_in = 3 channels > max_channels"),
    (dict(conv=False), "no convolution"),
])
def test_refused_by_the_hardware_limits(change, why):
    """The fold is not taken when the folded layer would break a limit; the network is packed
    unfolded (or refused for its own reasons, as before)."""
    config = dataclasses.replace(DEFAULT, **change)
    model = _mnist_like(DEFAULT, W=10, C_out=2)
    assert model.input_fold(config) is None, why
    if config.conv:
        assert bs.pack(model, config) == bs.pack(model, config, fold=False)
        assert bs.parse(bs.pack(model, config), config).input_shape == (1, 10, 10)


def test_refused_by_geometry():
    """K_w = 1; C_in*K_w beyond the lane groups (3 x 3 > 8); a folded map wider than the image
    (3x3 with padding 2: W_conv = W + 2); a first layer that is dense; a conv after layer 0."""
    config = DEFAULT
    assert _mnist_like(config, K=1, padding=0).input_fold(config) is None
    assert _mnist_like(config, C_in=3).input_fold(config) is None
    assert _mnist_like(config, C_in=2).input_fold(config) is not None           # 6 <= 8
    assert _mnist_like(config, padding=2).input_fold(config) is None
    dense_first = SpikePackModel(timesteps=4, tau_shift=1, weight_bits=8, layers=(
        Layer(weights=np.ones((2, 4), int), bias=np.zeros(2, int), threshold=np.ones(2, int)),
        Layer(weights=np.ones((1, 2), int), bias=np.zeros(1, int))))
    assert dense_first.input_fold(config) is None
    assert dense_first.hardware_model(config) is dense_first
    rng = np.random.default_rng(9)
    second = _model(rng, config, C_in=1, K=(1, 1), second=True)   # layer 1: a 3x3 conv
    assert second.input_fold(config) is None
    assert bs.pack(second, config) == bs.pack(second, config, fold=False)


def test_fold_layers_checks_its_network():
    config = DEFAULT
    model = _mnist_like(config)
    fold = model.input_fold(config)
    layers, shape = fold_layers(model.layers, model.input_shape, fold)
    assert shape == (3, 28, 28) and layers[0].kernel == (3, 1)
    assert layers[0].stride == (1, 1) and layers[0].padding == (1, 0)
    assert layers[1:] == list(model.layers[1:])
    with pytest.raises(LayoutError, match="does not match"):
        fold_layers(model.layers, (1, 27, 28), fold)
    with pytest.raises(LayoutError, match="do not match the fold"):
        fold.fold_weights(np.zeros((4, 2, 3, 3), int))
    assert hardware_layers(model.layers, model.input_shape, 8, fold=fold)[0].conv.in_shape \
        == (3, 28, 28)
    assert input_fold(model.layers, model.input_shape, config) == fold
