"""The host side of ``spikepack_top``'s AXI ports under cocotb, shared by every whole-system
bench:

* :class:`CocotbBus`, the bus of the host driver's protocol (:mod:`spikepack.protocol`) over
  cocotbext-axi's AxiLiteMaster (``s_axil``), AxiStreamSource (``s_axis_load``, ``s_axis_in``)
  and AxiStreamSink (``m_axis_out``). With :class:`spikepack.protocol.Registers` it is the
  benches' one register access layer (by name, from the manifest's or the table's register map);
* :class:`AxiSystem`, the benches' one whole-system driver: the clock, the reset, the four AXI
  agents with seeded random pauses and backpressure, registers by name, images sent in the
  protocol's stream format and readout packets received. The inference bench (behind
  ``spikepack run --engine cocotb``) and the driver bench use it as it is; the system and
  regression benches through :class:`spikepack.sim.benches.system.System`, which adds the
  golden-model checks.

Nothing here imports cocotb at import time (``spikepack.driver`` re-exports the bus).
"""

from __future__ import annotations

import random

from spikepack.protocol import (DriverError, RegisterMap, Registers, pack_image, stream_words,
                                unpack_potentials)

__all__ = ["CocotbBus", "AxiSystem"]


class CocotbBus:
    """The RTL simulation (async): cocotbext-axi's AxiLiteMaster on ``s_axil``, AxiStreamSource
    on ``s_axis_load`` and ``s_axis_in``, AxiStreamSink on ``m_axis_out``. ``pause`` waits
    ``poll_cycles`` clock cycles; ``receive`` fails after ``timeout_cycles`` without a packet.
    The streams may be left out (``None``) by a bench that only reads and writes registers.

    ``read32``/``write32`` are the driver's accesses (data only); ``read(offset) -> (data,
    resp)`` and ``write(offset, value) -> resp`` also return the AXI response (0 OKAY, 2
    SLVERR), as the Amaranth tests' ``AxilMaster`` does."""

    def __init__(self, clk, *, axil, load=None, inp=None, out=None, poll_cycles: int = 16,
                 timeout_cycles: int = 1_000_000, clock_ns: float = 10):
        self.clk, self.axil = clk, axil
        self.sources = {"load": load, "in": inp}
        self.out = out
        self.poll_cycles, self.timeout_cycles, self.clock_ns = poll_cycles, timeout_cycles, clock_ns

    async def read32(self, offset: int) -> int:
        return await self.axil.read_dword(offset)

    async def write32(self, offset: int, value: int) -> None:
        await self.axil.write_dword(offset, value)

    async def read(self, offset: int) -> tuple[int, int]:
        resp = await self.axil.read(offset, 4)
        return int.from_bytes(resp.data, "little"), int(resp.resp)

    async def write(self, offset: int, value: int) -> int:
        resp = await self.axil.write(offset, int(value).to_bytes(4, "little"))
        return int(resp.resp)

    async def send(self, stream: str, data: bytes) -> None:
        from cocotbext.axi import AxiStreamFrame
        await self.sources[stream].send(AxiStreamFrame(data))

    async def receive(self, stream: str, max_bytes: int) -> bytes:
        from cocotb.triggers import SimTimeoutError, with_timeout
        if stream != "out":
            raise ValueError(f"only the 'out' stream can be received, not {stream!r}")
        try:
            frame = await with_timeout(self.out.recv(), self.timeout_cycles * self.clock_ns, "ns")
        except SimTimeoutError:
            raise DriverError(f"no output packet within {self.timeout_cycles} cycles") from None
        data = bytes(frame.tdata)
        if len(data) > max_bytes:
            raise DriverError(f"an output packet of {len(data)} bytes exceeds {max_bytes}")
        return data

    async def pause(self) -> None:
        from cocotb.triggers import ClockCycles
        await ClockCycles(self.clk, self.poll_cycles)


