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
A conv layer's M is C_out; lanes 4 and 5 are zero in a dense layer's descriptor. A descriptor
is ``DESCRIPTOR_LANES`` (6) lanes in every configuration, with or without ``config.conv``.

Hardware layers (``docs/architecture.md``, "Convolution contract"): :func:`hardware_layers`
turns a model's layers into what :func:`layout_network` lays out, a :class:`HardwareLayer`
each. A conv layer with the max pooling after it is ONE hardware layer, laid out exactly as a
dense (C_out, N) matrix in patch order, column ``n = ((ky*K_w + kx)*CG_in + cg)*R + r`` =
input channel ``c = cg*R + r`` at kernel position (ky, kx) (0 where c >= C_in), N = K_h*K_w*
CG_in*R (CG = ceil(C/R)); its :class:`ConvGeometry` fills the descriptor's conv fields. A dense
layer after a map (C, H, W) reads it as stored (channels last, :func:`to_storage`): column
``((y*W + x)*CG + cg)*R + r`` holds the model's weight of input ``c*H*W + y*W + x`` (the
flatten permutation; 0 for c >= C). :func:`descriptor_faults` is the one statement of what a
descriptor must satisfy, lane by lane (the packer, the parser and the RTL loader's tests use it).

The first layer (``docs/array.md``, "The first layer"): :func:`input_fold` decides whether a
network's first layer, a conv reading the input image, is run with its K_w kernel columns
folded into its channels (an :class:`InputFold`): the hardware layer is then the K_h x 1 conv
(stride (s_h, 1), padding (p_h, 0)) of K_w*C_in channels over the folded input map
(K_w*C_in, H, W_conv), pixel (y, x) holding channel kx*C_in + c = z[c, y, x*s_w + kx - p_w]
(spike word 0 outside the image); :func:`hardware_input` folds the images the same way. Same
products, same sums: the result is integer-identical to the original conv's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from spikepack.config import DESCRIPTOR_LANES, WORD_BITS, HardwareConfig

__all__ = ["LayoutError", "LayerDescriptor", "DESCRIPTOR_FIELDS", "CONV_FIELDS", "to_storage",
           "from_storage", "storage_words", "NetworkImage", "ConvGeometry", "HardwareLayer",
           "LayerOutput", "descriptor_faults", "hardware_layers", "model_layers",
           "layout_network", "unpack_network", "words_to_lanes", "lanes_to_words", "InputFold",
           "input_fold", "fold_layers", "hardware_input"]

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
class ConvGeometry:
    """A conv hardware layer's geometry (the descriptor's conv fields but the pooled map, which
    follows from it): input map (C_in, H, W), kernel, stride, zero padding and the max-pooling
    window (1 x 1: no pooling)."""
    in_channels: int
    in_height: int
    in_width: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    pool_h: int = 1
    pool_w: int = 1

    @property
    def conv_height(self) -> int:
        """H_out = (H + 2 p_h - K_h) // s_h + 1, the conv output's rows before pooling."""
        return (self.in_height + 2 * self.pad_h - self.kernel_h) // self.stride_h + 1

    @property
    def conv_width(self) -> int:
        return (self.in_width + 2 * self.pad_w - self.kernel_w) // self.stride_w + 1

    @property
    def out_height(self) -> int:
        """H_p = H_out // pool_h, the map as written back (the descriptor's out_height)."""
        return self.conv_height // self.pool_h

    @property
    def out_width(self) -> int:
        return self.conv_width // self.pool_w

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.in_channels, self.in_height, self.in_width

    def patch(self, rows: int) -> int:
        """N = K_h * K_w * CG_in * R: the patch as the array reads it (the descriptor's fan-in)."""
        return self.kernel_h * self.kernel_w * -(-self.in_channels // rows) * rows

    def fields(self) -> dict[str, int]:
        """The descriptor's conv fields (``out_height``/``out_width`` the pooled map)."""
        return {"conv": True, "out_height": self.out_height, "out_width": self.out_width,
                **{name: getattr(self, name) for name in (
                    "in_channels", "in_height", "in_width", "kernel_h", "kernel_w", "stride_h",
                    "stride_w", "pad_h", "pad_w", "pool_h", "pool_w")}}

    @classmethod
    def of(cls, d: "LayerDescriptor") -> "ConvGeometry":
        return cls(**{name: getattr(d, name) for name in cls.__dataclass_fields__})


class HardwareLayer(NamedTuple):
    """One hardware layer as :func:`layout_network` lays it out: the dense-equivalent
    ``weights`` (M, N) (a conv layer's in patch order, a dense layer's after a map with the
    flatten permutation), ``bias`` and ``threshold`` (M,) (``None`` for the readout), and
    ``conv``, the :class:`ConvGeometry` of a conv layer (``None`` for a dense one). A plain
    ``(weights, bias, threshold)`` tuple is a dense layer."""
    weights: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None = None
    conv: ConvGeometry | None = None


class LayerOutput(NamedTuple):
    """What a layer leaves in the activation buffers for the next one: the map (channels,
    height, width) (a dense layer's M outputs are the map (M, 1, 1)) and its stored spike words
    (a dense layer's: M; a conv layer's: ``storage_words`` of its pooled map)."""
    channels: int
    height: int
    width: int
    words: int

    @classmethod
    def of(cls, d: "LayerDescriptor", rows: int) -> "LayerOutput":
        if d.conv:
            shape = (d.neurons, d.out_height, d.out_width)
            return cls(*shape, storage_words(shape, rows))
        return cls(d.neurons, 1, 1, d.neurons)


#: the bits of lane 3 a conv descriptor may set: the conv flag and the pooled map
_LANE3_CONV = (1 << CONV_FLAG.bit_length() - 1) | (0xFFFF << 8)


def descriptor_faults(lanes: Sequence[int], lane: int, *, rows: int,
                      config: HardwareConfig | None, index: int, last: bool,
                      previous: LayerOutput | None) -> tuple[list[str], list[str]]:
    """The faults of layer ``index``'s descriptor found at ``lane`` (``lanes[0 .. lane]`` its
    lanes so far), as ``(malformed, too_large)`` message lists: the loader's BAD_DESCRIPTOR and
    TOO_LARGE, the first lane with a fault deciding, BAD_DESCRIPTOR before TOO_LARGE within a
    lane (docs/bitstream.md, "Descriptor checks"). ``previous`` is the layer before's output
    (``None`` for layer 0); ``config`` ``None`` skips the hardware's limits. Lanes 1 and 2 (the
    bases) are checked against the sections by the parser, not here.

    lane 0: fan-in and neurons at least 1.
    lane 3: the flags (dense: exactly the readout flag, 1 on the last layer only; conv: the
      conv flag, with ``config.conv``, never on the last layer, no bit but it and the pooled map
      H_p, W_p); dense: fan-in = the previous output's stored words (the chain), then
      fan-in <= max_fan_in and neurons <= max_neurons (TOO_LARGE); conv: C_out <= max_channels.
    lane 4: dense: 0; conv: C_in, H, W at least 1 and = the previous output's map (the chain),
      then C_in <= max_channels, H and W <= max_map_side (TOO_LARGE).
    lane 5: dense: 0; conv: bits 24..31 clear, kernel, stride and pool at least 1, pad < kernel,
      H + 2 p_h >= K_h (W too), fan-in = K_h K_w ceil(C_in/R) R, H_out >= pool_h and
      H_p = H_out // pool_h (W too), then K_h, K_w <= max_kernel and the stored input and
      output maps <= max_map_words (TOO_LARGE).
    """
    w = [int(v) & LANE_MASK for v in lanes]
    d = LayerDescriptor.from_lanes(w + [0] * (DESCRIPTOR_LANES - len(w)))
    where = f"layer {index}'s descriptor"
    bad: list[str] = []
    large: list[str] = []
    conv = lane >= 3 and d.conv
    if lane == 0:
        if d.fan_in == 0 or d.neurons == 0:
            bad.append(f"{where} has fan-in {d.fan_in} and {d.neurons} neurons; both must be at "
                       f"least 1")
    elif lane == 3:
        flags = w[3]
        if not conv:
            if flags != int(last):
                bad.append(f"{where} has flags 0x{flags:x}; expected {int(last)} (bit 0 = "
                           f"readout, set on the last layer only; bit 1 = conv)")
            if previous is not None and d.fan_in != previous.words:
                what = (f"{previous.words} neurons" if (previous.height, previous.width) == (1, 1)
                        and previous.words == previous.channels else
                        f"an output map {previous.channels} x {previous.height} x "
                        f"{previous.width} of {previous.words} words as stored")
                bad.append(f"{where} has fan-in {d.fan_in}, but layer {index - 1} has {what}")
            if config is not None and d.fan_in > config.max_fan_in:
                large.append(f"layer {index} has fan-in {d.fan_in}; the hardware's max_fan_in is "
                             f"{config.max_fan_in}")
            if config is not None and d.neurons > config.max_neurons:
                large.append(f"layer {index} has {d.neurons} neurons; the hardware's max_neurons "
                             f"is {config.max_neurons}")
        else:
            if config is not None and not config.conv:
                bad.append(f"{where} has the conv flag set, but this hardware has no "
                           f"convolution (conv = false)")
            if last:
                bad.append(f"{where} has the conv flag set on the last layer; the readout is a "
                           f"dense layer")
            if flags & ~_LANE3_CONV:
                bad.append(f"{where} has flags 0x{flags:x}; a conv layer sets bit 1 (conv) and "
                           f"the pooled map (bits 8..23) only")
            if config is not None and d.neurons > config.max_channels:
                large.append(f"layer {index} has {d.neurons} output channels; the hardware's "
                             f"max_channels is {config.max_channels}")
    elif lane in (4, 5) and not conv:
        if w[lane]:
            bad.append(f"{where} has conv fields 0x{w[lane]:x} in lane {lane}; a dense layer's "
                       f"lanes 4 and 5 are 0")
    elif lane == 4:
        C, H, W = d.in_channels, d.in_height, d.in_width
        if min(C, H, W) == 0:
            bad.append(f"{where} has an input map {C} x {H} x {W}; every size must be at "
                       f"least 1")
        if previous is not None and (C, H, W) != previous[:3]:
            bad.append(f"{where} has an input map {C} x {H} x {W}, but layer {index - 1} "
                       f"leaves {previous.channels} x {previous.height} x {previous.width}")
        if config is not None:
            if C > config.max_channels:
                large.append(f"layer {index} has {C} input channels; the hardware's "
                             f"max_channels is {config.max_channels}")
            if max(H, W) > config.max_map_side:
                large.append(f"layer {index} has an input map of {H} x {W}; the hardware's "
                             f"max_map_side is {config.max_map_side}")
    elif lane == 5:
        g = ConvGeometry.of(d)
        if w[5] >> 24:
            bad.append(f"{where} has bits 24..31 of lane 5 set (0x{w[5]:08x})")
        if 0 in (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pool_h, g.pool_w):
            bad.append(f"{where} has kernel {g.kernel_h} x {g.kernel_w}, stride "
                       f"{g.stride_h} x {g.stride_w} and pooling {g.pool_h} x {g.pool_w}; each "
                       f"must be at least 1")
        elif g.pad_h >= g.kernel_h or g.pad_w >= g.kernel_w:
            bad.append(f"{where} has padding {g.pad_h} x {g.pad_w}; it must be below the kernel "
                       f"{g.kernel_h} x {g.kernel_w}")
        elif (g.in_height + 2 * g.pad_h < g.kernel_h or g.in_width + 2 * g.pad_w < g.kernel_w):
            bad.append(f"{where} has a {g.kernel_h} x {g.kernel_w} kernel larger than its "
                       f"{g.in_height} x {g.in_width} input map padded by {g.pad_h} x {g.pad_w}")
        else:
            if d.fan_in != g.patch(rows):
                bad.append(f"{where} has fan-in {d.fan_in}; a {g.kernel_h} x {g.kernel_w} patch "
                           f"of {g.in_channels} channels is {g.patch(rows)} words as the array "
                           f"reads it (K_h K_w ceil(C_in/R) R)")
            H_out, W_out = g.conv_height, g.conv_width
            if (H_out < g.pool_h or W_out < g.pool_w
                    or (d.out_height, d.out_width) != (H_out // g.pool_h, W_out // g.pool_w)):
                bad.append(f"{where} has a pooled map {d.out_height} x {d.out_width}; the conv "
                           f"output {H_out} x {W_out} pooled {g.pool_h} x {g.pool_w} gives "
                           f"{H_out // g.pool_h} x {W_out // g.pool_w} (at least 1 x 1)")
        if config is not None:
            if max(g.kernel_h, g.kernel_w) > config.max_kernel:
                large.append(f"layer {index} has a {g.kernel_h} x {g.kernel_w} kernel; the "
                             f"hardware's max_kernel is {config.max_kernel}")
            for what, shape in (("input", g.in_shape),
                                ("output", (d.neurons, d.out_height, d.out_width))):
                words = storage_words(shape, rows)
                if words > config.max_map_words:
                    large.append(f"layer {index}'s {what} map {shape[0]} x {shape[1]} x "
                                 f"{shape[2]} is {words} words as stored; the hardware's "
                                 f"max_map_words is {config.max_map_words}")
    return bad, large


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


@dataclass(frozen=True)
class InputFold:
    """A first conv layer's kernel columns folded into its channels (docs/array.md, "The first
    layer"). The input image (C_in, H, W) of spike words becomes the folded map (K_w*C_in, H,
    W_conv), W_conv = (W + 2 p_w - K_w) // s_w + 1 the conv's output width before pooling:

        folded[kx*C_in + c, y, x] = z[c, y, x*s_w + kx - p_w]    (0 outside 0 .. W-1)

    and the conv (C_out, C_in, K_h, K_w), stride (s_h, s_w), padding (p_h, p_w) becomes the
    K_h x 1 conv (C_out, K_w*C_in, K_h, 1), stride (s_h, 1), padding (p_h, 0) with weights
    w'[o, kx*C_in + c, ky, 0] = w[o, c, ky, kx]: output (oy, ox) sums the same products
    w[o, c, ky, kx] * z[c, oy*s_h + ky - p_h, ox*s_w + kx - p_w] as the original conv."""
    in_channels: int
    in_height: int
    in_width: int
    kernel_w: int
    stride_w: int = 1
    pad_w: int = 0

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C_in, H, W): the model's input image."""
        return self.in_channels, self.in_height, self.in_width

    @property
    def conv_width(self) -> int:
        """W_conv = (W + 2 p_w - K_w) // s_w + 1, the folded map's width."""
        return (self.in_width + 2 * self.pad_w - self.kernel_w) // self.stride_w + 1

    @property
    def channels(self) -> int:
        """K_w * C_in, the folded map's channels."""
        return self.kernel_w * self.in_channels

    @property
    def shape(self) -> tuple[int, int, int]:
        """(K_w*C_in, H, W_conv): the folded map, the hardware's input."""
        return self.channels, self.in_height, self.conv_width

    def fold_input(self, z) -> np.ndarray:
        """Images ``(..., C_in, H, W)`` of spike words -> the folded maps ``(..., K_w*C_in, H,
        W_conv)`` (spike word 0 where a column falls in the zero padding)."""
        z = np.asarray(z)
        if z.shape[-3:] != self.in_shape:
            raise LayoutError(f"images of shape {z.shape} do not end in the folded layer's "
                              f"input {' x '.join(map(str, self.in_shape))}")
        padded = np.pad(z, [(0, 0)] * (z.ndim - 1) + [(self.pad_w, self.pad_w)])
        columns = np.arange(self.conv_width) * self.stride_w
        return np.concatenate([padded[..., columns + kx] for kx in range(self.kernel_w)],
                              axis=-3)

    def fold_weights(self, weights) -> np.ndarray:
        """Conv weights (C_out, C_in, K_h, K_w) -> the folded layer's (C_out, K_w*C_in, K_h, 1):
        channel kx*C_in + c holds column kx of channel c."""
        w = np.asarray(weights)
        C_out, C_in, K_h, K_w = w.shape
        if (C_in, K_w) != (self.in_channels, self.kernel_w):
            raise LayoutError(f"conv weights {w.shape} do not match the fold of {C_in} "
                              f"channels and {K_w} kernel columns")
        return w.transpose(0, 3, 1, 2).reshape(C_out, K_w * C_in, K_h, 1)


def input_fold(layers: Sequence, input_shape: Sequence[int],
               config: HardwareConfig) -> InputFold | None:
    """The :class:`InputFold` of a network's first layer on the hardware ``config``, or
    ``None`` when it is not folded. Folded is layer 0 when it is a conv reading the input
    image (C_in, H, W) (never a stored hidden map) with K_w > 1 and C_in*K_w <= CG*R
    (CG = ceil(C_in/R): the folded channels fit the same lane groups), and only when

    * it saves row tiles: K_h*CG < K_h*K_w*CG (always, given K_w > 1);
    * the folded input map is stored in no more words than the image (W_conv <= W);
    * the folded layer's descriptor passes every check of the loader on ``config``
      (:func:`descriptor_faults`: K_w*C_in <= max_channels, W_conv <= max_map_side, the
      stored maps <= max_map_words, ...), so a network that fits unfolded still fits.

    The max pooling after it (if any) is unchanged, and so is everything after it."""
    shape = tuple(int(v) for v in input_shape)
    if not layers or layers[0].kind != "conv" or len(shape) != 3 or not config.conv:
        return None
    R = config.rows
    w = np.asarray(layers[0].weights)
    C_out, C_in, K_h, K_w = w.shape
    C, H, W = shape
    CG = -(-C_in // R)
    if C != C_in or K_w == 1 or C_in * K_w > CG * R:
        return None
    (s_h, s_w), (p_h, p_w) = (tuple(int(v) for v in layers[0].stride),
                              tuple(int(v) for v in layers[0].padding))
    fold = InputFold(C_in, H, W, K_w, s_w, p_w)
    pooled = len(layers) > 1 and layers[1].kind == "maxpool"
    pool = tuple(int(v) for v in layers[1].window) if pooled else (1, 1)
    original = ConvGeometry(C_in, H, W, K_h, K_w, s_h, s_w, p_h, p_w, *pool)
    folded = ConvGeometry(fold.channels, H, fold.conv_width, K_h, 1, s_h, 1, p_h, 0, *pool)
    if fold.conv_width < 1 or folded.patch(R) >= original.patch(R):
        return None
    if storage_words(folded.in_shape, R) > storage_words(original.in_shape, R):
        return None
    if (folded.out_height, folded.out_width) != (original.out_height, original.out_width):
        return None                                       # (never: the same output positions)
    probe = LayerDescriptor(folded.patch(R), C_out, 0, 0, False, **folded.fields()).to_lanes()
    for lane in range(DESCRIPTOR_LANES):
        bad, large = descriptor_faults(probe, lane, rows=R, config=config, index=0,
                                       last=False, previous=None)
        if bad or large:
            return None
    return fold


def fold_layers(layers: Sequence, input_shape: Sequence[int], fold: InputFold | None):
    """``(layers, input_shape)`` of the network the hardware runs with ``fold`` (``None``:
    unchanged): layer 0 replaced by the folded K_h x 1 conv (a copy of it made with
    ``dataclasses.replace``, so of the same class), the input shape by the folded map's."""
    if fold is None:
        return list(layers), tuple(input_shape)
    if tuple(int(v) for v in input_shape) != fold.in_shape or layers[0].kind != "conv":
        raise LayoutError(f"the fold of a {' x '.join(map(str, fold.in_shape))} image does not "
                          f"match a network reading {tuple(input_shape)}")
    first = layers[0]
    (s_h, _), (p_h, _) = first.stride, first.padding
    folded = dataclasses.replace(first, weights=fold.fold_weights(first.weights),
                                 stride=(int(s_h), 1), padding=(int(p_h), 0))
    return [folded] + list(layers[1:]), fold.shape


def hardware_input(z, fold: InputFold | None) -> np.ndarray:
    """The spike words the hardware reads for images ``z`` of the model's input shape
    (``(..., C, H, W)`` or ``(..., N)``): the folded maps (:meth:`InputFold.fold_input`) when
    the first layer is folded (``fold``, from :func:`input_fold`), else ``z`` itself. Fold after
    encoding: the padding columns are spike word 0."""
    return np.asarray(z) if fold is None else fold.fold_input(z)


def hardware_layers(layers: Sequence, input_shape: Sequence[int], rows: int, *,
                    fold: InputFold | None = None) -> list[HardwareLayer]:
    """The hardware layers of a model's ``layers`` (objects with ``kind`` "dense", "conv" or
    "maxpool" and the fields of ``firmware.model``'s Layer, ConvLayer, MaxPoolLayer) reading an
    input of ``input_shape`` ((N,) or (C, H, W)) on an array of ``rows`` rows: a conv layer
    with the max pooling after it becomes one conv :class:`HardwareLayer` (weights in patch
    order), a dense layer after a map gets the flatten permutation in its weights, a dense
    layer after a vector (or first, reading the input as a vector) is unchanged. With
    ``fold`` (:func:`input_fold`), layer 0 is first replaced by its folded layer
    (:func:`fold_layers`); the network then reads :func:`hardware_input` images."""
    layers, input_shape = fold_layers(layers, input_shape, fold)
    R = rows
    shape = tuple(int(v) for v in input_shape)
    out: list[HardwareLayer] = []
    is_map = False                       # the previous hardware layer left a stored map
    i = 0
    while i < len(layers):
        layer = layers[i]
        where = f"layer {i}"
        if layer.kind == "conv":
            if len(shape) != 3:
                raise LayoutError(f"{where}: a conv layer needs a C x H x W map, not {shape}")
            w = np.asarray(layer.weights, dtype=np.int64)
            C_out, C_in, K_h, K_w = w.shape
            C, H, W = shape
            if C != C_in:
                raise LayoutError(f"{where}: the conv weights expect {C_in} input channels, the "
                                  f"map has {C}")
            pooled = i + 1 < len(layers) and layers[i + 1].kind == "maxpool"
            pool = tuple(int(v) for v in layers[i + 1].window) if pooled else (1, 1)
            (s_h, s_w), (p_h, p_w) = layer.stride, layer.padding
            g = ConvGeometry(C_in, H, W, K_h, K_w, int(s_h), int(s_w), int(p_h), int(p_w), *pool)
            if g.conv_height < 1 or g.conv_width < 1:
                raise LayoutError(f"{where}: a {K_h} x {K_w} kernel does not fit the {H} x {W} "
                                  f"map padded by {p_h} x {p_w}")
            if g.out_height < 1 or g.out_width < 1:
                raise LayoutError(f"{where}: the {pool[0]} x {pool[1]} pooling window is larger "
                                  f"than the {g.conv_height} x {g.conv_width} conv output")
            CG = -(-C_in // R)
            hw = np.zeros((C_out, K_h, K_w, CG * R), dtype=np.int64)
            hw[..., :C_in] = w.transpose(0, 2, 3, 1)        # [o, ky, kx, c]
            out.append(HardwareLayer(hw.reshape(C_out, -1), np.asarray(layer.bias, np.int64),
                                     None if layer.threshold is None
                                     else np.asarray(layer.threshold, np.int64), g))
            shape = (C_out, g.out_height, g.out_width)
            is_map = True
            i += 2 if pooled else 1
        elif layer.kind == "maxpool":
            raise LayoutError(f"{where}: max pooling must follow a conv layer")
        else:
            w = np.asarray(layer.weights, dtype=np.int64)
            M, N = w.shape
            if is_map:
                C, H, W = shape
                if N != C * H * W:
                    raise LayoutError(f"{where}: has {N} inputs but the map before it is "
                                      f"{C} x {H} x {W}")
                CG = -(-C // R)
                hw = np.zeros((M, H, W, CG * R), dtype=np.int64)
                hw[..., :C] = w.reshape(M, C, H, W).transpose(0, 2, 3, 1)   # [m, y, x, c]
                w = hw.reshape(M, -1)
            out.append(HardwareLayer(w, np.asarray(layer.bias, np.int64),
                                     None if layer.threshold is None
                                     else np.asarray(layer.threshold, np.int64)))
            shape = (M,)
            is_map = False
            i += 1
    return out


def model_layers(layers: Sequence[HardwareLayer], rows: int):
    """Inverse of :func:`hardware_layers`: ``(input_shape, specs)``, each spec one of
    ``("dense", weights (M, N), bias, threshold)``, ``("conv", weights (C_out, C_in, K_h, K_w),
    bias, threshold, stride, padding)`` and ``("maxpool", window)``. The weights of padding
    channels (c >= C, which the hardware multiplies by zero words) are dropped."""
    R = rows
    specs: list[tuple] = []
    shape = None
    input_shape = None
    for i, layer in enumerate(layers):
        w, b, t = (np.asarray(layer[0], np.int64), layer[1], layer[2])
        g = layer[3] if len(layer) > 3 else None
        M = w.shape[0]
        if g is not None:
            C_in, CG = g.in_channels, -(-g.in_channels // R)
            w4 = w.reshape(M, g.kernel_h, g.kernel_w, CG * R)[..., :C_in].transpose(0, 3, 1, 2)
            specs.append(("conv", w4, b, t, (g.stride_h, g.stride_w), (g.pad_h, g.pad_w)))
            if (g.pool_h, g.pool_w) != (1, 1):
                specs.append(("maxpool", (g.pool_h, g.pool_w)))
            if input_shape is None:
                input_shape = g.in_shape
            shape = (M, g.out_height, g.out_width)
        else:
            if shape is not None and len(shape) == 3:
                C, H, W = shape
                CG = -(-C // R)
                w = w.reshape(M, H, W, CG * R)[..., :C].transpose(0, 3, 1, 2).reshape(M, -1)
            if input_shape is None:
                input_shape = (w.shape[1],)
            specs.append(("dense", w, b, t))
            shape = (M,)
    return input_shape, specs


def layout_network(layers: Sequence, config: HardwareConfig) -> NetworkImage:
    """Lay out ``layers`` (a sequence of :class:`HardwareLayer` or ``(weights (M, N), bias (M,),
    threshold (M,) or None)`` tuples, the last being the readout) for ``config``; raise
    :class:`LayoutError` if it does not fit. A conv layer (``conv`` set) must have the weights
    (C_out, N) of its patch and fit the descriptor's fields and the hardware's conv limits
    (:func:`descriptor_faults`, as the loader checks them)."""
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
    previous: LayerOutput | None = None
    for index, layer in enumerate(layers):
        weights, bias, threshold = layer[:3]
        geometry = layer[3] if len(layer) > 3 else None
        readout = index == len(layers) - 1
        where = f"layer {index}"
        w = np.asarray(weights, dtype=np.int64)
        b = np.asarray(bias, dtype=np.int64)
        if w.ndim != 2:
            raise LayoutError(f"{where}: weights must be 2-D (M, N), not {w.shape}")
        M, N = w.shape
        if b.shape != (M,):
            raise LayoutError(f"{where}: bias has shape {b.shape}, expected ({M},)")
        if geometry is None:
            if previous is not None and N != previous.words:
                raise LayoutError(f"{where}: has {N} inputs but the layer before has "
                                  f"{previous.words} outputs")
            if not 1 <= N <= config.max_fan_in:
                raise LayoutError(f"{where}: fan-in {N} exceeds the hardware's max_fan_in "
                                  f"{config.max_fan_in}")
            if not 1 <= M <= config.max_neurons:
                raise LayoutError(f"{where}: {M} neurons exceed the hardware's max_neurons "
                                  f"{config.max_neurons}")
        else:
            if not config.conv:
                raise LayoutError(f"{where} is a conv layer, but this hardware has no "
                                  f"convolution (conv = false)")
            if readout:
                raise LayoutError(f"{where}: the readout (last layer) must be dense")
            if N != geometry.patch(R):
                raise LayoutError(f"{where}: a conv layer's weights must be (C_out, "
                                  f"{geometry.patch(R)}) in patch order, not {w.shape}")
            fields = geometry.fields()
            for name, value in fields.items():
                if not 0 <= int(value) < 1 << DESCRIPTOR_FIELDS[name][1]:
                    raise LayoutError(f"{where}: {name} {int(value)} does not fit the "
                                      f"descriptor's {DESCRIPTOR_FIELDS[name][1]}-bit field")
            if not 1 <= N < 1 << 16 or not 1 <= M < 1 << 16:
                raise LayoutError(f"{where}: a conv layer of {M} channels and a patch of {N} "
                                  f"words does not fit the descriptor's 16-bit fields")
            probe = LayerDescriptor(N, M, 0, 0, False, **fields).to_lanes()
            for lane in range(DESCRIPTOR_LANES):
                bad, large = descriptor_faults(probe, lane, rows=R, config=config,
                                               index=index, last=readout, previous=previous)
                if bad or large:
                    raise LayoutError((bad or large)[0])
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
        extra = geometry.fields() if geometry is not None else {}
        descriptor = LayerDescriptor(N, M, len(weight_words), len(bias_words), readout, **extra)
        descriptors.append(descriptor)
        previous = LayerOutput.of(descriptor, R)
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


def unpack_network(image: NetworkImage, config: HardwareConfig) -> list[HardwareLayer]:
    """Inverse of :func:`layout_network`: the :class:`HardwareLayer` of each descriptor (its
    conv geometry from the descriptor's conv fields, ``None`` for a dense layer)."""
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
        layers.append(HardwareLayer(w[:M, :N], b[:M], None if d.readout else t[:M],
                                    ConvGeometry.of(d) if d.conv else None))
    return layers
