"""Random configurations (spikepack.sim.configspace) over the whole space of docs/config.md:
every draw is valid, every field's range ends are hit, the "just large enough" limits hold
their network exactly; and over that space, the configuration's widths and memory map agree
with the golden width calculator and with first principles (the extreme values fit, one bit
less would not; every word fits its lanes; every address and lane is reachable)."""

import math
import random

import numpy as np
import pytest

from spikepack.sim.runner import bench_seed
from spikepack.config import WORD_BITS, ConfigError, HardwareConfig
from spikepack.sim import golden
from spikepack.config import DESCRIPTOR_LANES
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.sim.configspace import (CONV_LIMITS, FIELD_RANGES, column_words_needed,
                                       random_config, weight_words_needed)

SEED = bench_seed()     # SPIKEPACK_SEED replays a run
DRAWS = 3000
FULL = dict(fan_in_limit=1 << 16, neurons_limit=1 << 16, layers_limit=256, depth_limit=1 << 20,
            channels_limit=1 << 12, map_side_limit=255, map_words_limit=1 << 20)


@pytest.fixture(scope="module")
def seed():
    print(f"seed {SEED}")
    return SEED


@pytest.fixture(scope="module")
def configs(seed):
    rng = np.random.default_rng(seed)
    return [random_config(rng, **FULL) for _ in range(DRAWS)]


def test_every_draw_is_valid(configs, seed):
    for i, c in enumerate(configs):
        assert isinstance(c, HardwareConfig)
        # reconstructing from the fields checks them all again
        assert HardwareConfig(**c.as_dict()) == c, f"draw {i} (seed {seed}): {c}"
        assert not (c.neuron == "lif" and c.pe_mode == "packed")


def test_every_range_end_is_hit(configs, seed):
    seen = {name: {getattr(c, name) for c in configs} for name in FIELD_RANGES}
    # the conv limits over the conv configurations (a dense-only one keeps the defaults)
    seen.update({name: {getattr(c, name) for c in configs if c.conv} for name in CONV_LIMITS})
    assert {c.conv for c in configs} == {True, False}
    for name in ("rows", "cols", "timesteps", "weight_bits", "bias_bits", "threshold_bits",
                 "max_fan_in", "max_neurons", "max_layers", "weight_depth") + CONV_LIMITS:
        lo, hi = FIELD_RANGES[name]
        assert lo in seen[name] and hi in seen[name], (
            f"{name}: ends {lo} / {hi} not both drawn in {DRAWS} draws (seed {seed})")
    assert seen["tau_shift"] == {1, 2, 3}
    assert seen["rows"] == seen["cols"] == {1, 2, 4, 8, 16, 32, 64}
    assert set(range(1, 17)) <= seen["timesteps"]
    assert {(c.neuron, c.pe_mode) for c in configs} == {
        ("spikepack", "serial"), ("spikepack", "packed"), ("lif", "serial")}
    g = {c.weight_rows_per_word == 0 for c in configs}
    assert g == {True, False}
    # the widest corners that stay valid are drawn too
    assert any(c.timesteps == 16 and c.tau_shift == 3 for c in configs)
    assert any(c.timesteps == 16 and c.threshold_bits == 32 for c in configs)


