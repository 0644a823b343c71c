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
