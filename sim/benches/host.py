"""The host side of ``spikepack_top``'s AXI ports under cocotb: :class:`CocotbBus`, the bus of
the host driver's protocol (:mod:`spikepack.protocol`) over cocotbext-axi's AxiLiteMaster
(``s_axil``), AxiStreamSource (``s_axis_load``, ``s_axis_in``) and AxiStreamSink
(``m_axis_out``). With :class:`spikepack.protocol.Registers` it is the benches' one register
access layer (by name, from the manifest's or the table's register map).

Nothing here imports cocotb at import time (``spikepack.driver`` re-exports the bus).
"""

from __future__ import annotations

from spikepack.protocol import DriverError

__all__ = ["CocotbBus"]


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
