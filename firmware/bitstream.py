"""The weight bitstream: pack a SpikePack model for one generated accelerator, and parse it back.

``docs/bitstream.md`` is the byte-level description. In short, a bitstream is a sequence of
32-bit little-endian words:

* a 15-word header: magic ``"SPKB"``, format version, the hardware signature
  (:attr:`HardwareConfig.signature`), the total word count, T, tau_shift, weight_bits, neuron
  kind, layer count, the memory geometry (rows, cols, rows_per_word, bias_bits,
  threshold_bits) and the section count (4);
* a section table, one 3-word entry ``(type, words, lanes)`` per memory image of
  :func:`~spikepack.firmware.layout.layout_network`, in the order descriptor, weight, bias,
  threshold;
* the payloads in the same order, each ``words * lanes`` stream words: memory word by memory
  word, lane 0 first;
* a CRC-32 (zlib / IEEE 802.3) of every byte before it, as the final word.

Checking happens in two phases, and every error is a subclass of :class:`BitstreamError`:

1. the *stream* phase reads the words in order and stops at the first fault, exactly as the
   hardware loader (:class:`spikepack.hw.loader.BitstreamLoader`) does; each such error has a
   ``code`` (:class:`ErrorCode`), the code the loader reports for the same stream, and
   ``word``, the index of the word where it was found. :func:`loader_outcome` gives the
   loader's verdict for any sequence of beats.
2. the *model* phase (software only; ``code`` is ``None``) checks that the payload is exactly
   what :func:`layout_network` would write for the network it decodes to (consistent
   descriptor bases, zero weights for inputs beyond a layer's N, hidden thresholds >= 1), in
   every bit the hardware uses; the bits it ignores (:func:`ignored_bits`) may hold anything, as
   the loader accepts them. A stream that parses re-packs to the same bytes except in those.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spikepack.config import DESCRIPTOR_LANES, WORD_BITS, ConfigError, HardwareConfig
from spikepack.firmware.bitstream_format import (BITSTREAM_MAGIC, FORMAT_VERSION, HEADER_FIELDS,
                                                 HEADER_WORDS, NEURON_CODES, PAYLOAD_OFFSET,
                                                 SECTION_ENTRY_WORDS, SECTION_NAMES, TABLE_WORDS,
                                                 ErrorCode, load_error_table)
from spikepack.firmware.layout import (LayerDescriptor, LayerOutput, LayoutError, NetworkImage,
                                       descriptor_faults, hardware_layers, layout_network,
                                       model_layers, storage_words, unpack_network,
                                       words_to_lanes)

__all__ = [
    "BITSTREAM_MAGIC", "FORMAT_VERSION", "HEADER_FIELDS", "HEADER_WORDS", "SECTION_NAMES",
    "SECTION_ENTRY_WORDS", "TABLE_WORDS", "PAYLOAD_OFFSET", "NEURON_CODES", "ErrorCode",
    "load_error_table",
    "BitstreamError", "BadMagic", "UnknownVersion", "SignatureMismatch", "BadHeader",
    "BadSectionTable", "LengthOutOfRange", "LayerTooLarge", "BadDescriptor", "CrcMismatch",
    "Truncated", "ExtraData", "ModelMismatch", "BadPayload",
    "Section", "ParsedStream", "pack", "pack_network", "parse", "parse_stream",
    "loader_outcome", "ignored_bits", "ignored_stream_bits", "words_of", "bytes_of",
]

_NEURON_NAMES = {v: k for k, v in NEURON_CODES.items()}
_WORD_MASK = (1 << WORD_BITS) - 1
_DESCRIPTOR_LANES = DESCRIPTOR_LANES
_DEFAULT = object()


class BitstreamError(ValueError):
    """A bitstream is invalid or cannot be written. ``code`` is the hardware loader's error code
    for the same fault (``None`` for checks the loader does not make), ``word`` the index of
    the word where it was found (``None`` if not applicable)."""
    default_code: ErrorCode | None = None

    def __init__(self, message: str, *, word: int | None = None, code=_DEFAULT):
        super().__init__(message)
        self.word = word
        self.code = self.default_code if code is _DEFAULT else code


class BadMagic(BitstreamError):
    """The stream does not start with the magic word: not a SpikePack bitstream."""
    default_code = ErrorCode.BAD_MAGIC


class UnknownVersion(BitstreamError):
    """The format version is not one this reader (or the loader) understands."""
    default_code = ErrorCode.BAD_VERSION


class SignatureMismatch(BitstreamError):
    """The stream was packed for a different hardware configuration."""
    default_code = ErrorCode.BAD_SIGNATURE


class BadHeader(BitstreamError):
    """A header field (T, tau_shift, weight_bits, neuron kind, geometry) is invalid or differs
    from the hardware's."""
    default_code = ErrorCode.BAD_HEADER


