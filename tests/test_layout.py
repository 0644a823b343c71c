"""Memory layout: round trip, bit positions against an independent reading, and refusals."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikepack.config import DESCRIPTOR_LANES, HardwareConfig
from spikepack.firmware.layout import (LayerDescriptor, LayoutError, lanes_to_words,
                                       layout_network, unpack_network)


def random_net(rng, sizes, config):
    lo, hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    layers = []
    for i, (n, m) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        layers.append((rng.integers(lo, hi + 1, (m, n)),
                       rng.integers(-(1 << (config.bias_bits - 1)), 1 << (config.bias_bits - 1), m),
                       None if last else rng.integers(1, 1 << config.threshold_bits, m)))
    return layers


@settings(max_examples=40)
@given(rows=st.sampled_from([1, 2, 4, 8]), cols=st.sampled_from([1, 2, 4, 8]),
       T=st.integers(1, 8), bw=st.integers(2, 16), seed=st.integers(0, 2**32 - 1),
       sizes=st.lists(st.integers(1, 40), min_size=2, max_size=4))
def test_round_trip(rows, cols, T, bw, seed, sizes):
    config = HardwareConfig(rows=rows, cols=cols, timesteps=T, weight_bits=bw, max_fan_in=64,
                            max_neurons=64, weight_depth=4096)
    layers = random_net(np.random.default_rng(seed), sizes, config)
    image = layout_network(layers, config)
    assert image.layer_count == len(layers)
    for (w, b, t), (w2, b2, t2, conv) in zip(layers, unpack_network(image, config)):
        assert conv is None
        assert (w == w2).all() and (b == b2).all()
        assert (t is None) == (t2 is None)
        if t is not None:
            assert (t == t2).all()


def test_weight_bit_positions():
    # R = 4, C = 2, T = 2 -> g = 2 rows per word, 2 words per tile, 4-bit weights
    config = HardwareConfig(rows=4, cols=2, timesteps=2, weight_bits=4, max_fan_in=16,
                            max_neurons=16)
    assert config.rows_per_word == 2
    w = np.arange(3 * 5).reshape(3, 5) % 8 - 4           # M = 3, N = 5
    image = layout_network([(w, np.zeros(3, int), None)], config)
    words = lanes_to_words(image.memories["weight"])
    # 2 column tiles x 2 row tiles x 2 words
    assert len(words) == 8

    def field(word, rr, c):  # an independent reading of the documented position
        v = (word >> ((rr * 2 + c) * 4)) & 0xF
        return v - 16 if v & 8 else v
    for ct in range(2):
        for rt in range(2):
            for q in range(2):
                word = words[(ct * 2 + rt) * 2 + q]
                for rr in range(2):
                    for c in range(2):
                        m, n = ct * 2 + c, rt * 4 + q * 2 + rr
                        expect = w[m, n] if m < 3 and n < 5 else 0
                        assert field(word, rr, c) == expect, (ct, rt, q, rr, c)


def test_descriptor_lanes():
    """A descriptor is DESCRIPTOR_LANES (6) lanes in every configuration (docs/bitstream.md):
    a dense layer's lanes 4 and 5 and its lane 3 above the readout flag are zero."""
    d = LayerDescriptor(fan_in=64, neurons=10, weight_base=123, column_base=7, readout=True)
    assert len(d.to_lanes()) == DESCRIPTOR_LANES == 6
    assert d.to_lanes() == [64 | (10 << 16), 123, 7, 1, 0, 0]
    assert LayerDescriptor.from_lanes(d.to_lanes()) == d
    # a conv descriptor, each field at its documented place (an independent reading)
    c = LayerDescriptor(fan_in=72, neurons=5, weight_base=9, column_base=3, readout=False,
                        conv=True, out_height=13, out_width=12, in_channels=3, in_height=28,
                        in_width=27, kernel_h=3, kernel_w=5, stride_h=2, stride_w=3, pad_h=1,
                        pad_w=4, pool_h=2, pool_w=7)
    assert c.to_lanes() == [72 | (5 << 16), 9, 3, 2 | (13 << 8) | (12 << 16),
                            3 | (28 << 16) | (27 << 24),
                            3 | (5 << 4) | (2 << 8) | (3 << 10) | (1 << 12) | (4 << 15)
                            | (2 << 18) | (7 << 21)]
    assert LayerDescriptor.from_lanes(c.to_lanes()) == c


@pytest.mark.parametrize("change,match", [
    (lambda L: [(L[0][0] * 1000, L[0][1], L[0][2]), L[1]], "weights holds .* outside"),
    (lambda L: [(L[0][0], L[0][1], np.zeros_like(L[0][2])), L[1]], "threshold holds 0"),
    (lambda L: [(L[0][0], L[0][1] + (1 << 20), L[0][2]), L[1]], "bias holds"),
    (lambda L: [L[0], (L[1][0][:, :3], L[1][1], None)], "has 3 inputs but the layer before has"),
    (lambda L: [(L[0][0], L[0][1], None), L[1]], "needs thresholds"),
    (lambda L: L * 5, "at most 8"),
])
def test_refusals_are_named(change, match):
    config = HardwareConfig()
    rng = np.random.default_rng(0)
    layers = random_net(rng, [6, 5, 4], config)
    with pytest.raises(LayoutError, match=match):
        layout_network(change(layers), config)


def test_capacity_limits_are_named():
    config = HardwareConfig(max_fan_in=32, weight_depth=16)
    rng = np.random.default_rng(0)
    with pytest.raises(LayoutError, match="fan-in 40 exceeds .* max_fan_in 32"):
        layout_network(random_net(rng, [40, 4], config), config)
    # 32 x 32 on 8 x 8 with 4 words a tile: 4 column tiles x 4 row tiles x 4 words
    assert config.words_per_tile * math.ceil(32 / 8) ** 2 == 64
    with pytest.raises(LayoutError, match="needs 64 weight words.* holds 16"):
        layout_network(random_net(rng, [32, 32], config), config)
