"""Post-training quantization of a float ReLU network into a SpikePack model (SPEC section 5).

Input: a :class:`~spikepack.firmware.graph.FloatNetwork` (dense, conv and max-pooling layers;
batch normalization and average pooling already folded by the importer) whose input is
``x / x_max`` for integer pixels ``x`` in ``0 .. x_max``, and a few calibration images. Output:
a :class:`~spikepack.firmware.model.SpikePackModel` (format version 2). With tau = 2 a SpikePack
neuron is a T-bit unsigned uniform quantizer with step theta, floor and saturation, so:

* **input**: a pixel becomes a spike word by the SpikePack decode itself,
  ``z = decode(P*x + x_max//2, x_max)`` (:meth:`InputEncoding.for_pixels`), so
  ``x / x_max ~ p(z) / P``: every input channel has the scale ``s = 1 / P``;
* **calibration**: every hidden channel c (a dense neuron, or a conv output channel over all its
  positions) gets a clipping level, the ``percentile`` of its float ReLU activation on the
  calibration images (the maximum if that is 0, 1 if the channel never fires), and the output
  scale ``s_c = level / P``, so ``a ~ s_c p(z)`` and only activations above the level saturate;
* **folding**: each input channel's scale multiplies the weights that read it,
  ``W'[o, c, ...] = W[o, c, ...] s_c``; a feature map's per-channel scale applies to all its
  positions (after max pooling, which commutes with a positive scale, and after flattening in
  (c, y, x) order, where each channel covers H*W consecutive inputs);
* **weights**: per output channel, symmetric, ``q_o = max |W'[o]| / (2**(b_w-1) - 1)``,
  ``w = round(W' / q_o)``; the integer potential is the float pre-activation in units of q_o;
* **bias and threshold** in those units: ``theta_o = max(1, round(s_o / q_o))``,
  ``bias_o = round(b_o / q_o) + theta_o // 2`` (the half threshold turns the flooring decode
  into round-to-nearest); the next layer folds in the exact ``theta_o q_o``;
* **readout**: the last (dense) layer is not decoded; to keep its argmax it uses one scale for
  all channels (per tensor); the logits are the float logits / q (``readout_scale``);
* **widths**: q_o is raised where needed so that every threshold fits ``threshold_bits`` and
  every bias ``bias_bits`` (signed).

For scikit-learn's digits MLP this gives exactly the integers of the original direct converter
(:func:`spikepack.firmware.convert.convert` now runs through :func:`quantize`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spikepack.firmware.graph import (FloatConv, FloatDense, FloatMaxPool, FloatNetwork,
                                      GraphError)
from spikepack.firmware.model import (MAX_BIAS_BITS, MAX_THRESHOLD_BITS, NEURONS, ConvLayer,
                                      InputEncoding, Layer, MaxPoolLayer, SpikePackModel)
from spikepack.limits import TAU_SHIFTS, TIMESTEPS, WEIGHT_BITS
from spikepack.sim.golden import INT64_LIMIT, packed_max

__all__ = ["DEFAULT_PERCENTILE", "DEFAULT_BIAS_BITS", "DEFAULT_THRESHOLD_BITS", "QuantizeError",
           "check_options", "quantize", "quantize_layer", "calibration_levels", "float_activations",
           "float_network_from_sklearn"]

DEFAULT_PERCENTILE = 99.9
DEFAULT_BIAS_BITS = 16
DEFAULT_THRESHOLD_BITS = 15
#: The model format's largest input-encoding scale (``InputEncoding`` fields stay within 2**40).
ENCODING_LIMIT = 1 << 40
#: Images per batch of the float forward pass during calibration (bounds its memory).
CALIB_BATCH = 500


class QuantizeError(ValueError):
    """A network or option the quantizer cannot turn into a SpikePack model; names the layer.
    ``options`` are the keyword arguments of :func:`quantize` at fault (so that a command line
    can name its own options)."""

    def __init__(self, detail: str, options: Sequence[str] = ()):
        self.detail, self.options = detail, tuple(options)
        super().__init__(f"{', '.join(self.options)}: {detail}" if self.options else detail)


def quantize_layer(w_folded, b, s_out, weight_bits: int, bias_max: int, theta_max: int,
                   per_channel: bool):
    """Integers for one layer. ``w_folded`` (M, K) (K = inputs of one output: N for dense,
    C_in*K_h*K_w for conv) and ``b`` (M,) map p(z_in) to the float pre-activation; ``s_out``
    (M,) is the wanted output scale (``None`` for the readout). Returns
    ``(weights (M, K), bias, threshold or None, q)``, q being the potential unit per channel."""
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
    raise QuantizeError("could not fit the biases into the bias width")  # pragma: no cover


def check_options(*, timesteps, tau_shift, weight_bits, neuron="spikepack",
                  percentile=DEFAULT_PERCENTILE, bias_bits=DEFAULT_BIAS_BITS,
                  threshold_bits=DEFAULT_THRESHOLD_BITS, x_max=255) -> None:
    """Check :func:`quantize`'s options alone and together (before any work); the
    :class:`QuantizeError` lists the options at fault in ``options``."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    checks = (("timesteps", timesteps, *TIMESTEPS), ("weight_bits", weight_bits, *WEIGHT_BITS),
              ("bias_bits", bias_bits, 2, MAX_BIAS_BITS),
              ("threshold_bits", threshold_bits, 1, MAX_THRESHOLD_BITS),
              ("x_max", x_max, 1, 1 << 20))
    for name, value, lo, hi in checks:
        if not is_int(value) or not lo <= value <= hi:
            raise QuantizeError(f"must be an integer between {lo} and {hi}, not {value!r}", (name,))
    if not is_int(tau_shift) or tau_shift not in TAU_SHIFTS:
        raise QuantizeError(f"must be one of {', '.join(map(str, TAU_SHIFTS))}, not {tau_shift!r}",
                            ("tau_shift",))
    if not isinstance(percentile, (int, float, np.number)) or not 0 < percentile <= 100:
        raise QuantizeError(f"must be in (0, 100], not {percentile!r}", ("percentile",))
    if neuron not in NEURONS:
        raise QuantizeError(f"must be one of {', '.join(NEURONS)}, not {neuron!r}", ("neuron",))
    P = packed_max(timesteps, tau_shift)
    if P > ENCODING_LIMIT:
        raise QuantizeError(f"T = {timesteps} with tau = {1 << tau_shift} gives P = {P} "
                            f"(2**{P.bit_length()}); the input encoding's scale P must be at "
                            f"most 2**{ENCODING_LIMIT.bit_length() - 1}: lower T or tau",
                            ("timesteps", "tau_shift"))
    top = ((1 << threshold_bits) - 1) << (tau_shift * (timesteps - 1))
    if top >= INT64_LIMIT:
        raise QuantizeError(f"{threshold_bits}-bit thresholds with T = {timesteps} and tau = "
                            f"{1 << tau_shift} need decode levels theta*tau**(T-1) up to "
                            f"2**{top.bit_length()}; the golden model stops at 2**62: lower one of them",
                            ("threshold_bits", "timesteps", "tau_shift"))


