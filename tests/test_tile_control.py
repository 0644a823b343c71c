# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the layer engine's tile controller (``spikepack.hw.tile_control``):
random dense and conv layer bounds (some empty), driven with ``LayerSetup``'s timing (``setup1``
a cycle after the handshake, ``setup2`` a cycle later or, conv, ``patch.setup_latency`` after
``setup1``), a random stream of patch tiles and random result-buffer credit (``room_next``);
every cycle's command, ``finish`` and tile pop checked against a Python restatement of the load
schedule (:func:`spikepack.hw.layer_engine.schedule`): period pm presents the beats of tile
pm - W, reads weight group q of tile pm - W + advance[q] at offset q and the activation entry
of tile pm - W + 1 at offset P - 1, pausing before a finishing decision while the credit (a
cycle old) is out or the cooldown (``spacing``) runs. Never paused, the command of a layer's
last beat comes exactly when the engine's cycle formulas (``expected_cycles``,
``conv_expected_cycles``) say it must reach the array. Seeded with
:func:`spikepack.sim.runner.bench_seed` (printed; ``SPIKEPACK_SEED`` replays)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.layer_engine import (RESULT, beats_per_tile, conv_expected_cycles,
                                       expected_cycles, neuron_latency, schedule)
from spikepack.hw.patch import setup_latency
from spikepack.hw.plane_feed import MEMORY_READ_LATENCY, hold_words
from spikepack.hw.result_buffer import counter_bits
from spikepack.hw.tile_control import TileController
from spikepack.sim.runner import bench_seed

CONFIGS = {
    "serial": dict(),                                                   # P = T = 4, n = 4
    "serial_g2": dict(rows=4, cols=2, timesteps=2, weight_rows_per_word=2),
    "serial_t1_dense": dict(timesteps=1, conv=False),                   # P = 1, hold_words
    "serial_g1": dict(rows=4, cols=2, timesteps=2, weight_rows_per_word=1, conv=False),  # P = 4 > T
    "serial_tail": dict(rows=16, cols=2, timesteps=2, weight_rows_per_word=8),  # advance -2
    "packed": dict(pe_mode="packed"),                                   # P = 1, W = 2
    "packed_r4": dict(pe_mode="packed", rows=4, cols=4, timesteps=3),
}
POS_BITS, WIN_BITS = 6, 3


def engine_spacing(config):
    """The engine's cooldown: a SpikePack unit's cycles_per_neuron(1) in packed mode."""
    return max(1, config.timesteps) if config.pe_mode == "packed" else 1


def random_layer(config, rng):
    C = config.cols
    rt_bits, ct_bits, _ = counter_bits(config)
    conv = config.conv and rng.random() < 0.5
    G = rng.randint(1, min(7, 1 << rt_bits))
    CT = rng.randint(1, min(4, 1 << ct_bits))
    Q = rng.randint(1, 6) if conv else 1
    empty = rng.random() < 0.1
    return dict(conv=conv, G=G, CT=CT, Q=Q, empty=empty,
                M=rng.randint((CT - 1) * C + 1, CT * C),
                wbase=rng.getrandbits(config.memories["weight"].addr_bits))


def decisions(config, layer):
    """The layer's decisions, unpaused, as a Python loop over periods and offsets: each a dict
    of the command fields that matter (None: don't care) and ``finish``, ``read`` (an
    activation read: ``rt`` the row tile it reads)."""
    if layer["empty"]:
        return []
    sched = schedule(config)
    P, W, adv = sched.period, sched.warmup, sched.advance
    span = W + sched.tail
    n = config.rows // config.rows_per_word
    B = beats_per_tile(config)
    G, K = layer["G"], layer["G"] * layer["CT"]
    total = layer["Q"] * K
    wmask = (1 << config.memories["weight"].addr_bits) - 1

    def exists(j):
        return 0 <= j < total

    out = []
    for pm in range(total + span):
        for q in range(P):
            j = pm - W                      # the plane tile
            d = dict(first=1, plane=0, wren=0, read=False, finish=False)
            d["first"] = int(q == 0)
            if exists(j) and q < B:
                rt = (j % K) % G
                d.update(plane=1,
                         tag=int(rt == G - 1 and q == B - 1) | int(rt == 0 and q == 0) << 1)
                d["finish"] = rt == G - 1 and q == 0
            wq = q if n > 1 else 0
            if (n > 1 and q < n) or (n == 1 and q == 0):
                w = pm - W + adv[wq]
                if exists(w):
                    d.update(wren=1, waddr=(layer["wbase"] + (w % K) * n + wq) & wmask,
                             wgroup=wq)
            a = pm - W + 1
            if q == P - 1 and exists(a):
                d.update(read=True, rt=(a % K) % G)
            out.append(d)
    return out


