"""cocotb bench for the Icarus time-0 test: a reset-less bank bit toggled through a register.

The bit's next value comes from a combinational ``always @*`` block whose inputs are registers
only, and the clock's first edge comes at time 0: the bit must power up as its initial value
(0), not as the unevaluated block's X, and toggle on a pulse of ``flip``."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge


@cocotb.test()
async def bank_powers_up_known(dut):
    dut.flip.value = 0
    dut.rst.value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await ClockCycles(dut.clk, 3)
    await ReadOnly()
    assert dut.bank.value.is_resolvable, f"bank is {dut.bank.value} after power-up"
    assert int(dut.bank.value) == 0
    await RisingEdge(dut.clk)
    dut.flip.value = 1
    await RisingEdge(dut.clk)
    dut.flip.value = 0
    await ClockCycles(dut.clk, 3)
    await ReadOnly()
    assert dut.bank.value.is_resolvable and int(dut.bank.value) == 1, f"bank is {dut.bank.value}"