class BadSectionTable(BitstreamError):
    """The section table is malformed: section count, section type or lane count."""
    default_code = ErrorCode.BAD_SECTION


class LengthOutOfRange(BitstreamError):
    """A length field is zero or inconsistent with the others (layer count vs descriptor words,
    threshold words vs bias words, total word count vs the section table)."""
    default_code = ErrorCode.BAD_LENGTH


class LayerTooLarge(BitstreamError):
    """The network does not fit the hardware: too many layers, a section longer than its
    memory, a layer's fan-in or neuron count above the maximum (or, when packing, anything
    ``layout_network`` refuses, such as a value outside the hardware's widths)."""
    default_code = ErrorCode.TOO_LARGE


class BadDescriptor(BitstreamError):
    """A layer descriptor is malformed: zero fan-in or neurons, a fan-in that is not the previous
    layer's neuron count, a base outside its section, or a wrong readout flag."""
    default_code = ErrorCode.BAD_DESCRIPTOR


class CrcMismatch(BitstreamError):
    """The final word is not the CRC-32 of the bytes before it: the stream is corrupt."""
    default_code = ErrorCode.CRC_MISMATCH


class Truncated(BitstreamError):
    """The stream ends before its CRC word."""
    default_code = ErrorCode.TRUNCATED


class ExtraData(BitstreamError):
    """Data follows the CRC word."""
    default_code = ErrorCode.EXTRA_WORDS


class ModelMismatch(BitstreamError):
    """(pack) The model's T, tau_shift, weight_bits or neuron kind differ from the hardware's."""


class BadPayload(BitstreamError):
    """(parse, after the CRC passed) The payload is not the layout of any network in the bits
    the hardware uses: a weight of an input beyond N set, descriptor bases that do not follow
    the layout, a hidden threshold of 0. The hardware loader accepts such a stream (its CRC is
    right), but what it computes is not the network's; the packer never writes one. Bits the
    hardware ignores (:func:`ignored_bits`) are never a BadPayload."""


# --- words and bytes ---------------------------------------------------------------------------

def bytes_of(words: Iterable[int]) -> bytes:
    """32-bit words to little-endian bytes."""
    return b"".join((int(w) & _WORD_MASK).to_bytes(4, "little") for w in words)


def words_of(data: bytes) -> list[int]:
    """Little-endian bytes to 32-bit words (a trailing partial word is dropped)."""
    n = len(data) // 4
    return list(np.frombuffer(data[:4 * n], dtype="<u4").astype(np.int64).tolist())


# --- packing -----------------------------------------------------------------------------------

def _check_config(config) -> HardwareConfig:
    if not isinstance(config, HardwareConfig):
        raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
    return config


def pack_network(layers: Sequence, config: HardwareConfig) -> bytes:
    """Pack ``layers`` (``layout.HardwareLayer`` or dense ``(weights, bias, threshold or None)``
    tuples, the last the readout) for ``config``. Raises :class:`LayerTooLarge` if
    ``layout_network`` refuses the network."""
    config = _check_config(config)
    try:
        image = layout_network(layers, config)
    except LayoutError as e:
        raise LayerTooLarge(f"the network does not fit this hardware: {e}", code=None) from None
    return pack_memory_image(image, config)


