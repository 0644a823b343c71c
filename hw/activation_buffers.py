"""The activation buffers of the network sequencer and the layer engine's reads of them.

Two memories (``amaranth.lib.memory``, block RAM) of entries of R spike words (entry e holds the
spike words of inputs e*R .. e*R+R-1, input e*R+i at bits i*T .. i*T+T-1, as the engine's
``act`` port reads), each of two buffers of ``depth`` entries (the bank bit on top of the
address):

* the **input buffers**, written through ``in_wr`` (the input writer, bank bit included);
* the **hidden buffers** (ping-pong), written through ``hid_wr`` (the hidden writer, parity
  bit included).

The engine's ``act`` read goes to both memories, the input buffer ``in_bank`` and the hidden
buffer ``hid_bank``; ``first`` (layer 0 runs) picks which answer it gets. Each memory's read
data is registered right behind it (the block RAM's output register; see
:mod:`spikepack.hw.memories`), and the pick is the only logic after those registers.

Latency: a read in cycle t (``act.en`` high) is on ``act.data`` in cycle t + 2
(``READ_LATENCY``) and holds while ``act.en`` is low (and ``first`` does not change); it sees the
writes of the edges up to the one ending t - 1 (no read-during-write bypass). Throughput: one read
and one write per memory a cycle. ``in_bank``, ``hid_bank`` are sampled with ``act.en``;
``first`` is applied to the registered data.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikepack.hw.memories import ReadPortSignature

__all__ = ["ActivationBuffers"]


class ActivationBuffers(wiring.Component):
    """The input and hidden activation buffers (see the module docstring).

    Members: ``in_wr``, ``hid_wr`` Out(``memory.WritePort.Signature``, addr = the bank bit on
    top of the entry address, R*T-bit data): as the memory sees them (a writer's ``mem`` is
    their flip); ``act`` Out(:class:`~spikepack.hw.memories.ReadPortSignature`, R*T-bit data,
    read latency 2): the engine's reads; ``in_bank``, ``hid_bank``, ``first`` In(1): the buffers
    read.
    """

    def __init__(self, *, rows: int, timesteps: int, depth: int):
        for name, value in (("rows", rows), ("timesteps", timesteps), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self._rows, self._timesteps, self._depth = rows, timesteps, depth
        width = rows * timesteps
        wr = memory.WritePort.Signature(addr_width=self.addr_bits + 1, shape=unsigned(width))
        super().__init__({
            "in_wr": Out(wr), "hid_wr": Out(wr),
            "act": Out(ReadPortSignature(self.addr_bits, width)),
            "in_bank": In(1), "hid_bank": In(1), "first": In(1),
        })

    @classmethod
    def from_config(cls, config) -> "ActivationBuffers":
        return cls(rows=config.rows, timesteps=config.timesteps, depth=config.activation_depth)

    @property
    def addr_bits(self) -> int:
        """Bits of an entry address within one buffer."""
        return max(1, (self._depth - 1).bit_length())

    def elaborate(self, platform):
        m = Module()
        width, depth = self._rows * self._timesteps, 2 << self.addr_bits
        # no_rw_check: reads and writes use different halves (the full flags and the layer
        # parity keep them apart), so the synthesizer needs no collision logic
        # ram_style block: a LUT-RAM's asynchronous read would sit between the engine's address
        # register and the read register; a block RAM registers the address itself
        attrs = {"no_rw_check": 1, "ram_style": "block"}
        m.submodules.in_mem = in_mem = memory.Memory(shape=unsigned(width), depth=depth,
                                                     init=[], attrs=attrs)
        m.submodules.hid_mem = hid_mem = memory.Memory(shape=unsigned(width), depth=depth,
                                                       init=[], attrs=attrs)
        wiring.connect(m, wiring.flipped(self.in_wr), in_mem.write_port())
        wiring.connect(m, wiring.flipped(self.hid_wr), hid_mem.write_port())
        in_rd = in_mem.read_port(domain="sync")
        hid_rd = hid_mem.read_port(domain="sync")
        m.d.comb += [
            in_rd.addr.eq(Cat(self.act.addr, self.in_bank)),
            hid_rd.addr.eq(Cat(self.act.addr, self.hid_bank)),
            in_rd.en.eq(self.act.en),
            hid_rd.en.eq(self.act.en),
        ]
        # each block RAM's read data is registered right behind it (its output register), so
        # the port's latency is READ_LATENCY = 2, as the network memories'
        in_q = Signal(width, reset_less=True)
        hid_q = Signal(width, reset_less=True)
        m.d.sync += [in_q.eq(in_rd.data), hid_q.eq(hid_rd.data)]
        m.d.comb += self.act.data.eq(Mux(self.first, in_q, hid_q))
        return m
