"""The network sequencer: runs every layer of the committed network on the layer engine, keeping
activations on chip, and streams images in and readout potentials out.

Buffers (``amaranth.lib.memory``, entries of R spike words, entry e holding the spike words of
inputs e*R .. e*R+R-1, input e*R+i at bits i*T .. i*T+T-1, as the engine's ``act_*`` port reads):

* two **input buffers** (one memory, bank bit on top), filled alternately from ``s_axis_in``;
  an image can arrive while the previous one is being computed, so back-to-back inferences
  stream without draining;
* two **hidden buffers** (ping-pong, one memory): layer 0 reads its image's input buffer and
  writes hidden buffer 0; layer l >= 1 reads hidden buffer (l-1) mod 2 and writes l mod 2. A
  hidden layer's outputs (engine ``o`` beats, spike words) are written one word a beat with
  write granularity T; the beat with ``last`` also zeroes the rest of its entry, so every entry
  holds zeros beyond the layer's M outputs.

The last committed layer is the readout: its ``o`` beats go to ``m_axis_out`` (potential
sign-extended to ``OUT_BITS``, TLAST on the last one); the readout flag in the descriptor is
not used for routing (the loader checks that it marks the last layer).

Input format (``s_axis_in``): K = 32 // T spike words a beat, input i in beat i // K at bits
(i % K)*T .. +T-1, TLAST on the last beat of an image. A beat is written into the input buffer
in as many cycles as buffer entries it touches (one when R is a multiple of K and the words are
aligned, i.e. ``ceil(K/R)`` or ``ceil(K/R) + 1`` in general); the TLAST beat also zeroes the
rest of its last entry. Beats beyond the buffer's ``activation_depth * R`` words are dropped
(``overflow`` pulses). The image ends at TLAST: its length is not checked against the network.

Sequencing: an inference starts when an input buffer holds a complete image, a network is
committed (``layer_count > 0``) and ``run`` is high or a ``start`` is armed. Per layer the
sequencer reads the descriptor (2 cycles), offers it to the engine (``start`` handshake), and
routes the engine's output beats until the beat with ``last``; the input buffer is released
when layer 0 ends. ``hold`` (to :class:`NetworkMemories`) is high while an inference runs, so
a commit waits for its end; at least one idle cycle separates two inferences.

Latency per inference: ``sum over layers l of (3 + L_l)`` cycles from the first busy cycle to
the acceptance of the last output beat, inclusive (``cycles_last``), where L_l is the engine's
latency for layer l from its descriptor handshake to its last output beat (including output
stalls): 1 cycle to read the descriptor, 1 to latch it, 1 to offer it, per layer.
Throughput: one inference per ``1 + sum over layers l of (3 + L_l)`` cycles (one idle cycle
between inferences) when images arrive at least that fast: the next image is received into the
free input buffer while the current inference runs.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.registers import input_words_per_beat, out_bits

__all__ = ["NetworkSequencer", "start_layout", "output_layout", "act_addr_bits"]


def act_addr_bits(config: HardwareConfig) -> int:
    """Address bits of one activation buffer (``activation_depth`` entries)."""
    return max(1, (config.activation_depth - 1).bit_length())


def start_layout(config: HardwareConfig) -> data.StructLayout:
    """The layer engine's ``start`` payload (a layer descriptor)."""
    mems = config.memories
    return data.StructLayout({"fan_in": 16, "neurons": 16,
                              "weight_base": mems["weight"].addr_bits,
                              "column_base": mems["bias"].addr_bits, "readout": 1})


def output_layout(config: HardwareConfig) -> data.StructLayout:
    """The layer engine's ``o`` payload."""
    return data.StructLayout({"index": 16, "spikes": unsigned(config.timesteps),
                              "potential": signed(config.widths.potential), "last": 1})


