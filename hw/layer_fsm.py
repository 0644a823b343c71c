"""The layer-sequencing state machine of the network sequencer
(:class:`spikepack.hw.sequencer.NetworkSequencer`): when an inference starts, which layer runs,
its descriptor offered to the layer engine, where its output beats go, when it ends.

States (one-hot flip-flops, so every decision is one level from a register): IDLE = ``~busy``,
HOLD, FIRST, FETCH, START (``eng_start.valid``), RUN (of a hidden layer: ``runh``, of the
readout: ``runr``), DRAIN.

* An inference starts when the input writer holds a complete image (``image_ready``), a network
  is committed (``layer_count > 0``) and ``run`` is high or a ``start`` is armed. The decision
  (``go``) is registered, so it comes a cycle after its inputs change; a ``start`` pulse while
  idle and ready starts at once (and is consumed by it); a ``start`` while busy or armed is
  ignored (``start_ignored``), otherwise it arms.
* ``busy`` (the sequencer's ``hold`` to :class:`NetworkMemories`) is high while an inference
  runs, so a commit waits for its end; its first cycle (HOLD) only raises ``busy``, because a
  commit decided in the cycle before switches ``layer_count`` and the descriptors only at its
  end.
* FIRST reads ``layer_count`` and the descriptor of layer 0, FETCH that of each later layer
  (``descriptor`` read port, read latency 2: ``descriptor.en`` in FIRST / FETCH, the word 2
  cycles later); START offers it on ``eng_start`` straight from the memory's read register
  (which holds while its read enable is low), ``readout`` set on the last layer (the
  descriptor's readout flag is not used for routing).
* RUN lasts until the engine's beat with ``last`` (``beat_valid``, ``beat_last``; a readout
  beat counts when taken, ``beat_ready``); ``runh`` / ``runr`` say where the beats go (the
  hidden writer / the output slice). A hidden layer's last beat goes on to FETCH of the next
  layer (``layer`` + 1); the readout's last beat to DRAIN, which ends (``done``) when the output
  slice reports its last beat leaving (``drained``). RUNR lasts through DRAIN.
* ``first`` (layer 0 runs: the engine reads the input buffer), ``hid_bank`` (the hidden buffer a
  layer l >= 1 reads: (l - 1) mod 2), ``layer`` (its parity selects the hidden buffer written),
  ``conv`` (the running layer is a conv layer, taken at the handshake) are registers;
  ``release`` (the input buffer of layer 0 is free) is a one-cycle strobe the cycle after layer
  0's last beat. ``cycles_last``: the busy cycles of the last inference, HOLD to ``done``
  inclusive, updated the cycle after ``done``.

Latency: an inference takes ``1 + sum over layers l of (3 + W_l + L_l) + D`` cycles, HOLD to
``done`` inclusive: 1 HOLD cycle; per layer 2 cycles to read the descriptor, 1 to offer it, W_l
cycles the engine makes the offer wait, L_l from the handshake to the layer's last beat (taken);
D >= 1 from the readout's last beat to ``drained`` (1 when the output slice's sink takes the
beat at once). Throughput: one inference per that plus 1 cycle (IDLE between two inferences, in
which a commit can be applied), when ``go`` is already high.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.layer_engine import descriptor_layout
from spikepack.hw.memories import ReadPortSignature

__all__ = ["LayerFSM"]


class LayerFSM(wiring.Component):
    """The network sequencer's layer sequencing (see the module docstring).

    Members:

    * ``layer_count`` In, ``descriptor`` In(:class:`~spikepack.hw.memories.ReadPortSignature`):
      from :class:`NetworkMemories`; ``eng_start`` Out(stream of
      ``layer_engine.descriptor_layout``): to the engine.
    * ``image_ready`` In(1), ``release`` Out(1) (strobe): the input writer's image hand-over.
    * ``beat_valid``, ``beat_ready``, ``beat_last`` In(1): the engine's ``o`` handshake and
      ``last``; ``drained`` In(1): the output slice's last held beat leaves this cycle.
    * ``run`` In(1), ``start`` In(1) (strobe): control.
    * ``busy``, ``armed``, ``first``, ``hid_bank``, ``runh``, ``runr``, ``conv`` Out(1),
      ``layer`` Out(8), ``cycles_last`` Out(32): registers; ``done``, ``layer_done``,
      ``start_ignored`` Out(1): strobes.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        spec = config.memories["descriptor"]
        super().__init__({
            "layer_count": In(config.layer_count_bits),
            "descriptor": In(ReadPortSignature(spec.addr_bits, spec.word_bits)),
            "eng_start": Out(stream.Signature(descriptor_layout(config))),
            "image_ready": In(1), "release": Out(1),
            "beat_valid": In(1), "beat_ready": In(1), "beat_last": In(1), "drained": In(1),
            "run": In(1), "start": In(1),
            "busy": Out(1), "armed": Out(1), "first": Out(1), "hid_bank": Out(1),
            "runh": Out(1), "runr": Out(1), "conv": Out(1), "layer": Out(8),
            "cycles_last": Out(32),
            "done": Out(1), "layer_done": Out(1), "start_ignored": Out(1),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        layer, busy, armed, first = self.layer, self.busy, self.armed, self.first
        rem = Signal(c.layer_count_bits)    # layers of this inference after this one
        last_layer = Signal()               # rem == 0
        dren = Signal()                     # descriptor read (FIRST, FETCH)
        desc_wait = Signal()                # the descriptor read's second cycle
        svalid = self.eng_start.valid       # START
        s_hold, s_first, s_fetch, s_drain = (
            Signal(name=f"s_{n}") for n in ("hold", "first", "fetch", "drain"))
        s_runh, s_runr = self.runh, self.runr
        m.d.comb += [self.descriptor.addr.eq(layer), self.descriptor.en.eq(dren)]
        m.d.sync += dren.eq(0)
        # cycles: busy cycles before this one (0 in the first); cycles_last is taken in the cycle
        # after `done`, when cycles counts the busy cycles up to and including `done`
        cycles = Signal(32)
        done_q = Signal()
        m.d.sync += done_q.eq(self.done)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        with m.Else():
            m.d.sync += cycles.eq(0)
        with m.If(done_q):
            m.d.sync += self.cycles_last.eq(cycles)

        # go, registered: its inputs only change in ways a one-cycle-late start tolerates (an
        # image completes, RUN or START is written, a commit lands while idle; FIRST rechecks the
        # layer count), except the release of an input buffer, which it looks ahead to
        go = Signal()
        ready = Signal()                    # an image and a network are there (go without RUN)
        ready_c = self.image_ready & (self.layer_count != 0)
        m.d.sync += [ready.eq(ready_c), go.eq(ready_c & (self.run | armed))]
        # a START pulse starts an idle, ready sequencer at once (and is consumed by it)
        start_now = Signal()
        m.d.comb += start_now.eq(self.start & ready & ~go & ~armed)

        # end of a layer: its last beat; only readout beats can wait (the output slice)
        end_h, end_r = Signal(), Signal()
        m.d.comb += [end_h.eq(s_runh & self.beat_valid & self.beat_last),
                     end_r.eq(s_runr & ~s_drain & self.beat_valid & self.beat_ready
                              & self.beat_last)]
        with m.If(~busy):
            m.d.sync += [layer.eq(0), first.eq(1), self.hid_bank.eq(1)]
            with m.If(go | start_now):
                m.d.sync += [armed.eq(0), busy.eq(1), s_hold.eq(1)]
        with m.If(s_hold):
            # busy is high from here on: a commit decided in the IDLE cycle is applied now, so
            # the layer count and the descriptors are read from the next cycle on
            m.d.sync += [s_hold.eq(0), s_first.eq(1), dren.eq(1)]
        with m.If(s_first):
            m.d.sync += [s_first.eq(0), rem.eq(self.layer_count - 1),
                         last_layer.eq(self.layer_count == 1)]
            with m.If(self.layer_count == 0):           # cannot happen with the loader; be safe
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += desc_wait.eq(1)
        # last_layer follows rem in FETCH, the cycle after the layer's end (START, which alone
        # reads it, comes two cycles later): set at the end itself, its enable waited for the
        # engine's last beat (critical at nextpnr seeds 3, 4 and 8 of the dense top)
        with m.If(s_fetch):
            m.d.sync += [s_fetch.eq(0), desc_wait.eq(1), last_layer.eq(rem == 0)]
        with m.If(desc_wait):               # the descriptor memory's second read cycle
            m.d.sync += desc_wait.eq(0)
        # START: entered after the descriptor's second read cycle, left at the handshake. One
        # mux of three registers, not a set and a clear: the clear became a synchronous reset
        # fed through the engine's handshake gate, two LUT levels between the engine and the
        # sequencer (the top's critical path at nextpnr seeds 3 and 5)
        m.d.sync += svalid.eq(Mux(svalid, ~self.eng_start.ready, desc_wait))
        with m.If(svalid & self.eng_start.ready):
            m.d.sync += [s_runh.eq(~last_layer), s_runr.eq(last_layer)]
        m.d.comb += self.layer_done.eq(end_h | end_r)
        m.d.sync += self.release.eq(first & (end_h | end_r))
        with m.If(end_h):
            m.d.sync += [s_runh.eq(0), layer.eq(layer + 1), first.eq(0),
                         self.hid_bank.eq(layer[0]), rem.eq(rem - 1),
                         dren.eq(1), s_fetch.eq(1)]
        # RUNR lasts through DRAIN (the engine sends nothing after its last beat), so that
        # it ends on `done` alone
        with m.If(end_r):
            m.d.sync += s_drain.eq(1)
        with m.If(s_drain & self.drained):
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

        # descriptor -> engine, straight from the descriptor memory's read register: every
        # member of the engine's descriptor but the readout flag, generically (conv
        # configurations add the conv fields); the last committed layer is the readout
        word, p = self.descriptor.data, self.eng_start.payload
        for name in descriptor_layout(c).members:
            if name != "readout":
                offset, width = DESCRIPTOR_FIELDS[name]
                m.d.comb += getattr(p, name).eq(word[offset:offset + width])
        m.d.comb += p.readout.eq(last_layer)
        # a conv layer's beats max-pool; taken at the handshake, when the previous layer's beats
        # have left the hidden writer's first stage
        if c.conv:
            with m.If(svalid & self.eng_start.ready):
                m.d.sync += self.conv.eq(p.conv)
        return m
