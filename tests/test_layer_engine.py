# amaranth: UnusedElaboratable=no
"""The layer engine's parameters, ports and formulas (its RTL behaviour and the exact cycle
formula are in ``test_layer_rtl.py``): the constructor's checks, the interfaces it shares with
the memories and the sequencer, and ``expected_cycles`` against an independent restatement of
the docstring's formula."""

from __future__ import annotations

import pytest
from amaranth import Module
from amaranth.lib import wiring

from spikepack.config import HardwareConfig
from spikepack.hw.layer_engine import (LayerEngine, compute_bound, expected_cycles, ideal_cycles,
                                       neuron_latency)
from spikepack.hw.memories import NetworkMemories
from spikepack.hw.sequencer import NetworkSequencer


def test_layer_engine_rejects_bad_configs():
    with pytest.raises(TypeError, match="HardwareConfig"):
        LayerEngine(config={"rows": 8})
    packed = LayerEngine(config=HardwareConfig(pe_mode="packed"))
    assert packed.beats == 1 and packed.period == 1
    assert len(packed.weight.data) >= 8 * 8 * 8     # one whole tile per word (g = R)
    with pytest.raises(ValueError, match="result_slots"):
        LayerEngine(config=HardwareConfig(), result_slots=3)


def test_interfaces_connect_to_the_memories_and_the_sequencer():
    config = HardwareConfig(rows=4, cols=4, max_fan_in=32, max_neurons=32, weight_depth=64)
    engine, mems, seq = (LayerEngine(config=config), NetworkMemories(config=config),
                         NetworkSequencer(config=config))
    m = Module()
    for name in ("weight", "bias", "threshold"):
        wiring.connect(m, getattr(mems, name), getattr(engine, name))
    wiring.connect(m, seq.act, engine.act)
    wiring.connect(m, seq.eng_start, engine.start)
    wiring.connect(m, engine.o, seq.eng_o)


@pytest.mark.parametrize("kw", [dict(), dict(timesteps=1), dict(pe_mode="packed"),
                                dict(neuron="lif", timesteps=6, rows=4)])
