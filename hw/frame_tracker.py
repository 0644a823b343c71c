"""What each word of a bitstream frame is (``docs/bitstream.md``): :class:`FrameTracker`, the
loader's description of the word in its stage 0, by position only (it runs no checks).

The position is the one-hot ``slot`` (a header or section-table word, one of the descriptor
lanes, or any other word: payload, the CRC word, words after it) and, in the payload, the
section, memory word and lane the word is written to. The loader's checks decode the slot
(:mod:`spikepack.hw.header_check`, :mod:`spikepack.hw.descriptor_check`).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import DESCRIPTOR_LANES, HardwareConfig
from spikepack.firmware.bitstream_format import PAYLOAD_OFFSET, SECTION_NAMES
from spikepack.hw.stream import or_all

__all__ = ["SLOT_DESC", "SLOT_OTHER", "SLOTS", "desc_slot", "FrameSignature",
           "SectionsSignature", "FrameTracker"]

#: the one-hot slots: header and table positions 0 .. PAYLOAD_OFFSET - 1, then descriptor
#: lanes 0 .. DESCRIPTOR_LANES - 1 (SLOT_DESC + lane), then SLOT_OTHER (other payload words,
#: the CRC word and after)
SLOT_DESC = PAYLOAD_OFFSET
SLOT_OTHER = SLOT_DESC + DESCRIPTOR_LANES
SLOTS = SLOT_OTHER + 1


def desc_slot(lane: int) -> int:
    """The slot of descriptor lane ``lane``."""
    if not 0 <= lane < DESCRIPTOR_LANES:
        raise ValueError(f"lane must be in 0 .. {DESCRIPTOR_LANES - 1}, not {lane!r}")
    return SLOT_DESC + lane


def FrameSignature(config: HardwareConfig) -> wiring.Signature:
    """What the word in the loader's stage 0 is (from the tracker, Out): ``slot`` (one-hot, see
    :data:`SLOTS`); ``payload`` (a word of a payload section), ``crc`` (the CRC word); ``mid``
    (not at word 0 of a frame); in the payload, section ``sec`` (the index in
    ``SECTION_NAMES``), memory word ``word`` (``first_word``: word 0, ``last_word``: the
    section's last) and ``lane``."""
    return wiring.Signature({
        "slot": Out(SLOTS, init=1), "payload": Out(1), "crc": Out(1), "mid": Out(1), "sec": Out(2),
        "word": Out(config.write_addr_bits), "first_word": Out(1), "last_word": Out(1),
        "lane": Out(config.lane_bits)})


def SectionsSignature(config: HardwareConfig) -> wiring.Signature:
    """The frame's section word counts, as its header and table announce them (from the
    header checks, Out): ``layers`` (the descriptor section), ``weight`` and ``column`` (the
    bias and threshold sections)."""
    depth = {name: config.memories[name].depth for name in SECTION_NAMES}
    return wiring.Signature({"layers": Out(config.layer_count_bits),
                             "weight": Out(range(depth["weight"] + 1)),
                             "column": Out(range(depth["bias"] + 1))})


class FrameTracker(wiring.Component):
    """The position in the frame of the word in the loader's stage 0 (``frame``
    Out(:func:`FrameSignature`)), advanced past it by ``advance`` In(1) and returned to word 0
    by ``restart`` In(1) (a synchronous reset, which the loader raises the cycle after a TLAST
    word advanced; no word may advance then). ``sections`` In(:func:`SectionsSignature`): the
    frame's section word counts, which must hold their values from the cycle before word
    ``PAYLOAD_OFFSET - 2`` (the table's last but one) advances (the loader captures them in
    stage 1, column words at word 22, 3 cycles early at least).

    Faults never steer it. Every register is enabled by ``advance`` alone and loaded from
    registers: what a word does to the tracker (next lane, word, section or the CRC word) is
    decoded a word ahead into one-hot registers.

    Latency: ``frame`` describes the next word from the cycle after ``advance`` (1 cycle);
    ``restart`` takes effect the cycle after. Throughput: one word per cycle.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({"advance": In(1), "restart": In(1),
                          "sections": In(SectionsSignature(config)),
                          "frame": Out(FrameSignature(config))})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        c, f = self._config, self.frame
        lanes = [c.memories[name].lanes for name in SECTION_NAMES]
        depth = max(c.memories[name].depth for name in SECTION_NAMES)
        slot = f.slot
        hdr_last = slot[SLOT_DESC - 1]    # the last table word
        r_hdr = Signal(init=1)            # header and section table
        t_sec3 = Signal()                 # sec == 3
        t_left = Signal(range(depth + 1))  # words of the section after this one
        t_left1 = Signal()                # t_left == 1
        t_lane_pen = Signal()             # lane == lanes[sec] - 2
        do = {k: Signal(name=f"do_{k}") for k in ("lane", "word", "crc", "enter")}
        # do_lane: the word is not its memory word's last lane; do_word: it is, but not its
        # section's last word; do_enter: it is its section's last word, or the last table word
        # (enter a section); do_crc: the last section's last word (the CRC word next)

        # sections' t_left, last_word, t_left1 on entry (2 and 3 have the same word count): a
        # queue loaded in the header and shifted on each entry
        counts = (self.sections.layers, self.sections.weight, self.sections.column)
        init = [[Signal.like(t_left, name=f"left_init{k}"), Signal(name=f"one_word{k}"),
                 Signal(name=f"two_words{k}")] for k in range(3)]
        for k in range(3):
            m.d.sync += [init[k][0].eq(counts[k] - 1), init[k][1].eq(counts[k] == 1),
                         init[k][2].eq(counts[k] == 2)]
        queue = [[Signal.like(s, name=f"next_{s.name}") for s in init[k]] for k in range(3)]

        def per_section(values, sec):     # a constant of each section, selected by `sec`
            return Cat(*(values[k % 4] for k in range(4))).bit_select(sec, 1)

        lanes_1 = [n == 1 for n in lanes]
        lanes_2 = [n == 2 for n in lanes]
        enter_sec = Mux(r_hdr, 0, f.sec + 1)
        enter_sec3 = ~r_hdr & (f.sec == 2)
        entry_left, entry_last, entry_left1 = queue[0]
        # the next word's memory-word and section ends, by what this word does
        does = {"lane": do["lane"], "word": do["word"], "enter": do["enter"] & ~do["crc"]}
        ends_lane = {"lane": t_lane_pen, "word": per_section(lanes_1, f.sec),
                     "enter": per_section(lanes_1, enter_sec)}
        ends_word = {"lane": f.last_word, "word": t_left1, "enter": entry_last}
        in_sec3 = {"lane": t_sec3, "word": t_sec3, "enter": enter_sec3}

        def next_do(lane_end, word_end=False, sec3=False):
            return or_all(does[k] & (ends_lane[k] if lane_end else ~ends_lane[k])
                          & ((ends_word[k] if word_end else ~ends_word[k]) if lane_end else 1)
                          & (in_sec3[k] if sec3 else 1) for k in does)

        with m.If(self.advance):
            m.d.sync += [
                f.mid.eq(1),
                slot.eq(Cat(0, slot[:SLOT_DESC - 1],                  # header and table
                            hdr_last | slot[SLOT_OTHER - 1] & ~f.last_word,
                            slot[SLOT_DESC:SLOT_OTHER - 1],           # descriptor lanes
                            slot[SLOT_OTHER] | slot[SLOT_OTHER - 1] & f.last_word)),
                r_hdr.eq(r_hdr & ~hdr_last),
                f.payload.eq(hdr_last | f.payload & ~do["crc"]),
                f.crc.eq(do["crc"]),
                do["lane"].eq(next_do(False)),
                do["word"].eq(next_do(True)),
                do["crc"].eq(next_do(True, True, True)),
                do["enter"].eq(next_do(True, True) | slot[SLOT_DESC - 2]),
            ]
            with m.If(do["enter"]):
                m.d.sync += [dst.eq(src) for k in (0, 1) for dst, src in zip(queue[k],
                                                                              queue[k + 1])]
            with m.Elif(r_hdr):
                m.d.sync += [dst.eq(src) for k in range(3) for dst, src in zip(queue[k],
                                                                               init[k])]
            with m.If(do["enter"]):
                m.d.sync += [f.sec.eq(enter_sec), t_sec3.eq(enter_sec3)]
            with m.If(do["lane"]):
                m.d.sync += [f.lane.eq(f.lane + 1),
                             t_lane_pen.eq(Cat(*(f.lane == lanes[k] - 3 for k in range(4)))
                                           .bit_select(f.sec, 1))]
            with m.Elif(do["word"]):
                m.d.sync += [f.lane.eq(0), t_lane_pen.eq(per_section(lanes_2, f.sec)),
                             f.word.eq(f.word + 1), f.first_word.eq(0), t_left.eq(t_left - 1),
                             f.last_word.eq(t_left1), t_left1.eq(t_left == 2)]
            with m.Elif(do["enter"]):
                m.d.sync += [f.lane.eq(0), t_lane_pen.eq(per_section(lanes_2, enter_sec)),
                             f.word.eq(0), f.first_word.eq(1), t_left.eq(entry_left),
                             f.last_word.eq(entry_last), t_left1.eq(entry_left1)]
        with m.If(self.restart):
            m.d.sync += [s.eq(s.init) for s in (slot, r_hdr, f.payload, f.crc, f.mid,
                                               *do.values())]
        return m
