"""NumPy golden model of SpikePack and LIF neurons (the arithmetic contract of ``SPEC.md``).

Every function is vectorised over leading axes (samples, neurons) and works in exact integers:
before any arithmetic the largest magnitude that can occur is bounded, and a :class:`WidthError`
is raised instead of letting ``int64`` wrap silently.

Conventions (SPEC section 1):

* ``T`` time steps, ``tau_shift`` = k, tau = 2**k.
* A spike word ``z`` holds step 1 in its most significant bit: ``z = sum_t s_t * 2**(T - t)``.
* A spike train array has the time axis last, index 0 = step 1.
* ``weights`` has shape ``(M, N)`` (outputs x inputs), ``bias`` and ``threshold`` shape ``(M,)``.
* Layer inputs ``z_in`` have shape ``(..., N)``; outputs ``(..., M)``.
* Feature maps (SPEC section 6) are ``(..., C, H, W)`` spike words; conv weights
  ``(C_out, C_in, K_h, K_w)``; a dense layer after a map reads it flattened in (c, y, x) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

__all__ = [
    "MAX_T", "TAU_SHIFTS", "INT64_LIMIT", "WidthError",
    "check_params", "packed_max", "spike_levels",
    "pack_spike_train", "unpack_spike_word", "packed_value",
    "step_currents", "global_potential", "global_potential_serial",
    "decode_serial", "decode_closed", "spikepack_layer",
    "lif_neuron", "lif_layer", "run_network",
    "Dense", "Conv", "MaxPool", "conv_output_shape", "conv_step_currents", "conv_potential",
    "conv_potential_serial", "spikepack_conv", "lif_conv", "maxpool_words", "flatten_map",
    "signed_bits", "unsigned_bits", "Widths", "layer_widths", "conv_layer_widths",
]

from spikepack.limits import (BIAS_BITS, FAN_IN, MAX_POTENTIAL_BITS, MAX_T, TAU_SHIFTS,
                               THRESHOLD_BITS, WEIGHT_BITS, check_int)

#: Magnitudes at or above this are refused: int64 arithmetic below it cannot wrap, even after
#: one more addition of two such values.
INT64_LIMIT = 1 << 62


class WidthError(ValueError):
    """A value, configuration or model needs more bits than the model or hardware allows."""


def check_params(T: int, tau_shift: int) -> None:
    """Raise ``ValueError`` unless ``1 <= T <= 16`` and ``tau_shift`` in {1, 2, 3}."""
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool):
        raise TypeError(f"T must be an integer, not {type(T).__name__}")
    if not 1 <= T <= MAX_T:
        raise ValueError(f"T must be between 1 and {MAX_T}, not {T}")
    if not isinstance(tau_shift, (int, np.integer)) or isinstance(tau_shift, bool):
        raise TypeError(f"tau_shift must be an integer, not {type(tau_shift).__name__}")
    if tau_shift not in TAU_SHIFTS:
        raise ValueError(f"tau_shift must be one of {TAU_SHIFTS}, not {tau_shift}")


def packed_max(T: int, tau_shift: int) -> int:
    """P = (tau**T - 1) / (tau - 1), the packed value of the all-ones spike word."""
    check_params(T, tau_shift)
    tau = 1 << tau_shift
    return (tau**T - 1) // (tau - 1)


def _as_int_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        try:
            ints = [int(v) for v in a.ravel()]
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must hold integers") from e
        if ints and max(abs(v) for v in ints) >= INT64_LIMIT:
            raise WidthError(f"{name} holds a magnitude of 2**62 or more; the golden model "
                             f"computes in int64 and refuses values that could wrap")
        return np.array(ints, dtype=np.int64).reshape(a.shape)
    if a.dtype == bool:
        return a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) >= INT64_LIMIT:
        raise WidthError(f"{name} holds a value of 2**62 or more")
    return a.astype(np.int64, copy=False)


def _max_abs(a: np.ndarray) -> int:
    return int(np.max(np.abs(a))) if a.size else 0


def _check_bound(bound: int, what: str) -> None:
    if bound >= INT64_LIMIT:
        raise WidthError(f"{what} could reach {bound.bit_length()} bits of magnitude; the golden "
                         f"model refuses anything of 2**62 or more instead of wrapping int64")


def _check_words(z: np.ndarray, T: int, name: str) -> None:
    if z.size and (int(z.min()) < 0 or int(z.max()) >= (1 << T)):
        bad = z[(z < 0) | (z >= (1 << T))].ravel()[0]
        raise ValueError(f"{name} must hold T={T}-bit spike words (0..{(1 << T) - 1}); found {bad}")


def _check_threshold(theta: np.ndarray) -> None:
    if theta.size and int(theta.min()) < 1:
        raise ValueError(f"threshold must be >= 1; found {int(theta.min())}")


# --- spike words -------------------------------------------------------------------------------

def pack_spike_train(spikes) -> np.ndarray:
    """Spike trains ``(..., T)`` of 0/1 (index 0 = step 1) to spike words ``(...)``."""
    s = _as_int_array(spikes, "spikes")
    if s.ndim == 0:
        raise ValueError("spikes needs a time axis (the last axis)")
    T = s.shape[-1]
    check_params(T, 1)
    if s.size and (int(s.min()) < 0 or int(s.max()) > 1):
        raise ValueError("spikes must be 0 or 1")
    weights = 1 << np.arange(T - 1, -1, -1, dtype=np.int64)
    return (s * weights).sum(axis=-1)


def unpack_spike_word(z, T: int) -> np.ndarray:
    """Spike words ``(...)`` to spike trains ``(..., T)`` of uint8, index 0 = step 1."""
    check_params(T, 1)
    z = _as_int_array(z, "z")
    _check_words(z, T, "z")
    shifts = np.arange(T - 1, -1, -1, dtype=np.int64)
    return ((z[..., None] >> shifts) & 1).astype(np.uint8)


def packed_value(z, T: int, tau_shift: int) -> np.ndarray:
    """p(z) = sum_t s_t * tau**(T - t); equal to z when tau_shift = 1."""
    check_params(T, tau_shift)
    z = _as_int_array(z, "z")
    _check_words(z, T, "z")
    if tau_shift == 1:
        return z.copy()
    out = np.zeros_like(z)
    for bit in range(T):  # bit b of z is step T - b, weighted tau**b
        out += ((z >> bit) & 1) << (tau_shift * bit)
    return out


@lru_cache(maxsize=None)
def spike_levels(T: int, tau_shift: int) -> np.ndarray:
    """p(z) for every spike word z = 0 .. 2**T - 1 (strictly increasing in z)."""
    levels = packed_value(np.arange(1 << T, dtype=np.int64), T, tau_shift)
    levels.setflags(write=False)
    return levels


# --- global potential --------------------------------------------------------------------------

def _layer_operands(z_in, weights, bias, T, tau_shift):
    check_params(T, tau_shift)
    z = _as_int_array(z_in, "z_in")
    w = _as_int_array(weights, "weights")
    b = _as_int_array(bias, "bias")
    if w.ndim != 2:
        raise ValueError(f"weights must have shape (M, N), not {w.shape}")
    M, N = w.shape
    if z.ndim == 0 or z.shape[-1] != N:
        raise ValueError(f"z_in has {z.shape[-1] if z.ndim else 0} inputs on its last axis, "
                         f"weights expect N={N}")
    if b.shape != (M,):
        raise ValueError(f"bias must have shape ({M},), not {b.shape}")
    _check_words(z, T, "z_in")
    bound = N * _max_abs(w) * packed_max(T, tau_shift) + _max_abs(b)
    _check_bound(bound, "the global potential")
    return z, w, b


def step_currents(z_in, weights, T: int) -> np.ndarray:
    """Per-step currents without bias, ``(..., M, T)``: I_t = sum_j w_ij * s_(j,t)."""
    check_params(T, 1)
    z = _as_int_array(z_in, "z_in")
    w = _as_int_array(weights, "weights")
    if w.ndim != 2 or z.ndim == 0 or z.shape[-1] != w.shape[1]:
        raise ValueError(f"z_in {z.shape} and weights {w.shape} do not fit (..., N) x (M, N)")
    _check_words(z, T, "z_in")
    _check_bound(w.shape[1] * _max_abs(w), "a step current")
    s = unpack_spike_word(z, T).astype(np.int64)          # (..., N, T)
    return np.einsum("...nt,mn->...mt", s, w)


def global_potential(z_in, weights, bias, T: int, tau_shift: int) -> np.ndarray:
    """v = b + sum_j w_ij * p(z_j), the packed (one-step) form. Shape ``(..., M)``."""
    z, w, b = _layer_operands(z_in, weights, bias, T, tau_shift)
    return packed_value(z, T, tau_shift) @ w.T + b


def global_potential_serial(z_in, weights, bias, T: int, tau_shift: int) -> np.ndarray:
    """The same v by Horner's rule over bit planes: u_t = tau*u_(t-1) + I_t; v = u_T + b."""
    z, w, b = _layer_operands(z_in, weights, bias, T, tau_shift)
    currents = step_currents(z, w, T)
    u = np.zeros(currents.shape[:-1], dtype=np.int64)
    for t in range(T):
        u = (u << tau_shift) + currents[..., t]
    return u + b