def pack_memory_image(image: NetworkImage, config: HardwareConfig) -> bytes:
    """Pack an already laid-out :class:`NetworkImage` (no checks beyond the format's)."""
    config = _check_config(config)
    specs = config.memories
    table, payload = [], []
    for index, name in enumerate(SECTION_NAMES):
        data = np.asarray(image.memories[name], dtype=np.uint32)
        if data.ndim != 2 or data.shape[1] != specs[name].lanes:
            raise ValueError(f"image {name} has shape {data.shape}; expected (words, "
                             f"{specs[name].lanes})")
        table += [index, data.shape[0], data.shape[1]]
        payload += data.ravel().tolist()
    total = PAYLOAD_OFFSET + len(payload) + 1
    header = {
        "magic": BITSTREAM_MAGIC, "version": FORMAT_VERSION, "signature": config.signature,
        "total_words": total, "timesteps": config.timesteps, "tau_shift": config.tau_shift,
        "weight_bits": config.weight_bits, "neuron": NEURON_CODES[config.neuron],
        "layer_count": image.layer_count, "rows": config.rows, "cols": config.cols,
        "rows_per_word": config.rows_per_word, "bias_bits": config.bias_bits,
        "threshold_bits": config.threshold_bits, "section_count": len(SECTION_NAMES),
    }
    body = bytes_of([header[f] for f in HEADER_FIELDS] + table + payload)
    return body + zlib.crc32(body).to_bytes(4, "little")


def pack(model, config: HardwareConfig, *, fold: bool = True) -> bytes:
    """Pack a :class:`~spikepack.firmware.model.SpikePackModel` for the hardware ``config``.

    The model's T, tau_shift, weight_bits and neuron kind must equal the hardware's
    (:class:`ModelMismatch`), and the network must fit (:class:`LayerTooLarge`); nothing is
    written otherwise. With ``fold`` (the default), a first conv layer that
    :func:`~spikepack.firmware.layout.input_fold` folds is packed as its folded K_h x 1 layer
    (docs/bitstream.md, "The first layer"): the hardware then reads the folded images,
    ``model.hardware_input(z, config)``, and :func:`parse` gives back
    ``model.hardware_model(config)``."""
    config = _check_config(config)
    for name, hw_name in (("timesteps", "timesteps"), ("tau_shift", "tau_shift"),
                          ("weight_bits", "weight_bits"), ("neuron", "neuron")):
        mine, theirs = getattr(model, name), getattr(config, hw_name)
        if mine != theirs:
            raise ModelMismatch(f"the model has {name} = {mine!r} but the hardware was generated "
                                f"with {hw_name} = {theirs!r}; convert the model for this "
                                f"hardware or generate hardware for the model")
    try:
        layers = model.hardware_layers(config.rows,
                                       fold=model.input_fold(config) if fold else None)
    except LayoutError as e:
        raise LayerTooLarge(f"the network does not fit this hardware: {e}", code=None) from None
    return pack_network(layers, config)


# --- the stream phase (what the hardware loader checks, in its order) ---------------------------

@dataclass(frozen=True)
class Section:
    type: int
    name: str
    words: int
    lanes: int
    offset: int          #: index of its first payload word in the stream

    @property
    def stream_words(self) -> int:
        return self.words * self.lanes


@dataclass
class ParsedStream:
    """The structure of a bitstream that passed the stream phase."""
    header: dict
    sections: tuple[Section, ...]
    images: dict[str, np.ndarray]
    crc: int
    config: HardwareConfig | None = None
    layers: list = field(default_factory=list)

    @property
    def neuron(self) -> str:
        return _NEURON_NAMES[self.header["neuron"]]


def _lanes(bits: int) -> int:
    return math.ceil(bits / WORD_BITS)


