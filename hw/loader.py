"""The bitstream loader: an AXI4-Stream slave that checks a weight bitstream and loads it into the
shadow bank of :class:`~spikepack.hw.memories.NetworkMemories`, committing it only when it is
entirely good.

The format is ``docs/bitstream.md`` (:mod:`spikepack.firmware.bitstream` packs and parses it).
One 32-bit word arrives per beat, TLAST on the last word (the CRC). The loader checks, in stream
order, the magic, format version, hardware signature, T / tau_shift / weight_bits / neuron kind
and memory geometry against its configuration, the layer count, the section table (types, lane
counts, word counts against the memories' depths, the total length), every layer descriptor
(sizes against max_fan_in / max_neurons, the layer chain, bases inside their sections, the
readout flag), and the CRC-32 (``amaranth.lib.crc``, the zlib / IEEE 802.3 CRC, computed on the
fly). Payload words are written to the shadow bank as they arrive (lane by lane, only at
addresses inside the announced sections, which are inside the memories), and ``commit`` pulses
only after the CRC word matched and carried TLAST. The first fault is latched in ``error``
(:class:`~spikepack.firmware.bitstream.ErrorCode`); the loader then drains the frame to TLAST
and returns to idle, so it never hangs on any input and never commits a bad stream. A reset in
the middle of a stream returns it to idle without a commit; the memories' active bank and layer
count are reset-less, so the last committed network stays active.

Ports:

* ``s_axis_tdata`` In(32), ``s_axis_tvalid`` In(1), ``s_axis_tready`` Out(1),
  ``s_axis_tlast`` In(1): the AXI4-Stream slave (flat, so ``AxiStreamBus.from_prefix(dut,
  "s_axis")`` binds at a top level).
* ``wr_mem`` Out(2), ``wr_addr`` Out, ``wr_lane`` Out, ``wr_data`` Out(32), ``wr_en`` Out(1),
  ``commit`` Out(1), ``commit_layers`` Out: connect 1:1 to the same-named
  :class:`NetworkMemories` inputs.
* ``commit_pending`` In(1): connect to ``NetworkMemories.commit_pending`` (tie to 0 without
  one); while a commit waits for ``hold`` to fall, the shadow bank must not be written, so
  ``s_axis_tready`` is low.
* status (for AXI4-Lite registers): ``error`` Out(4), the code of the last finished frame
  (``NONE`` after a committed load); ``good_loads``, ``bad_loads``, ``words_received`` Out(32),
  wrapping counters of committed frames, rejected frames and accepted beats; ``busy`` Out(1),
  high from a frame's first beat until its TLAST beat has been accepted.

Throughput: one word per clock cycle, ``s_axis_tready`` high at all times except for the one
cycle in which ``commit`` pulses and while a commit waits for ``hold``: a frame of ``W`` words
takes ``W`` cycles, plus 1 after a good frame.

Latency: a payload word is written to the memory ``2`` cycles after its beat (registered write
port, then the memory's clock edge); ``commit`` pulses ``1`` cycle after the CRC beat and the
banks swap at the next clock edge (``2`` cycles after the CRC beat, or when ``hold`` falls);
``error`` and the counters update ``1`` cycle after the TLAST beat.
"""

from __future__ import annotations

import enum

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig
from spikepack.firmware.bitstream import (FORMAT_VERSION, HEADER_FIELDS, HEADER_WORDS, MAGIC,
                                          NEURON_CODES, PAYLOAD_OFFSET, SECTION_ENTRY_WORDS,
                                          SECTION_NAMES, ErrorCode)

__all__ = ["BitstreamLoader", "LoaderWithMemories", "ErrorCode", "ERROR_BITS", "COUNTER_BITS"]

ERROR_BITS = 4
COUNTER_BITS = 32
_DESCRIPTOR_LANES = 4

assert max(ErrorCode) < (1 << ERROR_BITS)