# --- decode ------------------------------------------------------------------------------------

def _decode_operands(v, theta, T, tau_shift):
    check_params(T, tau_shift)
    v = _as_int_array(v, "v")
    theta = _as_int_array(theta, "threshold")
    _check_threshold(theta)
    _check_bound(_max_abs(theta) << (tau_shift * (T - 1)), "the decode threshold theta*tau**(T-1)")
    _check_bound(_max_abs(v), "the potential")
    v, theta = np.broadcast_arrays(v, theta)
    return v, theta


def decode_serial(v, theta, T: int, tau_shift: int) -> np.ndarray:
    """SpikePack decode, greedy from step 1 (SPEC section 2): fire when the remainder is strictly
    greater than theta*tau**(T-t), and subtract it. Returns spike words."""
    v, theta = _decode_operands(v, theta, T, tau_shift)
    r = v.copy()
    z = np.zeros_like(r)
    for t in range(1, T + 1):
        level = theta << (tau_shift * (T - t))
        s = (r > level).astype(np.int64)
        r = r - s * level
        z = (z << 1) | s
    return z


def decode_closed(v, theta, T: int, tau_shift: int) -> np.ndarray:
    """The closed (parallel) form of the decode.

    tau = 2: z = clip(floor((v - 1) / theta), 0, 2**T - 1).
    Any tau: the spike word whose level theta*p(z) is the largest strictly below v, found by a
    binary search in the table of levels (0 when v <= 0).
    """
    v, theta = _decode_operands(v, theta, T, tau_shift)
    q = np.maximum((v - 1) // theta, 0)  # largest integer level index with theta*q < v
    if tau_shift == 1:
        return np.minimum(q, (1 << T) - 1)
    levels = spike_levels(T, tau_shift)
    return np.searchsorted(levels, q, side="right").astype(np.int64) - 1


def spikepack_layer(z_in, weights, bias, threshold, T: int, tau_shift: int) -> np.ndarray:
    """One SpikePack layer: global potential, then serial decode. Returns spike words (..., M)."""
    v = global_potential(z_in, weights, bias, T, tau_shift)
    return decode_serial(v, threshold, T, tau_shift)


# --- LIF ---------------------------------------------------------------------------------------

def lif_neuron(currents, threshold, tau_shift: int) -> np.ndarray:
    """LIF over ``currents`` (..., T), which include the bias (SPEC section 3).

    v_t = (v_(t-1) >> k) + I_t - theta*s_(t-1);  s_t = v_t > theta.  Returns spike words.
    """
    I = _as_int_array(currents, "currents")
    if I.ndim == 0:
        raise ValueError("currents needs a time axis (the last axis)")
    T = I.shape[-1]
    check_params(T, tau_shift)
    theta = _as_int_array(threshold, "threshold")
    _check_threshold(theta)
    _check_bound(4 * (_max_abs(I) + _max_abs(theta)), "the LIF membrane potential")
    v = np.zeros(np.broadcast_shapes(I.shape[:-1], theta.shape), dtype=np.int64)
    s = np.zeros_like(v)
    z = np.zeros_like(v)
    for t in range(T):
        v = (v >> tau_shift) + I[..., t] - theta * s
        s = (v > theta).astype(np.int64)
        z = (z << 1) | s
    return z


def lif_layer(z_in, weights, bias, threshold, T: int, tau_shift: int) -> np.ndarray:
    """One LIF layer: I_t = b + sum_j w_ij s_(j,t), LIF dynamics. Returns spike words (..., M)."""
    _layer_operands(z_in, weights, bias, T, tau_shift)
    currents = step_currents(z_in, weights, T) + _as_int_array(bias, "bias")[:, None]
    return lif_neuron(currents, threshold, tau_shift)


# --- convolution and pooling (SPEC section 6) ---------------------------------------------------

def _pair(value, name: str, lo: int) -> tuple[int, int]:
    """``value`` as a pair of integers >= ``lo`` (an int means the same for height and width)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer or a pair of integers, not {value!r}") from None
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise TypeError(f"{name} must be an integer or a pair of integers, not {value!r}")
    if min(pair) < lo:
        raise ValueError(f"{name} must be >= {lo}, not {pair}")
    return int(pair[0]), int(pair[1])


def conv_output_shape(in_shape, weights_shape, stride=(1, 1), padding=(0, 0)) -> tuple[int, int, int]:
    """(C_out, H_out, W_out) of a conv layer: H_out = floor((H + 2 p_h - K_h) / s_h) + 1."""
    C, H, W = (int(v) for v in in_shape)
    C_out, C_in, K_h, K_w = (int(v) for v in weights_shape)
    (s_h, s_w), (p_h, p_w) = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    if C != C_in:
        raise ValueError(f"the conv weights expect {C_in} input channels, the map has {C}")
    H_out = (H + 2 * p_h - K_h) // s_h + 1
    W_out = (W + 2 * p_w - K_w) // s_w + 1
    if H_out < 1 or W_out < 1:
        raise ValueError(f"a {K_h}x{K_w} kernel with padding {(p_h, p_w)} does not fit a "
                         f"{H}x{W} map")
    return C_out, H_out, W_out


def _conv_operands(z_in, weights, T, stride, padding):
    """Checked operands of a conv layer: z (B, C, H, W), w (O, C, K_h, K_w), the batch shape,
    the output shape, stride and padding."""
    check_params(T, 1)
    z = _as_int_array(z_in, "z_in")
    w = _as_int_array(weights, "weights")
    if w.ndim != 4 or min(w.shape) < 1:
        raise ValueError(f"conv weights must have shape (C_out, C_in, K_h, K_w), not {w.shape}")
    if z.ndim < 3:
        raise ValueError(f"z_in must be a feature map (..., C, H, W), not of shape {z.shape}")
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    out_shape = conv_output_shape(z.shape[-3:], w.shape, stride, padding)
    _check_words(z, T, "z_in")
    batch = z.shape[:-3]
    return z.reshape((-1,) + z.shape[-3:]), w, batch, out_shape, stride, padding


def _correlate(x: np.ndarray, w: np.ndarray, stride, padding, out_shape, bound: int) -> np.ndarray:
    """Exact ``y[b, o, y, x] = sum_(c, i, j) w[o, c, i, j] * x[b, c, y s_h + i - p_h, x s_w + j - p_w]``
    (zero outside the map) for integer ``x`` (B, C, H, W), as int64.

    Each output position is one row of patches (im2col, (c, i, j) order) times the flattened
    kernels, computed a few images at a time. ``bound`` bounds the sum of the magnitudes of all
    terms. Below 2**53 the sums run in float64 (BLAS), where every partial sum of integers is
    exactly representable, so the result is exact; above it they run in int64 (``bound`` < 2**62
    has been checked by the caller)."""
    from numpy.lib.stride_tricks import sliding_window_view
    (s_h, s_w), (p_h, p_w) = stride, padding
    _, H_out, W_out = out_shape
    C_out, C, K_h, K_w = w.shape
    dtype = np.float64 if bound < (1 << 53) else np.int64
    xp = np.pad(x.astype(dtype), ((0, 0), (0, 0), (p_h, p_h), (p_w, p_w)))
    win = sliding_window_view(xp, (K_h, K_w), axis=(2, 3))[:, :, ::s_h, ::s_w][:, :, :H_out, :W_out]
    kernels = w.reshape(C_out, -1).T.astype(dtype)               # (C*K_h*K_w, C_out)
    out = np.empty((x.shape[0], C_out, H_out, W_out), dtype=np.int64)
    per_image = H_out * W_out * C * K_h * K_w
    step = max(1, (1 << 22) // per_image)                         # ~32 MB of patches at a time
    for b0 in range(0, x.shape[0], step):
        part = win[b0:b0 + step]
        patches = part.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * K_h * K_w)
        y = (patches @ kernels).reshape(len(part), H_out, W_out, C_out)
        out[b0:b0 + step] = y.transpose(0, 3, 1, 2)
    return out


def conv_step_currents(z_in, weights, T: int, stride=(1, 1), padding=(0, 0)) -> np.ndarray:
    """Per-step currents of a conv layer without bias, ``(..., C_out, H_out, W_out, T)``:
    I_t[o, y, x] = sum_(c, i, j) w[o, c, i, j] * s_t(z[c, y s_h + i - p_h, x s_w + j - p_w])."""
    z, w, batch, out_shape, stride, padding = _conv_operands(z_in, weights, T, stride, padding)
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    _check_bound(fan_in * _max_abs(w), "a step current")
    planes = [_correlate((z >> (T - t)) & 1, w, stride, padding, out_shape, fan_in * _max_abs(w))
              for t in range(1, T + 1)]
    return np.stack(planes, axis=-1).reshape(batch + out_shape + (T,))


def _conv_bias(bias, C_out: int) -> np.ndarray:
    b = _as_int_array(bias, "bias")
    if b.shape != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},), one per output channel, not {b.shape}")
    return b


def _conv_bound(w: np.ndarray, b: np.ndarray, T: int, tau_shift: int) -> int:
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    bound = fan_in * _max_abs(w) * packed_max(T, tau_shift) + _max_abs(b)
    _check_bound(bound, "the global potential")
    return bound


def conv_potential(z_in, weights, bias, T: int, tau_shift: int, stride=(1, 1),
                   padding=(0, 0)) -> np.ndarray:
    """v[o, y, x] = b[o] + sum_(c, i, j) w[o, c, i, j] * p(z[c, y s_h + i - p_h, x s_w + j - p_w])
    (SPEC section 6; p(0) = 0 outside the map), the packed form. Shape (..., C_out, H_out, W_out)."""
    check_params(T, tau_shift)
    z, w, batch, out_shape, stride, padding = _conv_operands(z_in, weights, T, stride, padding)
    b = _conv_bias(bias, w.shape[0])
    bound = _conv_bound(w, b, T, tau_shift)
    v = _correlate(packed_value(z, T, tau_shift), w, stride, padding, out_shape, bound)
    return (v + b[:, None, None]).reshape(batch + out_shape)


def conv_potential_serial(z_in, weights, bias, T: int, tau_shift: int, stride=(1, 1),
                          padding=(0, 0)) -> np.ndarray:
    """The same v per output position by Horner's rule over bit planes (SPEC section 2):
    u_t = tau*u_(t-1) + I_t, v = u_T + b."""
    check_params(T, tau_shift)
    z, w, batch, out_shape, stride, padding = _conv_operands(z_in, weights, T, stride, padding)
    b = _conv_bias(bias, w.shape[0])
    _conv_bound(w, b, T, tau_shift)
    currents = conv_step_currents(z, w, T, stride, padding)
    u = np.zeros(currents.shape[:-1], dtype=np.int64)
    for t in range(T):
        u = (u << tau_shift) + currents[..., t]
    return (u + b[:, None, None]).reshape(batch + out_shape)


def _channel_threshold(threshold, C_out: int) -> np.ndarray:
    theta = _as_int_array(threshold, "threshold")
    if theta.shape != (C_out,):
        raise ValueError(f"threshold must have shape ({C_out},), one per output channel, not "
                         f"{theta.shape}")
    return theta[:, None, None]


def spikepack_conv(z_in, weights, bias, threshold, T: int, tau_shift: int, stride=(1, 1),
                   padding=(0, 0)) -> np.ndarray:
    """A SpikePack conv layer: the potential of every output position, then the serial decode
    with its channel's threshold. Returns spike words (..., C_out, H_out, W_out)."""
    v = conv_potential(z_in, weights, bias, T, tau_shift, stride, padding)
    return decode_serial(v, _channel_threshold(threshold, v.shape[-3]), T, tau_shift)


def lif_conv(z_in, weights, bias, threshold, T: int, tau_shift: int, stride=(1, 1),
             padding=(0, 0)) -> np.ndarray:
    """A LIF conv layer: per-step current I_t = b[o] + the conv of the step-t bit plane (SPEC
    sections 3 and 6), LIF dynamics per output position. Returns spike words."""
    check_params(T, tau_shift)
    z, w, batch, out_shape, stride, padding = _conv_operands(z_in, weights, T, stride, padding)
    b = _conv_bias(bias, w.shape[0])
    _conv_bound(w, b, T, tau_shift)
    currents = conv_step_currents(z, w, T, stride, padding) + b[:, None, None, None]
    return lif_neuron(currents, _channel_threshold(threshold, w.shape[0]),
                      tau_shift).reshape(batch + out_shape)


def maxpool_words(z, window) -> np.ndarray:
    """Non-overlapping max pooling of spike words (..., C, H, W): a k_h x k_w window with stride
    (k_h, k_w), no padding (rows and columns that do not fill a window are dropped); the largest
    word, compared as unsigned integers (SPEC section 6)."""
    z = _as_int_array(z, "z")
    k_h, k_w = _pair(window, "window", 1)
    if z.ndim < 3:
        raise ValueError(f"max pooling needs a feature map (..., C, H, W), not shape {z.shape}")
    if z.size and int(z.min()) < 0:
        raise ValueError(f"spike words are unsigned; found {int(z.min())}")
    *lead, H, W = z.shape
    if H < k_h or W < k_w:
        raise ValueError(f"pooling window {k_h}x{k_w} is larger than the {H}x{W} map")
    H_out, W_out = H // k_h, W // k_w
    blocks = z[..., :H_out * k_h, :W_out * k_w].reshape(*lead, H_out, k_h, W_out, k_w)
    return blocks.max(axis=(-3, -1))


def flatten_map(z) -> np.ndarray:
    """A feature map (..., C, H, W) as (..., C*H*W) in (c, y, x) order, as ONNX ``Flatten``."""
    z = _as_int_array(z, "z")
    if z.ndim < 3:
        raise ValueError(f"flatten needs a feature map (..., C, H, W), not shape {z.shape}")
    return z.reshape(z.shape[:-3] + (-1,))


# --- network -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Dense:
    """A fully connected layer for :func:`run_network`: weights (M, N), bias (M,), threshold (M,)
    (``None`` for the readout). A plain ``(weights, bias, threshold)`` tuple means the same."""
    weights: object
    bias: object
    threshold: object = None


@dataclass(frozen=True, eq=False)
class Conv:
    """A conv layer for :func:`run_network`: weights (C_out, C_in, K_h, K_w), bias and threshold
    (C_out,), stride and zero padding (pairs or ints)."""
    weights: object
    bias: object
    threshold: object
    stride: object = (1, 1)
    padding: object = (0, 0)


@dataclass(frozen=True)
class MaxPool:
    """Non-overlapping max pooling of spike words with a k_h x k_w window (:func:`maxpool_words`)."""
    window: object


def run_network(z_in, layers: Sequence, T: int, tau_shift: int, neuron: str = "spikepack"):
    """Run a network of SpikePack (or LIF) layers; the last layer is the readout (not decoded).

    ``layers`` holds :class:`Dense`, :class:`Conv` and :class:`MaxPool` layers; a plain
    ``(weights, bias, threshold)`` tuple is a dense layer. The readout must be dense; its
    threshold is ignored (it may be ``None``). ``z_in`` is ``(..., N)`` spike words when the first
    layer is dense, ``(..., C, H, W)`` when it is a conv layer; a dense layer after a feature map
    reads it flattened in (c, y, x) order. Returns ``(logits, activations)``: the readout
    potentials ``(..., M_last)`` and the list of spike-word arrays entering each layer (maps
    unflattened).
    """
    if neuron not in ("spikepack", "lif"):
        raise ValueError(f"neuron must be 'spikepack' or 'lif', not {neuron!r}")
    if not layers:
        raise ValueError("a network needs at least one layer")
    dense_fn = spikepack_layer if neuron == "spikepack" else lif_layer
    conv_fn = spikepack_conv if neuron == "spikepack" else lif_conv
    z = _as_int_array(z_in, "z_in")
    is_map = False
    activations = []
    last = len(layers) - 1
    for index, layer in enumerate(layers):
        activations.append(z)
        if isinstance(layer, tuple):
            layer = Dense(*layer)
        if isinstance(layer, Dense):
            x = z.reshape(z.shape[:-3] + (-1,)) if is_map else z
            if index == last:
                return global_potential(x, layer.weights, layer.bias, T, tau_shift), activations
            z = dense_fn(x, layer.weights, layer.bias, layer.threshold, T, tau_shift)
            is_map = False
        elif isinstance(layer, (Conv, MaxPool)):
            what = "a conv layer" if isinstance(layer, Conv) else "max pooling"
            if index == last:
                raise ValueError(f"layer {index}: the readout (last layer) must be dense")
            if not is_map and index > 0:
                raise ValueError(f"layer {index}: {what} needs a feature map, but layer "
                                 f"{index - 1} is dense")
            z = (conv_fn(z, layer.weights, layer.bias, layer.threshold, T, tau_shift,
                         layer.stride, layer.padding) if isinstance(layer, Conv)
                 else maxpool_words(z, layer.window))
            is_map = True
        else:
            raise TypeError(f"layer {index} must be Dense, Conv, MaxPool or a (weights, bias, "
                            f"threshold) tuple, not {type(layer).__name__}")
    raise AssertionError("unreachable")


# --- widths (SPEC section 4) -------------------------------------------------------------------

def signed_bits(lo: int, hi: int) -> int:
    """Fewest two's complement bits that hold every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    return max(1, max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)


def unsigned_bits(hi: int) -> int:
    """Fewest unsigned bits that hold every integer in [0, hi] (at least 1)."""
    hi = int(hi)
    if hi < 0:
        raise ValueError(f"{hi} is negative")
    return max(1, hi.bit_length())


@dataclass(frozen=True)
class Widths:
    """Register widths for one neuron datapath; nothing that fits them can ever wrap.

    ``current``    signed: one step current, the sum of ``rows`` weights;
    ``potential``  signed: the global potential v, bias included, for ``fan_in`` inputs;
    ``decode``     unsigned: the largest decode level theta*tau**(T-1);
    ``lif``        signed: the LIF membrane potential (SPEC section 3);
    ``lif_current`` signed: one LIF step current, bias included, for ``fan_in`` inputs.
    """
    current: int
    potential: int
    decode: int
    lif: int
    lif_current: int



def layer_widths(*, fan_in: int, weight_bits: int, T: int, tau_shift: int, bias_bits: int,
                 threshold_bits: int, rows: int | None = None,
                 max_bits: int = MAX_POTENTIAL_BITS) -> Widths:
    """Derive every width of SPEC section 4 from a configuration, or raise :class:`WidthError`.

    ``fan_in`` is the largest N, ``rows`` the number of inputs summed into one step current
    (the array height; defaults to ``fan_in``), ``bias_bits`` the signed bias width and
    ``threshold_bits`` the unsigned threshold width.
    """
    check_params(T, tau_shift)
    for name, value, limit in (("fan_in", fan_in, FAN_IN), ("weight_bits", weight_bits, WEIGHT_BITS),
                               ("bias_bits", bias_bits, BIAS_BITS),
                               ("threshold_bits", threshold_bits, THRESHOLD_BITS)):
        check_int(name, value, limit, numpy=True)
    rows = fan_in if rows is None else rows
    if not 1 <= rows <= fan_in:
        raise ValueError(f"rows must be between 1 and fan_in={fan_in}, not {rows}")
    w_min, w_max = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    b_min, b_max = -(1 << (bias_bits - 1)), (1 << (bias_bits - 1)) - 1
    theta_max = (1 << threshold_bits) - 1
    P = packed_max(T, tau_shift)
    current = signed_bits(rows * w_min, rows * w_max)
    potential = signed_bits(fan_in * w_min * P + b_min, fan_in * w_max * P + b_max)
    decode = unsigned_bits(theta_max << (tau_shift * (T - 1)))
    lif_current = signed_bits(fan_in * w_min + b_min, fan_in * w_max + b_max)
    # |v_t| <= |v_(t-1)|/2 + I_max + theta  =>  |v| < 2*(I_max + theta_max); one bit of margin
    i_max = max(-(fan_in * w_min + b_min), fan_in * w_max + b_max)
    lif = signed_bits(-2 * (i_max + theta_max), 2 * (i_max + theta_max))
    widths = Widths(current=current, potential=potential, decode=decode, lif=lif,
                    lif_current=lif_current)
    worst = max(potential, decode + 1, lif)
    if worst > max_bits:
        raise WidthError(
            f"this configuration needs {worst}-bit registers (potential {potential}, decode "
            f"{decode + 1}, LIF {lif}); the limit is {max_bits}: lower fan_in ({fan_in}), "
            f"weight_bits ({weight_bits}), T ({T}), tau_shift ({tau_shift}) or threshold_bits "
            f"({threshold_bits})")
    return widths


def conv_layer_widths(*, in_channels: int, kernel, weight_bits: int, T: int, tau_shift: int,
                      bias_bits: int, threshold_bits: int, rows: int | None = None,
                      max_bits: int = MAX_POTENTIAL_BITS) -> Widths:
    """:func:`layer_widths` of a conv layer: every output position sums
    ``fan_in = in_channels * K_h * K_w`` weighted inputs (SPEC sections 4 and 6)."""
    if not isinstance(in_channels, (int, np.integer)) or isinstance(in_channels, bool):
        raise TypeError(f"in_channels must be an integer, not {type(in_channels).__name__}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, not {in_channels}")
    k_h, k_w = _pair(kernel, "kernel", 1)
    return layer_widths(fan_in=int(in_channels) * k_h * k_w, weight_bits=weight_bits, T=T,
                        tau_shift=tau_shift, bias_bits=bias_bits, threshold_bits=threshold_bits,
                        rows=rows, max_bits=max_bits)
