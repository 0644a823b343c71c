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

Latency and throughput (the blocks' own formulas, which the top adds nothing to):

* inference: ``2 + sum over layers l of (3 + L_l)`` cycles from the first busy cycle to the
  acceptance of the last output beat (CYCLES_LAST), L_l the layer engine's time for layer l
  (:func:`spikepack.hw.layer_engine.expected_cycles`); one inference per
  ``3 + sum over layers l of (3 + L_l)`` cycles when images arrive that fast
  (:class:`~spikepack.hw.sequencer.NetworkSequencer`);
* input: an ``s_axis_in`` beat takes as many cycles as activation entries it touches (``K / R``
  when R divides K, else ``ceil(K / R)`` or one more; one a cycle at best), the sequencer's
  input writer;
* load: one ``s_axis_load`` word a cycle (:class:`~spikepack.hw.loader.BitstreamLoader`);
* registers: ``rvalid`` 3 cycles after the AR handshake, ``bvalid`` 2 after the later of the
  AW/W handshakes; one read every 4 cycles, one write every 2
  (:class:`~spikepack.hw.register_block.RegisterBlock`); a status input is seen by a read one
  cycle after it changes (registered on entry).
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
from spikepack.hw.register_block import RegisterBlock, StatusSignature
from spikepack.hw.registers import ADDR_BITS
from spikepack.hw.sequencer import NetworkSequencer

from spikepack.hw.verilog import TOP_NAME

__all__ = ["SpikePackTop", "TOP_NAME", "status_sources"]


def status_sources(loader, mems, engine, seq) -> dict:
    """The producer of every member of the register block's status interface
    (:class:`~spikepack.hw.register_block.StatusSignature`): ``{member: value}``. Raises
    ``ValueError`` when the register table and this list disagree."""
    sources = {
        # STATUS
        "busy": seq.busy, "loaded": mems.layer_count != 0, "loader_busy": loader.busy,
        "commit_pending": mems.write.commit_pending, "start_armed": seq.armed,
        "load_error": loader.error != 0, "images_buffered": seq.images, "layer": seq.layer,
        "layers": mems.layer_count,
        # EVENTS
        "start_ignored_set": seq.start_ignored, "input_overflow_set": seq.overflow,
        # loader
        "load_error_code": loader.error, "load_good": loader.good_loads,
        "load_bad": loader.bad_loads, "load_words": loader.words_received,
        # cycles and activity
        "cycles_busy_inc": seq.busy, "cycles_last": seq.cycles_last, "inferences_inc": seq.done,
        "layers_run_inc": seq.layer_done, "in_beats_inc": seq.in_beat,
        "out_beats_inc": seq.out_beat, "engine_busy_inc": engine.busy,
        "in_stalls_inc": seq.in_stall, "out_stalls_inc": seq.out_stall,
    }
    members = set(StatusSignature().members.keys())
    if set(sources) != members:
        raise ValueError(f"status inputs without a source: {sorted(members - set(sources))}; "
                         f"sources without a register field: {sorted(set(sources) - members)}")
    return sources


#: the AXI4-Stream members of the flat ports
_AXIS = ("tdata", "tvalid", "tready", "tlast")


def _pass_through(m, outer, outer_prefix, inner, inner_prefix, names):
    """Wire ``outer.<outer_prefix><name>`` to ``inner.<inner_prefix><name>`` for each name, the
    direction from the inner member's flow (``In``: into the block)."""
    for name in names:
        ours = getattr(outer, outer_prefix + name)
        theirs = getattr(inner, inner_prefix + name)
        flow = inner.signature.members[inner_prefix + name].flow
        m.d.comb += theirs.eq(ours) if flow == wiring.In else ours.eq(theirs)


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

        # the flat ports (names for Vivado and cocotbext-axi) to and from the blocks' members:
        # AXI4-Lite -> register block, load stream -> loader, streams <-> sequencer
        _pass_through(m, self, "s_axil_", regs.bus, "", regs.bus.signature.members)
        _pass_through(m, self, "s_axis_load_", loader, "s_axis_", _AXIS)
        _pass_through(m, self, "s_axis_in_", seq, "in_", _AXIS)
        _pass_through(m, self, "m_axis_out_", seq, "out_", _AXIS)

        # loader -> memories -> engine (weights, biases, thresholds) and sequencer (descriptors)
        wiring.connect(m, loader.write, mems.write)
        for name in ("weight", "bias", "threshold"):
            wiring.connect(m, getattr(mems, name), getattr(engine, name))
        wiring.connect(m, mems.descriptor, seq.descriptor)
        m.d.comb += [seq.layer_count.eq(mems.layer_count), mems.hold.eq(seq.hold)]

        # sequencer <-> engine: the descriptor and output streams, the activation read port
        wiring.connect(m, seq.eng_start, engine.start)
        wiring.connect(m, engine.o, seq.eng_o)
        wiring.connect(m, seq.act, engine.act)
        m.d.comb += seq.eng_busy.eq(engine.busy)

        # registers: control out, and the status interface (StatusSignature, from the register
        # table) in, each member from the block that produces it
        m.d.comb += [soft_reset.eq(regs.control.soft_reset), seq.run.eq(regs.control.run),
                     seq.start.eq(regs.control.start)]
        for name, source in status_sources(loader, mems, engine, seq).items():
            m.d.comb += getattr(regs.status, name).eq(source)
        return m
