"""The bits of a bitstream the hardware ignores (spikepack.firmware.bitstream.ignored_bits: the
weights, bias and threshold of neurons beyond M, every readout threshold, the padding above a
word's fields) really are ignored: the whole accelerator (SpikePackTop, Amaranth simulator)
loads a stream with garbage there (zeros in the unused threshold fields, as issue 12 found, or
random bits) and answers every image exactly as the golden model does for the packed network,
which parse decodes from that stream too."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.firmware import bitstream as bs
from spikepack.sim.benches.loader import with_crc
from spikepack.protocol import input_beats
from spikepack.sim.benches.stimulus import random_network
from spikepack.sim.benches.system import golden_logits
from spikepack.sim.runner import bench_seed

from amaranth_axil import stream_send

# dead columns in the last column tile (M % C != 0) and padded lanes in every section
CONFIGS = {
    "spikepack": HardwareConfig(rows=2, cols=4, timesteps=3, tau_shift=2, weight_bits=5,
                                bias_bits=11, threshold_bits=9, max_fan_in=8, max_neurons=8,
                                max_layers=3, weight_depth=64),
    "lif": HardwareConfig(rows=4, cols=2, timesteps=2, tau_shift=1, weight_bits=4, bias_bits=12,
                          threshold_bits=10, neuron="lif", max_fan_in=8, max_neurons=8,
                          max_layers=3, weight_depth=64),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_garbage_in_ignored_bits_answers_identically(name):
    from spikepack.hw.top import SpikePackTop
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    config = CONFIGS[name]
    T = config.timesteps
    sizes = [7, 5, 3]                        # M = 5, 3: dead columns with C = 2 and C = 4
    layers = random_network(rng, config, sizes)
    packed = bs.words_of(bs.pack_network(layers, config))
    ignored = bs.ignored_stream_bits(bs.bytes_of(packed), config)
    assert sum(bin(m).count("1") for m in ignored) > 100
    streams = [("zeros", with_crc([w & ~m for w, m in zip(packed, ignored)])),
               ("random", with_crc([w ^ (int(rng.integers(0, 1 << 32)) & m)
                                    for w, m in zip(packed, ignored)]))]
    images = rng.integers(0, 1 << T, size=(4, sizes[0]))
    want = [list(map(int, row)) for row in golden_logits(images, layers, config)]
    for label, words in streams:
        assert words != packed
        assert bs.loader_outcome(words, config) == bs.ErrorCode.NONE
        bs.parse(bs.bytes_of(words), config)           # the parser accepts it too
    dut = SpikePackTop(config=config)
    ob = dut.out_bits
    received = []

    async def host(ctx):
        for label, words in streams:
            await stream_send(ctx, dut, "s_axis_load", words, prng, gap=0.2)
            for _ in range(20):
                await ctx.tick()
            for z in images:
                await stream_send(ctx, dut, "s_axis_in", input_beats(z, T).tolist(), prng, gap=0.2)
            for _ in range(100_000):
                if len(received) >= len(images) * (1 + streams.index((label, words))):
                    break
                await ctx.tick()

    async def sink(ctx):
        frame = []
        for _ in range(200_000):                       # (bounded: a refused load sends nothing)
            if len(received) >= len(images) * len(streams):
                break
            ctx.set(dut.m_axis_out_tready, 1)
            valid = ctx.get(dut.m_axis_out_tvalid)
            data, last = ctx.get(dut.m_axis_out_tdata), ctx.get(dut.m_axis_out_tlast)
            await ctx.tick()
            if valid:
                frame.append(data - (1 << ob) if data >> (ob - 1) else data)
                if last:
                    received.append(frame)
                    frame = []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(sink)
    sim.run()
    assert len(received) == len(images) * len(streams), f"{len(received)} answers"
    for s, (label, _) in enumerate(streams):
        for i in range(len(images)):
            got = received[s * len(images) + i]
            assert got == want[i], (f"seed {seed}: {label} garbage, image {i}: hardware {got} "
                                    f"!= golden {want[i]}")
