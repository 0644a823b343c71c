"""System bench of the whole accelerator (``spikepack_top``) under Verilator, through its real AXI
interfaces with cocotbext-axi: AxiLiteMaster on ``s_axil``, AxiStreamSource on ``s_axis_load``
and ``s_axis_in`` (random pauses), AxiStreamSink on ``m_axis_out`` (random backpressure).

Every readout potential of every image is compared with :func:`spikepack.sim.golden.run_network`
for the network that was committed when the image ran. Run by ``tests/test_system_rtl.py``; the
host-side helpers at the top (image packing, random calibrated networks, the expected constant
registers) are plain Python, also used by the Amaranth-simulator test ``tests/test_sequencer.py``.
"""

from __future__ import annotations

import math
import random

import numpy as np

from spikepack.config import HardwareConfig
from spikepack.sim.golden import (global_potential, lif_layer, run_network, spikepack_layer,
                                  step_currents)

__all__ = ["input_beats", "random_network", "extreme_network", "expected_constants",
           "golden_logits", "config_from_args"]


# --- host-side helpers ---------------------------------------------------------------------------

def input_beats(z, T: int) -> list[int]:
    """The s_axis_in beats of one image: K = 32 // T spike words a beat, input i in beat i // K
    at bits (i % K)*T, zeros beyond N0."""
    K = 32 // T
    z = [int(v) for v in z]
    beats = []
    for b in range(math.ceil(len(z) / K)):
        word = 0
        for k, v in enumerate(z[b * K:b * K + K]):
            assert 0 <= v < (1 << T)
            word |= v << (k * T)
        beats.append(word)
    return beats


def random_network(rng: np.random.Generator, config: HardwareConfig, sizes, *, probe=None):
    """A random network of layer sizes ``sizes`` (N0, M0, M1, ...), with weights over the full
    range and thresholds calibrated on random inputs so that hidden spike words spread over
    0 .. 2**T - 1 (neither all silent nor all saturated)."""
    T, k = config.timesteps, config.tau_shift
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_hi = (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    P = ((1 << (k * T)) - 1) // ((1 << k) - 1)
    z = rng.integers(0, 1 << T, size=(64, sizes[0])) if probe is None else probe
    layers = []
    for i, (N, M) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(w_lo, w_hi + 1, size=(M, N))
        v = global_potential(z, w, np.zeros(M, dtype=np.int64), T, k)
        scale = max(1, int(np.abs(v).max()))
        b = rng.integers(-min(b_hi, scale // 4), min(b_hi, scale // 4) + 1, size=M)
        if i == len(sizes) - 2:
            layers.append((w, b, None))
            break
        if config.neuron == "spikepack":
            # levels theta * p(z) reach theta * P: put a high quantile of v near the top
            q = np.quantile(v + b, rng.uniform(0.6, 0.98), axis=0)
            t = q / P * rng.uniform(0.5, 1.5, size=M)
        else:
            # LIF: a step current of about theta makes a neuron fire
            current = step_currents(z, w, T) + b[:, None]
            t = np.quantile(current, rng.uniform(0.3, 0.8), axis=(0, 2)) * rng.uniform(0.5, 1.5, size=M)
        t = np.clip(np.nan_to_num(t).astype(np.int64), 1, t_hi)
        layers.append((w, b, t))
        fn = spikepack_layer if config.neuron == "spikepack" else lif_layer
        z = fn(z, w, b, t, T, k)
    return layers


def extreme_network(rng: np.random.Generator, config: HardwareConfig, sizes):
    """Every value at an end of its range: weights all most negative or most positive per
    neuron, biases and thresholds at their extremes (threshold 1 and 2**bits - 1)."""
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_lo, b_hi = -(1 << (config.bias_bits - 1)), (1 << (config.bias_bits - 1)) - 1
    t_hi = (1 << config.threshold_bits) - 1
    layers = []
    for i, (N, M) in enumerate(zip(sizes[:-1], sizes[1:])):
        sign = rng.integers(0, 2, size=(M, 1))
        w = np.where(sign == 1, np.full((M, N), w_hi), np.full((M, N), w_lo))
        if rng.random() < 0.3:
            w = rng.choice([w_lo, w_hi], size=(M, N))
        b = rng.choice([b_lo, b_hi, 0], size=M)
        t = None if i == len(sizes) - 2 else rng.choice([1, t_hi], size=M)
        layers.append((w, b, t))
    return layers


def golden_logits(z, layers, config: HardwareConfig) -> np.ndarray:
    logits, _ = run_network(np.asarray(z, dtype=np.int64), layers, config.timesteps,
                            config.tau_shift, config.neuron)
    return logits


def expected_constants(c: HardwareConfig) -> dict[str, int]:
    """The configuration registers' values, written out from docs/registers.md's field layout
    (independently of the register table)."""
    mems = c.memories
    return {
        "ID": 0x53504B31,
        "VERSION": 0x00010000,
        "SIGNATURE": c.signature,
        "ARRAY": (c.rows | c.cols << 8 | c.timesteps << 16 | c.tau_shift << 24
                  | (c.neuron == "lif") << 28 | (c.pe_mode == "packed") << 29),
        "WIDTHS": (c.weight_bits | c.bias_bits << 8 | c.threshold_bits << 16
                   | c.widths.potential << 24),
        "MAX_FAN_IN": c.max_fan_in, "MAX_NEURONS": c.max_neurons, "MAX_LAYERS": c.max_layers,
        "WEIGHT_DEPTH": c.weight_depth,
        "COLUMN_DEPTH": c.max_layers * math.ceil(c.max_neurons / c.cols),
        "ACT_DEPTH": math.ceil(max(c.max_fan_in, c.max_neurons) / c.rows),
        "GEOMETRY": (c.rows_per_word | mems["weight"].lanes << 8 | mems["bias"].lanes << 16
                     | mems["threshold"].lanes << 24),
        "STREAMS": (32 // c.timesteps) | (32 * math.ceil(c.widths.potential / 32)) << 8,
    }


def config_from_args(args) -> HardwareConfig:
    return HardwareConfig(**args["config"])