def _as_batch(x, input_shape: tuple[int, ...], what: str) -> np.ndarray:
    """``x`` as (S, *input_shape): the samples may also come flat (S, prod) or as (S, H, W)."""
    a = np.asarray(x)
    n = int(np.prod(input_shape))
    if a.ndim >= 1 and tuple(a.shape[1:]) == tuple(input_shape):
        return a
    if a.ndim >= 2 and int(np.prod(a.shape[1:])) == n:
        return a.reshape((len(a),) + tuple(input_shape))
    raise QuantizeError(f"{what} must have shape (S, {', '.join(map(str, input_shape))}) (or "
                        f"{n} values per sample), not {a.shape}")


def float_activations(net: FloatNetwork, x, x_max: int) -> list[np.ndarray]:
    """The float network's activations after every layer for raw pixels ``x`` (the network sees
    ``x / x_max``), computed ``CALIB_BATCH`` images at a time."""
    a = _as_batch(x, net.input_shape, "the calibration inputs").astype(np.float64) / x_max
    parts = [net.forward(a[i:i + CALIB_BATCH]) for i in range(0, len(a), CALIB_BATCH)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(net.layers))]


def calibration_levels(activation: np.ndarray, percentile: float) -> np.ndarray:
    """Per-channel clipping level of a ReLU activation (S, M) or (S, C, H, W): the percentile
    over samples (and positions), the maximum where that is 0, and 1 where the channel never
    fires (any scale will do)."""
    a = activation
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])     # (S*H*W, C)
    level = np.percentile(a, percentile, axis=0)
    level = np.where(level > 0, level, a.max(axis=0))     # rarely active channels
    return np.where(level > 0, level, 1.0)                # never active: any scale


