"""The network sequencer: runs every layer of the committed network on the layer engine, keeping
activations on chip, and streams images in and readout potentials out. It wires five parts,
each a component with one job:

* the **input writer** (:mod:`spikepack.hw.input_writer`): images from ``s_axis_in`` into the
  two input buffers, filled alternately, so an image can arrive while the previous one is being
  computed and back-to-back inferences stream without draining. Input format: K = 32 // T spike
  words a beat, input i in beat i // K at bits (i % K)*T .. +T-1, TLAST on the last beat of an
  image; a whole entry written at a time, one beat a cycle when each beat fills at most one
  entry; rates, overflow and the buffers' hand-over in that module;
* the **activation buffers** (:mod:`spikepack.hw.activation_buffers`): the input buffers and two
  ping-pong **hidden buffers** (layer 0 reads its image's input buffer and writes hidden buffer
  0; layer l >= 1 reads hidden buffer (l-1) mod 2 and writes l mod 2), read by the engine's
  ``act`` port with latency 2;
* the **hidden writer** (:mod:`spikepack.hw.hidden_writer`): a hidden layer's output beats
  (engine ``o`` beats, spike words) into hidden buffer ``layer`` mod 2, one word a beat, a whole
  entry at a time, at the edge ending cycle t + 2 for a beat in cycle t; with ``config.conv`` a
  conv layer's beats are **max-pooled** on the way (the convolution contract,
  docs/architecture.md), written at the edge ending t + 4;
* the **output slice** (:class:`spikepack.hw.stream.SkidBuffer`): the last committed layer is
  the readout, its ``o`` beats go to ``m_axis_out`` (potential sign-extended to ``OUT_BITS``,
  TLAST on the last one) through this two-entry register slice: ``out_tvalid``/``out_tdata``/
  ``out_tlast`` come from registers, and the engine's ``o.ready`` is a function of registers
  only (never of ``out_tready``); latency 1, one beat a cycle. Only readout beats enter it, and
  it is empty again before an inference ends, so hidden beats never wait;
* the **layer sequencing** (:mod:`spikepack.hw.layer_fsm`): when an inference starts (an image,
  a committed network, ``run`` or an armed ``start``), ``hold`` to :class:`NetworkMemories`
  while it runs (a commit waits for its end), per layer the descriptor read and offered to the
  engine (the readout flag in the descriptor is not used for routing: the loader checks that it
  marks the last layer), the routing of its output beats, the release of the input buffer the
  cycle after layer 0 ends, and the end of the inference when the readout's last beat has left
  the output slice. At least one idle cycle separates two inferences (a commit can be applied
  there).

Latency per inference: ``2 + sum over layers l of (3 + L_l)`` cycles from the first busy cycle
to the acceptance of the last output beat, inclusive (``cycles_last``, updated the cycle after
``done``), where L_l is the engine's latency for layer l from its descriptor handshake to its
last output beat (including output stalls), when the engine takes the descriptor and the sink
the last beat at once: the layer sequencing's ``1 + sum(3 + W_l + L_l) + D`` with W_l = 0 and
D = 1 (the output slice's latency). Throughput: one inference per
``3 + sum over layers l of (3 + L_l)`` cycles (one idle cycle between inferences) when images
arrive at least that fast: the next image is received into the free input buffer while the
current inference runs. The formulas hold for conv layers as they are (L_l is then the engine's
conv latency) and with max pooling: the hidden writer takes every beat in its cycle. Its last
write (the edge ending cycle t + 4, t the layer's last beat) must come before the next layer's
first activation read: the next descriptor's handshake is at t + 3 at the earliest, so the
engine may read from 2 cycles after its handshake on (LayerEngine reads 4 cycles after it at
the earliest: its two setup cycles and the command register).
"""

from __future__ import annotations

