"""cocotb bench behind ``spikepack run``: load a bitstream and infer images on ``spikepack_top``
through its real AXI ports (cocotbext-axi), writing the readout potentials and cycle counts to
a JSON file for the host to check against the golden model.

Arguments (``spikepack.sim.runner.bench_args``): manifest, bitstream, inputs (.npy of spike
words: (S, N0), or (S, C, H, W) for a conv network, sent in storage order), results (JSON to write),
progress (a file holding the count of finished images), pauses (random pauses and backpressure
on every stream). The AXI agents, register access and stream formats are the benches' shared
ones (:class:`spikepack.sim.benches.host.AxiSystem`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from spikepack.protocol import RegisterMap
from spikepack.sim.benches.host import AxiSystem
from spikepack.sim.native import PAUSES          # the stream pauses a cycle under ``pauses``
from spikepack.sim.runner import bench_args

CLOCK_NS = 10


def accelerator(dut, manifest: dict, *, rng: random.Random | None = None,
                pauses: bool = False) -> AxiSystem:
    """The whole-system driver on ``dut`` with the manifest's register map, random pauses and
    backpressure on every stream when ``pauses`` (drawn from ``rng``)."""
    acc = AxiSystem(dut, RegisterMap(manifest["registers"]), prng=rng or random.Random(0),
                    clock_ns=CLOCK_NS)
    if pauses:
        acc.traffic(PAUSES["in"], PAUSES["out"], PAUSES["load"], order=("load", "in", "out"))
    return acc


async def wait_until(dut, predicate, what: str, limit: int = 2_000_000, every: int = 16):
    for _ in range(0, limit, every):
        if await predicate():
            return
        await ClockCycles(dut.clk, every)
    raise TimeoutError(f"timed out after {limit} cycles waiting for {what}")


@cocotb.test()
async def infer(dut):
    args = bench_args()
    manifest = json.loads(Path(args["manifest"]).read_text())
    bitstream = Path(args["bitstream"]).read_bytes()
    z = np.load(args["inputs"])
    progress = Path(args["progress"])
    rng = random.Random(args["seed"])
    acc = accelerator(dut, manifest, rng=rng, pauses=bool(args.get("pauses")))
    await acc.start()
    T, rows = manifest["config"]["timesteps"], manifest["config"]["rows"]

    signature = await acc.regs.read("SIGNATURE")
    assert signature == manifest["signature"], \
        f"hardware signature 0x{signature:08x} != manifest 0x{manifest['signature']:08x}"
    good_before = await acc.regs.read("LOAD_GOOD")
    await acc.send_bitstream(bitstream)
    await wait_until(dut, lambda: _loaded(acc, good_before), "the bitstream to commit")
    error = await acc.regs.read("LOAD_ERROR")
    assert error == 0, f"the loader rejected the bitstream with error code {error}"
    await acc.regs.write("CONTROL", acc.regs.map.bit("CONTROL", "run"))

    outputs: list[list[int]] = []

    async def feed():
        for image in z:
            await acc.send_image(image, rows, T)

    timeout = int(args.get("timeout_cycles", 1_000_000))
    await RisingEdge(dut.clk)
    start_ns = get_sim_time("ns")
    cocotb.start_soon(feed())
    for count in range(1, len(z) + 1):
        frame = await acc.receive_potentials(timeout)
        assert frame is not None, \
            f"no readout frame within {timeout} cycles: the accelerator hangs"
        outputs.append(frame)
        if count % 8 == 0 or count == len(z):
            progress.write_text(str(count))
    cycles_total = int((get_sim_time("ns") - start_ns) // CLOCK_NS)
    latency = await acc.regs.read("CYCLES_LAST")
    # the registers the run reports (as the native harness: those whose access reads "R")
    registers = {r["name"].lower(): await acc.regs.read(r["name"])
                 for r in manifest["registers"] if "r" in str(r["access"]).lower()}
    Path(args["results"]).write_text(json.dumps({
        "logits": outputs, "cycles_total": cycles_total, "latency_cycles": latency,
        "registers": registers}))


async def _loaded(acc: AxiSystem, good_before: int) -> bool:
    good = await acc.regs.read("LOAD_GOOD")
    bad = await acc.regs.read("LOAD_BAD")
    if bad:
        raise AssertionError(f"the loader counted a bad load (error code "
                             f"{await acc.regs.read('LOAD_ERROR')})")
    return good > good_before
