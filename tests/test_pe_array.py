# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of the PE and of small spike arrays against the golden model.

The array tests stream several tiles back to back (weights loaded into the shadow registers by
the schedule of :func:`spikepack.hw.array.load_schedule` while the previous tile computes) and
compare every column current of every step with ``golden.step_currents`` (serial pe_mode) or
every column's packed partial potential of every tile with ``golden.global_potential`` (packed
pe_mode: bias 0, one beat per tile).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import Signal
from amaranth.hdl import EnableInserter, Fragment
from amaranth.sim import Simulator

from spikepack.hw.array import SpikeArray, load_schedule
from spikepack.hw.pe import ProcessingElement
from spikepack.sim import golden
from spikepack.sim.runner import bench_seed


def _seed():
    seed = bench_seed()
    print(f"seed {seed}")
    return seed


# --- PE ----------------------------------------------------------------------------------------

def drive_pe(pe, steps, inputs, in_bits):
    """Apply one dict of input values a cycle to a PE; return psum_out after each edge."""
    got = []

    async def tb(ctx):
        for step in steps:
            for name in inputs:
                ctx.set(getattr(pe, name), step[name])
            if in_bits:
                ctx.set(pe.psum_in, step["psum_in"])
            await ctx.tick()
            got.append(ctx.get(pe.psum_out))

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("in_bits", [0, 10])
def test_pe_accumulates_and_swaps(in_bits):
    seed = _seed()
    rng = random.Random(seed)
    bw = 6
    pe = ProcessingElement(weight_bits=bw, in_bits=in_bits, out_bits=12)
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    steps = []
    for _ in range(300):
        steps.append(dict(spike=rng.randrange(2), first=int(rng.random() < 0.2),
                          wr_en=int(rng.random() < 0.3), wr_data=rng.choice([lo, hi, rng.randint(lo, hi)]),
                          psum_in=rng.randint(-(1 << 9), (1 << 9) - 1) if in_bits else 0))
    # reference: the PE's documented behaviour, step by step
    active = shadow = 0
    expected = []
    for s in steps:
        # first swaps at the end of its cycle: the add of the same cycle still uses active
        expected.append(s["psum_in"] + (active if s["spike"] else 0))
        if s["first"]:
            active = shadow
        if s["wr_en"]:
            shadow = s["wr_data"]

    got = drive_pe(pe, steps, ("spike", "first", "wr_en", "wr_data"), in_bits)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"seed {seed}: step {i}: psum_out {g} != {e}"


@pytest.mark.parametrize("in_bits,value_bits", [(0, 4), (24, 7), (30, 10)])
def test_packed_pe_multiply_accumulates(in_bits, value_bits):
    """Packed PE: psum_out = psum_in + w * value, w written by wr_en (a write lands after the
    cycle's product), against a step-by-step reference with extreme weights and values."""
    seed = _seed()
    rng = random.Random(seed)
    bw = rng.choice([2, 8, 16])
    out_bits = max(in_bits, bw + value_bits) + 1
    pe = ProcessingElement(weight_bits=bw, in_bits=in_bits, out_bits=out_bits, mode="packed",
                           value_bits=value_bits)
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    vmax = (1 << value_bits) - 1
    plo, phi = -(1 << (in_bits - 1)) if in_bits else 0, (1 << (in_bits - 1)) - 1 if in_bits else 0
    steps = [dict(value=rng.choice([0, vmax, rng.randint(0, vmax)]),
                  wr_en=int(rng.random() < 0.5),
                  wr_data=rng.choice([lo, hi, rng.randint(lo, hi)]),
                  psum_in=rng.choice([plo, phi, rng.randint(plo, phi)]))
             for _ in range(300)]
    w = 0
    expected = []
    for st in steps:
        expected.append(st["psum_in"] + w * st["value"])
        if st["wr_en"]:
            w = st["wr_data"]
    got = drive_pe(pe, steps, ("value", "wr_en", "wr_data"), in_bits)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"seed {seed}: step {i} ({steps[i]}): psum_out {g} != {e}"


