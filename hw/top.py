"""The SpikePack accelerator top level: loader + network memories + layer engine + network
sequencer + AXI4-Lite registers, with flat AXI ports.

Module ``spikepack_top`` (:class:`SpikePackTop`). Clock ``clk``; reset ``rst``, active-high and
synchronous (Amaranth's ``sync`` domain reset). Ports (the names let Vivado infer the
interfaces and cocotbext-axi bind by prefix):

* ``s_axil_*``: AXI4-Lite slave, 32-bit data, ``ADDR_BITS`` (8) byte address bits; the register
  map is :data:`spikepack.hw.registers.REGISTERS` (``docs/registers.md``).
* ``s_axis_load_tdata[32]``, ``_tvalid``, ``_tready``, ``_tlast``: weight bitstreams, to the
  :class:`~spikepack.hw.loader.BitstreamLoader` (``docs/bitstream.md``).
* ``s_axis_in_tdata[32]``, ``_tvalid``, ``_tready``, ``_tlast``: input images, K = 32 // T spike
  words a beat, input i in beat i // K at bits (i % K)*T .. +T-1, zeros beyond N0, TLAST on the
  image's last beat (``ceil(N0 / K)`` beats, N0 = fan-in of layer 0 of the committed network).
* ``m_axis_out_tdata[OUT_BITS]``, ``_tvalid``, ``_tready``, ``_tlast``: one readout potential a
  beat in index order, sign-extended to ``OUT_BITS = 32 * ceil(widths.potential / 32)``, TLAST on
  the last output of each inference.

``rst`` resets everything except the committed network (NetworkMemories keeps its active bank
and layer count). CONTROL.SOFT_RESET resets only the sequencer and the layer engine, one
cycle after the CONTROL write: they run in a clock domain ``core`` on the same clock, whose
reset is one register (rst or the soft reset, a cycle late; so they also leave ``rst`` a cycle
after the rest). The committed network, the loader, the registers and the counters are kept.

Latency and throughput: see :class:`~spikepack.hw.sequencer.NetworkSequencer` (per inference,
the engine time of every layer plus 3 cycles a layer and 2 an inference) and
:class:`~spikepack.hw.loader.BitstreamLoader` (one bitstream word a cycle).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.axil import axil_slave_members
from spikepack.hw.layer_engine import LayerEngine
from spikepack.hw.loader import BitstreamLoader
from spikepack.hw.memories import NetworkMemories
from spikepack.hw.register_block import RegisterBlock
from spikepack.hw.registers import ADDR_BITS
from spikepack.hw.sequencer import NetworkSequencer

from spikepack.hw.verilog import TOP_NAME

__all__ = ["SpikePackTop", "TOP_NAME"]


class SpikePackTop(wiring.Component):
    """The accelerator (see the module docstring for ports, reset and timing)."""

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({
            **axil_slave_members(ADDR_BITS, "s_axil_"),
            "s_axis_load_tdata": In(32), "s_axis_load_tvalid": In(1),
            "s_axis_load_tready": Out(1), "s_axis_load_tlast": In(1),
            "s_axis_in_tdata": In(32), "s_axis_in_tvalid": In(1),
            "s_axis_in_tready": Out(1), "s_axis_in_tlast": In(1),
            "m_axis_out_tdata": Out(self.out_bits), "m_axis_out_tvalid": Out(1),
            "m_axis_out_tready": In(1), "m_axis_out_tlast": Out(1),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def out_bits(self) -> int:
        return self._config.out_bits

    @property
    def addr_bits(self) -> int:
        return ADDR_BITS

    def elaborate(self, platform):
        m = Module()
        c = self._config
        loader = BitstreamLoader(config=c)
        mems = NetworkMemories(config=c)
        engine = LayerEngine(config=c)
        seq = NetworkSequencer(config=c)
        regs = RegisterBlock(config=c)
        soft_reset = Signal()
        # The engine and the sequencer run in domain "core": the same clock, and as reset ONE
        # flip-flop, core_reset = rst | soft_reset registered (high through rst and one cycle
        # after it), so that nothing but a wire sits between a flip-flop and the thousands of
        # reset pins it reaches (an OR of rst and the soft reset there was a critical path)
        core_reset = Signal(init=1)
        m.d.sync += core_reset.eq(soft_reset)
        m.domains.core = core = ClockDomain("core", local=True)
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(core_reset)]
        m.submodules.loader = loader
        m.submodules.memories = mems
        m.submodules.engine = DomainRenamer({"sync": "core"})(engine)
        m.submodules.sequencer = DomainRenamer({"sync": "core"})(seq)
        m.submodules.registers = regs

        # AXI4-Lite -> registers: the flat s_axil_* ports (for Vivado and cocotbext-axi) are
        # the top's only flat interface
        for port, member in regs.bus.signature.members.items():
            ours, theirs = getattr(self, f"s_axil_{port}"), getattr(regs.bus, port)
            m.d.comb += theirs.eq(ours) if member.flow == wiring.In else ours.eq(theirs)

        # load stream -> loader -> memories
        m.d.comb += [
            loader.s_axis_tdata.eq(self.s_axis_load_tdata),
            loader.s_axis_tvalid.eq(self.s_axis_load_tvalid),
            loader.s_axis_tlast.eq(self.s_axis_load_tlast),
            self.s_axis_load_tready.eq(loader.s_axis_tready),
            mems.hold.eq(seq.hold),
        ]
        wiring.connect(m, loader.write, mems.write)

        # memories -> engine (weights, biases, thresholds) and sequencer (descriptors)
        for name in ("weight", "bias", "threshold"):
            wiring.connect(m, getattr(mems, name), getattr(engine, name))
        wiring.connect(m, mems.descriptor, seq.descriptor)
        m.d.comb += seq.layer_count.eq(mems.layer_count)

        # sequencer <-> engine: the descriptor and output streams, the activation read port
        wiring.connect(m, seq.eng_start, engine.start)
        wiring.connect(m, engine.o, seq.eng_o)
        wiring.connect(m, seq.act, engine.act)
        m.d.comb += seq.eng_busy.eq(engine.busy)

        # streams
        m.d.comb += [
            seq.in_tdata.eq(self.s_axis_in_tdata),
            seq.in_tvalid.eq(self.s_axis_in_tvalid),
            seq.in_tlast.eq(self.s_axis_in_tlast),
            self.s_axis_in_tready.eq(seq.in_tready),
            self.m_axis_out_tdata.eq(seq.out_tdata),
            self.m_axis_out_tvalid.eq(seq.out_tvalid),
            self.m_axis_out_tlast.eq(seq.out_tlast),
            seq.out_tready.eq(self.m_axis_out_tready),
        ]

        # registers
        m.d.comb += [
            soft_reset.eq(regs.soft_reset),
            seq.run.eq(regs.run),
            seq.start.eq(regs.start),
            # STATUS
            regs.busy.eq(seq.busy),
            regs.loaded.eq(mems.layer_count != 0),
            regs.loader_busy.eq(loader.busy),
            regs.commit_pending.eq(mems.write.commit_pending),
            regs.start_armed.eq(seq.armed),
            regs.load_error.eq(loader.error != 0),
            regs.images_buffered.eq(seq.images),
            regs.layer.eq(seq.layer),
            regs.layers.eq(mems.layer_count),
            # EVENTS
            regs.start_ignored_set.eq(seq.start_ignored),
            regs.input_overflow_set.eq(seq.overflow),
            # loader
            regs.load_error_code.eq(loader.error),
            regs.load_good.eq(loader.good_loads),
            regs.load_bad.eq(loader.bad_loads),
            regs.load_words.eq(loader.words_received),
            # cycles and activity
            regs.cycles_busy_inc.eq(seq.busy),
            regs.cycles_last.eq(seq.cycles_last),
            regs.inferences_inc.eq(seq.done),
            regs.layers_run_inc.eq(seq.layer_done),
            regs.in_beats_inc.eq(seq.in_beat),
            regs.out_beats_inc.eq(seq.out_beat),
            regs.engine_busy_inc.eq(engine.busy),
            regs.in_stalls_inc.eq(seq.in_stall),
            regs.out_stalls_inc.eq(seq.out_stall),
        ]
        return m
