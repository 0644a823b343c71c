"""Packing conv models (docs/architecture.md, "Convolution contract"): a conv layer with its max
pooling is one hardware layer laid out as the dense (C_out, N) matrix of its patch, a dense
layer after a map carries the flatten permutation in its weights.

The proof is an independent simulation of what the hardware computes from the layout alone:
maps stored channels last (``to_storage``), each conv output position's patch gathered by the
engine's address rule (column n = ((ky*K_w + kx)*CG_in + cg)*R + r reads entry
(iy*W + ix)*CG_in + cg, lane r, or a zero word in the padding), run through the golden DENSE
layer with the laid-out weights, max-pooled and written back at the pooled word's storage
index; a dense layer reads the stored vector. Over random conv models (the benches' stimulus
and wider geometries drawn here: strides 1..3, padding below the kernel, pooling up to 3,
channels across several groups of R) packed and parsed back, the logits equal
``golden.run_network`` of the model bit for bit. Seeded; the seed is printed
(``SPIKEPACK_SEED`` replays it)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spikepack.config import ConfigError, HardwareConfig
from spikepack.firmware import bitstream as bs
from spikepack.firmware.layout import (ConvGeometry, HardwareLayer, LayoutError, from_storage,
                                       hardware_layers, layout_network, model_layers,
                                       storage_words, to_storage, unpack_network)
from spikepack.firmware.model import ConvLayer, Layer, MaxPoolLayer, SpikePackModel
from spikepack.sim import golden, runner
from spikepack.sim.benches.stimulus import COST_LIMITS, _conv_case, conv_model, random_images
from spikepack.sim.configspace import random_config


def _seeded():
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    return seed, np.random.default_rng(seed)


# --- the hardware's computation, from the layout alone ------------------------------------------

def _dense(x, layer, last, config):
    """The golden dense layer (the array's tiles compute exactly this) on stored words x."""
    w, b, t = layer.weights, layer.bias, layer.threshold
    T, k = config.timesteps, config.tau_shift
    if last:
        return golden.global_potential(x, w, b, T, k)
    fn = golden.spikepack_layer if config.neuron == "spikepack" else golden.lif_layer
    return fn(x, w, b, t, T, k)


def hardware_forward(stored, layers, config):
    """Logits of hardware ``layers`` (unpacked from a layout) on one stored input ``stored``
    (1-D, storage order): conv layers position by position through the dense golden layer."""
    R = config.rows
    x = np.asarray(stored, dtype=np.int64)
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        g = layer.conv
        if g is None:
            x = _dense(x, layer, last, config)
            continue
        assert not last
        C_out = layer.weights.shape[0]
        CG, CG_out = -(-g.in_channels // R), -(-C_out // R)
        H, W = g.in_height, g.in_width
        H_p, W_p = g.out_height, g.out_width
        out = np.zeros(H_p * W_p * CG_out * R, dtype=np.int64)
        written = np.zeros(H_p * W_p, dtype=bool)
        for py in range(H_p):
            for px in range(W_p):
                pooled = np.zeros(C_out, dtype=np.int64)
                for wy in range(g.pool_h):
                    for wx in range(g.pool_w):
                        oy, ox = py * g.pool_h + wy, px * g.pool_w + wx
                        patch = np.zeros(layer.weights.shape[1], dtype=np.int64)
                        for n in range(patch.size):
                            r, rest = n % R, n // R
                            cg, kpos = rest % CG, rest // CG
                            ky, kx = divmod(kpos, g.kernel_w)
                            iy = oy * g.stride_h + ky - g.pad_h
                            ix = ox * g.stride_w + kx - g.pad_w
                            if 0 <= iy < H and 0 <= ix < W:
                                patch[n] = x[((iy * W + ix) * CG + cg) * R + r]
                        z = _dense(patch, layer, False, config)
                        pooled = z if (wy, wx) == (0, 0) else np.maximum(pooled, z)
                index = ((py * W_p + px) * CG_out) * R
                out[index:index + C_out] = pooled
                written[py * W_p + px] = True
        assert written.all()
        x = out
    return x


# --- random conv models --------------------------------------------------------------------------

def _wide_model(rng, config):
    """A conv model drawn here (not from the benches): 1-2 conv layers with strides 1..3,
    padding below the kernel, pooling 1..3, channels over several groups of R, then 1-2 dense
    layers; weights, biases and thresholds over their whole ranges."""
    T, k, R = config.timesteps, config.tau_shift, config.rows
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_hi = (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    for _ in range(1000):
        shape = (int(rng.integers(1, 2 * R + 2)), int(rng.integers(1, 10)),
                 int(rng.integers(1, 10)))
        layers, C, H, W = [], *shape
        for _ in range(int(rng.integers(1, 3))):
            K = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
            p = tuple(int(rng.integers(0, kk)) for kk in K)
            s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            if H + 2 * p[0] < K[0] or W + 2 * p[1] < K[1]:
                break
            H_out, W_out = (H + 2 * p[0] - K[0]) // s[0] + 1, (W + 2 * p[1] - K[1]) // s[1] + 1
            pool = (int(rng.integers(1, min(3, H_out) + 1)), int(rng.integers(1, min(3, W_out) + 1)))
            C_out = int(rng.integers(1, 2 * R + 2))
            layers.append(ConvLayer(weights=rng.integers(w_lo, w_hi + 1, (C_out, C) + K),
                                    bias=rng.integers(-b_hi, b_hi + 1, C_out),
                                    threshold=rng.integers(1, t_hi + 1, C_out), stride=s,
                                    padding=p))
            if pool != (1, 1) or rng.random() < 0.3:
                layers.append(MaxPoolLayer(window=pool))
            C, H, W = C_out, H_out // pool[0], W_out // pool[1]
        if not layers:
            continue
        n = C * H * W
        for j in range(int(rng.integers(1, 3))):
            m = int(rng.integers(1, 12))
            readout = j == 1 or rng.random() < 0.5
            layers.append(Layer(weights=rng.integers(w_lo, w_hi + 1, (m, n)),
                                bias=rng.integers(-b_hi, b_hi + 1, m),
                                threshold=None if readout else rng.integers(1, t_hi + 1, m)))
            n = m
            if readout:
                break
        try:
            return SpikePackModel(timesteps=T, tau_shift=k, weight_bits=config.weight_bits,
                                  layers=tuple(layers), neuron=config.neuron,
                                  input_shape=shape)
        except Exception:                 # noqa: BLE001 - a bound the golden model refuses
            continue
    raise AssertionError("no model drawn")


def _fit(model, config):
    """``config`` with every limit large enough for ``model`` (channels, maps, kernel, fan-in,
    neurons, layers, weight words)."""
    R = config.rows
    hw = model.hardware_layers(R)
    shapes = [model.input_shape] + [s for s, l in zip(model.shapes[1:], model.layers)
                                    if l.kind != "dense"]
    convs = [l.conv for l in hw if l.conv is not None]
    dense = [l for l in hw if l.conv is None]
    maps = [s for s in shapes if len(s) == 3]
    fields = dict(
        conv=True, max_layers=len(hw),
        max_channels=max(max(s[0] for s in maps), max(l.weights.shape[0] for l in hw
                                                      if l.conv is not None)),
        max_map_side=max(max(s[1], s[2]) for s in maps),
        max_map_words=max(storage_words(s, R) for s in maps),
        max_kernel=max(max(g.kernel_h, g.kernel_w) for g in convs),
        max_fan_in=max(l.weights.shape[1] for l in dense),
        max_neurons=max(l.weights.shape[0] for l in dense), weight_depth=1 << 20)
    config = dataclasses.replace(config, **fields)
    words = len(layout_network(hw, config).memories["weight"])
    return dataclasses.replace(config, weight_depth=words)


def _cases(rng, count):
    """(config, model) pairs: the benches' conv cases and the wider ones drawn here."""
    done = 0
    while done < count:
        try:
            base = dataclasses.replace(random_config(rng, sizes=[8, 8], max_array=8,
                                                     max_timesteps=6), conv=True)
        except ConfigError:
            continue
        if done % 2 == 0:
            case = _conv_case(rng, base, max_layers=4, max_cycles=COST_LIMITS["max_cycles"])
            if case is None:
                continue
            config, plan = case
            model = conv_model(rng, config, plan, extreme=bool(rng.random() < 0.3))
        else:
            model = _wide_model(rng, base)
            try:
                config = _fit(model, base)
            except (ConfigError, LayoutError):
                continue
        done += 1
        yield config, model


def test_conv_models_pack_parse_back_and_compute_the_golden_network():
    seed, rng = _seeded()
    for i, (config, model) in enumerate(_cases(rng, 30)):
        what = f"case {i} (seed {seed}): {config} {[l.kind for l in model.layers]}"
        fold = bool(rng.random() < 0.5)       # the first layer folded where it can, or not
        data = bs.pack(model, config, fold=fold)
        assert bs.loader_outcome(bs.words_of(data), config) == bs.ErrorCode.NONE, what
        back = bs.parse(data, config)
        carried = model.hardware_model(config, fold=fold)   # the model itself unless folded
        assert back.input_shape == carried.input_shape, what
        # a 1 x 1 max pooling is no pooling: the descriptor has none to give back
        assert back.layers == tuple(l for l in carried.layers
                                    if not (l.kind == "maxpool" and l.window == (1, 1))), what
        assert bs.pack(back, config, fold=fold) == data, what
        # the layout's hardware layers, run as the hardware does on stored maps (the images
        # folded as the first layer is: firmware.layout.hardware_input)
        image = layout_network(model.hardware_layers(
            config.rows, fold=model.input_fold(config) if fold else None), config)
        hw = unpack_network(image, config)
        z = random_images(rng, 4, model.input_shape, config.timesteps)
        want, _ = model.forward(z)
        zh = model.hardware_input(z, config, fold=fold)
        for s in range(len(z)):
            stored = to_storage(zh[s], config.rows) if model.layers[0].kind == "conv" \
                else zh[s].reshape(-1)
            got = hardware_forward(stored, hw, config)
            assert np.array_equal(got, want[s]), f"{what}: image {s}: {got} != {want[s]}"


def test_hardware_layers_round_trip_and_descriptor_fields():
    """hardware_layers -> layout -> unpack gives the same weights and geometry;
    model_layers inverts hardware_layers; a conv descriptor holds the geometry, the pooled map
    and fan-in = the patch, a dense descriptor after a map the stored map's words."""
    seed, rng = _seeded()
    for i, (config, model) in enumerate(_cases(rng, 12)):
        what = f"case {i} (seed {seed})"
        R = config.rows
        hw = model.hardware_layers(R)
        image = layout_network(hw, config)
        back = unpack_network(image, config)
        for a, b in zip(hw, back):
            assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias), what
            assert a.conv == b.conv, what
        shape, specs = model_layers(back, R)
        assert shape == model.input_shape, what
        kinds = [spec[0] for spec in specs]
        layers = [l for l in model.layers if not (l.kind == "maxpool" and l.window == (1, 1))]
        assert kinds == [layer.kind for layer in layers], what
        for spec, layer in zip(specs, layers):
            if spec[0] != "maxpool":
                assert np.array_equal(spec[1], layer.weights), what
        previous = None
        for d, layer in zip(image.descriptors, hw):
            if layer.conv is not None:
                g = layer.conv
                assert d.conv and ConvGeometry.of(d) == g, what
                assert (d.out_height, d.out_width) == (g.conv_height // g.pool_h,
                                                       g.conv_width // g.pool_w), what
                assert d.fan_in == g.kernel_h * g.kernel_w * -(-g.in_channels // R) * R, what
                if previous is not None:
                    assert g.in_shape == previous, what
                previous = (d.neurons, d.out_height, d.out_width)
            else:
                assert not d.conv and d.to_lanes()[4:] == [0, 0], what
                if previous is not None and len(previous) == 3:
                    assert d.fan_in == storage_words(previous, R), what
                previous = (d.neurons,)


def test_patch_order_and_flatten_permutation_by_hand():
    """One small case written out: R = 2, a 2 x 2 kernel on 3 channels (CG = 2, padding lane
    c = 3), then a dense layer on the 2 x 1 x 2 map (stored with channels padded to 2)."""
    w = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2) - 12       # [o, c, ky, kx]
    conv = ConvLayer(weights=w, bias=np.zeros(2, int), threshold=np.ones(2, int))
    dense = Layer(weights=np.arange(4).reshape(1, 4) + 1, bias=np.zeros(1, int))
    hw = hardware_layers([conv, dense], (3, 2, 3), rows=2)
    assert hw[0].weights.shape == (2, 2 * 2 * 2 * 2)
    for o in range(2):
        for ky in range(2):
            for kx in range(2):
                for c in range(4):
                    n = ((ky * 2 + kx) * 2 + c // 2) * 2 + c % 2
                    assert hw[0].weights[o, n] == (w[o, c, ky, kx] if c < 3 else 0)
    # the conv output map is (2, 1, 2): C = 2 = R, so one group; input c*H*W + y*W + x
    # sits at stored column ((y*W + x)*CG + cg)*R + r
    assert hw[0].conv.out_height == 1 and hw[0].conv.out_width == 2
    for c in range(2):
        for x in range(2):
            assert hw[1].weights[0, x * 2 + c] == dense.weights[0, c * 2 + x]


@pytest.mark.parametrize("change,match", [
    (dict(conv=False), "no convolution"),
    (dict(max_channels=2), "max_channels is 2"),
    (dict(max_kernel=2), "max_kernel is 2"),
    (dict(max_map_side=3), "max_map_side is 3"),
    (dict(max_map_words=20), "max_map_words is 20"),
])
def test_conv_refusals_are_named(change, match):
    """A conv model that breaks one limit is refused by the packer with the limit's name."""
    model = SpikePackModel(timesteps=4, tau_shift=1, weight_bits=8, input_shape=(3, 6, 6),
                           layers=(ConvLayer(weights=np.ones((4, 3, 3, 3), int),
                                             bias=np.zeros(4, int), threshold=np.ones(4, int),
                                             padding=1),
                                   MaxPoolLayer(window=2),
                                   Layer(weights=np.ones((2, 36), int), bias=np.zeros(2, int))))
    config = HardwareConfig(rows=4, cols=4, max_fan_in=64, max_channels=4, max_map_side=6,
                            max_map_words=200, max_kernel=3)
    bs.parse(bs.pack(model, config), config)
    with pytest.raises(bs.LayerTooLarge, match=match):
        bs.pack(model, dataclasses.replace(config, **change))


def test_model_storage_helpers_agree():
    """to_storage / from_storage / storage_words: the layout the hardware layers assume."""
    rng = np.random.default_rng(3)
    for R in (1, 2, 4, 8):
        z = rng.integers(0, 16, (5, 3, 4))
        v = to_storage(z, R)
        assert v.size == storage_words(z.shape, R)
        assert np.array_equal(from_storage(v, z.shape, R), z)
    assert HardwareLayer(np.zeros((1, 1)), np.zeros(1)).conv is None
