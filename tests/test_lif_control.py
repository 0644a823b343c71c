# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the LIF unit's dynamics control (``spikepack.hw.lif_control``)
alone, against a Python reference of its docstring, cycle by cycle: neurons of 1..3 groups of
T beats offered with random gaps (payload noise while ``valid`` is low), ``t_in`` played as the
integration counts the beats taken, ``out_free`` at random.

The reference: R starts a neuron at the edge after its last beat's handshake and steps through
entries 0..T-1, one per ``adv`` = ``~u_fin | out_free``; D's and U's flags follow a step
behind each. Checked: every register against it; no beat of step t taken before R has read
entry t of the neuron before (read in the same cycle at the latest); the threshold record holds
the neuron's own last-beat fields when R starts it (and, T > 1, at D's step 0); and, with the
output always free and beats always offered, ``ready`` never falls and ``u_fin`` rises T + 2
cycles after each last beat's handshake (the unit's latency T + 3, with the output register)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.hw.lif_control import LIFControl
from spikepack.hw.neuron_common import check_neuron_params
from spikepack.sim.runner import bench_seed


def P(T, k=1, tb=7):
    return check_neuron_params(timesteps=T, tau_shift=k, weight_bits=6, fan_in=12, rows=4,
                               bias_bits=10, threshold_bits=tb)


TIMESTEPS = [1, 2, 3, 4, 6]


def _neurons(rng, p, count):
    out = []
    for _ in range(count):
        groups = rng.randint(1, 3)
        out.append((groups * p.timesteps, rng.randrange(1 << p.threshold_bits),
                    int(rng.random() < 0.3)))
    return out


def _set_payload(ctx, dut, rng, p, last, threshold, readout):
    ctx.set(dut.payload.last, last)
    ctx.set(dut.payload.threshold, threshold)
    ctx.set(dut.payload.readout, readout)
    ctx.set(dut.payload.current, rng.randrange(-8, 8))
    ctx.set(dut.payload.bias, rng.randrange(-8, 8))


@pytest.mark.parametrize("T", TIMESTEPS)
def test_control_against_reference(T):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    p = P(T)
    dut = LIFControl(params=p)
    neurons = _neurons(rng, p, 150)
    stats = {"ready_low": 0, "record_checks": 0, "started": 0}

    async def bench(ctx):
        # the reference's registers
        r_active = r_step = r_first = r_final = d_first = d_final = u_fin = 0
        in_r = None             # the neuron R works on (its index)
        t_in = 0
        n = beat = 0            # the neuron and beat offered
        valid = 0
        cycle = 0
        while stats["started"] < len(neurons) or r_active or d_first or u_fin:
            # ready falls only when the output stalls a finished neuron: draw neurons on
            # until it has fallen often enough for the check below (one run in 30 fell short)
            if n >= len(neurons) - 1 and stats["ready_low"] <= 20 and len(neurons) < 3000:
                neurons.extend(_neurons(rng, p, 50))
            if not valid and n < len(neurons) and rng.random() < 0.8:
                valid = 1
            beats, theta, readout = neurons[n] if n < len(neurons) else (1, 0, 0)
            last = int(beat == beats - 1)
            ctx.set(dut.valid, valid)
            if valid:
                _set_payload(ctx, dut, rng, p, last, theta, readout)
            else:
                _set_payload(ctx, dut, rng, p, rng.randrange(2), rng.randrange(1 << p.threshold_bits),
                             rng.randrange(2))
            ctx.set(dut.t_in, t_in)
            out_free = int(rng.random() < 0.5)
            ctx.set(dut.out_free, out_free)
            got = {name: ctx.get(getattr(dut, name)) for name in (
                "r_active", "r_step", "r_first", "d_first", "d_final", "u_fin", "adv")}
            adv = int(not u_fin or out_free)
            want = dict(r_active=r_active, r_step=r_step, r_first=r_first, d_first=d_first,
                        d_final=d_final, u_fin=u_fin, adv=adv)
            assert got == want, f"cycle {cycle} (seed {seed}): {got} != {want}"
            ready = ctx.get(dut.ready)
            stats["ready_low"] += not ready
            taken = valid and ready
            if taken and r_active:
                # R must have read entry t_in of the neuron before, by this cycle
                assert r_step > t_in or (r_step == t_in and adv), \
                    f"cycle {cycle}: beat of step {t_in} before R read it (seed {seed})"
            if adv and (r_first or (T > 1 and d_first)):
                r_n = in_r if r_first else d_neuron
                rec = (ctx.get(dut.rec_theta), ctx.get(dut.rec_readout))
                assert rec == neurons[r_n][1:], f"cycle {cycle}: record of neuron {r_n}"
                stats["record_checks"] += 1
            # the reference's next state
            if adv:
                d_first, d_final, u_fin = r_first, r_final, d_final
                if d_first:
                    d_neuron = in_r
                if r_active:
                    if r_final:
                        r_active, r_step = 0, 0
                    else:
                        r_step += 1
                    r_first, r_final = 0, int(r_step == T - 1 and not r_final and r_active)
            if taken:
                t_in = 0 if t_in == T - 1 else t_in + 1
                if last:
                    r_active, r_step, r_first, r_final = 1, 0, 1, int(T == 1)
                    in_r = n
                    stats["started"] += 1
                    n, beat = n + 1, 0
                else:
                    beat += 1
                valid = 0
            cycle += 1
            assert cycle < 200 * len(neurons), f"stuck (seed {seed})"
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert stats["ready_low"] > 20 and stats["record_checks"] >= len(neurons), stats


@pytest.mark.parametrize("T", TIMESTEPS)
def test_full_rate(T):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    p = P(T)
    dut = LIFControl(params=p)
    neurons = _neurons(rng, p, 40)
    lasts, fins = [], []

    async def bench(ctx):
        ctx.set(dut.out_free, 1)
        ctx.set(dut.valid, 1)
        t_in = 0
        cycle = 0
        for beats, theta, readout in neurons:
            for b in range(beats):
                _set_payload(ctx, dut, rng, p, int(b == beats - 1), theta, readout)
                ctx.set(dut.t_in, t_in)
                assert ctx.get(dut.ready), f"cycle {cycle}: ready fell (seed {seed})"
                if b == beats - 1:
                    lasts.append(cycle)
                if ctx.get(dut.u_fin):      # one cycle per neuron: adv is always high
                    fins.append(cycle)
                t_in = 0 if t_in == T - 1 else t_in + 1
                cycle += 1
                await ctx.tick()
        ctx.set(dut.valid, 0)
        for _ in range(T + 4):
            if ctx.get(dut.u_fin):
                fins.append(cycle)
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert fins == [c + T + 2 for c in lasts], (lasts[:5], fins[:5], seed)


def test_parameter_checks():
    with pytest.raises(TypeError, match="params"):
        LIFControl(params={"timesteps": 4})
    with pytest.raises(TypeError):
        LIFControl(P(4))                    # keyword-only
