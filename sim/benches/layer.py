"""cocotb bench of the layer engine: LayerEngine + NetworkMemories + one activation memory.

:class:`LayerBenchTop` is the device under test (built by ``tests/test_layer_rtl.py`` and by
``spikepack.layer_bench``). For every case the bench draws a layer from the seed, lays it out
with :func:`spikepack.firmware.layout.layout_network` (a hidden layer is followed by a 1-neuron
dummy readout so that it keeps its thresholds), writes the image into the SHADOW bank through the
loader write port, commits, writes the input spike words into the activation memory, sends the
descriptor, collects ``o`` with random backpressure and compares every beat with the golden
model (``spikepack_layer`` / ``lif_layer`` spikes for hidden layers, ``global_potential`` for
readout layers; the potential of hidden layers is not part of the contract). Cycles from the
descriptor handshake to the last output handshake are written to ``args["results"]`` (JSON)
when given.

Arguments (``bench_args``): ``config`` (HardwareConfig fields), ``cases`` (list of dicts: ``N``,
``M``, ``readout``, ``weights`` "random"|"min"|"max", ``spikes`` "random"|"zeros"|"ones",
``thresholds`` "random"|"one"|"max", ``stall`` probability that ``o.ready`` is low, ``prefix``:
put another layer in front so that the tested layer's weight and column bases are not 0),
``seed``.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
from amaranth import Module, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.layer_engine import LayerEngine, descriptor_layout, output_layout
from spikepack.hw.memories import MEMORY_INDEX, NetworkMemories, WriteSignature

__all__ = ["LayerBenchTop", "draw_layer", "expected_outputs"]


class LayerBenchTop(wiring.Component):
    """Test wrapper: the engine wired to NetworkMemories (loader port exposed) and to an
    activation memory with a write port (``act_wr_*``). Ports: ``write`` (NetworkMemories'
    ``WriteSignature``: ``write__mem``, ``write__addr``, ... in Verilog),
    ``act_wr_en``, ``act_wr_addr``, ``act_wr_data``, ``start``, ``o``, ``busy`` (LayerEngine)."""

    def __init__(self, *, config: HardwareConfig, result_slots: int | None = None):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        self._memories = NetworkMemories(config=config)
        self._engine = (LayerEngine(config=config) if result_slots is None
                        else LayerEngine(config=config, result_slots=result_slots))
        super().__init__({
            "write": Out(WriteSignature(config)),
            "act_wr_en": In(1),
            "act_wr_addr": In(self._engine.act_addr_bits),
            "act_wr_data": In(config.rows * config.timesteps),
            "start": In(stream.Signature(descriptor_layout(config))),
            "o": Out(stream.Signature(output_layout(config))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        mems, eng = self._memories, self._engine
        m.submodules.memories = mems
        m.submodules.engine = eng
        wiring.connect(m, wiring.flipped(self.write), mems.write)
        m.d.comb += mems.hold.eq(0)
        for name in ("weight", "bias", "threshold"):
            wiring.connect(m, getattr(mems, name), getattr(eng, name))
        act = memory.Memory(shape=unsigned(len(self.act_wr_data)),
                            depth=self._config.activation_depth, init=[])
        m.submodules.act = act
        rd, wr = act.read_port(domain="sync"), act.write_port()
        # the sequencer's activation buffers register their read data (read latency 2)
        act_q = Signal(len(self.act_wr_data), reset_less=True)
        m.d.sync += act_q.eq(rd.data)
        m.d.comb += [
            rd.addr.eq(eng.act.addr), rd.en.eq(eng.act.en), eng.act.data.eq(act_q),
            wr.addr.eq(self.act_wr_addr), wr.data.eq(self.act_wr_data), wr.en.eq(self.act_wr_en),
        ]
        wiring.connect(m, wiring.flipped(self.start), eng.start)
        wiring.connect(m, eng.o, wiring.flipped(self.o))
        m.d.comb += self.busy.eq(eng.busy)
        return m


# --- stimulus and golden outputs (plain Python, shared with the benchmark script) --------------

def draw_layer(rng: np.random.Generator, config: HardwareConfig, case: dict):
    """(weights (M, N), bias (M,), threshold (M,), z_in (N,)) for one case."""
    N, M, T = case["N"], case["M"], config.timesteps
    lo, hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    wmode = case.get("weights", "random")
    if wmode == "min":
        w = np.full((M, N), lo, dtype=np.int64)
    elif wmode == "max":
        w = np.full((M, N), hi, dtype=np.int64)
    else:
        w = rng.integers(lo, hi + 1, size=(M, N), dtype=np.int64)
    # keep the bias within the configured width and the potential's range
    b_hi = (1 << (config.bias_bits - 1)) - 1
    b = rng.integers(-b_hi - 1, b_hi + 1, size=M, dtype=np.int64)
    t_hi = (1 << config.threshold_bits) - 1
    tmode = case.get("thresholds", "random")
    if tmode == "one":
        theta = np.ones(M, dtype=np.int64)
    elif tmode == "max":
        theta = np.full(M, t_hi, dtype=np.int64)
    else:
        # thresholds on the scale of the potential, so that the decoded words vary
        scale = max(1, int(math.sqrt(N)) * (hi + 1) * (1 << (config.tau_shift * (T - 1))) // 4)
        theta = rng.integers(1, min(t_hi, scale) + 1, size=M, dtype=np.int64)
    smode = case.get("spikes", "random")
    if smode == "zeros":
        z = np.zeros(N, dtype=np.int64)
    elif smode == "ones":
        z = np.full(N, (1 << T) - 1, dtype=np.int64)
    else:
        z = rng.integers(0, 1 << T, size=N, dtype=np.int64)
    return w, b, theta, z


def expected_outputs(config: HardwareConfig, case: dict, w, b, theta, z) -> list[dict]:
    """The golden ``o`` beats of one case (``None`` = don't care)."""
    from spikepack.sim import golden
    T, k, M = config.timesteps, config.tau_shift, case["M"]
    v = golden.global_potential(z, w, b, T, k)
    if case["readout"]:
        spikes, potential = [None] * M, v
    elif config.neuron == "spikepack":
        # the engine contract gives spikes for hidden layers; their potential is unspecified
        spikes, potential = golden.spikepack_layer(z, w, b, theta, T, k), [None] * M
    else:
        spikes, potential = golden.lif_layer(z, w, b, theta, T, k), [None] * M
    return [{"index": i, "spikes": None if spikes[i] is None else int(spikes[i]),
             "potential": None if potential[i] is None else int(potential[i]),
             "last": int(i == M - 1)} for i in range(M)]


# --- cocotb ---------------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, RisingEdge
except ImportError:  # pragma: no cover - the bench module is only run under cocotb
    cocotb = None

if cocotb is not None:
    from spikepack.firmware.layout import layout_network
    from spikepack.sim.benches.streams import (PayloadCodec, StreamDriver, StreamMonitor,
                                               check_records, run_agents)
    from spikepack.sim.runner import bench_args

    async def _write_image(dut, image):
        for name, words in image.memories.items():
            dut.write__mem.value = MEMORY_INDEX[name]
            for addr, lanes in enumerate(words):
                for lane, value in enumerate(lanes):
                    dut.write__addr.value = addr
                    dut.write__lane.value = lane
                    dut.write__data.value = int(value)
                    dut.write__en.value = 1
                    await RisingEdge(dut.clk)
        dut.write__en.value = 0
        dut.write__commit_layers.value = image.layer_count
        dut.write__commit.value = 1
        await RisingEdge(dut.clk)
        dut.write__commit.value = 0
        await RisingEdge(dut.clk)

    async def _write_activations(dut, config, z):
        R, T = config.rows, config.timesteps
        entries = math.ceil(len(z) / R)
        for e in range(entries):
            word = 0
            for i in range(R):
                if e * R + i < len(z):
                    word |= int(z[e * R + i]) << (i * T)
            dut.act_wr_addr.value = e
            dut.act_wr_data.value = word
            dut.act_wr_en.value = 1
            await RisingEdge(dut.clk)
        dut.act_wr_en.value = 0

    @cocotb.test()
    async def layers(dut):
        args = bench_args()
        seed = args["seed"]
        config = HardwareConfig(**args["config"])
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for name in ("write__en", "write__commit", "act_wr_en", "start__valid", "o__ready"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        d_codec = PayloadCodec(descriptor_layout(config))
        o_codec = PayloadCodec(output_layout(config))
        results = []
        for index, case in enumerate(args["cases"]):
            rng = np.random.default_rng([seed, index])
            w, b, theta, z = draw_layer(rng, config, case)
            if case["readout"]:
                layers_ = [(w, b, None)]
            else:
                layers_ = [(w, b, theta), (np.zeros((1, case["M"]), dtype=np.int64),
                                           np.zeros(1, dtype=np.int64), None)]
            position = 0
            if case.get("prefix"):
                # a layer in front, so that the tested one has non-zero weight and column bases
                N = case["N"]
                layers_.insert(0, (np.ones((N, 3), dtype=np.int64), np.zeros(N, dtype=np.int64),
                                   np.ones(N, dtype=np.int64)))
                position = 1
            image = layout_network(layers_, config)
            await _write_image(dut, image)
            await _write_activations(dut, config, z)
            d = image.descriptors[position]
            assert bool(d.readout) == bool(case["readout"])
            rng_py = random.Random(int(rng.integers(1 << 31)))
            driver = StreamDriver(dut, "start", rng=rng_py)
            monitor = StreamMonitor(dut, "o", stall=case.get("stall", 0.0), rng=rng_py)
            driver.send([d_codec.pack({"fan_in": d.fan_in, "neurons": d.neurons,
                                       "weight_base": d.weight_base,
                                       "column_base": d.column_base,
                                       "readout": int(d.readout)})])
            M = case["M"]
            ideal = math.ceil(case["N"] / config.rows) * math.ceil(M / config.cols) * config.timesteps
            budget = int((ideal + M + 200) / max(0.05, 1 - case.get("stall", 0.0)) * 4)
            await run_agents(dut.clk, [driver, monitor], done=lambda: len(monitor.received) >= M,
                             max_cycles=budget)
            monitor.ready.value = 0
            await RisingEdge(dut.clk)
            await RisingEdge(dut.clk)
            got = [o_codec.unpack(x) for x in monitor.received]
            want = expected_outputs(config, case, w, b, theta, z)
            check_records(want, got, seed=seed, what=f"case {index} {case} output",
                          context=lambda i: f"z={z.tolist()[:16]}...")
            assert int(dut.busy.value) == 0, f"case {index}: busy still high after the last beat"
            assert int(dut.o__valid.value) == 0, f"case {index}: o.valid after the last beat"
            cycles = monitor.transfer_cycles[-1] - driver.transfer_cycles[0]
            results.append({**case, "cycles": cycles, "ideal": ideal})
            dut._log.info(f"case {index}: N={case['N']} M={M} readout={case['readout']} "
                          f"cycles={cycles} ideal={ideal} ok")
        if args.get("results"):
            with open(args["results"], "w") as f:
                json.dump(results, f, indent=1)
