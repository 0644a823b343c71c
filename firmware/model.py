"""The SpikePack model file: a versioned on-disk format for a quantized SpikePack network.

A model is what the converter (:mod:`spikepack.firmware.convert`) writes and what the bitstream
packer reads: the integer weights, biases and thresholds of every layer, the time parameters
(T, tau_shift), the weight width, the neuron kind, how raw input features become the first
layer's spike words, and free-form metadata. Every number follows ``SPEC.md``; the golden model
(:func:`spikepack.sim.golden.run_network`) runs it.

File format (``docs/model-format.md`` is the full description): an uncompressed NumPy ``.npz``
(a zip of ``.npy`` members) holding

* ``header``: a 0-d unicode array with a JSON object: ``format`` = ``"spikepack-model"``,
  ``version`` = 1, ``timesteps``, ``tau_shift``, ``weight_bits``, ``neuron``, ``layer_count``,
  ``layers`` (one ``{"fan_in": N, "neurons": M, "readout": bool}`` per layer),
  ``input_encoding`` (an object or null) and ``metadata`` (an object);
* ``layer<i>.weights`` ``(M, N)``, ``layer<i>.bias`` ``(M,)`` and, for hidden layers only,
  ``layer<i>.threshold`` ``(M,)``: integer arrays, stored as int64.

The file is written byte-for-byte deterministically (fixed zip timestamps, sorted JSON keys), so
the same model always gives the same bytes. Loading checks the format name, the version, the
presence and type of every field, every shape, every dtype and every range, and raises
:class:`ModelFormatError` saying exactly what is wrong and where.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from spikepack.sim.golden import (INT64_LIMIT, MAX_T, TAU_SHIFTS, decode_serial, packed_max,
                                  run_network, signed_bits, unsigned_bits)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_BIAS_BITS", "MAX_THRESHOLD_BITS", "NEURONS",
           "ModelFormatError", "Layer", "InputEncoding", "SpikePackModel",
           "write_npz", "read_npz"]

FORMAT_NAME = "spikepack-model"
#: Bumped on any change a version-1 reader would misread; see docs/model-format.md.
FORMAT_VERSION = 1
#: Widest signed bias the format holds (the widest the hardware generator accepts).
MAX_BIAS_BITS = 32
#: Widest unsigned threshold the format holds (the widest the hardware generator accepts).
MAX_THRESHOLD_BITS = 32
NEURONS = ("spikepack", "lif")
MIN_WEIGHT_BITS, MAX_WEIGHT_BITS = 2, 16
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

@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: ``weights`` (M, N), ``bias`` (M,), ``threshold`` (M,) or ``None`` for the
    readout (the last layer, whose potentials are the logits). Arrays become read-only int64
    copies; width limits that depend on the model (``weight_bits``) are checked by
    :class:`SpikePackModel`."""
    weights: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None = None

    def __post_init__(self):
        w = _int_array(self.weights, "weights", 2)
        M, N = w.shape
        if M < 1 or N < 1:
            raise ModelFormatError(f"weights must have at least one row and column, not {w.shape}")
        b = _int_array(self.bias, "bias", 1)
        if b.shape != (M,):
            raise ModelFormatError(f"bias has shape {b.shape}, expected ({M},) to match weights {w.shape}")
        t = None
        if self.threshold is not None:
            t = _int_array(self.threshold, "threshold", 1)
            if t.shape != (M,):
                raise ModelFormatError(f"threshold has shape {t.shape}, expected ({M},) to match "
                                       f"weights {w.shape}")
            _range_error("threshold", t, 1, (1 << MAX_THRESHOLD_BITS) - 1,
                         f"the format's {MAX_THRESHOLD_BITS}-bit unsigned range (theta >= 1)")
        _range_error("bias", b, -(1 << (MAX_BIAS_BITS - 1)), (1 << (MAX_BIAS_BITS - 1)) - 1,
                     f"the format's {MAX_BIAS_BITS}-bit signed range")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "threshold", t)

    @property
    def fan_in(self) -> int:
        return self.weights.shape[1]

    @property
    def neurons(self) -> int:
        return self.weights.shape[0]

    def __eq__(self, other):
        if not isinstance(other, Layer):
            return NotImplemented
        same_t = (self.threshold is None and other.threshold is None) or (
            self.threshold is not None and other.threshold is not None
            and np.array_equal(self.threshold, other.threshold))
        return (np.array_equal(self.weights, other.weights)
                and np.array_equal(self.bias, other.bias) and same_t)

    __hash__ = None


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

