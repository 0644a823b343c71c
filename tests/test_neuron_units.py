# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the SpikePack and LIF neuron units against the golden model:
random neurons of 1..3 groups, directed edges, random stalls on both sides, packed mode, and the
docstring timing (no input bubbles, cycles per neuron, latency) measured cycle by cycle. And the
SpikePack decode datapath (``decode_model``: shifted comparison, clamping, saturation, widths)
against ``golden.decode_serial``, exhaustively for small widths and by hypothesis at the edges."""

from __future__ import annotations

import os
import random


import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.hw.neuron_common import NeuronBase, check_neuron_params
from spikepack.hw.neuron_lif import LIFNeuron
from spikepack.hw.neuron_spikepack import SpikePackNeuron, decode_model
from spikepack.sim import golden
from spikepack.sim.benches.neuron import make_stimulus
from spikepack.sim.benches.streams import PayloadCodec, check_records


KINDS = {"spikepack": SpikePackNeuron, "lif": LIFNeuron}


def _seed():
    value = os.environ.get("SPIKEPACK_SEED")
    seed = int(value) if value else random.SystemRandom().getrandbits(32)
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    return seed


def simulate(dut: NeuronBase, words: list[int], n_out: int, *, gap=0.0, stall=0.0, seed=0,
             max_cycles=None):
    """Drive ``words`` into ``dut.i`` and collect ``n_out`` outputs. Returns (outputs as ints,
    input transfer cycles, output transfer cycles). Checks the stream rules on the way: o.valid
    holds with a stable payload until o.ready; i.ready and o... do not depend on i.valid."""
    rng = random.Random(seed)
    result = {"out": [], "in_cycles": [], "out_cycles": []}
    max_cycles = max_cycles or 50 + 6 * (len(words) + n_out * (dut.timesteps + 3))

    async def bench(ctx):
        queue = list(words)
        head = 0
        valid = 0
        held = None
        cycle = 0
        while len(result["out"]) < n_out:
            if not valid and head < len(queue) and (gap <= 0 or rng.random() >= gap):
                ctx.set(dut.i.payload.as_value(), queue[head])
                valid = 1
            ctx.set(dut.i.valid, 0)
            ready_without = ctx.get(dut.i.ready)
            ctx.set(dut.i.valid, valid)
            i_ready = ctx.get(dut.i.ready)
            assert i_ready == ready_without, f"cycle {cycle}: i.ready depends on i.valid"
            o_ready = 0 if (stall > 0 and rng.random() < stall) else 1
            ctx.set(dut.o.ready, 0)
            ready_o0 = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, o_ready)
            assert ctx.get(dut.i.ready) == ready_o0, f"cycle {cycle}: i.ready depends on o.ready"
            o_valid = ctx.get(dut.o.valid)
            o_payload = ctx.get(dut.o.payload.as_value())
            if held is not None:
                assert o_valid and o_payload == held, \
                    f"cycle {cycle}: o.valid/payload changed before o.ready (seed {seed})"
            await ctx.tick()
            cycle += 1
            if valid and i_ready:
                head += 1
                valid = 0
                result["in_cycles"].append(cycle)
            held = o_payload if (o_valid and not o_ready) else None
            if o_valid and o_ready:
                result["out"].append(o_payload)
                result["out_cycles"].append(cycle)
            assert cycle < max_cycles, (f"timeout after {cycle} cycles: {head} of {len(words)} "
                                        f"beats in, {len(result['out'])} of {n_out} out (seed {seed})")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["out"], result["in_cycles"], result["out_cycles"]


def run_and_check(kind, params, count, *, gap, stall, seed, edges=True, fault=None):
    dut = KINDS[kind](**params, **({"_fault": fault} if fault else {}))
    stim = make_stimulus(kind, params, count, np.random.default_rng(seed), edges=edges)
    in_codec = PayloadCodec(dut.input_layout)
    out_codec = PayloadCodec(dut.output_layout)
    words = in_codec.pack_columns(stim.beats)
    out, in_cycles, out_cycles = simulate(dut, words, len(stim), gap=gap, stall=stall, seed=seed)
    check_records(stim.expected, [out_codec.unpack(w) for w in out], seed=seed, what="neuron",
                  context=lambda i: stim.notes[i])
    return dut, stim, in_cycles, out_cycles


def P(T=4, k=1, wb=8, fan_in=24, rows=8, bb=12, tb=10, mode="serial"):
    return dict(timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in, rows=rows, bias_bits=bb,
                threshold_bits=tb, input_mode=mode)


CASES = [
    ("spikepack", P()),
    ("spikepack", P(T=1, k=2, wb=3, fan_in=12, rows=4)),
    ("spikepack", P(T=5, k=3, wb=4, fan_in=9, rows=4, tb=6)),
    ("spikepack", P(T=3, k=2, wb=16, fan_in=6, rows=2, bb=20, tb=16)),
    ("spikepack", P(T=4, k=1, mode="packed")),
    ("spikepack", P(T=2, k=3, wb=5, fan_in=16, rows=4, mode="packed")),
    ("spikepack", P(T=1, k=1, wb=2, fan_in=4, rows=2, tb=3, mode="packed")),
    ("lif", P()),
    ("lif", P(T=1, k=2, wb=3, fan_in=12, rows=4)),
    ("lif", P(T=5, k=3, wb=4, fan_in=9, rows=4, tb=6)),
    ("lif", P(T=3, k=2, wb=16, fan_in=6, rows=2, bb=20, tb=16)),
    ("lif", P(T=2, k=3, wb=5, fan_in=16, rows=4, tb=6)),
]


@pytest.mark.parametrize("kind,params", CASES, ids=[f"{k}-T{p['timesteps']}-k{p['tau_shift']}-"
                                                    f"w{p['weight_bits']}-{p['input_mode']}"
                                                    for k, p in CASES])
def test_random_and_edges_under_stalls(kind, params):
    seed = _seed()
    run_and_check(kind, params, 120, gap=0.3, stall=0.3, seed=seed)


@pytest.mark.parametrize("kind,params", [
    ("spikepack", P(T=4)), ("spikepack", P(T=1, fan_in=16)), ("spikepack", P(T=3, k=2)),
    ("lif", P(T=4)), ("lif", P(T=1, fan_in=16)), ("lif", P(T=3, k=2)), ("lif", P(T=2, k=3)),
])
def test_full_rate_timing_matches_docstring(kind, params):
    """Output never stalled, input always valid: no input bubble at all (every cycle moves a
    beat), neurons complete every G*T cycles, and o.valid comes exactly `latency` cycles after
    the last beat's handshake."""
    seed = _seed()
    dut, stim, in_cycles, out_cycles = run_and_check(kind, params, 80, gap=0.0, stall=0.0,
                                                     seed=seed, edges=False)
    T = params["timesteps"]
    assert dut.latency == T + 3      # the documented value, both kinds
    assert in_cycles == list(range(in_cycles[0], in_cycles[0] + len(in_cycles))), \
        "an input bubble at full rate"
    lasts = np.cumsum([g * T for g in stim.groups]) - 1          # index of each last beat
    last_cycles = np.array(in_cycles)[lasts]
    assert np.all(np.diff(last_cycles) == np.array([dut.cycles_per_neuron(g)
                                                    for g in stim.groups[1:]]))
    # cycle numbers count edges: o.valid is high in cycle c + latency (c: the cycle whose edge
    # took the last beat) and, never stalled, is taken by that cycle's edge
    assert np.all(np.array(out_cycles) - last_cycles == dut.latency), \
        (np.array(out_cycles) - last_cycles)[:10]


