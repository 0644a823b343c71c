"""The benches' stimulus generator (``spikepack.sim.benches.stimulus``), without a simulator:
seeds replay the same stimulus; random dense networks are calibrated (hidden spike words neither
all silent nor all saturated) and fit the weight memory; extreme networks sit at the ends of
every range; random images start all-zero and all-ones; the regression's cases cover the
configuration space within the cost budget; conv plans fit every limit of their configuration.
Every random test prints its seed (``SPIKEPACK_SEED`` replays it)."""

from __future__ import annotations

import numpy as np
import pytest

from spikepack.config import HardwareConfig
from spikepack.sim import runner
from spikepack.sim.benches.stimulus import (COST_LIMITS, draw_case, extreme_network,
                                            fitting_network, inference_cycles, random_images,
                                            random_network, random_plan, random_sizes)
from spikepack.sim.golden import run_network


def _seeded():
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    return seed, np.random.default_rng(seed)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_a_seed_replays_the_same_stimulus():
    """Two generators from one seed draw the same networks, images, plans and cases; another
    seed draws others."""
    seed, _ = _seeded()
    config = HardwareConfig()

    def draw(s):
        rng = np.random.default_rng(s)
        sizes = random_sizes(rng, config)
        return [sizes, fitting_network(rng, config, sizes),
                fitting_network(rng, config, random_sizes(rng, config), extreme=True),
                random_images(rng, 4, sizes[0], config.timesteps), random_plan(rng, config),
                draw_case(rng)]

    assert _same(draw(seed), draw(seed))
    assert not _same(draw(seed), draw(seed + 1))


@pytest.mark.parametrize("neuron", ["spikepack", "lif"])
def test_random_networks_are_calibrated_and_in_range(neuron):
    """Weights, biases and thresholds within their widths, the readout without a threshold;
    over many networks the hidden spike words on random images use both ends (0 and
    2**T - 1) and values between."""
    seed, rng = _seeded()
    config = HardwareConfig(neuron=neuron)
    T = config.timesteps
    w_hi, b_hi = 1 << (config.weight_bits - 1), 1 << (config.bias_bits - 1)
    seen = set()
    for i in range(20):
        sizes = [int(rng.integers(4, 40)), int(rng.integers(4, 40)), int(rng.integers(2, 10))]
        layers = random_network(rng, config, sizes)
        what = f"network {i} {sizes} (seed {seed})"
        assert [w.shape for w, _, _ in layers] == [(m, n) for n, m in zip(sizes, sizes[1:])]
        for j, (w, b, t) in enumerate(layers):
            assert -w_hi <= w.min() and w.max() < w_hi and -b_hi <= b.min() and b.max() < b_hi
            if j == len(layers) - 1:
                assert t is None, what
            else:
                assert 1 <= t.min() and t.max() < 1 << config.threshold_bits, what
        z = rng.integers(0, 1 << T, size=(32, sizes[0]))
        _, entering = run_network(z, layers, T, config.tau_shift, neuron)
        seen.update(np.unique(entering[1]).tolist())      # the hidden layer's spike words
    assert {0, (1 << T) - 1} <= seen and len(seen) > 2, f"seed {seed}: hidden words {seen}"


def test_extreme_networks_sit_at_the_ends_of_every_range():
    seed, rng = _seeded()
    config = HardwareConfig()
    w_lo, w_hi = -(1 << (config.weight_bits - 1)), (1 << (config.weight_bits - 1)) - 1
    b_lo, b_hi = -(1 << (config.bias_bits - 1)), (1 << (config.bias_bits - 1)) - 1
    for i in range(10):
        layers = extreme_network(rng, config, random_sizes(rng, config))
        for w, b, t in layers:
            assert set(np.unique(w)) <= {w_lo, w_hi}, f"network {i} (seed {seed})"
            assert set(np.unique(b)) <= {b_lo, b_hi, 0}
            assert t is None or set(np.unique(t)) <= {1, (1 << config.threshold_bits) - 1}


