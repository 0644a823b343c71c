"""System bench of the whole accelerator (``spikepack_top``) under Verilator, through its real AXI
interfaces with cocotbext-axi: AxiLiteMaster on ``s_axil``, AxiStreamSource on ``s_axis_load``
and ``s_axis_in`` (random pauses), AxiStreamSink on ``m_axis_out`` (random backpressure).

Every readout potential of every image is compared with :func:`spikepack.sim.golden.run_network`
for the network that was committed when the image ran. Run by ``tests/test_system_rtl.py``; the
host-side helpers at the top (image packing, random calibrated networks, the expected constant
registers) are plain Python, also used by the Amaranth-simulator test ``tests/test_sequencer.py``.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np

from spikepack.config import HardwareConfig, input_words_per_beat
from spikepack.sim.golden import (global_potential, lif_layer, run_network, spikepack_layer,
                                  step_currents)

__all__ = ["input_beats", "random_network", "extreme_network", "expected_constants",
           "golden_logits", "config_from_args", "random_sizes", "fitting_network",
           "random_images", "plan_shapes", "plan_layers", "layer_cycles", "plan_cycles",
           "plan_weight_words", "plan_needs", "plan_fits", "random_plan", "conv_model",
           "is_model", "input_shape", "classes", "hardware_layers", "model_plan", "describe",
           "stream_words", "pack_net"]


# --- host-side helpers ---------------------------------------------------------------------------

def input_beats(z, T: int) -> list[int]:
    """The s_axis_in beats of one image: K = 32 // T spike words a beat, input i in beat i // K
    at bits (i % K)*T, zeros beyond N0."""
    K = input_words_per_beat(T)
    z = [int(v) for v in z]
    beats = []
    for b in range(math.ceil(len(z) / K)):
        word = 0
        for k, v in enumerate(z[b * K:b * K + K]):
            assert 0 <= v < (1 << T)
            word |= v << (k * T)
        beats.append(word)
    return beats


def random_network(rng: np.random.Generator, config: HardwareConfig, sizes, *, probe=None):
    """A random network of layer sizes ``sizes`` (N0, M0, M1, ...), with weights over the full
    range and thresholds calibrated on random inputs so that hidden spike words spread over
    0 .. 2**T - 1 (neither all silent nor all saturated)."""
    T, k = config.timesteps, config.tau_shift
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_hi = (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    P = ((1 << (k * T)) - 1) // ((1 << k) - 1)
    z = rng.integers(0, 1 << T, size=(64, sizes[0])) if probe is None else probe
    layers = []
    for i, (N, M) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(w_lo, w_hi + 1, size=(M, N))
        v = global_potential(z, w, np.zeros(M, dtype=np.int64), T, k)
        scale = max(1, int(np.abs(v).max()))
        b = rng.integers(-min(b_hi, scale // 4), min(b_hi, scale // 4) + 1, size=M)
        if i == len(sizes) - 2:
            layers.append((w, b, None))
            break
        if config.neuron == "spikepack":
            # levels theta * p(z) reach theta * P: put a high quantile of v near the top
            q = np.quantile(v + b, rng.uniform(0.6, 0.98), axis=0)
            t = q / P * rng.uniform(0.5, 1.5, size=M)
        else:
            # LIF: a step current of about theta makes a neuron fire
            current = step_currents(z, w, T) + b[:, None]
            t = np.quantile(current, rng.uniform(0.3, 0.8), axis=(0, 2)) * rng.uniform(0.5, 1.5, size=M)
        t = np.clip(np.nan_to_num(t).astype(np.int64), 1, t_hi)
        layers.append((w, b, t))
        fn = spikepack_layer if config.neuron == "spikepack" else lif_layer
        z = fn(z, w, b, t, T, k)
    return layers


def extreme_network(rng: np.random.Generator, config: HardwareConfig, sizes):
    """Every value at an end of its range: weights all most negative or most positive per
    neuron, biases and thresholds at their extremes (threshold 1 and 2**bits - 1)."""
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_lo, b_hi = -(1 << (config.bias_bits - 1)), (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    layers = []
    for i, (N, M) in enumerate(zip(sizes[:-1], sizes[1:])):
        sign = rng.integers(0, 2, size=(M, 1))
        w = np.where(sign == 1, np.full((M, N), w_hi), np.full((M, N), w_lo))
        if rng.random() < 0.3:
            w = rng.choice([w_lo, w_hi], size=(M, N))
        b = rng.choice([b_lo, b_hi, 0], size=M)
        t = None if i == len(sizes) - 2 else rng.choice([1, t_hi], size=M)
        layers.append((w, b, t))
    return layers


def golden_logits(z, layers, config: HardwareConfig) -> np.ndarray:
    """The readout potentials of images ``z`` on ``layers`` (dense layer tuples, or a
    :class:`~spikepack.firmware.model.SpikePackModel`: its own golden model)."""
    if is_model(layers):
        return layers.forward(np.asarray(z, dtype=np.int64))[0]
    logits, _ = run_network(np.asarray(z, dtype=np.int64), layers, config.timesteps,
                            config.tau_shift, config.neuron)
    return logits


def expected_constants(c: HardwareConfig) -> dict[str, int]:
    """The configuration registers' values, written out from docs/registers.md's field layout
    (independently of the register table)."""
    mems = c.memories
    return {
        "ID": 0x53504B31,
        "VERSION": 0x00010000,
        "SIGNATURE": c.signature,
        "ARRAY": (c.rows | c.cols << 8 | c.timesteps << 16 | c.tau_shift << 24
                  | (c.neuron == "lif") << 28 | (c.pe_mode == "packed") << 29),
        "WIDTHS": (c.weight_bits | c.bias_bits << 8 | c.threshold_bits << 16
                   | c.widths.potential << 24),
        "MAX_FAN_IN": c.max_fan_in, "MAX_NEURONS": c.max_neurons, "MAX_LAYERS": c.max_layers,
        "WEIGHT_DEPTH": c.weight_depth,
        # a conv layer has up to max_channels outputs, and a stored map up to max_map_words
        # words (docs/config.md)
        "COLUMN_DEPTH": c.max_layers * math.ceil(
            max(c.max_neurons, c.max_channels if c.conv else 0) / c.cols),
        "ACT_DEPTH": math.ceil(
            max(c.max_fan_in, c.max_neurons, c.max_map_words if c.conv else 0) / c.rows),
        "GEOMETRY": (c.rows_per_word | mems["weight"].lanes << 8 | mems["bias"].lanes << 16
                     | mems["threshold"].lanes << 24),
        "STREAMS": (32 // c.timesteps) | (32 * math.ceil(c.widths.potential / 32)) << 8,
    }


def config_from_args(args) -> HardwareConfig:
    return HardwareConfig(**args["config"])


def random_sizes(rng: np.random.Generator, config: HardwareConfig, layers: int | None = None):
    """Layer sizes (N0, M0, ...) for ``layers`` layers (random 1..max_layers), each between 1 and
    the hardware maxima, biased towards sizes larger than the array."""
    count = int(rng.integers(1, config.max_layers + 1)) if layers is None else layers
    hi_n, hi_m = config.max_fan_in, min(config.max_neurons, config.max_fan_in)
    sizes = [int(rng.integers(max(1, hi_n // 3), hi_n + 1))]
    sizes += [int(rng.integers(1, hi_m + 1)) for _ in range(count - 1)]
    sizes += [int(rng.integers(1, config.max_neurons + 1))]
    return sizes


def fitting_network(rng, config: HardwareConfig, sizes, *, extreme=False):
    """:func:`random_network` (or :func:`extreme_network`), shrinking the sizes until the
    network fits the weight memory."""
    from spikepack.firmware.layout import LayoutError, layout_network
    while True:
        layers = (extreme_network if extreme else random_network)(rng, config, sizes)
        try:
            layout_network(layers, config)
            return layers
        except LayoutError:
            sizes = [max(1, s * 3 // 4) for s in sizes]


def random_images(rng: np.random.Generator, count: int, n, T: int) -> np.ndarray:
    """``count`` images of ``n`` spike words (an int, or a shape such as (C, H, W)); the first
    two are all-zero and all-ones."""
    shape = (n,) if isinstance(n, (int, np.integer)) else tuple(n)
    z = rng.integers(0, 1 << T, size=(count,) + shape)
    if count > 2:
        z[0] = 0
        z[1] = (1 << T) - 1
    return z


# --- conv networks (CONV.md): plans, models, the hardware's view ------------------------------------
#
# A *plan* is a conv network's geometry, JSON-able (it travels in a bench's arguments):
#   {"input": [C, H, W], "convs": [{"out": C_out, "kernel": [K_h, K_w], "stride": [s_h, s_w],
#    "padding": [p_h, p_w], "pool": [k_h, k_w]}, ...], "dense": [M, ..., M_readout]}
# conv layers (each with its optional max pooling, merged into the conv's descriptor on the
# hardware), then dense layers, the last the readout.

def plan_shapes(plan) -> list[tuple[int, ...]]:
    """The map entering each hardware layer, then the readout's output: (C, H, W) maps for the
    conv layers and the first dense layer after them, (N,) vectors after that."""
    shape = tuple(plan["input"])
    shapes = [shape]
    for conv in plan["convs"]:
        (K_h, K_w), (s_h, s_w), (p_h, p_w) = conv["kernel"], conv["stride"], conv["padding"]
        k_h, k_w = conv["pool"]
        H_out = (shape[1] + 2 * p_h - K_h) // s_h + 1
        W_out = (shape[2] + 2 * p_w - K_w) // s_w + 1
        shape = (conv["out"], H_out // k_h, W_out // k_w)
        shapes.append(shape)
    shapes += [(m,) for m in plan["dense"]]
    return shapes


def plan_layers(plan, rows: int) -> list[dict]:
    """Each hardware layer as the array sees it: ``kind``, ``fan_in`` (a conv layer's patch
    K_h*K_w*CG_in*R, a dense layer's stored input vector), ``neurons`` (C_out or M),
    ``positions`` (computed output positions: H_p*k_h*W_p*k_w; 1 for a dense layer),
    ``in_words`` and ``out_words`` (stored words of its input and output)."""
    from spikepack.firmware.layout import storage_words
    shapes = plan_shapes(plan)
    out = []
    for i, conv in enumerate(plan["convs"]):
        C, _, _ = shapes[i]
        (K_h, K_w), (k_h, k_w) = conv["kernel"], conv["pool"]
        _, H_p, W_p = shapes[i + 1]
        out.append({"kind": "conv", "fan_in": K_h * K_w * -(-C // rows) * rows,
                    "neurons": conv["out"], "positions": H_p * k_h * W_p * k_w,
                    "in_words": storage_words(shapes[i], rows),
                    "out_words": storage_words(shapes[i + 1], rows)})
    for j, m in enumerate(plan["dense"]):
        i = len(plan["convs"]) + j
        n = storage_words(shapes[i], rows)
        out.append({"kind": "dense", "fan_in": n, "neurons": m, "positions": 1,
                    "in_words": n, "out_words": storage_words((m,), rows)})
    return out


def layer_cycles(config: HardwareConfig, layer: dict) -> int:
    """An estimate of one hardware layer's cycles (:func:`plan_layers` entry, or a dense layer
    given as ``{"fan_in": N, "neurons": M}``): the engine's dense formula, and for a conv layer
    the same tiles repeated at every position (CONV.md) plus a column tile's outputs per
    position (exact for dense layers; for conv an estimate until the engine states its own)."""
    from spikepack.hw.layer_engine import expected_cycles, schedule
    positions = layer.get("positions", 1)
    if layer.get("kind") != "conv":
        return expected_cycles(config, layer["fan_in"], layer["neurons"])
    P = schedule(config).period
    G, CT = -(-layer["fan_in"] // config.rows), -(-layer["neurons"] // config.cols)
    per_ct = max(G * P, config.cols)
    return (expected_cycles(config, layer["fan_in"], layer["neurons"])
            + (positions - 1) * (CT * per_ct + config.cols) + 8 * positions)


def plan_cycles(config: HardwareConfig, plan) -> int:
    """An estimate of one inference's cycles on ``config`` (the simulation cost of an image)."""
    return sum(layer_cycles(config, layer) + 8 for layer in plan_layers(plan, config.rows))


