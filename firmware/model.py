"""The SpikePack model file: a versioned on-disk format for a quantized SpikePack network.

A model is what the converter (:mod:`spikepack.firmware.convert`) writes and what the bitstream
packer reads: the integer weights, biases and thresholds of every layer, the time parameters
(T, tau_shift), the weight width, the neuron kind, how raw input features become the first
layer's spike words, and free-form metadata. Every number follows ``SPEC.md``; the golden model
(:func:`spikepack.sim.golden.run_network`) runs it.

File format (``docs/model-format.md`` is the full description): an uncompressed NumPy ``.npz``
(a zip of ``.npy`` members) holding

* ``header``: a 0-d unicode array with a JSON object: ``format`` = ``"spikepack-model"``,
  ``version`` = 2, ``timesteps``, ``tau_shift``, ``weight_bits``, ``neuron``, ``input_shape``
  (``[N]`` or ``[C, H, W]``), ``layer_count``, ``layers`` (one object per layer: ``kind``
  ``"dense"`` with ``fan_in``, ``neurons``, ``readout``; ``"conv"`` with ``in_shape``,
  ``out_shape``, ``kernel``, ``stride``, ``padding``; ``"maxpool"`` with ``in_shape``,
  ``out_shape``, ``window``), ``input_encoding`` (an object or null) and ``metadata``;
* ``layer<i>.weights`` (``(M, N)`` dense, ``(C_out, C_in, K_h, K_w)`` conv),
  ``layer<i>.bias`` and, for hidden layers only, ``layer<i>.threshold``: integer arrays, stored
  as int64. Max-pooling layers have no arrays.

Version 1 files (dense layers on a vector input, no ``kind`` and no ``input_shape``) still load;
``to_bytes(version=1)`` writes one for a dense model.

The file is written byte-for-byte deterministically (fixed zip timestamps, sorted JSON keys), so
the same model always gives the same bytes. Loading checks the format name, the version, the
presence and type of every field, every shape, every dtype and every range, and raises
:class:`ModelFormatError` saying exactly what is wrong and where.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from spikepack import limits
from spikepack.sim import golden
from spikepack.sim.golden import (INT64_LIMIT, MAX_T, TAU_SHIFTS, decode_serial, packed_max,
                                  run_network, signed_bits, unsigned_bits)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "READ_VERSIONS", "MAX_BIAS_BITS",
           "MAX_THRESHOLD_BITS", "NEURONS", "ModelFormatError", "LayerKindError", "Layer",
           "DenseLayer", "ConvLayer", "MaxPoolLayer", "InputEncoding", "SpikePackModel",
           "write_npz", "read_npz"]

FORMAT_NAME = "spikepack-model"
#: Bumped on any change a version-1 reader would misread; see docs/model-format.md.
FORMAT_VERSION = 2
#: Versions this reader loads (version 1 files hold dense layers on a vector input).
READ_VERSIONS = (1, 2)
#: Largest kernel size, stride or padding the format holds.
MAX_GEOMETRY = 1 << 16
#: Widest signed bias the format holds (the widest the hardware generator accepts).
MAX_BIAS_BITS = limits.BIAS_BITS[1]
#: Widest unsigned threshold the format holds (the widest the hardware generator accepts).
MAX_THRESHOLD_BITS = limits.THRESHOLD_BITS[1]
NEURONS = limits.NEURON_KINDS
MIN_WEIGHT_BITS, MAX_WEIGHT_BITS = limits.WEIGHT_BITS
#: A fixed zip timestamp (the earliest zip can store), so that files are reproducible.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ModelFormatError(ValueError):
    """A model (in memory or in a file) breaks the format; the message names the field."""


# --- helpers -----------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_array(value: Any, where: str, ndim: int) -> np.ndarray:
    """A read-only int64 copy of ``value``; integer dtypes only (no floats, no bools)."""
    a = np.asarray(value)
    if a.dtype == object:
        if a.size and not all(_is_int(v) for v in a.ravel()):
            raise ModelFormatError(f"{where} must hold integers, found non-integer objects")
        if a.size and max(abs(int(v)) for v in a.ravel()) >= INT64_LIMIT:
            raise ModelFormatError(f"{where} holds a magnitude of 2**62 or more")
        a = np.array([int(v) for v in a.ravel()], dtype=np.int64).reshape(a.shape)
    elif not np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        raise ModelFormatError(f"{where} must have an integer dtype, not {a.dtype}")
    if a.dtype == np.uint64 and a.size and int(a.max()) >= INT64_LIMIT:
        raise ModelFormatError(f"{where} holds a value of 2**62 or more")
    if a.ndim != ndim:
        raise ModelFormatError(f"{where} must be {ndim}-D, not of shape {a.shape}")
    out = np.array(a, dtype=np.int64, copy=True)
    out.setflags(write=False)
    return out


def _range_error(where: str, a: np.ndarray, lo: int, hi: int, what: str) -> None:
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        bad = a[(a < lo) | (a > hi)]
        index = tuple(int(i) for i in np.argwhere((a < lo) | (a > hi))[0])
        raise ModelFormatError(f"{where} holds {int(bad.ravel()[0])} at index "
                               f"{index if len(index) > 1 else index[0]}, outside {what} "
                               f"[{lo}, {hi}]")


def _check_field_int(name: str, value: Any, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise ModelFormatError(f"{name} must be an integer, not {type(value).__name__} ({value!r})")
    if not lo <= int(value) <= hi:
        raise ModelFormatError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def _normalise_json(value: Any, where: str) -> Any:
    """``value`` as JSON would give it back (tuples become lists), or an error."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ModelFormatError(f"{where} must be JSON-serialisable: {e}") from None
    return json.loads(text)


