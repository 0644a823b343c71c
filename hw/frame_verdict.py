"""The end of the loader's pipeline: :class:`FrameVerdict`, which turns each word's faults into
the frame's verdict (the first fault's :class:`~spikepack.firmware.bitstream_format.ErrorCode`,
or the CRC word's), drives the write port into the memories' shadow bank while the frame is
good, commits a frame whose CRC word matched and carried TLAST, and counts the verdicts.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig
from spikepack.firmware.bitstream_format import ErrorCode
from spikepack.hw.descriptor_check import DescriptorFaultsSignature
from spikepack.hw.header_check import ERROR_BITS, HeaderFaultsSignature
from spikepack.hw.memories import WriteSignature
from spikepack.hw.stream import or_all

__all__ = ["COUNTER_BITS", "WordSignature", "FrameVerdict"]

COUNTER_BITS = 32


def WordSignature(config: HardwareConfig) -> wiring.Signature:
    """A word in the loader's pipeline (from the loader's stage registers, Out): ``valid`` (a
    beat), ``last`` (its TLAST), ``data``; what the frame tracker said of it: ``crc`` (the CRC
    word), ``write`` (a payload word), and where it goes: section ``sec``, memory word
    ``word``, ``lane``."""
    return wiring.Signature({
        "valid": Out(1), "last": Out(1), "data": Out(WORD_BITS), "crc": Out(1),
        "write": Out(1), "sec": Out(2), "word": Out(config.write_addr_bits),
        "lane": Out(config.lane_bits)})


class FrameVerdict(wiring.Component):
    """Stages 3 and 4 of the loader: the word's fault by code group, then the frame's verdict,
    the write port and the status.

    Ports (In): ``word`` (:func:`WordSignature`), the stage-2 word; ``end`` (1), the TLAST word
    is in stage 2 (``valid & last``, from the loader's handshake registers); ``header``
    (:func:`~spikepack.hw.header_check.HeaderFaultsSignature`) and ``descriptor``
    (:func:`~spikepack.hw.descriptor_check.DescriptorFaultsSignature`), the stage-2 word's
    faults; ``crc_ok`` (1): the stage-3 word equals the frame's CRC
    (:class:`~spikepack.hw.crc.CrcCheck`); ``layers``, the frame's layer count. Out: ``write``
    (the flip of :class:`~spikepack.hw.memories.WriteSignature`; registers, ``commit_pending``
    unused here); ``error`` (4), ``good_loads``, ``bad_loads`` (32): the last finished frame's
    code and the wrapping counts of committed and rejected frames.

    A frame's first fault is latched; from the word after it on the frame writes nothing and
    cannot commit (``faulted``, cleared by its TLAST word). A word's code is its checks' (by
    group: the slot's code for eq and ge, BAD_LENGTH, BAD_DESCRIPTOR, TOO_LARGE, in that
    order), else the CRC word's (NONE with TLAST, EXTRA_WORDS without, CRC_MISMATCH), else
    TRUNCATED for a TLAST on any other word.

    Latency: for a word in stage 2 in cycle ``t``: ``write.en`` (and its address and data) in
    ``t + 2``; after the TLAST word, ``commit`` in ``t + 2``, and ``error``, ``good_loads``,
    ``bad_loads`` from ``t + 3``. Throughput: one word per cycle.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            "word": In(WordSignature(config)), "end": In(1),
            "header": In(HeaderFaultsSignature()), "descriptor": In(DescriptorFaultsSignature()),
            "crc_ok": In(1), "layers": In(config.layer_count_bits),
            "write": In(WriteSignature(config)), "error": Out(ERROR_BITS),
            "good_loads": Out(COUNTER_BITS), "bad_loads": Out(COUNTER_BITS)})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        h, d, wr = self.header, self.descriptor, self.write
        # --- stage 3: the word, and its fault by code group -----------------------------------
        # g_code: the slot's code (eq, ge); g_length: BAD_LENGTH (a zero range, or the total
        # when the lanes matched); g_desc: BAD_DESCRIPTOR (a zero size, a descriptor's lanes);
        # g_large: TOO_LARGE (the descriptor maxima, after its other checks). At most one is set.
        w3 = WordSignature(self._config).create(path=("word3",))
        m.d.sync += [getattr(w3, name).eq(getattr(self.word, name))
                     for name in w3.signature.members]
        ecode3, fin3 = Signal(ERROR_BITS), Signal()           # fin3: the TLAST word
        m.d.sync += [ecode3.eq(h.code), fin3.eq(self.end)]
        g = {name: Signal(name=f"g_{name}3") for name in ("code", "length", "desc", "large")}
        fault3 = Signal()                 # any of them
        desc_fault = h.desc0 | d.desc
        m.d.sync += [g["code"].eq(h.eq | h.ge),
                     g["length"].eq(h.total & ~h.eq | h.zero),
                     g["desc"].eq(desc_fault),
                     g["large"].eq(d.large & ~desc_fault & ~h.eq),
                     fault3.eq(or_all([h.eq, h.ge, h.total, h.zero, desc_fault, d.large]))]

        # --- stage 4: the frame's verdict, and the write port ---------------------------------
        faulted = Signal()
        crc_ok = self.crc_ok
        good = ~faulted & ~fault3 & w3.crc & crc_ok
        group_code = ((ecode3 & g["code"].replicate(ERROR_BITS))
                      | Mux(g["length"], ErrorCode.BAD_LENGTH, 0)
                      | Mux(g["desc"], ErrorCode.BAD_DESCRIPTOR, 0)
                      | Mux(g["large"], ErrorCode.TOO_LARGE, 0))
        code4 = Signal(ERROR_BITS)
        capture4 = Signal()               # code4 is the frame's first fault
        faulted4 = Signal()               # the frame ending in stage 4 had faulted before
        fin_bad = Signal()                # ... and is bad
        m.d.sync += [
            code4.eq(Mux(fault3, group_code,
                         Mux(w3.crc, Mux(crc_ok, Mux(w3.last, ErrorCode.NONE,
                                                     ErrorCode.EXTRA_WORDS),
                                         ErrorCode.CRC_MISMATCH),
                             ErrorCode.TRUNCATED))),
            capture4.eq(w3.valid & ~w3.last & ~faulted & (fault3 | w3.crc)),
            faulted4.eq(faulted),
            wr.commit.eq(fin3 & good), fin_bad.eq(fin3 & ~good),
            wr.commit_layers.eq(self.layers),
            wr.en.eq(w3.valid & w3.write & ~faulted & ~fault3),
            wr.mem.eq(w3.sec), wr.addr.eq(w3.word), wr.lane.eq(w3.lane), wr.data.eq(w3.data),
        ]
        with m.If(fin3):
            m.d.sync += faulted.eq(0)
        with m.Elif(w3.valid & (fault3 | w3.crc)):
            m.d.sync += faulted.eq(1)
        first_code = Signal(ERROR_BITS)
        with m.If(capture4):
            m.d.sync += first_code.eq(code4)

        # --- status ---------------------------------------------------------------------------
        with m.If(wr.commit):
            m.d.sync += self.good_loads.eq(self.good_loads + 1)
        with m.If(fin_bad):
            m.d.sync += self.bad_loads.eq(self.bad_loads + 1)
        with m.If(wr.commit | fin_bad):
            m.d.sync += self.error.eq(Mux(faulted4, first_code, code4))
        return m