def plan_weight_words(plan, config: HardwareConfig) -> int:
    """Weight words the plan's layers take (``layout_network``'s tiling: ceil(M/C) column
    tiles of ceil(N/R) row tiles of R/g words, N the array's view of the fan-in)."""
    R, C, g = config.rows, config.cols, config.rows_per_word
    return sum(-(-layer["neurons"] // C) * -(-layer["fan_in"] // R) * (R // g)
               for layer in plan_layers(plan, R))


def plan_needs(plan, config: HardwareConfig) -> dict[str, int]:
    """The smallest value of every configuration limit that holds ``plan`` on ``config``'s
    array (rows, cols, g): what the loader checks (CONV.md), every map (input, pooled outputs)
    counted against max_map_side and max_map_words."""
    from spikepack.firmware.layout import storage_words
    layers = plan_layers(plan, config.rows)
    shapes = plan_shapes(plan)
    maps = shapes[:len(plan["convs"]) + 1]      # the image and every conv's pooled output
    dense = [l for l in layers if l["kind"] == "dense"]
    return {
        "max_channels": max(s[0] for s in maps),
        "max_map_side": max(max(s[1], s[2]) for s in maps),
        "max_map_words": max(storage_words(s, config.rows) for s in maps),
        "max_kernel": max((max(c["kernel"]) for c in plan["convs"]), default=1),
        "max_fan_in": max(l["fan_in"] for l in dense),
        "max_neurons": max(l["neurons"] for l in dense),
        "max_layers": len(layers),
        "weight_depth": plan_weight_words(plan, config),
        "activation_words": max(max(l["in_words"], l["out_words"]) for l in layers),
    }


def plan_fits(plan, config: HardwareConfig) -> bool:
    """``plan`` fits ``config``'s limits (conv needs ``config.conv``)."""
    if plan["convs"] and not config.conv:
        return False
    need = plan_needs(plan, config)
    for name, value in need.items():
        if name == "activation_words":
            if value > config.activation_depth * config.rows:
                return False
        elif value > getattr(config, name):
            return False
    return True


def random_plan(rng: np.random.Generator, config: HardwareConfig | None = None, *,
                max_side: int = 8, max_channels: int = 6, max_kernel: int = 5,
                max_convs: int = 2, max_dense: int = 2, max_neurons: int = 16,
                max_cycles: int | None = None, tries: int = 2000):
    """A random conv network plan: 1..``max_convs`` conv layers (C_in/C_out up to
    ``max_channels``, kernels 1/3/5 up to ``max_kernel``, stride 1-2, padding 0-2 below the
    kernel, max pooling 1 or 2 per axis where the map allows), then 0..``max_dense - 1`` hidden
    dense layers and a dense readout. With ``config``, the plan fits its limits
    (:func:`plan_fits`) and, with ``max_cycles``, its estimated inference cycles; drawn by
    rejection, the caps shrinking after failures."""
    for attempt in range(tries):
        shrink = 1 + attempt // 200
        side = max(1, max_side // shrink)
        chans = max(1, max_channels // shrink)
        kernels = [k for k in (1, 3, 5) if k <= max_kernel
                   and (config is None or k <= config.max_kernel)] or [1]
        if config is not None:
            side = min(side, config.max_map_side)
            chans = min(chans, config.max_channels)
        shape = [int(rng.integers(1, chans + 1)), int(rng.integers(1, side + 1)),
                 int(rng.integers(1, side + 1))]
        plan = {"input": list(shape), "convs": [], "dense": []}
        h, w = shape[1], shape[2]
        for _ in range(int(rng.integers(1, max_convs + 1))):
            kh, kw = (int(rng.choice(kernels)) for _ in range(2))
            ph, pw = (int(rng.integers(0, min(2, k - 1) + 1)) for k in (kh, kw))
            if kh > h + 2 * ph or kw > w + 2 * pw:
                break
            sh, sw = (int(rng.integers(1, 3)) for _ in range(2))
            h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            qh = 2 if h_out >= 2 and rng.random() < 0.5 else 1
            qw = 2 if w_out >= 2 and rng.random() < 0.5 else 1
            plan["convs"].append({"out": int(rng.integers(1, chans + 1)), "kernel": [kh, kw],
                                  "stride": [sh, sw], "padding": [ph, pw], "pool": [qh, qw]})
            h, w = h_out // qh, w_out // qw
        if not plan["convs"]:
            continue
        plan["dense"] = [int(rng.integers(1, max_neurons + 1))
                         for _ in range(int(rng.integers(1, max_dense + 1)))]
        if config is None:
            return plan
        if plan_fits(plan, config) and (max_cycles is None
                                        or plan_cycles(config, plan) <= max_cycles):
            return plan
    raise ValueError(f"no conv network plan fits {config} within {max_cycles} cycles")


def conv_model(rng: np.random.Generator, config: HardwareConfig, plan, *, extreme=False,
               probe=None):
    """A :class:`~spikepack.firmware.model.SpikePackModel` (format v2) of ``plan`` for
    ``config``: weights over the full range, thresholds calibrated on random images (as
    :func:`random_network`) so hidden spike words spread over 0 .. 2**T - 1; ``extreme``: every
    value at an end of its range (as :func:`extreme_network`)."""
    from spikepack.firmware.model import ConvLayer, Layer, MaxPoolLayer, SpikePackModel
    from spikepack.sim import golden
    T, k = config.timesteps, config.tau_shift
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_lo, b_hi = -(1 << (config.bias_bits - 1)), (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    P = ((1 << (k * T)) - 1) // ((1 << k) - 1)
    shape = tuple(plan["input"])
    z = rng.integers(0, 1 << T, size=(64,) + shape) if probe is None else probe
    spikepack = config.neuron == "spikepack"

    def weights(size):
        if not extreme:
            return rng.integers(w_lo, w_hi + 1, size=size)
        sign = rng.integers(0, 2, size=(size[0],) + (1,) * (len(size) - 1))
        w = np.where(sign == 1, w_hi, w_lo) * np.ones(size, dtype=np.int64)
        return rng.choice([w_lo, w_hi], size=size) if rng.random() < 0.3 else w

    def calibrate(v, currents, axes):
        """bias and threshold per output channel from the potentials v (or LIF currents)."""
        M = v.shape[1]
        if extreme:
            return rng.choice([b_lo, b_hi, 0], size=M), rng.choice([1, t_hi], size=M)
        scale = max(1, int(np.abs(v).max()))
        b = rng.integers(-min(b_hi, scale // 4), min(b_hi, scale // 4) + 1, size=M)
        bb = b.reshape((1, M) + (1,) * (v.ndim - 2))
        if spikepack:
            t = np.quantile(v + bb, rng.uniform(0.6, 0.98), axis=axes) / P * rng.uniform(
                0.5, 1.5, size=M)
        else:
            cur = currents + bb[..., None]
            t = np.quantile(cur, rng.uniform(0.3, 0.8), axis=axes + (cur.ndim - 1,)) \
                * rng.uniform(0.5, 1.5, size=M)
        return b, np.clip(np.nan_to_num(t).astype(np.int64), 1, t_hi)

    layers = []
    for conv in plan["convs"]:
        C = z.shape[1]
        w = weights((conv["out"], C) + tuple(conv["kernel"]))
        stride, padding = tuple(conv["stride"]), tuple(conv["padding"])
        v = golden.conv_potential(z, w, np.zeros(conv["out"], dtype=np.int64), T, k, stride,
                                  padding)
        cur = None if spikepack else golden.conv_step_currents(z, w, T, stride, padding)
        b, t = calibrate(v, cur, (0, 2, 3))
        layers.append(ConvLayer(weights=w, bias=b, threshold=t, stride=stride, padding=padding))
        fn = golden.spikepack_conv if spikepack else golden.lif_conv
        z = fn(z, w, b, t, T, k, stride, padding)
        if tuple(conv["pool"]) != (1, 1):
            layers.append(MaxPoolLayer(window=tuple(conv["pool"])))
            z = golden.maxpool_words(z, tuple(conv["pool"]))
    z = z.reshape(len(z), -1)
    for i, m in enumerate(plan["dense"]):
        w = weights((m, z.shape[1]))
        v = golden.global_potential(z, w, np.zeros(m, dtype=np.int64), T, k)
        if i == len(plan["dense"]) - 1:
            b = (rng.choice([b_lo, b_hi, 0], size=m) if extreme else
                 rng.integers(-min(b_hi, max(1, int(np.abs(v).max())) // 4),
                              min(b_hi, max(1, int(np.abs(v).max())) // 4) + 1, size=m))
            layers.append(Layer(weights=w, bias=b))
            break
        cur = None if spikepack else golden.step_currents(z, w, T)
        b, t = calibrate(v, cur, (0,))
        layers.append(Layer(weights=w, bias=b, threshold=t))
        z = (golden.spikepack_layer if spikepack else golden.lif_layer)(z, w, b, t, T, k)
    return SpikePackModel(timesteps=T, tau_shift=k, weight_bits=config.weight_bits,
                          layers=tuple(layers), neuron=config.neuron, input_shape=shape,
                          metadata={"plan": plan})


# --- networks of either kind: dense layer tuples or a SpikePackModel ------------------------------

def is_model(net) -> bool:
    from spikepack.firmware.model import SpikePackModel
    return isinstance(net, SpikePackModel)


def input_shape(net) -> tuple[int, ...]:
    """An image's shape: (N0,) for dense layer tuples, the model's input_shape otherwise."""
    return tuple(net.input_shape) if is_model(net) else (int(net[0][0].shape[1]),)


def classes(net) -> int:
    return net.classes if is_model(net) else int(net[-1][0].shape[0])


def hardware_layers(net, rows: int) -> list[dict]:
    """The hardware layers of ``net`` (:func:`plan_layers` entries; max pooling merges into its
    conv layer)."""
    if not is_model(net):
        return [{"kind": "dense", "fan_in": int(w.shape[1]), "neurons": int(w.shape[0]),
                 "positions": 1} for w, _, _ in net]
    return plan_layers(model_plan(net), rows)


def model_plan(model) -> dict:
    """The plan of a model: conv layers (each with the max pooling after it), dense layers."""
    plan = {"input": list(model.input_shape), "convs": [], "dense": []}
    for layer in model.layers:
        if layer.kind == "conv":
            plan["convs"].append({"out": layer.out_channels, "kernel": list(layer.kernel),
                                  "stride": list(layer.stride), "padding": list(layer.padding),
                                  "pool": [1, 1]})
        elif layer.kind == "maxpool":
            plan["convs"][-1]["pool"] = list(layer.window)
        else:
            plan["dense"].append(layer.neurons)
    return plan


def describe(net) -> str:
    if is_model(net):
        return f"conv network {model_plan(net)}"
    return f"sizes {[int(net[0][0].shape[1])] + [int(w.shape[0]) for w, _, _ in net]}"


def stream_words(z, rows: int) -> np.ndarray:
    """One image as ``s_axis_in`` carries it: a vector as it is, a (C, H, W) map in storage
    order (``spikepack.firmware.layout.to_storage``, zeros in the padding lanes)."""
    from spikepack.firmware.layout import to_storage
    z = np.asarray(z)
    return to_storage(z, rows) if z.ndim == 3 else z


def pack_net(net, config: HardwareConfig) -> bytes:
    """The bitstream of ``net``: ``bitstream.pack`` for a model, ``pack_network`` for tuples."""
    from spikepack.firmware import bitstream as bs
    return bs.pack(net, config) if is_model(net) else bs.pack_network(net, config)


# --- the cocotb bench -----------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
    from cocotb.utils import get_sim_time
except ImportError:                                           # pragma: no cover
    cocotb = None

if cocotb is not None:
    from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiResp, AxiStreamBus,
                               AxiStreamFrame, AxiStreamSink, AxiStreamSource)

    from spikepack.firmware import bitstream as bs
    from spikepack.hw.layer_engine import expected_cycles
    from spikepack.hw.registers import REGISTER_BY_NAME, REGISTERS, ADDR_BITS
    from spikepack.sim.runner import bench_args

    E = bs.ErrorCode
    CLOCK_NS = 10

    def off(name):
        return REGISTER_BY_NAME[name].offset

    class System:
        """The accelerator with its AXI agents, the committed network as the host knows it,
        and helpers that check every output against the golden model."""

        def __init__(self, dut):
            args = bench_args()
            self.dut = dut
            self.seed = args["seed"]
            self.args = args
            self.config = config_from_args(args)
            self.rng = np.random.default_rng(self.seed)
            self.prng = random.Random(self.seed)
            self.T = self.config.timesteps
            self.out_bits = len(dut.m_axis_out_tdata)
            self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
            self.load = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.clk,
                                        dut.rst)
            self.inp = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_in"), dut.clk,
                                       dut.rst)
            self.out = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.clk,
                                     dut.rst)
            for agent in (self.axil.write_if, self.axil.read_if, self.load, self.inp, self.out):
                agent.log.setLevel("WARNING")
            self.network = None            # layers of the committed network
            self.good = self.bad = self.words = 0
            self.images_done = 0
            #: optional dict of tallies (outputs, mismatches, first_mismatch) that check updates
            self.tally = None

        async def start(self):
            dut = self.dut
            cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
            dut.rst.value = 1
            await ClockCycles(dut.clk, 3)
            await FallingEdge(dut.clk)
            dut.rst.value = 0
            await ClockCycles(dut.clk, 2)

        def pauses(self, probability):
            while True:
                yield self.prng.random() < probability

        def traffic(self, pause_in=0.3, pause_out=0.3, pause_load=0.2):
            """Random pauses on the input and load sources and backpressure on the output
            sink, with these probabilities a cycle (0: none)."""
            for agent, p in ((self.inp, pause_in), (self.out, pause_out), (self.load, pause_load)):
                agent.set_pause_generator(self.pauses(p) if p else None)
                if not p:
                    agent.pause = False    # a stopped generator may leave the agent paused

        # registers
        async def read(self, name_or_addr):
            addr = off(name_or_addr) if isinstance(name_or_addr, str) else name_or_addr
            resp = await self.axil.read(addr, 4)
            assert resp.resp == AxiResp.OKAY, f"read {name_or_addr}: {resp.resp}"
            return int.from_bytes(resp.data, "little")

        async def write(self, name_or_addr, value):
            addr = off(name_or_addr) if isinstance(name_or_addr, str) else name_or_addr
            resp = await self.axil.write(addr, int(value).to_bytes(4, "little"))
            return resp.resp

        async def status(self) -> dict[str, int]:
            word = await self.read("STATUS")
            return {f.name: (word >> f.lsb) & ((1 << f.width) - 1)
                    for f in REGISTER_BY_NAME["STATUS"].fields}

        # loading
        async def send_bitstream(self, beats):
            await self.load.send(AxiStreamFrame(bs.bytes_of(beats)))
            await self.load.wait()
            self.words += len(beats)
            for _ in range(200):           # error and counters update after TLAST
                await RisingEdge(self.dut.clk)
                if not (await self.status())["loader_busy"]:
                    break
            await ClockCycles(self.dut.clk, 4)

        async def load_network(self, layers, what):
            beats = bs.words_of(pack_net(layers, self.config))
            await self.send_bitstream(beats)
            self.good += 1
            self.network = layers
            await self.check_loader(E.NONE, what)
            st = await self.status()
            count = len(hardware_layers(layers, self.config.rows))
            assert st["loaded"] == 1 and st["layers"] == count, \
                f"{what}: STATUS {st} after loading {count} layers"

        async def load_bad(self, beats, what):
            expected = bs.loader_outcome(beats, self.config)
            assert expected != E.NONE, f"{what}: the bad stream is good"
            layers_before = (await self.status())["layers"]
            await self.send_bitstream(beats)
            self.bad += 1
            await self.check_loader(expected, what)
            assert (await self.status())["layers"] == layers_before
            return expected

        async def check_loader(self, code, what):
            got = {name: await self.read(name)
                   for name in ("LOAD_ERROR", "LOAD_GOOD", "LOAD_BAD", "LOAD_WORDS")}
            want = {"LOAD_ERROR": int(code), "LOAD_GOOD": self.good, "LOAD_BAD": self.bad,
                    "LOAD_WORDS": self.words}
            assert got == want, f"{what} (seed {self.seed}): loader registers {got} != {want}"

        # inference
        async def send_images(self, images):
            for z in images:
                beats = input_beats(stream_words(z, self.config.rows), self.T)
                data = b"".join(w.to_bytes(4, "little") for w in beats)
                await self.inp.send(AxiStreamFrame(data))

        async def receive(self, count, timeout_us=2000):
            frames = []
            for i in range(count):
                try:
                    frame = await with_timeout(self.out.recv(), timeout_us, "us")
                except cocotb.triggers.SimTimeoutError:
                    regs = {name: await self.read(name) for name in (
                        "STATUS", "IN_BEATS", "OUT_BEATS", "INFERENCES", "LAYERS_RUN",
                        "CYCLES_BUSY", "ENGINE_BUSY", "EVENTS")}
                    raise AssertionError(
                        f"no output frame {i} of {count} after {timeout_us} us (seed "
                        f"{self.seed}); STATUS {await self.status()}; registers {regs}") from None
                nbytes = self.out_bits // 8
                raw = bytes(frame.tdata)
                frames.append([int.from_bytes(raw[i:i + nbytes], "little", signed=True)
                               for i in range(0, len(raw), nbytes)])
            return frames

        def check(self, frames, images, layers, what):
            want = golden_logits(images, layers, self.config)
            assert len(frames) == len(want)
            failure = None
            for i, (got, row) in enumerate(zip(frames, want)):
                row = [int(v) for v in row]
                wrong = sum(a != b for a, b in zip(got, row)) + abs(len(got) - len(row))
                if self.tally is not None:
                    self.tally["outputs"] += len(row)
                    self.tally["mismatches"] += wrong
                if wrong and failure is None:
                    first = next((j for j, (a, b) in enumerate(zip(got, row)) if a != b),
                                 min(len(got), len(row)))
                    failure = (
                        f"{what} (seed {self.seed}): image {i} output {first}: hardware "
                        f"{got[first] if first < len(got) else 'missing'} != golden "
                        f"{row[first] if first < len(row) else 'missing'} "
                        f"(hardware {got}, golden {row}, input {np.asarray(images[i]).ravel().tolist()}, "
                        f"{describe(layers)})")
            if failure is not None:
                if self.tally is not None and self.tally.get("first_mismatch") is None:
                    self.tally["first_mismatch"] = failure
                raise AssertionError(failure)

        async def soft_reset(self):
            """CONTROL.SOFT_RESET (RUN kept as it is); the host then drops what the cut-short
            output packet left (the partial frame in the sink, and a frame that completed just
            before the reset took effect)."""
            run = (await self.read("CONTROL")) & 1
            await self.write("CONTROL", 0b10 | run)
            await ClockCycles(self.dut.clk, 4)
            self.out.clear()
            self.out.assert_reset()        # restarts the sink: its partial frame is dropped

        async def cycles_until(self, predicate, what, limit=200_000):
            """Wait, a clock edge at a time, until ``predicate()`` (sampled after the edge)."""
            for _ in range(limit):
                await RisingEdge(self.dut.clk)
                if predicate():
                    return
            raise AssertionError(f"{what}: not reached in {limit} cycles (seed {self.seed})")

        async def infer(self, images, what):
            """Stream ``images`` through the committed network and check every output."""
            await self.send_images(images)
            frames = await self.receive(len(images))
            self.check(frames, images, self.network, what)
            self.images_done += len(images)
            return frames

    def _network_sizes(net):
        return [net[0][0].shape[1]] + [w.shape[0] for w, _, _ in net]

    def soft_reset_phases(layers: int) -> list[str]:
        """The phases :func:`soft_reset_in` can hit for a network of ``layers`` layers."""
        return (["idle", "load"] + [f"layer {l}" for l in range(layers - 1)]
                + ["readout compute", "output sending", "output blocked"])

    async def soft_reset_in(sy, phase, net, other, images=3):
        """Take a SOFT_RESET in ``phase`` (:func:`soft_reset_phases`) of an inference of ``net``
        (the committed network; ``other`` is loaded during the "load" phase), then check that
        ``images`` random images run bit-exactly. Returns the phase the reset landed in, as
        the STATUS read just before the CONTROL write saw it."""
        dut, rng = sy.dut, sy.rng
        hw = hardware_layers(net, sy.config.rows)
        L = len(hw)
        what = f"SOFT_RESET in {phase} of {describe(net)}"
        landed = phase
        if phase == "idle":
            await sy.soft_reset()
        elif phase == "load":
            beats = bs.words_of(pack_net(other, sy.config))
            sending = cocotb.start_soon(sy.load.send(AxiStreamFrame(bs.bytes_of(beats))))
            await sy.cycles_until(lambda: int(dut.s_axis_load_tvalid.value)
                                  and int(dut.s_axis_load_tready.value), f"{what}: load")
            await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, len(beats) // 2)))
            landed = "load" if (await sy.status())["loader_busy"] else "after the load"
            await sy.soft_reset()
            await sending
            await sy.load.wait()
            sy.words += len(beats)
            for _ in range(200):
                if not (await sy.status())["loader_busy"]:
                    break
            sy.good += 1
            sy.network = other
            await sy.check_loader(E.NONE, f"{what}: the load across the reset")
        else:
            z = random_images(rng, 1, input_shape(net), sy.T)
            if phase == "output blocked":
                sy.out.set_pause_generator(iter(lambda: True, False))
            await sy.send_images(z)
            await sy.inp.wait()
            if phase.startswith("layer") or phase == "readout compute":
                want = L - 1 if phase == "readout compute" else int(phase.split()[1])
                for _ in range(20_000):
                    st = await sy.status()
                    if st["busy"] and st["layer"] >= want:
                        break
                    if not sy.out.empty():  # a tiny network ended between two STATUS reads
                        break
                else:
                    raise AssertionError(f"{what}: the inference did not reach layer {want}")
                if st["busy"] and st["layer"] == want:
                    # somewhere inside the layer, not just at its start (where the engine is
                    # still filling and the neuron units hold nothing yet)
                    span = layer_cycles(sy.config, hw[want])
                    await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, span - 8)))
                    st = await sy.status()
                if not st["busy"]:
                    landed = "idle (the inference had ended)"
                elif st["layer"] != want:
                    landed = f"layer {st['layer']}"
                elif phase == "readout compute" and int(dut.m_axis_out_tvalid.value):
                    landed = "output sending"
            elif phase == "output sending":
                await sy.cycles_until(lambda: int(dut.m_axis_out_tvalid.value)
                                      and int(dut.m_axis_out_tready.value), f"{what}: output")
                await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, classes(net))))
            else:
                await sy.cycles_until(lambda: int(dut.m_axis_out_tvalid.value), f"{what}: output")
                await ClockCycles(dut.clk, sy.prng.randrange(1, 40))
            await sy.soft_reset()
            sy.traffic()
        st = await sy.status()
        assert (st["busy"], st["images_buffered"]) == (0, 0), f"{what}: STATUS {st}"
        await sy.infer(random_images(rng, images, input_shape(sy.network), sy.T),
                       f"{what} (landed in {landed}), then")
        return landed

    @cocotb.test()
    async def registers(dut):
        """Every register after reset against the configuration; RO writes ignored; unmapped
        addresses SLVERR; RW byte strobes; W1C."""
        sy = System(dut)
        await sy.start()
        consts = expected_constants(sy.config)
        after_reset = {"CONTROL": 1}          # RUN = 1; everything else reads 0
        expected = {}
        for r in REGISTERS:
            expected[r.name] = consts.get(r.name, after_reset.get(r.name, 0))
        for r in REGISTERS:
            got = await sy.read(r.name)
            assert got == expected[r.name], \
                f"{r.name} at {r.offset:#x}: {got:#010x} != {expected[r.name]:#010x}"
        # writes to read-only registers are accepted and ignored
        for r in REGISTERS:
            if r.access == "RO":
                assert await sy.write(r.name, 0xFFFFFFFF) == AxiResp.OKAY, r.name
                assert await sy.read(r.name) == expected[r.name], f"{r.name} changed"
        # every unmapped word address answers SLVERR and returns 0
        mapped = {r.offset for r in REGISTERS}
        for addr in range(0, 1 << ADDR_BITS, 4):
            if addr in mapped:
                continue
            resp = await sy.axil.read(addr, 4)
            assert resp.resp == AxiResp.SLVERR and resp.data == bytes(4), hex(addr)
            wresp = await sy.axil.write(addr, b"\xff\xff\xff\xff")
            assert wresp.resp == AxiResp.SLVERR, hex(addr)
        for r in REGISTERS:                    # and nothing changed
            assert await sy.read(r.name) == expected[r.name], f"{r.name} changed"
        # SCRATCH: full words and single bytes (wstrb)
        model = 0
        for _ in range(16):
            if sy.prng.random() < 0.5:
                value = sy.prng.getrandbits(32)
                await sy.write("SCRATCH", value)
                model = value
            else:
                byte, value = sy.prng.randrange(4), sy.prng.getrandbits(8)
                resp = await sy.axil.write(off("SCRATCH") + byte, bytes([value]))
                assert resp.resp == AxiResp.OKAY
                model = (model & ~(0xFF << 8 * byte)) | value << 8 * byte
            assert await sy.read("SCRATCH") == model
        # concurrent reads and writes from separate coroutines
        tasks = [cocotb.start_soon(sy.read(name)) for name in ("ID", "SIGNATURE", "ARRAY")]
        await sy.write("SCRATCH", 0x12345678)
        assert [await t for t in tasks] == [consts["ID"], consts["SIGNATURE"], consts["ARRAY"]]
        assert await sy.read("SCRATCH") == 0x12345678
        # CONTROL: RUN is RW, the pulses read 0
        await sy.write("CONTROL", 0b1100)                     # RUN = 0, START, clear counters
        assert await sy.read("CONTROL") == 0
        assert (await sy.status())["start_armed"] == 1        # START while idle arms
        await sy.write("CONTROL", 0b0100)                     # START while armed: ignored
        assert await sy.read("EVENTS") == 1
        await sy.write("EVENTS", 2)                           # W1C of another bit: no effect
        assert await sy.read("EVENTS") == 1
        await sy.write("EVENTS", 1)
        assert await sy.read("EVENTS") == 0
        await sy.write("CONTROL", 0b0010)                     # soft reset clears the arm
        assert (await sy.status())["start_armed"] == 0
        await sy.write("CONTROL", 1)
        assert await sy.read("CONTROL") == 1

    @cocotb.test()
    async def inference(dut):
        """Random networks (and an extreme one) loaded through the loader and run on random
        images under random stream pauses and backpressure, bit-exact with the golden model;
        networks reloaded between inferences; bad bitstreams leave the committed network
        working and LOAD_ERROR says why; back-to-back images stream without draining."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        n_images = sy.args.get("images", 5)
        await sy.write("CONTROL", 0b1001)                     # RUN, clear counters
        sy.traffic()
        networks = [fitting_network(rng, c, random_sizes(rng, c)) for _ in range(sy.args.get("networks", 3))]
        networks.append(fitting_network(rng, c, random_sizes(rng, c), extreme=True))
        networks.append(fitting_network(rng, c, random_sizes(rng, c, layers=1)))
        counted = {"in": 0, "out": 0, "layers": 0, "images": 0}
        count = functools.partial(_count, counted, c)
        dense = [net for net in networks if not is_model(net)]
        for n, net in enumerate(networks):
            what = f"network {n} {describe(net)}"
            await sy.load_network(net, what)
            images = random_images(rng, n_images, input_shape(net), sy.T)
            await sy.infer(images, what)
            dut._log.warning(f"{what}: {len(images)} images bit-exact, last inference "
                             f"{await sy.read('CYCLES_LAST')} cycles")
            count(net, images)
            if n == 0:
                # bad bitstreams between two inferences: the first network stays
                good = bs.words_of(pack_net(dense[1], c))
                crc = list(good)
                crc[-1] ^= 1 << sy.prng.randrange(32)
                assert await sy.load_bad(crc, "CRC flipped") == E.CRC_MISMATCH
                payload = list(good)
                payload[len(payload) // 2 + 1] ^= 1 << sy.prng.randrange(32)
                await sy.load_bad(payload, "payload bit flipped")
                other = HardwareConfig(**{**c.as_dict(), "max_layers": c.max_layers + 1})
                foreign = bs.words_of(pack_net(dense[1], other))
                assert await sy.load_bad(foreign, "other hardware") == E.BAD_SIGNATURE
                assert await sy.load_bad(good[:len(good) // 2], "truncated") == E.TRUNCATED
                images = random_images(rng, 3, input_shape(net), sy.T)
                await sy.infer(images, f"{what} after bad bitstreams")
                count(net, images)
        # activity counters
        for name, key in (("IN_BEATS", "in"), ("OUT_BEATS", "out"), ("LAYERS_RUN", "layers"),
                          ("INFERENCES", "images")):
            assert await sy.read(name) == counted[key], f"{name} != {counted[key]}"
        busy, engine = await sy.read("CYCLES_BUSY"), await sy.read("ENGINE_BUSY")
        assert 0 < engine < busy, (engine, busy)
        assert await sy.read("IN_STALLS") > 0 and await sy.read("OUT_STALLS") > 0

        # throughput: back-to-back images without pauses stream without draining
        net = fitting_network(rng, c, [c.max_fan_in, c.max_neurons // 2 + 1, 3])
        await sy.load_network(net, "throughput network")
        sy.traffic(0, 0, 0)
        count = 8
        images = random_images(rng, count, c.max_fan_in, sy.T)
        await sy.write("CONTROL", 0b1001)
        t0 = get_sim_time("ns")
        await sy.send_images(images)
        frames = await sy.receive(count)
        elapsed = round((get_sim_time("ns") - t0) / CLOCK_NS)
        sy.check(frames, images, net, "throughput network")
        busy, last = await sy.read("CYCLES_BUSY"), await sy.read("CYCLES_LAST")
        beats = math.ceil(c.max_fan_in / input_words_per_beat(sy.T))
        first_image = beats * (math.ceil(input_words_per_beat(sy.T) / c.rows) + 1) + 4
        idle = elapsed - busy
        dut._log.warning(f"throughput: {count} images in {elapsed} cycles, {busy} busy, last "
                      f"inference {last} cycles, idle {idle} (first image {first_image})")
        assert busy <= count * last + count, (busy, last)
        assert idle <= first_image + 2 * count + 8, \
            f"the pipeline drains between images: {idle} idle cycles in {elapsed}"

    def _count(counted, c, net, images):
        """Add an inference batch to the activity counters the registers must show."""
        K = input_words_per_beat(c.timesteps)
        counted["in"] += len(images) * math.ceil(len(stream_words(images[0], c.rows)) / K)
        counted["out"] += len(images) * classes(net)
        counted["layers"] += len(images) * len(hardware_layers(net, c.rows))
        counted["images"] += len(images)

    @cocotb.test()
    async def conv_networks(dut):
        """Random conv networks (:func:`random_plan` within the configuration's conv limits
        and a cost cap: conv layers with random channels, maps, kernels, strides, padding and
        2 x 2 / 1 x 2 / 2 x 1 max pooling, then dense layers) as format-v2 models, packed by
        ``bitstream.pack``, loaded and run on random (C, H, W) images sent in storage order,
        under random pauses and backpressure, bit-exact with the model's golden
        (``run_network``); one with every value at an end of its range; a dense network
        between them (the sequencer switches between conv and dense layers); back-to-back
        images of a conv network; the activity counters count hardware layers (a pooling
        merges into its conv) and stored input words."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        n_images = sy.args.get("images", 4)
        budget = sy.args.get("conv_cycles", 6000)
        await sy.write("CONTROL", 0b1001)                     # RUN, clear counters
        sy.traffic()
        networks = [conv_model(rng, c, random_plan(rng, c, max_cycles=budget))
                    for _ in range(sy.args.get("networks", 3))]
        networks.append(conv_model(rng, c, random_plan(rng, c, max_cycles=budget),
                                   extreme=True))
        networks.insert(2, fitting_network(rng, c, random_sizes(rng, c)))
        counted = {"in": 0, "out": 0, "layers": 0, "images": 0}
        for n, net in enumerate(networks):
            what = f"network {n} {describe(net)}"
            await sy.load_network(net, what)
            images = random_images(rng, n_images, input_shape(net), sy.T)
            await sy.infer(images, what)
            dut._log.warning(f"{what}: {len(images)} images bit-exact, last inference "
                             f"{await sy.read('CYCLES_LAST')} cycles")
            _count(counted, c, net, images)
        for name, key in (("IN_BEATS", "in"), ("OUT_BEATS", "out"), ("LAYERS_RUN", "layers"),
                          ("INFERENCES", "images")):
            assert await sy.read(name) == counted[key], f"{name} != {counted[key]}"
        # back-to-back images of a conv network, no pauses
        net = networks[0]
        await sy.load_network(net, "conv network 0 again")
        sy.traffic(0, 0, 0)
        await sy.infer(random_images(rng, 6, input_shape(net), sy.T),
                       f"{describe(net)}, back-to-back")

    @cocotb.test()
    async def control(dut):
        """RUN = 0 and START (a START while busy is ignored and flagged), SOFT_RESET in the
        middle of an inference, and a commit that waits for the running inference."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        sy.traffic(0.2, 0.2, 0.2)
        # a network whose inference takes long enough to write registers while it runs
        sizes = [c.max_fan_in, c.max_neurons, max(2, c.max_neurons // 2)]
        net_a = fitting_network(rng, c, sizes)
        net_b = fitting_network(rng, c, random_sizes(rng, c, layers=2))
        await sy.load_network(net_a, "network A")

        # RUN = 0: an image waits until START
        await sy.write("CONTROL", 0b1000)
        img = random_images(rng, 4, _network_sizes(net_a)[0], sy.T)
        await sy.send_images(img[:1])
        await sy.inp.wait()
        await ClockCycles(dut.clk, 50)
        st = await sy.status()
        assert (st["busy"], st["images_buffered"], await sy.read("INFERENCES")) == (0, 1, 0), st
        sy.out.set_pause_generator(iter(lambda: True, False))  # hold the output: stays busy
        await sy.write("CONTROL", 0b0100)                      # START
        st = await sy.status()
        assert st["busy"] == 1 and st["start_armed"] == 0, st
        assert await sy.write("CONTROL", 0b0100) == AxiResp.OKAY   # START while busy
        st = await sy.status()
        assert st["busy"] == 1 and st["start_armed"] == 0, f"START while busy armed: {st}"
        assert await sy.read("EVENTS") == 1, "START while busy did not set START_IGNORED"
        await sy.write("EVENTS", 1)

        # a network committed while the inference runs waits for its end
        await sy.send_bitstream(bs.words_of(bs.pack_network(net_b, c)))
        sy.good += 1
        await sy.check_loader(E.NONE, "network B (pending)")
        st = await sy.status()
        assert st["commit_pending"] == 1 and st["layers"] == len(net_a), st
        sy.out.set_pause_generator(sy.pauses(0.2))
        sy.check(await sy.receive(1), img[:1], net_a, "network A while B waits")
        await ClockCycles(dut.clk, 3)
        st = await sy.status()
        assert st["commit_pending"] == 0 and st["layers"] == len(net_b) and st["busy"] == 0, st
        sy.network = net_b
        assert await sy.read("INFERENCES") == 1
        # the ignored START did not arm: the next image waits for its own START
        img_b = random_images(rng, 3, _network_sizes(net_b)[0], sy.T)
        await sy.send_images(img_b[:1])
        await sy.inp.wait()
        await ClockCycles(dut.clk, 50)
        assert (await sy.status())["images_buffered"] == 1
        assert await sy.read("INFERENCES") == 1
        await sy.write("CONTROL", 0b0100)
        sy.check(await sy.receive(1), img_b[:1], net_b, "network B after START")
        # START while idle arms one inference; the image then runs at once
        await sy.write("CONTROL", 0b0100)
        assert (await sy.status())["start_armed"] == 1
        await sy.infer(img_b[1:2], "network B, armed START")
        assert (await sy.status())["start_armed"] == 0
        assert await sy.read("EVENTS") == 0

        # SOFT_RESET in the middle of an inference: the network survives, nothing hangs
        await sy.write("CONTROL", 0b0001)                      # RUN = 1
        sy.out.set_pause_generator(iter(lambda: True, False))
        await sy.send_images(img_b[2:3])
        await sy.inp.wait()
        for _ in range(100):
            if (await sy.status())["busy"]:
                break
        else:
            raise AssertionError("the inference did not start")
        counters = await sy.read("INFERENCES")
        await sy.write("CONTROL", 0b0011)                      # SOFT_RESET
        st = await sy.status()
        assert (st["busy"], st["images_buffered"], st["layers"]) == (0, 0, len(net_b)), st
        assert await sy.read("INFERENCES") == counters        # counters survive
        assert await sy.read("CONTROL") == 1
        sy.out.set_pause_generator(sy.pauses(0.2))
        await ClockCycles(dut.clk, 20)
        assert sy.out.empty(), "output after a soft reset"
        await sy.infer(img_b, "network B after soft reset")

        # an image longer than the activation buffer: the excess is dropped and flagged
        K = input_words_per_beat(sy.T)
        cap = expected_constants(c)["ACT_DEPTH"] * c.rows
        n0 = _network_sizes(net_b)[0]
        z = random_images(rng, 3, n0, sy.T)[2]
        words = list(map(int, z)) + [0] * (cap - n0)
        beats = input_beats(words, sy.T)
        beats += [sy.prng.getrandbits(K * sy.T) for _ in range(2)]
        assert await sy.read("EVENTS") == 0
        await sy.inp.send(AxiStreamFrame(b"".join(w.to_bytes(4, "little") for w in beats)))
        sy.check(await sy.receive(1), z[None], net_b, "overlong image")
        assert await sy.read("EVENTS") == 2, "INPUT_OVERFLOW not set"
        await sy.write("EVENTS", 2)
        await sy.infer(img_b[:2], "network B after an overlong image")
        assert await sy.read("EVENTS") == 0

    @cocotb.test()
    async def soft_reset(dut):
        """SOFT_RESET in every phase of an inference (idle, during a load, in each layer, while
        the output is being sent, while it is blocked by m_axis_out_tready low), each followed
        by inferences that must be bit-exact."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        sy.traffic()
        layers = sy.args.get("layers", min(3, c.max_layers))
        sizes = [c.max_fan_in] + [c.max_neurons] * layers
        net = fitting_network(rng, c, sizes)
        other = fitting_network(rng, c, random_sizes(rng, c))
        await sy.load_network(net, "network A")
        await sy.infer(random_images(rng, 2, _network_sizes(net)[0], sy.T), "network A")
        for phase in soft_reset_phases(len(net)) * sy.args.get("rounds", 1):
            if sy.network is not net:
                await sy.load_network(net, "network A again")
            landed = await soft_reset_in(sy, phase, net, other)
            dut._log.warning(f"SOFT_RESET in {phase} (landed in {landed}): then bit-exact")