def _check_network(net: FloatNetwork) -> list[tuple[int, ...]]:
    if not isinstance(net, FloatNetwork):
        raise QuantizeError(f"expected a FloatNetwork, not {type(net).__name__}")
    if not net.layers:
        raise QuantizeError("the network has no layers")
    try:
        shapes = net.shapes()
    except GraphError as e:
        raise QuantizeError(str(e)) from None
    for i, layer in enumerate(net.layers):
        name = f"layer {i} ({type(layer).__name__} {layer.name!r})"
        last = i == len(net.layers) - 1
        if last and not isinstance(layer, FloatDense):
            raise QuantizeError(f"{name}: the readout (last layer) must be dense")
        if not last and isinstance(layer, (FloatConv, FloatDense)) and not layer.relu:
            raise QuantizeError(f"{name}: a hidden layer needs a ReLU (SpikePack spike words "
                                f"are unsigned)")
        if isinstance(layer, FloatMaxPool) and (i == 0 or not isinstance(net.layers[i - 1],
                                                                           FloatConv)):
            raise QuantizeError(f"{name}: max pooling must follow a conv layer (SPEC section 6)")
        if isinstance(layer, (FloatConv, FloatDense)):
            for what in ("weight", "bias"):
                if not np.all(np.isfinite(getattr(layer, what))):
                    raise QuantizeError(f"{name}: {what} holds NaN or infinity")
    return shapes


