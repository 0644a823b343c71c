"""The loader with its memories: a :class:`~spikepack.hw.loader.BitstreamLoader` connected to a
:class:`~spikepack.hw.memories.NetworkMemories`, as the accelerator top connects them, with the
memories' read ports brought out: the unit the loader benches (``sim/benches/loader.py``,
``tests/test_loader.py``) load through and read the active bank back from."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.loader import BitstreamLoader
from spikepack.hw.memories import MEMORY_NAMES, NetworkMemories

__all__ = ["LoaderWithMemories"]


class LoaderWithMemories(wiring.Component):
    """A :class:`BitstreamLoader` wired to a :class:`NetworkMemories` (``wiring.connect`` of
    their ``write`` ports), with the memories' read ports, ``hold``, ``active_bank``,
    ``layer_count``, ``commit_pending`` and the loader's stream and status ports brought out
    (flat, so a cocotb bench binds them by name).

    Throughput and latency are the loader's (see :class:`BitstreamLoader`); reads have the
    memories' latency of ``memories.READ_LATENCY`` = 2 cycles."""

    def __init__(self, *, config: HardwareConfig):
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
            spec = config.memories[name]
            members.update({f"{name}_raddr": In(spec.addr_bits), f"{name}_ren": In(1),
                            f"{name}_rdata": Out(spec.word_bits)})
        for name in ("hold", "active_bank", "layer_count"):
            members[name] = self._memories.signature.members[name]
        members["commit_pending"] = Out(1)
        super().__init__(members)

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader = loader = self._loader
        m.submodules.memories = memories = self._memories
        wiring.connect(m, loader.write, memories.write)
        for name in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tlast"):
            m.d.comb += getattr(loader, name).eq(getattr(self, name))
        for name in ("s_axis_tready", "error", "good_loads", "bad_loads", "words_received",
                     "busy"):
            m.d.comb += getattr(self, name).eq(getattr(loader, name))
        for name in MEMORY_NAMES:
            port = getattr(memories, name)
            m.d.comb += [port.addr.eq(getattr(self, f"{name}_raddr")),
                         port.en.eq(getattr(self, f"{name}_ren")),
                         getattr(self, f"{name}_rdata").eq(port.data)]
        m.d.comb += [memories.hold.eq(self.hold), self.active_bank.eq(memories.active_bank),
                     self.layer_count.eq(memories.layer_count),
                     self.commit_pending.eq(memories.write.commit_pending)]
        return m
