# amaranth: UnusedElaboratable=no
"""The loader's checks by slot (spikepack.hw.header_check.HeaderCheck) in the Amaranth
simulator, behind the frame tracker that tells it what each word is (as the loader wires them):
good streams and the benches' bad streams (every header field, the section table, lengths,
totals, descriptor sizes and bases, oversize, garbage), words a cycle or with idle cycles. The
golden twin is the parser's stream phase (spikepack.firmware.bitstream.loader_outcome): the
first faulty word of a stream is the shortest prefix the parser refuses; every word before it
must have no fault in ``faults`` (at t + 2), and at that word the faults, grouped as the
verdict groups them, give the parser's code when the word is one whose checks are the header
check's alone (the header, the table, a descriptor's lanes 0-2; without conv, lanes 4 and 5),
else no fault or that code."""

import random

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikepack.sim.runner import bench_seed
from spikepack.firmware import bitstream as bs
from spikepack.firmware.bitstream_format import PAYLOAD_OFFSET, ErrorCode as E
from spikepack.hw.frame_tracker import FrameTracker, desc_slot
from spikepack.hw.header_check import HeaderCheck
from spikepack.sim.benches.loader import (bad_streams, conv_bad_streams, conv_config,
                                          random_conv_layers, random_layers, small_config)

SEED = bench_seed()     # SPIKEPACK_SEED replays a run
CONFIGS = {"small": small_config(), "dense": small_config(conv=False, max_layers=4),
           "conv": conv_config()}


@pytest.fixture
def seed():
    print(f"seed {SEED}")
    return SEED


class Front(Elaboratable):
    """A FrameTracker and a HeaderCheck wired as in the loader, with the loader's stage 0 (the
    word ``data`` and ``valid``, driven by the testbench; a valid word advances) and stage 1."""

    def __init__(self, config):
        self.tracker = FrameTracker(config=config)
        self.check = HeaderCheck(config=config)
        self.valid = Signal()
        self.data = Signal(32)
        self.restart = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tracker, m.submodules.check = t, h = self.tracker, self.check
        wiring.connect(m, t.frame, h.frame)
        wiring.connect(m, h.sections, t.sections)
        v1, d1 = Signal(), Signal(32)
        m.d.sync += [v1.eq(self.valid), d1.eq(self.data)]
        m.d.comb += [t.advance.eq(self.valid), t.restart.eq(self.restart), h.word.eq(self.data),
                     h.valid1.eq(v1), h.word1.eq(d1)]
        return m


def first_fault(beats, config) -> tuple[int, E]:
    """The index of the first word the parser refuses (binary search over prefixes, each a
    frame with TLAST on its last word: TRUNCATED means no fault yet) and its code; the CRC word
    or the end counts as a fault when nothing else is."""
    outcome = [None] * len(beats)

    def at(k):
        if outcome[k] is None:
            outcome[k] = bs.loader_outcome(beats[:k + 1], config)
        return outcome[k]

    lo, hi = 0, len(beats) - 1
    if at(hi) == E.TRUNCATED:
        return len(beats), E.TRUNCATED
    while lo < hi:
        mid = (lo + hi) // 2
        if at(mid) == E.TRUNCATED:
            lo = mid + 1
        else:
            hi = mid
    return lo, at(lo)


#: the codes the header check must reach in every run
WANTED = {E.BAD_MAGIC, E.BAD_VERSION, E.BAD_SIGNATURE, E.BAD_HEADER, E.BAD_SECTION, E.BAD_LENGTH,
          E.TOO_LARGE}


def grouped(faults: dict) -> E | None:
    """The code of a word's header faults, grouped as FrameVerdict groups them."""
    if faults["eq"] or faults["ge"]:
        return E(faults["code"])
    if faults["total"] or faults["zero"]:
        return E.BAD_LENGTH
    if faults["desc0"]:
        return E.BAD_DESCRIPTOR
    return None


def streams(rng, config, count, conv_bad=4):
    """Good streams of random networks (conv ones half the time with conv) and bad streams
    derived from them: ``count`` at least."""
    other = small_config(threshold_bits=13)
    out = []
    while len(out) < count:
        conv = config.conv and rng.random() < 0.5
        layers = random_conv_layers(rng, config) if conv else random_layers(rng, config)
        good = bs.words_of(bs.pack_network(layers, config))
        out.append(good)
        out += [s.beats for s in bad_streams(rng, good, config, other, 12,
                                             offset=int(rng.integers(0, 30)))]
        if conv:
            out += [s.beats for s in conv_bad_streams(rng, good, config, conv_bad)]
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_faults_are_the_parsers(name, seed):
    config = CONFIGS[name]
    rng = np.random.default_rng(seed)
    prng = random.Random(seed)
    dut = Front(config)
    frames = streams(rng, config, 60)
    # 60 streams miss a code now and then (BAD_SECTION about one run in 30): draw on until the
    # parser's verdicts (the golden twin, not the hardware) hold every code the end asserts
    for _ in range(20):
        if {first_fault(beats, config)[1] for beats in frames} >= WANTED:
            break
        frames += streams(rng, config, 10)
    codes = set()
    checked_slots = set(range(PAYLOAD_OFFSET)) | {desc_slot(k) for k in range(3)}
    if not config.conv:           # lane 3: the readout flag here, the chain and maxima not
        checked_slots |= {desc_slot(4), desc_slot(5)}

    async def bench(ctx):
        for n, beats in enumerate(frames):
            index, code = first_fault(beats, config)
            gap = prng.choice([0.0, 0.3])
            words = []                     # (index, slot) of the words in stage 0 so far
            faults_at = {}
            i = cycle = 0
            pending = {}
            while i < min(len(beats), index + 1) or pending:
                valid = i < min(len(beats), index + 1) and prng.random() >= gap
                ctx.set(dut.valid, valid)
                ctx.set(dut.data, beats[i] if valid else prng.getrandbits(32))
                if valid:
                    slot = ctx.get(dut.tracker.frame.slot).bit_length() - 1
                    pending[cycle + 2] = (i, slot)
                    i += 1
                if cycle in pending:
                    k, slot = pending.pop(cycle)
                    f = {name: ctx.get(getattr(dut.check.faults, name))
                         for name in ("code", "eq", "ge", "total", "zero", "desc0")}
                    faults_at[k] = (slot, grouped(f))
                await ctx.tick()
                cycle += 1
            ctx.set(dut.valid, 0)
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            for k, (slot, got) in sorted(faults_at.items()):
                where = (name, n, k, slot, code, got, seed)
                if k < index:
                    assert got is None, where
                elif slot in checked_slots:
                    assert got == code, where
                    codes.add(code)
                else:
                    assert got in (None, code), where

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the header check reached its codes (the draws make each far more likely than not)
    assert codes >= WANTED, (codes, seed)
