# amaranth: UnusedElaboratable=no
"""The loader's frame tracker (spikepack.hw.frame_tracker.FrameTracker) alone in the Amaranth
simulator: frames of random section sizes (one word, two, many, the memories' depths), advanced
with random gaps, cut anywhere (a truncated frame), at the CRC word or after extra words, and
restarted as the loader restarts it; in every cycle ``frame`` must describe the next word as the
bitstream format lays it out (docs/bitstream.md: header and table words, then the descriptor,
weight, bias and threshold sections word by word and lane by lane, then the CRC word). The
section counts are garbage except from the latest cycle the docstring allows."""

import random

import pytest
from amaranth.sim import Simulator

from spikepack.sim.runner import bench_seed
from spikepack.config import HardwareConfig
from spikepack.firmware.bitstream_format import PAYLOAD_OFFSET, SECTION_NAMES
from spikepack.hw.frame_tracker import SLOT_OTHER, FrameTracker, desc_slot
from spikepack.sim.benches.loader import conv_config, small_config

SEED = bench_seed()     # SPIKEPACK_SEED replays a run
CONFIGS = {"small": small_config(), "conv": conv_config(), "default": HardwareConfig(),
           "one_lane": small_config(rows=2, cols=2, weight_bits=4, bias_bits=8,
                                    threshold_bits=8)}


@pytest.fixture
def seed():
    print(f"seed {SEED}")
    return SEED


def layout(config: HardwareConfig, counts: dict) -> list[dict]:
    """What each word of a frame with section words ``counts`` (layers, weight, column) is, as
    the tracker's ``frame`` fields (``None``: not checked), the CRC word last."""
    words = [{"slot": 1 << i, "payload": 0, "crc": 0} for i in range(PAYLOAD_OFFSET)]
    sizes = (counts["layers"], counts["weight"], counts["column"], counts["column"])
    for sec, (name, size) in enumerate(zip(SECTION_NAMES, sizes)):
        lanes = config.memories[name].lanes
        for word in range(size):
            for lane in range(lanes):
                slot = desc_slot(lane) if sec == 0 else SLOT_OTHER
                words.append({"slot": 1 << slot, "payload": 1, "crc": 0, "sec": sec,
                              "word": word, "lane": lane, "first_word": int(word == 0),
                              "last_word": int(word == size - 1)})
    words.append({"slot": 1 << SLOT_OTHER, "payload": 0, "crc": 1})
    return words


AFTER = {"slot": 1 << SLOT_OTHER, "payload": 0, "crc": 0}       # words after the CRC word


def draw_counts(rng: random.Random, config: HardwareConfig) -> dict:
    specs = config.memories
    limits = {"layers": config.max_layers, "weight": specs["weight"].depth,
              "column": specs["bias"].depth}
    out = {}
    for key, top in limits.items():
        r = rng.random()
        out[key] = (top if r < 0.1 else rng.randint(1, min(2, top)) if r < 0.5
                    else rng.randint(1, min(top, 8)))
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_frame_describes_each_word(name, seed):
    config = CONFIGS[name]
    rng = random.Random(seed)
    dut = FrameTracker(config=config)
    fields = ("slot", "payload", "crc", "sec", "word", "lane", "first_word", "last_word")
    seen_cuts = set()

    def garbage(ctx):
        for key, port in (("layers", dut.sections.layers), ("weight", dut.sections.weight),
                          ("column", dut.sections.column)):
            ctx.set(port, rng.getrandbits(len(port)))

    async def bench(ctx):
        for frame in range(40):
            counts = draw_counts(rng, config)
            words = layout(config, counts)
            kind = rng.choice(["good", "good", "cut", "extra"])
            length = {"good": len(words), "cut": rng.randint(1, len(words) - 1),
                      "extra": len(words) + rng.randint(1, 3)}[kind]
            seen_cuts.add(kind)
            gap = rng.choice([0.0, 0.0, 0.5])
            i = 0
            while i < length:
                expected = words[i] if i < len(words) else AFTER
                for key in fields:
                    if key in expected:
                        got = ctx.get(getattr(dut.frame, key))
                        assert got == expected[key], (frame, counts, kind, i, key, got,
                                                      expected, seed)
                assert ctx.get(dut.frame.mid) == (i > 0)
                advance = rng.random() >= gap
                # the counts hold their values from the cycle before word PAYLOAD_OFFSET - 2
                # advances on (the docstring); garbage before
                if i >= PAYLOAD_OFFSET - 2 or i == PAYLOAD_OFFSET - 3 and advance:
                    for key, port in (("layers", dut.sections.layers),
                                      ("weight", dut.sections.weight),
                                      ("column", dut.sections.column)):
                        ctx.set(port, counts[key])
                else:
                    garbage(ctx)
                ctx.set(dut.advance, advance)
                await ctx.tick()
                i += advance
            # the last word advanced: the loader restarts the tracker the cycle after
            ctx.set(dut.advance, 0)
            ctx.set(dut.restart, 1)
            garbage(ctx)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            for _ in range(rng.randint(0, 2)):
                await ctx.tick()
            assert ctx.get(dut.frame.slot) == 1 and ctx.get(dut.frame.mid) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen_cuts == {"good", "cut", "extra"}


def test_desc_slot_and_config_checked():
    assert [desc_slot(k) for k in range(6)] == list(range(PAYLOAD_OFFSET, PAYLOAD_OFFSET + 6))
    assert SLOT_OTHER == PAYLOAD_OFFSET + 6
    with pytest.raises(ValueError):
        desc_slot(6)
    with pytest.raises(TypeError, match="HardwareConfig"):
        FrameTracker(config={"rows": 4})
