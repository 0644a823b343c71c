"""A reset that cuts a neuron short (the layer engine's soft reset, CONTROL.SOFT_RESET) must leave
nothing of it in the unit: random neurons after a reset taken in the middle of a neuron's beats
decode exactly as the golden model says (Amaranth simulator). The SpikePack unit once kept the
cut neuron's partial sum in its (then reset-less) accumulator, and the first neuron after the
reset started from it."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from spikepack.hw.neuron_lif import LIFNeuron
from spikepack.hw.neuron_spikepack import SpikePackNeuron
from spikepack.sim.benches.neuron import make_stimulus
from spikepack.sim.benches.streams import PayloadCodec, check_records

KINDS = {"spikepack": SpikePackNeuron, "lif": LIFNeuron}


def P(T, k, wb, fan_in, rows, bb=12, tb=10, mode="serial"):
    return dict(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in, rows=rows, bias_bits=bb,
                threshold_bits=tb, input_mode=mode)


CASES = [
    ("spikepack", P(4, 1, 8, 24, 8)),
    ("spikepack", P(5, 2, 6, 16, 4)),
    ("spikepack", P(16, 1, 8, 24, 8, mode="packed")),
    ("lif", P(4, 2, 8, 24, 8)),
]


@pytest.mark.parametrize("kind,params", CASES,
                         ids=[f"{k}-T{p['timesteps']}-{p['input_mode']}" for k, p in CASES])
def test_reset_mid_neuron_leaves_nothing(kind, params):
    value = os.environ.get("SPIKEPACK_SEED")
    seed = int(value) if value else random.SystemRandom().getrandbits(32)
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    unit = KINDS[kind](**params)
    m = Module()
    # the reset of the unit's clock domain, as in the top (whose core domain's reset is the
    # registered rst | SOFT_RESET); the SpikePack unit reads it to restart its accumulator
    m.domains.sync = domain = ClockDomain("sync")
    reset = domain.rst
    m.submodules.unit = unit
    codec = PayloadCodec(unit.input_layout)
    out_codec = PayloadCodec(unit.output_layout)
    # the cut neurons: beats of random neurons of several groups, never their last beat
    junk = make_stimulus(kind, params, 8, rng, edges=False, groups=3)
    junk_words = [w for w, last in zip(codec.pack_columns(junk.beats), junk.beats["last"])
                  if not last]
    stim = make_stimulus(kind, params, 12, rng, edges=False)
    rounds = 4
    outputs = []

    async def bench(ctx):
        ctx.set(unit.o.ready, 1)
        for r in range(rounds):
            # part of a neuron, then the reset (in the middle of its beats)
            start = int(rng.integers(0, len(junk_words) - 4))
            for w in junk_words[start:start + int(rng.integers(1, 4))]:
                ctx.set(unit.i.payload.as_value(), w)
                ctx.set(unit.i.valid, 1)
                while True:
                    ready = ctx.get(unit.i.ready)
                    await ctx.tick()
                    if ready:
                        break
            ctx.set(unit.i.valid, 0)
            ctx.set(reset, 1)
            await ctx.tick()
            ctx.set(reset, 0)
            # whole neurons: each must decode as the golden model says
            words = codec.pack_columns(stim.beats)
            got = []
            head = 0
            for _ in range(50 * len(words) + 200):
                if head < len(words):
                    ctx.set(unit.i.payload.as_value(), words[head])
                    ctx.set(unit.i.valid, 1)
                else:
                    ctx.set(unit.i.valid, 0)
                took = head < len(words) and ctx.get(unit.i.ready)
                if ctx.get(unit.o.valid):
                    got.append(ctx.get(unit.o.payload.as_value()))
                await ctx.tick()
                head += bool(took)
                if len(got) == len(stim):
                    break
            ctx.set(unit.i.valid, 0)
            outputs.append(got)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(outputs) == rounds
    for r, got in enumerate(outputs):
        check_records(stim.expected, [out_codec.unpack(w) for w in got], seed=seed,
                      what=f"{kind} neuron after reset {r}", context=lambda i: stim.notes[i])
