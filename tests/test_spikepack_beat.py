# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the SpikePack unit's stage 1 (``spikepack.hw.spikepack_beat``)
alone: random beats (``valid``, ``ready``, payload and ``hold`` at random every cycle) against a
Python reference of its docstring, cycle by cycle: the addend ``current << k*(T-1-t)`` of serial
beat t of a group (the packed current as it is), bias and carry of a last beat only, ``last``,
and the latched threshold and readout (serial T >= 2: any last beat on offer unless ``hold``;
otherwise through stage-1 registers, a cycle later)."""

from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from spikepack.hw.neuron_common import check_neuron_params
from spikepack.hw.spikepack_beat import SpikePackBeat, addend_bits
from spikepack.sim.runner import bench_seed


def P(T, k, mode="serial", wb=6, fan_in=12, rows=4, bb=10, tb=7):
    return check_neuron_params(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in,
                               rows=rows, bias_bits=bb, threshold_bits=tb, input_mode=mode)


CASES = {"serial_T4_k1": P(4, 1), "serial_T3_k3": P(3, 3), "serial_T1": P(1, 2),
         "packed_T4": P(4, 2, "packed"), "packed_T1": P(1, 1, "packed")}


def wrap(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Reference:
    """Stage 1 as its docstring states it; :meth:`step` takes a cycle's inputs and moves on."""

    def __init__(self, p, fault):
        self.p, self.fault = p, fault
        self.r = dict(valid=0, last=0, add=0, bias=0, carry=0, threshold=0, readout=0)
        self.t_in = 0
        self.a_fields = (0, 0)

    def outputs(self):
        return dict(self.r)

    def step(self, valid, ready, pay, hold):
        p, r = self.p, self.r
        T, k = p.timesteps, p.tau_shift
        beat = valid and ready
        serial = p.input_mode == "serial"
        shift = k * (T - 1 - self.t_in) if serial else 0
        new = dict(valid=int(beat), last=int(beat and pay["last"]),
                   add=wrap(pay["current"] << shift, addend_bits(p)),
                   bias=pay["bias"] if pay["last"] else 0,
                   carry=int(pay["last"] and (pay["readout"] or self.fault == "compare_ge")),
                   threshold=r["threshold"], readout=r["readout"])
        if serial and T >= 2:
            if valid and pay["last"] and not hold:
                new["threshold"], new["readout"] = pay["threshold"], pay["readout"]
        elif r["last"]:
            new["threshold"], new["readout"] = self.a_fields
        self.a_fields = (pay["threshold"], pay["readout"])
        if beat and serial:
            self.t_in = 0 if self.t_in == T - 1 else self.t_in + 1
        self.r = new


@pytest.mark.parametrize("fault", [None, "compare_ge"])
@pytest.mark.parametrize("name", list(CASES))
def test_stage1_matches_reference(name, fault):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    p = CASES[name]
    dut = SpikePackBeat(params=p, fault=fault)
    ref = Reference(p, fault)
    cur_bits = len(dut.payload.current)
    seen = {"beats": 0, "last_beats": 0, "held": 0}

    async def bench(ctx):
        for cycle in range(1500):
            pay = dict(current=rng.randrange(-(1 << (cur_bits - 1)), 1 << (cur_bits - 1)),
                       bias=rng.randrange(-(1 << (p.bias_bits - 1)), 1 << (p.bias_bits - 1)),
                       threshold=rng.randrange(1 << p.threshold_bits),
                       readout=int(rng.random() < 0.3), last=int(rng.random() < 0.3))
            valid, ready, hold = (int(rng.random() < 0.7), int(rng.random() < 0.7),
                                  int(rng.random() < 0.3))
            for field, value in pay.items():
                ctx.set(getattr(dut.payload, field), value)
            ctx.set(dut.valid, valid)
            ctx.set(dut.ready, ready)
            ctx.set(dut.hold, hold)
            got = dict(valid=ctx.get(dut.addend.valid), last=ctx.get(dut.last),
                       add=ctx.get(dut.addend.add), bias=ctx.get(dut.addend.bias),
                       carry=ctx.get(dut.addend.carry), threshold=ctx.get(dut.threshold),
                       readout=ctx.get(dut.readout))
            assert got == ref.outputs(), f"cycle {cycle} (seed {seed}): {got} != {ref.outputs()}"
            seen["beats"] += valid and ready
            seen["last_beats"] += valid and ready and pay["last"]
            seen["held"] += valid and pay["last"] and hold
            ref.step(valid, ready, pay, hold)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert min(seen.values()) > 20, seen


def test_parameter_checks():
    with pytest.raises(TypeError, match="params"):
        SpikePackBeat(params=dict(timesteps=4))
    with pytest.raises(ValueError, match="fault"):
        SpikePackBeat(params=P(4, 1), fault="nope")
    with pytest.raises(TypeError):
        SpikePackBeat(P(4, 1))          # keyword-only
    with pytest.raises(ValueError, match="timesteps"):   # a hand-made NeuronParams is checked
        SpikePackBeat(params=dataclasses.replace(P(4, 1), timesteps=17))
