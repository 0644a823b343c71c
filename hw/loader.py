"""The bitstream loader: an AXI4-Stream slave that checks a weight bitstream and loads it into the
shadow bank of :class:`~spikepack.hw.memories.NetworkMemories`, committing it only when it is
entirely good.

The format is ``docs/bitstream.md`` (:mod:`spikepack.firmware.bitstream` packs and parses it).
One 32-bit word arrives per beat, TLAST on the last word (the CRC). The loader checks, in stream
order, the magic, format version, hardware signature, T / tau_shift / weight_bits / neuron kind
and memory geometry against its configuration, the layer count, the section table (types, lane
counts, word counts against the memories' depths, the total length), every layer descriptor
lane by lane with the parser's verdict (``docs/bitstream.md``, "Descriptor checks";
:func:`spikepack.firmware.layout.descriptor_faults`: sizes, bases inside their sections, flags,
the chain from the previous layer's output, a dense layer's maxima, a conv layer's channels,
map sides, kernel, stride, padding, pooling, patch and stored map sizes), and the CRC-32 (the zlib / IEEE 802.3 CRC of ``amaranth.lib.crc``'s
``CRC32_ISO_HDLC``, computed on the fly in a state-space-transformed form, see
:class:`spikepack.hw.crc.CrcTransform`). Payload words are written to the shadow bank as they pass (lane by
lane, only at addresses inside the announced sections, which are inside the memories, and only
while no fault was found), and ``commit`` pulses only after the CRC word matched and carried
TLAST. The first fault is latched in ``error`` (:class:`~spikepack.firmware.bitstream.ErrorCode`);
the loader then drains the frame to TLAST and returns to idle, so it never hangs on any input
and never commits a bad stream. A reset in the middle of a stream returns it to idle without a
commit; the memories' active bank and layer count are reset-less, so the last committed network
stays active.

Ports:

* ``s_axis_tdata`` In(32), ``s_axis_tvalid`` In(1), ``s_axis_tready`` Out(1),
  ``s_axis_tlast`` In(1): the AXI4-Stream slave (flat, so ``AxiStreamBus.from_prefix(dut,
  "s_axis")`` binds at a top level). ``s_axis_tready`` is a register of the loader ANDed with
  ``~commit_pending``.
* ``write`` In(:class:`~spikepack.hw.memories.WriteSignature`): the memories' write and commit
  port, flipped (``wiring.connect(m, loader.write, memories.write)``); ``mem``, ``addr``,
  ``lane``, ``data``, ``en``, ``commit``, ``commit_layers`` are registers.
* ``write.commit_pending`` In(1) (from the memories; 0 without them): while a commit waits for ``hold`` to fall, the shadow bank must not be written, so
  ``s_axis_tready`` is low.
* status (for AXI4-Lite registers): ``error`` Out(4), the code of the last finished frame
  (``NONE`` after a committed load); ``good_loads``, ``bad_loads``, ``words_received`` Out(32),
  wrapping counters of committed frames, rejected frames and accepted beats; ``busy`` Out(1),
  high from the cycle after a frame's first beat until its verdict is out (the cycle before
  ``error`` and the counters show it).

Pipeline (a beat in cycle ``t``): stage 0 registers the beat (cycle ``t+1``; the
:class:`~spikepack.hw.frame_tracker.FrameTracker` says what the word is), stage 1 decodes which
checks apply (``t+2``), stage 2 holds each check's comparison (``t+3``;
:class:`~spikepack.hw.header_check.HeaderCheck` for the checks by slot,
:class:`~spikepack.hw.descriptor_check.DescriptorCheck` for a descriptor's lanes 3-5), stage 3
the word's fault by code group and the CRC check (``t+4``; :class:`~spikepack.hw.crc.CrcCheck`),
and stage 4 the frame's verdict and the write port (``t+5``;
:class:`~spikepack.hw.frame_verdict.FrameVerdict`). This module holds the handshake, the stage
registers and the wiring.

Conv descriptors (with ``config.conv``): the checks that need products (the patch
K_h K_w ceil(C_in/R) R against the fan-in, the pooled map as (H_p k - 1) s <= H + 2p - K <
(H_p k + k - 1) s with H_p >= 1, H + 2p >= K, the stored input and output maps against
max_map_words, the output map's words for the next layer's chain) are free-running pipelines
of adder trees, one adder level a cycle, from the descriptor's fields captured in stage 0
(:class:`~spikepack.hw.conv_check.ConvChecker`). A
conv descriptor's lane 5 waits ``F = conv_check_cycles(config)`` extra cycles in stage 0
(``s_axis_tready`` low from the cycle after its beat), so that their flags join its own
checks in stage 3 and the first fault in stream order is the parser's; a TLAST on that lane
waits with it. F depends on the configuration's widths (5 for the default one, at most 7).

Throughput: one word per clock cycle within a frame, but F cycles after each conv descriptor's
lane 5. ``s_axis_tready`` is low for ``FRAME_GAP = 5`` cycles after every TLAST beat (good or
bad frame: until the verdict and its commit are out, no word of the next frame may enter the
write pipeline; 5 + F after a TLAST on a conv descriptor's lane 5, a truncated frame), and
while ``commit_pending`` is high: a frame of ``W`` words with ``L_c`` conv layers takes
``W + F·L_c + 5`` cycles, plus the cycles a commit waits for ``hold``.

Latency, for a beat in cycle ``t`` (plus F for a conv descriptor's lane 5): a payload word's
``wr_en`` pulses in cycle ``t + 5`` (the
memories register it at the edge ending that cycle and write the RAM at the next); after the TLAST beat (the CRC word of a good
frame), ``commit`` pulses in cycle ``t + 5`` (the memories switch the layer count and descriptor
bank one edge later and the other banks two edges later, or that long after ``hold`` falls;
see :mod:`spikepack.hw.memories`), ``error``, ``good_loads`` and ``bad_loads`` show the verdict from cycle
``t + 6`` on, ``busy`` is low from ``t + 6``; ``words_received`` counts a beat from cycle
``t + 3``.
"""

