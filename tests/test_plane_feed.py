# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the layer engine's plane feeding (``spikepack.hw.plane_feed``):
random commands every cycle (planes, weight reads, activation reads, padding entries, launches)
against memories of read latency 2 emulated from the ports, and every array input checked at
the docstring's latencies: ``valid``/``tag``/plane bits Lp = 3 cycles after the command (the
plane being bit T-1-k of the last entry read before it, k its planes since; packed: the entry),
the swap at Lp - 1, the weight launch and its word Lw = 3 cycles after the read (packed one
more; with ``hold_words`` the command's ``launch`` Lp - 1 (+1) cycles on, the held word)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.plane_feed import PlaneFeed, command_layout, hold_words

CONFIGS = {
    "serial": dict(),
    "serial_t1_dense": dict(timesteps=1, conv=False),
    "serial_g2": dict(rows=4, cols=2, timesteps=2, weight_rows_per_word=2),
    "serial_r1": dict(rows=1, cols=4, timesteps=3),     # row 0 alone: its inverted register
    "packed": dict(pe_mode="packed"),
    "packed_r4": dict(pe_mode="packed", rows=4, cols=4, timesteps=3),
}


def random_commands(config, rng, cycles):
    layout = command_layout(config)
    widths = {name: layout[name].shape.width if hasattr(layout[name].shape, "width")
              else layout[name].shape for name in ("waddr", "wgroup", "aaddr")}
    n = config.rows // config.rows_per_word
    cmds = []
    for _ in range(cycles):
        act = rng.choice(["none", "none", "read", "pad"] if config.conv else ["none", "read"])
        cmds.append(dict(
            plane=rng.random() < 0.6, first=rng.random() < 0.3, tag=rng.getrandbits(2),
            wren=rng.random() < 0.5, waddr=rng.getrandbits(widths["waddr"]),
            wgroup=rng.randrange(n) if n > 1 else 0,
            aren=act == "read", azero=act == "pad", aaddr=rng.getrandbits(widths["aaddr"]),
            launch=rng.random() < 0.4 and hold_words(config)))
    return cmds


def simulate(config, cmds, rng):
    dut = PlaneFeed(config=config)
    R, T = config.rows, config.timesteps
    wmem, amem = {}, {}
    trace = []

    async def tb(ctx):
        wreads, areads = [], []             # (cycle, addr) of each enabled read
        for t, cmd in enumerate(cmds):
            for name, value in cmd.items():
                ctx.set(getattr(dut.cmd, name), int(value))
            if ctx.get(dut.weight.en):
                wreads.append((t, ctx.get(dut.weight.addr)))
            if ctx.get(dut.act.en):
                areads.append((t, ctx.get(dut.act.addr)))
            for reads, mem, port, bits in ((wreads, wmem, dut.weight, len(dut.weight.data)),
                                           (areads, amem, dut.act, R * T)):
                done = [a for c, a in reads if c <= t - 2]
                if done:
                    ctx.set(port.data, mem.setdefault(done[-1], rng.getrandbits(bits)))
            row = {name: ctx.get(getattr(dut, name))
                   for name in ("valid", "tag", "wload", "wgroup", "wdata")}
            if config.pe_mode == "packed":
                row["words"] = ctx.get(dut.words)
            else:
                row.update(plane=ctx.get(dut.plane), first=ctx.get(dut.first))
            trace.append(row)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return trace, wmem, amem


def expected_beat(config, cmds, amem, t):
    """The array's plane bits (serial) or words (packed) of a plane command in cycle t."""
    R, T = config.rows, config.timesteps
    reads = [c for c in range(t) if cmds[c]["aren"] or cmds[c]["azero"]]
    if not reads:
        word, since = 0, 0
    else:
        c = reads[-1]
        word = 0 if cmds[c]["azero"] else amem[cmds[c]["aaddr"]]
        since = c + 1
    if config.pe_mode == "packed":
        return word
    k = sum(1 for c in range(since, t) if cmds[c]["plane"])
    if k >= T:
        return 0
    return sum(((word >> (r * T + T - 1 - k)) & 1) << r for r in range(R))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_array_inputs_at_the_docstring_latencies(name, seed):
    print(f"seed {seed}, config {name}")
    rng = random.Random(seed)
    config = HardwareConfig(**CONFIGS[name])
    packed = config.pe_mode == "packed"
    cmds = random_commands(config, rng, 120)
    trace, wmem, amem = simulate(config, cmds, rng)
    Lp = 3
    wmask = (1 << len(PlaneFeed(config=config).wdata)) - 1
    for t, cmd in enumerate(cmds[:-5]):
        got = trace[t + Lp]
        where = f"seed {seed}, {name}: command of cycle {t}"
        assert got["valid"] == cmd["plane"], where
        if cmd["plane"]:
            assert got["tag"] == cmd["tag"], where
            beat = got["words"] if packed else got["plane"]
            assert beat == expected_beat(config, cmds, amem, t), where
        elif not packed:
            assert got["plane"] == 0, where + " (a bubble's plane bits are gated)"
        if not packed:
            assert trace[t + Lp - 1]["first"] == (cmd["plane"] and cmd["first"]), where
    w_delay = packed            # Lp - Lw = 0, plus one register packed
    if hold_words(config):
        for t, cmd in enumerate(cmds[:-5]):
            L = t + Lp - 1 + packed
            assert trace[L]["wload"] == cmd["launch"], f"seed {seed}, {name}: launch {t}"
            if cmd["launch"]:
                reads = [c for c in range(len(cmds)) if cmds[c]["wren"] and c + w_delay <= L - 3]
                if reads:
                    want = wmem[cmds[reads[-1]]["waddr"]] & wmask
                    assert trace[L]["wdata"] == want, f"seed {seed}, {name}: held word {t}"
    else:
        for t, cmd in enumerate(cmds[:-6]):
            L = t + w_delay + 3
            assert trace[L]["wload"] == cmd["wren"], f"seed {seed}, {name}: wload {t}"
            if cmd["wren"]:
                assert trace[L]["wgroup"] == cmd["wgroup"], f"seed {seed}, {name}: group {t}"
                assert trace[L]["wdata"] == wmem[cmd["waddr"]] & wmask, f"seed {seed}, {name}: word {t}"


def test_hold_words_is_the_one_word_two_ahead_case():
    assert hold_words(HardwareConfig(pe_mode="packed"))
    assert not hold_words(HardwareConfig())
