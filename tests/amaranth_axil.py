"""AXI drivers for the Amaranth simulator: an AXI4-Lite master, shared by the tests of every block
with an AXI4-Lite slave (``test_axil.py``, ``test_register_block.py``, ``test_top.py``), and an
AXI4-Stream frame sender for the tests that drive the whole top (``test_top.py``,
``test_loader_ignored.py``).

The master is also a bus of the host protocol (``read32``, ``write32``), so the tests read
registers by name through :class:`spikepack.protocol.Registers`, the access layer of the cocotb
benches and the driver (there over :class:`spikepack.sim.benches.host.CocotbBus`)."""

from __future__ import annotations

import random

OKAY, SLVERR = 0, 2


class AxilMaster:
    """Drives ``<prefix>awaddr`` ... of ``dut``: a component with flat ports (the top, prefix
    ``s_axil_``) or an AXI4-Lite interface (``prefix=""``); ``order`` chooses how AW and W
    arrive."""

    def __init__(self, ctx, dut, prefix="s_axil_", rng=None):
        self.ctx, self.dut, self.p = ctx, dut, prefix
        self.rng = rng or random.Random(0)

    def sig(self, name):
        return getattr(self.dut, self.p + name)

    async def _handshake(self, valid, ready, max_cycles=50):
        for _ in range(max_cycles):
            if self.ctx.get(self.sig(ready)):
                await self.ctx.tick()
                self.ctx.set(self.sig(valid), 0)
                return
            await self.ctx.tick()
        raise AssertionError(f"{ready} never rose")

    async def write(self, addr, data, strb=0xF, order="together"):
        ctx, s = self.ctx, self.sig
        ctx.set(s("bready"), 0)
        if order in ("together", "aw_first"):
            ctx.set(s("awaddr"), addr)
            ctx.set(s("awvalid"), 1)
        if order in ("together", "w_first"):
            ctx.set(s("wdata"), data)
            ctx.set(s("wstrb"), strb)
            ctx.set(s("wvalid"), 1)
        if order == "together":
            aw_done = w_done = False
            for _ in range(50):
                aw_r, w_r = ctx.get(s("awready")), ctx.get(s("wready"))
                await ctx.tick()
                if aw_r and not aw_done:
                    ctx.set(s("awvalid"), 0)
                    aw_done = True
                if w_r and not w_done:
                    ctx.set(s("wvalid"), 0)
                    w_done = True
                if aw_done and w_done:
                    break
            assert aw_done and w_done
        elif order == "aw_first":
            await self._handshake("awvalid", "awready")
            for _ in range(self.rng.randrange(4)):
                await ctx.tick()
            ctx.set(s("wdata"), data)
            ctx.set(s("wstrb"), strb)
            ctx.set(s("wvalid"), 1)
            await self._handshake("wvalid", "wready")
        else:
            await self._handshake("wvalid", "wready")
            for _ in range(self.rng.randrange(4)):
                await ctx.tick()
            ctx.set(s("awaddr"), addr)
            ctx.set(s("awvalid"), 1)
            await self._handshake("awvalid", "awready")
        for _ in range(self.rng.randrange(3)):        # the master is slow to take B
            await ctx.tick()
        ctx.set(s("bready"), 1)
        for _ in range(50):
            if ctx.get(s("bvalid")):
                resp = ctx.get(s("bresp"))
                await ctx.tick()
                ctx.set(s("bready"), 0)
                return resp
            await ctx.tick()
        raise AssertionError("bvalid never rose")

    async def read32(self, addr):
        """A read that must answer OKAY: its data."""
        data, resp = await self.read(addr)
        assert resp == OKAY, f"read of {addr:#x} answered {resp}, not OKAY"
        return data

    async def write32(self, addr, value):
        """A write of all four bytes that must answer OKAY."""
        resp = await self.write(addr, value)
        assert resp == OKAY, f"write of {addr:#x} answered {resp}, not OKAY"

    async def read(self, addr):
        ctx, s = self.ctx, self.sig
        ctx.set(s("araddr"), addr)
        ctx.set(s("arvalid"), 1)
        ctx.set(s("rready"), 0)
        await self._handshake("arvalid", "arready")
        for _ in range(self.rng.randrange(3)):
            await ctx.tick()
        ctx.set(s("rready"), 1)
        for _ in range(50):
            if ctx.get(s("rvalid")):
                data, resp = ctx.get(s("rdata")), ctx.get(s("rresp"))
                await ctx.tick()
                ctx.set(s("rready"), 0)
                return data, resp
            await ctx.tick()
        raise AssertionError("rvalid never rose")


async def stream_send(ctx, dut, prefix, beats, rng, gap=0.3):
    """Send ``beats`` as one AXI4-Stream frame (TLAST on the last) with random valid gaps."""
    data, valid, ready, last = (getattr(dut, f"{prefix}_{n}") for n in ("tdata", "tvalid",
                                                                            "tready", "tlast"))
    for i, word in enumerate(beats):
        while rng.random() < gap:
            ctx.set(valid, 0)
            await ctx.tick()
        ctx.set(data, word)
        ctx.set(last, i == len(beats) - 1)
        ctx.set(valid, 1)
        for _ in range(10_000):
            accepted = ctx.get(ready)
            await ctx.tick()
            if accepted:
                break
        else:
            raise AssertionError(f"{prefix}: beat {i} never accepted")
    ctx.set(valid, 0)
