"""The weight bitstream's format definitions (``docs/bitstream.md``): the magic word, the header
fields, the section table and the loader's error codes. The packer and parser
(:mod:`spikepack.firmware.bitstream`) and the hardware loader (:mod:`spikepack.hw.loader`) both
read them from here, so the hardware does not depend on the packer.
"""

from __future__ import annotations

import enum

from spikepack.config import NEURON_CODES

__all__ = ["BITSTREAM_MAGIC", "FORMAT_VERSION", "HEADER_FIELDS", "HEADER_WORDS", "SECTION_NAMES",
           "SECTION_ENTRY_WORDS", "TABLE_WORDS", "PAYLOAD_OFFSET", "NEURON_CODES", "ErrorCode",
           "load_error_table"]

#: The bitstream's first word, ``b"SPKB"`` read as a little-endian word (not the ID register's
#: "SPK1", ``spikepack.hw.registers.ID_MAGIC``).
BITSTREAM_MAGIC = int.from_bytes(b"SPKB", "little")
#: Version 2: 6-lane layer descriptors with the conv fields (``docs/bitstream.md``). Version 1
#: (4-lane descriptors, dense layers only) is refused (BAD_VERSION).
FORMAT_VERSION = 2
HEADER_FIELDS = ("magic", "version", "signature", "total_words", "timesteps", "tau_shift",
                 "weight_bits", "neuron", "layer_count", "rows", "cols", "rows_per_word",
                 "bias_bits", "threshold_bits", "section_count")
HEADER_WORDS = len(HEADER_FIELDS)
#: Section types, in stream order; equal to ``spikepack.hw.memories.MEMORY_NAMES`` (the type is
#: the memory's ``wr_mem`` index).
SECTION_NAMES = ("descriptor", "weight", "bias", "threshold")
SECTION_ENTRY_WORDS = 3
TABLE_WORDS = SECTION_ENTRY_WORDS * len(SECTION_NAMES)
#: Index of the first payload word.
PAYLOAD_OFFSET = HEADER_WORDS + TABLE_WORDS


class ErrorCode(enum.IntEnum):
    """The loader's error register (and :attr:`BitstreamError.code`). The loader reports the
    first fault in stream order; a good load reports ``NONE``. :attr:`meaning` says when each
    is reported (the manifest's ``load_errors`` table and ``docs/registers.md`` show it)."""
    NONE = 0
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_SIGNATURE = 3
    BAD_HEADER = 4
    BAD_SECTION = 5
    BAD_LENGTH = 6
    TOO_LARGE = 7
    BAD_DESCRIPTOR = 8
    CRC_MISMATCH = 9
    TRUNCATED = 10
    EXTRA_WORDS = 11

    @property
    def meaning(self) -> str:
        return _ERROR_MEANINGS[self]


_ERROR_MEANINGS = {
    ErrorCode.NONE: "the last stream loaded and was committed",
    ErrorCode.BAD_MAGIC: "word 0 is not the magic \"SPKB\" (0x424B5053)",
    ErrorCode.BAD_VERSION: "the format version (word 1) is not 2 (version 1, dense layers with "
                           "4-lane descriptors, is no longer loaded: repack the model)",
    ErrorCode.BAD_SIGNATURE: "the signature (word 2) is not this hardware's: packed for another "
                             "configuration",
    ErrorCode.BAD_HEADER: "T, tau_shift, weight_bits, neuron kind, rows, cols, rows_per_word, "
                          "bias_bits or threshold_bits differ from the hardware's",
    ErrorCode.BAD_SECTION: "the section count is not 4, a section type is not its position, or "
                           "a lane count is not the hardware's",
    ErrorCode.BAD_LENGTH: "a length is zero or inconsistent: layer count 0, descriptor words "
                          "not the layer count, empty weight or bias section, threshold words "
                          "not the bias words, total_words not the table's sum",
    ErrorCode.TOO_LARGE: "the network does not fit: more layers than max_layers, a weight or "
                         "bias section deeper than its memory, a dense layer's fan-in above "
                         "max_fan_in or neurons above max_neurons, a conv layer's channels "
                         "above max_channels, map side above max_map_side, kernel above "
                         "max_kernel or stored map above max_map_words",
    ErrorCode.BAD_DESCRIPTOR: "a layer descriptor is malformed: fan-in or neurons 0, a weight or "
                              "column base outside its section, wrong flags (readout on the "
                              "last layer only; conv on a hidden layer of conv hardware), an "
                              "input that is not the previous layer's output, conv fields in a "
                              "dense layer, or conv geometry out of range or inconsistent "
                              "(docs/bitstream.md)",
    ErrorCode.CRC_MISMATCH: "the final word is not the CRC-32 of the words before it",
    ErrorCode.TRUNCATED: "TLAST (end of data) came before the CRC word",
    ErrorCode.EXTRA_WORDS: "the CRC word matched but TLAST was not on it (words follow it)",
}
assert set(_ERROR_MEANINGS) == set(ErrorCode)


def load_error_table() -> list[dict]:
    """The LOAD_ERROR codes as rows ``{"value", "name", "meaning"}`` (for the manifest and the
    register documentation)."""
    return [{"value": int(code), "name": code.name, "meaning": code.meaning}
            for code in ErrorCode]