# --- layers and input encoding -----------------------------------------------------------------

def _bias_threshold(b_raw, t_raw, M: int, shape_note: str):
    """The checked bias (M,) and threshold (M,) or None of a dense or conv layer."""
    b = _int_array(b_raw, "bias", 1)
    if b.shape != (M,):
        raise ModelFormatError(f"bias has shape {b.shape}, expected ({M},) to match {shape_note}")
    t = None
    if t_raw is not None:
        t = _int_array(t_raw, "threshold", 1)
        if t.shape != (M,):
            raise ModelFormatError(f"threshold has shape {t.shape}, expected ({M},) to match "
                                   f"{shape_note}")
        _range_error("threshold", t, 1, (1 << MAX_THRESHOLD_BITS) - 1,
                     f"the format's {MAX_THRESHOLD_BITS}-bit unsigned range (theta >= 1)")
    _range_error("bias", b, -(1 << (MAX_BIAS_BITS - 1)), (1 << (MAX_BIAS_BITS - 1)) - 1,
                 f"the format's {MAX_BIAS_BITS}-bit signed range")
    return b, t


def _pair(name: str, value: Any, lo: int, hi: int = MAX_GEOMETRY) -> tuple[int, int]:
    """A (height, width) pair of integers in [lo, hi]; a single integer means both."""
    if _is_int(value):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(_is_int(v) for v in value)):
        raise ModelFormatError(f"{name} must be an integer or a pair of integers, not {value!r}")
    if not all(lo <= int(v) <= hi for v in value):
        raise ModelFormatError(f"{name} must hold integers between {lo} and {hi}, not "
                               f"{list(value)}")
    return int(value[0]), int(value[1])


