# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the input writer (``spikepack.hw.input_writer``) alone: images of
random lengths, streamed with random gaps as ``tests/stream_reference.py`` packs them, land in
the two input buffers entry by entry (entry e holds words e*R .. e*R+R-1 at bits i*T, zeros
after the image's last word in its last entry), alternately; a full pair of buffers holds the
stream back until ``release`` frees one; ``image_ready``/``bank``/``images`` follow; words beyond
the buffer are dropped with one ``overflow`` per beat that starts there; with no gaps and a free
buffer one beat a cycle streams when a beat fills at most one entry (K <= R, R % K == 0)."""

from __future__ import annotations

import random

import pytest
from amaranth import Elaboratable, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from spikepack.hw.input_writer import InputWriter
from spikepack.sim.runner import bench_seed

from stream_reference import input_beats


class WriterBench(Elaboratable):
    def __init__(self, rows, timesteps, depth):
        self.dut = InputWriter(rows=rows, timesteps=timesteps, depth=depth)
        self.mem = memory.Memory(shape=unsigned(rows * timesteps), depth=2 << self.dut.addr_bits,
                                 init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.mem = self.mem
        wiring.connect(m, self.dut.mem, self.mem.write_port())
        return m


def _entries(words, R, T, count):
    """What a buffer must hold after an image of ``words``: ``count`` entries written, the
    last one zero beyond the image."""
    out = []
    for e in range(count):
        chunk = words[e * R:(e + 1) * R]
        out.append(sum(int(w) << (T * i) for i, w in enumerate(chunk)))
    return out


@pytest.mark.parametrize("case", range(12))
def test_images_land_in_alternate_buffers(case):
    seed = bench_seed() + case
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed} and case 0)")
    rng = random.Random(seed)
    R = rng.choice([1, 2, 4, 8, 16])
    T = rng.randint(1, 8)
    depth = rng.randint(2, 12)
    bench = WriterBench(R, T, depth)
    dut = bench.dut
    K = 32 // T
    gap = rng.choice([0.0, 0.3])
    images = []
    for _ in range(5):
        n = rng.randint(1, depth * R + (2 * K if rng.random() < 0.3 else 0))
        images.append([rng.randrange(1 << T) for _ in range(n)])
    log = {"overflows": 0, "checked": 0}

    async def source(ctx):
        for words in images:
            beats = input_beats(words, T)
            for i, beat in enumerate(beats):
                while rng.random() < gap:
                    await ctx.tick()
                ctx.set(dut.i.payload.data, beat)
                ctx.set(dut.i.payload.last, i == len(beats) - 1)
                ctx.set(dut.i.valid, 1)
                while True:
                    ready = ctx.get(dut.i.ready)
                    await ctx.tick()
                    if ready:
                        break
                ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        # plays the sequencer: waits for a ready image in `bank`, checks the buffer, releases
        for index, words in enumerate(images):
            for _ in range(20000):
                if ctx.get(dut.image_ready):
                    break
                log["overflows"] += ctx.get(dut.overflow)
                await ctx.tick()
            else:
                raise AssertionError(f"seed {seed}: image {index} never became ready")
            bank = ctx.get(dut.bank)
            # image_ready rises with the TLAST beat's last write still in the write register
            # (written at t + 2, the sequencer reads much later)
            for _ in range(2):
                log["overflows"] += ctx.get(dut.overflow)
                await ctx.tick()
            assert bank == index % 2, f"seed {seed}: image {index} in buffer {bank}"
            kept = min(len(words), depth * R)
            count = -(-kept // R)
            expected = _entries(words[:kept], R, T, count)
            # the TLAST beat zeroes the rest of the last entry only within the buffer
            got = [ctx.get(bench.mem.data[(bank << dut.addr_bits) + e]) for e in range(count)]
            for e, (g, x) in enumerate(zip(got, expected)):
                if len(words) > depth * R and e == count - 1:
                    continue            # a truncated image's last entry: cut mid-beat
                assert g == x, (f"seed {seed}: R={R} T={T} depth={depth} image {index} "
                                f"({len(words)} words) entry {e}: {g:#x}, expected {x:#x}")
            log["checked"] += 1
            for _ in range(rng.randint(0, 30)):
                log["overflows"] += ctx.get(dut.overflow)
                await ctx.tick()
            ctx.set(dut.release, 1)
            await ctx.tick()
            ctx.set(dut.release, 0)

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(consumer)
    sim.run()
    assert log["checked"] == len(images), f"seed {seed}: checked {log['checked']} images"


def test_one_beat_a_cycle_and_overflow_count():
    """R = 8, T = 4 (K = 8 words a beat, one entry a beat): an image of 4 entries streams in
    4 consecutive cycles; an image of depth + 3 entries overflows 3 beats."""
    R, T, depth = 8, 4, 6
    bench = WriterBench(R, T, depth)
    dut = bench.dut
    seen = {"ready": [], "overflow": 0}

    async def bench_process(ctx):
        await ctx.tick().repeat(3)      # out of reset: `space` is a register
        for n_beats in (4, depth + 3):
            taken = 0
            ctx.set(dut.i.valid, 1)
            start = None
            cycle = 0
            while taken < n_beats:
                ctx.set(dut.i.payload.data, taken + 1)
                ctx.set(dut.i.payload.last, taken == n_beats - 1)
                ready = ctx.get(dut.i.ready)
                seen["overflow"] += ctx.get(dut.overflow)
                await ctx.tick()
                cycle += 1
                if ready:
                    start = cycle if start is None else start
                    taken += 1
            ctx.set(dut.i.valid, 0)
            seen["ready"].append(cycle - start + 1)
            for _ in range(12):
                seen["overflow"] += ctx.get(dut.overflow)
                await ctx.tick()
            assert ctx.get(dut.images) == len(seen["ready"])

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(bench_process)
    sim.run()
    assert seen["ready"][0] == 4, f"4 beats took {seen['ready'][0]} cycles"
    assert seen["overflow"] == 3, f"{seen['overflow']} overflow strobes, expected 3"