class NetworkSequencer(wiring.Component):
    """Runs a committed network layer by layer on the layer engine (see the module docstring).

    Members:

    * ``in_tdata`` In(32), ``in_tvalid`` In(1), ``in_tready`` Out(1), ``in_tlast`` In(1): images.
    * ``out_tdata`` Out(OUT_BITS), ``out_tvalid`` Out(1), ``out_tready`` In(1), ``out_tlast``
      Out(1): readout potentials.
    * ``descriptor_raddr`` Out, ``descriptor_ren`` Out(1), ``descriptor_rdata`` In(128),
      ``layer_count`` In, ``hold`` Out(1): to :class:`NetworkMemories`.
    * ``eng_start`` Out(stream of :func:`start_layout`), ``eng_o`` In(stream of
      :func:`output_layout`), ``eng_busy`` In(1); ``act_raddr`` In, ``act_ren`` In(1),
      ``act_rdata`` Out(R*T): to the layer engine.
    * ``run`` In(1), ``start`` In(1) (one-cycle strobe): control.
    * ``busy``, ``armed`` Out(1); ``layer`` Out(8); ``images`` Out(2); ``cycles_last`` Out(32);
      one-cycle strobes ``start_ignored``, ``overflow``, ``done``, ``layer_done``, ``in_beat``,
      ``out_beat``, ``in_stall``, ``out_stall``: status and activity.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        mems = config.memories
        super().__init__({
            "in_tdata": In(32), "in_tvalid": In(1), "in_tready": Out(1), "in_tlast": In(1),
            "out_tdata": Out(self.out_bits), "out_tvalid": Out(1), "out_tready": In(1),
            "out_tlast": Out(1),
            "descriptor_raddr": Out(mems["descriptor"].addr_bits),
            "descriptor_ren": Out(1),
            "descriptor_rdata": In(mems["descriptor"].word_bits),
            "layer_count": In(self._config.layer_count_bits),
            "hold": Out(1),
            "eng_start": Out(stream.Signature(start_layout(config))),
            "eng_o": In(stream.Signature(output_layout(config))),
            "eng_busy": In(1),
            "act_raddr": In(self.act_addr_bits),
            "act_ren": In(1),
            "act_rdata": Out(config.rows * config.timesteps),
            "run": In(1), "start": In(1),
            "busy": Out(1), "armed": Out(1), "layer": Out(8), "images": Out(2),
            "cycles_last": Out(32),
            "start_ignored": Out(1), "overflow": Out(1), "done": Out(1), "layer_done": Out(1),
            "in_beat": Out(1), "out_beat": Out(1), "in_stall": Out(1), "out_stall": Out(1),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def out_bits(self) -> int:
        return out_bits(self._config)

    @property
    def words_per_beat(self) -> int:
        return input_words_per_beat(self._config)

    @property
    def act_addr_bits(self) -> int:
        return act_addr_bits(self._config)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        R, T = c.rows, c.timesteps
        LR = (R - 1).bit_length()           # log2(R)
        K = self.words_per_beat
        depth = c.activation_depth
        abits = self.act_addr_bits
        cap = depth * R                     # input words an activation buffer holds

        in_mem = memory.Memory(shape=unsigned(R * T), depth=2 << abits, init=[])
        hid_mem = memory.Memory(shape=unsigned(R * T), depth=2 << abits, init=[])
        m.submodules.in_mem = in_mem
        m.submodules.hid_mem = hid_mem
        in_wr = in_mem.write_port(granularity=T)
        in_rd = in_mem.read_port(domain="sync")
        hid_wr = hid_mem.write_port(granularity=T)
        hid_rd = hid_mem.read_port(domain="sync")

        full = Signal(2)            # input buffer b holds a complete image
        wsel = Signal()             # input buffer being filled
        rsel = Signal()             # input buffer of the next / running inference
        m.d.comb += self.images.eq(full[0] + full[1])

        # --- input writer ----------------------------------------------------------------------
        i0 = Signal(range(cap + 1))                     # input index of word 0 of this beat
        entry = Signal(range((cap + K) // R + 2))       # buffer entry written this cycle
        e_last = Signal.like(entry)                     # last entry this beat touches
        m.d.comb += e_last.eq((i0 + (K - 1)) >> LR)
        beat_done = Signal()
        m.d.comb += beat_done.eq((entry >= e_last) | (entry >= depth))
        space = ~full.bit_select(wsel, 1)
        m.d.comb += self.in_tready.eq(space & beat_done)
        beat = Signal()
        m.d.comb += [beat.eq(self.in_tvalid & self.in_tready),
                     self.in_beat.eq(beat),
                     self.in_stall.eq(self.in_tvalid & ~self.in_tready)]

        words = self.in_tdata[:K * T]
        padded = Cat(Const(0, R * T), words, Const(0, R * T))
        shift = Signal(range(R + K + 1))                # padded word that lands in lane 0
        m.d.comb += shift.eq(R + (entry << LR) - i0)
        m.d.comb += [
            in_wr.addr.eq(Cat(entry[:abits], wsel)),
            in_wr.data.eq(padded.bit_select(shift * T, R * T)),
        ]
        writing = self.in_tvalid & space & (entry < depth)
        for lane in range(R):
            k_lo = shift + lane >= R                    # word index k = shift + lane - R >= 0
            k_in = shift + lane < R + K                 # k < K
            m.d.comb += in_wr.en[lane].eq(writing & k_lo & (k_in | self.in_tlast))

        with m.If(beat):
            with m.If(self.in_tlast):
                m.d.sync += [i0.eq(0), entry.eq(0), full.bit_select(wsel, 1).eq(1),
                             wsel.eq(~wsel)]
            with m.Else():
                nxt = Signal(range(cap + K + 1))
                m.d.comb += nxt.eq(i0 + K)
                with m.If(nxt > cap):
                    m.d.sync += [i0.eq(cap), entry.eq(cap >> LR)]
                with m.Else():
                    m.d.sync += [i0.eq(nxt), entry.eq(nxt >> LR)]
            m.d.comb += self.overflow.eq(i0 >= cap)
        with m.Elif(writing):
            m.d.sync += entry.eq(entry + 1)

        # --- layer sequencing ------------------------------------------------------------------
        layers = Signal(self._config.layer_count_bits)          # layer count of this inference
        layer = Signal(8)
        last_layer = Signal()
        m.d.comb += [last_layer.eq(layer + 1 == layers), self.layer.eq(layer)]
        desc = Signal(c.memories["descriptor"].word_bits)
        armed = Signal()
        cycles = Signal(32)
        m.d.comb += self.armed.eq(armed)

        o = self.eng_o
        o_beat = Signal()
        m.d.comb += o_beat.eq(o.valid & o.ready)

        go = Signal()
        m.d.comb += go.eq(full.bit_select(rsel, 1) & (self.layer_count != 0)
                          & (self.run | armed))

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(go):
                    m.d.sync += [layer.eq(0), armed.eq(0), cycles.eq(1)]
                    m.next = "FIRST"
            with m.State("FIRST"):
                # hold is high from here on, so the layer count and bank are stable
                m.d.comb += [self.busy.eq(1)]
                m.d.sync += [layers.eq(self.layer_count), cycles.eq(cycles + 1)]
                with m.If(self.layer_count == 0):       # cannot happen with the loader; be safe
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.descriptor_raddr.eq(0), self.descriptor_ren.eq(1)]
                    m.next = "LATCH"
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), self.descriptor_raddr.eq(layer),
                             self.descriptor_ren.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                m.next = "LATCH"
            with m.State("LATCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [desc.eq(self.descriptor_rdata), cycles.eq(cycles + 1)]
                m.next = "START"
            with m.State("START"):
                m.d.comb += [self.busy.eq(1), self.eng_start.valid.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(self.eng_start.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(o_beat & o.payload.last):
                    m.d.comb += self.layer_done.eq(1)
                    with m.If(layer == 0):
                        m.d.sync += [full.bit_select(rsel, 1).eq(0), rsel.eq(~rsel)]
                    with m.If(last_layer):
                        m.d.comb += self.done.eq(1)
                        m.d.sync += self.cycles_last.eq(cycles)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        m.next = "FETCH"
        m.d.comb += self.hold.eq(self.busy)

        # start strobe (after `go`, so a start in the cycle an inference begins stays armed)
        with m.If(self.start):
            with m.If(self.busy | armed):
                m.d.comb += self.start_ignored.eq(1)
            with m.Else():
                m.d.sync += armed.eq(1)

        # descriptor -> engine
        lanes = [desc[32 * i:32 * i + 32] for i in range(4)]
        p = self.eng_start.payload
        m.d.comb += [
            p.fan_in.eq(lanes[0][:16]),
            p.neurons.eq(lanes[0][16:32]),
            p.weight_base.eq(lanes[1]),
            p.column_base.eq(lanes[2]),
            p.readout.eq(last_layer),
        ]

        # --- engine output routing -------------------------------------------------------------
        # `readout` is stable while a layer runs; o.valid never depends on o.ready.
        readout = last_layer
        m.d.comb += [
            self.out_tvalid.eq(o.valid & readout & self.busy),
            self.out_tdata.eq(o.payload.potential.as_signed()),
            self.out_tlast.eq(o.payload.last),
            o.ready.eq(Mux(readout, self.out_tready, 1) & self.busy),
            self.out_beat.eq(self.out_tvalid & self.out_tready),
            self.out_stall.eq(self.out_tvalid & ~self.out_tready),
        ]

        # hidden layer outputs -> hidden buffer layer mod 2
        index = o.payload.index
        out_entry = index >> LR
        out_lane = index[:LR] if LR else Const(0, 1)
        m.d.comb += hid_wr.addr.eq(Cat(out_entry[:abits], layer[0]))
        hidden_write = o_beat & ~readout & (out_entry < depth)
        for lane in range(R):
            here = out_lane == lane
            beyond = (o.payload.last & (out_lane < lane)) if lane else Const(0, 1)
            m.d.comb += [
                hid_wr.data[lane * T:lane * T + T].eq(Mux(here, o.payload.spikes, 0)),
                hid_wr.en[lane].eq(hidden_write & (here | beyond)),
            ]

        # --- activation reads for the engine ---------------------------------------------------
        m.d.comb += [
            in_rd.addr.eq(Cat(self.act_raddr, rsel)),
            hid_rd.addr.eq(Cat(self.act_raddr, ~layer[0])),
            in_rd.en.eq(self.act_ren),
            hid_rd.en.eq(self.act_ren),
        ]
        first = Signal()
        m.d.comb += first.eq(layer == 0)
        m.d.comb += self.act_rdata.eq(Mux(first, in_rd.data, hid_rd.data))
        return m
