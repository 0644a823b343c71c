"""Amaranth-simulator tests of the register block (AXI4-Lite handshakes, access types) and of the
whole accelerator top on a tiny configuration (bitstream through the loader, multi-layer
inference against the golden model)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.registers import (MAGIC, REGISTER_BY_NAME, REGISTERS, RegisterBlock,
                                    render_markdown)
from spikepack.sim.benches.system import expected_constants

REPO = Path(__file__).resolve().parent.parent
OKAY, SLVERR = 0, 2


def reg(name):
    return REGISTER_BY_NAME[name].offset


# --- AXI4-Lite master for the Amaranth simulator -------------------------------------------------

class AxilMaster:
    """Drives ``<prefix>awaddr`` ... on a component; ``order`` chooses how AW and W arrive."""

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


# --- table and documentation ---------------------------------------------------------------------

def test_registers_doc_is_generated_from_the_table():
    text = (REPO / "docs" / "registers.md").read_text()
    assert text == render_markdown(), ("docs/registers.md is stale: regenerate it with "
                                       "spikepack.hw.registers.render_markdown()")
    for r in REGISTERS:
        assert f"| {r.name} |" in text


def test_register_table_is_consistent():
    offsets = [r.offset for r in REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert REGISTER_BY_NAME["ID"].reset == MAGIC == 0x53504B31
    c = HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=2, neuron="lif")
    for name, value in expected_constants(c).items():
        assert REGISTER_BY_NAME[name].reset_value(c) == value, name
    assert REGISTER_BY_NAME["CONTROL"].reset == 1       # RUN = 1: free-running after reset


# --- the register block alone ---------------------------------------------------------------------

def test_register_block_axi_handshakes_and_access_types():
    c = HardwareConfig(rows=4, cols=4, timesteps=4, max_fan_in=32, max_neurons=32, max_layers=4,
                       weight_depth=64)
    dut = RegisterBlock(config=c)
    consts = expected_constants(c)
    seen = {}

    async def tb(ctx):
        rng = random.Random(1)
        bus = AxilMaster(ctx, dut, rng=rng)
        # constants
        for name, value in consts.items():
            data, resp = await bus.read(reg(name))
            assert (data, resp) == (value, OKAY), f"{name}: {data:#x} != {value:#x}"
        # writes to read-only registers are accepted and ignored
        for name in ("ID", "SIGNATURE", "ARRAY", "STATUS", "CYCLES_BUSY", "LOAD_GOOD"):
            assert await bus.write(reg(name), 0xFFFFFFFF) == OKAY
        for name, value in consts.items():
            assert (await bus.read(reg(name)))[0] == value
        # unmapped addresses: SLVERR
        assert await bus.read(0xFC) == (0, SLVERR)
        assert await bus.write(0xFC, 1) == SLVERR
        # SCRATCH with every channel order and byte strobes
        expect = 0
        for i, order in enumerate(["together", "aw_first", "w_first"] * 4):
            value, strb = rng.getrandbits(32), rng.choice([0xF, 0x1, 0x6, 0x8, 0xF])
            assert await bus.write(reg("SCRATCH"), value, strb, order) == OKAY
            mask = sum(0xFF << 8 * b for b in range(4) if strb >> b & 1)
            expect = (expect & ~mask) | (value & mask)
            assert await bus.read(reg("SCRATCH")) == (expect, OKAY), order
        # CONTROL: RUN resets to 1, pulses read 0 and strobe one cycle
        assert await bus.read(reg("CONTROL")) == (1, OKAY)
        await bus.write(reg("CONTROL"), 0b0110)          # RUN=0, soft_reset, start
        assert await bus.read(reg("CONTROL")) == (0, OKAY)
        assert seen.get("soft_reset") == 1 and seen.get("start") == 1
        await bus.write(reg("CONTROL"), 1)
        # status inputs are live
        ctx.set(dut.busy, 1)
        ctx.set(dut.layers, 3)
        ctx.set(dut.layer, 2)
        ctx.set(dut.cycles_last, 12345)
        assert (await bus.read(reg("STATUS")))[0] == 1 | 2 << 8 | 3 << 16
        assert (await bus.read(reg("CYCLES_LAST")))[0] == 12345
        # counters count, and clear on CLEAR_COUNTERS
        ctx.set(dut.in_beats_inc, 1)
        for _ in range(7):
            await ctx.tick()
        ctx.set(dut.in_beats_inc, 0)
        assert (await bus.read(reg("IN_BEATS")))[0] == 7
        await bus.write(reg("CONTROL"), 0b1001)
        assert (await bus.read(reg("IN_BEATS")))[0] == 0
        # events: sticky, W1C
        ctx.set(dut.input_overflow_set, 1)
        await ctx.tick()
        ctx.set(dut.input_overflow_set, 0)
        assert (await bus.read(reg("EVENTS")))[0] == 2
        await bus.write(reg("EVENTS"), 1)                 # writing 1 to another bit: no effect
        assert (await bus.read(reg("EVENTS")))[0] == 2
        await bus.write(reg("EVENTS"), 2)
        assert (await bus.read(reg("EVENTS")))[0] == 0

    async def watch(ctx):
        async for _clk, _rst, soft, start in ctx.tick().sample(dut.soft_reset, dut.start):
            if soft:
                seen["soft_reset"] = seen.get("soft_reset", 0) + 1
            if start:
                seen["start"] = seen.get("start", 0) + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_process(watch)
    sim.run()


# --- the whole accelerator on a tiny configuration ------------------------------------------------

TINY = HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4, bias_bits=12,
                      threshold_bits=10, max_fan_in=8, max_neurons=8, max_layers=4,
                      weight_depth=64)

#: Input-writer shapes (K = 32 // T words a beat, R words an entry): TINY has K = 8R (a beat
#: spans 8 entries); R = K (one entry a beat, as in the default configuration); R = 2K (two
#: beats an entry); K = 5, R = 8 (beats straddle entries).
SMALL = {
    "tiny_k8r": TINY,
    "r_eq_k": HardwareConfig(rows=4, cols=2, timesteps=8, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=16, max_neurons=8,
                             max_layers=4, weight_depth=64),
    "r_2k": HardwareConfig(rows=8, cols=2, timesteps=8, tau_shift=1, weight_bits=4,
                           bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                           max_layers=4, weight_depth=64),
    "straddle": HardwareConfig(rows=8, cols=2, timesteps=6, tau_shift=2, weight_bits=4,
                               bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                               max_layers=4, weight_depth=64),
}


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


@pytest.mark.parametrize("config_name", list(SMALL))
def test_top_runs_networks_through_the_loader_amaranth_sim(config_name):
    """Two networks loaded through the loader (the second replacing the first between
    inferences), images streamed with random gaps and output backpressure, every readout
    potential compared with the golden model; registers read back over AXI4-Lite."""
    from spikepack.firmware.bitstream import pack_network, words_of
    from spikepack.hw.top import SpikePackTop
    from spikepack.sim.benches.system import golden_logits, input_beats, random_network

    from spikepack.sim.runner import bench_seed
    seed = bench_seed()                       # SPIKEPACK_SEED reproduces a run
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    config = SMALL[config_name]
    T = config.timesteps
    plan = []
    for sizes in ([5, 3, 4], [7, 6, 2, 3]):
        layers = random_network(rng, config, sizes)
        images = rng.integers(0, 1 << T, size=(4, sizes[0]))
        plan.append((layers, images, golden_logits(images, layers, config)))
    dut = SpikePackTop(config=config)
    received: list[list[int]] = []
    total_images = sum(len(p[1]) for p in plan)
    ob = dut.out_bits

    async def host(ctx):
        bus = AxilMaster(ctx, dut, rng=prng)
        consts = expected_constants(config)
        for name, value in consts.items():
            assert await bus.read(reg(name)) == (value, OKAY), name
        assert (await bus.read(reg("STATUS")))[0] & 2 == 0          # nothing loaded
        done = 0
        for n, (layers, images, _) in enumerate(plan):
            words = words_of(pack_network(layers, config))
            await stream_send(ctx, dut, "s_axis_load", words, prng)
            for _ in range(20):
                await ctx.tick()
            status = (await bus.read(reg("STATUS")))[0]
            assert status & 2 and (status >> 16) & 0x1FF == len(layers), hex(status)
            assert await bus.read(reg("LOAD_GOOD")) == (n + 1, OKAY)
            assert await bus.read(reg("LOAD_ERROR")) == (0, OKAY)
            for z in images:
                await stream_send(ctx, dut, "s_axis_in", input_beats(z, T), prng)
            done += len(images)
            for _ in range(100_000):
                if len(received) >= done:
                    break
                await ctx.tick()
            assert len(received) == done
        assert await bus.read(reg("INFERENCES")) == (total_images, OKAY)
        layer_total = sum(len(p[0]) * len(p[1]) for p in plan)
        assert await bus.read(reg("LAYERS_RUN")) == (layer_total, OKAY)
        out_total = sum(p[2].size for p in plan)
        assert await bus.read(reg("OUT_BEATS")) == (out_total, OKAY)
        in_total = sum(len(input_beats(z, T)) for p in plan for z in p[1])
        assert await bus.read(reg("IN_BEATS")) == (in_total, OKAY)
        assert (await bus.read(reg("STATUS")))[0] & 1 == 0

    async def sink(ctx):
        frame = []
        while len(received) < total_images:
            ready = prng.random() < 0.7
            ctx.set(dut.m_axis_out_tready, ready)
            valid = ctx.get(dut.m_axis_out_tvalid)
            data, last = ctx.get(dut.m_axis_out_tdata), ctx.get(dut.m_axis_out_tlast)
            await ctx.tick()
            if valid and ready:
                frame.append(data - (1 << ob) if data >> (ob - 1) else data)
                if last:
                    received.append(frame)
                    frame = []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(sink)
    sim.run()
    expected = [list(map(int, row)) for p in plan for row in p[2]]
    assert len(received) == len(expected) == total_images
    for i, (got, want) in enumerate(zip(received, expected)):
        assert got == want, f"seed {seed}: image {i}: hardware {got} != golden {want}"
    print("outputs", received)
