# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the hidden writer (``spikepack.hw.hidden_writer``) alone: a conv
layer's beats in the contract's order (per pooled pixel, per window position, per channel;
docs/architecture.md, "Convolution contract"), with random gaps or none (back-to-back beats of
one channel when C_out = 1), leave ``firmware.layout.to_storage`` of the golden max-pooled map
(``golden.maxpool_words``) in the hidden buffer of their parity; a dense layer's beats (random
channel and pool_first, which a dense layer ignores) leave the vector; every write lands
``latency`` cycles after its beat (2, or 4 with pooling)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import Elaboratable, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from spikepack.firmware.layout import to_storage
from spikepack.hw.hidden_writer import HiddenWriter
from spikepack.sim.golden import maxpool_words
from spikepack.sim.runner import bench_seed


class WriterBench(Elaboratable):
    def __init__(self, **params):
        self.dut = HiddenWriter(**params)
        self.mem = memory.Memory(shape=unsigned(params["rows"] * params["timesteps"]),
                                 depth=2 << self.dut.addr_bits, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.mem = self.mem
        wiring.connect(m, self.dut.mem, self.mem.write_port())
        return m


def _conv_beats(z, pool, R):
    """(index of the pooled word, channel, pool_first, spikes), in the contract's order."""
    c_out, h, w = z.shape
    k_h, k_w = pool
    cg = -(-c_out // R)
    beats = []
    for py in range(h // k_h):
        for px in range(w // k_w):
            for dy in range(k_h):
                for dx in range(k_w):
                    for o in range(c_out):
                        beats.append((((py * (w // k_w) + px) * cg) * R + o, o,
                                      int(dy == dx == 0), int(z[o, py * k_h + dy, px * k_w + dx])))
    return beats


@pytest.mark.parametrize("case", range(8))
def test_layers_leave_their_stored_maps(case):
    seed = bench_seed() + case
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed} and case 0)")
    rng = random.Random(seed)
    R = rng.choice([1, 2, 4, 8])
    T = rng.randint(1, 8)
    channels = rng.choice([1, 2, 5, 8, 16])
    pooling = rng.random() < 0.8
    layers = []
    for parity in range(3):
        if pooling and rng.random() < 0.7:
            pool = (rng.randint(1, 3), rng.randint(1, 3))
            c_out = rng.randint(1, channels)
            h, w = pool[0] * rng.randint(1, 3) + rng.randint(0, 1), pool[1] * rng.randint(1, 3)
            z = np.array([[[rng.randrange(1 << T) for _ in range(w)] for _ in range(h)]
                          for _ in range(c_out)])
            pooled = maxpool_words(z, pool)
            layers.append({"conv": 1, "beats": _conv_beats(z, pool, R),
                           "stored": to_storage(pooled, R)})
        else:
            m = rng.randint(1, 3 * R + 2)
            z = np.array([rng.randrange(1 << T) for _ in range(m)])
            layers.append({"conv": 0, "beats": [(i, rng.randrange(channels), rng.randint(0, 1),
                                                 int(z[i])) for i in range(m)],
                           "stored": to_storage(z, R)})
    depth = max(-(-len(layer["stored"]) // R) for layer in layers) + rng.randint(0, 2)
    index_bits = max(1, (depth * R).bit_length())
    bench = WriterBench(rows=R, timesteps=T, depth=depth, index_bits=index_bits,
                        channels=channels, pooling=pooling)
    dut = bench.dut
    gap = rng.choice([0.0, 0.0, 0.3])
    log = {"beats": [], "writes": []}

    async def source(ctx):
        cycle = 0
        for parity, layer in enumerate(layers):
            ctx.set(dut.parity, parity % 2)
            ctx.set(dut.conv, layer["conv"])
            for index, channel, first, spikes in layer["beats"]:
                while rng.random() < gap:
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.beat.index, index)
                ctx.set(dut.beat.channel, channel)
                ctx.set(dut.beat.pool_first, first)
                ctx.set(dut.beat.spikes, spikes)
                ctx.set(dut.valid, 1)
                log["beats"].append(cycle)
                await ctx.tick()
                cycle += 1
                ctx.set(dut.valid, 0)
            # the next layer starts once this one's writes have landed (the sequencer's
            # descriptor fetch takes longer than that)
            await ctx.tick().repeat(dut.latency + 1)
            cycle += dut.latency + 1
            stored = layer["stored"]
            entries = [sum(int(v) << (T * i) for i, v in enumerate(stored[e:e + R]))
                       for e in range(0, len(stored), R)]
            base = (parity % 2) << dut.addr_bits
            for e, x in enumerate(entries):
                got = ctx.get(bench.mem.data[base + e])
                assert got == x, (f"seed {seed}: R={R} T={T} layer {parity} "
                                  f"({'conv' if layer['conv'] else 'dense'}) entry {e}: "
                                  f"{got:#x}, expected {x:#x}")

    async def writes(ctx):
        cycle = 0
        async for _, _, en in ctx.tick().sample(dut.mem.en):
            if en:
                log["writes"].append(cycle)
            cycle += 1

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_process(writes)
    sim.run()
    # every beat is one write: the write enable is high in cycle t + latency for a beat in
    # cycle t, so the write lands at the edge ending t + latency
    assert [b + dut.latency for b in log["beats"]] == log["writes"][:len(log["beats"])], (
        f"seed {seed}: writes not {dut.latency} cycles after their beats")
