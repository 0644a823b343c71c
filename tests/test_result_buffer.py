# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the layer engine's result buffer (``spikepack.hw.result_buffer``):
column tiles written at random times under the credit rule (a ``finish`` only while ``room``,
its tile written later), ``o`` under random backpressure: every result once, in index order,
the last column tile's extra units dropped, ``last`` on the final beat; conv slots (index of the
pooled word, channel, pool_first) against a restatement of the module docstring's order; the
docstring's latency (3) and throughput (one result a cycle across slots); the ConvSlots
generator alone against the same order."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.result_buffer import ConvSlots, ResultBuffer, result_bits

SEEDS = [1, 2, 3, 4, 5, 6]


def bounds_of(M, C, R, positions=1, window=1):
    """The bounds the engine's setup registers (``bounds_layout``), from the layer's shape."""
    CT = -(-M // C)
    return dict(ct_max=CT - 1, ct_max_zero=CT == 1, ct_max_one=CT == 2,
                last_sel=(M - 1) % C, last_sel_zero=(M - 1) % C == 0,
                cgr_out=-(-M // R) * R, window_m1=window - 1, window_one=window == 1,
                window_two=window == 2, pos_left=positions - 1, pos_zero=positions == 1,
                pos_one=positions == 2, win_left=window - 1, win_zero=window == 1,
                win_one=window == 2, next_end=CT == 1 and positions == 1)


def expected_slots(M, C, R, positions=1, window=1, conv=False):
    """Per slot (column tile at a position): [(index, channel, pool_first)] of its results, in
    the order of the module docstring (positions, then column tiles; a conv slot's first index
    is the pooled word's storage index ((position // window) * CG_out*R) + ct*C)."""
    CT, cgr = -(-M // C), -(-M // R) * R
    slots = []
    for q in range(positions):
        for ct in range(CT):
            n = C if ct < CT - 1 else M - (CT - 1) * C
            base = (q // window) * cgr + ct * C if conv else ct * C
            slots.append([(base + c, ct * C + c, int(q % window == 0)) for c in range(n)])
    return slots


def run_buffer(config, slots, layers, seed, *, ready_p=0.6, gap_p=0.3):
    """Runs ``layers`` [(M, positions, window)] through a ResultBuffer of ``slots``: a random
    controller (``finish`` only with ``room``, the tile written 1-6 cycles later, in order) and
    a random sink. Returns, per layer, the beats [(index, channel, pool_first, spikes,
    potential, last)] and the words written, per slot."""
    rng = random.Random(seed)
    C, R, T = config.cols, config.rows, config.timesteps
    rbits = result_bits(config)
    dut = ResultBuffer(config=config, slots=slots, pos_bits=12, win_bits=6)
    out = []
    words = []
    done = []                               # layers the sink has seen the last beat of

    async def control(ctx):
        for k, (M, positions, window) in enumerate(layers):
            for name, value in bounds_of(M, C, R, positions, window).items():
                if hasattr(dut.bounds, name):
                    ctx.set(getattr(dut.bounds, name), int(value))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            tiles = positions * -(-M // C)
            layer_words = [[rng.getrandbits(rbits) for _ in range(C)] for _ in range(tiles)]
            words.append(layer_words)
            pending, finished, written, cycle = [], 0, 0, 0
            while written < tiles:
                fin = finished < tiles and ctx.get(dut.room) and rng.random() > gap_p
                ctx.set(dut.finish, fin)
                if fin:
                    finished += 1
                    pending.append(max([cycle + rng.randint(1, 6)] + [p + 1 for p in pending]))
                due = bool(pending) and pending[0] == cycle
                ctx.set(dut.i.valid, due)
                if due:
                    pending.pop(0)
                    ctx.set(dut.i.payload, sum(w << (c * rbits)
                                               for c, w in enumerate(layer_words[written])))
                    written += 1
                await ctx.tick()
                cycle += 1
                assert cycle < 5000, f"seed {seed}: no room for a column tile (deadlock)"
            ctx.set(dut.finish, 0)
            ctx.set(dut.i.valid, 0)
            while len(done) <= k:
                await ctx.tick()
                cycle += 1
                assert cycle < 10000, f"seed {seed}: the layer's last beat never came"

    async def sink(ctx):
        for M, positions, window in layers:
            beats = []
            out.append(beats)
            while not beats or not beats[-1][-1]:
                ready = rng.random() < ready_p
                ctx.set(dut.o.ready, ready)
                if ready and ctx.get(dut.o.valid):
                    p = dut.o.payload
                    beats.append((ctx.get(p.index), ctx.get(p.channel), ctx.get(p.pool_first),
                                  ctx.get(p.spikes), ctx.get(p.potential), ctx.get(p.last)))
                    assert len(beats) <= positions * M, f"seed {seed}: beats after the last"
                await ctx.tick()
            done.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(control)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert len(out) == len(layers) and all(b and b[-1][-1] for b in out), \
        f"seed {seed}: a layer did not finish"
    return out, words


def check(config, layers, out, words, seed, conv):
    C, R, T = config.cols, config.rows, config.timesteps
    pbits = config.widths.potential
    for (M, positions, window), beats, layer_words in zip(layers, out, words):
        want = []
        for s, slot in enumerate(expected_slots(M, C, R, positions, window, conv)):
            for c, (index, channel, first) in enumerate(slot):
                w = layer_words[s][c]
                pot = w & ((1 << pbits) - 1)
                pot -= (pot >> (pbits - 1)) << pbits
                want.append((index, channel if conv else 0, first if conv else 0,
                             w & ((1 << T) - 1), pot, 0))
        want[-1] = want[-1][:-1] + (1,)
        assert len(beats) == len(want), f"seed {seed}: layer {M, positions, window}: " \
                                        f"{len(beats)} beats, want {len(want)}"
        for i, (got, exp) in enumerate(zip(beats, want)):
            assert got == exp, f"seed {seed}: layer {M, positions, window}: beat {i}: " \
                               f"{got} != {exp}"


@pytest.mark.parametrize("seed", SEEDS)
def test_dense_layers_in_order_under_random_handshakes(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    config = HardwareConfig(conv=False, rows=4, cols=rng.choice([1, 2, 4, 8]),
                            timesteps=rng.choice([1, 4, 6]), max_neurons=64)
    layers = [(rng.randint(1, 40), 1, 1) for _ in range(3)]
    out, words = run_buffer(config, rng.choice([4, 8]), layers, seed,
                            ready_p=rng.choice([0.15, 0.6, 1.0]))
    check(config, layers, out, words, seed, conv=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_slots_in_order_under_random_handshakes(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    config = HardwareConfig(rows=4, cols=rng.choice([2, 4, 8]), timesteps=rng.choice([2, 4]),
                            max_channels=64)
    layers = []
    for _ in range(3):
        window = rng.choice([1, 2, 4, 6])
        layers.append((rng.randint(1, 20), window * rng.randint(1, 3), window))
    out, words = run_buffer(config, rng.choice([4, 16]), layers, seed,
                            ready_p=rng.choice([0.15, 0.6, 1.0]))
    check(config, layers, out, words, seed, conv=True)


@pytest.mark.parametrize("conv", [False, True])
def test_latency_three_and_one_result_a_cycle(conv):
    """A column tile written into an idle buffer is on ``o`` 3 cycles later; with ``o.ready``
    high and tiles written back to back, the results leave one a cycle without a gap."""
    config = HardwareConfig(conv=conv, rows=4, cols=4, timesteps=4)
    M, C = 14, 4
    dut = ResultBuffer(config=config, slots=16, pos_bits=4, win_bits=3)
    first_valid, beats = [], []

    async def tb(ctx):
        for name, value in bounds_of(M, C, 4).items():
            if hasattr(dut.bounds, name):
                ctx.set(getattr(dut.bounds, name), int(value))
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(4):
            await ctx.tick()
        for cycle in range(40):
            ctx.set(dut.i.valid, cycle < 4)
            ctx.set(dut.i.payload, cycle)
            if ctx.get(dut.o.valid):
                beats.append((cycle, ctx.get(dut.o.payload.index), ctx.get(dut.o.payload.last)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert beats[0][0] == 3, beats
    assert [b[0] for b in beats] == list(range(3, 3 + M)), beats
    assert [b[1] for b in beats] == list(range(M)) and [b[2] for b in beats][-1] == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_slots_generator_alone(seed):
    """ConvSlots pops in the docstring's order, whatever the pops' timing."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    config = HardwareConfig(rows=4, cols=rng.choice([1, 2, 4]), max_channels=64)
    C, R = config.cols, config.rows
    M, window = rng.randint(1, 24), rng.choice([1, 2, 3, 4])
    positions = window * rng.randint(1, 4)
    dut = ConvSlots(config=config, pos_bits=8, win_bits=6)
    want = [(s[0][0], s[0][1], s[0][2]) for s in expected_slots(M, C, R, positions, window, True)]
    got = []

    async def tb(ctx):
        for name, value in bounds_of(M, C, R, positions, window).items():
            ctx.set(getattr(dut.bounds, name), int(value))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while len(got) < len(want):
            pop = ctx.get(dut.o.valid) and rng.random() < 0.5
            ctx.set(dut.o.ready, pop)
            if pop:
                p = dut.o.payload
                got.append((ctx.get(p.base), ctx.get(p.chan), ctx.get(p.first), ctx.get(p.end),
                            ctx.get(p.zero)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    CT = -(-M // C)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g[:3] == w, f"seed {seed}: slot {i}: {g} != {w}"
        assert g[3] == (i == len(want) - 1), f"seed {seed}: slot {i}: end {g[3]}"
        assert g[4] == (i % CT == CT - 1), f"seed {seed}: slot {i}: zero {g[4]}"


def test_rejects_bad_slots():
    with pytest.raises(ValueError, match="slots"):
        ResultBuffer(config=HardwareConfig(), slots=6)
