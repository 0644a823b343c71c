# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the stream helpers (``spikepack.hw.stream``): the skid buffer
passes every beat once and in order under random valid/ready, at one beat a cycle with latency 1,
and its ``i.ready`` is a flip-flop; the delay line delays by exactly its length."""

from __future__ import annotations

import random

import pytest
from amaranth import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikepack.hw.stream import OutputBuffer, SkidBuffer, delay, or_all

#: the two skid buffers: the same stream behaviour, different clock enables
BUFFERS = [SkidBuffer, OutputBuffer]


@pytest.mark.parametrize("buffer", BUFFERS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_skid_buffer_keeps_order_under_random_handshakes(seed, buffer):
    print(f"seed {seed}")
    rng = random.Random(seed)
    beats = [rng.getrandbits(12) for _ in range(300)]
    dut = buffer(12)
    got = []
    ready_trace = []

    async def source(ctx):
        for word in beats:
            while rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, word)
            ctx.set(dut.i.valid, 1)
            while True:
                ready = ctx.get(dut.i.ready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        while len(got) < len(beats):
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            ready_trace.append((ready, ctx.get(dut.i.ready)))
            await ctx.tick()
            if valid and ready:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    for i, (g, w) in enumerate(zip(got, beats)):
        assert g == w, f"seed {seed}: beat {i}: {g:#x} != {w:#x}"
    assert len(got) == len(beats)


@pytest.mark.parametrize("buffer", BUFFERS)
def test_skid_buffer_full_rate_latency_one_and_registered_ready(buffer):
    dut = buffer(8)
    log = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(12):
            ctx.set(dut.i.valid, cycle < 10)
            ctx.set(dut.i.payload, cycle)
            log.append((cycle, ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload)))
            await ctx.tick()
        # a stall: i.ready must not follow o.ready in the same cycle (it is a flip-flop)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()            # output register full
        before = ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready) == before
        await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert all(ready for _, ready, _, _ in log)
    # beat c, taken in cycle c, is presented in cycle c + 1 (latency 1, one beat a cycle)
    for cycle, _, valid, payload in log[1:11]:
        assert valid and payload == cycle - 1


@pytest.mark.parametrize("cycles", [0, 1, 4])
def test_delay_line(cycles):
    m = Module()
    m.domains.sync = ClockDomain()      # also for cycles = 0 (no register at all)
    a = Signal(8)
    q = Signal(8)
    m.d.comb += q.eq(delay(m, a, cycles, name="x"))
    seen = []

    async def tb(ctx):
        for v in range(20):
            ctx.set(a, v * 7 % 256)
            seen.append(ctx.get(q))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = [0] * cycles + [v * 7 % 256 for v in range(20)]
    assert seen == want[:20]


def test_delay_and_or_all_refuse_bad_arguments():
    with pytest.raises(ValueError, match="cycles"):
        delay(Module(), Signal(), -1, name="x")
    with pytest.raises(ValueError, match="at least one"):
        or_all([])
    assert or_all([1, 2, 4]) == 7


@pytest.mark.parametrize("buffer", BUFFERS)
def test_skid_buffer_signature_is_a_stream_pair(buffer):
    dut = buffer(5)
    assert dut.signature.members["i"].flow == wiring.In
    assert dut.i.payload.shape().width == 5 and dut.shape == 5
