"""The network sequencer: runs every layer of the committed network on the layer engine, keeping
activations on chip, and streams images in and readout potentials out.

Buffers (``amaranth.lib.memory``, entries of R spike words, entry e holding the spike words of
inputs e*R .. e*R+R-1, input e*R+i at bits i*T .. i*T+T-1, as the engine's ``act_*`` port reads):

* two **input buffers** (one memory, bank bit on top), filled alternately from ``s_axis_in``;
  an image can arrive while the previous one is being computed, so back-to-back inferences
  stream without draining;
* two **hidden buffers** (ping-pong, one memory): layer 0 reads its image's input buffer and
  writes hidden buffer 0; layer l >= 1 reads hidden buffer (l-1) mod 2 and writes l mod 2. A
  hidden layer's outputs (engine ``o`` beats, spike words) are written by the **hidden
  writer** (:mod:`spikepack.hw.hidden_writer`): one word a beat at entry ``index >> log2 R``,
  lane ``index % R``, a whole entry at a time, at the edge ending cycle t + 2 for a beat in
  cycle t; with ``config.conv`` a conv layer's beats are **max-pooled** on the way (a running
  maximum per channel in a LUT-RAM; the beats come per output position, the positions of a
  pool window one after the other: the convolution contract, docs/architecture.md), written
  at the edge ending t + 4.
* images arrive through the **input writer** (:mod:`spikepack.hw.input_writer`): beats of
  K = 32 // T spike words, a whole entry written at a time, one beat a cycle when each beat
  fills at most one entry.

The last committed layer is the readout: its ``o`` beats go to ``m_axis_out`` (potential
sign-extended to ``OUT_BITS``, TLAST on the last one) through a two-entry register slice:
``out_tvalid``/``out_tdata``/``out_tlast`` come from registers, and the engine's ``o.ready`` is a
function of registers only (never of ``out_tready``); the readout flag in the descriptor is not
used for routing (the loader checks that it marks the last layer).

Input format (``s_axis_in``): K = 32 // T spike words a beat, input i in beat i // K at bits
(i % K)*T .. +T-1, TLAST on the last beat of an image; rates, overflow and the buffers' hand-over
in :mod:`spikepack.hw.input_writer`.

Sequencing (one-hot states): an inference starts when an input buffer holds a complete image, a
network is committed (``layer_count > 0``) and ``run`` is high or a ``start`` is armed (the
decision is registered, so it comes a cycle after its inputs change; a ``start`` pulse while
idle and ready starts at once). ``hold`` (to :class:`NetworkMemories`) is high while an
inference runs, so a commit waits for its end; its first cycle (HOLD) only raises ``hold``,
because a commit decided in the cycle before switches ``layer_count`` and the descriptors only
at its end. Then the sequencer reads ``layer_count`` and, per layer, the descriptor (FIRST or
FETCH, 2 cycles), offers it to the engine straight from the memory's read register, which holds
while its read enable is low (START, the ``start`` handshake), and routes the engine's output
beats until the beat with ``last`` (RUN); the input buffer is released the cycle after layer 0
ends. After the readout layer's last beat it waits until that beat has left the output slice
(DRAIN). At least one idle cycle separates two inferences (a commit can be applied there).

Latency per inference: ``2 + sum over layers l of (3 + L_l)`` cycles from the first busy cycle
to the acceptance of the last output beat, inclusive (``cycles_last``, updated the cycle after
``done``), where L_l is the engine's latency for layer l from its descriptor handshake to its
last output beat (including output stalls), when the engine takes the descriptor and the sink
the last beat at once: per layer 2 cycles to read the descriptor (the network memories' read
latency) and 1 to offer it; per
inference 1 HOLD cycle and 1 cycle for the last beat to cross the output slice. Throughput: one
inference per ``3 + sum over layers l of (3 + L_l)`` cycles (one idle cycle between
inferences) when images arrive at least that fast: the next image is received into the free
input buffer while the current inference runs. The formulas hold for conv layers as they are
(L_l is then the engine's conv latency) and with max pooling: the writer takes every beat in
its cycle. Its last write (the edge ending cycle t + 4, t the layer's last beat) must come
before the next layer's first activation read: the next descriptor's handshake is at t + 3
at the earliest, so the engine may read from 2 cycles after its handshake on (LayerEngine
reads 4 cycles after it at the earliest: its two setup cycles and the command register).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.layer_engine import descriptor_layout, output_layout
from spikepack.hw.memories import ReadPortSignature
from spikepack.hw.hidden_writer import HiddenWriter
from spikepack.hw.input_writer import InputWriter
from spikepack.hw.stream import SkidBuffer

__all__ = ["NetworkSequencer"]


class NetworkSequencer(wiring.Component):
    """Runs a committed network layer by layer on the layer engine (see the module docstring).

    Members:

    * ``in_tdata`` In(32), ``in_tvalid`` In(1), ``in_tready`` Out(1), ``in_tlast`` In(1): images.
    * ``out_tdata`` Out(OUT_BITS), ``out_tvalid`` Out(1), ``out_tready`` In(1), ``out_tlast``
      Out(1): readout potentials.
    * ``descriptor`` In(:class:`~spikepack.hw.memories.ReadPortSignature`), ``layer_count`` In,
      ``hold`` Out(1): to :class:`NetworkMemories`.
    * ``eng_start`` Out(stream of ``layer_engine.descriptor_layout``), ``eng_o`` In(stream of
      ``layer_engine.output_layout``), ``eng_busy`` In(1); ``act``
      Out(:class:`~spikepack.hw.memories.ReadPortSignature`, R*T-bit data, read latency 2):
      the activation buffers, read by the layer engine.
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
            "descriptor": In(ReadPortSignature(mems["descriptor"].addr_bits,
                                               mems["descriptor"].word_bits)),
            "layer_count": In(self._config.layer_count_bits),
            "hold": Out(1),
            "eng_start": Out(stream.Signature(descriptor_layout(config))),
            "eng_o": In(stream.Signature(output_layout(config))),
            "eng_busy": In(1),
            "act": Out(ReadPortSignature(config.act_addr_bits, config.rows * config.timesteps)),
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
        return self._config.out_bits

    @property
    def words_per_beat(self) -> int:
        return self._config.input_words_per_beat

    @property
    def act_addr_bits(self) -> int:
        return self._config.act_addr_bits

    def elaborate(self, platform):
        m = Module()
        c = self._config
        R, T = c.rows, c.timesteps
        abits = self.act_addr_bits

        # no_rw_check: reads and writes use different halves (the full flags and the layer
        # parity keep them apart), so the synthesizer needs no collision logic
        # ram_style block: a LUT-RAM's asynchronous read would sit between the engine's address
        # register and the read register; a block RAM registers the address itself
        attrs = {"no_rw_check": 1, "ram_style": "block"}
        in_mem = memory.Memory(shape=unsigned(R * T), depth=2 << abits, init=[], attrs=attrs)
        hid_mem = memory.Memory(shape=unsigned(R * T), depth=2 << abits, init=[], attrs=attrs)
        m.submodules.in_mem = in_mem
        m.submodules.hid_mem = hid_mem
        in_wr = in_mem.write_port()         # whole entries (see the module docstring)
        in_rd = in_mem.read_port(domain="sync")
        hid_wr = hid_mem.write_port()
        hid_rd = hid_mem.read_port(domain="sync")

        # images from s_axis_in into the input buffers (hw/input_writer.py)
        m.submodules.input_writer = writer = InputWriter.from_config(c)
        wiring.connect(m, writer.mem, in_wr)
        m.d.comb += [writer.i.valid.eq(self.in_tvalid), writer.i.payload.data.eq(self.in_tdata),
                     writer.i.payload.last.eq(self.in_tlast), self.in_tready.eq(writer.i.ready),
                     self.images.eq(writer.images), self.overflow.eq(writer.overflow),
                     self.in_beat.eq(writer.beat), self.in_stall.eq(writer.stall)]
        rsel = writer.bank

        # --- layer sequencing ------------------------------------------------------------------
        layer = Signal(8)
        rem = Signal(self._config.layer_count_bits)     # layers of this inference after this one
        last_layer = Signal()               # rem == 0
        first = Signal()                    # layer == 0
        hsel = Signal()                     # hidden buffer layer reads: ~layer[0]
        busy = Signal()
        armed = Signal()
        cycles = Signal(32)
        dren = Signal()                     # descriptor read (FIRST, FETCH)
        desc_wait = Signal()                # the descriptor read's second cycle
        svalid = Signal()                   # eng_start.valid (START)
        m.d.comb += [self.layer.eq(layer), self.armed.eq(armed), self.busy.eq(busy),
                     self.hold.eq(busy), self.descriptor.addr.eq(layer),
                     self.descriptor.en.eq(dren), self.eng_start.valid.eq(svalid)]
        m.d.sync += dren.eq(0)
        # cycles: busy cycles before this one (0 in the first); cycles_last is taken in the cycle
        # after `done`, when cycles counts the busy cycles up to and including `done`
        done_q = Signal()
        m.d.sync += done_q.eq(self.done)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        with m.Else():
            m.d.sync += cycles.eq(0)
        with m.If(done_q):
            m.d.sync += self.cycles_last.eq(cycles)

        # one-hot states (flip-flops, so every decision is one level from a register):
        # IDLE = ~busy, HOLD, FIRST, FETCH, START = svalid, RUN (of a hidden layer: RUNH, of the
        # readout: RUNR), DRAIN
        s_hold, s_first, s_fetch, s_runh, s_runr, s_drain = (
            Signal(name=f"s_{n}") for n in ("hold", "first", "fetch", "runh", "runr", "drain"))
        o = self.eng_o
        o_beat = Signal()
        m.d.comb += o_beat.eq(o.valid & o.ready)

        # go, registered: its inputs only change in ways a one-cycle-late start tolerates (an
        # image completes, RUN or START is written, a commit lands while idle; FIRST rechecks the
        # layer count), except the release of an input buffer, which it looks ahead to
        go = Signal()
        ready = Signal()                    # an image and a network are there (go without RUN)
        rel_q = Signal()                    # release the input buffer of layer 0 (it ended)
        m.d.comb += writer.release.eq(rel_q)
        ready_c = writer.image_ready & (self.layer_count != 0)
        m.d.sync += [ready.eq(ready_c), go.eq(ready_c & (self.run | armed))]
        # a START pulse starts an idle, ready sequencer at once (and is consumed by it)
        start_now = Signal()
        m.d.comb += start_now.eq(self.start & ready & ~go & ~armed)

        # output slice: a skid buffer (stream.SkidBuffer: out_t* from registers, the engine's
        # o.ready a flip-flop, never out_tready)
        m.submodules.out_slice = out_slice = SkidBuffer(data.StructLayout({
            "potential": signed(c.widths.potential), "last": 1}))
        m.d.comb += [
            out_slice.i.valid.eq(s_runr & o.valid),
            out_slice.i.payload.potential.eq(o.payload.potential),
            out_slice.i.payload.last.eq(o.payload.last),
            out_slice.o.ready.eq(self.out_tready),
            self.out_tvalid.eq(out_slice.o.valid),
            self.out_tdata.eq(out_slice.o.payload.potential),   # sign-extended to OUT_BITS
            self.out_tlast.eq(out_slice.o.payload.last),
            self.out_beat.eq(out_slice.o.valid & self.out_tready),
            self.out_stall.eq(out_slice.o.valid & ~self.out_tready),
            # beats wait while the skid entry is taken, which only readout beats fill (and
            # it is empty again before an inference ends), so hidden beats never wait
            o.ready.eq(out_slice.i.ready),
        ]

        # end of a layer: its last beat; only readout beats can wait (the skid entry)
        end_h, end_r = Signal(), Signal()
        m.d.comb += [end_h.eq(s_runh & o.valid & o.payload.last),
                     end_r.eq(s_runr & ~s_drain & o_beat & o.payload.last)]
        with m.If(~busy):
            m.d.sync += [layer.eq(0), first.eq(1), hsel.eq(1)]
            with m.If(go | start_now):
                m.d.sync += [armed.eq(0), busy.eq(1), s_hold.eq(1)]
        with m.If(s_hold):
            # hold is high from here on: a commit decided in the IDLE cycle is applied now, so
            # the layer count and the descriptors are read from the next cycle on
            m.d.sync += [s_hold.eq(0), s_first.eq(1), dren.eq(1)]
        with m.If(s_first):
            m.d.sync += [s_first.eq(0), rem.eq(self.layer_count - 1),
                         last_layer.eq(self.layer_count == 1)]
            with m.If(self.layer_count == 0):           # cannot happen with the loader; be safe
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += desc_wait.eq(1)
        with m.If(s_fetch):
            m.d.sync += [s_fetch.eq(0), desc_wait.eq(1)]
        with m.If(desc_wait):               # the descriptor memory's second read cycle
            m.d.sync += [desc_wait.eq(0), svalid.eq(1)]
        with m.If(svalid & self.eng_start.ready):
            m.d.sync += [svalid.eq(0), s_runh.eq(~last_layer), s_runr.eq(last_layer)]
        m.d.comb += self.layer_done.eq(end_h | end_r)
        m.d.sync += rel_q.eq(first & (end_h | end_r))
        with m.If(end_h):
            m.d.sync += [s_runh.eq(0), layer.eq(layer + 1), first.eq(0), hsel.eq(layer[0]),
                         rem.eq(rem - 1), last_layer.eq(rem == 1), dren.eq(1), s_fetch.eq(1)]
        # RUNR lasts through DRAIN (the engine sends nothing after its last beat), so that
        # it ends on `done` alone
        with m.If(end_r):
            m.d.sync += s_drain.eq(1)
        with m.If(s_drain & out_slice.o.valid & self.out_tready & out_slice.i.ready):
            # the readout's last beat was in the output slice and the sink takes it now
            m.d.comb += self.done.eq(1)
            m.d.sync += [busy.eq(0), s_runr.eq(0), s_drain.eq(0), last_layer.eq(0)]

        # start strobe (after `go`, so a start in the cycle an inference begins for another
        # reason stays armed)
        with m.If(self.start):
            with m.If(busy | armed):
                m.d.comb += self.start_ignored.eq(1)
            with m.Elif(~start_now):
                m.d.sync += armed.eq(1)

        # descriptor -> engine, straight from the descriptor memory's read register
        # (the fields of firmware.layout's descriptor word; the readout flag is not used for
        # routing: the last committed layer is the readout)
        # every member of the engine's descriptor but the readout flag, generically (conv
        # configurations add the conv fields)
        word, p = self.descriptor.data, self.eng_start.payload
        for name in descriptor_layout(c).members:
            if name != "readout":
                offset, width = DESCRIPTOR_FIELDS[name]
                m.d.comb += getattr(p, name).eq(word[offset:offset + width])
        m.d.comb += p.readout.eq(last_layer)
        # the running layer is a conv layer (its beats max-pool); taken at the handshake, when
        # the previous layer's beats have left the writer's first stage
        layer_conv = Signal()
        if c.conv:
            with m.If(svalid & self.eng_start.ready):
                m.d.sync += layer_conv.eq(p.conv)

        # --- hidden layer outputs -> hidden buffer layer mod 2, max-pooled in conv layers
        # (hw/hidden_writer.py)
        m.submodules.hidden_writer = hidden = HiddenWriter.from_config(
            c, index_bits=len(o.payload.index))
        wiring.connect(m, hidden.mem, hid_wr)
        m.d.comb += [hidden.valid.eq(s_runh & o.valid), hidden.parity.eq(layer[0]),
                     hidden.conv.eq(layer_conv)]
        for name in ("index", "channel", "pool_first", "spikes"):
            m.d.comb += getattr(hidden.beat, name).eq(getattr(o.payload, name))

        # --- activation reads for the engine ---------------------------------------------------
        m.d.comb += [
            in_rd.addr.eq(Cat(self.act.addr, rsel)),
            hid_rd.addr.eq(Cat(self.act.addr, hsel)),
            in_rd.en.eq(self.act.en),
            hid_rd.en.eq(self.act.en),
        ]
        # each block RAM's read data is registered right behind it (its output register; see
        # spikepack.hw.memories), so the port's latency is READ_LATENCY = 2, as the network
        # memories'
        in_q = Signal(R * T, reset_less=True)
        hid_q = Signal(R * T, reset_less=True)
        m.d.sync += [in_q.eq(in_rd.data), hid_q.eq(hid_rd.data)]
        m.d.comb += self.act.data.eq(Mux(first, in_q, hid_q))
        return m
