# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the LIF unit's dynamics datapath (``spikepack.hw.lif_dynamics``):
the D stage (``LIFDrive``) and the membrane (``LIFMembrane``) wired as in the unit, driven by a
played control (R steps through each neuron's entries on ``adv``, which falls at random; R
takes the next neuron at once or after a pause; D's and U's flags a step behind; the record
valid only when the docstrings say it is read, noise otherwise), against the golden model:
``golden.lif_neuron`` of the step currents for a hidden neuron's spike word, Horner's rule
(the global potential) for a readout neuron's ``potential``."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from spikepack.hw.lif_dynamics import LIFDrive, LIFMembrane, membrane_bits
from spikepack.hw.neuron_common import check_neuron_params
from spikepack.sim import golden
from spikepack.sim.runner import bench_seed


def P(T, k, wb=6, fan_in=12, rows=4, bb=10, tb=7):
    return check_neuron_params(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in,
                               rows=rows, bias_bits=bb, threshold_bits=tb)


CASES = {"T4_k1": P(4, 1), "T1_k2": P(1, 2), "T2_k3": P(2, 3), "T5_k1_tb10": P(5, 1, tb=10),
         "T3_k2_w16": P(3, 2, wb=16, fan_in=6, rows=2, bb=20, tb=16)}


def _neurons(rng, p, count):
    T, k = p.timesteps, p.tau_shift
    (wl, wh), (bl, bh) = p.weight_range, p.bias_range
    out = []
    for _ in range(count):
        readout = rng.random() < 0.25
        bias = rng.randint(bl, bh)
        # small currents and thresholds put v_t at theta (the boundary of > vs >=) often
        spread = rng.choice([p.fan_in * wh, max(1, p.threshold_max), 4, 8, 8])
        currents = [max(p.fan_in * wl, min(p.fan_in * wh, rng.randint(-spread, spread)))
                    + (0 if readout and t != T - 1 else bias) for t in range(T)]
        theta = rng.choice([1, 2, 3, 5, p.threshold_max, rng.randint(1, p.threshold_max)])
        if readout:
            want = sum(c << (k * (T - 1 - t)) for t, c in enumerate(currents))
        else:
            want = int(golden.lif_neuron(np.array([currents]), theta, k)[0])
        out.append((currents, theta, readout, want))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_dynamics_match_golden(name):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    p = CASES[name]
    T = p.timesteps
    B = p.widths.lif_current
    drive = LIFDrive(params=p, c_bits=B)
    mem = LIFMembrane(params=p)
    m = Module()
    m.submodules.drive, m.submodules.mem = drive, mem
    m.d.comb += [mem.adv.eq(drive.adv), mem.d.eq(drive.d), mem.theta.eq(drive.theta)]
    neurons = _neurons(rng, p, 400)
    results = []

    async def bench(ctx):
        queue = list(range(len(neurons)))
        # (neuron, step) in R (reads C_t), D (d_raw holds C_t) and U (d holds D_t), or None
        r = dd = uu = None
        while queue or r or dd or uu:
            adv = int(rng.random() < 0.75)
            r_first = int(r is not None and r[1] == 0)
            d_first = int(dd is not None and dd[1] == 0)
            u_fin = int(uu is not None and uu[1] == T - 1)
            # the record holds the neuron R starts, and (T > 1) at D's step 0; noise otherwise
            if r_first:
                rec = neurons[r[0]][1], int(neurons[r[0]][2])
            elif d_first and T > 1:
                rec = neurons[dd[0]][1], int(neurons[dd[0]][2])
            else:
                rec = rng.randrange(p.threshold_max + 1), rng.randrange(2)
            c = neurons[r[0]][0][r[1]] if r is not None else rng.randrange(-4, 4)
            for sig, value in ((drive.adv, adv), (drive.r_first, r_first),
                               (drive.r_active, int(r is not None)), (drive.c, c),
                               (drive.rec_theta, rec[0]), (drive.rec_readout, rec[1]),
                               (mem.d_first, d_first), (mem.u_fin, u_fin)):
                ctx.set(sig, value)
            assert ctx.get(mem.w_en) == int(adv and u_fin)
            if adv and u_fin:
                results.append((uu[0], ctx.get(mem.spikes), ctx.get(mem.potential)))
            if adv:
                uu, dd = dd, r
                if r is not None:
                    r = None if r[1] == T - 1 else (r[0], r[1] + 1)
            # R takes the next neuron when free (at any edge) or as it finishes (with adv)
            if r is None and queue and rng.random() < 0.7:
                r = (queue.pop(0), 0)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [n for n, _, _ in results] == list(range(len(neurons)))
    PB = p.widths.potential
    for n, spikes, potential in results:
        currents, theta, readout, want = neurons[n]
        if readout:
            assert potential == want, f"neuron {n}: readout {currents} (seed {seed})"
        else:
            assert spikes == want, f"neuron {n}: {currents} theta {theta} (seed {seed})"


def test_parameter_checks():
    p = P(4, 1)
    with pytest.raises(ValueError, match="c_bits"):
        LIFDrive(params=p, c_bits=1)
    with pytest.raises(ValueError, match="fault"):
        LIFMembrane(params=p, fault="nope")
    with pytest.raises(TypeError, match="params"):
        LIFMembrane(params=None)
    with pytest.raises(TypeError):
        LIFDrive(p, 8)                      # keyword-only
    assert membrane_bits(p) >= p.threshold_bits + 1