def test_fitting_networks_fit_the_weight_memory():
    """Sizes too large for the weight memory shrink until the network packs."""
    from spikepack.firmware.layout import layout_network
    seed, rng = _seeded()
    config = HardwareConfig(weight_depth=64)
    sizes = [config.max_fan_in, config.max_neurons, config.max_neurons]
    for extreme in (False, True):
        layers = fitting_network(rng, config, sizes, extreme=extreme)
        layout_network(layers, config)          # raises when it does not fit
        assert [layers[0][0].shape[1]] + [w.shape[0] for w, _, _ in layers] != sizes


def test_random_images_start_all_zero_and_all_ones():
    seed, rng = _seeded()
    for shape in (7, (3, 4, 5)):
        z = random_images(rng, 6, shape, 5)
        dims = (shape,) if isinstance(shape, int) else shape
        assert z.shape == (6,) + dims and z.min() >= 0 and z.max() < 32
        assert (z[0] == 0).all() and (z[1] == 31).all()
        assert not ((z[2:] == 0).all() or (z[2:] == 31).all()), f"seed {seed}"


def _check_conv_case(config, plan, what):
    """The drawn conv network, built as a model (which checks its geometry), against every
    limit of its configuration, restated from the convolution contract's loader rules (docs/architecture.md): channels, map sides and
    stored map words, kernels, padding below the kernel, strides, hardware layers (a pooling
    merges into its conv), dense fan-in (the stored map: H_p*W_p*ceil(C/R)*R) and neurons,
    weight words (ceil(M/C) column tiles of K_h*K_w*ceil(C_in/R) row tiles of R/g words)."""
    from spikepack.firmware.layout import storage_words
    from spikepack.sim.benches.stimulus import conv_model
    model = conv_model(np.random.default_rng(0), config, plan)
    R, C, g = config.rows, config.cols, config.rows_per_word
    assert config.conv, what
    words = hw_layers = 0
    for i, layer in enumerate(model.layers):
        shape = model.shapes[i]
        if layer.kind == "conv":
            (K_h, K_w), (s_h, s_w), (p_h, p_w) = layer.kernel, layer.stride, layer.padding
            assert max(shape[0], layer.out_channels) <= config.max_channels, what
            assert max(shape[1:]) <= config.max_map_side, what
            assert storage_words(shape, R) <= config.max_map_words, what
            assert max(K_h, K_w) <= config.max_kernel and 1 <= min(s_h, s_w) <= 2, what
            assert p_h < K_h and p_w < K_w, what
            out = model.shapes[i + 2] if (i + 1 < len(model.layers)
                                          and model.layers[i + 1].kind == "maxpool") \
                else model.shapes[i + 1]
            assert storage_words(out, R) <= config.max_map_words, what
            assert max(out[1:]) <= config.max_map_side, what
            words += -(-layer.out_channels // C) * K_h * K_w * -(-shape[0] // R) * (R // g)
            hw_layers += 1
        elif layer.kind == "dense":
            n = storage_words(shape, R) if len(shape) == 3 else layer.fan_in
            assert n <= config.max_fan_in and layer.neurons <= config.max_neurons, what
            words += -(-layer.neurons // C) * -(-n // R) * (R // g)
            hw_layers += 1
    assert hw_layers <= config.max_layers and words <= config.weight_depth, what
    return model


def test_draw_case_covers_the_space_within_the_budget():
    """Every drawn case is a valid configuration whose memories hold its network (an exactly
    sized one is packed), within the cost budget; over many draws both neuron kinds and PE
    modes, both ends of T and of the weight width, and every tau_shift appear. A conv case
    (``config.conv``) fits every conv limit, and over the draws kernels 1, 3 and 5, both
    strides, padding and pooling windows appear."""
    from spikepack.firmware.layout import layout_network
    from spikepack.sim.benches.stimulus import plan_cycles, random_network
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    seen = {key: set() for key in ("neuron", "pe_mode", "timesteps", "tau_shift", "weight_bits",
                                   "kernel", "stride", "padding", "pool")}
    dense_cases = 0
    for i in range(200):
        config, network = draw_case(rng)
        what = f"draw {i} (seed {seed}): {network} {config}"
        assert config.rows * config.cols <= COST_LIMITS["max_pes"], what
        if isinstance(network, dict):
            assert plan_cycles(config, network) <= COST_LIMITS["max_cycles"], what
            _check_conv_case(config, network, what)
            for conv in network["convs"]:
                for key in ("kernel", "stride", "padding", "pool"):
                    seen[key].update(conv[key])
        else:
            sizes = network
            dense_cases += 1
            assert not config.conv, what        # a dense case runs on dense-only hardware
            assert inference_cycles(config, sizes) <= COST_LIMITS["max_cycles"], what
            assert 2 <= len(sizes) <= COST_LIMITS["max_layers"] + 1, what
            assert config.max_fan_in >= max(sizes[:-1]) and config.max_neurons >= max(sizes[1:])
            assert config.max_layers >= len(sizes) - 1, what
            if dense_cases <= 20:   # the network the memories were sized for fits them as it is
                layout_network(random_network(rng, config, sizes), config)
        for key in ("neuron", "pe_mode", "timesteps", "tau_shift", "weight_bits"):
            seen[key].add(getattr(config, key))
    assert seen["neuron"] == {"spikepack", "lif"} and seen["pe_mode"] == {"serial", "packed"}
    assert {1, 16} <= seen["timesteps"] and {2, 16} <= seen["weight_bits"]
    assert seen["tau_shift"] == {1, 2, 3}
    assert 0 < dense_cases < 200, f"{dense_cases} dense cases in 200"
    assert seen["kernel"] == {1, 3, 5} and seen["stride"] == {1, 2}, seen
    assert seen["padding"] == {0, 1, 2} and seen["pool"] == {1, 2}, seen


def test_random_plan_respects_a_fixed_configurations_limits():
    """The system bench draws conv networks for a given configuration (its CONFIGS, and the
    default one): every plan fits every limit (restated in :func:`_check_conv_case`) and the
    cost cap."""
    from test_system_rtl import CONFIGS

    from spikepack.config import HardwareConfig
    from spikepack.sim.benches.stimulus import plan_cycles, random_plan
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    for name, config in {**CONFIGS, "default": HardwareConfig()}.items():
        for i in range(40):
            plan = random_plan(rng, config, max_cycles=6000)
            what = f"{name} plan {i} (seed {seed}): {plan}"
            assert plan_cycles(config, plan) <= 6000, what
            _check_conv_case(config, plan, what)


def test_drawn_conv_networks_pack_and_parse_back():
    """Conv cases (drawn on conv configurations) are packed for their configuration by
    ``bitstream.pack`` (the loader's rules, in Python) and parsed back to a model with the same
    golden outputs on random images: the drawn limits are large enough for the real packer."""
    import dataclasses

    from spikepack.config import ConfigError
    from spikepack.firmware import bitstream as bs
    from spikepack.sim.benches.stimulus import _conv_case, conv_model, random_images
    from spikepack.sim.benches.system import golden_logits
    from spikepack.sim.configspace import random_config
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    done = 0
    while done < 12:
        try:
            base = dataclasses.replace(random_config(rng, sizes=[8, 8], max_array=16),
                                       conv=True)
        except ConfigError:             # a combination the conv hardware refuses
            continue
        case = _conv_case(rng, base, max_layers=4, max_cycles=COST_LIMITS["max_cycles"])
        if case is None:
            continue
        config, plan = case
        what = f"case {done} (seed {seed}): {plan} {config}"
        for extreme in (False, True):
            model = conv_model(rng, config, plan, extreme=extreme)
            back = bs.parse(bs.pack(model, config), config)
            z = random_images(rng, 3, model.input_shape, config.timesteps)
            want = golden_logits(z, model, config)
            # the bitstream's network reads the images as the hardware does (folded when the
            # packer folded the first layer: firmware.layout.hardware_input)
            zh = model.hardware_input(z, config)
            got = back.forward(zh)[0] if tuple(back.input_shape) == tuple(zh.shape[1:]) \
                else back.forward(zh.reshape(len(z), -1))[0]
            assert np.array_equal(got, want), what
        done += 1
