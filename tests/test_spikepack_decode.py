# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the SpikePack unit's decode stage (``spikepack.hw.spikepack_decode``)
alone.

* ``DecodeDatapath``: random neurons (hidden and readout, values at the threshold levels and
  across the whole potential range) loaded and stepped by a played control (random gaps between
  steps, the next load often on the last step itself), the written word read as the unit's
  output wiring reads it, against ``decode_model`` (held against ``golden.decode_serial`` in
  tests/test_neuron_units.py).
* ``DecodeControl``, with the output stage it reads (``add_output_stage``), its ``a_last`` fed
  by beats it lets in (``ready``) and random pops: against a Python reference of its docstring
  (each neuron loads once, in order, never over a pending one, takes T steps, the last one
  writes, only into a free output stage; ``ready`` only falls while a neuron waits), and the
  timing: with the output never stalled, load 1 cycle after ``a_last`` and the write T cycles
  after the load, and ``ready`` never low for last beats T cycles apart.
"""

from __future__ import annotations

import random

import pytest
from amaranth import Module, unsigned
from amaranth.lib import stream
from amaranth.sim import Simulator

from spikepack.hw.neuron_common import add_output_stage, check_neuron_params
from spikepack.hw.neuron_spikepack import SpikePackNeuron, decode_model
from spikepack.hw.spikepack_decode import (DecodeControl, DecodeDatapath, accumulator_bits,
                                           decode_bits)
from spikepack.sim.runner import bench_seed


def P(T, k, wb=6, fan_in=12, rows=4, bb=10, tb=7, mode="serial"):
    return check_neuron_params(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in,
                               rows=rows, bias_bits=bb, threshold_bits=tb, input_mode=mode)


DATAPATHS = {"T4_k1": P(4, 1), "T1_k2": P(1, 2), "T5_k3_tb4": P(5, 3, tb=4), "T2_k2": P(2, 2),
             "T3_k1_packed": P(3, 1, mode="packed")}


def _seed():
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    return seed


def test_widths_are_the_units():
    for p in DATAPATHS.values():
        unit = SpikePackNeuron(**{f: getattr(p, f) for f in (
            "timesteps", "tau_shift", "weight_bits", "fan_in", "rows", "bias_bits",
            "threshold_bits", "input_mode")})
        assert (unit.decode_bits, unit.accumulator_bits) == (decode_bits(p), accumulator_bits(p))


def _neurons(rng, p, count):
    T, k, W = p.timesteps, p.tau_shift, decode_bits(p)
    lo, hi = p.potential_range
    hi = min(hi, (1 << W))                  # v - 1 fits the decode register
    out = []
    for _ in range(count):
        theta = rng.choice([0, 1, p.threshold_max, rng.randrange(p.threshold_max + 1)])
        readout = rng.random() < 0.25
        pick = rng.random()
        if pick < 0.4:                      # at a level: theta * tau**j, +-1
            v = theta * (1 << (k * rng.randrange(T))) + rng.choice([-1, 0, 1, 2])
        elif pick < 0.5:
            v = rng.choice([lo, hi, 0, 1])
        else:
            v = rng.randrange(lo, hi + 1)
        out.append((max(lo, min(hi, v)), theta, readout))
    return out


@pytest.mark.parametrize("name", list(DATAPATHS))
def test_datapath_matches_decode_model(name):
    seed = _seed()
    rng = random.Random(seed)
    p = DATAPATHS[name]
    T, k, W = p.timesteps, p.tau_shift, decode_bits(p)
    PB = p.widths.potential
    rot = (k * T) % W
    dut = DecodeDatapath(params=p, acc_bits=accumulator_bits(p))
    neurons = _neurons(rng, p, 300)
    got = []
    seen = {"overlap": 0, "readout": 0, "fired": 0}

    def unpack(word):
        spikes = sum(((word >> (k * j)) & 1) << j for j in range(T))
        pot = ((word >> rot) | (word << (W - rot))) & ((1 << W) - 1) & ((1 << PB) - 1)
        return spikes, pot - (1 << PB) if pot >> (PB - 1) else pot

    async def bench(ctx):
        steps = None                # steps taken by the neuron in X (None: X idle)
        queue = list(neurons)
        while queue or steps is not None:
            advance = int(steps is not None and rng.random() < 0.75)
            wrote = int(advance and steps == T - 1)
            # the next load: when X is idle, or on its last step (wrote)
            load = int(bool(queue) and (steps is None or wrote) and rng.random() < 0.7)
            if load:
                v, theta, readout = queue[0]
                ctx.set(dut.acc, v if readout else v - 1)
                ctx.set(dut.threshold, theta)
                ctx.set(dut.readout, int(readout))
            else:               # noise: the inputs only count at a load
                ctx.set(dut.acc, rng.randrange(-4, 4))
                ctx.set(dut.threshold, rng.randrange(p.threshold_max + 1))
                ctx.set(dut.readout, rng.randrange(2))
            ctx.set(dut.step.load, load)
            ctx.set(dut.step.advance, advance)
            ctx.set(dut.step.wrote, wrote)
            assert ctx.get(dut.w_en) == wrote
            if wrote:
                got.append(unpack(ctx.get(dut.w_data)))
                seen["overlap"] += load
            if advance:
                steps = None if wrote else steps + 1
            if load:
                queue.pop(0)
                steps = 0
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(neurons)
    for i, ((v, theta, readout), (spikes, pot)) in enumerate(zip(neurons, got)):
        want = decode_model(v, theta, readout, timesteps=T, tau_shift=k, width=W,
                            potential_bits=PB)
        if readout:
            assert pot == want[1], f"neuron {i} v={v} readout (seed {seed})"
            seen["readout"] += 1
        else:
            assert spikes == want[0], f"neuron {i} v={v} theta={theta} (seed {seed})"
            seen["fired"] += spikes != 0
    assert min(seen.values()) > 5, seen


CONTROLS = [1, 2, 3, 4, 7]


def _control_harness(T):
    dut = DecodeControl(timesteps=T)
    m = Module()
    m.submodules.dut = dut
    port = stream.Signature(unsigned(4)).create()
    depth = {1: 3, 2: 2}.get(T, 1)             # the unit's output depth
    out = add_output_stage(m, port, depth, width=4, connect=lambda held: [port.payload.eq(held)])
    m.d.comb += [dut.out_free.eq(out.free), dut.out_free_after_write.eq(out.free_after_write),
                 out.w_en.eq(dut.step.wrote), out.w_data.eq(0)]
    return dut, m, port


@pytest.mark.parametrize("T", CONTROLS)
def test_control_against_reference(T):
    seed = _seed()
    rng = random.Random(seed)
    dut, m, port = _control_harness(T)
    stats = {"neurons": 0, "stalls": 0, "ready_low": 0}

    async def bench(ctx):
        pending = False             # acc holds a neuron not loaded (the reference's)
        steps = None                # steps the neuron in X has taken
        a_last = 0
        held = 0                    # results in the output stage
        depth = {1: 3, 2: 2}.get(T, 1)
        for cycle in range(4000):
            offer_last = int(rng.random() < 0.5)
            o_ready = int(rng.random() < 0.3)
            ctx.set(dut.a_last, a_last)
            ctx.set(port.ready, o_ready)
            load, advance, wrote = (ctx.get(dut.step.load), ctx.get(dut.step.advance),
                                    ctx.get(dut.step.wrote))
            ready, pnext = ctx.get(dut.ready), ctx.get(dut.pending_next)
            assert ctx.get(dut.hold) == pnext
            # a neuron loads only when pending, and only into a free X (or on the last step)
            assert not load or pending, f"cycle {cycle}: load without a neuron (seed {seed})"
            assert not load or steps is None or wrote, f"cycle {cycle}: load while busy"
            # a new neuron reaches acc only if the pending one is taken at this edge
            assert not (a_last and pending and not load), f"cycle {cycle}: neuron overwritten"
            # X steps while it holds a neuron; the last step waits for a free output stage
            final = steps == T - 1
            assert advance == int(steps is not None and (not final or held < depth)), \
                f"cycle {cycle}: advance (seed {seed})"
            assert wrote == int(steps is not None and final and held < depth)
            assert pnext == int(a_last or (pending and not load))
            assert ready or pnext, f"cycle {cycle}: ready low with nothing pending"
            stats["ready_low"] += not ready
            stats["stalls"] += steps is not None and final and not wrote
            pop = int(held > 0 and o_ready)
            held += wrote - pop
            assert ctx.get(port.valid) == int(held + pop - wrote > 0)
            if advance:
                steps = None if wrote else steps + 1
            if load:
                steps = 0
                stats["neurons"] += 1
            pending = bool(pnext)
            a_last = int(offer_last and ready)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert stats["neurons"] > 100 and stats["stalls"] > 10 and stats["ready_low"] > 10, stats


@pytest.mark.parametrize("T", CONTROLS)
def test_control_full_rate_timing(T):
    """Output never stalled, a last beat every T cycles (the fastest serial neurons): ready never
    falls, each neuron loads the cycle after its a_last and writes T cycles after the load."""
    seed = _seed()
    rng = random.Random(seed)
    dut, m, port = _control_harness(T)
    events = {"a_last": [], "load": [], "wrote": []}

    async def bench(ctx):
        ctx.set(port.ready, 1)
        start = rng.randrange(5)
        for cycle in range(60 * T + 10):
            a_last = int(cycle >= start and (cycle - start) % T == 0)
            ctx.set(dut.a_last, a_last)
            assert ctx.get(dut.ready), f"cycle {cycle}: ready fell (seed {seed})"
            for name, sig in (("a_last", dut.a_last), ("load", dut.step.load),
                              ("wrote", dut.step.wrote)):
                if ctx.get(sig):
                    events[name].append(cycle)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    n = len(events["wrote"])
    assert n > 50
    assert events["load"][:n] == [c + 1 for c in events["a_last"][:n]]
    assert events["wrote"] == [c + T for c in events["load"][:n]]


def test_parameter_checks():
    with pytest.raises(ValueError, match="timesteps"):
        DecodeControl(timesteps=17)
    with pytest.raises(TypeError, match="timesteps"):
        DecodeControl(timesteps=2.0)
    with pytest.raises(TypeError, match="params"):
        DecodeDatapath(params=None, acc_bits=8)
    with pytest.raises(ValueError, match="acc_bits"):
        DecodeDatapath(params=P(4, 1), acc_bits=1)
    with pytest.raises(TypeError):
        DecodeControl(4)                    # keyword-only