def _same_array(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


@dataclass(frozen=True, eq=False)
class Layer:
    """A dense (fully connected) layer: ``weights`` (M, N), ``bias`` (M,), ``threshold`` (M,) or
    ``None`` for the readout (the last layer, whose potentials are the logits). After a feature
    map it reads the map flattened in (c, y, x) order. Arrays become read-only int64 copies;
    width limits that depend on the model (``weight_bits``) are checked by
    :class:`SpikePackModel`."""
    weights: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None = None

    kind = "dense"

    def __post_init__(self):
        w = _int_array(self.weights, "weights", 2)
        M, N = w.shape
        if M < 1 or N < 1:
            raise ModelFormatError(f"weights must have at least one row and column, not {w.shape}")
        b, t = _bias_threshold(self.bias, self.threshold, M, f"weights {w.shape}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "threshold", t)

    @property
    def fan_in(self) -> int:
        return self.weights.shape[1]

    @property
    def neurons(self) -> int:
        return self.weights.shape[0]

    def golden(self) -> golden.Dense:
        return golden.Dense(self.weights, self.bias, self.threshold)

    def __eq__(self, other):
        if not isinstance(other, Layer):
            return NotImplemented
        return (np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias)
                and _same_array(self.threshold, other.threshold))

    __hash__ = None


#: The dense layer under its kind's name.
DenseLayer = Layer


@dataclass(frozen=True, eq=False)
class ConvLayer:
    """A conv layer (SPEC section 6): ``weights`` (C_out, C_in, K_h, K_w), ``bias`` and
    ``threshold`` (C_out,), one per output channel; ``stride`` (s_h, s_w) >= 1 and zero
    ``padding`` (p_h, p_w) >= 0 (an integer means both); no groups, no dilation. A conv layer is
    never the readout, so it needs a threshold (checked by :class:`SpikePackModel`)."""
    weights: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    kind = "conv"

    def __post_init__(self):
        w = _int_array(self.weights, "weights", 4)
        if min(w.shape) < 1:
            raise ModelFormatError(f"weights must have shape (C_out, C_in, K_h, K_w) with every "
                                   f"size >= 1, not {w.shape}")
        b, t = _bias_threshold(self.bias, self.threshold, w.shape[0],
                               f"the {w.shape[0]} output channels of weights {w.shape}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "threshold", t)
        object.__setattr__(self, "stride", _pair("stride", self.stride, 1))
        object.__setattr__(self, "padding", _pair("padding", self.padding, 0))

    @property
    def in_channels(self) -> int:
        return self.weights.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def kernel(self) -> tuple[int, int]:
        return self.weights.shape[2], self.weights.shape[3]

    @property
    def fan_in(self) -> int:
        """Inputs summed into one output position: C_in * K_h * K_w."""
        return self.in_channels * self.kernel[0] * self.kernel[1]

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(C_out, H_out, W_out) for a (C, H, W) input, or :class:`ModelFormatError`."""
        if len(in_shape) != 3:
            raise ModelFormatError(f"a conv layer needs a C x H x W feature map, not a vector "
                                   f"of {in_shape[0]}")
        C, H, W = in_shape
        if C != self.in_channels:
            raise ModelFormatError(f"weights {self.weights.shape} expect {self.in_channels} "
                                   f"input channels, the map {_shape_text(in_shape)} has {C}")
        (K_h, K_w), (s_h, s_w), (p_h, p_w) = self.kernel, self.stride, self.padding
        H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
        if H_out < 1 or W_out < 1:
            raise ModelFormatError(f"a {K_h}x{K_w} kernel with padding {list(self.padding)} does "
                                   f"not fit the {H}x{W} map")
        return self.out_channels, H_out, W_out

    def golden(self) -> golden.Conv:
        return golden.Conv(self.weights, self.bias, self.threshold, self.stride, self.padding)

    def __eq__(self, other):
        if not isinstance(other, ConvLayer):
            return NotImplemented
        return (np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias)
                and _same_array(self.threshold, other.threshold)
                and self.stride == other.stride and self.padding == other.padding)

    __hash__ = None


@dataclass(frozen=True)
class MaxPoolLayer:
    """Non-overlapping max pooling of a conv layer's spike words (SPEC section 6): a k_h x k_w
    ``window`` with stride (k_h, k_w), no padding; rows and columns that do not fill a window are
    dropped (as ONNX ``MaxPool`` without ``ceil_mode``)."""
    window: tuple[int, int]

    kind = "maxpool"

    def __post_init__(self):
        object.__setattr__(self, "window", _pair("window", self.window, 1))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(in_shape) != 3:
            raise ModelFormatError(f"max pooling needs a C x H x W feature map, not a vector "
                                   f"of {in_shape[0]}")
        C, H, W = in_shape
        k_h, k_w = self.window
        if H < k_h or W < k_w:
            raise ModelFormatError(f"the {k_h}x{k_w} window is larger than the {H}x{W} map")
        return C, H // k_h, W // k_w

    def golden(self) -> golden.MaxPool:
        return golden.MaxPool(self.window)


ModelLayer = Union[Layer, ConvLayer, MaxPoolLayer]
LAYER_KINDS = {"dense": Layer, "conv": ConvLayer, "maxpool": MaxPoolLayer}


def _shape_text(shape) -> str:
    return " x ".join(str(int(n)) for n in shape)


@dataclass(frozen=True)
class InputEncoding:
    """How raw integer input features become the first layer's spike words (SPEC section 2).

    Each feature ``x`` (an integer in ``x_min .. x_max``) is turned into a potential
    ``v = scale * x + offset`` and decoded exactly like a SpikePack neuron with threshold
    ``threshold``:

        z = decode_serial(scale * x + offset, threshold, T, tau_shift)

    so the levels are ``threshold * p(z)``, the SpikePack levels (non-uniform for tau_shift > 1).
    With ``threshold = x_max``, ``scale = P`` and ``offset = threshold // 2`` (the converter's
    choice for pixels 0..16 and tau_shift = 1) this is ``x * P / x_max`` rounded to nearest.
    The encoding runs on the host; the accelerator receives the spike words.
    """
    scale: int
    offset: int
    threshold: int
    x_min: int = 0
    x_max: int = 16

    def __post_init__(self):
        limit = 1 << 40
        for name in ("scale", "offset", "threshold", "x_min", "x_max"):
            value = _check_field_int(f"input_encoding.{name}", getattr(self, name), -limit, limit)
            object.__setattr__(self, name, value)
        if self.scale < 1:
            raise ModelFormatError(f"input_encoding.scale must be >= 1, not {self.scale}")
        if self.threshold < 1:
            raise ModelFormatError(f"input_encoding.threshold must be >= 1, not {self.threshold}")
        if self.x_min > self.x_max:
            raise ModelFormatError(f"input_encoding.x_min ({self.x_min}) is above x_max ({self.x_max})")

    @classmethod
    def for_pixels(cls, x_max: int, T: int, tau_shift: int) -> "InputEncoding":
        """The converter's encoding of integer pixels 0..``x_max`` (16 for the digits, 255 for
        MNIST): scale P, offset x_max // 2, threshold x_max, so that x / x_max ~ p(z) / P (for
        tau = 2, z = x * P / x_max rounded to nearest)."""
        return cls(scale=packed_max(T, tau_shift), offset=int(x_max) // 2, threshold=int(x_max),
                   x_min=0, x_max=int(x_max))

    def to_json(self) -> dict:
        return {"kind": "spikepack-decode", "scale": self.scale, "offset": self.offset,
                "threshold": self.threshold, "x_min": self.x_min, "x_max": self.x_max}

    @classmethod
    def from_json(cls, data: Any) -> "InputEncoding":
        if not isinstance(data, dict):
            raise ModelFormatError(f"header field 'input_encoding' must be an object or null, "
                                   f"not {type(data).__name__}")
        if data.get("kind") != "spikepack-decode":
            raise ModelFormatError(f"input_encoding.kind must be 'spikepack-decode', not "
                                   f"{data.get('kind')!r}")
        names = ("scale", "offset", "threshold", "x_min", "x_max")
        missing = [n for n in names if n not in data]
        if missing:
            raise ModelFormatError(f"input_encoding is missing field(s) {', '.join(missing)}")
        unknown = sorted(set(data) - set(names) - {"kind"})
        if unknown:
            raise ModelFormatError(f"input_encoding has unknown field(s) {', '.join(unknown)}")
        return cls(**{n: data[n] for n in names})

    def encode(self, x, T: int, tau_shift: int) -> np.ndarray:
        """Raw features ``(..., N)`` (integers, or floats holding integers) to spike words."""
        a = np.asarray(x)
        if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                       or np.issubdtype(a.dtype, np.floating)):
            raise ValueError(f"input features must be numbers, not {a.dtype}")
        if np.issubdtype(a.dtype, np.floating):
            if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.round(a))):
                raise ValueError("input features must be whole numbers (the encoding is integer)")
        a = a.astype(np.int64)
        if a.size and (int(a.min()) < self.x_min or int(a.max()) > self.x_max):
            bad = a[(a < self.x_min) | (a > self.x_max)].ravel()[0]
            raise ValueError(f"input feature {int(bad)} is outside the encoding's range "
                             f"[{self.x_min}, {self.x_max}]")
        return decode_serial(self.scale * a + self.offset, self.threshold, T, tau_shift)


# --- the model ---------------------------------------------------------------------------------

class LayerKindError(ModelFormatError):
    """The model holds a layer kind that the target (today's dense-only hardware, or a version-1
    file) cannot represent."""


@dataclass(frozen=True, eq=False)
class SpikePackModel:
    """A quantized SpikePack (or LIF) network; checked on construction (:class:`ModelFormatError`
    names the layer and field of the first problem).

    ``layers`` holds :class:`Layer` (dense), :class:`ConvLayer` and :class:`MaxPoolLayer`; the
    last is a dense readout. ``input_shape`` is ``(N,)`` for feature vectors or ``(C, H, W)`` for
    images; it may be left out (``None``) when the first layer is dense, and is then ``(N0,)``.
    Shapes must chain (a dense layer after a feature map reads it flattened in (c, y, x) order),
    and max pooling must follow a conv layer (SPEC section 6)."""
    timesteps: int
    tau_shift: int
    weight_bits: int
    layers: tuple[ModelLayer, ...]
    neuron: str = "spikepack"
    input_encoding: InputEncoding | None = None
    metadata: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None

    def __post_init__(self):
        T = _check_field_int("timesteps", self.timesteps, 1, MAX_T)
        if not _is_int(self.tau_shift) or int(self.tau_shift) not in TAU_SHIFTS:
            raise ModelFormatError(f"tau_shift must be one of {TAU_SHIFTS}, not {self.tau_shift!r}")
        k = int(self.tau_shift)
        b_w = _check_field_int("weight_bits", self.weight_bits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS)
        if self.neuron not in NEURONS:
            raise ModelFormatError(f"neuron must be one of {NEURONS}, not {self.neuron!r}")
        if self.input_encoding is not None and not isinstance(self.input_encoding, InputEncoding):
            raise ModelFormatError(f"input_encoding must be an InputEncoding or None, not "
                                   f"{type(self.input_encoding).__name__}")
        if not isinstance(self.metadata, Mapping):
            raise ModelFormatError(f"metadata must be a dict, not {type(self.metadata).__name__}")
        metadata = _normalise_json(dict(self.metadata), "metadata")
        if (isinstance(self.layers, (Layer, ConvLayer, MaxPoolLayer, str, bytes))
                or not isinstance(self.layers, Sequence)):
            raise ModelFormatError(f"layers must be a sequence of layers, not "
                                   f"{type(self.layers).__name__}")
        layers = tuple(self.layers)
        if not layers:
            raise ModelFormatError("a model needs at least one layer (the readout)")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Layer, ConvLayer, MaxPoolLayer)):
                raise ModelFormatError(f"layer {i} must be a Layer, ConvLayer or MaxPoolLayer, "
                                       f"not {type(layer).__name__}")
        input_shape = self._check_input_shape(self.input_shape, layers[0])
        P = packed_max(T, k)
        w_lo, w_hi = -(1 << (b_w - 1)), (1 << (b_w - 1)) - 1
        shapes = [input_shape]
        for i, layer in enumerate(layers):
            where = f"layer {i}"
            shape = shapes[-1]
            readout = i == len(layers) - 1
            before = "the model input" if i == 0 else f"layer {i - 1} ({layers[i - 1].kind})"
            if readout and layer.kind != "dense":
                raise ModelFormatError(f"{where}: the readout (last layer) must be dense, not "
                                       f"{layer.kind}")
            if layer.kind == "dense":
                n = int(np.prod(shape))
                if layer.fan_in != n:
                    has = (f"layer {i - 1} has {n} outputs" if i else f"the input has {n} features")
                    raise ModelFormatError(f"{where}: weights have {layer.fan_in} inputs (shape "
                                           f"{layer.weights.shape}) but {has}"
                                           + (f" ({_shape_text(shape)})" if len(shape) == 3 else ""))
                out = (layer.neurons,)
            else:
                if len(shape) != 3:
                    raise ModelFormatError(
                        f"{where}: a {layer.kind} layer needs a C x H x W feature map, but "
                        f"{before} gives a vector of {shape[0]}"
                        + ("; give the model an input_shape (C, H, W)" if i == 0 else ""))
                if layer.kind == "maxpool" and (i == 0 or layers[i - 1].kind != "conv"):
                    raise ModelFormatError(f"{where}: max pooling must follow a conv layer (SPEC "
                                           f"section 6), not {before}")
                try:
                    out = layer.out_shape(shape)
                except ModelFormatError as e:
                    raise ModelFormatError(f"{where}: {e}") from None
            if layer.kind != "maxpool":
                _range_error(f"{where}: weights", layer.weights, w_lo, w_hi,
                             f"the {b_w}-bit two's complement range")
                if readout and layer.threshold is not None:
                    raise ModelFormatError(f"{where}: the readout (last) layer is not decoded and "
                                           f"must have no threshold")
                if not readout and layer.threshold is None:
                    raise ModelFormatError(f"{where}: a hidden layer needs a threshold")
                if layer.threshold is not None:
                    top = int(layer.threshold.max()) << (k * (T - 1))
                    if top >= INT64_LIMIT:
                        raise ModelFormatError(
                            f"{where}: threshold {int(layer.threshold.max())} with T = {T} and "
                            f"tau = {1 << k} gives decode levels theta*tau**(T-1) up to "
                            f"2**{top.bit_length()}; the golden model stops at 2**62")
                bound = layer.fan_in * (1 << (b_w - 1)) * P + int(np.max(np.abs(layer.bias)))
                if bound >= INT64_LIMIT:
                    raise ModelFormatError(f"{where}: the potential could reach "
                                           f"2**{bound.bit_length()}")
            shapes.append(tuple(int(n) for n in out))
        object.__setattr__(self, "timesteps", T)
        object.__setattr__(self, "tau_shift", k)
        object.__setattr__(self, "weight_bits", b_w)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "_shapes", tuple(shapes))

    @staticmethod
    def _check_input_shape(value, first) -> tuple[int, ...]:
        if value is None:
            if first.kind != "dense":
                raise ModelFormatError(f"input_shape (C, H, W) is needed: layer 0 is a "
                                       f"{first.kind} layer")
            return (first.fan_in,)
        if (not isinstance(value, (tuple, list)) or len(value) not in (1, 3)
                or not all(_is_int(v) for v in value)):
            raise ModelFormatError(f"input_shape must be (N,) or (C, H, W) of integers, not "
                                   f"{value!r}")
        if not all(1 <= int(v) <= 1 << 24 for v in value):
            raise ModelFormatError(f"input_shape must hold sizes between 1 and {1 << 24}, not "
                                   f"{list(value)}")
        return tuple(int(v) for v in value)

    # --- derived values ------------------------------------------------------------------------

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The input shape of every layer, then the output shape (``len(layers) + 1`` entries)."""
        return self._shapes

    @property
    def fan_in(self) -> int:
        """N0, the number of input features (spike words) of the first layer (C*H*W for images)."""
        return int(np.prod(self.input_shape))

    @property
    def classes(self) -> int:
        return self.layers[-1].neurons

    @property
    def widths(self) -> list[int]:
        """Sizes N0, M0, M1, ..., the last being the number of classes (a feature map counts
        C*H*W spike words)."""
        return [int(np.prod(shape)) for shape in self.shapes]

    @property
    def dense_only(self) -> bool:
        return all(layer.kind == "dense" for layer in self.layers)

    def needed_bits(self) -> dict[str, int]:
        """The smallest hardware parameters that hold this model: ``weight_bits`` (as declared),
        ``bias_bits`` (signed, over every layer), ``threshold_bits`` (unsigned, over the hidden
        layers), ``max_fan_in`` (C_in*K_h*K_w for a conv layer), ``max_neurons`` (inputs
        included; a feature map counts C*H*W) and ``layers``."""
        weighted = [layer for layer in self.layers if layer.kind != "maxpool"]
        biases = np.concatenate([layer.bias for layer in weighted])
        thresholds = [layer.threshold for layer in weighted if layer.threshold is not None]
        t_max = max((int(t.max()) for t in thresholds), default=1)
        return {"weight_bits": self.weight_bits,
                "bias_bits": signed_bits(int(biases.min()), int(biases.max())),
                "threshold_bits": unsigned_bits(t_max),
                "max_fan_in": max(layer.fan_in for layer in weighted),
                "max_neurons": max(self.widths),
                "layers": len(self.layers)}

    def as_layer_tuples(self) -> list[tuple]:
        """``[(weights, bias, threshold or None), ...]`` of a dense model: what ``layout_network``
        and ``golden.run_network`` take. A model with conv layers has no such form (its
        hardware layout depends on the array): :class:`LayerKindError`, use
        :meth:`hardware_layers`."""
        for i, layer in enumerate(self.layers):
            if layer.kind != "dense":
                raise LayerKindError(f"layer {i} is a {layer.kind} layer: a conv model has no "
                                     f"dense layer tuples; use hardware_layers(rows)")
        return [(layer.weights, layer.bias, layer.threshold) for layer in self.layers]

    def hardware_layers(self, rows: int, *, fold=None) -> list:
        """The hardware layers on an array of ``rows`` rows
        (:func:`spikepack.firmware.layout.hardware_layers`): a conv layer with the max pooling
        after it is one layer laid out in patch order, a dense layer after a map reads it as
        stored (the flatten permutation in its weights); what ``layout_network`` takes. With
        ``fold`` (:meth:`input_fold`), the first layer is folded."""
        from spikepack.firmware.layout import hardware_layers
        return hardware_layers(self.layers, self.input_shape, rows, fold=fold)

    def input_fold(self, config):
        """The first layer's :class:`~spikepack.firmware.layout.InputFold` on the hardware
        ``config`` (``None``: not folded), as ``bitstream.pack`` applies it
        (:func:`spikepack.firmware.layout.input_fold`)."""
        from spikepack.firmware.layout import input_fold
        return input_fold(self.layers, self.input_shape, config)

    def hardware_input(self, z, config, *, fold: bool = True) -> np.ndarray:
        """Spike words ``(..., *input_shape)`` -> what the hardware packed by
        ``bitstream.pack(self, config, fold=fold)`` reads: the folded maps when its first
        layer is folded (:func:`spikepack.firmware.layout.hardware_input`), else ``z``."""
        from spikepack.firmware.layout import hardware_input
        return hardware_input(z, self.input_fold(config) if fold else None)

    def hardware_model(self, config, *, fold: bool = True) -> "SpikePackModel":
        """The network the hardware runs when packed by ``bitstream.pack(self, config,
        fold=fold)``, as a model (what ``bitstream.parse`` of that bitstream gives back): this
        model, or, when the first layer is folded, the folded K_h x 1 conv reading the folded
        map (:meth:`hardware_input`) in its place; its golden model equals this one's. A folded
        model has no ``input_encoding`` (the encoding gives this model's input, which is folded
        after it)."""
        from spikepack.firmware.layout import fold_layers
        f = self.input_fold(config) if fold else None
        if f is None:
            return self
        layers, shape = fold_layers(self.layers, self.input_shape, f)
        return dataclasses.replace(self, layers=tuple(layers), input_shape=shape,
                                   input_encoding=None)

    def as_golden_layers(self) -> list:
        """The layers as :func:`spikepack.sim.golden.run_network` takes them."""
        return [layer.golden() for layer in self.layers]

    # --- inference (golden model) ---------------------------------------------------------------

    def encode(self, x) -> np.ndarray:
        """Raw features to the first layer's spike words (int64): ``(S, N0)`` for a vector input;
        ``(S, C, H, W)`` for an image input, given as ``(S, C, H, W)`` or with the same number of
        values per sample (``(S, H, W)``, ``(S, C*H*W)``)."""
        if self.input_encoding is None:
            raise ValueError("this model has no input encoding; pass spike words to forward()")
        z = self.input_encoding.encode(x, self.timesteps, self.tau_shift)
        shape = self.input_shape
        if len(shape) == 1:
            if z.ndim == 0 or z.shape[-1] != self.fan_in:
                raise ValueError(f"inputs have {z.shape[-1] if z.ndim else 0} features, the "
                                 f"model expects {self.fan_in}")
            return z
        if z.shape[-3:] == shape:
            return z
        if z.ndim >= 2 and int(np.prod(z.shape[1:])) == self.fan_in:
            return z.reshape((len(z),) + shape)
        raise ValueError(f"inputs have shape {z.shape}; the model expects (S, "
                         f"{', '.join(map(str, shape))}) or {self.fan_in} values per sample")

    def forward(self, z_in):
        """Spike words ``(..., *input_shape)`` -> ``(logits (..., classes), activations)`` by the
        golden model: ``activations[l]`` are the spike words entering layer ``l``."""
        z = np.asarray(z_in)
        if len(self.input_shape) == 3 and self.layers[0].kind == "dense":
            # an image read by a dense layer: flattened in (c, y, x) order
            if z.shape[-3:] != self.input_shape:
                raise ValueError(f"spike words of shape {z.shape} do not end in the input shape "
                                 f"{self.input_shape}")
            z = z.reshape(z.shape[:-3] + (-1,))
        return run_network(z, self.as_golden_layers(), self.timesteps, self.tau_shift,
                           self.neuron)

    def predict(self, x, batch: int = 1000) -> np.ndarray:
        """Raw features ``(S, ...)`` -> class indices ``(S,)``: argmax of the logits, the lowest
        index on ties. Runs ``batch`` samples at a time."""
        z = self.encode(x)
        if len(z) <= batch:
            return np.argmax(self.forward(z)[0], axis=-1)
        return np.concatenate([np.argmax(self.forward(z[i:i + batch])[0], axis=-1)
                               for i in range(0, len(z), batch)])

    # --- files ---------------------------------------------------------------------------------

    def _layer_entry(self, i: int, version: int) -> dict:
        layer = self.layers[i]
        if layer.kind == "dense":
            entry = {"fan_in": layer.fan_in, "neurons": layer.neurons,
                     "readout": i == len(self.layers) - 1}
            return entry if version == 1 else {"kind": "dense", **entry}
        entry = {"kind": layer.kind, "in_shape": list(self.shapes[i]),
                 "out_shape": list(self.shapes[i + 1])}
        if layer.kind == "conv":
            entry.update(kernel=list(layer.kernel), stride=list(layer.stride),
                         padding=list(layer.padding))
        else:
            entry["window"] = list(layer.window)
        return entry

    def header(self, version: int = FORMAT_VERSION) -> dict:
        """The JSON header written to the file (``version`` 1 only for dense models whose input
        is a vector)."""
        if version not in READ_VERSIONS:
            raise ModelFormatError(f"cannot write format version {version!r}; this writer knows "
                                   f"{', '.join(map(str, READ_VERSIONS))}")
        if version == 1 and (not self.dense_only or len(self.input_shape) != 1):
            raise LayerKindError("format version 1 holds dense layers on a vector input only")
        header = {
            "format": FORMAT_NAME,
            "version": version,
            "timesteps": self.timesteps,
            "tau_shift": self.tau_shift,
            "weight_bits": self.weight_bits,
            "neuron": self.neuron,
            "layer_count": len(self.layers),
            "layers": [self._layer_entry(i, version) for i in range(len(self.layers))],
            "input_encoding": None if self.input_encoding is None else self.input_encoding.to_json(),
            "metadata": self.metadata,
        }
        if version >= 2:
            header["input_shape"] = list(self.input_shape)
        return header

    def arrays(self) -> dict[str, np.ndarray]:
        """The named arrays written to the file (besides ``header``)."""
        out = {}
        for i, layer in enumerate(self.layers):
            if layer.kind == "maxpool":
                continue
            out[f"layer{i}.weights"] = layer.weights
            out[f"layer{i}.bias"] = layer.bias
            if layer.threshold is not None:
                out[f"layer{i}.threshold"] = layer.threshold
        return out

    def to_bytes(self, version: int = FORMAT_VERSION) -> bytes:
        header = json.dumps(self.header(version), sort_keys=True, separators=(",", ":"),
                            allow_nan=False)
        buffer = io.BytesIO()
        write_npz(buffer, {"header": np.array(header), **self.arrays()})
        return buffer.getvalue()

    def save(self, path: str | Path, version: int = FORMAT_VERSION) -> Path:
        """Write the model file atomically (a temporary file beside it, then a rename; parent
        directories are created); same model, same bytes."""
        from spikepack.fileio import atomic_write_bytes
        path = Path(path)
        data = self.to_bytes(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path) -> "SpikePackModel":
        """Read and check a model file; raise :class:`ModelFormatError` naming the problem."""
        from spikepack.fileio import read_bytes
        path = Path(path)
        try:
            data = read_bytes(path)
        except FileNotFoundError:
            raise ModelFormatError(f"{path}: no such model file") from None
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read: {e}") from None
        try:
            return cls.from_bytes(data)
        except ModelFormatError as e:
            raise type(e)(f"{path}: {e}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> "SpikePackModel":
        """Parse a file of any version this reader knows (version 1 files become models whose
        input shape is ``(N0,)``)."""
        arrays = read_npz(io.BytesIO(data))
        if "header" not in arrays:
            raise ModelFormatError("not a SpikePack model: the 'header' entry is missing")
        raw = arrays.pop("header")
        if raw.shape != () or raw.dtype.kind != "U":
            raise ModelFormatError(f"the 'header' entry must be a 0-d unicode string, not "
                                   f"{raw.dtype} of shape {raw.shape}")
        try:
            header = json.loads(str(raw))
        except json.JSONDecodeError as e:
            raise ModelFormatError(f"the header is not valid JSON: {e}") from None
        if not isinstance(header, dict):
            raise ModelFormatError(f"the header must be a JSON object, not {type(header).__name__}")
        if header.get("format") != FORMAT_NAME:
            raise ModelFormatError(f"not a SpikePack model: header 'format' is "
                                   f"{header.get('format')!r}, expected {FORMAT_NAME!r}")
        if "version" not in header:
            raise ModelFormatError("header field 'version' is missing")
        version = header["version"]
        if not _is_int(version) or version not in READ_VERSIONS:
            raise ModelFormatError(f"unsupported format version {version!r}; this reader "
                                   f"understands version{'s' if len(READ_VERSIONS) > 1 else ''} "
                                   f"{' and '.join(map(str, READ_VERSIONS))}")
        required = ["timesteps", "tau_shift", "weight_bits", "neuron", "layer_count", "layers",
                    "input_encoding", "metadata"]
        if version >= 2:
            required.append("input_shape")
        missing = [name for name in required if name not in header]
        if missing:
            raise ModelFormatError(f"header field(s) missing: {', '.join(missing)}")
        unknown = sorted(set(header) - set(required) - {"format", "version"})
        if unknown:
            raise ModelFormatError(f"unknown header field(s) {', '.join(unknown)} (a version "
                                   f"{version} file has none)")
        count = _check_field_int("header field 'layer_count'", header["layer_count"], 1, 1 << 16)
        entries = header["layers"]
        if not isinstance(entries, list) or len(entries) != count:
            raise ModelFormatError(f"header field 'layers' must list {count} layers (layer_count), "
                                   f"found {len(entries) if isinstance(entries, list) else entries!r}")
        if not isinstance(header["metadata"], dict):
            raise ModelFormatError(f"header field 'metadata' must be an object, not "
                                   f"{type(header['metadata']).__name__}")
        encoding = header["input_encoding"]
        encoding = None if encoding is None else InputEncoding.from_json(encoding)
        input_shape = None
        if version >= 2:
            input_shape = header["input_shape"]
            if (not isinstance(input_shape, list) or len(input_shape) not in (1, 3)
                    or not all(_is_int(v) and 1 <= v <= 1 << 24 for v in input_shape)):
                raise ModelFormatError(f"header field 'input_shape' must be [N] or [C, H, W] of "
                                       f"sizes >= 1, not {input_shape!r}")
            input_shape = tuple(input_shape)
        layers, expected = [], set()
        shape = input_shape
        for i, entry in enumerate(entries):
            layer = _read_layer(i, entry, count, version, arrays, expected)
            layers.append(layer)
            if layer.kind == "dense":
                shape = (layer.neurons,)
                continue
            # the header's redundant shapes must agree with the layers
            if tuple(entry["in_shape"]) != shape:
                raise ModelFormatError(f"layer {i}: header 'in_shape' is {entry['in_shape']}, but "
                                       f"{'the input_shape' if i == 0 else 'the layers before'} "
                                       f"give{'s' if i == 0 else ''} {list(shape)}")
            try:
                shape = layer.out_shape(shape)
            except ModelFormatError as e:
                raise ModelFormatError(f"layer {i}: {e}") from None
            if tuple(entry["out_shape"]) != shape:
                raise ModelFormatError(f"layer {i}: header 'out_shape' is {entry['out_shape']}, "
                                       f"but the layer gives {list(shape)}")
        extra = sorted(set(arrays) - expected)
        if extra:
            raise ModelFormatError(f"unexpected array(s) in the file: {', '.join(extra)}")
        return cls(timesteps=header["timesteps"], tau_shift=header["tau_shift"],
                   weight_bits=header["weight_bits"], layers=tuple(layers),
                   neuron=header["neuron"], input_encoding=encoding, metadata=header["metadata"],
                   input_shape=input_shape)

    def __eq__(self, other):
        if not isinstance(other, SpikePackModel):
            return NotImplemented
        return self.header() == other.header() and all(
            type(a) is type(b) and a == b for a, b in zip(self.layers, other.layers))

    __hash__ = None


_ENTRY_FIELDS = {1: {"dense": {"fan_in", "neurons", "readout"}},
                 2: {"dense": {"kind", "fan_in", "neurons", "readout"},
                     "conv": {"kind", "in_shape", "out_shape", "kernel", "stride", "padding"},
                     "maxpool": {"kind", "in_shape", "out_shape", "window"}}}


def _read_layer(i: int, entry: Any, count: int, version: int, arrays: dict, expected: set):
    """One layer from its header entry and arrays (``expected`` collects the array names)."""
    where = f"layer {i}"
    if version == 1:
        kind = "dense"
    else:
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or kind not in LAYER_KINDS:
            raise ModelFormatError(f"{where}: header 'kind' must be one of "
                                   f"{', '.join(LAYER_KINDS)}, not {kind!r}")
        kind = entry["kind"]
    fields = _ENTRY_FIELDS[version][kind]
    if not isinstance(entry, dict) or set(entry) != fields:
        if version == 1:
            raise ModelFormatError(f"header 'layers'[{i}] must be an object with fan_in, "
                                   f"neurons and readout, not {entry!r}")
        missing, unknown = sorted(fields - set(entry)), sorted(set(entry) - fields)
        raise ModelFormatError(f"{where} ({kind}): header entry "
                               + (f"is missing {', '.join(missing)}" if missing else "")
                               + ("; " if missing and unknown else "")
                               + (f"has unknown field(s) {', '.join(unknown)}" if unknown else ""))
    readout = i == count - 1
    if kind == "dense":
        if entry["readout"] is not readout:
            raise ModelFormatError(f"{where}: header says readout={entry['readout']!r}, but "
                                   f"only the last layer is the readout")
        M = _check_field_int(f"{where}: header 'neurons'", entry["neurons"], 1, 1 << 24)
        N = _check_field_int(f"{where}: header 'fan_in'", entry["fan_in"], 1, 1 << 24)
        names = {"weights": (M, N), "bias": (M,)}
        if not readout:
            names["threshold"] = (M,)
    else:
        for name in ("in_shape", "out_shape"):
            value = entry[name]
            if (not isinstance(value, list) or len(value) != 3
                    or not all(_is_int(v) and 1 <= v <= 1 << 24 for v in value)):
                raise ModelFormatError(f"{where} ({kind}): header '{name}' must be [C, H, W] of "
                                       f"sizes >= 1, not {value!r}")
        if kind == "maxpool":
            try:
                return MaxPoolLayer(entry["window"])
            except ModelFormatError as e:
                raise ModelFormatError(f"{where} (maxpool): header {e}") from None
        try:
            kernel = _pair("kernel", entry["kernel"], 1)
            geometry = {"stride": _pair("stride", entry["stride"], 1),
                        "padding": _pair("padding", entry["padding"], 0)}
        except ModelFormatError as e:
            raise ModelFormatError(f"{where} (conv): header {e}") from None
        C_out = entry["out_shape"][0]
        names = {"weights": (C_out, entry["in_shape"][0], *kernel), "bias": (C_out,),
                 "threshold": (C_out,)}
    if readout and f"layer{i}.threshold" in arrays:
        raise ModelFormatError(f"{where}: the readout layer has a 'layer{i}.threshold' "
                               f"array; the readout is not decoded")
    fields = {}
    for name, want in names.items():
        key = f"layer{i}.{name}"
        expected.add(key)
        if key not in arrays:
            raise ModelFormatError(f"{where}: array '{key}' is missing")
        a = arrays[key]
        if a.dtype.kind not in "iu":
            raise ModelFormatError(f"{where}: {name} has dtype {a.dtype}; only integer "
                                   f"dtypes are allowed")
        if a.shape != want:
            raise ModelFormatError(f"{where}: {name} has shape {a.shape}, the header "
                                   f"says {want}")
        fields[name] = a
    try:
        if kind == "dense":
            return Layer(**fields)
        return ConvLayer(**fields, **geometry)
    except ModelFormatError as e:
        raise ModelFormatError(f"{where}: {e}") from None


# --- deterministic .npz ------------------------------------------------------------------------

def write_npz(target, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` (readable by ``numpy.load``) with fixed zip
    timestamps and member order, so equal inputs give equal bytes. ``target`` is a path or a
    binary file object."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())


def read_npz(source) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` (no pickles); any damage is a :class:`ModelFormatError`."""
    try:
        npz = np.load(source, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ModelFormatError("not an .npz archive (a bare .npy array)")
        with npz:
            return {name: npz[name] for name in npz.files}
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, EOFError) as e:
        raise ModelFormatError(f"not a valid .npz archive (truncated or corrupt): {e}") from None
    except (ValueError, OSError, KeyError, zipfile.LargeZipFile, RuntimeError) as e:
        raise ModelFormatError(f"cannot read the archive (truncated, corrupt or not an .npz): "
                               f"{e}") from None
