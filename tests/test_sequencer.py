# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the network sequencer alone (``spikepack.hw.sequencer``): a
descriptor memory and a layer engine played by the testbench. An image streamed in on
``in_t*`` is read back through the engine's activation port exactly as the firmware packs it
(entry e holds inputs e*R .. e*R+R-1 at bits i*T); the descriptor offered on ``eng_start`` is
the one in the descriptor memory; the readout layer's beats leave on ``out_t*`` sign-extended,
TLAST on the last; the status strobes count one inference."""

from __future__ import annotations

import random

import pytest
from amaranth import Elaboratable, Module, Signal, unsigned
from amaranth.lib import memory
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import LayerDescriptor
from spikepack.hw.sequencer import NetworkSequencer

CONFIGS = {
    "4x2_T3": HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                             max_layers=4, weight_depth=64),
    "2x2_T2": HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=8, max_neurons=8,
                             max_layers=4, weight_depth=64),
}


class SequencerBench(Elaboratable):
    """The sequencer with a descriptor memory (read latency 2, as NetworkMemories)."""

    def __init__(self, config, descriptors):
        self.seq = NetworkSequencer(config=config)
        self.words = [sum(lane << (32 * i) for i, lane in enumerate(d.to_lanes()))
                      for d in descriptors]
        self.config = config

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.seq
        spec = self.config.memories["descriptor"]
        mem = memory.Memory(shape=unsigned(spec.word_bits), depth=spec.depth,
                            init=self.words + [0] * (spec.depth - len(self.words)))
        m.submodules.mem = mem
        rd = mem.read_port()
        q = Signal(spec.word_bits)
        m.d.sync += q.eq(rd.data)
        m.d.comb += [rd.addr.eq(seq.descriptor.addr), rd.en.eq(seq.descriptor.en),
                     seq.descriptor.data.eq(q)]
        return m


@pytest.mark.parametrize("name", list(CONFIGS))
def test_one_layer_inference_through_a_played_engine(name):
    config = CONFIGS[name]
    seed = sum(map(ord, name))
    print(f"seed {seed}")
    rng = random.Random(seed)
    R, T = config.rows, config.timesteps
    K = 32 // T
    N, M = rng.randrange(R + 1, config.max_fan_in + 1), rng.randrange(1, config.max_neurons + 1)
    image = [rng.randrange(1 << T) for _ in range(N)]
    desc = LayerDescriptor(fan_in=N, neurons=M, weight_base=rng.randrange(8),
                           column_base=rng.randrange(4), readout=True)
    lo, hi = -(1 << (config.widths.potential - 1)), (1 << (config.widths.potential - 1)) - 1
    potentials = [rng.choice([lo, hi, rng.randrange(lo, hi + 1)]) for _ in range(M)]
    bench = SequencerBench(config, [desc])
    seq = bench.seq
    out_bits = config.out_bits
    seen = {"start": None, "entries": [], "out": [], "done": 0}

    async def source(ctx):
        ctx.set(seq.run, 1)
        beats = [sum(v << (T * k) for k, v in enumerate(image[b:b + K]))
                 for b in range(0, N, K)]
        for i, beat in enumerate(beats):
            ctx.set(seq.in_tdata, beat)
            ctx.set(seq.in_tlast, i == len(beats) - 1)
            ctx.set(seq.in_tvalid, 1)
            while True:
                ready = ctx.get(seq.in_tready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(seq.in_tvalid, 0)

    async def engine(ctx):
        ctx.set(seq.layer_count, 1)
        for _ in range(500):
            if ctx.get(seq.eng_start.valid):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"seed {seed}: no descriptor offered")
        p = seq.eng_start.payload
        seen["start"] = tuple(ctx.get(getattr(p, f)) for f in
                              ("fan_in", "neurons", "weight_base", "column_base", "readout"))
        ctx.set(seq.eng_start.ready, 1)
        ctx.set(seq.eng_busy, 1)
        await ctx.tick()
        ctx.set(seq.eng_start.ready, 0)
        for e in range(-(-N // R)):              # the activation entries, read latency 2
            ctx.set(seq.act.addr, e)
            ctx.set(seq.act.en, 1)
            await ctx.tick()
            ctx.set(seq.act.en, 0)
            await ctx.tick()
            seen["entries"].append(ctx.get(seq.act.data))
        for i, v in enumerate(potentials):
            ctx.set(seq.eng_o.payload, {"index": i, "spikes": 0, "potential": v,
                                        "last": i == M - 1})
            ctx.set(seq.eng_o.valid, 1)
            while True:
                ready = ctx.get(seq.eng_o.ready)
                await ctx.tick()
                if ready:
                    break
            ctx.set(seq.eng_o.valid, 0)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
        ctx.set(seq.eng_busy, 0)

    async def sink(ctx):
        for _ in range(3000):
            ready = rng.random() < 0.7
            ctx.set(seq.out_tready, ready)
            valid = ctx.get(seq.out_tvalid)
            data, last = ctx.get(seq.out_tdata), ctx.get(seq.out_tlast)
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()
            if valid and ready:
                seen["out"].append((data - (1 << out_bits) if data >> (out_bits - 1) else data,
                                    last))
                if last:
                    break
        for _ in range(10):
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(engine)
    sim.add_testbench(sink)
    sim.run()
    assert seen["start"] == (N, M, desc.weight_base, desc.column_base, 1), seed
    for e, got in enumerate(seen["entries"]):
        want = sum(v << (T * i) for i, v in enumerate(image[e * R:e * R + R]))
        assert got == want, f"seed {seed}: activation entry {e}: {got:#x} != {want:#x}"
    assert seen["out"] == [(v, i == M - 1) for i, v in enumerate(potentials)], seed
    assert seen["done"] == 1, seed