def test_pe_rejects_bad_parameters():
    with pytest.raises(TypeError, match="value_bits"):
        ProcessingElement(weight_bits=8, in_bits=0, out_bits=8, mode="packed")
    with pytest.raises(ValueError, match="value_bits"):
        ProcessingElement(weight_bits=8, in_bits=0, out_bits=8, value_bits=4)
    with pytest.raises(ValueError, match="mode"):
        ProcessingElement(weight_bits=8, in_bits=0, out_bits=8, mode="parallel")
    with pytest.raises(ValueError, match="out_bits"):
        ProcessingElement(weight_bits=8, in_bits=12, out_bits=10)
    with pytest.raises(ValueError, match="out_bits"):
        ProcessingElement(weight_bits=8, in_bits=12, out_bits=10, mode="packed", value_bits=4)
    with pytest.raises(TypeError):
        ProcessingElement(weight_bits=8.0, in_bits=0, out_bits=8)


# --- array -------------------------------------------------------------------------------------

def _pack_word(w_tile, q, g, bw):
    """Weight word q of a tile w_tile (C, R): row q*g + rr, column c at bit (rr*C + c)*bw."""
    C = w_tile.shape[0]
    word = 0
    for rr in range(g):
        for c in range(C):
            word |= (int(w_tile[c, q * g + rr]) & ((1 << bw) - 1)) << ((rr * C + c) * bw)
    return word


