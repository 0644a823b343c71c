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

Conv cases (``conv``: true; ``C_in``, ``C_out``, ``H``, ``W``, ``kernel``, ``stride``, ``pad``,
``pool`` pairs, and ``weights``, ``spikes``, ``thresholds``, ``stall``, ``prefix`` as above):
the layer is laid out as the dense (C_out, K_h*K_w*CG_in*R) layer of its patch
(:func:`conv_hardware_layer`) with its conv descriptor, the input map is written in storage
order (``firmware.layout.to_storage``) and the rest of the activation buffer filled with random
entries; every beat (index, channel, pool_first, spikes, last) is checked against the golden
conv output (``golden.spikepack_conv`` / ``lif_conv``) in the contract's order
(:func:`expected_conv_outputs`), and the beats pooled as the sequencer pools them
(:func:`pool_beats`) against ``golden.maxpool_words`` stored by ``to_storage``. The result row
adds ``N`` (the patch), ``M`` (C_out), ``positions`` and the ``ideal``
(``layer_engine.conv_ideal_cycles``).
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


# --- conv layers (plain Python, shared with the Amaranth-simulator test and the benchmark) -----

def conv_geometry(case: dict):
    """The :class:`spikepack.firmware.layout.ConvGeometry` of a conv case (``C_in``, ``H``,
    ``W``, ``kernel``, ``stride``, ``pad``, ``pool``: pairs)."""
    from spikepack.firmware.layout import ConvGeometry
    return ConvGeometry(case["C_in"], case["H"], case["W"], *case["kernel"], *case["stride"],
                        *case["pad"], *case.get("pool", (1, 1)))


def conv_positions(g) -> int:
    """H_out' * W_out' = H_p*k_h * W_p*k_w: the output positions the engine computes."""
    return g.out_height * g.pool_h * g.out_width * g.pool_w


def draw_conv_layer(rng: np.random.Generator, config: HardwareConfig, case: dict):
    """(weights (C_out, C_in, K_h, K_w), bias (C_out,), threshold (C_out,), z_in (C_in, H, W))
    of a conv case (``C_out``; ``weights``, ``spikes``, ``thresholds`` as for dense cases)."""
    g = conv_geometry(case)
    C_in, C_out, T = case["C_in"], case["C_out"], config.timesteps
    N = C_in * g.kernel_h * g.kernel_w
    w2, b, theta, _ = draw_layer(rng, config, {**case, "N": N, "M": C_out, "spikes": "zeros"})
    w = w2.reshape(C_out, C_in, g.kernel_h, g.kernel_w)
    smode = case.get("spikes", "random")
    shape = (C_in, g.in_height, g.in_width)
    if smode == "zeros":
        z = np.zeros(shape, dtype=np.int64)
    elif smode == "ones":
        z = np.full(shape, (1 << T) - 1, dtype=np.int64)
    else:
        z = rng.integers(0, 1 << T, size=shape, dtype=np.int64)
    return w, b, theta, z


