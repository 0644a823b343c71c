"""cocotb + Verilator: the generated Verilog of both neuron units, bit-exact against the golden
model, 10,000 random neurons (1..3 groups, 10% readout) plus directed edges per configuration,
under random input valid gaps and output ready stalls. And a unit with a deliberate one-bit
decode fault, to show that the bench catches it."""

from __future__ import annotations

import pytest

from spikepack.generate import NEURON_TOPS
from spikepack.hw.neuron_lif import LIFNeuron
from spikepack.hw.neuron_spikepack import SpikePackNeuron
from spikepack.sim import runner

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("neuron_rtl")]

KINDS = {"spikepack": SpikePackNeuron, "lif": LIFNeuron}
COUNT = 10_000


def cfg(kind, T, k, wb, fan_in, rows, mode="serial", bb=16, tb=16):
    return dict(kind=kind, timesteps=T, tau_shift=k, weight_bits=wb, fan_in=fan_in, rows=rows,
                bias_bits=bb, threshold_bits=tb, input_mode=mode)


CONFIGS = [
    cfg("spikepack", 4, 1, 8, 64, 8),                    # the default digits setting
    cfg("spikepack", 16, 2, 16, 16, 4, bb=20),           # wide weights, longest window
    cfg("spikepack", 8, 3, 3, 40, 16, mode="packed"),    # narrow weights, packed input
    cfg("spikepack", 1, 1, 4, 24, 8, tb=8),              # T = 1
    cfg("spikepack", 8, 3, 2, 12, 4, bb=12, tb=6),       # tau = 8, 2-bit weights
    cfg("lif", 4, 1, 16, 32, 16, bb=20),                 # wide weights
    cfg("lif", 8, 2, 2, 24, 8, bb=8, tb=4),              # narrow everything
    cfg("lif", 16, 3, 4, 16, 4),                         # longest window, tau = 8
    cfg("lif", 1, 2, 8, 16, 8),                          # T = 1
]


def _id(c):
    return f"{c['kind']}-T{c['timesteps']}-k{c['tau_shift']}-w{c['weight_bits']}-{c['input_mode']}"


def _build(c, fault=None):
    params = {k: v for k, v in c.items() if k != "kind"}
    top = NEURON_TOPS[c["kind"]] + ("_fault" if fault else "")
    make = (lambda: KINDS[c["kind"]](**params, _fault=fault)) if fault else \
        (lambda: KINDS[c["kind"]](**params))
    return runner.build(top, make)


def run_bench(built, name, args):
    """runner.run, but a failing bench always ends as an AssertionError that carries the
    bench's report (first mismatch with its expected and actual records, the stimulus, the
    seed), read from the simulator log."""
    seed = runner.bench_seed()
    try:
        return runner.run(built, "spikepack.sim.benches.neuron", name=name, args=args, seed=seed)
    except (SystemExit, AssertionError) as e:
        log = built.directory / "runs" / f"{name}-{seed}" / "sim.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        report = [line.strip() for line in text.splitlines()
                  if any(key in line for key in ("Mismatch", "expected:", "actual:", "stimulus:",
                                                 "Error", "received"))]
        what = f"exit {e.code}" if isinstance(e, SystemExit) else str(e).splitlines()[0]
        raise AssertionError(f"{name}: bench failed ({what}, seed {seed}, log {log})\n"
                             + "\n".join(report[:12])) from None


@pytest.mark.parametrize("config", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_neuron_rtl_bit_exact(config):
    built = _build(config)
    run_bench(built, _id(config), {**config, "count": COUNT, "gap": 0.15, "stall": 0.15})


def test_bench_catches_a_single_bit_decode_fault():
    """A unit that fires on r >= theta*tau**(T-t) instead of r > ... (one spike bit wrong on an
    exact level) must fail the same bench."""
    config = cfg("spikepack", 4, 2, 6, 16, 4)
    built = _build(config, fault="compare_ge")
    with pytest.raises(AssertionError, match=r"MismatchError: neuron \d+: mismatch in spikes "
                                             r"\(seed \d+\)") as info:
        run_bench(built, _id(config) + "-fault", {**config, "count": 200, "gap": 0.2,
                                                  "stall": 0.2})
    assert "expected:" in str(info.value) and "actual:" in str(info.value)
