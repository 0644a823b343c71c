# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the double-banked network memories (``spikepack.hw.memories``)
against a Python model of two banks: lane writes go to the shadow bank only, a commit swaps the
banks and latches the layer count (waiting while ``hold`` is high), reads take exactly
``READ_LATENCY`` cycles and ``rdata`` holds while ``ren`` is low."""

from __future__ import annotations

import random

import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.memories import MEMORY_INDEX, MEMORY_NAMES, READ_LATENCY, NetworkMemories
from spikepack.sim.runner import bench_seed

CONFIG = HardwareConfig(rows=4, cols=4, timesteps=2, weight_bits=8, bias_bits=12,
                        threshold_bits=10, max_fan_in=16, max_neurons=16, max_layers=4,
                        weight_depth=16)
#: four lanes of bias and threshold: the write data registers are one per pair of lanes
WIDE = HardwareConfig(rows=8, cols=8, timesteps=4, weight_bits=4, bias_bits=16,
                      threshold_bits=16, max_fan_in=16, max_neurons=16, max_layers=4,
                      weight_depth=16, conv=False)
CONFIGS = {"narrow": CONFIG, "wide": WIDE}


def _random_image(rng, config=CONFIG):
    """name -> {address: word} for every address of every memory (one bank)."""
    specs = config.memories
    return {name: {a: rng.getrandbits(specs[name].word_bits) for a in range(specs[name].depth)}
            for name in MEMORY_NAMES}


async def _write_image(ctx, dut, image, rng=None, config=CONFIG):
    """Every lane word of ``image``; with ``rng``, in a random order with idle cycles between
    (each lane's RAM must write its own word whatever the other lanes did before)."""
    specs = config.memories
    writes = [(name, addr, lane, (word >> (32 * lane)) & 0xFFFFFFFF)
              for name, words in image.items() for addr, word in words.items()
              for lane in range(specs[name].lanes)]
    if rng is not None:
        rng.shuffle(writes)
    for name, addr, lane, data in writes:
        ctx.set(dut.write.mem, MEMORY_INDEX[name])
        ctx.set(dut.write.addr, addr)
        ctx.set(dut.write.lane, lane)
        ctx.set(dut.write.data, data)
        ctx.set(dut.write.en, 1)
        await ctx.tick()
        if rng is not None and rng.random() < 0.2:
            ctx.set(dut.write.en, 0)
            ctx.set(dut.write.data, rng.getrandbits(32))
            await ctx.tick()
    ctx.set(dut.write.en, 0)


async def _read(ctx, dut, name, addr):
    """Issue one read and return rdata exactly READ_LATENCY cycles later (ren low meanwhile)."""
    ctx.set(getattr(dut, name).addr, addr)
    ctx.set(getattr(dut, name).en, 1)
    await ctx.tick()
    ctx.set(getattr(dut, name).en, 0)
    for _ in range(READ_LATENCY - 1):
        await ctx.tick()
    return ctx.get(getattr(dut, name).data)


async def _check_bank(ctx, dut, image, rng, seed, what):
    for name, words in image.items():
        addrs = list(words)
        rng.shuffle(addrs)
        for addr in addrs[:8]:
            got = await _read(ctx, dut, name, addr)
            assert got == words[addr], (f"seed {seed}: {what}: {name}[{addr}] = {got:#x}, "
                                        f"expected {words[addr]:#x}")
            await ctx.tick()          # ren low: rdata holds
            assert ctx.get(getattr(dut, name).data) == words[addr]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_banks_commit_and_reads(seed, name):
    print(f"seed {seed}")
    rng = random.Random(seed)
    config = CONFIGS[name]
    first, second = _random_image(rng, config), _random_image(rng, config)
    dut = NetworkMemories(config=config)

    async def tb(ctx):
        assert ctx.get(dut.layer_count) == 0
        await _write_image(ctx, dut, first, rng, config)
        ctx.set(dut.write.commit_layers, 3)
        ctx.set(dut.write.commit, 1)
        await ctx.tick()
        ctx.set(dut.write.commit, 0)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.layer_count) == 3 and not ctx.get(dut.write.commit_pending)
        await _check_bank(ctx, dut, first, rng, seed, "first network")
        # the next network goes to the shadow bank: the active one reads unchanged
        await _write_image(ctx, dut, second, rng, config)
        await _check_bank(ctx, dut, first, rng, seed, "first network while loading the second")
        # a commit while hold is high waits
        ctx.set(dut.hold, 1)
        ctx.set(dut.write.commit_layers, 2)
        ctx.set(dut.write.commit, 1)
        await ctx.tick()
        ctx.set(dut.write.commit, 0)
        for _ in range(5):
            await ctx.tick()
            assert ctx.get(dut.write.commit_pending) and ctx.get(dut.layer_count) == 3
        await _check_bank(ctx, dut, first, rng, seed, "first network while a commit waits")
        ctx.set(dut.hold, 0)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.layer_count) == 2 and not ctx.get(dut.write.commit_pending)
        await _check_bank(ctx, dut, second, rng, seed, "second network")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_swap_timing_of_the_docstring():
    """A commit decided in cycle t switches layer_count and the descriptor bank at the edge
    ending t+1 and the other memories at the edge ending t+2."""
    rng = random.Random(5)
    old, new = _random_image(rng), _random_image(rng)
    dut = NetworkMemories(config=CONFIG)

    async def tb(ctx):
        await _write_image(ctx, dut, old)
        ctx.set(dut.write.commit_layers, 1)
        ctx.set(dut.write.commit, 1)
        await ctx.tick()
        ctx.set(dut.write.commit, 0)
        for _ in range(4):
            await ctx.tick()
        await _write_image(ctx, dut, new)
        # read address 0 of every memory continuously; commit in cycle t
        for name in MEMORY_NAMES:
            ctx.set(getattr(dut, name).addr, 0)
            ctx.set(getattr(dut, name).en, 1)
        for _ in range(READ_LATENCY + 1):
            await ctx.tick()
        ctx.set(dut.write.commit_layers, 2)
        ctx.set(dut.write.commit, 1)                              # cycle t
        seen = []
        for _ in range(6):
            await ctx.tick()
            ctx.set(dut.write.commit, 0)
            seen.append({name: ctx.get(getattr(dut, name).data) for name in MEMORY_NAMES}
                        | {"layers": ctx.get(dut.layer_count)})
        # layer_count switches at the edge ending t+1 (visible from t+2)
        assert [s["layers"] for s in seen] == [1, 2, 2, 2, 2, 2]
        # descriptor bank from t+2: its reads issued then return READ_LATENCY cycles later
        for name, switch in (("descriptor", 1), ("weight", 2), ("bias", 2), ("threshold", 2)):
            first_new = switch + READ_LATENCY
            want = [old[name][0]] * first_new + [new[name][0]] * (6 - first_new)
            assert [s[name] for s in seen] == want, name

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_commit_pending_and_layer_count_under_random_commits_holds_and_resets(name):
    """``commit_pending`` and ``layer_count`` cycle by cycle against a model of the docstring's
    rules, under random commits, holds and resets: a commit is decided in the first cycle in
    which it (or a pending one) meets ``hold`` low and no swap is under way, ``layer_count``
    switches at the edge ending the cycle after, ``commit_pending`` is high from the cycle after
    a commit until then; a reset drops a pending commit but not a decided one. The draws must
    meet each case that sets commit_pending's next value differently."""
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    dut = NetworkMemories(config=CONFIGS[name])
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.dut = dut
    cycles = 3000
    seen = dict.fromkeys(("reset_at_decision", "reset_while_pending", "commit_during_swap",
                          "commit_while_pending", "waited_under_hold"), 0)

    async def tb(ctx):
        pending, pending_layers, swap, layers = False, 0, False, 0
        for cycle in range(cycles):
            commit = rng.random() < 0.15
            hold = rng.random() < (0.7 if cycle % 400 < 200 else 0.1)
            reset = rng.random() < 0.05
            new_layers = rng.randrange(1, 1 << len(dut.write.commit_layers))
            ctx.set(dut.write.commit, commit)
            ctx.set(dut.write.commit_layers, new_layers)
            ctx.set(dut.hold, hold)
            ctx.set(sync.rst, reset)
            got = (ctx.get(dut.write.commit_pending), ctx.get(dut.layer_count))
            want = (int(pending or swap), layers)
            assert got == want, (f"seed {seed} (SPIKEPACK_SEED replays) cycle {cycle}: "
                                 f"(commit_pending, layer_count) = {got}, want {want}")
            decide = (pending or commit) and not hold and not swap
            seen["reset_at_decision"] += reset and decide
            seen["reset_while_pending"] += reset and pending and not decide
            seen["commit_during_swap"] += commit and swap
            seen["commit_while_pending"] += commit and pending
            seen["waited_under_hold"] += pending and hold
            if swap:
                layers = pending_layers
            if commit:
                pending_layers = new_layers
            pending = False if reset or decide else pending or commit
            swap = decide
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert all(seen.values()), f"seed {seed}: a case was never drawn: {seen}"


def test_rejects_a_config_that_is_not_a_hardware_config():
    with pytest.raises(TypeError, match="HardwareConfig"):
        NetworkMemories(config={"rows": 4})
