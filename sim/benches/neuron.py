"""Neuron-unit stimulus, golden expectations and the cocotb bench of the generated Verilog.

The stimulus is built from real layers (weights, spike words, biases, thresholds) and every
expected value comes from :mod:`spikepack.sim.golden` (``global_potential``, ``decode_serial``,
``lif_layer``); the beats the unit receives are the row tiles' step currents (serial, from
``golden.step_currents``) or packed partial potentials (packed, from ``golden.global_potential``
per tile). Used by the cocotb bench below and by the Amaranth-simulator unit tests.

Bench arguments (``runner.run(..., args=...)``): ``kind`` ("spikepack" | "lif"), the unit
parameters (``timesteps``, ``tau_shift``, ``weight_bits``, ``fan_in``, ``rows``, ``bias_bits``,
``threshold_bits``, ``input_mode``), ``count`` (random neurons of 1, 2 or 3 groups; directed edges come on top),
``gap`` and ``stall`` (input valid-gap and output-backpressure probabilities), and ``seed``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import numpy as np

from spikepack.sim import golden

__all__ = ["Stimulus", "make_stimulus", "UNIT_PARAM_NAMES"]

UNIT_PARAM_NAMES = ("timesteps", "tau_shift", "weight_bits", "fan_in", "rows", "bias_bits",
                    "threshold_bits", "input_mode")


@dataclass
class Stimulus:
    """Beats (columns of ``current``, ``bias``, ``threshold``, ``readout``, ``last``), the beat
    count of every neuron, and the expected output of every neuron (``spikes``, ``potential``,
    ``None`` = don't care: the potential of a hidden neuron, the spikes of a readout neuron),
    with a description per neuron for failure messages."""
    beats: dict = field(default_factory=lambda: {k: [] for k in
                                                 ("current", "bias", "threshold", "readout", "last")})
    groups: list = field(default_factory=list)
    expected: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __len__(self):
        return len(self.expected)


def _params(args) -> dict:
    return {name: args[name] for name in UNIT_PARAM_NAMES if name in args}


class _Maker:
    def __init__(self, kind: str, p: dict, rng: np.random.Generator):
        from spikepack.hw.neuron_common import check_neuron_params
        self.kind = kind
        self.p = check_neuron_params(**p)
        self.rng = rng
        self.T, self.k = self.p.timesteps, self.p.tau_shift
        self.P = self.p.packed_max
        self.stim = Stimulus()

    # one layer: weights (M, N), spike words (S, N), bias (M,), threshold (M,), readout (M,)
    def add_layer(self, w, z, bias, theta, readout, note):
        p, T, k, rows = self.p, self.T, self.k, self.p.rows
        M, N = w.shape
        S = z.shape[0]
        G = max(1, math.ceil(N / rows))
        v = golden.global_potential(z, w, bias, T, k)                       # (S, M)
        if self.kind == "spikepack":
            spikes = golden.decode_serial(v, theta, T, k)
        else:
            spikes = golden.lif_layer(z, w, bias, theta, T, k)
        if p.input_mode == "serial":
            tiles = np.zeros((S, M, G, T), dtype=np.int64)
            for g in range(G):
                cols = slice(g * rows, min(N, (g + 1) * rows))
                tiles[:, :, g, :] = golden.step_currents(z[:, cols], w[:, cols], T)
            beats = tiles.reshape(S, M, G * T)
        else:
            beats = np.zeros((S, M, G), dtype=np.int64)
            for g in range(G):
                cols = slice(g * rows, min(N, (g + 1) * rows))
                beats[:, :, g] = golden.global_potential(z[:, cols], w[:, cols],
                                                         np.zeros(M, np.int64), T, k)
        nb = beats.shape[-1]
        b = self.stim.beats
        flat = beats.reshape(S * M, nb)
        b["current"].extend(flat.ravel().tolist())
        n = S * M
        bias_col = np.repeat(np.tile(bias, S), nb)
        theta_col = np.repeat(np.tile(theta, S), nb)
        ro_col = np.repeat(np.tile(readout, S), nb)
        last_col = np.tile(np.r_[np.zeros(nb - 1, np.int64), 1], n)
        b["bias"].extend(bias_col.tolist())
        b["threshold"].extend(theta_col.tolist())
        b["readout"].extend(ro_col.tolist())
        b["last"].extend(last_col.tolist())
        self.stim.groups.extend([G] * n)
        ro = np.tile(readout, S).astype(bool)
        vf, sf = v.ravel(), spikes.ravel()
        # the neuron-unit contract: a readout neuron outputs its global potential (spikes
        # unspecified), a hidden neuron its spike word (potential unspecified), for both kinds
        for i in range(n):
            if ro[i]:
                self.stim.expected.append({"spikes": None, "potential": int(vf[i])})
            else:
                self.stim.expected.append({"spikes": int(sf[i]), "potential": None})
        self.stim.notes.extend([f"{note} G={G} v={int(vf[i])} theta={int(np.tile(theta, S)[i])} "
                                f"bias={int(np.tile(bias, S)[i])} readout={int(ro[i])}"
                                for i in range(n)])

    # random pieces ---------------------------------------------------------------------------
    def weights(self, M, N, scale=None):
        lo, hi = self.p.weight_range
        if scale is None:
            scale = self.rng.choice([1.0, 1.0, 0.5, 0.1])
        a, b = max(lo, int(math.floor(lo * scale))), min(hi, int(math.ceil(hi * scale)))
        return self.rng.integers(a, b + 1, size=(M, N), dtype=np.int64)

    def words(self, S, N):
        density = self.rng.uniform(0.05, 0.95)
        bits = self.rng.random((S, N, self.T)) < density
        return golden.pack_spike_train(bits.astype(np.int64)).reshape(S, N)

    def clip_bias(self, b):
        lo, hi = self.p.bias_range
        return np.clip(b, lo, hi).astype(np.int64)

    def thresholds(self, scale_v, M):
        """Thresholds spread around |v|/P (so that spike words vary), plus extremes."""
        tmax = self.p.threshold_max
        base = max(1.0, float(scale_v) / self.P)
        theta = np.exp(self.rng.uniform(np.log(base / 4), np.log(base * 4), size=M))
        theta = np.clip(np.rint(theta), 1, tmax).astype(np.int64)
        pick = self.rng.random(M)
        theta[pick < 0.05] = 1
        theta[(pick >= 0.05) & (pick < 0.08)] = tmax
        small = (pick >= 0.08) & (pick < 0.12)
        theta[small] = self.rng.integers(1, min(tmax, 16) + 1, size=int(small.sum()))
        return theta

    def random_layer(self, groups=None):
        p = self.p
        max_groups = math.ceil(p.fan_in / p.rows)
        if groups is None:  # mixed: 1, 2, 3 groups with probabilities 0.5, 0.3, 0.2
            G = min(max_groups, 1 + int(np.searchsorted([0.5, 0.8], self.rng.random(),
                                                       side="right")))
        else:
            G = groups
        if not 1 <= G <= max_groups:
            raise ValueError(f"{G} groups need fan_in >= {(G - 1) * p.rows + 1}")
        N = int(self.rng.integers((G - 1) * p.rows + 1, min(p.fan_in, G * p.rows) + 1))
        M = int(self.rng.integers(4, 33))
        S = int(self.rng.integers(4, 33))
        w = self.weights(M, N)
        z = self.words(S, N)
        v0 = golden.global_potential(z, w, np.zeros(M, np.int64), self.T, self.k)
        spread = float(np.percentile(np.abs(v0), 75)) + 1
        blo, bhi = p.bias_range
        bias = self.clip_bias(self.rng.normal(0, spread / 2, size=M))
        if self.rng.random() < 0.2:
            bias = self.rng.integers(blo, bhi + 1, size=M, dtype=np.int64)
        theta = self.thresholds(spread + np.abs(bias).mean(), M)
        readout = (self.rng.random(M) < 0.1).astype(np.int64)
        self.add_layer(w, z, bias, theta, readout, "random")

    def edge_layers(self):
        p, T = self.p, self.T
        lo, hi = p.weight_range
        blo, bhi = p.bias_range
        tmax = p.threshold_max
        N = p.fan_in
        full = (1 << T) - 1
        thetas = np.array(sorted({1, 2, 3, max(1, tmax // 2), tmax}), dtype=np.int64)
        M = len(thetas)
        # largest and smallest currents: every weight at an extreme, every spike on
        for wv, bv in ((hi, bhi), (hi, 0), (lo, blo), (lo, 0), (hi, blo), (lo, bhi)):
            w = np.full((M, N), wv, dtype=np.int64)
            z = np.full((1, N), full, dtype=np.int64)
            for ro in (0, 1):
                self.add_layer(w, z, np.full(M, bv, np.int64), thetas,
                               np.full(M, ro, np.int64), f"extreme w={wv} b={bv}")
        # one input, no spikes: v = bias (0, +-1, extremes)
        w = np.zeros((1, 1), dtype=np.int64)
        z = np.zeros((1, 1), dtype=np.int64)
        for bv in (0, 1, -1, bhi, blo, 2):
            for th in (1, 2, tmax):
                self.add_layer(w, z, np.array([bv]), np.array([th]), np.array([0]), "bias only")
        # exact multiples (levels theta*p(z)) and +-1 around them: pick theta ~ H / p(z*),
        # absorb the rest in the bias
        levels = golden.spike_levels(T, self.k)
        for _ in range(6):
            G = int(self.rng.integers(1, min(3, math.ceil(N / p.rows)) + 1))
            n_in = min(N, G * p.rows)
            M = 32
            w = self.weights(M, n_in)
            z = self.words(1, n_in)
            H = golden.global_potential(z, w, np.zeros(M, np.int64), T, self.k)[0]
            zstar = self.rng.integers(0, 1 << T, size=M)
            zstar[: M // 4] = full
            lev = levels[zstar]
            theta = np.where(lev > 0, np.abs(H) // np.maximum(lev, 1), 1)
            theta = np.clip(theta, 1, tmax)
            pick = self.rng.random(M)
            theta[pick < 0.25] = np.clip(self.rng.integers(1, 9, size=int((pick < 0.25).sum())),
                                         1, tmax)
            delta = self.rng.integers(-1, 2, size=M)
            bias = self.clip_bias(theta * lev + delta - H)
            self.add_layer(w, z, bias, theta, np.zeros(M, np.int64), "level edge")


def make_stimulus(kind: str, params: dict, count: int, rng: np.random.Generator, *,
                  edges: bool = True, groups: int | None = None) -> Stimulus:
    """At least ``count`` random neurons (layers of 1..3 groups, or of exactly ``groups``;
    10% readout) plus, with ``edges``, the directed edge cases, with golden expectations."""
    if kind not in ("spikepack", "lif"):
        raise ValueError(f"kind must be 'spikepack' or 'lif', not {kind!r}")
    maker = _Maker(kind, params, rng)
    if edges:
        maker.edge_layers()
    start = len(maker.stim)
    while len(maker.stim) - start < count:
        maker.random_layer(groups)
    return maker.stim


# --- cocotb bench ----------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles
except ImportError:  # pragma: no cover
    cocotb = None

if cocotb is not None:
    from spikepack.sim.benches.streams import (PayloadCodec, StreamDriver, StreamMonitor,
                                               check_records, run_agents)
    from spikepack.sim.runner import bench_args

    def _layouts(args):
        from spikepack.hw.neuron_common import (check_neuron_params, neuron_input_layout,
                                                neuron_output_layout)
        p = check_neuron_params(**_params(args))
        return PayloadCodec(neuron_input_layout(p)), PayloadCodec(neuron_output_layout(p))

    @cocotb.test()
    async def neurons_match_golden(dut):
        """Random and directed neurons under random valid gaps and ready stalls, bit-exact."""
        args = bench_args()
        seed = args["seed"]
        t0 = time.time()
        stim = make_stimulus(args["kind"], _params(args), int(args.get("count", 1000)),
                             np.random.default_rng(seed), edges=args.get("edges", True))
        in_codec, out_codec = _layouts(args)
        words = in_codec.pack_columns(stim.beats)
        t1 = time.time()
        rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        driver = StreamDriver(dut, "i", gap=args.get("gap", 0.1), rng=random.Random(rng.random()))
        monitor = StreamMonitor(dut, "o", stall=args.get("stall", 0.1),
                                rng=random.Random(rng.random()))
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        driver.send(words)
        n = len(stim)
        budget = 100 + 8 * (len(words) + n * (args["timesteps"] + 3))
        cycles = await run_agents(dut.clk, [driver, monitor],
                                  done=lambda: len(monitor.received) >= n, max_cycles=budget)
        t2 = time.time()
        actual = [out_codec.unpack(word) for word in monitor.received]
        check_records(stim.expected, actual, seed=seed, what="neuron",
                      context=lambda i: stim.notes[i])
        dut._log.info(f"{n} neurons, {len(words)} beats, {cycles} cycles, 0 mismatches "
                      f"(seed {seed}; stimulus {t1 - t0:.1f} s, simulation {t2 - t1:.1f} s)")
