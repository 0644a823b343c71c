# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the LIF unit's step-current buffer (``spikepack.hw.lif_buffer``)
alone: random neurons of 1..3 groups of T beats (hidden and readout), offered with random gaps
and random ``ready``, against the step currents of SPEC section 3 computed in Python,
C_t = bias + sum_g I_(g,t) (a readout neuron: the bias in entry T-1 only): after each neuron,
R's read port (``c_addr``/``c_data``) reads every entry. ``t_in`` must be the step of the next
beat every cycle; with T = 1, ``c_data`` must show the last beat's sum the cycle after its
handshake (the bypass R's first read needs)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.hw.lif_buffer import StepCurrentBuffer
from spikepack.hw.neuron_common import check_neuron_params
from spikepack.sim.runner import bench_seed


def P(T, k, wb=6, fan_in=12, rows=4, bb=10, tb=7):
    return check_neuron_params(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in,
                               rows=rows, bias_bits=bb, threshold_bits=tb)


CASES = {"T4": P(4, 1), "T1": P(1, 2), "T2": P(2, 3), "T5_wide": P(5, 1, wb=12, bb=20)}


@pytest.mark.parametrize("name", list(CASES))
def test_entries_are_the_step_currents(name):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    p = CASES[name]
    T = p.timesteps
    dut = StepCurrentBuffer(params=p, width=p.widths.lif_current)
    cur_max = (1 << (p.widths.current - 1)) - 1
    seen = {"neurons": 0, "bypass": 0}

    async def bench(ctx):
        t_in = 0
        for n in range(80):
            groups = rng.randint(1, 3)
            readout = int(rng.random() < 0.3)
            bias = rng.randrange(-(1 << (p.bias_bits - 1)), 1 << (p.bias_bits - 1))
            # keep sum of the currents of a step within what fan_in inputs can give
            per = cur_max // groups
            currents = [[rng.randint(-per, per) for _ in range(T)] for _ in range(groups)]
            want = [sum(g[t] for g in currents) + (0 if readout and t != T - 1 else bias)
                    for t in range(T)]
            beats = [(g, t) for g in range(groups) for t in range(T)]
            i = 0
            while i < len(beats):
                g, t = beats[i]
                valid = int(rng.random() < 0.8)
                ready = int(rng.random() < 0.8)
                last = int(i == len(beats) - 1)
                for field, value in (("current", currents[g][t]), ("bias", bias),
                                     ("readout", readout), ("last", last),
                                     ("threshold", rng.randrange(1 << p.threshold_bits))):
                    ctx.set(getattr(dut.payload, field), value)
                ctx.set(dut.valid, valid)
                ctx.set(dut.ready, ready)
                ctx.set(dut.c_addr, rng.randrange(T))
                assert ctx.get(dut.t_in) == t_in == t, f"neuron {n} (seed {seed})"
                await ctx.tick()
                if valid and ready:
                    i += 1
                    t_in = 0 if t_in == T - 1 else t_in + 1
            ctx.set(dut.valid, 0)
            if T == 1:          # the cycle after the last beat's handshake: the bypass
                ctx.set(dut.c_addr, 0)
                assert ctx.get(dut.c_data) == want[0], f"neuron {n}: bypass (seed {seed})"
                seen["bypass"] += 1
            await ctx.tick()    # stage 2 writes
            for t in range(T):
                ctx.set(dut.c_addr, t)
                assert ctx.get(dut.c_data) == want[t], \
                    f"neuron {n} (groups {groups}, readout {readout}) entry {t} (seed {seed})"
            seen["neurons"] += 1
            for _ in range(rng.randrange(2)):
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["neurons"] == 80 and (T > 1 or seen["bypass"] == 80)


def test_parameter_checks():
    with pytest.raises(ValueError, match="serial"):
        StepCurrentBuffer(params=check_neuron_params(
            timesteps=4, tau_shift=1, weight_bits=6, fan_in=12, rows=4, bias_bits=10,
            threshold_bits=7, input_mode="packed"), width=20)
    with pytest.raises(ValueError, match="width"):
        StepCurrentBuffer(params=P(4, 1), width=3)
    with pytest.raises(TypeError, match="params"):
        StepCurrentBuffer(params=None, width=20)
    with pytest.raises(TypeError):
        StepCurrentBuffer(P(4, 1), 20)      # keyword-only