@pytest.mark.parametrize("T,G", [(4, 1), (4, 2), (2, 3), (3, 3), (1, 1), (1, 2)])
def test_packed_timing(T, G):
    """Packed mode: one neuron per max(G, T) cycles; latency T + 3 for a neuron into an idle
    unit; no input bubble when G >= T."""
    seed = _seed()
    params = P(T=T, k=1, fan_in=8 * G, rows=8, mode="packed")
    dut = SpikePackNeuron(**params)
    rng = np.random.default_rng(seed)
    stim = make_stimulus("spikepack", params, 60, rng, edges=False, groups=G)
    words = PayloadCodec(dut.input_layout).pack_columns(stim.beats)
    out, in_cycles, out_cycles = simulate(dut, words, len(stim), seed=seed)
    codec = PayloadCodec(dut.output_layout)
    check_records(stim.expected, [codec.unpack(w) for w in out], seed=seed)
    last_cycles = np.array(in_cycles)[G - 1::G]
    assert dut.latency == T + 3
    assert out_cycles[0] - last_cycles[0] == dut.latency
    assert np.all(np.diff(last_cycles)[2:] == max(G, T))
    if G >= T:
        assert in_cycles == list(range(in_cycles[0], in_cycles[0] + len(in_cycles)))


@pytest.mark.parametrize("kind", ["spikepack", "lif"])
def test_compare_ge_fault_is_caught(kind):
    """The checker bites: a unit decoding with >= instead of > mismatches on the edge cases."""
    seed = _seed()
    with pytest.raises(AssertionError, match="mismatch in spikes"):
        run_and_check(kind, P(T=3), 10, gap=0.2, stall=0.2, seed=seed, fault="compare_ge")