def reference(config, layers, spacing, room_p, rng):
    """Cycle by cycle: the inputs to drive (``drive``: setup1/setup2/layer fields by cycle;
    ``room``: room_next by cycle) and the outputs expected (``cmd`` by cycle, None when no
    decision was made the cycle before; ``finish``, ``pops`` as sets of cycles; the handshake
    cycle and the cycle of the last beat's command of each layer)."""
    drive, room, cmd, finish, pops, marks = {}, {}, {}, set(), set(), []
    launch = 0                              # the previous decision's weight read (hold_words)
    paused = [0]
    last_finish = -10 ** 9
    t = 0
    for layer in layers:
        t += rng.randint(1, 4)
        h = t                               # the handshake
        s = h + 1 + (setup_latency(config) if layer["conv"] else 1)
        G, CT, Q = layer["G"], layer["CT"], layer["Q"]
        bounds = dict(wbase=layer["wbase"], rt_max=G - 1, rt_max_zero=int(G == 1),
                      empty=int(layer["empty"]), is_conv=int(layer["conv"]),
                      positions_m1=Q - 1 if layer["conv"] else rng.getrandbits(POS_BITS),
                      ct_max=CT - 1, ct_max_zero=int(CT == 1))
        if config.conv:
            bounds["pos_zero"] = int(Q == 1 or not layer["conv"])
        # LayerSetup's timing: the weight base from setup1, the rest from setup2
        junk = {k: rng.getrandbits(1 if k not in ("rt_max", "ct_max", "positions_m1") else 3)
                for k in bounds}
        junk["wbase"] = layer["wbase"]
        drive[h + 1] = dict(setup1=1, setup2=0, **junk)
        for c in range(h + 2, s):
            drive[c] = dict(setup1=0, setup2=0)
        drive[s] = dict(setup1=0, setup2=1, **bounds)
        drive[s + 1] = dict(setup1=0, setup2=0)
        c, last_plane = s + 1, None
        for d in decisions(config, layer):
            while d["finish"]:
                r = room.setdefault(c - 1, int(rng.random() < room_p))
                if r and c - last_finish >= spacing:
                    break
                c += 1                      # a pause: no decision this cycle
                paused[0] += 1
            room.setdefault(c - 1, int(rng.random() < room_p))
            cmd[c + 1] = dict(d, launch=launch)
            launch = d["wren"]
            if d["finish"]:
                finish.add(c)
                last_finish = c
            if d["read"]:
                pops.add(c)
            if d["plane"]:
                last_plane = c + 1
            c += 1
        marks.append((h, last_plane))
        t = c
    for c in range(t + 4):
        room.setdefault(c, int(rng.random() < room_p))
    print(f"{len(layers)} layers, {len(cmd)} decisions, {paused[0]} pause cycles, "
          f"{len(finish)} finishes")
    return drive, room, cmd, finish, pops, marks, t + 4