class AxiSystem:
    """``spikepack_top`` (``dut``) under cocotb with cocotbext-axi agents on its four AXI ports:
    ``axil`` (AxiLiteMaster), ``load`` and ``inp`` (AxiStreamSource), ``out`` (AxiStreamSink);
    ``bus`` (:class:`CocotbBus` over them) and ``regs`` (:class:`~spikepack.protocol.Registers`
    over ``bus`` by the names of ``register_map``).

    ``prng`` (a ``random.Random``) draws the stream pauses (:meth:`traffic`); ``quiet`` keeps the
    agents' per-transfer log lines out of the log. Nothing here checks results: that is the
    bench's job."""

    def __init__(self, dut, register_map: RegisterMap, *, prng: random.Random | None = None,
                 clock_ns: float = 10, quiet: bool = False, timeout_cycles: int = 1_000_000):
        from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink,
                                   AxiStreamSource)
        self.dut, self.clock_ns = dut, clock_ns
        self.prng = prng if prng is not None else random.Random(0)
        self.out_bits = len(dut.m_axis_out_tdata)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.load = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.clk, dut.rst)
        self.inp = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_in"), dut.clk, dut.rst)
        self.out = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.clk, dut.rst)
        if quiet:
            for agent in (self.axil.write_if, self.axil.read_if, self.load, self.inp, self.out):
                agent.log.setLevel("WARNING")
        self.bus = CocotbBus(dut.clk, axil=self.axil, load=self.load, inp=self.inp, out=self.out,
                             clock_ns=clock_ns, timeout_cycles=timeout_cycles)
        self.regs = Registers(self.bus, register_map)

    async def start(self, *, reset_cycles: int = 5, release_on_falling_edge: bool = False):
        """Start the clock and reset: ``rst`` high for ``reset_cycles`` cycles (released after
        a falling edge if asked), then two cycles."""
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import ClockCycles, FallingEdge
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, self.clock_ns, unit="ns").start())
        dut.rst.value = 1
        await ClockCycles(dut.clk, reset_cycles)
        if release_on_falling_edge:
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 2)

    def pauses(self, probability: float):
        """A pause generator for an agent: paused in a cycle with ``probability``."""
        while True:
            yield self.prng.random() < probability

    def traffic(self, pause_in=0.3, pause_out=0.3, pause_load=0.2, *,
                order=("in", "out", "load")):
        """Random pauses on the input and load sources and backpressure on the output sink,
        with these probabilities a cycle (0: none). The agents draw from one ``prng`` each
        cycle in the ``order`` their generators were started: a bench keeps its order so that
        its seeds replay the same pauses."""
        agents = {"in": (self.inp, pause_in), "out": (self.out, pause_out),
                  "load": (self.load, pause_load)}
        for agent, p in (agents[name] for name in order):
            agent.set_pause_generator(self.pauses(p) if p else None)
            if not p:
                agent.pause = False    # a stopped generator may leave the agent paused

    async def send_bitstream(self, data: bytes) -> None:
        """One packet on ``s_axis_load``, returning once it is sent."""
        from cocotbext.axi import AxiStreamFrame
        await self.load.send(AxiStreamFrame(bytes(data)))
        await self.load.wait()

    async def send_image(self, image, rows: int, timesteps: int) -> None:
        """One image (a vector of spike words, or a (C, H, W) map sent in storage order) as one
        ``s_axis_in`` packet (:func:`spikepack.protocol.pack_image`); returns once queued."""
        from cocotbext.axi import AxiStreamFrame
        await self.inp.send(AxiStreamFrame(pack_image(stream_words(image, rows), timesteps)))

    async def receive_potentials(self, timeout_cycles: int) -> list[int] | None:
        """The next ``m_axis_out`` packet's readout potentials, or None after ``timeout_cycles``
        cycles without one."""
        from cocotb.triggers import SimTimeoutError, with_timeout
        try:
            frame = await with_timeout(self.out.recv(), timeout_cycles * self.clock_ns, "ns")
        except SimTimeoutError:
            return None
        return unpack_potentials(bytes(frame.tdata), self.out_bits).tolist()