def _run_array(*, R, C, g, T, bw, tiles, seed, stall=0.0, mode="serial", k=1):
    """Stream ``tiles`` = [(w (C, R), z (R,))] through an R x C array; return what the array
    delivered and the golden values: serial mode the step currents (tile, C, T), packed mode
    the packed partial potentials (tile, C) = sum_r w_cr * p(z_r)."""
    rng = random.Random(seed ^ 0x5A5A)
    packed = mode == "packed"
    if packed:
        arr = SpikeArray(rows=R, cols=C, weight_bits=bw, rows_per_word=g, tag_bits=8,
                         mode="packed", timesteps=T, tau_shift=k)
    else:
        arr = SpikeArray(rows=R, cols=C, weight_bits=bw, rows_per_word=g, tag_bits=8)
    en = Signal(init=1)
    dut = EnableInserter(en)(arr)
    B = 1 if packed else T                       # beats per tile
    sched = load_schedule(rows=R, rows_per_word=g, beats=B)
    P, K = sched.period, len(tiles)
    # the schedule as a cycle list: (plane | words, first, valid, tag, wload, wgroup, wdata)
    idle = dict(valid=0, tag=0, wload=0, wgroup=0, wdata=0,
                **({"words": 0} if packed else {"plane": 0, "first": 0}))
    cycles = []
    pending = None   # weight launch of the previous cycle (1-cycle read latency)
    for mm in range(-sched.warmup, K + sched.tail + 1):
        for o in range(P):
            cyc = dict(idle)
            if 0 <= mm < K and o < B:
                z = tiles[mm][1]
                if packed:
                    cyc.update(words=sum(int(z[r]) << (r * T) for r in range(R)), valid=1,
                               tag=mm & 0xFF)
                else:
                    cyc.update(plane=sum(((int(z[r]) >> (T - 1 - o)) & 1) << r for r in range(R)),
                               first=int(o == 0), valid=1, tag=(mm * T + o) & 0xFF)
            if pending is not None:
                cyc.update(wload=1, wgroup=pending[0], wdata=pending[1])
            pending = None
            if o < len(sched.advance):
                kk = mm + sched.advance[o]
                if 0 <= kk < K:
                    pending = (o, _pack_word(tiles[kk][0], o, g, bw))
            cycles.append(cyc)
    cycles += [dict(idle)] * (R + 2)
    if not packed:
        # the swap (first) enters a cycle before its plane: delay the planes by one cycle
        # against the first bits and the weight launches
        plane_fields = ("plane", "valid", "tag")
        cycles = [{**c, **{f: (cycles[i - 1][f] if i else idle[f]) for f in plane_fields},
                   "first": c["first"]} for i, c in enumerate(cycles)]

    got = []

    async def tb(ctx):
        i = 0
        while i < len(cycles):
            stalled = rng.random() < stall
            ctx.set(en, 0 if stalled else 1)
            for name, value in cycles[i].items():
                ctx.set(getattr(arr, name), value)
            if not stalled:
                if ctx.get(arr.out_valid):
                    got.append((ctx.get(arr.out_tag), [ctx.get(arr.out[c]) for c in range(C)]))
                i += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert len(got) == K * B, f"seed {seed}: {len(got)} valid outputs, expected {K * B}"
    for idx, (tag, values) in enumerate(got):
        assert tag == idx & 0xFF, f"seed {seed}: output {idx} carries tag {tag}"
    if packed:
        result = np.array([values for _, values in got], dtype=np.int64)
        expected = np.stack([golden.global_potential(z, w, np.zeros(C, dtype=np.int64), T, k)
                             for w, z in tiles])
        return result, expected
    currents = np.zeros((K, C, T), dtype=np.int64)
    for idx, (tag, values) in enumerate(got):
        currents[idx // T, :, idx % T] = values
    expected = np.stack([golden.step_currents(z, w, T) for w, z in tiles])
    return currents, expected


def _random_tiles(rng, *, K, R, C, T, bw, extremes=False):
    lo, hi = -(1 << (bw - 1)), (1 << (bw - 1)) - 1
    tiles = []
    for k in range(K):
        kind = rng.randrange(5) if extremes else 4
        if kind == 0:
            w = np.full((C, R), lo)
        elif kind == 1:
            w = np.full((C, R), hi)
        else:
            w = np.array([[rng.randint(lo, hi) for _ in range(R)] for _ in range(C)])
        zkind = rng.randrange(4)
        z = np.array([0 if zkind == 0 else (1 << T) - 1 if zkind == 1 else rng.randrange(1 << T)
                      for _ in range(R)])
        tiles.append((w, z))
    return tiles


@pytest.mark.parametrize("R,C,g,T,stall", [
    (4, 2, 1, 4, 0.0),                   # g = 1, R = T
    (4, 2, 2, 2, 0.0),                   # g = 2, two words per tile
    (8, 2, 2, 4, 0.0),                   # the default's g with R = 2T: reads lag the skew
    (8, 2, 4, 2, 0.3),                   # stalls (clock enable) mid-stream
    (2, 4, 2, 1, 0.0),                   # T = 1: one plane per tile, g > T
    (8, 4, 1, 3, 0.0),                   # R/g = 8 > T = 3: tile period 8 > T (bubbles)
    (1, 2, 1, 1, 0.0),                   # 1 x C
    (16, 2, 8, 2, 0.2),                  # group 1 read two periods after its tile starts
])
def test_array_matches_step_currents(R, C, g, T, stall):
    seed = _seed()
    rng = random.Random(seed)
    bw = rng.choice([2, 5, 8])
    tiles = _random_tiles(rng, K=7, R=R, C=C, T=T, bw=bw, extremes=True)
    got, expected = _run_array(R=R, C=C, g=g, T=T, bw=bw, tiles=tiles, seed=seed, stall=stall)
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"seed {seed}: {len(bad)} mismatches; first at tile/col/step "
                          f"{tuple(bad[0])}: {got[tuple(bad[0])]} != {expected[tuple(bad[0])]}")


@pytest.mark.parametrize("R,C,g,T,k,stall", [
    (4, 3, 4, 4, 1, 0.0),                # g = R: one word and one beat per tile, k = 1
    (4, 2, 4, 4, 2, 0.3),                # k = 2 (p(z) spread 2 bits apart), stalls
    (8, 2, 8, 3, 3, 0.0),                # k = 3, T odd
    (8, 2, 2, 4, 2, 0.2),                # forced g < R: tile period R/g = 4 (bubbles)
    (2, 2, 2, 16, 3, 0.0),               # widest p(z): 46 bits
    (1, 2, 1, 1, 1, 0.0),                # 1 x C, T = 1
])
def test_packed_array_matches_global_potential(R, C, g, T, k, stall):
    seed = _seed()
    rng = random.Random(seed)
    bw = rng.choice([2, 5, 8])
    tiles = _random_tiles(rng, K=9, R=R, C=C, T=T, bw=bw, extremes=True)
    got, expected = _run_array(R=R, C=C, g=g, T=T, bw=bw, tiles=tiles, seed=seed, stall=stall,
                               mode="packed", k=k)
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"seed {seed}: {len(bad)} mismatches; first at tile/col "
                          f"{tuple(bad[0])}: {got[tuple(bad[0])]} != {expected[tuple(bad[0])]}")