class _State(enum.Enum):
    HEADER = 0      # header and section table, word `pos`
    PAYLOAD = 1     # section `sec`, memory word `word`, lane `lane`
    CRC = 2         # the CRC word
    DRAIN = 3       # a fault was found: accept beats until TLAST


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
            "wr_mem": Out(2),
            "wr_addr": Out(self._config.write_addr_bits),
            "wr_lane": Out(self._config.lane_bits),
            "wr_data": Out(WORD_BITS),
            "wr_en": Out(1),
            "commit": Out(1),
            "commit_layers": Out(self._config.layer_count_bits),
            "commit_pending": In(1),
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

        data, last = self.s_axis_tdata, self.s_axis_tlast
        beat = Signal()
        m.d.comb += [self.s_axis_tready.eq(~self.commit & ~self.commit_pending),
                     beat.eq(self.s_axis_tvalid & self.s_axis_tready)]

        state = Signal(_State)
        pos = Signal(range(PAYLOAD_OFFSET))
        total_words = Signal(WORD_BITS)
        layers = Signal(self._config.layer_count_bits)
        weight_words = Signal(range(depth["weight"] + 1))
        column_words = Signal(range(depth["bias"] + 1))
        sec = Signal(2)
        word = Signal(self._config.write_addr_bits)
        lane = Signal(self._config.lane_bits)
        prev_neurons = Signal(16)
        drain_code = Signal(ERROR_BITS)
        code = Signal(ERROR_BITS)           # fault found on this beat (comb)

        # --- CRC-32 (zlib): 32-bit little-endian words reflected = bytes LSB first -------------
        m.submodules.crc = crc = catalog.CRC32_ISO_HDLC(WORD_BITS).create()
        first = Signal()
        m.d.comb += [first.eq((state == _State.HEADER) & (pos == 0)),
                     crc.start.eq(beat & first), crc.valid.eq(beat), crc.data.eq(data)]

        # --- checks of the current beat, in the order of spikepack.firmware.bitstream ------------
        def fault(condition, error):
            with m.If(condition):
                m.d.comb += code.eq(error)

        with m.Switch(state):
            with m.Case(_State.HEADER):
                with m.Switch(pos):
                    for index, name in enumerate(HEADER_FIELDS):
                        with m.Case(index):
                            if name == "magic":
                                fault(data != MAGIC, ErrorCode.BAD_MAGIC)
                            elif name == "version":
                                fault(data != FORMAT_VERSION, ErrorCode.BAD_VERSION)
                            elif name == "signature":
                                fault(data != c.signature, ErrorCode.BAD_SIGNATURE)
                            elif name == "layer_count":
                                with m.If(data == 0):
                                    m.d.comb += code.eq(ErrorCode.BAD_LENGTH)
                                with m.Elif(data > c.max_layers):
                                    m.d.comb += code.eq(ErrorCode.TOO_LARGE)
                            elif name == "section_count":
                                fault(data != len(SECTION_NAMES), ErrorCode.BAD_SECTION)
                            elif name in fixed:
                                fault(data != fixed[name], ErrorCode.BAD_HEADER)
                    for k, name in enumerate(SECTION_NAMES):
                        base = HEADER_WORDS + SECTION_ENTRY_WORDS * k
                        with m.Case(base):
                            fault(data != k, ErrorCode.BAD_SECTION)
                        with m.Case(base + 1):
                            if name == "descriptor":
                                fault(data != layers, ErrorCode.BAD_LENGTH)
                            elif name == "threshold":
                                fault(data != column_words, ErrorCode.BAD_LENGTH)
                            else:
                                with m.If(data == 0):
                                    m.d.comb += code.eq(ErrorCode.BAD_LENGTH)
                                with m.Elif(data > depth[name]):
                                    m.d.comb += code.eq(ErrorCode.TOO_LARGE)
                        with m.Case(base + 2):
                            with m.If(data != lanes[k]):
                                m.d.comb += code.eq(ErrorCode.BAD_SECTION)
                            if k == len(SECTION_NAMES) - 1:
                                expected_total = (PAYLOAD_OFFSET + 1 + layers * lanes[0]
                                                  + weight_words * lanes[1]
                                                  + column_words * (lanes[2] + lanes[3]))
                                with m.Elif(total_words != expected_total):
                                    m.d.comb += code.eq(ErrorCode.BAD_LENGTH)
            with m.Case(_State.PAYLOAD):
                with m.If(sec == 0):
                    fan_in, neurons = data[:16], data[16:]
                    with m.Switch(lane):
                        with m.Case(0):
                            with m.If((fan_in == 0) | (neurons == 0)):
                                m.d.comb += code.eq(ErrorCode.BAD_DESCRIPTOR)
                            with m.Elif((word != 0) & (fan_in != prev_neurons)):
                                m.d.comb += code.eq(ErrorCode.BAD_DESCRIPTOR)
                            with m.Elif((fan_in > c.max_fan_in) | (neurons > c.max_neurons)):
                                m.d.comb += code.eq(ErrorCode.TOO_LARGE)
                        with m.Case(1):
                            fault(data >= weight_words, ErrorCode.BAD_DESCRIPTOR)
                        with m.Case(2):
                            fault(data >= column_words, ErrorCode.BAD_DESCRIPTOR)
                        with m.Case(3):
                            fault(data != (word == layers - 1), ErrorCode.BAD_DESCRIPTOR)
            with m.Case(_State.CRC):
                with m.If(data != crc.crc):
                    m.d.comb += code.eq(ErrorCode.CRC_MISMATCH)
                with m.Elif(~last):
                    m.d.comb += code.eq(ErrorCode.EXTRA_WORDS)

        # --- writes into the shadow bank (registered) ------------------------------------------
        m.d.sync += [self.wr_en.eq(beat & (state == _State.PAYLOAD) & (code == 0)),
                     self.wr_mem.eq(sec), self.wr_addr.eq(word), self.wr_lane.eq(lane),
                     self.wr_data.eq(data)]

        # --- sequencing -----------------------------------------------------------------------
        m.d.sync += self.commit.eq(0)
        m.d.comb += self.busy.eq((state != _State.HEADER) | (pos != 0))
        with m.If(beat):
            m.d.sync += self.words_received.eq(self.words_received + 1)

        def finish(error):
            m.d.sync += [state.eq(_State.HEADER), pos.eq(0), self.error.eq(error)]
            good = [self.commit.eq(1), self.commit_layers.eq(layers),
                    self.good_loads.eq(self.good_loads + 1)]
            bad = [self.bad_loads.eq(self.bad_loads + 1)]
            if isinstance(error, int):                      # a constant code
                m.d.sync += good if error == ErrorCode.NONE else bad
                return
            with m.If(error == ErrorCode.NONE):
                m.d.sync += good
            with m.Else():
                m.d.sync += bad

        section_lanes = Signal.like(lane)
        section_words = Signal(range(max(depth.values()) + 1))
        with m.Switch(sec):
            for k, name in enumerate(SECTION_NAMES):
                with m.Case(k):
                    m.d.comb += section_lanes.eq(lanes[k] - 1)
                    m.d.comb += section_words.eq((layers, weight_words, column_words,
                                                  column_words)[k])

        with m.If(beat):
            with m.Switch(state):
                with m.Case(_State.HEADER, _State.PAYLOAD):
                    with m.If(code != 0):
                        with m.If(last):
                            finish(code)
                        with m.Else():
                            m.d.sync += [state.eq(_State.DRAIN), drain_code.eq(code)]
                    with m.Elif(last):
                        finish(ErrorCode.TRUNCATED)
                    with m.Elif(state == _State.HEADER):
                        m.d.sync += pos.eq(pos + 1)
                        with m.Switch(pos):
                            with m.Case(HEADER_FIELDS.index("total_words")):
                                m.d.sync += total_words.eq(data)
                            with m.Case(HEADER_FIELDS.index("layer_count")):
                                m.d.sync += layers.eq(data)
                            with m.Case(HEADER_WORDS + SECTION_ENTRY_WORDS * 1 + 1):
                                m.d.sync += weight_words.eq(data)
                            with m.Case(HEADER_WORDS + SECTION_ENTRY_WORDS * 2 + 1):
                                m.d.sync += column_words.eq(data)
                            with m.Case(PAYLOAD_OFFSET - 1):
                                m.d.sync += [state.eq(_State.PAYLOAD), pos.eq(0), sec.eq(0),
                                             word.eq(0), lane.eq(0)]
                    with m.Else():                                  # PAYLOAD
                        with m.If((sec == 0) & (lane == 0)):
                            m.d.sync += prev_neurons.eq(data[16:])
                        with m.If(lane != section_lanes):
                            m.d.sync += lane.eq(lane + 1)
                        with m.Else():
                            m.d.sync += lane.eq(0)
                            with m.If(word != section_words - 1):
                                m.d.sync += word.eq(word + 1)
                            with m.Else():
                                m.d.sync += word.eq(0)
                                with m.If(sec != len(SECTION_NAMES) - 1):
                                    m.d.sync += sec.eq(sec + 1)
                                with m.Else():
                                    m.d.sync += state.eq(_State.CRC)
                with m.Case(_State.CRC):
                    with m.If(last):
                        finish(code)
                    with m.Else():
                        m.d.sync += [state.eq(_State.DRAIN), drain_code.eq(code)]
                with m.Case(_State.DRAIN):
                    with m.If(last):
                        finish(drain_code)
        return m