class _Scanner:
    """Feeds words one at a time and raises the first fault, in the loader's order."""

    def __init__(self, config: HardwareConfig | None):
        self.config = config
        self.header: dict[str, int] = {}
        self.table: list[list[int]] = []
        self.sections: list[Section] = []
        self.payload: list[int] = []
        self.crc = 0
        self.index = 0
        self.desc_lanes: list[int] = []
        self.previous: LayerOutput | None = None     # the last descriptor's output
        self._crc_index: int | None = None
        # the hardware's values, computed once (HardwareConfig derives them on every access)
        self.signature = config.signature if config is not None else None
        self.max_layers = config.max_layers if config is not None else None
        self.depths = ({name: spec.depth for name, spec in config.memories.items()}
                       if config is not None else None)
        self.fixed = None if config is None else {
            "timesteps": config.timesteps, "tau_shift": config.tau_shift,
            "weight_bits": config.weight_bits, "neuron": NEURON_CODES[config.neuron],
            "rows": config.rows, "cols": config.cols, "rows_per_word": config.rows_per_word,
            "bias_bits": config.bias_bits, "threshold_bits": config.threshold_bits}

    # expected values -------------------------------------------------------------------------
    def _fixed(self, name: str) -> int | None:
        return None if self.fixed is None else self.fixed[name]

    def _valid_free(self, name: str, v: int) -> bool:
        h = self.header
        pow2 = v >= 1 and not v & (v - 1)
        return {
            "timesteps": 1 <= v <= 16, "tau_shift": v in (1, 2, 3), "weight_bits": 2 <= v <= 16,
            "neuron": v in _NEURON_NAMES, "rows": pow2 and v <= 64, "cols": pow2 and v <= 64,
            "rows_per_word": 1 <= v <= h.get("rows", 0) and h.get("rows", 0) % v == 0,
            "bias_bits": 2 <= v <= 32, "threshold_bits": 1 <= v <= 32,
        }[name]

    def expected_lanes(self, index: int) -> int:
        h = self.header
        return (_DESCRIPTOR_LANES,
                _lanes(h["rows_per_word"] * h["cols"] * h["weight_bits"]),
                _lanes(h["cols"] * h["bias_bits"]),
                _lanes(h["cols"] * h["threshold_bits"]))[index]

    @property
    def crc_index(self) -> int | None:
        """Index of the CRC word, once the section table has been read."""
        if self._crc_index is None and len(self.sections) == len(SECTION_NAMES):
            self._crc_index = PAYLOAD_OFFSET + sum(s.stream_words for s in self.sections)
        return self._crc_index

    def run(self, words: Sequence[int], data: bytes | None = None) -> int | None:
        """Feed ``words`` from ``self.index`` on; return the index of the (matching) CRC word, or
        ``None`` if the words run out first. Payload past the descriptors is taken in one go (it
        has no checks but the CRC); ``data`` is the same stream as bytes, if at hand."""
        n = len(words)
        while self.index < n:
            crc_index = self.crc_index
            if crc_index is not None:
                first, descriptors = self.sections[0].offset, self.sections[0].stream_words
                if first + descriptors <= self.index < crc_index:
                    stop = min(crc_index, n)
                    chunk = words[self.index:stop]
                    self.payload.extend(int(w) for w in chunk)
                    blob = data[4 * self.index:4 * stop] if data is not None else bytes_of(chunk)
                    self.crc = zlib.crc32(blob, self.crc)
                    self.index = stop
                    continue
            index = self.index
            if self.feed(words[index]):
                return index
        return None

    # one word ---------------------------------------------------------------------------------
    def feed(self, word: int) -> bool:
        """Check word ``self.index``; return True when it was the (matching) CRC word."""
        i, w = self.index, word & _WORD_MASK
        if i < HEADER_WORDS:
            self._header_word(i, w)
        elif i < PAYLOAD_OFFSET:
            self._table_word(i, w)
        elif i < self.crc_index:
            self._payload_word(i, w)
        else:
            if w != self.crc:
                raise CrcMismatch(f"CRC mismatch: the stream's CRC word (word {i}) is "
                                  f"0x{w:08x}, but the CRC-32 of the {4 * i} bytes before it is "
                                  f"0x{self.crc:08x}; the stream is corrupt", word=i)
            return True
        self.crc = zlib.crc32(w.to_bytes(4, "little"), self.crc)
        self.index += 1
        return False

    def _header_word(self, i: int, w: int) -> None:
        name = HEADER_FIELDS[i]
        self.header[name] = w
        c = self.config
        if name == "magic":
            if w != BITSTREAM_MAGIC:
                raise BadMagic(f"not a SpikePack bitstream: word 0 is 0x{w:08x}, the magic is "
                               f"0x{BITSTREAM_MAGIC:08x} (b'SPKB')", word=i)
        elif name == "version":
            if w == 1:
                raise UnknownVersion(f"bitstream format version 1 (dense layers, 4-lane "
                                     f"descriptors) is no longer loaded; this reader and the "
                                     f"loader understand version {FORMAT_VERSION}: repack the "
                                     f"model", word=i)
            if w != FORMAT_VERSION:
                raise UnknownVersion(f"unknown bitstream format version {w}; this reader and the "
                                     f"loader understand version {FORMAT_VERSION}", word=i)
        elif name == "signature":
            if c is not None and w != self.signature:
                raise SignatureMismatch(f"the bitstream was packed for hardware signature "
                                        f"0x{w:08x}, but this hardware's signature is "
                                        f"0x{self.signature:08x}: pack the model with this "
                                        f"hardware's manifest", word=i)
        elif name == "total_words":
            pass                                     # checked against the table at its end
        elif name == "layer_count":
            if w == 0:
                raise LengthOutOfRange("the header's layer count is 0; a network has at least "
                                       "one layer", word=i)
            if c is not None and w > self.max_layers:
                raise LayerTooLarge(f"the network has {w} layers; the hardware holds at most "
                                    f"{self.max_layers} (max_layers)", word=i)
        elif name == "section_count":
            if w != len(SECTION_NAMES):
                raise BadSectionTable(f"the header announces {w} sections; format version "
                                      f"{FORMAT_VERSION} has exactly {len(SECTION_NAMES)}", word=i)
        else:
            want = self._fixed(name)
            if want is not None and w != want:
                raise BadHeader(f"header field {name} is {w}, but the hardware has {want}",
                                word=i)
            if want is None and not self._valid_free(name, w):
                raise BadHeader(f"header field {name} holds an impossible value {w}", word=i)

    def _table_word(self, i: int, w: int) -> None:
        k, part = divmod(i - HEADER_WORDS, SECTION_ENTRY_WORDS)
        name = SECTION_NAMES[k]
        c = self.config
        if part == 0:
            if w != k:
                raise BadSectionTable(f"section table entry {k} has type {w}; entry {k} must be "
                                      f"the {name} section (type {k})", word=i)
            self.table.append([w])
        elif part == 1:
            if name == "descriptor":
                if w != self.header["layer_count"]:
                    raise LengthOutOfRange(f"the descriptor section has {w} words, but the "
                                           f"header says {self.header['layer_count']} layers",
                                           word=i)
            elif name == "threshold":
                if w != self.table[2][1]:
                    raise LengthOutOfRange(f"the threshold section has {w} words, but the bias "
                                           f"section has {self.table[2][1]}; they must be "
                                           f"equal (one word per column tile)", word=i)
            else:
                if w == 0:
                    raise LengthOutOfRange(f"the {name} section is empty", word=i)
                if c is not None and w > self.depths[name]:
                    raise LayerTooLarge(f"the {name} section has {w} words; the hardware's {name} "
                                        f"memory holds {self.depths[name]} per bank", word=i)
            self.table[k].append(w)
        else:
            want = self.expected_lanes(k)
            if w != want:
                raise BadSectionTable(f"the {name} section has {w} lanes per word; this geometry "
                                      f"needs {want}", word=i)
            offset = (self.sections[-1].offset + self.sections[-1].stream_words
                      if self.sections else PAYLOAD_OFFSET)
            self.sections.append(Section(k, name, self.table[k][1], w, offset))
            if k == len(SECTION_NAMES) - 1:
                total = self.crc_index + 1
                if self.header["total_words"] != total:
                    raise LengthOutOfRange(f"the header's total length is "
                                           f"{self.header['total_words']} words, but the section "
                                           f"table adds up to {total}", word=i)

    def _payload_word(self, i: int, w: int) -> None:
        self.payload.append(w)
        s = self.sections[0]
        if i >= s.offset + s.stream_words:
            return
        layer, lane = divmod(i - s.offset, _DESCRIPTOR_LANES)
        where = f"layer {layer}'s descriptor"
        if lane == 0:
            self.desc_lanes = []
        self.desc_lanes.append(w)
        if lane == 1:
            if w >= self.sections[1].words:
                raise BadDescriptor(f"{where} has weight base {w}, outside the weight section "
                                    f"({self.sections[1].words} words)", word=i)
        elif lane == 2:
            if w >= self.sections[2].words:
                raise BadDescriptor(f"{where} has column base {w}, outside the bias section "
                                    f"({self.sections[2].words} words)", word=i)
        else:
            rows = self.config.rows if self.config is not None else self.header["rows"]
            bad, large = descriptor_faults(self.desc_lanes, lane, rows=rows, config=self.config,
                                           index=layer,
                                           last=layer == self.header["layer_count"] - 1,
                                           previous=self.previous)
            if bad:
                raise BadDescriptor(bad[0], word=i)
            if large:
                raise LayerTooLarge(large[0], word=i)
            if lane == _DESCRIPTOR_LANES - 1:
                self.previous = LayerOutput.of(LayerDescriptor.from_lanes(self.desc_lanes), rows)