def conv_hardware_layer(config: HardwareConfig, w, b, theta, g):
    """The conv layer as the dense (C_out, N) layer of the contract: W_hw[o, n] with
    n = ((ky*K_w + kx)*CG_in + cg)*R + r = w[o, cg*R + r, ky, kx] (0 past C_in)."""
    from spikepack.firmware.layout import HardwareLayer
    R = config.rows
    C_out, C_in, K_h, K_w = w.shape
    CG = -(-C_in // R)
    hw = np.zeros((C_out, K_h, K_w, CG * R), dtype=np.int64)
    hw[..., :C_in] = np.transpose(w, (0, 2, 3, 1))
    return HardwareLayer(hw.reshape(C_out, -1), b, theta, g)


def golden_conv(config: HardwareConfig, w, b, theta, z, g) -> np.ndarray:
    """The layer's spike words (C_out, H_out, W_out) (``golden.spikepack_conv`` or
    ``golden.lif_conv``)."""
    from spikepack.sim import golden
    fn = golden.spikepack_conv if config.neuron == "spikepack" else golden.lif_conv
    return fn(z, w, b, theta, config.timesteps, config.tau_shift, (g.stride_h, g.stride_w),
              (g.pad_h, g.pad_w))


def expected_conv_outputs(config: HardwareConfig, out: np.ndarray, g) -> list[dict]:
    """The golden ``o`` beats of a conv layer whose conv output is ``out`` (C_out, H_out,
    W_out), in the contract's order: per pooled position, per pool window position, per column
    tile, the channels o = ct*C + c < C_out, index = the storage index of the pooled word,
    channel, pool_first, spikes, last on the layer's final beat."""
    R = config.rows
    C_out = out.shape[0]
    CG_out = -(-C_out // R)
    beats = []
    for py in range(g.out_height):
        for px in range(g.out_width):
            for wy in range(g.pool_h):
                for wx in range(g.pool_w):
                    oy, ox = py * g.pool_h + wy, px * g.pool_w + wx
                    for o in range(C_out):
                        beats.append({"index": (py * g.out_width + px) * CG_out * R + o,
                                      "channel": o, "pool_first": int(wy == wx == 0),
                                      "spikes": int(out[o, oy, ox]), "potential": None,
                                      "last": 0})
    beats[-1]["last"] = 1
    return beats


def pool_beats(beats, words: int) -> np.ndarray:
    """The stored words the beats leave when max-pooled as the sequencer does: a beat with
    ``pool_first`` writes its spikes, any other the max of its channel's running word and its
    spikes, at ``index`` (unwritten words stay 0)."""
    stored = np.zeros(words, dtype=np.int64)
    running = {}
    for b in beats:
        value = b["spikes"] if b["pool_first"] else max(running[b["channel"]], b["spikes"])
        running[b["channel"]] = value
        stored[b["index"]] = value
    return stored


def conv_layout(config: HardwareConfig, case: dict, w, b, theta, g):
    """``layout_network`` of the conv layer behind an optional prefix layer (``prefix``: a
    1-channel conv in front, so that the tested layer's weight and column bases are not 0)
    and before a 1-neuron dummy readout over its stored output map; returns (image, position
    of the tested layer)."""
    from spikepack.firmware.layout import ConvGeometry, layout_network, storage_words
    R = config.rows
    layers = [conv_hardware_layer(config, w, b, theta, g)]
    position = 0
    if case.get("prefix"):
        pg = ConvGeometry(1, g.in_height, g.in_width, 1, 1)
        layers.insert(0, conv_hardware_layer(
            config, np.ones((g.in_channels, 1, 1, 1), dtype=np.int64),
            np.zeros(g.in_channels, dtype=np.int64), np.ones(g.in_channels, dtype=np.int64),
            pg))
        position = 1
    words = storage_words((case["C_out"], g.out_height, g.out_width), R)
    layers.append((np.zeros((1, words), dtype=np.int64), np.zeros(1, dtype=np.int64), None))
    return layout_network(layers, config), position


def activation_entries(config: HardwareConfig, z) -> list[int]:
    """The activation buffer's entries holding ``z`` (a vector, or a (C, H, W) map stored by
    ``firmware.layout.to_storage``): entry e holds words e*R .. e*R + R - 1, word i at bits
    i*T .."""
    from spikepack.firmware.layout import to_storage
    R, T = config.rows, config.timesteps
    flat = to_storage(z, R) if np.ndim(z) == 3 else np.asarray(z)
    entries = []
    for e in range(-(-len(flat) // R)):
        word = 0
        for i in range(R):
            if e * R + i < len(flat):
                word |= int(flat[e * R + i]) << (i * T)
        entries.append(word)
    return entries


# --- cocotb ---------------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, RisingEdge
except ImportError:  # pragma: no cover - the bench module is only run under cocotb
    cocotb = None

if cocotb is not None:
    from spikepack.firmware.layout import layout_network
    from spikepack.hw.layer_engine import conv_expected_cycles, conv_ideal_cycles
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

    async def _write_activations(dut, config, z, garbage=None):
        """The entries of ``z`` (a vector or a (C, H, W) map, stored as ``to_storage``), then
        ``garbage`` (random entries) up to the buffer's end when given: a padding tile that
        read its entry instead of clearing its word would see them."""
        entries = activation_entries(config, z)
        if garbage is not None:
            mask = (1 << config.rows * config.timesteps) - 1
            entries += [int(garbage.integers(1 << 62)) & mask
                        for _ in range(config.activation_depth - len(entries))]
        for e, word in enumerate(entries):
            dut.act_wr_addr.value = e
            dut.act_wr_data.value = word
            dut.act_wr_en.value = 1
            await RisingEdge(dut.clk)
        dut.act_wr_en.value = 0

    async def _run_conv(dut, config, case, index, seed, d_codec, o_codec):
        """One conv case: every beat against the golden conv output in the contract's order,
        the beats pooled as the sequencer pools them against the golden pooled map; returns
        the result row (cycles from the descriptor handshake to the last o handshake)."""
        from spikepack.firmware.layout import to_storage
        from spikepack.sim import golden
        rng = np.random.default_rng([seed, index])
        w, b, theta, z = draw_conv_layer(rng, config, case)
        g = conv_geometry(case)
        image, position = conv_layout(config, case, w, b, theta, g)
        await _write_image(dut, image)
        await _write_activations(dut, config, z, garbage=rng)
        d = image.descriptors[position]
        rng_py = random.Random(int(rng.integers(1 << 31)))
        driver = StreamDriver(dut, "start", rng=rng_py)
        monitor = StreamMonitor(dut, "o", stall=case.get("stall", 0.0), rng=rng_py)
        driver.send([d_codec.pack({name: int(getattr(d, name))
                                   for name in descriptor_layout(config).members})])
        out = golden_conv(config, w, b, theta, z, g)
        want = expected_conv_outputs(config, out, g)
        N, Q = g.patch(config.rows), conv_positions(g)
        ideal = conv_ideal_cycles(config, g.in_channels, (g.kernel_h, g.kernel_w),
                                  case["C_out"], Q)
        budget = int((conv_expected_cycles(config, N, case["C_out"], Q) + len(want) + 200)
                     / max(0.05, 1 - case.get("stall", 0.0)) * 4)
        await run_agents(dut.clk, [driver, monitor], done=lambda: len(monitor.received) >= len(want),
                         max_cycles=budget)
        monitor.ready.value = 0
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        got = [o_codec.unpack(x) for x in monitor.received]
        check_records(want, got, seed=seed, what=f"case {index} {case} beat",
                      compare=("index", "channel", "pool_first", "spikes", "last"))
        stored = to_storage(golden.maxpool_words(out, (g.pool_h, g.pool_w)), config.rows)
        pooled = pool_beats(got, len(stored))
        assert (pooled == stored).all(), (f"seed {seed}: case {index} {case}: the pooled beats "
                                         f"{pooled.tolist()} != golden {stored.tolist()}")
        assert int(dut.busy.value) == 0, f"case {index}: busy still high after the last beat"
        assert int(dut.o__valid.value) == 0, f"case {index}: o.valid after the last beat"
        cycles = monitor.transfer_cycles[-1] - driver.transfer_cycles[0]
        dut._log.info(f"case {index}: conv {case} cycles={cycles} ideal={ideal} ok")
        return {**case, "N": N, "M": case["C_out"], "positions": Q, "cycles": cycles,
                "ideal": ideal}

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
            if case.get("conv"):
                results.append(await _run_conv(dut, config, case, index, seed, d_codec, o_codec))
                continue
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
