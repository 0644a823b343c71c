# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the patch address generator (``spikepack.hw.patch``) against the
Python loop nest of the convolution contract (``patch.patch_sequence``, restated here as
``_reference`` from docs/architecture.md so the two can disagree): random geometries (kernels
1..5, strides 1..3, padding 0..2, pool windows 1..3, maps up to 12 x 12, channel counts not
multiples of R), seeded (``SPIKEPACK_SEED``), the seed printed. Every tile of a layer and the
start of its repetition come out in order, the first one exactly ``setup_latency`` cycles after
``start``; with ``o.ready`` high one tile a cycle; with random ``o.ready`` the same sequence; a
``start`` in the middle of a layer starts the next one cleanly."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.patch import PatchGenerator, patch_sequence, setup_latency
from spikepack.sim.runner import bench_seed


def _reference(R, C, geo):
    """The contract's tile order, written out independently of ``patch_sequence``."""
    H, W, C_in, C_out = geo["in_height"], geo["in_width"], geo["in_channels"], geo["neurons"]
    K_h, K_w, s_h, s_w = geo["kernel_h"], geo["kernel_w"], geo["stride_h"], geo["stride_w"]
    p_h, p_w, k_h, k_w = geo["pad_h"], geo["pad_w"], geo["pool_h"], geo["pool_w"]
    CG, CT = -(-C_in // R), -(-C_out // C)
    G = K_h * K_w * CG
    out = []
    for py in range(geo["out_height"]):
        for px in range(geo["out_width"]):
            for wy in range(k_h):
                for wx in range(k_w):
                    oy, ox = py * k_h + wy, px * k_w + wx
                    for _ in range(CT):
                        for rt in range(G):
                            ky, rest = divmod(rt, K_w * CG)
                            kx, cg = divmod(rest, CG)
                            iy, ix = oy * s_h + ky - p_h, ox * s_w + kx - p_w
                            inside = 0 <= iy < H and 0 <= ix < W
                            out.append((iy * W + ix) * CG + cg if inside else None)
    return out


def _geometry(rng, R, C, max_channels):
    while True:
        K_h, K_w = rng.randint(1, 5), rng.randint(1, 5)
        p_h, p_w = rng.randint(0, min(2, K_h - 1)), rng.randint(0, min(2, K_w - 1))
        s_h, s_w = rng.randint(1, 3), rng.randint(1, 3)
        H, W = rng.randint(1, 12), rng.randint(1, 12)
        if H + 2 * p_h < K_h or W + 2 * p_w < K_w:
            continue
        H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
        k_h, k_w = rng.randint(1, min(3, H_out)), rng.randint(1, min(3, W_out))
        # channel counts mostly not multiples of R
        C_in = rng.choice([c for c in range(1, max_channels + 1) if c % R] or [1])
        C_out = rng.randint(1, max_channels)
        geo = {"in_channels": C_in, "in_height": H, "in_width": W, "kernel_h": K_h,
               "kernel_w": K_w, "stride_h": s_h, "stride_w": s_w, "pad_h": p_h, "pad_w": p_w,
               "pool_h": k_h, "pool_w": k_w, "out_height": H_out // k_h,
               "out_width": W_out // k_w, "neurons": C_out}
        tiles = len(_reference(R, C, geo))
        if tiles <= 2500:
            return geo


def _run(config, layers, seed):
    """Run ``layers`` (geometry, ready probability, tiles to take before the next start) on one
    generator; return, per layer, (first-valid cycle after start, tiles, gaps, positions,
    window)."""
    dut = PatchGenerator(config=config)
    rng = random.Random(seed)
    results = []

    async def tb(ctx):
        for geo, p_ready, take in layers:
            for name, value in geo.items():
                ctx.set(getattr(dut.geometry, name), value)
            ctx.set(dut.start, 1)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while not ctx.get(dut.o.valid):
                await ctx.tick()
                cycles += 1
                assert cycles < 500, "no tile after start"
            first = cycles
            got, gaps = [], 0
            while len(got) < take:
                ready = rng.random() < p_ready
                ctx.set(dut.o.ready, ready)
                valid = ctx.get(dut.o.valid)
                if ready and valid:
                    got.append((ctx.get(dut.o.payload.addr), ctx.get(dut.o.payload.pad)))
                elif ready:
                    gaps += 1
                await ctx.tick()
            ctx.set(dut.o.ready, 0)
            results.append((first, got, gaps, ctx.get(dut.positions), ctx.get(dut.window)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return results


def _check(config, geo, result, take, seed):
    R, C = config.rows, config.cols
    want = _reference(R, C, geo)
    assert want == list(patch_sequence(
        rows=R, cols=C, in_channels=geo["in_channels"], in_height=geo["in_height"],
        in_width=geo["in_width"], kernel=(geo["kernel_h"], geo["kernel_w"]),
        stride=(geo["stride_h"], geo["stride_w"]), padding=(geo["pad_h"], geo["pad_w"]),
        pool=(geo["pool_h"], geo["pool_w"]), out_channels=geo["neurons"]))
    first, got, gaps, positions, window = result
    assert first == setup_latency(config), f"seed {seed}: {geo}: first tile after {first} cycles"
    mask = (1 << config.act_addr_bits) - 1
    for i, (addr, pad) in enumerate(got):
        w = want[i % len(want)]
        assert bool(pad) == (w is None), f"seed {seed}: {geo}: tile {i}: pad {pad}, want {w}"
        if w is not None:
            assert addr == w & mask, f"seed {seed}: {geo}: tile {i}: entry {addr}, want {w}"
    k_h, k_w = geo["pool_h"], geo["pool_w"]
    assert window == k_h * k_w
    assert positions == geo["out_height"] * k_h * geo["out_width"] * k_w
    return gaps


@pytest.mark.parametrize("case", range(4))
def test_patch_generator_matches_the_loop_nest(case):
    seed = bench_seed() + case
    print(f"seed {seed} (SPIKEPACK_SEED={seed} with case 0 reproduces it)")
    rng = random.Random(seed)
    R, C = rng.choice([(1, 2), (2, 2), (4, 4), (4, 8), (8, 4), (8, 8)])
    config = HardwareConfig(rows=R, cols=C, max_channels=rng.choice([10, 20]), max_map_side=
                            rng.choice([12, 32]), max_kernel=5, timesteps=2)
    layers, plans = [], []
    for i in range(4):
        geo = _geometry(rng, R, C, config.max_channels)
        n = len(_reference(R, C, geo))
        # always ready (throughput), random ready, and a start before the end of a layer
        p_ready = 1.0 if i == 0 else rng.choice([0.3, 0.7, 1.0])
        take = n + rng.randint(1, 40) if i < 3 else rng.randint(1, n)
        layers.append((geo, p_ready, take))
    results = _run(config, layers, seed)
    for (geo, p_ready, take), result in zip(layers, results):
        gaps = _check(config, geo, result, take, seed)
        if p_ready == 1.0:
            assert gaps == 0, f"seed {seed}: {geo}: o ran dry {gaps} times with o.ready high"


def test_patch_generator_refuses_dense_configs():
    with pytest.raises(ValueError, match="conv = False"):
        PatchGenerator(config=HardwareConfig(conv=False))
    with pytest.raises(TypeError, match="HardwareConfig"):
        PatchGenerator(config={"rows": 8})