def run(config, layers, spacing, room_p, seed):
    rng = random.Random(seed)
    dut = TileController(config=config, pos_bits=POS_BITS, win_bits=WIN_BITS, spacing=spacing)
    drive, room, cmd, finish, pops, marks, cycles = reference(config, layers, spacing, room_p, rng)
    tiles = [(rng.getrandbits(config.act_addr_bits), int(rng.random() < 0.3))
             for _ in range(len(pops) + 1)] if config.conv else []
    n = config.rows // config.rows_per_word
    layer_at = {}                           # the layer each cycle belongs to (for aaddr)
    for i, (h, _) in enumerate(marks):
        layer_at[h] = i
    seen = {"last_plane": {}}

    async def tb(ctx):
        popped, layer = 0, None
        for t in range(cycles):
            layer = layer_at.get(t, layer)
            where = (f"seed {seed}, cycle {t}, layer {layer} "
                     f"{layers[layer] if layer is not None else ''}")
            for name, value in drive.get(t, {}).items():
                b = dut.bounds
                target = (b.layer.results if name in ("ct_max", "ct_max_zero", "pos_zero")
                          else b.layer) if name not in ("setup1", "setup2") else b
                ctx.set(getattr(target, name), value)
            ctx.set(dut.room_next, room[t])
            if config.conv:
                ctx.set(dut.tiles.valid, 1)
                ctx.set(dut.tiles.payload.addr, tiles[popped][0])
                ctx.set(dut.tiles.payload.pad, tiles[popped][1])
                pop = ctx.get(dut.tiles.ready)
                assert pop == (t in pops), f"{where}: tile pop {pop}"
            assert ctx.get(dut.finish) == (t in finish), f"{where}: finish"
            got = {f: ctx.get(getattr(dut.cmd, f)) for f in
                   ("plane", "first", "tag", "wren", "waddr", "wgroup", "aren", "azero", "aaddr",
                    "launch")}
            want = cmd.get(t)
            if want is None:                # no decision: no beat, no read, no launch
                assert not (got["plane"] or got["wren"] or got["aren"] or got["azero"]
                            or got["launch"]), f"{where}: action without a decision {got}"
            else:
                assert got["plane"] == want["plane"], f"{where}: plane {got} {want}"
                assert got["first"] == want["first"], f"{where}: first {got} {want}"
                if want["plane"]:
                    assert got["tag"] == want["tag"], f"{where}: tag {got} {want}"
                    seen["last_plane"][layer] = t
                assert got["wren"] == want["wren"], f"{where}: wren {got} {want}"
                if want["wren"]:
                    assert got["waddr"] == want["waddr"], f"{where}: waddr {got} {want}"
                    if n > 1:
                        assert got["wgroup"] == want["wgroup"], f"{where}: wgroup {got} {want}"
                if hold_words(config):
                    assert got["launch"] == want["launch"], f"{where}: launch {got} {want}"
                read = want["read"]
                if config.conv and layers[layer]["conv"]:
                    addr, pad = tiles[popped_at[t]] if read else (0, 0)
                    assert (got["aren"], got["azero"]) == (int(read and not pad),
                                                           int(read and pad)), \
                        f"{where}: aren/azero {got} {want}"
                    if read and not pad:
                        assert got["aaddr"] == addr, f"{where}: patch tile {got} {want}"
                else:
                    assert (got["aren"], got["azero"]) == (int(read), 0), f"{where}: aren {got}"
                    if read:
                        assert got["aaddr"] == want["rt"], f"{where}: aaddr {got} {want}"
            await ctx.tick()
            if config.conv and pop:
                popped_at[t + 1] = popped   # the command register shows the tile a cycle on
                popped += 1

    popped_at = {}
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return marks, seen["last_plane"]


def check_formulas(config, layers, marks, last_plane, spacing, seed):
    """Never paused: the last beat's command comes when the engine's latency formula needs it
    (the formula less what follows the command: Lm to the plane register, R, the unit's
    latency, the result buffer's RESULT and the last column tile's C_last outputs)."""
    P = schedule(config).period
    for i, (layer, (h, ref_last)) in enumerate(zip(layers, marks)):
        if layer["empty"]:
            assert i not in last_plane, f"seed {seed}: layer {i} (empty) issued planes"
            continue
        G, CT, M, R, C = layer["G"], layer["CT"], layer["M"], config.rows, config.cols
        if layer["conv"]:
            formula = conv_expected_cycles(config, G * R, M, layer["Q"])
        else:
            formula = expected_cycles(config, G * R, M)
        after = MEMORY_READ_LATENCY + R + neuron_latency(config) + RESULT + (M - (CT - 1) * C)
        got = last_plane[i] - h
        if G * P >= spacing:                # the cooldown never bites
            assert got == formula - after, (f"seed {seed}: layer {i} {layer}: last beat's "
                                             f"command {got} cycles after the handshake, the "
                                             f"formula says {formula - after}")
        else:
            assert got >= formula - after, \
                f"seed {seed}: layer {i} {layer}: faster than the formula"


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("room_p", [1.0, 0.6, 0.25])
def test_tile_schedule(name, room_p):
    config = HardwareConfig(**CONFIGS[name])
    seed = bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} replays), config {name}, room_next p={room_p}")
    rng = random.Random(seed)
    layers = [random_layer(config, rng) for _ in range(12)]
    spacing = engine_spacing(config)
    marks, last_plane = run(config, layers, spacing, room_p, seed)
    if room_p == 1.0:
        check_formulas(config, layers, marks, last_plane, spacing, seed)


@pytest.mark.parametrize("name", ["serial_g2", "packed_r4"])
def test_cooldown(name):
    """Any ``spacing``: finishes at least ``spacing`` cycles apart, otherwise the same schedule."""
    config = HardwareConfig(**CONFIGS[name])
    seed = bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} replays), config {name}")
    rng = random.Random(seed)
    spacing = rng.choice([2, 3, 5, 9])
    layers = [random_layer(config, rng) for _ in range(6)]
    run(config, layers, spacing, rng.choice([1.0, 0.5]), seed)


def test_parameters():
    config = HardwareConfig()
    for bad in (0, -1):
        with pytest.raises(ValueError):
            TileController(config=config, spacing=bad)
    with pytest.raises(TypeError):
        TileController(config=config, pos_bits=True)
    with pytest.raises(TypeError):
        TileController(config="default")
    assert TileController(config=config, spacing=4).spacing == 4
    assert "tiles" not in TileController(config=HardwareConfig(conv=False)).signature.members
