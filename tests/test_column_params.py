# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the layer engine's column parameters
(``spikepack.hw.column_params``): random first-beat flags against emulated bias and threshold
memories of read latency 2; the words of column tile k (word column_base + k, conv: k mod CT)
are on the outputs ``lead`` + 3 cycles after its flag and stay until the next."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.column_params import ColumnParams


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_words_of_each_column_tile_at_lead_plus_three(conv, seed):
    print(f"seed {seed}, conv {conv}")
    rng = random.Random(seed)
    config = HardwareConfig(rows=4, cols=4, conv=conv)
    lead = rng.choice([2, 4, 8])
    dut = ColumnParams(config=config, lead=lead)
    CT, cbase = rng.randint(1, 5), rng.getrandbits(5)
    flags = []                          # cycles of the first-beat flags
    t = 8
    for _ in range(14):
        t += rng.randint(1, 6)
        flags.append(t)
    end = flags[-1] + lead + 8
    mems = {name: {} for name in ("bias", "threshold")}
    trace = []

    async def tb(ctx):
        ctx.set(dut.cbase, cbase)
        ctx.set(dut.ct_max, CT - 1)
        ctx.set(dut.ct_max_zero, CT == 1)
        reads = {name: [] for name in mems}
        for cycle in range(end):
            ctx.set(dut.setup1, cycle == 2)
            ctx.set(dut.setup2, cycle == 3)
            ctx.set(dut.first, cycle in flags)
            for name in mems:
                port = getattr(dut, name)
                if ctx.get(port.en):
                    reads[name].append((cycle, ctx.get(port.addr)))
                done = [a for c, a in reads[name] if c <= cycle - 2]
                if done:
                    ctx.set(port.data, mems[name].setdefault(done[-1],
                                                             rng.getrandbits(len(port.data))))
            trace.append((ctx.get(dut.bias_words), ctx.get(dut.threshold_words)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    bmask, tmask = (1 << len(dut.bias_words)) - 1, (1 << len(dut.threshold_words)) - 1
    for k, f in enumerate(flags):
        addr = cbase + (k % CT if conv else k)
        until = flags[k + 1] + lead + 3 if k + 1 < len(flags) else end
        for cycle in range(f + lead + 3, until):
            got = trace[cycle]
            assert got == (mems["bias"][addr] & bmask, mems["threshold"][addr] & tmask), \
                f"seed {seed}: column tile {k} (flag in {f}), cycle {cycle}"
