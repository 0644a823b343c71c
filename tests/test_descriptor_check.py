# amaranth: UnusedElaboratable=no
"""The loader's descriptor checks of lanes 3-5 (spikepack.hw.descriptor_check.DescriptorCheck)
in the Amaranth simulator, behind the frame tracker and the header check that tell it what each
word is (wired as in the loader), with a conv descriptor's lane 5 held in stage 0 for
``cycles`` cycles as the loader holds it: random dense and conv networks and the benches' bad
streams (the conv fields at and beyond their edges, redrawn geometries, the conv flag set or
cleared, broken chains, fan-in and neurons above the maxima), words a cycle or with idle
cycles. The golden twin is the parser (spikepack.firmware.bitstream.loader_outcome, through
layout.descriptor_faults): every word before the first one it refuses has no fault in
``faults`` (at t + 2), and at that word, a descriptor's lane 3, 4 or 5, the faults give its
code (lane 3 without conv: no fault or that code, the readout flag being the header check's)."""

import random

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikepack.sim.runner import bench_seed
from spikepack.firmware import bitstream as bs
from spikepack.firmware.bitstream_format import ErrorCode as E
from spikepack.hw.descriptor_check import DescriptorCheck
from spikepack.hw.frame_tracker import FrameTracker, desc_slot
from spikepack.hw.header_check import HeaderCheck
from spikepack.sim.benches.loader import (conv_config, random_layers, small_config,
                                          with_descriptor)

from test_header_check import first_fault, streams

SEED = bench_seed()     # SPIKEPACK_SEED replays a run
CONFIGS = {"small": small_config(), "dense": small_config(conv=False, max_layers=4),
           "conv": conv_config(), "conv_r8": conv_config(rows=8, cols=2, max_fan_in=256,
                                                         max_map_words=400, max_channels=12)}


@pytest.fixture
def seed():
    print(f"seed {SEED}")
    return SEED


class Front(Elaboratable):
    """The tracker, the header check and the descriptor check wired as in the loader, with its
    stages 0 (``valid``, ``data`` and ``advance``, driven by the testbench) and 1."""

    def __init__(self, config):
        self.tracker = FrameTracker(config=config)
        self.header = HeaderCheck(config=config)
        self.check = DescriptorCheck(config=config)
        self.valid = Signal()
        self.advance = Signal()
        self.data = Signal(32)
        self.restart = Signal()

    def elaborate(self, platform):
        m = Module()
        t, h, d = self.tracker, self.header, self.check
        m.submodules.tracker, m.submodules.header, m.submodules.check = t, h, d
        wiring.connect(m, t.frame, h.frame, d.frame)
        wiring.connect(m, h.sections, t.sections)
        v1, d1 = Signal(), Signal(32)
        m.d.sync += [v1.eq(self.advance), d1.eq(self.data)]
        m.d.comb += [t.advance.eq(self.advance), t.restart.eq(self.restart),
                     h.word.eq(self.data), h.valid1.eq(v1), h.word1.eq(d1),
                     d.word.eq(self.data), d.valid.eq(self.valid), d.valid1.eq(v1)]
        return m


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_faults_are_the_parsers(name, seed):
    config = CONFIGS[name]
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    dut = Front(config)
    F = dut.check.cycles
    frames = streams(rng, config, 100, conv_bad=12)
    # directed: a dense layer's fan-in that breaks the chain (BAD_DESCRIPTOR, which comes
    # before the size check, even at max_fan_in + 1), and TOO_LARGE on every seed: fan-in
    # above max_fan_in on layer 0 (no chain to break), neurons above max_neurons on the last
    good = bs.words_of(bs.pack_network(random_layers(rng, config, sizes=[3, 4, 5]), config))
    frames += [with_descriptor(good, 1, fan_in=fan_in) for fan_in in (3, 5, config.max_fan_in + 1)]
    frames += [with_descriptor(good, 0, fan_in=config.max_fan_in + 1),
               with_descriptor(good, 1, neurons=config.max_neurons + 1)]
    codes = set()
    lanes = {desc_slot(k) for k in (3, 4, 5)}
    alone = lanes if config.conv else set()          # the lanes whose checks are its alone

    async def bench(ctx):
        for n, beats in enumerate(frames):
            index, code = first_fault(beats, config)
            gap = prng.choice([0.0, 0.3])
            faults_at = {}
            pending = {}
            i = cycle = 0
            held = 0
            end = min(len(beats), index + 1)
            while i < end or pending:
                if held:                   # a conv lane 5 waits in stage 0
                    valid, advance = True, held == 1
                    held -= 1
                else:
                    valid = i < end and prng.random() >= gap
                    advance = valid
                    slot = ctx.get(dut.tracker.frame.slot)
                    if valid and F and slot >> desc_slot(5) & 1 and ctx.get(dut.check.conv):
                        held, advance = F, False
                ctx.set(dut.valid, valid)
                ctx.set(dut.advance, advance)
                ctx.set(dut.data, beats[i] if valid else prng.getrandbits(32))
                if advance:
                    slot = ctx.get(dut.tracker.frame.slot).bit_length() - 1
                    pending[cycle + 2] = (i, slot)
                    i += 1
                if cycle in pending:
                    k, slot = pending.pop(cycle)
                    desc, large = ctx.get(dut.check.faults.desc), ctx.get(dut.check.faults.large)
                    faults_at[k] = (slot, E.BAD_DESCRIPTOR if desc else
                                    E.TOO_LARGE if large else None)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.valid, 0)
            ctx.set(dut.advance, 0)
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            for k, (slot, got) in sorted(faults_at.items()):
                where = (name, n, k, slot, code, got, seed)
                if k < index or slot not in lanes:
                    assert got is None, where
                elif slot in alone:
                    assert got == code, where
                    codes.add(code)
                else:
                    assert got in (None, code), where
                    codes.add(got)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert codes >= {E.BAD_DESCRIPTOR, E.TOO_LARGE}, codes
