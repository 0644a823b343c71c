"""Random-configuration regression (bench: ``spikepack.sim.benches.regression``): each test
draws a network shape and a valid hardware configuration from the whole space of
``docs/config.md`` (array shape, T = 1..16, every tau_shift, every width range, both neuron kinds
and PE modes, memories just large enough), generates the accelerator and drives it end to end
through its AXI ports: random and extreme networks loaded and run bit-exactly under random pauses
and backpressure, one bad bitstream per loader error code, SOFT_RESET in every phase.

The seed is printed; ``SPIKEPACK_SEED=<seed> pytest -k "regression and <index>"`` replays a
case (configuration, networks, images and stream timing). ``make soak`` runs the same bench over
many more configurations (``spikepack.soak``)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikepack.sim import runner
from spikepack.sim.benches.regression import draw_case, run_case

pytestmark = [pytest.mark.rtl]

#: random configurations per `make test` run
CASES = 3


@pytest.mark.parametrize("index", range(CASES))
def test_random_configuration_end_to_end(index, tmp_path):
    seed = runner.bench_seed()
    config, sizes = draw_case(np.random.default_rng([seed, index]))
    print(f"[spikepack] regression case {index}: seed {seed}, sizes {sizes}, {config}",
          file=sys.stderr, flush=True)
    run_case(config, sizes, seed=seed, label=f"regression-{index}")
