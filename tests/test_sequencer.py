# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the network sequencer alone (``spikepack.hw.sequencer``): a
descriptor memory and a layer engine played by the testbench. An image streamed in on
``in_t*`` is read back through the engine's activation port exactly as the firmware packs it
(entry e holds inputs e*R .. e*R+R-1 at bits i*T); the descriptor offered on ``eng_start`` is
the one in the descriptor memory; the readout layer's beats leave on ``out_t*`` sign-extended,
TLAST on the last; the status strobes count one inference. Max pooling: a played engine sends
conv-style beats (pooled index, channel, pool_first) and the next layer must read the golden
max-pooled map in storage order."""

from __future__ import annotations

import random

import pytest
from amaranth import Elaboratable, Module, Signal, unsigned
from amaranth.lib import memory
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import LayerDescriptor
from spikepack.hw.sequencer import NetworkSequencer
from spikepack.sim.runner import bench_seed

CONFIGS = {
    "4x2_T3": HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                             max_layers=4, weight_depth=64),
    "2x2_T2": HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=8, max_neurons=8,
                             max_layers=4, weight_depth=64),
}


class SequencerBench(Elaboratable):
    """The sequencer with a descriptor memory (read latency 2, as NetworkMemories)."""

    def __init__(self, config, descriptors):
        self.seq = NetworkSequencer(config=config)
        self.words = [sum(lane << (32 * i) for i, lane in enumerate(d.to_lanes()))
                      for d in descriptors]
        self.config = config

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.seq
        spec = self.config.memories["descriptor"]
        mem = memory.Memory(shape=unsigned(spec.word_bits), depth=spec.depth,
                            init=self.words + [0] * (spec.depth - len(self.words)))
        m.submodules.mem = mem
        rd = mem.read_port()
        q = Signal(spec.word_bits)
        m.d.sync += q.eq(rd.data)
        m.d.comb += [rd.addr.eq(seq.descriptor.addr), rd.en.eq(seq.descriptor.en),
                     seq.descriptor.data.eq(q)]
        return m


@pytest.mark.parametrize("name", list(CONFIGS))
def test_one_layer_inference_through_a_played_engine(name):
    config = CONFIGS[name]
    seed = sum(map(ord, name))
    print(f"seed {seed}")
    rng = random.Random(seed)
    R, T = config.rows, config.timesteps
    K = 32 // T
    N, M = rng.randrange(R + 1, config.max_fan_in + 1), rng.randrange(1, config.max_neurons + 1)
    image = [rng.randrange(1 << T) for _ in range(N)]
    desc = LayerDescriptor(fan_in=N, neurons=M, weight_base=rng.randrange(8),
                           column_base=rng.randrange(4), readout=True)
    lo, hi = -(1 << (config.widths.potential - 1)), (1 << (config.widths.potential - 1)) - 1
    potentials = [rng.choice([lo, hi, rng.randrange(lo, hi + 1)]) for _ in range(M)]
    bench = SequencerBench(config, [desc])
    seq = bench.seq
    out_bits = config.out_bits
    seen = {"start": None, "entries": [], "out": [], "done": 0}

    async def source(ctx):
        ctx.set(seq.run, 1)
        beats = [sum(v << (T * k) for k, v in enumerate(image[b:b + K]))
                 for b in range(0, N, K)]
        for i, beat in enumerate(beats):
            ctx.set(seq.in_tdata, beat)
            ctx.set(seq.in_tlast, i == len(beats) - 1)
            ctx.set(seq.in_tvalid, 1)
            while True:
                ready = ctx.get(seq.in_tready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(seq.in_tvalid, 0)

    async def engine(ctx):
        ctx.set(seq.layer_count, 1)
        for _ in range(500):
            if ctx.get(seq.eng_start.valid):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"seed {seed}: no descriptor offered")
        p = seq.eng_start.payload
        seen["start"] = tuple(ctx.get(getattr(p, f)) for f in
                              ("fan_in", "neurons", "weight_base", "column_base", "readout"))
        ctx.set(seq.eng_start.ready, 1)
        ctx.set(seq.eng_busy, 1)
        await ctx.tick()
        ctx.set(seq.eng_start.ready, 0)
        for e in range(-(-N // R)):              # the activation entries, read latency 2
            ctx.set(seq.act.addr, e)
            ctx.set(seq.act.en, 1)
            await ctx.tick()
            ctx.set(seq.act.en, 0)
            await ctx.tick()
            seen["entries"].append(ctx.get(seq.act.data))
        for i, v in enumerate(potentials):
            ctx.set(seq.eng_o.payload, {"index": i, "spikes": 0, "potential": v,
                                        "last": i == M - 1})
            ctx.set(seq.eng_o.valid, 1)
            while True:
                ready = ctx.get(seq.eng_o.ready)
                await ctx.tick()
                if ready:
                    break
            ctx.set(seq.eng_o.valid, 0)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
        ctx.set(seq.eng_busy, 0)

    async def sink(ctx):
        for _ in range(3000):
            ready = rng.random() < 0.7
            ctx.set(seq.out_tready, ready)
            valid = ctx.get(seq.out_tvalid)
            data, last = ctx.get(seq.out_tdata), ctx.get(seq.out_tlast)
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()
            if valid and ready:
                seen["out"].append((data - (1 << out_bits) if data >> (out_bits - 1) else data,
                                    last))
                if last:
                    break
        for _ in range(10):
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(engine)
    sim.add_testbench(sink)
    sim.run()
    assert seen["start"] == (N, M, desc.weight_base, desc.column_base, 1), seed
    for e, got in enumerate(seen["entries"]):
        want = sum(v << (T * i) for i, v in enumerate(image[e * R:e * R + R]))
        assert got == want, f"seed {seed}: activation entry {e}: {got:#x} != {want:#x}"
    assert seen["out"] == [(v, i == M - 1) for i, v in enumerate(potentials)], seed
    assert seen["done"] == 1, seed


# --- max pooling: conv-style output beats into the hidden buffers ---------------------------------

CONV_CONFIGS = {
    # R = 4, T = 3: K = 10 words a beat straddle entries; 6 channels (a LUT-RAM depth that is
    # not a power of two)
    "conv_r4_t3": HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=1, weight_bits=4,
                                 bias_bits=12, threshold_bits=10, max_fan_in=64, max_neurons=16,
                                 max_layers=4, weight_depth=64, max_channels=6, max_map_side=8,
                                 max_map_words=256, max_kernel=3),
    # R = 1: every word its own entry
    "conv_r1_t4": HardwareConfig(rows=1, cols=2, timesteps=4, tau_shift=2, weight_bits=4,
                                 bias_bits=12, threshold_bits=10, max_fan_in=64, max_neurons=16,
                                 max_layers=4, weight_depth=64, max_channels=5, max_map_side=8,
                                 max_map_words=200, max_kernel=3),
    # R = 8 wider than most channel counts (padding lanes); T = 5
    "conv_r8_t5": HardwareConfig(rows=8, cols=4, timesteps=5, tau_shift=1, weight_bits=4,
                                 bias_bits=12, threshold_bits=10, max_fan_in=64, max_neurons=16,
                                 max_layers=4, weight_depth=64, max_channels=12, max_map_side=8,
                                 max_map_words=512, max_kernel=3),
}


def _random_conv_network(rng: random.Random, config):
    """Layer plans for the played engine: 1-2 hidden conv layers (random output maps and pool
    windows, C_out = 1 in some), maybe a hidden dense layer, then a dense readout; each with the
    descriptor the sequencer offers. The conv layers' output words are random (the sequencer
    does not care how they were computed); the input image is a random (C, H, W) map."""
    from spikepack.firmware.layout import storage_words
    R, T = config.rows, config.timesteps
    words = config.activation_depth * R
    while True:
        shape = (rng.randint(1, config.max_channels), rng.randint(1, 5), rng.randint(1, 5))
        if storage_words(shape, R) <= words:
            break
    image_shape = shape
    plans = []
    for i in range(rng.randint(1, 2)):
        c_out = 1 if rng.random() < 0.3 else rng.randint(1, config.max_channels)
        while True:
            k_h, k_w = rng.randint(1, 3), rng.randint(1, 3)
            h_p, w_p = rng.randint(1, 4), rng.randint(1, 4)
            h_out, w_out = h_p * k_h + rng.randint(0, k_h - 1), w_p * k_w + rng.randint(0, k_w - 1)
            if storage_words((c_out, h_p, w_p), R) <= words and max(h_out, w_out) <= 255:
                break
        z = [[[rng.randrange(1 << T) for _ in range(w_out)] for _ in range(h_out)]
             for _ in range(c_out)]
        desc = LayerDescriptor(
            fan_in=rng.randrange(1, 1 << 16), neurons=c_out, weight_base=rng.randrange(64),
            column_base=rng.randrange(8), readout=False, conv=True, out_height=h_p,
            out_width=w_p, in_channels=shape[0], in_height=shape[1], in_width=shape[2],
            kernel_h=rng.randint(1, 7), kernel_w=rng.randint(1, 7), stride_h=rng.randint(1, 3),
            stride_w=rng.randint(1, 3), pad_h=rng.randint(0, 7), pad_w=rng.randint(0, 7),
            pool_h=k_h, pool_w=k_w)
        plans.append({"kind": "conv", "z": z, "pool": (k_h, k_w), "in_shape": shape,
                      "desc": desc})
        shape = (c_out, h_p, w_p)
    if rng.random() < 0.5:
        m = rng.randint(1, config.max_neurons)
        plans.append({"kind": "dense", "z": [rng.randrange(1 << T) for _ in range(m)],
                      "in_shape": shape,
                      "desc": LayerDescriptor(fan_in=storage_words(shape, R), neurons=m,
                                              weight_base=rng.randrange(64),
                                              column_base=rng.randrange(8), readout=False)})
        shape = (m,)
    m = rng.randint(1, 4)
    plans.append({"kind": "readout", "in_shape": shape,
                  "potentials": [rng.randrange(-1000, 1000) for _ in range(m)],
                  "desc": LayerDescriptor(fan_in=storage_words(shape, R), neurons=m,
                                          weight_base=rng.randrange(64),
                                          column_base=rng.randrange(8), readout=True)})
    return image_shape, plans


def _conv_beats(plan, R):
    """A conv layer's o beats in the contract's order (the convolution contract, docs/architecture.md): per pooled position, per window
    position, per output channel: (index of the pooled word, channel, pool_first, spikes)."""
    z, (k_h, k_w) = plan["z"], plan["pool"]
    c_out, h_p, w_p = len(z), plan["desc"].out_height, plan["desc"].out_width
    cg = -(-c_out // R)
    beats = []
    for py in range(h_p):
        for px in range(w_p):
            for dy in range(k_h):
                for dx in range(k_w):
                    for o in range(c_out):
                        beats.append((((py * w_p + px) * cg) * R + o, o, int(dy == dx == 0),
                                      z[o][py * k_h + dy][px * k_w + dx]))
    return beats


def _stored(words, R, T):
    """1-D storage-order words as activation entries (R words an entry, word i at bits i*T)."""
    return [sum(int(v) << (T * i) for i, v in enumerate(words[e:e + R]))
            for e in range(0, len(words), R)]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("name", list(CONV_CONFIGS))
def test_max_pooling_writer_stores_the_pooled_map(name, case):
    """A played engine sends conv-style beats (pooled index, channel, pool_first, last) for
    random maps and pool windows, with random stalls (often none: back-to-back beats of one
    channel when C_out = 1), and dense beats with random channel and pool_first (ignored in a
    dense layer); each next layer reads through ``act`` exactly ``to_storage`` of the golden
    max-pooled map (``spikepack.sim.golden.maxpool_words``), every descriptor is offered as
    stored, and the readout's beats leave on ``out_t*``."""
    import numpy as np

    from spikepack.firmware.layout import DESCRIPTOR_FIELDS, to_storage
    from spikepack.hw.layer_engine import descriptor_layout
    from spikepack.sim.golden import maxpool_words

    config = CONV_CONFIGS[name]
    seed = bench_seed() + case
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed} and case 0)")
    rng = random.Random(seed)
    R, T = config.rows, config.timesteps
    K = 32 // T
    image_shape, plans = _random_conv_network(rng, config)
    image = np.array([[[rng.randrange(1 << T) for _ in range(image_shape[2])]
                       for _ in range(image_shape[1])] for _ in range(image_shape[0])])
    # what each layer must read: the image in storage order, then each layer's stored output
    expected = [_stored(to_storage(image, R).tolist(), R, T)]
    for plan in plans[:-1]:
        if plan["kind"] == "conv":
            pooled = maxpool_words(np.array(plan["z"]), plan["pool"])
            expected.append(_stored(to_storage(pooled, R).tolist(), R, T))
        else:
            expected.append(_stored(to_storage(np.array(plan["z"]), R).tolist(), R, T))
    bench = SequencerBench(config, [p["desc"] for p in plans])
    seq = bench.seq
    out_bits = config.out_bits
    stall = rng.choice([0.0, 0.2, 0.6])
    seen = {"starts": [], "reads": [], "out": [], "done": 0}
    names = [n for n in descriptor_layout(config).members if n != "readout"]

    async def source(ctx):
        ctx.set(seq.run, 1)
        words = to_storage(image, R).tolist()
        beats = [sum(int(v) << (T * k) for k, v in enumerate(words[b:b + K]))
                 for b in range(0, len(words), K)]
        for i, beat in enumerate(beats):
            ctx.set(seq.in_tdata, beat)
            ctx.set(seq.in_tlast, i == len(beats) - 1)
            ctx.set(seq.in_tvalid, 1)
            while True:
                ready = ctx.get(seq.in_tready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(seq.in_tvalid, 0)

    async def send(ctx, payload):
        ctx.set(seq.eng_o.payload, payload)
        ctx.set(seq.eng_o.valid, 1)
        while True:
            ready = ctx.get(seq.eng_o.ready)
            await ctx.tick()
            if ready:
                break
        ctx.set(seq.eng_o.valid, 0)
        while rng.random() < stall:
            await ctx.tick()

    async def engine(ctx):
        ctx.set(seq.layer_count, len(plans))
        for l, plan in enumerate(plans):
            for _ in range(2000):
                if ctx.get(seq.eng_start.valid):
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"seed {seed}: no descriptor offered for layer {l}")
            p = seq.eng_start.payload
            seen["starts"].append({n: ctx.get(getattr(p, n)) for n in names + ["readout"]})
            ctx.set(seq.eng_start.ready, 1)
            ctx.set(seq.eng_busy, 1)
            await ctx.tick()
            ctx.set(seq.eng_start.ready, 0)
            # the earliest read the sequencer allows: 2 cycles after the handshake
            await ctx.tick()
            got = []
            for e in range(len(expected[l])):        # the layer's input, read latency 2
                ctx.set(seq.act.addr, e)
                ctx.set(seq.act.en, 1)
                await ctx.tick()
                ctx.set(seq.act.en, 0)
                await ctx.tick()
                got.append(ctx.get(seq.act.data))
            seen["reads"].append(got)
            if plan["kind"] == "conv":
                beats = _conv_beats(plan, R)
                for i, (index, channel, first, spikes) in enumerate(beats):
                    await send(ctx, {"index": index, "channel": channel, "pool_first": first,
                                     "spikes": spikes, "potential": 0,
                                     "last": i == len(beats) - 1})
            elif plan["kind"] == "dense":
                z = plan["z"]
                for i, v in enumerate(z):
                    # channel: anything the field holds (beyond max_channels too)
                    await send(ctx, {"index": i, "channel": rng.randrange(
                                         1 << len(seq.eng_o.payload.channel)),
                                     "pool_first": rng.randrange(2), "spikes": v,
                                     "potential": 0, "last": i == len(z) - 1})
            else:
                pots = plan["potentials"]
                for i, v in enumerate(pots):
                    await send(ctx, {"index": i, "channel": 0, "pool_first": 1, "spikes": 0,
                                     "potential": v, "last": i == len(pots) - 1})
            ctx.set(seq.eng_busy, 0)
            await ctx.tick()

    async def sink(ctx):
        for _ in range(200_000):
            ready = rng.random() < 0.7
            ctx.set(seq.out_tready, ready)
            valid = ctx.get(seq.out_tvalid)
            data, last = ctx.get(seq.out_tdata), ctx.get(seq.out_tlast)
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()
            if valid and ready:
                seen["out"].append((data - (1 << out_bits) if data >> (out_bits - 1) else data,
                                    last))
                if last:
                    break
        for _ in range(10):
            seen["done"] += ctx.get(seq.done)
            await ctx.tick()

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(engine)
    sim.add_testbench(sink)
    sim.run()
    what = (f"seed {seed}: image {image_shape}, layers "
            f"{[(p['kind'], p.get('pool'), p['desc'].neurons) for p in plans]}")
    for l, plan in enumerate(plans):
        want = {n: getattr(plan["desc"], n) for n in names}
        want = {n: v & ((1 << DESCRIPTOR_FIELDS[n][1]) - 1) for n, v in want.items()}
        want["readout"] = int(plan["kind"] == "readout")
        assert seen["starts"][l] == want, f"{what}: layer {l} descriptor"
    for l, (got, want) in enumerate(zip(seen["reads"], expected)):
        for e, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"{what}: layer {l} reads entry {e} of its input: {g:#x} != "
                            f"{w:#x} (stored {[hex(v) for v in got]}, golden "
                            f"{[hex(v) for v in want]})")
    pots = plans[-1]["potentials"]
    assert seen["out"] == [(v, i == len(pots) - 1) for i, v in enumerate(pots)], what
    assert seen["done"] == 1, what
