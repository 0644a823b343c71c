"""Lay a quantized network out in the accelerator's on-chip memories (one bank's image).

This module is the single definition of where every weight, bias, threshold and descriptor bit
sits; the bitstream packer, the hardware loader's tests and the array benches all use it.

Tiling (``docs/architecture.md``): a layer of N inputs and M outputs is cut into
``ceil(M/C)`` column tiles, each of ``ceil(N/R)`` row tiles of R x C weights. Tiles are stored
column tile by column tile, row tile by row tile, each as ``R/g`` weight words of g array rows:

    word bit (rr*C + c)*b_w .. +b_w-1  =  W[m = ct*C + c, n = rt*R + q*g + rr]  (two's complement)

with zeros where ``m >= M`` or ``n >= N``. Bias and threshold words hold C values each, one word
per column tile, value c at bit ``c*bias_bits`` (``c*threshold_bits``). Words are padded to whole
32-bit lanes; lane 0 holds bits 0..31.

Descriptor (6 lanes, one per layer):
    lane 0: N (bits 0..15), M (bits 16..31)      lane 2: column base (bias/threshold word index)
    lane 1: weight base (weight word index)       lane 3: flags, bit 0 = readout, bit 1 = conv;
            conv: the output map after pooling, H_p (bits 8..15) and W_p (16..23)
    lane 4: conv input map: C_in (bits 0..15), H (16..23), W (24..31)
    lane 5: conv geometry: K_h (0..3), K_w (4..7), s_h (8..9), s_w (10..11), p_h (12..14),
            p_w (15..17), pool_h (18..20), pool_w (21..23) (pool window 1 x 1: no pooling)
A conv layer's M is C_out; lanes 4 and 5 are zero in a dense layer's descriptor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spikepack.config import DESCRIPTOR_LANES, WORD_BITS, HardwareConfig

__all__ = ["LayoutError", "LayerDescriptor", "DESCRIPTOR_FIELDS", "CONV_FIELDS", "to_storage",
           "from_storage", "storage_words", "NetworkImage",
           "layout_network", "unpack_network", "words_to_lanes", "lanes_to_words"]

LANE_MASK = (1 << WORD_BITS) - 1
READOUT_FLAG = 1
CONV_FLAG = 2
_L3, _L4, _L5 = 3 * WORD_BITS, 4 * WORD_BITS, 5 * WORD_BITS
#: The fields of a descriptor word (``DESCRIPTOR_LANES`` 32-bit lanes, lane 0 in the low bits)
#: as ``name: (bit offset, width)``: what the packer writes and the sequencer reads.
DESCRIPTOR_FIELDS = {"fan_in": (0, 16), "neurons": (16, 16), "weight_base": (WORD_BITS, WORD_BITS),
                     "column_base": (2 * WORD_BITS, WORD_BITS),
                     "readout": (_L3 + READOUT_FLAG.bit_length() - 1, 1),
                     "conv": (_L3 + CONV_FLAG.bit_length() - 1, 1),
                     "out_height": (_L3 + 8, 8), "out_width": (_L3 + 16, 8),
                     "in_channels": (_L4, 16), "in_height": (_L4 + 16, 8),
                     "in_width": (_L4 + 24, 8),
                     "kernel_h": (_L5, 4), "kernel_w": (_L5 + 4, 4),
                     "stride_h": (_L5 + 8, 2), "stride_w": (_L5 + 10, 2),
                     "pad_h": (_L5 + 12, 3), "pad_w": (_L5 + 15, 3),
                     "pool_h": (_L5 + 18, 3), "pool_w": (_L5 + 21, 3)}
#: the fields only a conv layer uses (zero in a dense layer's descriptor)
CONV_FIELDS = ("out_height", "out_width", "in_channels", "in_height", "in_width", "kernel_h", "kernel_w", "stride_h",
               "stride_w", "pad_h", "pad_w", "pool_h", "pool_w")
assert max(o + w for o, w in DESCRIPTOR_FIELDS.values()) <= DESCRIPTOR_LANES * WORD_BITS


def storage_words(shape: Sequence[int], rows: int) -> int:
    """Spike words a map of ``shape`` (C, H, W) occupies in an activation buffer: H x W pixels
    of ceil(C / R) entries of R words (channels last; a vector of N is the map (N, 1, 1))."""
    c, h, w = (tuple(shape) + (1, 1))[:3]
    return h * w * -(-c // rows) * rows


def to_storage(z, rows: int) -> np.ndarray:
    """A map ``z`` of spike words, shape (C, H, W) (or a vector (N,), the map (N, 1, 1)), as the
    activation buffers store it: 1-D, channels last, channels padded with zeros to a multiple of
    R, so that storage index ``((y*W + x) * CG) * R + c`` holds z[c, y, x]. This is also the
    order of ``s_axis_in`` for a network whose first layer is a conv."""
    z = np.asarray(z)
    if z.ndim == 1:
        z = z[:, None, None]
    if z.ndim != 3:
        raise LayoutError(f"a feature map must be (C, H, W) or (N,), not {z.shape}")
    c, h, w = z.shape
    cp = -(-c // rows) * rows
    out = np.zeros((h, w, cp), dtype=z.dtype)
    out[:, :, :c] = np.moveaxis(z, 0, -1)
    return out.reshape(-1)


def from_storage(v, shape: Sequence[int], rows: int) -> np.ndarray:
    """Inverse of :func:`to_storage`: the (C, H, W) map (or (N,) vector) of ``shape``."""
    shape = tuple(shape)
    c, h, w = (shape + (1, 1))[:3]
    cp = -(-c // rows) * rows
    v = np.asarray(v)
    if v.shape != (h * w * cp,):
        raise LayoutError(f"a stored map of shape {shape} holds {h * w * cp} words, not {v.shape}")
    z = np.moveaxis(v.reshape(h, w, cp)[:, :, :c], -1, 0)
    return z.reshape(shape)


class LayoutError(ValueError):
    """A network does not fit the hardware configuration; the message says where and why."""


@dataclass(frozen=True)
class LayerDescriptor:
    fan_in: int
    neurons: int
    weight_base: int
    column_base: int
    readout: bool
    conv: bool = False
    out_height: int = 0
    out_width: int = 0
    in_channels: int = 0
    in_height: int = 0
    in_width: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_h: int = 0
    pad_w: int = 0
    pool_h: int = 0
    pool_w: int = 0

    def to_lanes(self) -> list[int]:
        word = sum(int(getattr(self, name)) << offset
                   for name, (offset, _) in DESCRIPTOR_FIELDS.items())
        return [(word >> (WORD_BITS * lane)) & LANE_MASK for lane in range(DESCRIPTOR_LANES)]

    @classmethod
    def from_lanes(cls, lanes: Sequence[int]) -> "LayerDescriptor":
        word = sum(int(v) << (WORD_BITS * lane) for lane, v in enumerate(lanes))
        fields = {name: (word >> offset) & ((1 << width) - 1)
                  for name, (offset, width) in DESCRIPTOR_FIELDS.items()}
        return cls(**{**fields, "readout": bool(fields["readout"]), "conv": bool(fields["conv"])})


@dataclass(frozen=True)
class NetworkImage:
    """The contents of one memory bank: ``memories[name]`` is a ``(words, lanes)`` uint32 array
    holding only the words the network uses (the rest of the bank is don't-care)."""
    layer_count: int
    descriptors: tuple[LayerDescriptor, ...]
    memories: dict[str, np.ndarray]


def words_to_lanes(words: Sequence[int], lanes: int) -> np.ndarray:
    out = np.zeros((len(words), lanes), dtype=np.uint32)
    for i, word in enumerate(words):
        for lane in range(lanes):
            out[i, lane] = (word >> (WORD_BITS * lane)) & LANE_MASK
    return out


def lanes_to_words(array: np.ndarray) -> list[int]:
    return [sum(int(v) << (WORD_BITS * lane) for lane, v in enumerate(row)) for row in array]


def _pack_fields(values: Sequence[int], bits: int) -> int:
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def _unpack_fields(word: int, count: int, bits: int, signed: bool) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def _check_range(name: str, a: np.ndarray, lo: int, hi: int) -> None:
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        bad = a[(a < lo) | (a > hi)].ravel()[0]
        raise LayoutError(f"{name} holds {int(bad)}, outside the hardware's range {lo}..{hi}")


def layout_network(layers: Sequence, config: HardwareConfig) -> NetworkImage:
    """Lay out ``layers`` (a sequence of ``(weights (M, N), bias (M,), threshold (M,) or None)``,
    the last being the readout) for ``config``; raise :class:`LayoutError` if it does not fit."""
    R, C, g = config.rows, config.cols, config.rows_per_word
    mems = config.memories
    if not layers:
        raise LayoutError("the network has no layers")
    if len(layers) > config.max_layers:
        raise LayoutError(f"the network has {len(layers)} layers; the hardware holds at most "
                          f"{config.max_layers} (max_layers)")
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_lo, b_hi = -(1 << (config.bias_bits - 1)), (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    weight_words: list[int] = []
    bias_words: list[int] = []
    threshold_words: list[int] = []
    descriptors = []
    previous_m = None
    for index, layer in enumerate(layers):
        weights, bias, threshold = layer
        readout = index == len(layers) - 1
        where = f"layer {index}"
        w = np.asarray(weights, dtype=np.int64)
        b = np.asarray(bias, dtype=np.int64)
        if w.ndim != 2:
            raise LayoutError(f"{where}: weights must be 2-D (M, N), not {w.shape}")
        M, N = w.shape
        if b.shape != (M,):
            raise LayoutError(f"{where}: bias has shape {b.shape}, expected ({M},)")
        if previous_m is not None and N != previous_m:
            raise LayoutError(f"{where}: has {N} inputs but the layer before has {previous_m} outputs")
        previous_m = M
        if not 1 <= N <= config.max_fan_in:
            raise LayoutError(f"{where}: fan-in {N} exceeds the hardware's max_fan_in "
                              f"{config.max_fan_in}")
        if not 1 <= M <= config.max_neurons:
            raise LayoutError(f"{where}: {M} neurons exceed the hardware's max_neurons "
                              f"{config.max_neurons}")
        _check_range(f"{where}: weights", w, w_lo, w_hi)
        _check_range(f"{where}: bias", b, b_lo, b_hi)
        if readout:
            t = np.ones(M, dtype=np.int64)
        else:
            if threshold is None:
                raise LayoutError(f"{where}: a hidden layer needs thresholds")
            t = np.asarray(threshold, dtype=np.int64)
            if t.shape != (M,):
                raise LayoutError(f"{where}: threshold has shape {t.shape}, expected ({M},)")
            _check_range(f"{where}: threshold", t, 1, t_hi)
        col_tiles, row_tiles = math.ceil(M / C), math.ceil(N / R)
        descriptors.append(LayerDescriptor(N, M, len(weight_words), len(bias_words), readout))
        padded = np.zeros((col_tiles * C, row_tiles * R), dtype=np.int64)
        padded[:M, :N] = w
        bpad = np.zeros(col_tiles * C, dtype=np.int64)
        bpad[:M] = b
        tpad = np.ones(col_tiles * C, dtype=np.int64)
        tpad[:M] = t
        for ct in range(col_tiles):
            cols = slice(ct * C, ct * C + C)
            bias_words.append(_pack_fields(bpad[cols], config.bias_bits))
            threshold_words.append(_pack_fields(tpad[cols], config.threshold_bits))
            for rt in range(row_tiles):
                for q in range(R // g):
                    rows = padded[cols, rt * R + q * g: rt * R + q * g + g]   # (C, g)
                    weight_words.append(_pack_fields(rows.T.ravel(), config.weight_bits))
    for name, words in (("weight", weight_words), ("bias", bias_words)):
        if len(words) > mems[name].depth:
            raise LayoutError(f"the network needs {len(words)} {name} words; the hardware's "
                              f"{name} memory holds {mems[name].depth} per bank")
    memories = {
        "descriptor": np.array([d.to_lanes() for d in descriptors], dtype=np.uint32),
        "weight": words_to_lanes(weight_words, mems["weight"].lanes),
        "bias": words_to_lanes(bias_words, mems["bias"].lanes),
        "threshold": words_to_lanes(threshold_words, mems["threshold"].lanes),
    }
    return NetworkImage(len(layers), tuple(descriptors), memories)


def unpack_network(image: NetworkImage, config: HardwareConfig) -> list:
    """Inverse of :func:`layout_network`: the layers ``(weights, bias, threshold or None)``."""
    R, C, g = config.rows, config.cols, config.rows_per_word
    weight_words = lanes_to_words(image.memories["weight"])
    bias_words = lanes_to_words(image.memories["bias"])
    threshold_words = lanes_to_words(image.memories["threshold"])
    layers = []
    for d in image.descriptors:
        N, M = d.fan_in, d.neurons
        col_tiles, row_tiles = math.ceil(M / C), math.ceil(N / R)
        w = np.zeros((col_tiles * C, row_tiles * R), dtype=np.int64)
        b = np.zeros(col_tiles * C, dtype=np.int64)
        t = np.zeros(col_tiles * C, dtype=np.int64)
        address = d.weight_base
        for ct in range(col_tiles):
            b[ct * C:ct * C + C] = _unpack_fields(bias_words[d.column_base + ct], C,
                                                  config.bias_bits, True)
            t[ct * C:ct * C + C] = _unpack_fields(threshold_words[d.column_base + ct], C,
                                                  config.threshold_bits, False)
            for rt in range(row_tiles):
                for q in range(R // g):
                    fields = _unpack_fields(weight_words[address], g * C, config.weight_bits, True)
                    address += 1
                    block = np.array(fields, dtype=np.int64).reshape(g, C)
                    w[ct * C:ct * C + C, rt * R + q * g: rt * R + q * g + g] = block.T
        layers.append((w[:M, :N], b[:M], None if d.readout else t[:M]))
    return layers