def test_parameter_checks():
    good = P()
    with pytest.raises(TypeError, match="timesteps"):
        SpikePackNeuron(**{**good, "timesteps": 4.0})
    with pytest.raises(ValueError, match="timesteps"):
        SpikePackNeuron(**{**good, "timesteps": 17})
    with pytest.raises(ValueError, match="tau_shift"):
        LIFNeuron(**{**good, "tau_shift": 4})
    with pytest.raises(ValueError, match="rows"):
        SpikePackNeuron(**{**good, "rows": 25})
    with pytest.raises(ValueError, match="input_mode"):
        SpikePackNeuron(**{**good, "input_mode": "parallel"})
    with pytest.raises(ValueError, match="serial"):
        LIFNeuron(**{**good, "input_mode": "packed"})
    with pytest.raises(ValueError, match="_fault"):
        SpikePackNeuron(**good, _fault="nope")
    import inspect
    for cls in (SpikePackNeuron, LIFNeuron, NeuronBase):   # keyword-only parameters
        assert all(p.kind is p.KEYWORD_ONLY or p.kind is p.VAR_KEYWORD
                   for name, p in inspect.signature(cls.__init__).parameters.items()
                   if name != "self")
    from spikepack.sim.golden import WidthError
    with pytest.raises(WidthError):
        check_neuron_params(**{**good, "fan_in": 1 << 24, "rows": 8, "weight_bits": 16,
                               "timesteps": 16, "tau_shift": 3})


def test_ports_and_from_config():
    # dense-only hardware: the largest neuron fan-in is max_fan_in (and rows = min(R, fan_in))
    config = HardwareConfig(rows=8, cols=4, timesteps=6, tau_shift=2, weight_bits=6,
                            bias_bits=14, threshold_bits=12, max_fan_in=4, conv=False)
    # conv hardware: the largest conv patch R * ceil(max_channels / R) * max_kernel**2 counts too
    conv = HardwareConfig(rows=8, cols=4, timesteps=6, tau_shift=2, weight_bits=6,
                          bias_bits=14, threshold_bits=12, max_fan_in=4, max_channels=9,
                          max_kernel=3)
    for cls in (SpikePackNeuron, LIFNeuron):
        unit = cls.from_config(conv)
        Fragment.get(unit, None)        # made in neuron_common: the pragma above does not cover it
        assert (unit.fan_in, unit.rows) == (8 * 2 * 9, 8)
        assert unit.widths == conv.widths
        unit = cls.from_config(config)
        Fragment.get(unit, None)        # it elaborates (and so is used)
        assert (unit.timesteps, unit.tau_shift, unit.fan_in, unit.rows) == (6, 2, 4, 4)
        assert unit.widths == config.widths
        layout = dict(unit.input_layout)
        assert [name for name, _ in unit.input_layout] == ["current", "bias", "threshold",
                                                           "readout", "last"]
        assert layout["current"].width == config.widths.current
        assert dict(unit.output_layout)["spikes"].width == 6
        assert dict(unit.output_layout)["potential"].width == config.widths.potential
        with pytest.raises(AttributeError):
            unit.timesteps = 3
    packed = SpikePackNeuron.from_config(HardwareConfig(pe_mode="packed"))
    Fragment.get(packed, None)
    assert dict(packed.input_layout)["current"].width == packed.widths.potential


# --- the SpikePack decode datapath against the golden decode ---------------------------------

def _minimal_width(tb, T, k):
    """The narrowest decode register the unit ever builds (decode_bits without the potential)."""
    return max(tb + 1 + k * (T - 1), k + 1)


