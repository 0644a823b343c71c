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

Pipeline (a beat in cycle ``t``): stage 0 registers the beat (cycle ``t+1``; a tracker of the
frame's structure says what the word is), stage 1 decodes which checks apply (``t+2``), stage 2
holds each check's comparison (``t+3``), stage 3 the word's fault by code group and the CRC
check (``t+4``), and stage 4 the frame's verdict and the write port (``t+5``).

Conv descriptors (with ``config.conv``): the checks that need products (the patch
K_h K_w ceil(C_in/R) R against the fan-in, the pooled map as (H_p k - 1) s <= H + 2p - K <
(H_p k + k - 1) s with H_p >= 1, H + 2p >= K, the stored input and output maps against
max_map_words, the output map's words for the next layer's chain) are free-running pipelines
of adder trees, one adder level a cycle, from the descriptor's fields captured in stage 0. A
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


from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import NEURON_CODES, WORD_BITS, HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.firmware.bitstream_format import (BITSTREAM_MAGIC, FORMAT_VERSION, HEADER_FIELDS,
                                                 HEADER_WORDS, PAYLOAD_OFFSET,
                                                 SECTION_ENTRY_WORDS, SECTION_NAMES, ErrorCode)
from spikepack.hw.conv_check import FIELDS, ConvChecker, conv_check_cycles
from spikepack.hw.crc import CrcCheck
from spikepack.hw.frame_tracker import SLOT_DESC, SLOT_OTHER, FrameTracker, desc_slot
from spikepack.hw.memories import WriteSignature
from spikepack.hw.stream import or_all

__all__ = ["BitstreamLoader", "ErrorCode", "ERROR_BITS", "COUNTER_BITS",
           "FRAME_GAP", "conv_check_cycles"]

ERROR_BITS = 4
COUNTER_BITS = 32
#: cycles after a TLAST beat in which ``s_axis_tready`` is low (until the frame's verdict)
FRAME_GAP = 5
# the tracker's one-hot slots (spikepack.hw.frame_tracker)
_SLOT_DESC, _SLOT_OTHER = SLOT_DESC, SLOT_OTHER

assert max(ErrorCode) < (1 << ERROR_BITS)
_L0, _L3, _L4, _L5 = (desc_slot(lane) for lane in (0, 3, 4, 5))
#: the conv flag's bit in lane 3
CONV_BIT = 1 << (DESCRIPTOR_FIELDS["conv"][0] % WORD_BITS)


def _decoder(onehot: Signal, values: list, width: int):
    """``values[i]`` where bit ``i`` of ``onehot`` is set (``None``: any value will do). Each
    bit is an OR of the one-hot bits where it is 1, or a NOR of those where it is 0, whichever
    has fewer inputs: two LUT levels at most (a decoder of a binary index is a 5-input function
    per bit, which the synthesizer chains through shared LUTs)."""
    bits = []
    for bit in range(width):
        ones = [i for i, v in enumerate(values) if v is not None and (int(v) >> bit) & 1]
        zeros = [i for i, v in enumerate(values) if v is not None and not (int(v) >> bit) & 1]
        if len(ones) <= len(zeros):
            bits.append(Cat(*(onehot[i] for i in ones)).any() if ones else Const(0))
        else:
            bits.append(~Cat(*(onehot[i] for i in zeros)).any() if zeros else Const(1))
    return Cat(*bits)


class BitstreamLoader(wiring.Component):
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
        specs = c.memories
        lanes = [specs[name].lanes for name in SECTION_NAMES]
        depth = {name: specs[name].depth for name in SECTION_NAMES}
        fixed = {"timesteps": c.timesteps, "tau_shift": c.tau_shift,
                 "weight_bits": c.weight_bits, "neuron": NEURON_CODES[c.neuron],
                 "rows": c.rows, "cols": c.cols, "rows_per_word": c.rows_per_word,
                 "bias_bits": c.bias_bits, "threshold_bits": c.threshold_bits}
        half = WORD_BITS // 2

        # values taken from the stream (captured in stage 1)
        total_words = Signal(WORD_BITS)
        layers = Signal(c.layer_count_bits)
        weight_words = Signal(range(depth["weight"] + 1))
        column_words = Signal(range(depth["bias"] + 1))
        section_words = (layers, weight_words, column_words, column_words)
        # the descriptor in progress (captured from stage 0) and the previous layer's output
        # (docs/bitstream.md, "Descriptor checks"; set when a descriptor's lane 5 is in stage 1)
        cur = {name: Signal(width, name=f"cur_{name}") for name, width in FIELDS.items()}
        cur_conv = Signal()
        words_bits = max(16, c.max_map_words.bit_length()) if c.conv else 16
        prev_words = Signal(words_bits)   # its stored output words (dense: M)
        prev_map = [Signal(16, name="prev_c"), Signal(8, name="prev_h"), Signal(8, name="prev_w")]
        hold = Signal()                   # stage 0 keeps a conv descriptor's lane 5 (F cycles)
        adv0 = Signal()                   # the word in stage 0 moves on to stage 1
        beat_l5c = Signal()               # the beat is a conv descriptor's lane 5
        if c.conv:
            m.submodules.conv_check = conv_check = ConvChecker(config=c)
            m.d.comb += [getattr(conv_check.fields, name).eq(cur[name]) for name in FIELDS]
            conv_bad, conv_large = conv_check.bad, conv_check.large
            conv_out_words, conv_wait = conv_check.out_words, conv_check.cycles
        else:
            conv_wait = 0

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
        # (hold is a register: it gates every tracker enable)
        wait = Signal(range(conv_wait + 1))
        if conv_wait:
            with m.If(beat_l5c):
                m.d.sync += [wait.eq(conv_wait), hold.eq(1)]
            with m.Elif(hold):
                m.d.sync += [wait.eq(wait - 1), hold.eq(wait != 1)]
        m.d.sync += [ends[0].eq(beat & self.s_axis_tlast | ends[0] & hold),
                     ends[1].eq(ends[0] & ~hold),
                     *(ends[i].eq(ends[i - 1]) for i in range(2, len(ends))),
                     tready_r.eq(~(beat & self.s_axis_tlast | or_all(ends) | beat_l5c
                                   | (wait > 1)))]

        # --- stage 0: the beat, registered ----------------------------------------------------
        v0 = Signal()
        tlast = Signal()
        d0 = Signal(WORD_BITS)
        dh0 = Signal(WORD_BITS, reset_less=True)              # copies of d0 for the CRC terms
        du0 = Signal(WORD_BITS, init=(1 << WORD_BITS) - 1)    # (fan-out; distinct: not merged)
        m.d.comb += adv0.eq(v0 & ~hold)
        with m.If(~hold):
            m.d.sync += [v0.eq(beat), tlast.eq(self.s_axis_tlast), d0.eq(self.s_axis_tdata),
                         dh0.eq(self.s_axis_tdata), du0.eq(self.s_axis_tdata)]

        # --- stage 0: what that word is (the frame's structure; no checks) -------------------
        m.submodules.tracker = tracker = FrameTracker(config=c)
        frame = tracker.frame
        slot = frame.slot
        m.d.comb += [tracker.advance.eq(adv0), tracker.restart.eq(ends[1]),
                     tracker.sections.layers.eq(layers),
                     tracker.sections.weight.eq(weight_words),
                     tracker.sections.column.eq(column_words),
                     self.busy.eq(frame.mid | v0 | ~tready_r)]

        # --- stage 0: the descriptor's fields, captured for the checks of its later lanes -----
        def lane_field(name):             # a descriptor field in its lane's word (d0)
            offset, width = DESCRIPTOR_FIELDS[name]
            return d0[offset % WORD_BITS:offset % WORD_BITS + width]

        lane_fields = {_L0: {"n": "fan_in", "m": "neurons"},
                       _L3: {"hp": "out_height", "wp": "out_width"},
                       _L4: {"cin": "in_channels", "h": "in_height", "w": "in_width"},
                       _L5: {"kh": "kernel_h", "kw": "kernel_w", "sh": "stride_h",
                             "sw": "stride_w", "ph": "pad_h", "pw": "pad_w", "qh": "pool_h",
                             "qw": "pool_w"}}
        for index, names in lane_fields.items():
            if index != _L0 and not c.conv:
                continue
            with m.If(v0 & slot[index]):
                m.d.sync += [cur[key].eq(lane_field(name)) for key, name in names.items()]
                if index == _L3:
                    m.d.sync += cur_conv.eq(lane_field("conv"))
        # the beat is lane 5 of a conv descriptor: the stage-0 word is lane 4, or stage 0 is
        # empty and the tracker expects lane 5 (cur_conv, from lane 3, is in place by then)
        m.d.comb += beat_l5c.eq(beat & cur_conv & Mux(v0, slot[_L4], slot[_L5]) if conv_wait
                                else 0)

        # --- stage 1: the word, and which checks apply to it (decoded from the slot) ----------
        # A check is one of: the word equals exp1 (k_eq: a constant of the slot, or the layer
        # count, column words or readout flag: exp1 ORs the one-hot slot's bits AND their
        # values); it is below opnd1 (k_ge: maxima, descriptor bases); plus the special ones
        # (range: also not 0; total: the table's sum; desc0: descriptor lane 0).
        v1 = Signal()
        l1 = Signal()
        d1 = Signal(WORD_BITS)
        exp1 = Signal(WORD_BITS)
        ecode1 = Signal(ERROR_BITS)       # the code of a k_eq or k_ge fault of the slot
        opnd_bits = max(depth["weight"] + 1, depth["bias"] + 1, c.max_layers + 1).bit_length()
        opnd1 = Signal(opnd_bits)
        kinds = ("eq", "total", "range", "ge", "desc0")
        k1 = {name: Signal(name=f"k_{name}1") for name in kinds}
        k_crc1 = Signal()
        k_write1 = Signal()
        caps = {"total": total_words, "layers": layers, "weight": weight_words,
                "column": column_words}
        cap1 = {name: Signal(name=f"cap_{name}1") for name in caps}
        sec1 = Signal.like(frame.sec)
        word1 = Signal.like(frame.word)
        lane1 = Signal.like(frame.lane)

        # the checks of each slot, in the order of spikepack.firmware.bitstream
        field = {name: i for i, name in enumerate(HEADER_FIELDS)}
        table = [{} for _ in range(_SLOT_OTHER + 1)]
        for name, index in field.items():
            if name == "total_words":
                table[index] = {"cap": "total"}
            elif name == "layer_count":
                table[index] = {"cap": "layers", "range": c.max_layers + 1,
                                "code": ErrorCode.TOO_LARGE}
            else:
                value, error = {"magic": (BITSTREAM_MAGIC, ErrorCode.BAD_MAGIC),
                                "version": (FORMAT_VERSION, ErrorCode.BAD_VERSION),
                                "signature": (c.signature, ErrorCode.BAD_SIGNATURE),
                                "section_count": (len(SECTION_NAMES), ErrorCode.BAD_SECTION),
                                }.get(name, (fixed.get(name), ErrorCode.BAD_HEADER))
                table[index] = {"eq": value, "code": error}
        for k, name in enumerate(SECTION_NAMES):
            base = HEADER_WORDS + SECTION_ENTRY_WORDS * k
            table[base] = {"eq": k, "code": ErrorCode.BAD_SECTION}
            if name == "descriptor":
                table[base + 1] = {"eq": layers, "code": ErrorCode.BAD_LENGTH}
            elif name == "threshold":
                table[base + 1] = {"eq": column_words, "code": ErrorCode.BAD_LENGTH}
            else:
                table[base + 1] = {"cap": ("weight", "column")[k - 1], "range": depth[name] + 1,
                                   "code": ErrorCode.TOO_LARGE}
            table[base + 2] = {"eq": lanes[k], "code": ErrorCode.BAD_SECTION}
        table[PAYLOAD_OFFSET - 1]["total"] = True
        # descriptor lanes: 0 sizes, 1 weight base, 2 column base; without conv, 3 the readout
        # flag and 4, 5 zero (with conv, lanes 3-5 have checks of their own, below)
        table[_SLOT_DESC + 0] = {"desc0": True}
        table[_SLOT_DESC + 1] = {"ge": weight_words, "code": ErrorCode.BAD_DESCRIPTOR}
        table[_SLOT_DESC + 2] = {"ge": column_words, "code": ErrorCode.BAD_DESCRIPTOR}
        if not c.conv:
            table[_L3] = {"eq": frame.last_word, "code": ErrorCode.BAD_DESCRIPTOR}
            table[_L4] = {"eq": 0, "code": ErrorCode.BAD_DESCRIPTOR}
            table[_L5] = {"eq": 0, "code": ErrorCode.BAD_DESCRIPTOR}

        def constant(value):
            return None if isinstance(value, Signal) else value

        fields = [(ecode1, lambda e: e.get("code")), (k1["eq"], lambda e: "eq" in e),
                  (k1["total"], lambda e: "total" in e), (k1["range"], lambda e: "range" in e),
                  (k1["ge"], lambda e: "range" in e or "ge" in e),
                  (k1["desc0"], lambda e: "desc0" in e),
                  *((cap1[name], lambda e, name=name: e.get("cap") == name) for name in caps)]
        for target, of in fields:
            m.d.sync += target.eq(_decoder(slot, [of(entry) for entry in table], len(target)))
        variables = [(i, e["eq"]) for i, e in enumerate(table)
                     if "eq" in e and constant(e["eq"]) is None]
        # The decoder's part must be 0 at the slots whose value is ORed in from the stream
        # (not "any value"): where most constants have a bit set, the decoder computes it as a
        # NOR of the zeros, which is 1 at every slot it is not told about, and would set that
        # bit of the layer count, column words or readout flag (a configuration-dependent
        # refusal of good streams, issue 12).
        m.d.sync += exp1.eq(_decoder(slot, [0 if "eq" in e and constant(e["eq"]) is None
                                            else constant(e.get("eq")) for e in table],
                                     WORD_BITS)
                            | or_all(slot[i].replicate(WORD_BITS) & value for i, value in variables))
        limits = [(i, e.get("range", e.get("ge"))) for i, e in enumerate(table)]
        m.d.sync += opnd1.eq(or_all(slot[i].replicate(opnd_bits) & value
                                  for i, value in limits if value is not None))
        dg1 = Signal(opnd_bits, reset_less=True)              # d1's copy for f_ge (fan-out)
        m.d.sync += [v1.eq(adv0), l1.eq(tlast), d1.eq(d0), dg1.eq(d0), k_crc1.eq(frame.crc),
                     k_write1.eq(frame.payload), sec1.eq(frame.sec), word1.eq(frame.word), lane1.eq(frame.lane)]
        # comparisons of the word with constants, whatever its checks (the kinds select later):
        # which segments of it are not 0 (bytes, split at opnd_bits; disjoint, so that no
        # flag's LUTs are shared with another's), the fan-in and neurons above their maxima
        cuts = sorted({*range(0, WORD_BITS + 1, 8), opnd_bits})
        segments = list(zip(cuts, cuts[1:]))
        nonzero1 = [Signal(name=f"nonzero{a}_1") for a, _ in segments]
        m.d.sync += [flag.eq(d0[a:b] != 0) for flag, (a, b) in zip(nonzero1, segments)]
        zero1 = [~or_all(f for f, (a, _) in zip(nonzero1, segments) if a < half),
                 ~or_all(f for f, (a, _) in zip(nonzero1, segments) if a >= half)]
        high1 = or_all(f for f, (a, _) in zip(nonzero1, segments) if a >= opnd_bits)

        with m.If(v1):
            m.d.sync += self.words_received.eq(self.words_received + 1)
            for name, target in caps.items():
                with m.If(cap1[name]):
                    m.d.sync += target.eq(d1)

        # descriptor lanes 3-5, stage 1: the lane's comparisons (from stage 0), which lane it is,
        # and the descriptor's registered comparisons (from its captured fields)
        k_l3_1, k_l4_1, k_l5_1, first1, last1 = (Signal(name=n) for n in (
            "k_lane3_1", "k_lane4_1", "k_lane5_1", "first_layer1", "last_layer1"))
        m.d.sync += [k_l3_1.eq(slot[_L3]), k_l4_1.eq(slot[_L4]), k_l5_1.eq(slot[_L5]),
                     first1.eq(frame.first_word), last1.eq(frame.last_word)]
        chain_ne, fan_in_large, neurons_large, channels_large = (Signal(name=n) for n in (
            "chain_ne", "fan_in_large", "neurons_large", "channels_large"))
        m.d.sync += [chain_ne.eq(cur["n"] != prev_words),
                     fan_in_large.eq(cur["n"] > c.max_fan_in),
                     neurons_large.eq(cur["m"] > c.max_neurons),
                     channels_large.eq(cur["m"] > c.max_channels)]
        # a descriptor's lane 5 in stage 1: its output becomes the previous layer's (stage 0
        # may already hold the next descriptor's lane 0, captured at the end of this cycle)
        with m.If(v1 & k_l5_1):
            if c.conv:
                m.d.sync += [prev_words.eq(Mux(cur_conv, conv_out_words, cur["m"])),
                             prev_map[0].eq(cur["m"]),
                             prev_map[1].eq(Mux(cur_conv, cur["hp"], 1)),
                             prev_map[2].eq(Mux(cur_conv, cur["wp"], 1))]
            else:
                m.d.sync += prev_words.eq(cur["m"])
        if c.conv:
            def conv_field(name):         # a conv field of the stage-0 word (its lane's bits)
                offset, width = DESCRIPTOR_FIELDS[name]
                return d0[offset % WORD_BITS:offset % WORD_BITS + width]

            l3 = {n: Signal(name=f"lane3_{n}1") for n in ("conv", "dense_bad", "conv_bad")}
            l4 = {"nonzero": Signal(name="lane4_nonzero1"),
                  **{n: [Signal(name=f"lane4_{n}{k}_1") for k in range(3)]
                     for n in ("zero", "chain", "large")}}      # a flag a field
            l5 = {n: Signal(name=f"lane5_{n}1") for n in ("nonzero", "bad", "large")}
            kernel = [conv_field("kernel_h"), conv_field("kernel_w")]
            pads = [conv_field("pad_h"), conv_field("pad_w")]
            sizes = [conv_field(n) for n in ("in_channels", "in_height", "in_width")]
            m.d.sync += [
                l3["conv"].eq(conv_field("conv")),
                # dense: lane 3 is the readout flag; conv: bit 1 and the pooled map only, and
                # never on the last layer
                l3["dense_bad"].eq((d0[:8] != frame.last_word) | (d0[8:] != 0)),
                l3["conv_bad"].eq(((d0[:8] & (0xFF ^ CONV_BIT)) != 0) | (d0[24:] != 0) | frame.last_word),
                l4["nonzero"].eq(d0 != 0),
                *(z.eq(f == 0) for z, f in zip(l4["zero"], sizes)),
                *(n.eq(f != p) for n, f, p in zip(l4["chain"], sizes, prev_map)),
                *(g.eq(f > top) for g, f, top in zip(l4["large"], sizes, (
                    c.max_channels, c.max_map_side, c.max_map_side))),
                l5["nonzero"].eq(d0 != 0),
                l5["bad"].eq(or_all([d0[24:] != 0, *(k == 0 for k in kernel),
                                     *(conv_field(n) == 0 for n in ("stride_h", "stride_w",
                                                                    "pool_h", "pool_w")),
                                     *(p >= k for p, k in zip(pads, kernel))])),
                l5["large"].eq(or_all(k > c.max_kernel for k in kernel)),
            ]

        # the table's total, summed and compared over the cycles between the table's words:
        # column_words (word 22) is captured in its stage 1, the comparison (a byte a flag) is
        # ready 3 cycles later, in time for word 26's stage 1 however close the words come
        assert PAYLOAD_OFFSET - 1 - (HEADER_WORDS + SECTION_ENTRY_WORDS * 2 + 1) >= 4

        def times(x, k):                  # x * k as shifts and adds
            return sum((x << i) for i in range(k.bit_length()) if (k >> i) & 1) if k else 0

        p_a = Signal(24)
        p_b = Signal(24)
        p_c = Signal(24)
        p_ab = Signal(24)
        p_sum = Signal(24)
        mismatch = [Signal(name=f"total_mismatch{k}") for k in range(4)]
        m.d.sync += [p_a.eq(PAYLOAD_OFFSET + 1 + times(layers, lanes[0])),
                     p_b.eq(times(weight_words, lanes[1])),
                     p_c.eq(times(column_words, lanes[2] + lanes[3])),
                     p_ab.eq(p_a + p_b), p_sum.eq(p_ab + p_c),
                     *(mismatch[k].eq(total_words[8 * k:8 * k + 8] != p_sum[8 * k:8 * k + 8])
                       for k in range(4))]

        # CRC-32 (spikepack.hw.crc.CrcCheck): the word's terms from its stage-0 copies
        m.submodules.crc = crc = CrcCheck()
        m.d.comb += [crc.h_word.eq(dh0), crc.u_word.eq(du0)]

        # --- stage 2: the word's checks, each a register (a byte's comparison, or a kind AND a
        # comparison made in stage 1) ------------------------------------------------------------
        def carried(n, *fields):
            """The word's fields of the previous stage, registered into stage ``n``."""
            out = []
            for f in fields:
                r = Signal.like(f, name=f"{f.name[:-1]}{n}")
                m.d.sync += r.eq(f)
                out.append(r)
            return out

        v2, l2, d2, ecode2, k_crc2, k_write2, sec2, word2, lane2 = carried(
            2, v1, l1, d1, ecode1, k_crc1, k_write1, sec1, word1, lane1)

        def differ(name, a, b):
            """Registered ``a != b``, one flag a byte (its kind applies in stage 3)."""
            out = []
            for i, start in enumerate(range(0, len(a), 8)):
                flag = Signal(name=f"{name}{i}_2")
                m.d.sync += flag.eq(a[start:start + 8] != b[start:start + 8])
                out.append(flag)
            return out

        k_eq2 = Signal()
        m.d.sync += k_eq2.eq(k1["eq"])
        ne_exp = differ("ne_exp", d1, exp1)
        f_ge = Signal()                   # below opnd1 (its high bits: f_high)
        f_high = Signal()
        f_total = Signal()
        f_zero = Signal()                 # a range of 0
        f_desc0 = Signal()                # descriptor lane 0: fan-in or neurons 0
        # descriptor lanes 3-5: malformed (BAD_DESCRIPTOR) or too large (TOO_LARGE); k5c2: a
        # conv descriptor's lane 5, whose product checks join in stage 3
        f_lane_desc = Signal()
        f_lane_large = Signal()
        k5c2 = Signal()
        dense_chain = ~first1 & chain_ne
        dense_large = fan_in_large | neurons_large
        if c.conv:
            m.d.sync += [
                f_lane_desc.eq(k_l3_1 & Mux(l3["conv"], l3["conv_bad"],
                                            l3["dense_bad"] | dense_chain)
                               | k_l4_1 & Mux(cur_conv, or_all(l4["zero"])
                                              | ~first1 & or_all(l4["chain"]), l4["nonzero"])
                               | k_l5_1 & Mux(cur_conv, l5["bad"], l5["nonzero"])),
                f_lane_large.eq(k_l3_1 & Mux(l3["conv"], channels_large, dense_large)
                                | cur_conv & (k_l4_1 & or_all(l4["large"])
                                              | k_l5_1 & l5["large"])),
                k5c2.eq(k_l5_1 & cur_conv)]
        else:
            m.d.sync += [f_lane_desc.eq(k_l3_1 & dense_chain),
                         f_lane_large.eq(k_l3_1 & dense_large)]
        m.d.sync += [f_ge.eq(k1["ge"] & (dg1 >= opnd1)),
                     f_high.eq(k1["ge"] & high1),
                     f_total.eq(k1["total"] & or_all(mismatch)),
                     f_zero.eq(k1["range"] & zero1[0] & zero1[1]),
                     f_desc0.eq(k1["desc0"] & (zero1[0] | zero1[1]))]

        # CRC-32, stage 2: the word in stage 2 advances the register (TLAST resets it); in stage
        # 3 a flag a byte says whether it is the frame's right CRC word
        m.d.comb += [crc.valid.eq(v2), crc.last.eq(l2)]
        crc_ok3 = list(crc.ok)

        # --- stage 3: the word's fault, by code group -----------------------------------------
        # g_code: ecode (k_eq, k_ge); g_length: BAD_LENGTH (a zero range, or the total when the
        # lanes matched); g_desc: BAD_DESCRIPTOR (a zero size, the chain); g_large: TOO_LARGE
        # (the descriptor maxima, after its other checks). At most one is set.
        v3, l3, d3, ecode3, k_crc3, k_write3, sec3, word3, lane3 = carried(
            3, v2, l2, d2, ecode2, k_crc2, k_write2, sec2, word2, lane2)
        g = {name: Signal(name=f"g_{name}3") for name in ("code", "length", "desc", "large")}
        fault3 = Signal()                 # any of them
        f_eq = k_eq2 & or_all(ne_exp)
        desc_fault = f_desc0 | f_lane_desc
        large_fault = f_lane_large
        if c.conv:
            desc_fault = desc_fault | k5c2 & conv_bad
            large_fault = large_fault | k5c2 & conv_large
        m.d.sync += [g["code"].eq(f_eq | f_high | f_ge),
                     g["length"].eq(f_total & ~f_eq | f_zero),
                     g["desc"].eq(desc_fault),
                     g["large"].eq(large_fault & ~desc_fault & ~f_eq),
                     fault3.eq(or_all([f_eq, f_high, f_ge, f_total, f_zero, desc_fault,
                                       large_fault]))]

        # --- stage 4: the frame's verdict, and the write port ---------------------------------
        # `faulted` marks a frame whose fault was found (from the word after it on; cleared by
        # its TLAST word), so that it writes nothing more and cannot commit. code4: the word's
        # code, its checks' (by group), else the CRC word's (EXTRA_WORDS if it matched without
        # TLAST), else TRUNCATED if it carries TLAST; the frame's first one is latched from it.
        fin3 = ends[3]                    # v3 & l3: the TLAST word
        faulted = Signal()
        crc_ok = Cat(*crc_ok3).all()
        good = ~faulted & ~fault3 & k_crc3 & crc_ok
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
                         Mux(k_crc3, Mux(crc_ok, Mux(l3, ErrorCode.NONE, ErrorCode.EXTRA_WORDS),
                                         ErrorCode.CRC_MISMATCH),
                             ErrorCode.TRUNCATED))),
            capture4.eq(v3 & ~l3 & ~faulted & (fault3 | k_crc3)),
            faulted4.eq(faulted),
            self.write.commit.eq(fin3 & good), fin_bad.eq(fin3 & ~good),
            self.write.commit_layers.eq(layers),
            self.write.en.eq(v3 & k_write3 & ~faulted & ~fault3),
            self.write.mem.eq(sec3), self.write.addr.eq(word3), self.write.lane.eq(lane3),
            self.write.data.eq(d3),
        ]
        with m.If(fin3):
            m.d.sync += faulted.eq(0)
        with m.Elif(v3 & (fault3 | k_crc3)):
            m.d.sync += faulted.eq(1)
        first_code = Signal(ERROR_BITS)
        with m.If(capture4):
            m.d.sync += first_code.eq(code4)

        # --- status ---------------------------------------------------------------------------
        with m.If(self.write.commit):
            m.d.sync += self.good_loads.eq(self.good_loads + 1)
        with m.If(fin_bad):
            m.d.sync += self.bad_loads.eq(self.bad_loads + 1)
        with m.If(self.write.commit | fin_bad):
            m.d.sync += self.error.eq(Mux(faulted4, first_code, code4))
        return m
