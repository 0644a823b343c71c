# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the stream helpers (``spikepack.hw.stream``): the skid buffer
passes every beat once and in order under random valid/ready, at one beat a cycle with latency 1,
and its ``i.ready`` is a flip-flop; the skid entry does the same with latency 0, cycle by cycle as
a model of its docstring says; the delay line delays by exactly its length."""

from __future__ import annotations

import random

import pytest
from amaranth import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikepack.hw.stream import SkidBuffer, SkidEntry, delay, or_all
from spikepack.sim.runner import bench_seed

BUFFERS = [SkidBuffer]


@pytest.mark.parametrize("buffer", BUFFERS + [SkidEntry])
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


def test_skid_entry_follows_its_model_cycle_by_cycle():
    """Random valid, payload and ready against a model of the docstring: ``o`` shows the held
    beat while the entry is full, else ``i`` as it is (latency 0); the entry fills with a beat
    offered and not taken; ``i.ready`` is ``~full`` and does not move with ``o.ready`` in its
    cycle."""
    seed = bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the handshakes)")
    rng = random.Random(seed)
    dut = SkidEntry(10)
    seen = {"filled": 0, "through": 0}

    async def tb(ctx):
        full, held = False, 0
        for cycle in range(3000):
            valid, payload = rng.random() < 0.7, rng.getrandbits(10)
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, payload)
            ctx.set(dut.o.ready, 0)
            ready_before = ctx.get(dut.i.ready)
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            assert ctx.get(dut.i.ready) == ready_before == (not full), f"seed {seed}: {cycle}"
            assert ctx.get(dut.o.valid) == (full or valid), f"seed {seed}: cycle {cycle}"
            if full or valid:
                want = held if full else payload
                assert ctx.get(dut.o.payload) == want, f"seed {seed}: cycle {cycle}: payload"
            seen["through"] += valid and not full and ready
            if not full:
                held = payload
            full = (full or valid) and not ready
            seen["filled"] += full
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert min(seen.values()) > 300, f"seed {seed}: {seen}"


@pytest.mark.parametrize("buffer", BUFFERS + [SkidEntry])
def test_skid_buffer_signature_is_a_stream_pair(buffer):
    dut = buffer(5)
    assert dut.signature.members["i"].flow == wiring.In
    assert dut.i.payload.shape().width == 5 and dut.shape == 5


@pytest.mark.parametrize("read_guard", [True, False])
@pytest.mark.parametrize("depth", [2, 4, 8])
def test_run_ahead_fifo_order_flags_and_the_producer_contract(depth, read_guard):
    """A producer that enables its write from ``room`` a cycle before (a register) and a
    consumer that reads at random: the words leave in order, none is lost, ``r_rdy`` and
    ``room`` always equal the level a model counts (held > 0, held <= depth - 2), and the
    write is always accepted (the level never exceeds depth)."""
    import random

    from spikepack.hw.stream import RunAheadFifo
    from spikepack.sim.runner import bench_seed

    seed = bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the handshakes)")
    rng = random.Random(seed)
    dut = RunAheadFifo(width=12, depth=depth, read_guard=read_guard)
    got, sent = [], []

    async def tb(ctx):
        held = 0
        want_write = 0                  # the producer's registered enable
        word = 0
        cycle = 0
        # read 1,000 words whatever the draw (depth 2 moves about one word in three cycles, so
        # a fixed 3,000 cycles read fewer one run in 60); a stuck FIFO stops at 30,000 cycles
        while len(got) <= 1000 and cycle < 30000:
            cycle += 1
            assert ctx.get(dut.r_rdy) == (held > 0), f"seed {seed}: cycle {cycle}: r_rdy"
            assert ctx.get(dut.room) == (held <= depth - 2), f"seed {seed}: cycle {cycle}: room"
            # (without the guard the consumer keeps its promise: no read when empty)
            read = rng.random() < 0.6 and (read_guard or held > 0)
            ctx.set(dut.r_en, read)
            ctx.set(dut.w_en, want_write)
            ctx.set(dut.w_data, word)
            if read and held:
                got.append(ctx.get(dut.r_data))
            popped = read and held > 0
            if want_write:
                assert held - popped < depth or popped, f"seed {seed}: cycle {cycle}: overflow"
                sent.append(word)
                word = (word + 1) % 4096
            held += want_write - popped
            assert 0 <= held <= depth, f"seed {seed}: cycle {cycle}: level {held}"
            want_write = ctx.get(dut.room) and rng.random() < 0.8
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == sent[:len(got)], f"seed {seed}: order differs"
    assert len(sent) - len(got) <= depth and len(got) > 1000, f"seed {seed}: {len(got)} read"


def test_run_ahead_fifo_refuses_bad_geometry():
    from spikepack.hw.stream import RunAheadFifo
    for kw in (dict(width=0, depth=4), dict(width=8, depth=3), dict(width=8, depth=1)):
        with pytest.raises(ValueError):
            RunAheadFifo(**kw)
