"""Amaranth-simulator test of the whole accelerator top (``spikepack.hw.top``) on tiny
configurations: bitstreams through the loader, multi-layer inference against the golden model,
registers read back over AXI4-Lite."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from amaranth_axil import AxilMaster, stream_send
from spikepack.config import HardwareConfig
from spikepack.protocol import RegisterMap, Registers
from spikepack.sim.benches.system import expected_constants


TINY = HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4, bias_bits=12,
                      threshold_bits=10, max_fan_in=8, max_neurons=8, max_layers=4,
                      weight_depth=64)

#: Input-writer shapes (K = 32 // T words a beat, R words an entry): TINY has K = 8R (a beat
#: spans 8 entries); R = K (one entry a beat, as in the default configuration); R = 2K (two
#: beats an entry); K = 5, R = 8 (beats straddle entries).
SMALL = {
    "tiny_k8r": TINY,
    "r_eq_k": HardwareConfig(rows=4, cols=2, timesteps=8, tau_shift=1, weight_bits=4,
                             bias_bits=12, threshold_bits=10, max_fan_in=16, max_neurons=8,
                             max_layers=4, weight_depth=64),
    "r_2k": HardwareConfig(rows=8, cols=2, timesteps=8, tau_shift=1, weight_bits=4,
                           bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                           max_layers=4, weight_depth=64),
    "straddle": HardwareConfig(rows=8, cols=2, timesteps=6, tau_shift=2, weight_bits=4,
                               bias_bits=12, threshold_bits=10, max_fan_in=24, max_neurons=8,
                               max_layers=4, weight_depth=64),
}


@pytest.mark.parametrize("config_name", list(SMALL))
def test_top_runs_networks_through_the_loader_amaranth_sim(config_name):
    """Two networks loaded through the loader (the second replacing the first between
    inferences), images streamed with random gaps and output backpressure, every readout
    potential compared with the golden model; registers read back over AXI4-Lite."""
    from spikepack.firmware.bitstream import pack_network, words_of
    from spikepack.hw.top import SpikePackTop
    from spikepack.protocol import input_beats
    from spikepack.sim.benches.stimulus import random_network
    from spikepack.sim.benches.system import golden_logits

    from spikepack.sim.runner import bench_seed
    seed = bench_seed()                       # SPIKEPACK_SEED reproduces a run
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    config = SMALL[config_name]
    T = config.timesteps
    plan = []
    for sizes in ([5, 3, 4], [7, 6, 2, 3]):
        layers = random_network(rng, config, sizes)
        images = rng.integers(0, 1 << T, size=(4, sizes[0]))
        plan.append((layers, images, golden_logits(images, layers, config)))
    dut = SpikePackTop(config=config)
    received: list[list[int]] = []
    total_images = sum(len(p[1]) for p in plan)
    ob = dut.out_bits

    async def host(ctx):
        regs = Registers(AxilMaster(ctx, dut, rng=prng), RegisterMap.of_config(config))
        consts = expected_constants(config)
        for name, value in consts.items():
            assert await regs.read(name) == value, name
        assert (await regs.fields("STATUS"))["loaded"] == 0          # nothing loaded
        done = 0
        for n, (layers, images, _) in enumerate(plan):
            words = words_of(pack_network(layers, config))
            await stream_send(ctx, dut, "s_axis_load", words, prng)
            for _ in range(20):
                await ctx.tick()
            status = await regs.fields("STATUS")
            assert status["loaded"] and status["layers"] == len(layers), status
            assert await regs.read("LOAD_GOOD") == n + 1
            assert await regs.read("LOAD_ERROR") == 0
            for z in images:
                await stream_send(ctx, dut, "s_axis_in", input_beats(z, T).tolist(), prng)
            done += len(images)
            for _ in range(100_000):
                if len(received) >= done:
                    break
                await ctx.tick()
            assert len(received) == done
        assert await regs.read("INFERENCES") == total_images
        layer_total = sum(len(p[0]) * len(p[1]) for p in plan)
        assert await regs.read("LAYERS_RUN") == layer_total
        out_total = sum(p[2].size for p in plan)
        assert await regs.read("OUT_BEATS") == out_total
        in_total = sum(len(input_beats(z, T)) for p in plan for z in p[1])
        assert await regs.read("IN_BEATS") == in_total
        assert (await regs.fields("STATUS"))["busy"] == 0

    async def sink(ctx):
        frame = []
        while len(received) < total_images:
            ready = prng.random() < 0.7
            ctx.set(dut.m_axis_out_tready, ready)
            valid = ctx.get(dut.m_axis_out_tvalid)
            data, last = ctx.get(dut.m_axis_out_tdata), ctx.get(dut.m_axis_out_tlast)
            await ctx.tick()
            if valid and ready:
                frame.append(data - (1 << ob) if data >> (ob - 1) else data)
                if last:
                    received.append(frame)
                    frame = []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(sink)
    sim.run()
    expected = [list(map(int, row)) for p in plan for row in p[2]]
    assert len(received) == len(expected) == total_images
    for i, (got, want) in enumerate(zip(received, expected)):
        assert got == want, f"seed {seed}: image {i}: hardware {got} != golden {want}"
    print("outputs", received)
