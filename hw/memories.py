"""The loadable network memories: descriptors, weights, biases and thresholds, double-banked.

Each memory of :attr:`HardwareConfig.memories` is one ``amaranth.lib.memory.Memory`` of
``2 * 2**addr_bits`` words (bank = top address bit) with one write port of 32-bit granularity, for the
loader, and one synchronous read port, for the layer engine. The engine always reads the
*active* bank; the loader always writes the *shadow* bank. A ``commit`` strobe swaps them and
latches the committed layer count, so a network becomes visible all at once and only when the
loader says so (after its CRC passed). A commit that arrives while ``hold`` is high (an
inference is running) waits until ``hold`` falls.

``active_bank`` and ``layer_count`` are reset-less: a reset in the middle of a load, or a soft
reset, leaves the committed network active. They power up as bank 0 with no network.

Ports (``<name>`` is descriptor, weight, bias or threshold):

* ``<name>_raddr`` In, ``<name>_ren`` In, ``<name>_rdata`` Out: read port, one cycle latency;
  the address is bank-local (the active bank is added here).
* ``wr_mem`` In(2) (:data:`MEMORY_INDEX`), ``wr_addr`` In, ``wr_lane`` In, ``wr_data`` In(32),
  ``wr_en`` In(1): write one 32-bit lane of one word of the shadow bank.
* ``commit`` In(1), ``commit_layers`` In: make the shadow bank active with that many layers.
* ``hold`` In(1); ``active_bank`` Out(1), ``layer_count`` Out, ``commit_pending`` Out(1).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig

__all__ = ["MEMORY_NAMES", "MEMORY_INDEX", "NetworkMemories"]

MEMORY_NAMES = ("descriptor", "weight", "bias", "threshold")
MEMORY_INDEX = {name: index for index, name in enumerate(MEMORY_NAMES)}


class NetworkMemories(wiring.Component):
    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        specs = config.memories
        members = {}
        for name in MEMORY_NAMES:
            spec = specs[name]
            members[f"{name}_raddr"] = In(spec.addr_bits)
            members[f"{name}_ren"] = In(1)
            members[f"{name}_rdata"] = Out(spec.word_bits)
        members.update({
            "wr_mem": In(2),
            "wr_addr": In(self._config.write_addr_bits),
            "wr_lane": In(self._config.lane_bits),
            "wr_data": In(WORD_BITS),
            "wr_en": In(1),
            "commit": In(1),
            "commit_layers": In(self._config.layer_count_bits),
            "hold": In(1),
            "active_bank": Out(1),
            "layer_count": Out(self._config.layer_count_bits),
            "commit_pending": Out(1),
        })
        super().__init__(members)

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        specs = self._config.memories

        active = Signal(1, reset_less=True)
        layers = Signal(self._config.layer_count_bits, reset_less=True)
        # A pending commit survives until it can be applied; it is ordinary state (a reset
        # drops it, which is what a reset mid-commit should do: the old network stays).
        pending = Signal()
        pending_layers = Signal(self._config.layer_count_bits)
        m.d.comb += [self.active_bank.eq(active), self.layer_count.eq(layers),
                     self.commit_pending.eq(pending)]

        with m.If(self.commit):
            m.d.sync += [pending.eq(1), pending_layers.eq(self.commit_layers)]
        with m.If((pending | self.commit) & ~self.hold):
            m.d.sync += [active.eq(~active), pending.eq(0),
                         layers.eq(Mux(self.commit, self.commit_layers, pending_layers))]

        for name in MEMORY_NAMES:
            spec = specs[name]
            # 2**addr_bits words a bank, so the bank bit can sit on top of the address; the loader
            # bounds-checks against spec.depth.
            mem = memory.Memory(shape=unsigned(spec.word_bits), depth=2 << spec.addr_bits, init=[])
            m.submodules[f"{name}_mem"] = mem
            rd = mem.read_port(domain="sync")
            wr = mem.write_port(granularity=WORD_BITS)
            m.d.comb += [
                rd.addr.eq(_bank_addr(active, getattr(self, f"{name}_raddr"), spec.addr_bits)),
                rd.en.eq(getattr(self, f"{name}_ren")),
                getattr(self, f"{name}_rdata").eq(rd.data),
                wr.addr.eq(_bank_addr(~active, self.wr_addr[:spec.addr_bits], spec.addr_bits)),
                wr.data.eq(self.wr_data.replicate(spec.lanes)),
            ]
            selected = self.wr_en & (self.wr_mem == MEMORY_INDEX[name])
            for lane in range(spec.lanes):
                m.d.comb += wr.en[lane].eq(selected & (self.wr_lane == lane))
        return m


def _bank_addr(bank, addr, addr_bits):
    return Cat(addr[:addr_bits], bank)