class LoaderWithMemories(wiring.Component):
    """A :class:`BitstreamLoader` wired 1:1 to a :class:`NetworkMemories` (``commit_pending``
    fed back), with the memories' read ports, ``hold``, ``active_bank``, ``layer_count`` and the
    loader's stream and status ports brought out: the loader as the accelerator top wires it,
    and the unit the loader benches read the active bank back through.

    Throughput and latency are the loader's (see :class:`BitstreamLoader`); reads have the
    memories' latency of 1 cycle."""

    def __init__(self, *, config: HardwareConfig):
        from spikepack.hw.memories import MEMORY_NAMES, NetworkMemories
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        self._loader = BitstreamLoader(config=config)
        self._memories = NetworkMemories(config=config)
        members = {}
        for name in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "error",
                     "good_loads", "bad_loads", "words_received", "busy"):
            members[name] = self._loader.signature.members[name]
        for name in MEMORY_NAMES:
            for suffix in ("raddr", "ren", "rdata"):
                members[f"{name}_{suffix}"] = self._memories.signature.members[f"{name}_{suffix}"]
        for name in ("hold", "active_bank", "layer_count", "commit_pending"):
            members[name] = self._memories.signature.members[name]
        super().__init__(members)

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        from spikepack.hw.memories import MEMORY_NAMES
        m = Module()
        m.submodules.loader = loader = self._loader
        m.submodules.memories = memories = self._memories
        for name in ("wr_mem", "wr_addr", "wr_lane", "wr_data", "wr_en", "commit",
                     "commit_layers"):
            m.d.comb += getattr(memories, name).eq(getattr(loader, name))
        m.d.comb += loader.commit_pending.eq(memories.commit_pending)
        for name in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tlast"):
            m.d.comb += getattr(loader, name).eq(getattr(self, name))
        for name in ("s_axis_tready", "error", "good_loads", "bad_loads", "words_received",
                     "busy"):
            m.d.comb += getattr(self, name).eq(getattr(loader, name))
        for name in MEMORY_NAMES:
            m.d.comb += [getattr(memories, f"{name}_raddr").eq(getattr(self, f"{name}_raddr")),
                         getattr(memories, f"{name}_ren").eq(getattr(self, f"{name}_ren")),
                         getattr(self, f"{name}_rdata").eq(getattr(memories, f"{name}_rdata"))]
        m.d.comb += [memories.hold.eq(self.hold), self.active_bank.eq(memories.active_bank),
                     self.layer_count.eq(memories.layer_count),
                     self.commit_pending.eq(memories.commit_pending)]
        return m