def _truncated(scanner: _Scanner, nbytes: int) -> Truncated:
    end = scanner.crc_index
    need = f"{4 * (end + 1)} bytes" if end is not None else "more"
    return Truncated(f"the bitstream ends after {nbytes} bytes (word {scanner.index} is missing); "
                     f"its header and section table call for {need}", word=scanner.index)


def parse_stream(data: bytes, config: HardwareConfig | None = None) -> ParsedStream:
    """The stream phase: check ``data`` word by word, in the loader's order; return its parts."""
    if config is not None:
        _check_config(config)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    words = words_of(data)
    scanner = _Scanner(config)
    if scanner.run(words, data) is None:
        raise _truncated(scanner, len(data))
    end = 4 * (scanner.index + 1)
    if len(data) > end:
        raise ExtraData(f"{len(data) - end} bytes follow the CRC word (word {scanner.index}); the "
                        f"bitstream is {end} bytes long", word=scanner.index + 1)
    images, position = {}, 0
    for s in scanner.sections:
        flat = np.array(scanner.payload[position:position + s.stream_words], dtype=np.uint32)
        images[s.name] = flat.reshape(s.words, s.lanes)
        position += s.stream_words
    return ParsedStream(header=dict(scanner.header), sections=tuple(scanner.sections),
                        images=images, crc=scanner.crc, config=config)