from __future__ import annotations

from amaranth import C, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig
from spikepack.firmware.bitstream_format import ErrorCode
from spikepack.hw.conv_check import conv_check_cycles
from spikepack.hw.crc import CrcCheck
from spikepack.hw.descriptor_check import DescriptorCheck
from spikepack.hw.frame_tracker import FrameTracker, desc_slot
from spikepack.hw.frame_verdict import COUNTER_BITS, FrameVerdict, WordSignature
from spikepack.hw.header_check import ERROR_BITS, HeaderCheck
from spikepack.hw.memories import WriteSignature
from spikepack.hw.stream import or_all

__all__ = ["BitstreamLoader", "ErrorCode", "ERROR_BITS", "COUNTER_BITS",
           "FRAME_GAP", "conv_check_cycles"]

#: cycles after a TLAST beat in which ``s_axis_tready`` is low (until the frame's verdict)
FRAME_GAP = 5


class BitstreamLoader(wiring.Component):
    """The bitstream loader (ports, pipeline, latency and throughput: the module docstring)."""

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            "s_axis_tdata": In(WORD_BITS),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "write": In(WriteSignature(config)),
            "error": Out(ERROR_BITS),
            "good_loads": Out(COUNTER_BITS),
            "bad_loads": Out(COUNTER_BITS),
            "words_received": Out(COUNTER_BITS),
            "busy": Out(1),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.tracker = tracker = FrameTracker(config=c)
        m.submodules.header = header = HeaderCheck(config=c)
        m.submodules.descriptor = descriptor = DescriptorCheck(config=c)
        m.submodules.crc = crc = CrcCheck()
        m.submodules.verdict = verdict = FrameVerdict(config=c)
        frame = tracker.frame
        wiring.connect(m, tracker.frame, header.frame, descriptor.frame)
        wiring.connect(m, header.sections, tracker.sections)
        wiring.connect(m, header.faults, verdict.header)
        wiring.connect(m, descriptor.faults, verdict.descriptor)
        wiring.connect(m, wiring.flipped(self.write), verdict.write)

        # --- the handshake: tready is a register (and ~commit_pending) ------------------------
        # tready_r is low for FRAME_GAP cycles after every TLAST beat: until the frame's verdict
        # and its commit are out, no word of the next frame may enter the write pipeline.
        tready_r = Signal(init=1)
        beat = Signal()
        ends = [Signal(name=f"end{i}") for i in range(FRAME_GAP - 1)]   # TLAST in stage 0..3
        m.d.comb += [self.s_axis_tready.eq(tready_r & ~self.write.commit_pending),
                     beat.eq(self.s_axis_tvalid & self.s_axis_tready)]
        # a conv descriptor's lane 5 waits conv_wait cycles in stage 0 (hold) while the conv
        # checks compute; tready is low meanwhile, and a TLAST it carries waits with it
        # (hold is a register: it gates every tracker enable). more[j - 1]: more than j cycles
        # of the hold are left (a thermometer shifting down; no beat comes while it lasts)
        conv_wait = descriptor.cycles
        hold = Signal()                   # stage 0 keeps a conv descriptor's lane 5 (F cycles)
        l5c = Signal()                    # a beat now would be a conv descriptor's lane 5
        beat_l5c = Signal()               # the beat is a conv descriptor's lane 5
        more = [Signal(name=f"hold_more{j}") for j in range(1, conv_wait)]
        if conv_wait:
            m.d.sync += [hold.eq(beat_l5c | or_all([*more[:1], 0])),
                         *(r.eq(beat_l5c | or_all([*more[j + 1:j + 2], 0]))
                           for j, r in enumerate(more))]
        m.d.sync += [ends[0].eq(beat & self.s_axis_tlast | ends[0] & hold),
                     ends[1].eq(ends[0] & ~hold),
                     *(ends[i].eq(ends[i - 1]) for i in range(2, len(ends)))]
        # tready_r falls after a TLAST or conv lane-5 beat and rises when the ends and the hold
        # have passed. While it is high they are all low (each of them lowers it the cycle
        # after), and while it is low no beat comes: so its next value is a mux on itself, the
        # beat's terms apart from the drain's (one LUT level less than the OR of all, critical
        # at three nextpnr seeds)
        m.d.sync += tready_r.eq(Mux(tready_r,
                                    ~(self.s_axis_tvalid & ~self.write.commit_pending
                                      & (self.s_axis_tlast | l5c)),
                                    ~or_all([*ends, *more[:1]])))

        # --- stage 0: the beat, registered; what it is (the tracker) ----------------------------
        v0 = Signal()
        tlast = Signal()
        d0 = Signal(WORD_BITS)
        dh0 = Signal(WORD_BITS, reset_less=True)              # copies of d0 for the CRC terms
        du0 = Signal(WORD_BITS, init=(1 << WORD_BITS) - 1)    # (fan-out; distinct: not merged)
        # adv0 = v0 & ~hold, as a register loaded from their next values: it enables every
        # tracker register, and the AND behind hold's hundred-odd sinks was the deepest input
        adv0 = Signal()                   # the word in stage 0 moves on to stage 1
        hold_next = beat_l5c | more[0] if conv_wait > 1 else beat_l5c if conv_wait else C(0)
        m.d.sync += adv0.eq(Mux(hold, v0, beat) & ~hold_next)
        with m.If(~hold):
            m.d.sync += [v0.eq(beat), tlast.eq(self.s_axis_tlast), d0.eq(self.s_axis_tdata),
                         dh0.eq(self.s_axis_tdata), du0.eq(self.s_axis_tdata)]
        # A TLAST word advances the tracker like any other; it returns to word 0 the cycle
        # after (no beat can come then: tready is low).
        m.d.comb += [tracker.advance.eq(adv0), tracker.restart.eq(ends[1]),
                     self.busy.eq(frame.mid | v0 | ~tready_r)]
        # the beat is lane 5 of a conv descriptor: the stage-0 word is lane 4, or stage 0 is
        # empty and the tracker expects lane 5 (descriptor.conv, from lane 3, is in place then)
        m.d.comb += [l5c.eq(descriptor.conv
                            & Mux(v0, frame.slot[desc_slot(4)], frame.slot[desc_slot(5)])
                            if conv_wait else 0),
                     beat_l5c.eq(beat & l5c)]

        # --- stages 1 and 2: the word and what it is, carried; the checks -----------------------
        w1 = WordSignature(c).create(path=("word1",))
        w2 = WordSignature(c).create(path=("word2",))
        m.d.sync += [w1.valid.eq(adv0), w1.last.eq(tlast), w1.data.eq(d0), w1.crc.eq(frame.crc),
                     w1.write.eq(frame.payload), w1.sec.eq(frame.sec), w1.word.eq(frame.word),
                     w1.lane.eq(frame.lane),
                     *(getattr(w2, name).eq(getattr(w1, name)) for name in w1.signature.members)]
        with m.If(w1.valid):
            m.d.sync += self.words_received.eq(self.words_received + 1)
        m.d.comb += [header.word.eq(d0), header.valid1.eq(w1.valid), header.word1.eq(w1.data),
                     descriptor.word.eq(d0), descriptor.valid.eq(v0),
                     descriptor.valid1.eq(w1.valid)]
        # CRC-32: the word's terms from its stage-0 copies; stage 2 advances it (TLAST resets it)
        m.d.comb += [crc.h_word.eq(dh0), crc.u_word.eq(du0), crc.valid.eq(w2.valid),
                     crc.last.eq(w2.last)]

        # --- stages 3 and 4: the verdict, the write port and the status ---------------------
        wiring.connect(m, w2, verdict.word)
        m.d.comb += [verdict.end.eq(ends[2]), verdict.crc_ok.eq(crc.ok),
                     verdict.layers.eq(header.sections.layers),
                     self.error.eq(verdict.error), self.good_loads.eq(verdict.good_loads),
                     self.bad_loads.eq(verdict.bad_loads)]
        return m
