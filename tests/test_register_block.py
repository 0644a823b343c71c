# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the register block (``spikepack.hw.register_block``): AXI4-Lite
handshakes in every channel order, byte strobes, and every access type and field kind of the
table (constants against ``expected_constants``, an independent restatement)."""

from __future__ import annotations

import random

from amaranth.sim import Simulator

from amaranth_axil import OKAY, SLVERR, AxilMaster
from spikepack.config import HardwareConfig
from spikepack.hw.register_block import RegisterBlock
from spikepack.protocol import RegisterMap
from spikepack.sim.benches.system import expected_constants


def test_register_block_axi_handshakes_and_access_types():
    c = HardwareConfig(rows=4, cols=4, timesteps=4, max_fan_in=32, max_neurons=32, max_layers=4,
                       weight_depth=64)
    dut = RegisterBlock(config=c)
    reg = RegisterMap.of_config(c).offset       # raw accesses by offset: responses checked too
    consts = expected_constants(c)
    seen = {}

    async def tb(ctx):
        rng = random.Random(1)
        bus = AxilMaster(ctx, dut.bus, prefix="", rng=rng)
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
        ctx.set(dut.status.busy, 1)
        ctx.set(dut.status.layers, 3)
        ctx.set(dut.status.layer, 2)
        ctx.set(dut.status.cycles_last, 12345)
        assert (await bus.read(reg("STATUS")))[0] == 1 | 2 << 8 | 3 << 16
        assert (await bus.read(reg("CYCLES_LAST")))[0] == 12345
        # counters count, and clear on CLEAR_COUNTERS
        ctx.set(dut.status.in_beats_inc, 1)
        for _ in range(7):
            await ctx.tick()
        ctx.set(dut.status.in_beats_inc, 0)
        assert (await bus.read(reg("IN_BEATS")))[0] == 7
        await bus.write(reg("CONTROL"), 0b1001)
        assert (await bus.read(reg("IN_BEATS")))[0] == 0
        # events: sticky, W1C
        ctx.set(dut.status.input_overflow_set, 1)
        await ctx.tick()
        ctx.set(dut.status.input_overflow_set, 0)
        assert (await bus.read(reg("EVENTS")))[0] == 2
        await bus.write(reg("EVENTS"), 1)                 # writing 1 to another bit: no effect
        assert (await bus.read(reg("EVENTS")))[0] == 2
        await bus.write(reg("EVENTS"), 2)
        assert (await bus.read(reg("EVENTS")))[0] == 0

    async def watch(ctx):
        async for _clk, _rst, soft, start in ctx.tick().sample(dut.control.soft_reset,
                                                                dut.control.start):
            if soft:
                seen["soft_reset"] = seen.get("soft_reset", 0) + 1
            if start:
                seen["start"] = seen.get("start", 0) + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_process(watch)
    sim.run()


def test_status_and_control_interfaces_follow_the_table():
    """The status interface has one member per status, counter and event field (suffixes
    none, ``_inc``, ``_set``), the control interface one per RW field and pulse, with the RW
    reset values; the top gives every status member a producer."""
    from amaranth.lib import wiring
    from amaranth.lib.wiring import Out
    from spikepack.hw.register_block import ControlSignature, StatusSignature
    from spikepack.hw.top import SpikePackTop
    status = StatusSignature().members
    assert status["busy"] == Out(1) and status["layers"] == Out(9)
    assert status["load_error_code"] == Out(8) and status["cycles_last"] == Out(32)
    assert status["in_beats_inc"] == Out(1) and status["input_overflow_set"] == Out(1)
    assert "in_beats" not in status and "run" not in status and "magic" not in status
    assert set(status) == {"busy", "loaded", "loader_busy", "commit_pending", "start_armed", "load_error",
             "images_buffered", "layer", "layers", "load_error_code", "load_good", "load_bad",
             "load_words", "cycles_last", "start_ignored_set", "input_overflow_set",
             "cycles_busy_inc", "inferences_inc", "layers_run_inc", "in_beats_inc",
             "out_beats_inc", "engine_busy_inc", "in_stalls_inc", "out_stalls_inc"}
    c = HardwareConfig(rows=2, cols=2, timesteps=2, max_fan_in=8, max_neurons=8, max_layers=2,
                       weight_depth=16, conv=False)
    control = ControlSignature(c).members
    assert set(control) == {"run", "soft_reset", "start", "clear_counters", "scratch"}
    assert (control["run"].shape, control["run"].init) == (1, 1)
    assert (control["scratch"].shape, control["scratch"].init) == (32, 0)
    block = RegisterBlock(config=c)
    member = block.signature.members["status"]
    assert member.flow == wiring.In and isinstance(member.signature, StatusSignature)
    from amaranth.hdl import Fragment
    Fragment.get(SpikePackTop(config=c), None)      # status_sources covers every member
