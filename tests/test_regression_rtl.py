"""Random-configuration regression (bench: ``spikepack.sim.benches.regression``): each test
draws a network shape and a valid hardware configuration from the whole space of
``docs/config.md`` (array shape, T = 1..16, every tau_shift, every width range, both neuron kinds
and PE modes, memories just large enough), generates the accelerator and drives it end to end
through its AXI ports: random and extreme networks loaded and run bit-exactly under random pauses
and backpressure, one bad bitstream per loader error code, SOFT_RESET in every phase.

The seed is printed; ``SPIKEPACK_SEED=<seed> pytest
"tests/test_regression_rtl.py::test_random_configuration_end_to_end[<index>]"`` replays a case
(configuration, networks, images and stream timing). ``make soak`` runs the same bench over many
more configurations (``spikepack.soak``). The last two tests check the case generator and the
soak command's usage errors without a simulator."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikepack.sim import runner
from spikepack.sim.benches.regression import COST_LIMITS, draw_case, inference_cycles, run_case

#: random configurations per `make test` run
CASES = 3


@pytest.mark.rtl
@pytest.mark.parametrize("index", range(CASES))
def test_random_configuration_end_to_end(index, tmp_path):
    seed = runner.bench_seed()
    config, sizes = draw_case(np.random.default_rng([seed, index]))
    print(f"[spikepack] regression case {index}: seed {seed}, sizes {sizes}, {config}",
          file=sys.stderr, flush=True)
    run_case(config, sizes, seed=seed, label=f"regression-{index}")


def test_draw_case_covers_the_space_within_the_budget():
    """Every drawn case is a valid configuration whose memories hold its network (an exactly
    sized one is packed), within the cost budget; over many draws both neuron kinds and PE
    modes, both ends of T and of the weight width, and every tau_shift appear."""
    from spikepack.firmware.layout import layout_network
    from spikepack.sim.benches.system import random_network
    seed = runner.bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = np.random.default_rng(seed)
    seen = {key: set() for key in ("neuron", "pe_mode", "timesteps", "tau_shift", "weight_bits")}
    for i in range(200):
        config, sizes = draw_case(rng)
        what = f"draw {i} (seed {seed}): {sizes} {config}"
        assert config.rows * config.cols <= COST_LIMITS["max_pes"], what
        assert inference_cycles(config, sizes) <= COST_LIMITS["max_cycles"], what
        assert 2 <= len(sizes) <= COST_LIMITS["max_layers"] + 1, what
        assert config.max_fan_in >= max(sizes[:-1]) and config.max_neurons >= max(sizes[1:])
        assert config.max_layers >= len(sizes) - 1, what
        if i < 20:      # the network the memories were sized for fits them as it is
            layout_network(random_network(rng, config, sizes), config)
        for key in seen:
            seen[key].add(getattr(config, key))
    assert seen["neuron"] == {"spikepack", "lif"} and seen["pe_mode"] == {"serial", "packed"}
    assert {1, 16} <= seen["timesteps"] and {2, 16} <= seen["weight_bits"]
    assert seen["tau_shift"] == {1, 2, 3}


def test_soak_refuses_bad_usage(capsys, monkeypatch):
    from spikepack.soak import main
    assert main(["--configs", "0"]) == 2
    assert "--configs must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("SOAK_CONFIGS", "many")
    assert main([]) == 2
    assert "SOAK_CONFIGS must be an integer" in capsys.readouterr().err