def loader_outcome(beats: Sequence[int], config: HardwareConfig) -> ErrorCode:
    """What the hardware loader reports for ``beats``, one AXI4-Stream frame (TLAST on the last
    beat): the first fault in stream order, ``TRUNCATED`` if TLAST comes before the CRC word,
    ``EXTRA_WORDS`` if it does not come on the CRC word, else ``NONE``."""
    config = _check_config(config)
    scanner = _Scanner(config)
    try:
        index = scanner.run([int(w) for w in beats])
    except BitstreamError as e:
        return e.code
    if index is None:
        return ErrorCode.TRUNCATED
    return ErrorCode.NONE if index == len(beats) - 1 else ErrorCode.EXTRA_WORDS


# --- the model phase -----------------------------------------------------------------------------

def ignored_bits(descriptors: Sequence[LayerDescriptor], config: HardwareConfig
                 ) -> dict[str, np.ndarray]:
    """The payload bits the hardware never uses, for a network laid out as ``descriptors``:
    one ``(words, lanes)`` uint32 mask per section (a set bit is ignored), the sections' sizes
    those of ``layout_network``. Ignored are: the fields of neurons beyond M (the last column
    tile's columns ``ct*C + c >= M``: their weights, bias and threshold; the layer engine drops
    those neurons' results), every threshold field of the readout layer (it is not decoded),
    and the bits of a word's last lane above its ``g*C*b_w``, ``C*bias_bits`` or
    ``C*threshold_bits`` bits. ``layout_network`` writes 1 into ignored threshold fields and 0
    into every other ignored bit; the loader accepts any value there and :func:`parse` too.
    Nothing else is ignored: descriptor words are checked whole, and the weights of inputs
    beyond N must be 0 (an input the host sets beyond N0 meets them)."""
    config = _check_config(config)
    R, C, g = config.rows, config.cols, config.rows_per_word
    specs = config.memories
    wb, bb, tb = config.weight_bits, config.bias_bits, config.threshold_bits
    widths = {"weight": g * C * wb, "bias": C * bb, "threshold": C * tb}
    words: dict[str, dict[int, int]] = {"weight": {}, "bias": {}, "threshold": {}}
    size = {"weight": 0, "bias": 0}

    def pad(name):                 # the bits above the word's fields, up to its last lane
        return ((1 << (specs[name].lanes * WORD_BITS)) - 1) ^ ((1 << widths[name]) - 1)

    def fields(columns, bits, rows=1):
        return sum(((1 << bits) - 1) << ((rr * C + c) * bits) for rr in range(rows)
                   for c in columns)

    for d in descriptors:
        col_tiles, row_tiles = math.ceil(d.neurons / C), math.ceil(d.fan_in / R)
        per_col_tile = row_tiles * (R // g)
        for ct in range(col_tiles):
            dead = [c for c in range(C) if ct * C + c >= d.neurons]
            column = d.column_base + ct
            words["bias"][column] = fields(dead, bb) | pad("bias")
            words["threshold"][column] = (fields(range(C), tb) if d.readout
                                          else fields(dead, tb)) | pad("threshold")
            for k in range(per_col_tile):
                words["weight"][d.weight_base + ct * per_col_tile + k] = (fields(dead, wb, g)
                                                                          | pad("weight"))
        size["weight"] = max(size["weight"], d.weight_base + col_tiles * per_col_tile)
        size["bias"] = max(size["bias"], d.column_base + col_tiles)
    out = {"descriptor": np.zeros((len(descriptors), _DESCRIPTOR_LANES), dtype=np.uint32)}
    for name in ("weight", "bias", "threshold"):
        count = size["bias" if name == "threshold" else name]
        out[name] = words_to_lanes([words[name].get(i, 0) for i in range(count)],
                                   specs[name].lanes)
    return out


def ignored_stream_bits(data: bytes, config: HardwareConfig) -> list[int]:
    """For each word of the bitstream ``data`` (which must pass the stream phase for
    ``config``), the bits the hardware ignores (:func:`ignored_bits`; 0 in the header, the
    table, the descriptors and the CRC word)."""
    stream = parse_stream(data, config)
    descriptors = tuple(LayerDescriptor.from_lanes([int(v) for v in row])
                        for row in stream.images["descriptor"])
    masks = ignored_bits(descriptors, config)
    out = [0] * PAYLOAD_OFFSET
    for s in stream.sections:
        mask = masks[s.name]
        words = np.zeros((s.words, s.lanes), dtype=np.uint32)
        rows = min(s.words, mask.shape[0])
        words[:rows] = mask[:rows]
        out += [int(v) for v in words.ravel()]
    return out + [0]


def _geometry(stream: ParsedStream, descriptors) -> HardwareConfig:
    """A configuration that describes the stream's memory geometry (when no config is given),
    its limits just large enough for the network."""
    h = stream.header
    R = h["rows"]
    dense = [d for d in descriptors if not d.conv]
    convs = [d for d in descriptors if d.conv]
    maps = [shape for d in convs for shape in ((d.in_channels, d.in_height, d.in_width),
                                               (d.neurons, d.out_height, d.out_width))]
    try:
        return HardwareConfig(
            rows=R, cols=h["cols"], timesteps=h["timesteps"], tau_shift=h["tau_shift"],
            weight_bits=h["weight_bits"], bias_bits=h["bias_bits"],
            threshold_bits=h["threshold_bits"], neuron=stream.neuron, pe_mode="serial",
            max_fan_in=max((d.fan_in for d in dense), default=1),
            max_neurons=max((d.neurons for d in dense), default=1),
            max_layers=len(descriptors), weight_depth=stream.sections[1].words,
            weight_rows_per_word=h["rows_per_word"], conv=bool(convs),
            max_channels=max((c for shape in maps for c in shape[:1]), default=1),
            max_map_side=max((v for shape in maps for v in shape[1:]), default=1),
            max_map_words=max((storage_words(shape, R) for shape in maps), default=1),
            max_kernel=max((max(d.kernel_h, d.kernel_w) for d in convs), default=1))
    except ConfigError as e:
        raise LayerTooLarge(f"no hardware configuration can hold this network: {e}",
                            code=None) from None


def _decode_layers(stream: ParsedStream):
    """The model of a stream that passed the stream phase: ``(input_shape, layers)`` (model
    layer objects), after checking that the payload is its layout in every used bit."""
    from spikepack.firmware.model import ConvLayer, Layer, MaxPoolLayer
    images = stream.images
    descriptors = tuple(LayerDescriptor.from_lanes([int(v) for v in row])
                        for row in images["descriptor"])
    config = stream.config if stream.config is not None else _geometry(stream, descriptors)
    R, C, g = config.rows, config.cols, config.rows_per_word
    weight_words, bias_words = stream.sections[1].words, stream.sections[2].words
    for i, d in enumerate(descriptors):
        col_tiles, row_tiles = math.ceil(d.neurons / C), math.ceil(d.fan_in / R)
        need = col_tiles * row_tiles * (R // g)
        if d.weight_base + need > weight_words:
            raise BadPayload(f"layer {i}'s descriptor addresses weight words {d.weight_base}.."
                             f"{d.weight_base + need - 1}, beyond the weight section "
                             f"({weight_words} words)")
        if d.column_base + col_tiles > bias_words:
            raise BadPayload(f"layer {i}'s descriptor addresses bias words {d.column_base}.."
                             f"{d.column_base + col_tiles - 1}, beyond the bias section "
                             f"({bias_words} words)")
    need_weights = sum(math.ceil(d.neurons / C) * math.ceil(d.fan_in / R) * (R // g)
                       for d in descriptors)
    need_columns = sum(math.ceil(d.neurons / C) for d in descriptors)
    if (need_weights, need_columns) != (weight_words, bias_words):
        raise BadPayload(f"the layers' descriptors need {need_weights} weight and {need_columns} "
                         f"bias words, but the sections have {weight_words} and {bias_words}")
    image = NetworkImage(len(descriptors), descriptors, dict(images))
    unpacked = unpack_network(image, config)
    for i, layer in enumerate(unpacked):
        t = layer.threshold
        if t is not None and t.size and int(t.min()) < 1:
            raise BadPayload(f"layer {i} has a threshold of {int(t.min())}; thresholds are at "
                             f"least 1")
    input_shape, specs = model_layers(unpacked, R)
    layers = []
    for spec in specs:
        if spec[0] == "dense":
            layers.append(Layer(weights=spec[1], bias=spec[2], threshold=spec[3]))
        elif spec[0] == "conv":
            layers.append(ConvLayer(weights=spec[1], bias=spec[2], threshold=spec[3],
                                    stride=spec[4], padding=spec[5]))
        else:
            layers.append(MaxPoolLayer(window=spec[1]))
    try:
        canonical = layout_network(hardware_layers(layers, input_shape, R), config)
    except LayoutError as e:
        raise LayerTooLarge(f"the network does not fit this hardware: {e}", code=None) from None
    ignored = ignored_bits(canonical.descriptors, config)
    for name in SECTION_NAMES:
        ours, theirs = canonical.memories[name], images[name]
        if ours.shape != theirs.shape:
            raise BadPayload(f"the {name} section has {theirs.shape[0]} words; the layout of the "
                             f"network it describes has {ours.shape[0]}")
        diff = np.argwhere((ours ^ theirs) & ~ignored[name])
        if diff.size:
            word, lane = (int(v) for v in diff[0])
            raise BadPayload(f"the {name} section is not the layout of the network it describes: "
                             f"word {word} lane {lane} holds 0x{int(theirs[word, lane]):08x}, the "
                             f"layout gives 0x{int(ours[word, lane]):08x} in the bits the "
                             f"hardware uses (a weight of an input beyond N or of a padding "
                             f"channel set, or inconsistent descriptor bases)")
    return input_shape, layers


def parse(data: bytes, config: HardwareConfig | None = None):
    """Parse a bitstream into a :class:`~spikepack.firmware.model.SpikePackModel`.

    With ``config``, also check that it was packed for that hardware (signature, header fields)
    and that the network fits it. Raises a :class:`BitstreamError` subclass naming the fault.
    The bitstream carries no input encoding and no metadata: the model has neither. A conv
    network comes back as its model layers (conv, max pooling, dense), its input shape that of
    layer 0's input map."""
    from spikepack.firmware.model import SpikePackModel
    stream = parse_stream(data, config)
    input_shape, layers = _decode_layers(stream)
    h = stream.header
    return SpikePackModel(
        timesteps=h["timesteps"], tau_shift=h["tau_shift"], weight_bits=h["weight_bits"],
        layers=tuple(layers), neuron=stream.neuron,
        input_shape=input_shape if len(input_shape) == 3 else None)