from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.activation_buffers import ActivationBuffers
from spikepack.hw.hidden_writer import HiddenWriter
from spikepack.hw.input_writer import InputWriter
from spikepack.hw.layer_engine import descriptor_layout, output_layout
from spikepack.hw.layer_fsm import LayerFSM
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
        o = self.eng_o
        m.submodules.buffers = buffers = ActivationBuffers.from_config(c)
        m.submodules.input_writer = writer = InputWriter.from_config(c)
        m.submodules.hidden_writer = hidden = HiddenWriter.from_config(
            c, index_bits=len(o.payload.index))
        m.submodules.fsm = fsm = LayerFSM(config=c)
        m.submodules.out_slice = out_slice = SkidBuffer(data.StructLayout({
            "potential": signed(c.widths.potential), "last": 1}))

        # images from s_axis_in into the input buffers
        wiring.connect(m, writer.mem, buffers.in_wr)
        m.d.comb += [writer.i.valid.eq(self.in_tvalid), writer.i.payload.data.eq(self.in_tdata),
                     writer.i.payload.last.eq(self.in_tlast), self.in_tready.eq(writer.i.ready),
                     self.images.eq(writer.images), self.overflow.eq(writer.overflow),
                     self.in_beat.eq(writer.beat), self.in_stall.eq(writer.stall),
                     fsm.image_ready.eq(writer.image_ready), writer.release.eq(fsm.release)]

        # layer sequencing: descriptors from the network memories to the engine, control, status
        wiring.connect(m, wiring.flipped(self.descriptor), fsm.descriptor)
        wiring.connect(m, wiring.flipped(self.eng_start), fsm.eng_start)
        m.d.comb += [fsm.layer_count.eq(self.layer_count), fsm.run.eq(self.run),
                     fsm.start.eq(self.start), self.hold.eq(fsm.busy), self.busy.eq(fsm.busy),
                     self.armed.eq(fsm.armed), self.layer.eq(fsm.layer),
                     self.cycles_last.eq(fsm.cycles_last), self.done.eq(fsm.done),
                     self.layer_done.eq(fsm.layer_done), self.start_ignored.eq(fsm.start_ignored)]

        # the engine's beats: a hidden layer's to the hidden writer (never stalled), the
        # readout's to the output slice (they wait while its skid entry is taken)
        m.d.comb += [fsm.beat_valid.eq(o.valid), fsm.beat_ready.eq(o.ready),
                     fsm.beat_last.eq(o.payload.last), o.ready.eq(out_slice.i.ready)]
        wiring.connect(m, hidden.mem, buffers.hid_wr)
        m.d.comb += [hidden.valid.eq(fsm.runh & o.valid), hidden.parity.eq(fsm.layer[0]),
                     hidden.conv.eq(fsm.conv)]
        for name in ("index", "channel", "pool_first", "spikes"):
            m.d.comb += getattr(hidden.beat, name).eq(getattr(o.payload, name))
        m.d.comb += [
            out_slice.i.valid.eq(fsm.runr & o.valid),
            out_slice.i.payload.potential.eq(o.payload.potential),
            out_slice.i.payload.last.eq(o.payload.last),
            out_slice.o.ready.eq(self.out_tready),
            self.out_tvalid.eq(out_slice.o.valid),
            self.out_tdata.eq(out_slice.o.payload.potential),   # sign-extended to OUT_BITS
            self.out_tlast.eq(out_slice.o.payload.last),
            self.out_beat.eq(out_slice.o.valid & self.out_tready),
            self.out_stall.eq(out_slice.o.valid & ~self.out_tready),
            # the readout's last beat was in the output slice and the sink takes it now
            fsm.drained.eq(out_slice.o.valid & self.out_tready & out_slice.i.ready),
        ]

        # the engine's activation reads: the input buffer of this inference's image in layer 0,
        # the hidden buffer of the layer before in the others
        wiring.connect(m, wiring.flipped(self.act), buffers.act)
        m.d.comb += [buffers.in_bank.eq(writer.bank), buffers.hid_bank.eq(fsm.hid_bank),
                     buffers.first.eq(fsm.first)]
        return m
