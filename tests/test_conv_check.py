# amaranth: UnusedElaboratable=no
"""The loader's conv descriptor checker (spikepack.hw.conv_check.ConvChecker) alone in the
Amaranth simulator: random conv geometries (consistent ones, and ones with the fan-in, the
pooled map, the kernel or the map sizes off), their fields presented at the latest cycles the
loader guarantees (FIELD_READY, garbage before), and the flags read at exactly the cycles of the
docstring (b + 3 + F, the stored output words at b + 2 + F), against the golden twin
(spikepack.firmware.layout.descriptor_faults, lane 5, and storage_words). conv_check_cycles:
the default configuration's 5, 0 without conv, at most 7."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS, descriptor_faults, storage_words
from spikepack.hw.conv_check import FIELD_READY, FIELDS, ConvChecker, conv_check_cycles
from spikepack.sim.benches.loader import conv_config
from spikepack.sim.runner import bench_seed

WORD_BITS = 32
#: the checker's field names -> the descriptor's
NAMES = {"n": "fan_in", "m": "neurons", "hp": "out_height", "wp": "out_width",
         "cin": "in_channels", "h": "in_height", "w": "in_width", "kh": "kernel_h",
         "kw": "kernel_w", "sh": "stride_h", "sw": "stride_w", "ph": "pad_h", "pw": "pad_w",
         "qh": "pool_h", "qw": "pool_w"}
CONFIGS = {"conv_config": conv_config(),
           "rows8": conv_config(rows=8, cols=2, max_fan_in=512, max_channels=20, max_map_side=12,
                                max_map_words=600, max_kernel=7),
           "default": HardwareConfig()}


@pytest.fixture
def seed():
    value = bench_seed()
    print(f"seed {value} (reproduce with SPIKEPACK_SEED={value})")
    return value


def lanes_of(fields: dict) -> list[int]:
    """The six descriptor lanes of a conv layer with ``fields`` (bases 0)."""
    word = 1 << DESCRIPTOR_FIELDS["conv"][0]
    for name, value in fields.items():
        offset, width = DESCRIPTOR_FIELDS[NAMES[name]]
        assert 0 <= value < 1 << width, (name, value)
        word |= value << offset
    return [(word >> (WORD_BITS * k)) & 0xFFFFFFFF for k in range(6)]


def reference(fields: dict, config: HardwareConfig) -> tuple[int, int, int]:
    """(bad, large, out_words): lane 5's BAD_DESCRIPTOR by descriptor_faults (whose other lane-5
    checks, bits 24.. and zero kernel, stride, pool or pad >= kernel, the draw never hits), the
    stored maps above max_map_words (descriptor_faults' TOO_LARGE but the kernel's), the
    stored output map's words."""
    R = config.rows
    bad, _ = descriptor_faults(lanes_of(fields), 5, rows=R, config=config, index=1, last=False,
                               previous=None)
    in_words = storage_words((fields["cin"], fields["h"], fields["w"]), R)
    out_words = storage_words((fields["m"], fields["hp"], fields["wp"]), R)
    return int(bool(bad)), int(max(in_words, out_words) > config.max_map_words), out_words


def draw(rng: np.random.Generator, c: HardwareConfig) -> dict:
    """A conv descriptor within what the earlier lanes' checks guarantee (C_in, C_out <=
    max_channels, H, W <= max_map_side), kernel, stride, pool >= 1 and pad < kernel (lane 5's
    own checks), consistent or with one thing off (kind 0: none; 3: large maps)."""
    kind = int(rng.integers(6))
    big = kind == 3
    f = {key: int(rng.integers(1, top + 1)) for key, top in (
        ("cin", c.max_channels), ("m", c.max_channels), ("h", c.max_map_side),
        ("w", c.max_map_side))}
    if big:
        f.update(cin=c.max_channels, m=c.max_channels, h=c.max_map_side, w=c.max_map_side)
    for axis in "hw":
        f[f"k{axis}"] = int(rng.integers(1, 4 if big else 16))
        f[f"s{axis}"] = 1 if big else int(rng.integers(1, 4))
        f[f"p{axis}"] = int(rng.integers(0, min(7, f[f"k{axis}"] - 1) + 1))
        f[f"q{axis}"] = 1 if big else int(rng.integers(1, 8))
        side = f[axis] + 2 * f[f"p{axis}"] - f[f"k{axis}"]
        conv = side // f[f"s{axis}"] + 1 if side >= 0 else 0
        f[f"{axis}p"] = conv // f[f"q{axis}"]
    R = c.rows
    f["n"] = min(f["kh"] * f["kw"] * -(-f["cin"] // R) * R, 0xFFFF)
    if kind == 1:                                  # the fan-in off
        f["n"] = int(np.clip(f["n"] + rng.choice([-R, -1, 1, R]), 0, 0xFFFF))
    elif kind == 2:                                # a pooled side off (or anything)
        axis = rng.choice(["hp", "wp"])
        f[axis] = (int(rng.integers(0, 256)) if rng.random() < 0.3
                   else max(0, f[axis] + int(rng.choice([-1, 1]))))
    elif kind == 4:                                # any pooled map
        f.update(hp=int(rng.integers(0, 256)), wp=int(rng.integers(0, 256)))
    return {name: f[name] for name in FIELDS}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_flags_at_the_documented_cycles(name, seed):
    config = CONFIGS[name]
    rng = np.random.default_rng(seed)
    dut = ConvChecker(config=config)
    F = dut.cycles
    assert F == conv_check_cycles(config)
    cases = [draw(rng, config) for _ in range(150)]
    # a configuration where most consistent draws are large can miss a verdict in 150 draws:
    # draw on (chosen by the golden twin, not the hardware) until every verdict is present
    def verdicts():
        refs = [reference(f, config) for f in cases]
        return {(0, r[1]) for r in refs if not r[0]} | {(1, 0) for r in refs if r[0]}
    while verdicts() != {(0, 0), (0, 1), (1, 0)}:
        assert len(cases) < 5000, f"the draw never reached {verdicts()} (seed {seed})"
        cases.append(draw(rng, config))
    seen = {"bad": set(), "large": set()}

    async def bench(ctx):
        for i, fields in enumerate(cases):
            expected = reference(fields, config)
            # b = 0 is lane 5's beat: a field is garbage before its FIELD_READY cycle
            for t in range(-6, 4 + F):
                for key, value in fields.items():
                    good = t >= FIELD_READY[key]
                    ctx.set(getattr(dut.fields, key),
                            value if good else int(rng.integers(0, 1 << FIELDS[key])))
                # large and out_words are exact when bad is 0 (the docstring)
                if t == 2 + F and not expected[0]:
                    assert ctx.get(dut.out_words) == expected[2], (i, fields, seed)
                if t == 3 + F:
                    got = (ctx.get(dut.bad), ctx.get(dut.large))
                    assert got[0] == expected[0], (i, fields, got, expected, seed)
                    seen["bad"].add(got[0])
                    if not got[0]:
                        assert got[1] == expected[1], (i, fields, got, expected, seed)
                        seen["large"].add(got[1])
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"bad": {0, 1}, "large": {0, 1}}, seen     # the draw reached both verdicts


def test_conv_check_cycles():
    assert conv_check_cycles(HardwareConfig()) == 5
    assert conv_check_cycles(HardwareConfig(conv=False)) == 0
    for config in CONFIGS.values():
        assert 0 < conv_check_cycles(config) <= 7
    with pytest.raises(TypeError, match="HardwareConfig"):
        conv_check_cycles({"rows": 4})
    with pytest.raises(TypeError, match="HardwareConfig"):
        ConvChecker(config={"rows": 4})