@dataclass(frozen=True, eq=False)
class SpikePackModel:
    """A quantized SpikePack (or LIF) network; checked on construction (:class:`ModelFormatError`
    names the layer and field of the first problem)."""
    timesteps: int
    tau_shift: int
    weight_bits: int
    layers: tuple[Layer, ...]
    neuron: str = "spikepack"
    input_encoding: InputEncoding | None = None
    metadata: dict = field(default_factory=dict)

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
        if isinstance(self.layers, (Layer, str, bytes)) or not isinstance(self.layers, Sequence):
            raise ModelFormatError(f"layers must be a sequence of Layer, not "
                                   f"{type(self.layers).__name__}")
        layers = tuple(self.layers)
        if not layers:
            raise ModelFormatError("a model needs at least one layer (the readout)")
        P = packed_max(T, k)
        w_lo, w_hi = -(1 << (b_w - 1)), (1 << (b_w - 1)) - 1
        previous = None
        for i, layer in enumerate(layers):
            where = f"layer {i}"
            if not isinstance(layer, Layer):
                raise ModelFormatError(f"{where} must be a Layer, not {type(layer).__name__}")
            readout = i == len(layers) - 1
            if previous is not None and layer.fan_in != previous:
                raise ModelFormatError(f"{where}: weights have {layer.fan_in} inputs (shape "
                                       f"{layer.weights.shape}) but layer {i - 1} has {previous} "
                                       f"outputs")
            previous = layer.neurons
            _range_error(f"{where}: weights", layer.weights, w_lo, w_hi,
                         f"the {b_w}-bit two's complement range")
            if readout and layer.threshold is not None:
                raise ModelFormatError(f"{where}: the readout (last) layer is not decoded and "
                                       f"must have no threshold")
            if not readout and layer.threshold is None:
                raise ModelFormatError(f"{where}: a hidden layer needs a threshold")
            bound = layer.fan_in * (1 << (b_w - 1)) * P + int(np.max(np.abs(layer.bias)))
            if bound >= INT64_LIMIT:
                raise ModelFormatError(f"{where}: the potential could reach 2**{bound.bit_length()}")
        object.__setattr__(self, "timesteps", T)
        object.__setattr__(self, "tau_shift", k)
        object.__setattr__(self, "weight_bits", b_w)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "metadata", metadata)

    # --- derived values ------------------------------------------------------------------------

    @property
    def fan_in(self) -> int:
        """N0, the number of input features (spike words) of the first layer."""
        return self.layers[0].fan_in

    @property
    def classes(self) -> int:
        return self.layers[-1].neurons

    @property
    def widths(self) -> list[int]:
        """Layer widths N0, M0, M1, ..., the last being the number of classes."""
        return [self.fan_in] + [layer.neurons for layer in self.layers]

    def needed_bits(self) -> dict[str, int]:
        """The smallest hardware parameters that hold this model: ``weight_bits`` (as declared),
        ``bias_bits`` (signed, over every layer), ``threshold_bits`` (unsigned, over the hidden
        layers), ``max_fan_in``, ``max_neurons`` (inputs included) and ``layers``."""
        biases = np.concatenate([layer.bias for layer in self.layers])
        thresholds = [layer.threshold for layer in self.layers if layer.threshold is not None]
        t_max = max((int(t.max()) for t in thresholds), default=1)
        return {"weight_bits": self.weight_bits,
                "bias_bits": signed_bits(int(biases.min()), int(biases.max())),
                "threshold_bits": unsigned_bits(t_max),
                "max_fan_in": max(layer.fan_in for layer in self.layers),
                "max_neurons": max(self.widths),
                "layers": len(self.layers)}

    def as_layer_tuples(self) -> list[tuple]:
        """``[(weights, bias, threshold or None), ...]``: what ``layout_network`` and
        ``run_network`` take."""
        return [(layer.weights, layer.bias, layer.threshold) for layer in self.layers]

    # --- inference (golden model) ---------------------------------------------------------------

    def encode(self, x) -> np.ndarray:
        """Raw features ``(S, N0)`` to the first layer's spike words ``(S, N0)`` (int64)."""
        if self.input_encoding is None:
            raise ValueError("this model has no input encoding; pass spike words to forward()")
        z = self.input_encoding.encode(x, self.timesteps, self.tau_shift)
        if z.ndim == 0 or z.shape[-1] != self.fan_in:
            raise ValueError(f"inputs have {z.shape[-1] if z.ndim else 0} features, the model "
                             f"expects {self.fan_in}")
        return z

    def forward(self, z_in):
        """Spike words ``(..., N0)`` -> ``(logits (..., classes), activations)`` by the golden
        model: ``activations[l]`` are the spike words entering layer ``l``."""
        return run_network(z_in, self.as_layer_tuples(), self.timesteps, self.tau_shift,
                           self.neuron)

    def predict(self, x) -> np.ndarray:
        """Raw features ``(S, N0)`` -> class indices ``(S,)``: argmax of the logits, the lowest
        index on ties."""
        logits, _ = self.forward(self.encode(x))
        return np.argmax(logits, axis=-1)

    # --- files ---------------------------------------------------------------------------------

    def header(self) -> dict:
        """The JSON header written to the file."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "timesteps": self.timesteps,
            "tau_shift": self.tau_shift,
            "weight_bits": self.weight_bits,
            "neuron": self.neuron,
            "layer_count": len(self.layers),
            "layers": [{"fan_in": layer.fan_in, "neurons": layer.neurons,
                        "readout": i == len(self.layers) - 1}
                       for i, layer in enumerate(self.layers)],
            "input_encoding": None if self.input_encoding is None else self.input_encoding.to_json(),
            "metadata": self.metadata,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The named arrays written to the file (besides ``header``)."""
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.weights"] = layer.weights
            out[f"layer{i}.bias"] = layer.bias
            if layer.threshold is not None:
                out[f"layer{i}.threshold"] = layer.threshold
        return out

    def to_bytes(self) -> bytes:
        header = json.dumps(self.header(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        buffer = io.BytesIO()
        write_npz(buffer, {"header": np.array(header), **self.arrays()})
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the model file (parent directories are created); same model, same bytes."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SpikePackModel":
        """Read and check a model file; raise :class:`ModelFormatError` naming the problem."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(f"{path}: no such model file") from None
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read: {e}") from None
        try:
            return cls.from_bytes(data)
        except ModelFormatError as e:
            raise ModelFormatError(f"{path}: {e}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> "SpikePackModel":
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
        if not _is_int(version) or version != FORMAT_VERSION:
            raise ModelFormatError(f"unsupported format version {version!r}; this reader "
                                   f"understands version {FORMAT_VERSION} only")
        required = ("timesteps", "tau_shift", "weight_bits", "neuron", "layer_count", "layers",
                    "input_encoding", "metadata")
        missing = [name for name in required if name not in header]
        if missing:
            raise ModelFormatError(f"header field(s) missing: {', '.join(missing)}")
        unknown = sorted(set(header) - set(required) - {"format", "version"})
        if unknown:
            raise ModelFormatError(f"unknown header field(s) {', '.join(unknown)} (a version "
                                   f"{FORMAT_VERSION} file has none)")
        count = _check_field_int("header field 'layer_count'", header["layer_count"], 1, 1 << 16)
        shapes = header["layers"]
        if not isinstance(shapes, list) or len(shapes) != count:
            raise ModelFormatError(f"header field 'layers' must list {count} layers (layer_count), "
                                   f"found {len(shapes) if isinstance(shapes, list) else shapes!r}")
        if not isinstance(header["metadata"], dict):
            raise ModelFormatError(f"header field 'metadata' must be an object, not "
                                   f"{type(header['metadata']).__name__}")
        encoding = header["input_encoding"]
        encoding = None if encoding is None else InputEncoding.from_json(encoding)
        layers = []
        expected = set()
        for i, shape in enumerate(shapes):
            where = f"layer {i}"
            if not isinstance(shape, dict) or set(shape) != {"fan_in", "neurons", "readout"}:
                raise ModelFormatError(f"header 'layers'[{i}] must be an object with fan_in, "
                                       f"neurons and readout, not {shape!r}")
            readout = i == count - 1
            if shape["readout"] is not readout:
                raise ModelFormatError(f"{where}: header says readout={shape['readout']!r}, but "
                                       f"only the last layer is the readout")
            M = _check_field_int(f"{where}: header 'neurons'", shape["neurons"], 1, 1 << 24)
            N = _check_field_int(f"{where}: header 'fan_in'", shape["fan_in"], 1, 1 << 24)
            names = {"weights": (M, N), "bias": (M,)}
            if not readout:
                names["threshold"] = (M,)
            elif f"layer{i}.threshold" in arrays:
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
                layers.append(Layer(**fields))
            except ModelFormatError as e:
                raise ModelFormatError(f"{where}: {e}") from None
        extra = sorted(set(arrays) - expected)
        if extra:
            raise ModelFormatError(f"unexpected array(s) in the file: {', '.join(extra)}")
        return cls(timesteps=header["timesteps"], tau_shift=header["tau_shift"],
                   weight_bits=header["weight_bits"], layers=tuple(layers),
                   neuron=header["neuron"], input_encoding=encoding, metadata=header["metadata"])

    def __eq__(self, other):
        if not isinstance(other, SpikePackModel):
            return NotImplemented
        return self.header() == other.header() and all(
            a == b for a, b in zip(self.layers, other.layers))

    __hash__ = None


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
