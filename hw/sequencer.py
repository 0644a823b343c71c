"""The network sequencer: runs every layer of the committed network on the layer engine, keeping
activations on chip, and streams images in and readout potentials out.

Buffers (``amaranth.lib.memory``, entries of R spike words, entry e holding the spike words of
inputs e*R .. e*R+R-1, input e*R+i at bits i*T .. i*T+T-1, as the engine's ``act_*`` port reads):

* two **input buffers** (one memory, bank bit on top), filled alternately from ``s_axis_in``;
  an image can arrive while the previous one is being computed, so back-to-back inferences
  stream without draining;
* two **hidden buffers** (ping-pong, one memory): layer 0 reads its image's input buffer and
  writes hidden buffer 0; layer l >= 1 reads hidden buffer (l-1) mod 2 and writes l mod 2. A
  hidden layer's outputs (engine ``o`` beats, spike words) are written one word a beat, at
  entry ``index >> log2 R``, lane ``index % R``; the lanes above the word are zeroed, so every
  entry holds zeros beyond the layer's outputs (a dense layer's M, a map's padding channels).
  Both memories are written a whole entry at a time (no T-bit write columns, which Vivado
  would split into one RAM per column): the write register keeps the words already written to
  the entry, which arrive in order (inputs in stream order, outputs in index order), and the
  entry is written with them. A beat in cycle t is registered (the engine's output register
  is far away), decoded into the write register and written at the edge ending cycle t + 2.
* **max pooling** (``config.conv``; ``docs/architecture.md``): a conv layer's beats come per
  output position, the positions of a pool window one after the other (docs/architecture.md, "Convolution contract"), each beat
  carrying the storage index of its POOLED word, its channel and ``pool_first`` (the window's
  first position). The writer keeps the running maximum of each channel in ``pool``, a
  LUT-RAM of max_channels T-bit words: ``word = spikes`` on a window's first position (and
  always in a dense layer: the descriptor's conv flag, taken at the handshake, decides),
  otherwise ``max(pool[channel], spikes)`` (unsigned), and ``pool[channel] <= word``. This
  read-modify-write takes two register stages between the beat register and the write
  register, so that no path crosses the LUT-RAM twice (its read, then its write data: on ECP5
  that path alone ran at 177 MHz): the read is registered, and the words of the two beats
  before, not in ``pool`` yet, are forwarded by registered channel compares. Beats still
  stream one a cycle (back-to-back beats of one channel when C_out = 1 included); the word is
  then written like a dense layer's, two cycles later (edge ending cycle t + 4). Each
  window position rewrites the pooled pixel's entries from lane 0 up, so the last one leaves
  the window's maximum in every lane. Without ``config.conv`` there is no ``pool`` and no
  extra stage.

The last committed layer is the readout: its ``o`` beats go to ``m_axis_out`` (potential
sign-extended to ``OUT_BITS``, TLAST on the last one) through a two-entry register slice:
``out_tvalid``/``out_tdata``/``out_tlast`` come from registers, and the engine's ``o.ready`` is a
function of registers only (never of ``out_tready``); the readout flag in the descriptor is not
used for routing (the loader checks that it marks the last layer).

Input format (``s_axis_in``): K = 32 // T spike words a beat, input i in beat i // K at bits
(i % K)*T .. +T-1, TLAST on the last beat of an image. A beat goes into a beat register (through
a one-entry skid register when the beat register cannot take it, so ``in_tready`` is a
flip-flop) and is written into the input buffer from there, one entry a cycle, in as many cycles
as buffer entries it touches (``K / R`` when R divides K, otherwise ``ceil(K/R)`` or
``ceil(K/R) + 1``), through a write register stage: an entry loaded into the beat register at
the edge ending cycle t is written at the edge ending t+2. The next beat enters in the cycle
in which the current one's last entry is written, so one beat a cycle streams when each beat
fills one entry; the first beat of an image enters 2 cycles after the previous image's TLAST
beat at the earliest (its buffer is known to be free then). The TLAST beat also zeroes the rest
of its last entry. Words beyond the buffer's ``activation_depth * R`` are dropped;
``overflow`` pulses for every beat that starts there. The image ends at TLAST: its length is
not checked against the network.

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

from math import gcd

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.layer_engine import descriptor_layout, output_layout
from spikepack.hw.memories import ReadPortSignature
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
        LR = (R - 1).bit_length()           # log2(R)
        K = self.words_per_beat
        depth = c.activation_depth
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

        full = Signal(2)            # input buffer b holds a complete image
        wsel = Signal()             # input buffer being filled
        rsel = Signal()             # input buffer of the next / running inference
        m.d.comb += self.images.eq(full[0] + full[1])

        # --- input writer ----------------------------------------------------------------------
        # A beat's word 0 lands at lane `pos` of its first entry; pos is a multiple of
        # g = gcd(K, R), kept as q = pos / g (a constant 0 when R divides K).
        g = gcd(K, R)
        NQ = R // g
        NS = -(-(R - g + K) // R) if NQ > 1 else K // R     # entries a beat can touch
        q = Signal(range(NQ), name="in_q") if NQ > 1 else Const(0, 1)

        # Beat register: S = the beat's words moved to their lanes (entry-aligned, NS entries),
        # E = lanes to write (its words, and on TLAST the rest of its last entry), both shifted
        # down by one entry per write cycle. A beat enters it only when its buffer has room, so
        # once in, it is written one entry a cycle without waiting.
        bvalid = Signal()
        blast = Signal()
        S = Signal(NS * R * T)
        E = Signal(NS * R)
        # the beat's current entry is its last (always, when a beat fills at most one entry)
        cyc_last = Signal(init=1) if NS > 1 else Const(1, 1)
        entry = Signal(range(depth + 1))    # buffer entry written next (depth: overflowed)
        ovf = Signal()                      # entry == depth
        done_beat = Signal()                # the beat leaves the beat register this cycle
        complete = Signal()                 # ... and it is its image's TLAST beat
        # the beat is in its first write cycle (always, when a beat fills at most one entry)
        bfirst = Signal(init=1) if NS > 1 else Const(1, 1)
        m.d.comb += [done_beat.eq(bvalid & cyc_last),
                     complete.eq(bvalid & cyc_last & blast),
                     # a beat that starts beyond the buffer is dropped (words of a beat that
                     # runs past its end are dropped silently: the zeros beyond N0)
                     self.overflow.eq(bvalid & ovf & bfirst)]

        # space: the buffer being filled is free (~full[wsel]), registered; 0 for the cycle after
        # an image completes (wsel flips then, maybe to a full buffer). A beat is loaded only
        # with space and not while the beat register holds a TLAST beat (the next beat is for
        # the other buffer): so every image waits 2 cycles after the previous one's TLAST beat.
        space = Signal()
        m.d.sync += space.eq(~full.bit_select(wsel, 1) & ~complete)
        ldok = Signal()                     # the beat register takes a beat this cycle
        m.d.comb += ldok.eq(space & (~bvalid | cyc_last & ~blast))

        # input skid entry: holds a beat that arrived while the beat register could not take it,
        # so in_tready is a flip-flop
        skid_in, skid_in_data, skid_in_last = (Signal(name="skid_in"),
                                               Signal(K * T, name="skid_in_data"),
                                               Signal(name="skid_in_last"))
        load = Signal()                     # into the beat register, from skid_in or s_axis_in
        m.d.comb += [self.in_tready.eq(~skid_in),
                     self.in_beat.eq(self.in_tvalid & ~skid_in),
                     self.in_stall.eq(self.in_tvalid & skid_in),
                     load.eq(ldok & (skid_in | self.in_tvalid))]
        m.d.sync += skid_in.eq((skid_in | self.in_tvalid) & ~ldok)
        with m.If(~skid_in):                # (unused unless skid_in rises)
            m.d.sync += [skid_in_data.eq(self.in_tdata[:K * T]), skid_in_last.eq(self.in_tlast)]
        words = Mux(skid_in, skid_in_data, self.in_tdata[:K * T])
        in_last = Mux(skid_in, skid_in_last, self.in_tlast)

        # when the beat register may take a beat it takes whatever is offered (maybe nothing)
        with m.If(ldok):
            m.d.sync += [bvalid.eq(skid_in | self.in_tvalid), blast.eq(in_last)]
            with m.Switch(q):
                for qv in range(NQ):
                    pos = qv * g
                    ends = -(-(pos + K) // R) * R           # end of the beat's last entry
                    norm = ((1 << K) - 1) << pos
                    last = ((1 << (ends - pos)) - 1) << pos
                    with m.Case(qv):
                        m.d.sync += [S.eq(Cat(Const(0, pos * T), words) if pos else words),
                                     E.eq(Mux(in_last, last, norm))]
                        if NS > 1:
                            m.d.sync += [cyc_last.eq(pos + K <= R), bfirst.eq(1)]
        with m.Elif(done_beat):
            m.d.sync += bvalid.eq(0)
        if NQ > 1:
            with m.If(load):
                with m.If(in_last):
                    m.d.sync += q.eq(0)
                with m.Else():
                    m.d.sync += q.eq((q + K // g) % NQ)

        # write register stage: a whole entry, its lanes not written by this beat held from the
        # previous write (the lanes below the beat's first word come from the beat before, in
        # the same entry; lanes above are written later, or zeroed by the TLAST beat)
        w_addr = Signal(abits + 1)
        w_data = Signal(R * T)
        w_en = Signal()
        m.d.sync += [w_addr.eq(Cat(entry[:abits], wsel)),
                     w_en.eq(bvalid & ~ovf & (E[:R] != 0))]
        for lane in range(R):
            with m.If(bvalid & E[lane]):
                m.d.sync += w_data[lane * T:lane * T + T].eq(S[lane * T:lane * T + T])
        m.d.comb += [in_wr.addr.eq(w_addr), in_wr.data.eq(w_data), in_wr.en.eq(w_en)]

        # a beat takes its cycles even beyond the buffer (writing nothing there), so that the
        # end of a beat does not depend on `ovf`
        step = Signal()                     # move to the next entry
        with m.If(bvalid):
            with m.If(~cyc_last):           # the beat goes on in the next entry
                m.d.sync += [S.eq(S >> (R * T)), E.eq(E >> R)]
                if NS > 1:
                    m.d.sync += [cyc_last.eq(E[2 * R:] == 0 if NS > 2 else 1), bfirst.eq(0)]
                m.d.comb += step.eq(1)
            with m.Elif(E[R - 1]):          # the beat fills its last entry to the end
                m.d.comb += step.eq(1)
        with m.If(complete):
            m.d.sync += [entry.eq(0), ovf.eq(0), full.bit_select(wsel, 1).eq(1), wsel.eq(~wsel)]
        with m.Elif(step & ~ovf):
            m.d.sync += [entry.eq(entry + 1), ovf.eq(entry == depth - 1)]

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
        ready_c = full.bit_select(rsel ^ rel_q, 1) & (self.layer_count != 0)
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
        with m.If(rel_q):
            m.d.sync += [full.bit_select(rsel, 1).eq(0), rsel.eq(~rsel)]
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

        # --- hidden layer outputs -> hidden buffer layer mod 2, through a register stage -------
        # the beat is registered first (the engine's output register is far away), then
        # decoded into the write
        ob_write = Signal()
        ob_index = Signal.like(o.payload.index)
        ob_spikes = Signal.like(o.payload.spikes)
        ob_parity = Signal()
        ob_fits = Signal()                  # the index is inside the buffer (index < cap)
        m.d.sync += [ob_write.eq(s_runh & o.valid), ob_index.eq(o.payload.index),
                     ob_fits.eq((o.payload.index >> LR) < depth),
                     ob_spikes.eq(o.payload.spikes), ob_parity.eq(layer[0])]
        if c.conv:
            # max pooling: pool[channel] holds the running max of each channel over the window
            # so far (a LUT-RAM of max_channels words); word = spikes on the window's first
            # position (and in a dense layer), else max(pool[channel], spikes) (unsigned); the
            # pooled word then goes on like a dense layer's spikes. The read-modify-write is
            # spread over registers so that no path crosses the LUT-RAM twice:
            #   A (ob_*): pool read at ob_channel, registered (q); ob_channel compared with
            #      the channels of the beats in B and C (registered hits);
            #   B (pb_*): the running max is q, or the word of the beat in C (hit1) or of the
            #      beat that left C a cycle ago (hit2): those two are not in the LUT-RAM yet
            #      when A reads it; word registered into pw_word;
            #   C (pw_*): pool[pw_channel] <= pw_word (only in conv layers: a dense layer's
            #      channel, its index's low bits, may lie beyond max_channels), and the word
            #      goes to the write register.
            pool = memory.Memory(shape=unsigned(T), depth=c.max_channels, init=[],
                                 attrs={"ram_style": "distributed"})
            m.submodules.pool = pool
            pool_rd = pool.read_port(domain="comb")
            pool_wr = pool.write_port()
            ob_channel = Signal.like(o.payload.channel)
            ob_keep = Signal()              # word = spikes: the window's first position, dense
            ob_conv = Signal()              # a conv layer's beat (it updates pool)
            m.d.sync += [ob_channel.eq(o.payload.channel),
                         ob_keep.eq(o.payload.pool_first | ~layer_conv),
                         ob_conv.eq(s_runh & o.valid & layer_conv)]

            def stage(name, like):
                return Signal.like(like, name=name)
            pb_write, pb_index, pb_fits, pb_parity, pb_spikes, pb_keep, pb_conv, pb_channel = (
                stage(f"pb_{n}", v) for n, v in (
                    ("write", ob_write), ("index", ob_index), ("fits", ob_fits),
                    ("parity", ob_parity), ("spikes", ob_spikes), ("keep", ob_keep),
                    ("conv", ob_conv), ("channel", ob_channel)))
            pw_write, pw_index, pw_fits, pw_parity, pw_conv, pw_channel = (
                stage(f"pw_{n}", v) for n, v in (
                    ("write", ob_write), ("index", ob_index), ("fits", ob_fits),
                    ("parity", ob_parity), ("conv", ob_conv), ("channel", ob_channel)))
            pw_word = Signal.like(ob_spikes, name="pw_word", reset_less=True)
            pw2_word = Signal.like(ob_spikes, name="pw2_word", reset_less=True)
            q = Signal.like(ob_spikes, name="pool_q", reset_less=True)
            hit1, hit2 = Signal(name="pool_hit1"), Signal(name="pool_hit2")
            m.d.comb += pool_rd.addr.eq(ob_channel)
            m.d.sync += [q.eq(pool_rd.data),
                         hit1.eq(pb_conv & (pb_channel == ob_channel)),
                         hit2.eq(pw_conv & (pw_channel == ob_channel)),
                         pb_write.eq(ob_write), pb_index.eq(ob_index), pb_fits.eq(ob_fits),
                         pb_parity.eq(ob_parity), pb_spikes.eq(ob_spikes), pb_keep.eq(ob_keep),
                         pb_conv.eq(ob_conv), pb_channel.eq(ob_channel)]
            running = Mux(hit1, pw_word, Mux(hit2, pw2_word, q))
            word = Mux(pb_keep | (running < pb_spikes), pb_spikes, running)
            m.d.sync += [pw_write.eq(pb_write), pw_index.eq(pb_index), pw_fits.eq(pb_fits),
                         pw_parity.eq(pb_parity), pw_conv.eq(pb_conv),
                         pw_channel.eq(pb_channel), pw_word.eq(word), pw2_word.eq(pw_word)]
            m.d.comb += [pool_wr.addr.eq(pw_channel), pool_wr.data.eq(pw_word),
                         pool_wr.en.eq(pw_conv)]
            w_write, index, w_fits, w_parity, w_word = (pw_write, pw_index, pw_fits, pw_parity,
                                                        pw_word)
        else:
            w_write, index, w_fits, w_parity, w_word = (ob_write, ob_index, ob_fits, ob_parity,
                                                        ob_spikes)
        out_lane = index[:LR] if LR else Const(0, 1)
        h_addr = Signal(abits + 1)
        # a data register: every layer writes its entries from lane 0 up (lanes above a word are
        # zeroed), so it needs no reset, and a reset on it would join the core reset into the
        # LSR of its lane clears (the top's critical path, 222-238 MHz)
        h_data = Signal(R * T, reset_less=True)
        h_en = Signal()
        hidden_write = w_write & w_fits
        m.d.sync += [h_addr.eq(Cat((index >> LR)[:abits], w_parity)), h_en.eq(hidden_write)]
        # a whole entry: lanes below this word hold the entry's earlier words (index order),
        # lanes above are zeroed (a later word of the entry overwrites them; after the layer's
        # last word they stay zero)
        for lane in range(R):
            above = (out_lane < lane) if lane else Const(0, 1)
            with m.If(hidden_write & above):
                m.d.sync += h_data[lane * T:lane * T + T].eq(0)
            with m.Elif(hidden_write & (out_lane == lane)):
                m.d.sync += h_data[lane * T:lane * T + T].eq(w_word)
        m.d.comb += [hid_wr.addr.eq(h_addr), hid_wr.data.eq(h_data), hid_wr.en.eq(h_en)]

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