def test_packed_array_distinct_tiles():
    """Every tile's weights differ (and all-ones spike words at k = 2), so a weight that lands
    one cycle early or late in any row shows."""
    seed = _seed()
    rng = random.Random(seed)
    R, C, T, bw = 4, 2, 4, 8
    tiles = [(np.full((C, R), k * 9 - 60) + np.arange(C * R).reshape(C, R),
              np.array([rng.choice([(1 << T) - 1, rng.randrange(1 << T)]) for _ in range(R)]))
             for k in range(10)]
    got, expected = _run_array(R=R, C=C, g=R, T=T, bw=bw, tiles=tiles, seed=seed,
                               mode="packed", k=2)
    assert (got == expected).all(), f"seed {seed}: {got} != {expected}"


def test_packed_array_parameters():
    arr = SpikeArray(rows=8, cols=4, weight_bits=8, rows_per_word=8, mode="packed",
                     timesteps=4, tau_shift=2)
    assert arr.value_bits == 7 and arr.mode == "packed"
    # default width: 8 weights of -128 times p = 85 (1010101b)
    assert arr.current_bits == golden.signed_bits(8 * -128 * 85, 8 * 127 * 85)
    from spikepack.config import HardwareConfig
    cfg = HardwareConfig(rows=8, cols=4, timesteps=4, tau_shift=2, pe_mode="packed",
                         max_fan_in=64)
    built = SpikeArray.from_config(cfg)
    Fragment.get(built, None)       # it elaborates (and so is used)
    assert (built.mode, built.rows_per_word, built.current_bits) == ("packed", 8,
                                                                    cfg.widths.potential)
    with pytest.raises(TypeError, match="timesteps"):
        SpikeArray(rows=8, cols=4, weight_bits=8, rows_per_word=8, mode="packed", tau_shift=1)
    with pytest.raises(ValueError, match="packed-mode"):
        SpikeArray(rows=8, cols=4, weight_bits=8, rows_per_word=8, timesteps=4)
    with pytest.raises(ValueError, match="tau_shift"):
        SpikeArray(rows=8, cols=4, weight_bits=8, rows_per_word=8, mode="packed",
                   timesteps=4, tau_shift=4)
    with pytest.raises(TypeError, match="plane_gated"):
        SpikeArray(rows=8, cols=4, weight_bits=8, rows_per_word=8, plane_gated=1)


def test_array_3x2_weight_swaps():
    """A 3 x 2 array (R not a power of two is fine for the array itself), eight tiles whose
    weights all differ, so any early or late swap shows."""
    seed = _seed()
    rng = random.Random(seed)
    R, C, T, bw = 3, 2, 4, 8
    tiles = [(np.full((C, R), k * 7 - 30) + np.arange(C * R).reshape(C, R),
              np.array([rng.randrange(1 << T) for _ in range(R)])) for k in range(8)]
    got, expected = _run_array(R=R, C=C, g=1, T=T, bw=bw, tiles=tiles, seed=seed)
    assert (got == expected).all(), f"seed {seed}: {got} != {expected}"


def test_load_schedule_windows():
    """Every read of the schedule lands its rows inside their write windows (independent check
    of the derivation in docs/array.md), and no two reads share a cycle."""
    for R in (1, 2, 4, 8, 16, 64):
        for g in [d for d in range(1, R + 1) if R % d == 0]:
            for T in range(1, 17):
                s = load_schedule(rows=R, rows_per_word=g, beats=T)
                P = s.period
                assert P == max(T, R // g)
                for q, d in enumerate(s.advance):
                    read = q                          # offset in period m = 0, tile k = d
                    for rr in range(g):
                        r = q * g + rr
                        write = read + 1 + rr         # launch 1 cycle after the read
                        assert (d - 1) * P + r <= write <= d * P + r - 1, (R, g, T, q, rr)