def _check_model(vs, theta, T, k, W, pbits):
    want = golden.decode_serial(np.asarray(vs, dtype=np.int64),
                                np.full(len(vs), theta, dtype=np.int64), T, k)
    for v, z in zip(vs, want):
        got = decode_model(int(v), theta, False, timesteps=T, tau_shift=k, width=W,
                           potential_bits=pbits)[0]
        assert got == z, (f"hidden v={v} theta={theta} T={T} k={k} W={W}: spikes {got:b}, "
                          f"golden {int(z):b}")
        if -(1 << (pbits - 1)) <= v < 1 << (pbits - 1):
            pot = decode_model(int(v), theta, True, timesteps=T, tau_shift=k, width=W,
                               potential_bits=pbits)[1]
            assert pot == v, f"readout v={v} theta={theta} T={T} k={k} W={W}: potential {pot}"


def test_decode_model_exhaustive_small_widths():
    """Every theta and every v the register can hold (sampled beyond 2**13 values), T = 1..5,
    k = 1..3, threshold_bits 1..3, at the narrowest width and two bits wider: the widths,
    clamping and saturation arguments of the SpikePack docstring, checked, not argued."""
    rng = np.random.default_rng(1)
    count = 0
    for tb in (1, 2, 3):
        for T in (1, 2, 3, 4, 5):
            for k in (1, 2, 3):
                for W in (_minimal_width(tb, T, k), _minimal_width(tb, T, k) + 2):
                    vs = np.arange(-(1 << (W - 1)), 1 << (W - 1))
                    if len(vs) > 1 << 13:
                        vs = np.unique(np.r_[vs[:1500], vs[-1500:],
                                             rng.choice(vs, 3000, replace=False)])
                    for theta in range(1, 1 << tb):
                        _check_model(vs, theta, T, k, W, W)
                        count += len(vs)
    assert count > 300_000


@st.composite
def _decode_case(draw):
    T = draw(st.integers(1, 16))
    k = draw(st.sampled_from((1, 2, 3)))
    tb = draw(st.integers(1, 24))
    W = _minimal_width(tb, T, k) + draw(st.sampled_from((0, 0, 1, 5)))
    assume(W <= 61)     # the golden model's int64 limit (units refuse wider potentials too)
    tmax = (1 << tb) - 1
    theta = draw(st.one_of(st.just(1), st.just(tmax), st.integers(1, tmax)))
    levels = golden.spike_levels(T, k)
    z = draw(st.integers(0, (1 << T) - 1))
    vmax = (1 << (W - 1)) - 1
    around = int(theta * levels[z]) + draw(st.integers(-2, 2))      # on a level and next to it
    v = draw(st.one_of(st.just(around), st.integers(-3, 3), st.just(vmax), st.just(-vmax - 1),
                       st.integers(-vmax - 1, vmax),
                       st.just(int(theta * levels[-1]) + draw(st.integers(-1, 2)))))
    return min(max(v, -vmax - 1), vmax), theta, T, k, W


@settings(max_examples=600)
@given(_decode_case())
def test_decode_model_matches_golden_at_edges(case):
    """T up to 16, threshold up to 24 bits: exact levels theta*p(z) and +-1, v <= 0, the
    saturation level theta*P and beyond, the register's extremes."""
    v, theta, T, k, W = case
    _check_model([v], theta, T, k, W, W)


@pytest.mark.parametrize("params", [P(), P(T=8, k=1, fan_in=256, rows=4, bb=16, tb=16),
                                    P(T=16, k=3, wb=4, fan_in=16, rows=4, tb=6),
                                    P(T=1, k=3, wb=2, fan_in=1, rows=1, bb=2, tb=1)])
def test_decode_model_at_unit_widths(params):
    """The model at a real unit's widths (decode_bits, potential width), over the unit's whole
    potential range: extremes, zero, and levels of the extreme thresholds."""
    unit = SpikePackNeuron(**params)
    lo, hi = unit.params.potential_range
    T, k = unit.timesteps, unit.tau_shift
    levels = golden.spike_levels(T, k)
    if len(levels) > 1024:      # every word up to T = 10; beyond, the first, last and a sample
        pick = np.random.default_rng(T).choice(len(levels), 1024, replace=False)
        levels = np.unique(np.r_[levels[:64], levels[-64:], levels[pick]])
    for theta in (1, 2, unit.params.threshold_max):
        vs = {lo, lo + 1, -1, 0, 1, 2, hi - 1, hi}
        vs |= {int(theta * lv) + d for lv in levels for d in (-1, 0, 1)}
        vs = sorted(v for v in vs if lo <= v <= hi)
        _check_model(vs, theta, T, k, unit.decode_bits, unit.widths.potential)
