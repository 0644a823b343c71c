# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the layer engine's setup (``spikepack.hw.layer_setup``): random
dense and conv descriptors (some empty), each accepted only while idle; ``setup1`` one cycle
after the handshake, ``setup2`` two cycles after it (dense) or ``patch.setup_latency`` + 1
(conv, the docstring's wait for the first tile); the bounds on ``layer`` at ``setup2`` against
their definitions from the descriptor; ``busy`` until ``done`` (or ``setup2`` of an empty
layer)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.layer_setup import LayerSetup
from spikepack.hw.patch import setup_latency

CONFIGS = {"default": dict(), "dense_r4c2": dict(rows=4, cols=2, conv=False),
           "c1": dict(rows=4, cols=1, max_channels=16)}


def random_descriptor(config, rng):
    R, C = config.rows, config.cols
    d = dict(weight_base=rng.getrandbits(6), column_base=rng.getrandbits(5),
             readout=rng.getrandbits(1))
    if config.conv and rng.random() < 0.5:
        while True:
            K_h, K_w = rng.randint(1, 3), rng.randint(1, 3)
            p_h, p_w = rng.randint(0, K_h - 1), rng.randint(0, K_w - 1)
            s_h, s_w = rng.randint(1, 2), rng.randint(1, 2)
            H, W = rng.randint(K_h, 9), rng.randint(K_w, 9)
            H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
            k_h, k_w = rng.randint(1, min(2, H_out)), rng.randint(1, min(2, W_out))
            C_in, C_out = rng.randint(1, 12), rng.randint(1, min(16, config.max_channels))
            break
        d.update(conv=1, in_channels=C_in, in_height=H, in_width=W, kernel_h=K_h,
                 kernel_w=K_w, stride_h=s_h, stride_w=s_w, pad_h=p_h, pad_w=p_w,
                 pool_h=k_h, pool_w=k_w, out_height=H_out // k_h, out_width=W_out // k_w,
                 neurons=C_out, fan_in=K_h * K_w * -(-C_in // R) * R)
        d["positions"] = (H_out // k_h) * k_h * (W_out // k_w) * k_w
        d["window"] = k_h * k_w
    else:
        if config.conv:
            d["conv"] = 0
        d.update(fan_in=rng.choice([0, rng.randint(1, 200)]),
                 neurons=rng.choice([0, rng.randint(1, 100)]))
        if rng.random() < 0.7:
            d["fan_in"] = max(d["fan_in"], 1)
            d["neurons"] = max(d["neurons"], 1)
    return d


def expected_layer(config, d):
    R, C = config.rows, config.cols
    G, CT = -(-d["fan_in"] // R), -(-d["neurons"] // C)
    M = d["neurons"]
    conv = d.get("conv", 0)
    Q, k = d.get("positions", 1), d.get("window", 1)
    want = {"wbase": d["weight_base"], "cbase": d["column_base"], "readout": d["readout"],
            "empty": int(d["fan_in"] == 0 or M == 0)}
    if not want["empty"]:
        want.update(rt_max=G - 1, rt_max_zero=int(G == 1))
        res = {"ct_max": CT - 1, "ct_max_zero": int(CT == 1), "ct_max_one": int(CT == 2),
               "last_sel": (M - 1) % C, "last_sel_zero": int((M - 1) % C == 0)}
        if config.conv:
            want["is_conv"] = conv
            if conv:
                want["positions_m1"] = Q - 1
                res.update(cgr_out=-(-M // R) * R, window_m1=k - 1, window_one=int(k == 1),
                           window_two=int(k == 2))
            res.update(pos_left=Q - 1 if conv else 0, pos_zero=int(Q == 1 or not conv),
                       pos_one=int(conv and Q == 2), win_left=k - 1 if conv else 0,
                       win_zero=int(k == 1 or not conv), win_one=int(conv and k == 2),
                       next_end=int(CT == 1 and (Q == 1 or not conv)))
        want["results"] = res
    return want


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_setup_timing_and_bounds(name, seed):
    print(f"seed {seed}, config {name}")
    rng = random.Random(seed)
    config = HardwareConfig(**CONFIGS[name])
    dut = LayerSetup(config=config)
    descriptors = [random_descriptor(config, rng) for _ in range(6)]

    async def tb(ctx):
        for i, d in enumerate(descriptors):
            where = f"seed {seed}, {name}, descriptor {i} {d}"
            for _ in range(rng.randint(0, 3)):
                await ctx.tick()
            for field, value in d.items():
                if hasattr(dut.start.payload, field):
                    ctx.set(getattr(dut.start.payload, field), value)
            ctx.set(dut.start.valid, 1)
            assert ctx.get(dut.start.ready) and not ctx.get(dut.busy), where
            await ctx.tick()
            ctx.set(dut.start.valid, 0)
            # junk on fan_in after the handshake must not matter (the geometry fields, neurons
            # among them, stay: the patch generator reads neurons after its start)
            ctx.set(dut.start.payload.fan_in, rng.getrandbits(16))
            cycle = 1
            assert ctx.get(dut.bounds.setup1) and ctx.get(dut.busy), where
            while not ctx.get(dut.bounds.setup2):
                assert ctx.get(dut.busy) and not ctx.get(dut.start.ready), where
                await ctx.tick()
                cycle += 1
                assert cycle < 200, where + ": no setup2"
            want_cycle = 1 + setup_latency(config) if d.get("conv") else 2
            assert cycle == want_cycle, f"{where}: setup2 {cycle} cycles after, want {want_cycle}"
            want = expected_layer(config, d)
            got_res = want.pop("results", {})
            for field, value in want.items():
                assert ctx.get(getattr(dut.bounds.layer, field)) == value, f"{where}: {field}"
            for field, value in got_res.items():
                assert ctx.get(getattr(dut.bounds.layer.results, field)) == value, \
                    f"{where}: results.{field}"
            await ctx.tick()
            if want["empty"]:
                assert not ctx.get(dut.busy), where + ": an empty layer stays busy"
                continue
            for _ in range(rng.randint(0, 5)):
                assert ctx.get(dut.busy), where + ": busy fell before done"
                ctx.set(dut.start.valid, 1)       # refused while busy
                assert not ctx.get(dut.start.ready), where
                await ctx.tick()
            ctx.set(dut.start.valid, 0)
            ctx.set(dut.done, 1)
            await ctx.tick()
            ctx.set(dut.done, 0)
            assert not ctx.get(dut.busy), where + ": busy after done"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
