# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the AXI4-Lite slave front end (``spikepack.hw.axil``) alone,
behind a toy decoder (four words at 0x00 .. 0x0C, SLVERR elsewhere, answering ``read_latency``
cycles late) and against a Python dictionary of the same words: random writes with byte strobes
in every channel order, reads, SLVERR, and the latencies of the docstring."""

from __future__ import annotations

import random

import pytest
from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from amaranth_axil import OKAY, SLVERR, AxilMaster
from spikepack.hw.axil import AXI4LiteSlave, RESP_OKAY, RESP_SLVERR


class ToyDecoder(Elaboratable):
    """The slave and four 32-bit words at byte addresses 0, 4, 8, 12, read ``latency`` cycles
    after ``rd_en``."""

    def __init__(self, latency):
        self.slave = AXI4LiteSlave(addr_bits=8, read_latency=latency)
        self.latency = latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = s = self.slave
        words = [Signal(32, name=f"word{i}") for i in range(4)]
        wsel = s.wr_addr[2:]
        m.d.comb += s.wr_err.eq(s.wr_addr[4:] != 0)
        with m.If(s.wr_en & ~s.wr_err):
            for i, w in enumerate(words):
                with m.If(wsel[:2] == i):
                    mask = Cat(*(s.wr_strb[b].replicate(8) for b in range(4)))
                    m.d.sync += w.eq((w & ~mask) | (s.wr_data & mask))
        rd = Signal(32)
        err = Signal()
        m.d.comb += [rd.eq(Cat(words).word_select(s.rd_addr[2:4], 32)), err.eq(s.rd_addr[4:] != 0)]
        for i in range(self.latency):       # the decoder's own pipeline
            rd_q, err_q = Signal(32, name=f"rd_q{i}"), Signal(name=f"err_q{i}")
            m.d.sync += [rd_q.eq(rd), err_q.eq(err)]
            rd, err = rd_q, err_q
        m.d.comb += [s.rd_data.eq(rd), s.rd_err.eq(err)]
        return m


@pytest.mark.parametrize("latency", [0, 1, 3])
def test_random_accesses_match_a_dictionary(latency):
    seed = 10 + latency
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = ToyDecoder(latency)
    model = {a: 0 for a in (0, 4, 8, 12)}

    async def tb(ctx):
        bus = AxilMaster(ctx, dut.slave.bus, prefix="", rng=rng)
        for step in range(60):
            addr = rng.choice([0, 4, 8, 12, 12 + 4 * rng.randrange(1, 60)])
            if rng.random() < 0.5:
                value, strb = rng.getrandbits(32), rng.randrange(16)
                order = rng.choice(["together", "aw_first", "w_first"])
                resp = await bus.write(addr, value, strb, order)
                if addr in model:
                    mask = sum(0xFF << 8 * b for b in range(4) if strb >> b & 1)
                    model[addr] = (model[addr] & ~mask) | (value & mask)
                assert resp == (OKAY if addr in model else SLVERR), f"seed {seed} step {step}"
            else:
                got = await bus.read(addr)
                want = (model[addr], OKAY) if addr in model else (0, SLVERR)
                assert got == want, f"seed {seed} step {step}: read {addr:#x}: {got} != {want}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("latency", [0, 2])
def test_latencies_of_the_docstring(latency):
    """bvalid 2 cycles after the later of the AW/W handshakes; rvalid 2 + read_latency cycles
    after the AR handshake; ready signals do not wait for valid."""
    dut = ToyDecoder(latency)
    s = dut.slave.bus

    async def tb(ctx):
        assert ctx.get(s.awready) and ctx.get(s.wready) and ctx.get(s.arready)
        ctx.set(s.awaddr, 4)
        ctx.set(s.awvalid, 1)
        ctx.set(s.wdata, 0x1234)
        ctx.set(s.wstrb, 0xF)
        ctx.set(s.wvalid, 1)
        await ctx.tick()                      # both handshakes in this edge
        ctx.set(s.awvalid, 0)
        ctx.set(s.wvalid, 0)
        n = 0
        while not ctx.get(s.bvalid):
            await ctx.tick()
            n += 1
        assert n + 1 == 2 and ctx.get(s.bresp) == RESP_OKAY
        ctx.set(s.bready, 1)
        await ctx.tick()
        ctx.set(s.bready, 0)
        ctx.set(s.araddr, 4)
        ctx.set(s.arvalid, 1)
        await ctx.tick()                      # AR handshake
        ctx.set(s.arvalid, 0)
        n = 0
        while not ctx.get(s.rvalid):
            await ctx.tick()
            n += 1
        assert n + 1 == 2 + latency
        assert (ctx.get(s.rdata), ctx.get(s.rresp)) == (0x1234, RESP_OKAY)
        assert not ctx.get(s.arready)         # one read at a time
        ctx.set(s.rready, 1)
        await ctx.tick()
        assert not ctx.get(s.rvalid) and ctx.get(s.arready)
        ctx.set(s.araddr, 0x40)
        ctx.set(s.arvalid, 1)
        await ctx.tick()
        ctx.set(s.arvalid, 0)
        while not ctx.get(s.rvalid):
            await ctx.tick()
        assert (ctx.get(s.rdata), ctx.get(s.rresp)) == (0, RESP_SLVERR)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="addr_bits"):
        AXI4LiteSlave(addr_bits=2)
    with pytest.raises(TypeError, match="read_latency"):
        AXI4LiteSlave(read_latency=1.0)
    with pytest.raises(ValueError, match="read_latency"):
        AXI4LiteSlave(read_latency=5)