def test_fixed_fields_and_limits(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        c = random_config(rng, neuron="lif", max_array=8, max_timesteps=4, fan_in_limit=20,
                          neurons_limit=10, layers_limit=3, depth_limit=50)
        assert c.neuron == "lif" and c.pe_mode == "serial"
        assert c.rows <= 8 and c.cols <= 8 and c.timesteps <= 4
        assert c.max_fan_in <= 20 and c.max_neurons <= 10 and c.max_layers <= 3
        assert c.weight_depth <= 50
        assert max(m.lanes for m in random_config(rng, lanes_limit=6).memories.values()) <= 6
        d = random_config(rng, conv=True, channels_limit=5, map_side_limit=7, map_words_limit=99)
        assert d.conv and d.max_channels <= 5 and d.max_map_side <= 7 and d.max_map_words <= 99
        assert not random_config(rng, conv=False).conv
        p = random_config(rng, pe_mode="packed", timesteps=7, bias_bits=17)
        assert (p.neuron, p.pe_mode, p.timesteps, p.bias_bits) == ("spikepack", "packed", 7, 17)
    with pytest.raises(ValueError, match="packed"):
        random_config(rng, neuron="lif", pe_mode="packed")
    with pytest.raises(TypeError, match="unknown HardwareConfig field"):
        random_config(rng, colums=4)
    with pytest.raises(ValueError, match="max_array"):
        random_config(rng, max_array=12)
    with pytest.raises(ValueError, match="a descriptor is 6 lanes"):
        random_config(rng, lanes_limit=5)


def test_just_large_enough_holds_the_network(seed):
    from spikepack.firmware.layout import LayoutError, layout_network
    rng = np.random.default_rng(seed)
    exact = 0
    for _ in range(200):
        sizes = [int(v) for v in rng.integers(1, 40, size=int(rng.integers(2, 5)))]
        c = random_config(rng, sizes=sizes, max_array=16, max_timesteps=8)
        weights = weight_words_needed(sizes, rows=c.rows, cols=c.cols,
                                      rows_per_word=c.rows_per_word)
        assert c.max_fan_in >= max(sizes[:-1]) and c.max_neurons >= max(sizes[1:])
        assert c.max_layers >= len(sizes) - 1 and c.weight_depth >= weights
        assert c.memories["bias"].depth >= column_words_needed(sizes, cols=c.cols)
        exact += (c.max_fan_in, c.max_layers, c.weight_depth) == (
            max(sizes[:-1]), len(sizes) - 1, weights)
        layers = [(np.zeros((m, n), np.int64), np.zeros(m, np.int64), np.ones(m, np.int64))
                  for n, m in zip(sizes, sizes[1:])]
        image = layout_network(layers, c)          # fits: raises LayoutError otherwise
        assert len(image.memories["weight"]) == weights
        if weights > 1:                            # and one weight word less does not fit
            smaller = HardwareConfig(**{**c.as_dict(), "weight_depth": weights - 1})
            with pytest.raises(LayoutError):
                layout_network(layers, smaller)
    assert exact, "the exact minimum was never drawn"


def _fits_signed(v, bits):
    return -(1 << (bits - 1)) <= v < (1 << (bits - 1))


def test_widths_agree_with_the_golden_calculator(configs, seed):
    """Over the whole space: the config's widths are the golden calculator's for its largest
    layer (the widest of the largest dense layer and, with conv, the largest conv patch as the
    array sees it: C_in rounded up to R channels, max_kernel x max_kernel); each one holds its
    extreme values and is the fewest bits that does (computed here from the arithmetic of SPEC
    section 4, not from the calculator)."""
    convs = 0
    for i, c in enumerate(configs):
        label = f"draw {i} (seed {seed}): {c}"
        w = c.widths
        common = dict(weight_bits=c.weight_bits, T=c.timesteps, tau_shift=c.tau_shift,
                      bias_bits=c.bias_bits, threshold_bits=c.threshold_bits)
        dense = golden.layer_widths(fan_in=c.max_fan_in, rows=min(c.rows, c.max_fan_in), **common)
        N, R = c.max_fan_in, min(c.rows, c.max_fan_in)
        if c.conv:
            convs += 1
            c_in = c.rows * math.ceil(c.max_channels / c.rows)
            conv = golden.conv_layer_widths(in_channels=c_in, kernel=c.max_kernel, rows=c.rows,
                                            **common)
            dense = golden.Widths(**{f: max(getattr(dense, f), getattr(conv, f))
                                     for f in dense.__dataclass_fields__})
            N, R = max(N, c_in * c.max_kernel ** 2), min(c.rows, max(N, c_in * c.max_kernel ** 2))
        assert w == dense, label
        w_lo, w_hi = -(1 << (c.weight_bits - 1)), (1 << (c.weight_bits - 1)) - 1
        b_lo, b_hi = -(1 << (c.bias_bits - 1)), (1 << (c.bias_bits - 1)) - 1
        tau = 1 << c.tau_shift
        P = sum(tau ** t for t in range(c.timesteps))        # the all-ones spike word
        extremes = {
            "current": (R * w_lo, R * w_hi),
            "potential": (N * w_lo * P + b_lo, N * w_hi * P + b_hi),
            "lif_current": (N * w_lo + b_lo, N * w_hi + b_hi),
        }
        for name, (lo, hi) in extremes.items():
            bits = getattr(w, name)
            assert _fits_signed(lo, bits) and _fits_signed(hi, bits), (name, label)
            assert not (_fits_signed(lo, bits - 1) and _fits_signed(hi, bits - 1)), (name, label)
        top = ((1 << c.threshold_bits) - 1) * tau ** (c.timesteps - 1)
        assert top < (1 << w.decode) and (w.decode == 1 or top >= (1 << (w.decode - 1))), label
        assert max(w.potential, w.decode + 1, w.lif) <= golden.MAX_POTENTIAL_BITS, label
    assert convs and convs < len(configs), "conv and dense-only configurations both drawn"


def test_memory_map_over_the_space(configs, seed):
    for i, c in enumerate(configs):
        label = f"draw {i} (seed {seed}): {c}"
        mem = c.memories
        g = c.rows_per_word
        assert c.rows % g == 0 and c.words_per_tile * g == c.rows, label
        # a descriptor is DESCRIPTOR_LANES lanes in every configuration (docs/bitstream.md):
        # the fields' extent, conv fields included, zero in a dense layer's descriptor
        descriptor_bits = max(o + n for o, n in DESCRIPTOR_FIELDS.values())
        assert mem["descriptor"].lanes == DESCRIPTOR_LANES, label
        bits = {"descriptor": descriptor_bits, "weight": g * c.cols * c.weight_bits,
                "bias": c.cols * c.bias_bits, "threshold": c.cols * c.threshold_bits}
        # column tiles: the widest layer, a dense one of max_neurons or a conv one of
        # max_channels output channels
        widest = max(c.max_neurons, c.max_channels if c.conv else 0)
        tiles = c.max_layers * math.ceil(widest / c.cols)
        depths = {"descriptor": c.max_layers, "weight": c.weight_depth, "bias": tiles,
                  "threshold": tiles}
        for name, spec in mem.items():
            # the word fits its lanes, with less than one lane of padding
            assert spec.lanes * WORD_BITS >= bits[name] > (spec.lanes - 1) * WORD_BITS, label
            assert spec.depth == depths[name], (name, label)
            # every word of a bank is addressable by the loader's address and lane index
            assert (spec.depth - 1) < (1 << c.write_addr_bits), (name, label)
            assert (spec.lanes - 1) < (1 << c.lane_bits), (name, label)
        # the widest memory needs every address bit
        assert max(s.depth for s in mem.values()) > (1 << (c.write_addr_bits - 1)) or \
            c.write_addr_bits == 1, label
        assert c.max_layers < (1 << c.layer_count_bits) and \
            c.max_layers >= (1 << (c.layer_count_bits - 1)), label
        # a network of max_layers layers of the widest outputs fills the column memories
        sizes = [c.max_fan_in] + [widest] * c.max_layers
        assert column_words_needed(sizes, cols=c.cols) == tiles, label


def _doc_signature(fields: dict) -> int:
    """docs/config.md's formula, written out without the json module."""
    members = {**fields, "memory_map_version": 2}

    def value(v):
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        assert isinstance(v, int) and not isinstance(v, bool)
        return str(v)

    text = "{" + ", ".join(f'"{k}": {value(members[k])}' for k in sorted(members)) + "}"
    import hashlib
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def test_signature_is_the_documented_formula(configs, seed):
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    default = HardwareConfig()
    # the doc's worked example: its JSON line hashes to its value, which is the code's
    example = next(line for line in doc.splitlines() if line.startswith('{"bias_bits"'))
    import hashlib
    import re
    stated = int(re.search(r"the signature is `(0x[0-9a-f]{8})`", doc).group(1), 16)
    assert int.from_bytes(hashlib.sha256(example.encode()).digest()[:4], "little") == stated
    assert default.signature == stated == _doc_signature(default.as_dict())
    for i, c in enumerate(configs[:500]):
        assert c.signature == _doc_signature(c.as_dict()), f"draw {i} (seed {seed}): {c}"