def quantize(net: FloatNetwork, calib_x, *, x_max: int, timesteps: int = 4, tau_shift: int = 1,
             weight_bits: int = 8, neuron: str = "spikepack",
             percentile: float = DEFAULT_PERCENTILE, bias_bits: int = DEFAULT_BIAS_BITS,
             threshold_bits: int = DEFAULT_THRESHOLD_BITS,
             metadata: dict | None = None) -> SpikePackModel:
    """Quantize ``net`` (whose input is ``x / x_max``) into a SpikePack model (module docstring).

    ``calib_x`` are raw calibration inputs (integers 0..``x_max``), ``(S, *net.input_shape)`` or
    flat. Every bias fits ``bias_bits`` signed bits and every threshold ``threshold_bits``
    unsigned bits. ``neuron="lif"`` writes the same integers for the LIF baseline.
    Deterministic. Raises :class:`QuantizeError` (a ValueError) naming the problem."""
    check_options(timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits,
                  neuron=neuron, percentile=percentile, bias_bits=bias_bits,
                  threshold_bits=threshold_bits, x_max=x_max)
    P = packed_max(timesteps, tau_shift)
    shapes = _check_network(net)
    for i, layer in enumerate(net.layers):
        if isinstance(layer, FloatMaxPool):
            continue
        fan_in = (int(np.prod(layer.weight.shape[1:])) if isinstance(layer, FloatConv)
                  else int(np.prod(shapes[i])))
        bound = fan_in * (1 << (weight_bits - 1)) * P + (1 << (bias_bits - 1))
        if bound >= INT64_LIMIT:
            raise QuantizeError(
                f"layer {i} ({layer.name or type(layer).__name__}, fan-in {fan_in}): with "
                f"T = {timesteps}, tau_shift = {tau_shift} and {weight_bits}-bit weights its "
                f"potential could reach 2**{bound.bit_length()}; the golden model stops at 2**62: "
                f"lower one of them",
                ("timesteps", "tau_shift", "weight_bits"))
    calib_x = _as_batch(calib_x, net.input_shape, "the calibration inputs")
    if len(calib_x) == 0:
        raise QuantizeError("no calibration inputs")
    if calib_x.min() < 0 or calib_x.max() > x_max:
        raise QuantizeError(f"calibration inputs must be pixels in 0..{x_max} (x_max), found "
                            f"{calib_x.min()}..{calib_x.max()}")
    bias_max = (1 << (bias_bits - 1)) - 1
    theta_max = (1 << threshold_bits) - 1
    encoding = InputEncoding.for_pixels(int(x_max), timesteps, tau_shift)
    # scale of p(z) per channel of the current tensor: (N,) for a vector, (C,) for a map
    s_in = np.full(shapes[0][0], 1.0 / P)
    acts = float_activations(net, calib_x, x_max)
    layers = []
    readout_scale = None
    for i, layer in enumerate(net.layers):
        in_shape = shapes[i]
        if isinstance(layer, FloatMaxPool):
            layers.append(MaxPoolLayer(tuple(layer.window)))     # max commutes with s_in
            continue
        readout = i == len(net.layers) - 1
        w = np.asarray(layer.weight, dtype=np.float64)
        b = np.asarray(layer.bias, dtype=np.float64)
        if isinstance(layer, FloatConv):
            w_folded = (w * s_in[None, :, None, None]).reshape(w.shape[0], -1)
        else:
            # a map's channel scale covers its H*W consecutive inputs in (c, y, x) order
            s_flat = np.repeat(s_in, int(np.prod(in_shape[1:]))) if len(in_shape) == 3 else s_in
            w_folded = w * s_flat[None, :]
        if readout:
            weights, bias, _, q = quantize_layer(w_folded, b, None, weight_bits, bias_max,
                                                 theta_max, per_channel=False)
            layers.append(Layer(weights, bias, None))
            readout_scale = float(q[0])
            continue
        s_out = calibration_levels(acts[i], percentile) / P
        weights, bias, theta, q = quantize_layer(w_folded, b, s_out, weight_bits, bias_max,
                                                 theta_max, per_channel=True)
        if isinstance(layer, FloatConv):
            layers.append(ConvLayer(weights.reshape(w.shape), bias, theta,
                                    stride=tuple(layer.stride), padding=tuple(layer.padding)))
        else:
            layers.append(Layer(weights, bias, theta))
        s_in = theta * q                                       # exact scale of p(z_out)
    model = SpikePackModel(timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits,
                           layers=tuple(layers), neuron=neuron, input_encoding=encoding,
                           input_shape=tuple(net.input_shape))
    need = model.needed_bits()
    weighted = [layer for layer in layers if layer.kind != "maxpool"]
    meta = {
        "converter": "spikepack.firmware.quantize",
        "percentile": float(percentile),
        "calibration_samples": int(len(calib_x)),
        "readout_scale": readout_scale,
        "bias_bits_needed": need["bias_bits"],
        "threshold_bits_needed": need["threshold_bits"],
        "max_abs_bias": int(max(np.abs(layer.bias).max() for layer in weighted)),
        "max_threshold": int(max((layer.threshold.max() for layer in weighted[:-1]), default=1)),
    }
    meta.update(metadata or {})
    return SpikePackModel(timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits,
                          layers=tuple(layers), neuron=neuron, input_encoding=encoding,
                          input_shape=tuple(net.input_shape), metadata=meta)


def float_network_from_sklearn(mlp, input_shape: Sequence[int] | None = None) -> FloatNetwork:
    """A trained scikit-learn ``MLPClassifier`` (ReLU) as a FloatNetwork of dense layers:
    ``coefs_[l]`` is (in, out), so the weights are its transpose."""
    if getattr(mlp, "activation", "relu") != "relu":
        raise QuantizeError(f"only ReLU networks convert to SpikePack, not {mlp.activation!r}")
    pairs = list(zip(mlp.coefs_, mlp.intercepts_))
    layers = tuple(FloatDense(np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64),
                              relu=i < len(pairs) - 1, name=f"dense{i}")
                   for i, (w, b) in enumerate(pairs))
    shape = tuple(input_shape) if input_shape is not None else (layers[0].weight.shape[1],)
    return FloatNetwork(input_shape=shape, layers=layers)
