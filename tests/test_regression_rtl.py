"""Random-configuration regression (bench: ``spikepack.sim.benches.regression``): each test
draws a network shape and a valid hardware configuration from the whole space of
``docs/config.md`` (array shape, T = 1..16, every tau_shift, every width range, both neuron kinds
and PE modes, memories just large enough), generates the accelerator and drives it end to end
through its AXI ports: random and extreme networks loaded and run bit-exactly under random pauses
and backpressure, one bad bitstream per loader error code, SOFT_RESET in every phase.

The seed is printed; ``SPIKEPACK_SEED=<seed> pytest
"tests/test_regression_rtl.py::test_random_configuration_end_to_end[<index>]"`` replays a case
(configuration, networks, images and stream timing). ``make soak`` runs the same bench over many
more configurations (``spikepack.soak``). The last test checks the soak command's usage errors
without a simulator; the case generator is tested in ``tests/test_stimulus.py``.

On a configuration with ``conv`` (the default) a case's network is a conv network (conv layers
with max pooling, then dense layers) as a format-v2 model, its limits sized to it; further
dense networks run on the same configuration."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikepack.sim import runner
from spikepack.sim.benches.regression import run_case
from spikepack.sim.benches.stimulus import draw_case

#: random configurations per `make test` run
CASES = 3


@pytest.mark.rtl
@pytest.mark.parametrize("index", range(CASES))
def test_random_configuration_end_to_end(index, tmp_path):
    seed = runner.bench_seed()
    config, network = draw_case(np.random.default_rng([seed, index]))
    print(f"[spikepack] regression case {index}: seed {seed}, network {network}, {config}",
          file=sys.stderr, flush=True)
    run_case(config, network, seed=seed, label=f"regression-{index}")


def test_soak_refuses_bad_usage(capsys, monkeypatch):
    from spikepack.soak import main
    assert main(["--configs", "0"]) == 2
    assert "--configs must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("SOAK_CONFIGS", "many")
    assert main([]) == 2
    assert "SOAK_CONFIGS must be an integer" in capsys.readouterr().err
