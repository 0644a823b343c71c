# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of S1 of the patch generator (``spikepack.hw.patch_loops``) against
a Python loop nest (one index per loop of ``LEVELS``, innermost first, counting up to its
bound): random bounds, seeded (``SPIKEPACK_SEED``, the seed printed); after ``init`` every
``adv1`` (random, ~70% of cycles) puts the step from the nest's current index on ``step`` the
cycle after: ``move`` the lowest loop not at its bound (none at the nest's end), ``reset`` the
loops inside it (all at the end); with ``adv1`` low ``step`` holds."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.patch_loops import PatchLoops
from spikepack.hw.patch_setup import LEVELS
from spikepack.sim.runner import bench_seed


def _step(index, tops):
    """(move, reset) of the nest at ``index``, and the next index."""
    n = len(tops)
    i = next((k for k in range(n) if index[k] != tops[k]), n)
    move = 1 << i if i < n else 0
    reset = (1 << min(i, n)) - 1
    nxt = [0] * n if i == n else [0] * i + [index[i] + 1] + index[i + 1:]
    return move, reset, nxt


@pytest.mark.parametrize("case", range(4))
def test_loops_step_like_the_nest(case):
    seed = bench_seed() + case
    print(f"seed {seed} (SPIKEPACK_SEED={seed} with case 0 reproduces it)")
    rng = random.Random(seed)
    config = HardwareConfig(rows=4, cols=4, max_channels=20, max_map_side=12, max_kernel=5,
                            timesteps=2)
    dut = PatchLoops(config=config)
    widths = {name: len(getattr(dut.bounds.top, name)) for name in LEVELS}

    async def tb(ctx):
        for _layer in range(4):
            # small bounds mostly (so the outer loops and the end of the nest are reached)
            tops = [rng.choice([0, 0, 1, 2, rng.randint(0, (1 << widths[n]) - 1)])
                    if k < 4 else rng.choice([0, 1, 2]) for k, n in enumerate(LEVELS)]
            for name, top in zip(LEVELS, tops):
                ctx.set(getattr(dut.bounds.top, name), top)
            ctx.set(dut.bounds.top_zero, sum(1 << k for k, t in enumerate(tops) if t == 0))
            ctx.set(dut.bounds.top_one, sum(1 << k for k, t in enumerate(tops) if t == 1))
            ctx.set(dut.control.init, 1)
            await ctx.tick()
            ctx.set(dut.control.init, 0)
            index = [0] * len(LEVELS)
            want = None
            total = 1
            for t in tops:
                total *= t + 1
            for cyc in range(2 * total + 60):
                adv1 = rng.random() < 0.7
                ctx.set(dut.control.adv1, adv1)
                await ctx.tick()
                if adv1:
                    move, reset, index = _step(index, tops)
                    want = (move, reset)
                if want is not None:
                    got = (ctx.get(dut.step.move), ctx.get(dut.step.reset))
                    assert got == want, (f"seed {seed}: bounds {tops}, cycle {cyc}: step "
                                         f"{got}, want {want}")
            ctx.set(dut.control.adv1, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
