"""cocotb bench for the toolchain smoke test: a registered stream accumulator."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from spikepack.sim.runner import bench_args


@cocotb.test()
async def accumulates(dut):
    args = bench_args()
    rng = random.Random(args["seed"])
    width = args["width"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i_valid.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    expected = 0
    for _ in range(200):
        value = rng.randrange(1 << width)
        dut.i_value.value = value
        dut.i_valid.value = 1
        await RisingEdge(dut.clk)
        expected = (expected + value) % (1 << (width + 8))
    dut.i_valid.value = 0
    await RisingEdge(dut.clk)
    expected = (expected + args.get("model_error", 0)) % (1 << (width + 8))
    got = dut.o_sum.value.to_unsigned()
    assert got == expected, f"sum {got} != model {expected}"
