"""The benches' one stimulus generator: random networks (dense layer tuples, calibrated or at the
ends of their ranges; conv networks as format-v2 models from random *plans*), random images, and
the random (configuration, network) cases of the random-configuration regression, all drawn from
a seeded ``numpy.random.Generator``, so a seed replays the same stimulus. Plain Python (no
cocotb), used by the system and regression benches (:mod:`spikepack.sim.benches.system`,
:mod:`spikepack.sim.benches.regression`), ``spikepack.soak`` and the Amaranth-simulator tests.

* dense networks: :func:`random_sizes`, :func:`random_network`, :func:`extreme_network`,
  :func:`fitting_network`;
* conv networks (docs/architecture.md, "Convolution contract"): :func:`random_plan` and the plan's geometry (:func:`plan_shapes`,
  :func:`plan_layers`, :func:`plan_needs`, :func:`plan_fits`, :func:`plan_cycles`),
  :func:`foldable_plan` (its first layer folds: docs/array.md, "The first layer"),
  :func:`conv_model`;
* networks of either kind: :func:`is_model`, :func:`input_shape`, :func:`classes`,
  :func:`hardware_layers`, :func:`describe`, :func:`pack_net`, :func:`net_fold`;
* images: :func:`random_images`;
* regression cases: :func:`draw_case` (:data:`COST_LIMITS`, :func:`inference_cycles`,
  :func:`conv_limits`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikepack.config import HardwareConfig
from spikepack.sim.golden import global_potential, lif_layer, spikepack_layer, step_currents

__all__ = ["random_sizes", "random_network", "extreme_network", "fitting_network",
           "random_images", "plan_shapes", "plan_layers", "layer_cycles", "plan_cycles",
           "plan_weight_words", "plan_needs", "plan_fits", "random_plan", "foldable_plan",
           "conv_model",
           "is_model", "input_shape", "classes", "hardware_layers", "model_plan", "describe",
           "pack_net", "net_fold", "COST_LIMITS", "DENSE_ONLY", "inference_cycles", "draw_case",
           "conv_limits"]


# --- dense networks ------------------------------------------------------------------------------

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


# --- conv networks (docs/architecture.md, "Convolution contract"): plans, models, the hardware's view ------------------------------------
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
    """One hardware layer's cycles with the output never stalled (:func:`plan_layers` entry, or
    a dense layer given as ``{"fan_in": N, "neurons": M}``): the engine's own formulas,
    :func:`~spikepack.hw.layer_engine.expected_cycles` for a dense layer and
    :func:`~spikepack.hw.layer_engine.conv_expected_cycles` for a conv layer (exact when the
    layer is compute-bound, a lower bound otherwise)."""
    from spikepack.hw.layer_engine import conv_expected_cycles, expected_cycles
    if layer.get("kind") != "conv":
        return expected_cycles(config, layer["fan_in"], layer["neurons"])
    return conv_expected_cycles(config, layer["fan_in"], layer["neurons"], layer["positions"])


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
    array (rows, cols, g): what the loader checks (docs/architecture.md, "Convolution contract"), every map (input, pooled outputs)
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


def foldable_plan(rng: np.random.Generator, config: HardwareConfig, *,
                  max_cycles: int | None = None, tries: int = 400):
    """A :func:`random_plan` for ``config`` whose first conv layer folds on it
    (:func:`~spikepack.firmware.layout.input_fold`: K_w > 1, C_in*K_w within the same lane
    groups, the folded layer within the limits), or the last plan drawn when none does in
    ``tries`` draws (e.g. R = 2 with kernels 1/3/5: C_in*K_w never fits a lane group)."""
    from spikepack.firmware.layout import input_fold
    from spikepack.firmware.model import ConvLayer, MaxPoolLayer
    for _ in range(tries):
        plan = random_plan(rng, config, max_cycles=max_cycles)
        first, C_in = plan["convs"][0], plan["input"][0]
        out = first["out"]
        conv = ConvLayer(weights=np.zeros((out, C_in, *first["kernel"]), dtype=np.int64),
                         bias=np.zeros(out, dtype=np.int64), threshold=np.ones(out, dtype=np.int64),
                         stride=tuple(first["stride"]), padding=tuple(first["padding"]))
        if input_fold([conv, MaxPoolLayer(window=tuple(first["pool"]))], plan["input"],
                      config) is not None:
            return plan
    return plan


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



def pack_net(net, config: HardwareConfig, *, fold: bool = True) -> bytes:
    """The bitstream of ``net``: ``bitstream.pack`` for a model (its first layer folded when
    ``fold`` and :func:`~spikepack.firmware.layout.input_fold` allow), ``pack_network`` for
    tuples."""
    from spikepack.firmware import bitstream as bs
    return bs.pack(net, config, fold=fold) if is_model(net) else bs.pack_network(net, config)


def net_fold(net, config: HardwareConfig, *, fold: bool = True):
    """The :class:`~spikepack.firmware.layout.InputFold` of ``pack_net(net, config,
    fold=fold)`` (``None``: the first layer is not folded, or ``net`` is dense tuples): what
    ``firmware.layout.hardware_input`` folds the images with before they are sent."""
    return net.input_fold(config) if fold and is_model(net) else None




# --- random-configuration regression cases ---------------------------------------------------

#: the simulation-cost budget of one drawn case: array PEs (R * C, build time), layer sizes
#: and layers of the network, estimated cycles of one inference (simulation time)
COST_LIMITS = {"max_pes": 64, "max_array": 16, "max_size": 48, "max_layers": 4,
               "max_cycles": 5000}


#: probability that a case turns ``conv`` off (a dense network on the dense-only accelerator)
DENSE_ONLY = 1 / 3


def inference_cycles(config: HardwareConfig, sizes) -> int:
    """An estimate of one inference's cycles (the engine's tiles and fill per layer)."""
    from spikepack.hw.layer_engine import schedule
    P = schedule(config).period
    B = 1 if config.pe_mode == "packed" else config.timesteps
    total = 0
    for n, m in zip(sizes, sizes[1:]):
        G, CT = -(-n // config.rows), -(-m // config.cols)
        per_ct = max(G * P, config.cols, config.timesteps if config.pe_mode == "packed" else 0)
        total += CT * per_ct + B + config.rows + config.timesteps + 20 + m
    return total


def draw_case(rng: np.random.Generator, *, max_pes: int = COST_LIMITS["max_pes"],
              max_array: int = COST_LIMITS["max_array"], max_size: int = COST_LIMITS["max_size"],
              max_layers: int = COST_LIMITS["max_layers"],
              max_cycles: int = COST_LIMITS["max_cycles"]):
    """(config, network): layer sizes ``[N0, N1, ..., NL]`` (1 .. ``max_layers`` layers, each
    size uniform in 1 .. ``max_size``, so rarely a multiple of the array) and a random valid
    configuration from the whole space whose memory limits are just large enough for them
    (:func:`random_config` with ``sizes``). Configurations beyond the cost budget (more than
    ``max_pes`` PEs, or an inference estimated above ``max_cycles`` cycles) are redrawn; after
    50 redraws the sizes are drawn again.

    With probability :data:`DENSE_ONLY` the configuration's ``conv`` is turned off. When it
    stays on, the network is a conv network plan instead
    (:func:`random_plan`: conv layers with max pooling, then
    dense layers; a dict) and the configuration's limits, conv ones included, are redrawn
    just large enough for it (:func:`conv_limits`), within the same budget."""
    from spikepack.sim.configspace import random_config
    while True:
        layers = int(rng.integers(1, max_layers + 1))
        sizes = [int(rng.integers(1, max_size + 1)) for _ in range(layers + 1)]
        for _ in range(50):
            config = random_config(rng, sizes=sizes, max_array=max_array)
            if config.rows * config.cols > max_pes:
                continue
            if config.conv and rng.random() < DENSE_ONLY:
                # the dense-only accelerator (no patch addressing, no pooling) is a
                # configuration of its own: keep drawing it
                config = dataclasses.replace(config, conv=False)
            if config.conv:
                case = _conv_case(rng, config, max_layers=max_layers, max_cycles=max_cycles)
                if case is not None:
                    return case
            elif inference_cycles(config, sizes) <= max_cycles:
                return config, sizes


def conv_limits(rng: np.random.Generator, config: HardwareConfig, plan) -> HardwareConfig:
    """``config`` with every network limit (max_channels, max_map_side, max_map_words,
    max_kernel, max_fan_in, max_neurons, max_layers, weight_depth) just large enough for
    ``plan`` on its array: the exact minimum with probability ``configspace.EDGE``, else up to
    twice it (as :func:`random_config` sizes a dense network). Raises ``ConfigError`` when no
    such configuration is valid (registers wider than the golden model allows)."""
    from spikepack import limits
    from spikepack.sim.configspace import EDGE
    need = plan_needs(plan, config)
    ranges = {"max_channels": limits.MAX_CHANNELS, "max_map_side": limits.MAP_SIDE,
              "max_map_words": limits.MAP_WORDS, "max_kernel": limits.KERNEL,
              "max_fan_in": limits.MAX_FAN_IN, "max_neurons": limits.MAX_NEURONS,
              "max_layers": limits.MAX_LAYERS, "weight_depth": limits.WEIGHT_DEPTH}
    fields = {}
    for name, (_, hi) in ranges.items():
        low = need[name]
        top = min(2 * low, hi)
        fields[name] = low if rng.random() < EDGE or top <= low else int(rng.integers(low, top + 1))
    return dataclasses.replace(config, conv=True, **fields)


def _conv_case(rng, config: HardwareConfig, *, max_layers: int, max_cycles: int):
    """(config, plan) for a conv case on ``config``'s array, or None (over the budget)."""
    from spikepack.config import ConfigError
    for _ in range(20):
        plan = random_plan(rng, max_side=8, max_channels=6,
                           max_convs=min(2, max(1, max_layers - 1)),
                           max_dense=max(1, min(2, max_layers - 1)))
        if len(plan["convs"]) + len(plan["dense"]) > max_layers:
            continue
        try:
            sized = conv_limits(rng, config, plan)
        except ConfigError:
            continue
        if plan_fits(plan, sized) and plan_cycles(sized, plan) <= max_cycles:
            return sized, plan
    return None
