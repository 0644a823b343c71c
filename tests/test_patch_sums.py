# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of S2-S6 of the patch generator (``spikepack.hw.patch_sums``)
against the im2col enumeration of the convolution contract (written out here): random conv
geometries, seeded (``SPIKEPACK_SEED``, the seed printed); the steps and origin are computed
in Python, the loop nest's steps (move, reset) are fed one per ``adv`` (random, ~70% of
cycles), and the tiles written (``valid`` and ``adv``) must be the layer's tiles in order:
the entry (modulo 2**addr_bits) of every tile inside the map, ``pad`` for every other."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.patch_sums import PatchSums
from spikepack.sim.runner import bench_seed


def _tiles(R, C, g):
    """The contract's tile order (entry, or None for padding), and the loop indices of each
    tile (innermost first: cg, kx, ky, ct, wx, wy, px, py) for the steps."""
    H, W, CG, CT = g["H"], g["W"], -(-g["C_in"] // R), -(-g["C_out"] // C)
    out, idx = [], []
    for py in range(g["H_p"]):
        for px in range(g["W_p"]):
            for wy in range(g["k_h"]):
                for wx in range(g["k_w"]):
                    for ct in range(CT):
                        for ky in range(g["K_h"]):
                            for kx in range(g["K_w"]):
                                for cg in range(CG):
                                    oy, ox = py * g["k_h"] + wy, px * g["k_w"] + wx
                                    iy = oy * g["s_h"] + ky - g["p_h"]
                                    ix = ox * g["s_w"] + kx - g["p_w"]
                                    inside = 0 <= iy < H and 0 <= ix < W
                                    out.append((iy * W + ix) * CG + cg if inside else None)
                                    idx.append((cg, kx, ky, ct, wx, wy, px, py))
    return out, idx


def _geometry(rng):
    while True:
        g = {"K_h": rng.randint(1, 5), "K_w": rng.randint(1, 5), "s_h": rng.randint(1, 3),
             "s_w": rng.randint(1, 3), "H": rng.randint(1, 12), "W": rng.randint(1, 12),
             "C_in": rng.randint(1, 20), "C_out": rng.randint(1, 20)}
        g["p_h"] = rng.randint(0, min(2, g["K_h"] - 1))
        g["p_w"] = rng.randint(0, min(2, g["K_w"] - 1))
        H_out = (g["H"] + 2 * g["p_h"] - g["K_h"]) // g["s_h"] + 1
        W_out = (g["W"] + 2 * g["p_w"] - g["K_w"]) // g["s_w"] + 1
        if H_out < 1 or W_out < 1:
            continue
        g["k_h"], g["k_w"] = rng.randint(1, min(3, H_out)), rng.randint(1, min(3, W_out))
        g["H_p"], g["W_p"] = H_out // g["k_h"], W_out // g["k_w"]
        return g


@pytest.mark.parametrize("case", range(4))
def test_sums_give_the_im2col_entries(case):
    seed = bench_seed() + case
    print(f"seed {seed} (SPIKEPACK_SEED={seed} with case 0 reproduces it)")
    rng = random.Random(seed)
    R, C = rng.choice([(2, 2), (4, 4), (8, 4), (4, 8)])
    config = HardwareConfig(rows=R, cols=C, max_channels=20, max_map_side=12, max_kernel=5,
                            timesteps=2)
    mask = (1 << config.act_addr_bits) - 1
    dut = PatchSums(config=config)

    async def tb(ctx):
        for _layer in range(3):
            g = _geometry(rng)
            want, idx = _tiles(R, C, g)
            while len(want) > 3000:
                g = _geometry(rng)
                want, idx = _tiles(R, C, g)
            CG, W = -(-g["C_in"] // R), g["W"]
            steps = {"org": -(g["p_h"] * W + g["p_w"]) * CG & mask, "d_ky": W * CG & mask,
                     "d_wx": g["s_w"] * CG, "d_wy": g["s_h"] * W * CG & mask,
                     "d_px": g["k_w"] * g["s_w"] * CG & mask,
                     "d_py": g["k_h"] * g["s_h"] * W * CG & mask,
                     "sxp": g["k_w"] * g["s_w"], "syp": g["k_h"] * g["s_h"], "s_w": g["s_w"],
                     "s_h": g["s_h"], "ix0": -g["p_w"], "iy0": -g["p_h"], "H": g["H"], "W": W}
            for name, value in steps.items():
                ctx.set(getattr(dut.steps, name), value)
            ctx.set(dut.control.restart, 1)
            await ctx.tick()
            ctx.set(dut.control.restart, 0)
            ctx.set(dut.control.init, 1)
            await ctx.tick()
            ctx.set(dut.control.init, 0)
            n, k, got = len(idx), 0, []
            while len(got) < n + 5:
                # the step from tile k to tile k + 1: the outermost loop whose index changes moves,
                # the ones inside it reset (all of them after the last tile)
                a, b = idx[k % n], idx[(k + 1) % n]
                i = max(j for j in range(8) if a[j] != b[j]) if (k + 1) % n else 8
                move = 1 << i if i < 8 else 0
                ctx.set(dut.step.move, move)
                ctx.set(dut.step.reset, (1 << i) - 1 if i < 8 else 0xFF)
                adv = rng.random() < 0.7
                ctx.set(dut.control.adv, adv)
                if adv and ctx.get(dut.valid):
                    got.append((ctx.get(dut.tile.addr), ctx.get(dut.tile.pad)))
                await ctx.tick()
                k += adv
            ctx.set(dut.control.adv, 0)
            for t, (addr, pad) in enumerate(got):
                w = want[t % n]
                assert bool(pad) == (w is None), f"seed {seed}: {g}: tile {t}: pad {pad}, want {w}"
                if w is not None:
                    assert addr == w & mask, f"seed {seed}: {g}: tile {t}: {addr}, want {w}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