def test_expected_cycles_is_the_docstring_formula(kw):
    """L = (3 + Lm) + W*P + (K-1)*P + B + R + D_n + 3 + C_last, restated from the docstring with
    the unit's latency T + 3 and the memories' read latency 2."""
    c = HardwareConfig(**kw)
    R, C, T = c.rows, c.cols, c.timesteps
    packed = c.pe_mode == "packed"
    for n, m in ((64, 64), (200, 10), (8, 3)):
        G, CT = -(-n // R), -(-m // C)
        g = c.rows_per_word
        P = max(1 if packed else T, R // g)
        adv = [1 + (1 - q * (g - 1)) // P for q in range(R // g)]
        W, B = max(adv), 1 if packed else T
        want = (3 + 2) + W * P + (G * CT - 1) * P + B + R + (T + 3) + 3 + (m - (CT - 1) * C)
        assert expected_cycles(c, n, m) == want, (kw, n, m)
        assert ideal_cycles(c, n, m) == G * CT * B
        assert neuron_latency(c) == T + 3
        assert compute_bound(c, n) == (G * P > (max(C, T) if packed else C))


# --- conv layers in the Amaranth simulator --------------------------------------------------

def _conv_case(rng, config):
    """A random conv layer within ``config``'s limits (kernels 1..3, strides 1..2, padding
    0..2 < kernel, pooling 1..2, maps up to 6 x 6, channels not multiples of the array)."""
    R = config.rows
    while True:
        K = rng.choice([1, 2, 3])
        K_h, K_w = K, rng.choice([K, rng.randint(1, 3)])
        p_h, p_w = rng.randint(0, min(2, K_h - 1)), rng.randint(0, min(2, K_w - 1))
        s_h, s_w = rng.randint(1, 2), rng.randint(1, 2)
        H, W = rng.randint(1, 6), rng.randint(1, 6)
        if H + 2 * p_h < K_h or W + 2 * p_w < K_w:
            continue
        H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
        pool = (rng.randint(1, min(2, H_out)), rng.randint(1, min(2, W_out)))
        C_in = rng.choice([c for c in range(1, 2 * R + 2) if c % R] or [1])
        C_out = rng.randint(1, 2 * config.cols + 1)
        case = {"C_in": C_in, "C_out": C_out, "H": H, "W": W, "kernel": (K_h, K_w),
                "stride": (s_h, s_w), "pad": (p_h, p_w), "pool": pool,
                "weights": rng.choice(["random", "random", "min", "max"]),
                "thresholds": rng.choice(["random", "random", "one", "max"]),
                "spikes": rng.choice(["random", "random", "random", "ones"]),
                "prefix": rng.random() < 0.5}
        from spikepack.sim.benches.layer import conv_geometry, conv_positions
        g = conv_geometry(case)
        G = K_h * K_w * -(-C_in // R)
        if conv_positions(g) * G * -(-C_out // config.cols) <= 400:
            return case


def _run_conv_layers(config, cases, seed):
    """Run ``cases`` on LayerBenchTop in the Amaranth simulator (o always ready); return, per
    case, (beats, cycles from the descriptor handshake to the last o handshake, busy after)."""
    import numpy as np
    from amaranth.sim import Simulator

    from spikepack.sim.benches.layer import (LayerBenchTop, activation_entries, conv_geometry,
                                             conv_layout, draw_conv_layer)
    from spikepack.hw.memories import MEMORY_INDEX

    dut = LayerBenchTop(config=config)
    out = []

    async def tb(ctx):
        for index, case in enumerate(cases):
            rng = np.random.default_rng([seed, index])
            w, b, theta, z = draw_conv_layer(rng, config, case)
            g = conv_geometry(case)
            image, position = conv_layout(config, case, w, b, theta, g)
            for name, words in image.memories.items():
                ctx.set(dut.write.mem, MEMORY_INDEX[name])
                for addr, lanes in enumerate(words):
                    for lane, value in enumerate(lanes):
                        ctx.set(dut.write.addr, addr)
                        ctx.set(dut.write.lane, lane)
                        ctx.set(dut.write.data, int(value))
                        ctx.set(dut.write.en, 1)
                        await ctx.tick()
            ctx.set(dut.write.en, 0)
            ctx.set(dut.write.commit_layers, image.layer_count)
            ctx.set(dut.write.commit, 1)
            await ctx.tick()
            ctx.set(dut.write.commit, 0)
            # garbage everywhere, then the map: a padding tile that read its (meaningless)
            # entry instead of clearing its word would see it
            entries = activation_entries(config, z)
            garbage = [int(rng.integers(1 << 62)) & ((1 << config.rows * config.timesteps) - 1)
                       for _ in range(config.activation_depth)]
            for e, word in enumerate(entries + garbage[len(entries):]):
                ctx.set(dut.act_wr_addr, e)
                ctx.set(dut.act_wr_data, word)
                ctx.set(dut.act_wr_en, 1)
                await ctx.tick()
            ctx.set(dut.act_wr_en, 0)
            await ctx.tick().repeat(2)
            d = image.descriptors[position]
            for name in dut.start.payload.shape().members:
                ctx.set(getattr(dut.start.payload, name), int(getattr(d, name)))
            ctx.set(dut.start.valid, 1)
            ctx.set(dut.o.ready, 1)
            cycle = 0
            while not ctx.get(dut.start.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.start.valid, 0)
            beats, last_cycle = [], None
            while True:
                cycle += 1
                if ctx.get(dut.o.valid):
                    p = ctx.get(dut.o.payload)
                    beats.append({"index": p.index, "channel": p.channel,
                                  "pool_first": p.pool_first, "spikes": p.spikes,
                                  "last": p.last})
                    last_cycle = cycle
                    if p.last:
                        await ctx.tick()
                        break
                await ctx.tick()
                assert cycle < 50000, f"seed {seed}: case {index}: no last beat"
            out.append((w, b, theta, z, g, beats, last_cycle, ctx.get(dut.busy)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


CONV_SIM_CONFIGS = {
    "serial_4x4_T3": dict(rows=4, cols=4, timesteps=3, tau_shift=2),
    "packed_4x4_T3": dict(rows=4, cols=4, timesteps=3, tau_shift=1, pe_mode="packed"),
    "lif_2x4_T2": dict(rows=2, cols=4, timesteps=2, tau_shift=1, neuron="lif"),
}


@pytest.mark.parametrize("name", list(CONV_SIM_CONFIGS))
def test_conv_layers_match_golden_in_simulation(name):
    """Random conv layers on LayerBenchTop (Amaranth simulator, o always ready): every beat
    (index, channel, pool_first, spikes, last) as the contract orders them from the golden conv
    output, the beats max-pooled as the sequencer pools them equal the golden pooled map, and
    the cycles equal conv_expected_cycles when compute-bound (never fewer otherwise)."""
    import random

    from spikepack.firmware.layout import to_storage
    from spikepack.hw.layer_engine import conv_compute_bound, conv_expected_cycles
    from spikepack.sim import golden
    from spikepack.sim.benches.layer import (conv_positions, expected_conv_outputs,
                                             golden_conv, pool_beats)
    from spikepack.sim.runner import bench_seed

    seed = bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the cases and the data)")
    rng = random.Random(seed)
    config = HardwareConfig(**CONV_SIM_CONFIGS[name], max_fan_in=512, max_neurons=64,
                            max_channels=16, max_map_side=8, max_map_words=512, max_kernel=3,
                            weight_depth=1024, max_layers=3)
    cases = [_conv_case(rng, config) for _ in range(6)]
    for case, (w, b, theta, z, g, beats, cycles, busy) in zip(
            cases, _run_conv_layers(config, cases, seed)):
        out = golden_conv(config, w, b, theta, z, g)
        want = expected_conv_outputs(config, out, g)
        assert len(beats) == len(want), f"seed {seed}: {case}: {len(beats)} beats, want {len(want)}"
        for i, (got_b, want_b) in enumerate(zip(beats, want)):
            for key in ("index", "channel", "pool_first", "spikes", "last"):
                assert got_b[key] == want_b[key], (f"seed {seed}: {case}: beat {i}: {key} "
                                                   f"{got_b[key]}, want {want_b[key]}")
        pooled = golden.maxpool_words(out, (g.pool_h, g.pool_w))
        stored = to_storage(pooled, config.rows)
        assert (pool_beats(beats, len(stored)) == stored).all(), f"seed {seed}: {case}: pooled"
        assert not busy, f"seed {seed}: {case}: busy after the last beat"
        N, Q = g.patch(config.rows), conv_positions(g)
        formula = conv_expected_cycles(config, N, case["C_out"], Q)
        if conv_compute_bound(config, N):
            assert cycles == formula, f"seed {seed}: {case}: {cycles} cycles, formula {formula}"
        else:
            assert cycles >= formula, f"seed {seed}: {case}: {cycles} < bound {formula}"


@pytest.mark.parametrize("kw", [dict(), dict(pe_mode="packed"), dict(neuron="lif", rows=4),
                                dict(max_map_side=255)])
def test_conv_cycle_functions_are_the_docstring_formulas(kw):
    """L_conv = S_conv + W*P + (Q*K - 1)*P + B + R + D_n + 3 + C_last with S_conv = 3 + Lm +
    L_patch - 1, L_patch = 12 + the multiply phases' steps; the ideal and the utilisation of the
    MNIST CNN's first layer (3x3, 1 -> 16, 28 x 28, pool 2: Q = 784) restated."""
    from spikepack.hw.layer_engine import (conv_compute_bound, conv_expected_cycles,
                                           conv_ideal_cycles, conv_setup_cycles,
                                           conv_utilisation)
    from spikepack.hw.patch import setup_latency
    c = HardwareConfig(**kw)
    R, C, T = c.rows, c.cols, c.timesteps
    packed = c.pe_mode == "packed"
    side_bits = c.max_map_side.bit_length()
    L_patch = 12 + max(side_bits, 3) + max((c.max_map_side + 14).bit_length(), 3) + 3
    assert setup_latency(c) == L_patch
    assert conv_setup_cycles(c) == 3 + 2 + L_patch - 1
    with pytest.raises(ValueError, match="conv = False"):
        conv_setup_cycles(HardwareConfig(conv=False))
    g = c.rows_per_word
    P = max(1 if packed else T, R // g)
    adv = [1 + (1 - q * (g - 1)) // P for q in range(R // g)]
    W, B = max(adv), 1 if packed else T
    for C_in, C_out, k, Q in ((1, 16, 3, 784), (16, 32, 3, 196), (5, 3, 5, 12)):
        N = k * k * -(-C_in // R) * R
        G, CT = N // R, -(-C_out // C)
        want = (3 + 2 + L_patch - 1 + W * P + (Q * G * CT - 1) * P + B + R + (T + 3) + 3
                + C_out - (CT - 1) * C)
        assert conv_expected_cycles(c, N, C_out, Q) == want
        assert conv_compute_bound(c, N) == (G * P > (max(C, T) if packed else C))
        ideal = -(-C_in * k * k // R) * CT * Q * B
        assert conv_ideal_cycles(c, C_in, (k, k), C_out, Q) == ideal
        assert conv_utilisation(c, C_in, (k, k), C_out, Q, want) == pytest.approx(
            C_out * C_in * k * k * Q * B / (R * C * want))
    # the MNIST CNN's first layer on the default array: 9 row tiles of which 2 would do
    d = HardwareConfig()
    assert conv_ideal_cycles(d, 1, (3, 3), 16, 784) == 2 * 2 * 784 * 4
