"""cocotb bench: the host driver (its protocol :mod:`spikepack.protocol`, through the async
front end over :class:`~spikepack.sim.benches.host.CocotbBus`, as ``spikepack.driver`` offers
them) drives ``spikepack_top`` through its real AXI ports.

It checks the hardware's ID and signature, loads a corrupted bitstream (the loader must reject
it, and the driver must report the loader's code), loads the real one, runs the images and
reads the registers, runs one image alone (no pauses) for its latency, then writes everything to a JSON file for the test to compare with the
golden model. The AXI agents and the reset are the benches' whole-system driver
(:class:`~spikepack.sim.benches.host.AxiSystem`, as the inference bench sets it up).

Arguments (``spikepack.sim.runner.bench_args``): manifest, bitstream, bad_bitstream, inputs
(.npy of spike words), results (JSON to write), pauses, timeout_cycles.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np

from spikepack.protocol import AsyncDriver, LoadError
from spikepack.sim.benches.inference import accelerator
from spikepack.sim.runner import bench_args


@cocotb.test()
async def driver_runs_the_network(dut):
    args = bench_args()
    manifest = json.loads(Path(args["manifest"]).read_text())
    z = np.load(args["inputs"])
    acc = accelerator(dut, manifest, rng=random.Random(args["seed"]),
                      pauses=bool(args.get("pauses")))
    acc.bus.timeout_cycles = int(args.get("timeout_cycles", 1_000_000))
    await acc.start()
    drv = AsyncDriver(acc.bus, manifest)

    results: dict = {"signature": await drv.check_hardware()}
    try:
        await drv.load_network(Path(args["bad_bitstream"]).read_bytes())
        results["bad_load"] = None
    except LoadError as e:
        results["bad_load"] = {"code": e.code, "name": e.name}
    results["errors_after_bad_load"] = await drv.errors()
    results["status_after_bad_load"] = await drv.status()
    await drv.load_network(Path(args["bitstream"]).read_bytes())
    results["errors_after_load"] = await drv.errors()
    results["logits"] = (await drv.run_images(z)).tolist()
    results["registers"] = await drv.registers()
    # one image alone, without pauses or backpressure: CYCLES_LAST is then the latency formula's
    acc.traffic(0, 0, 0)
    results["alone"] = (await drv.run_images(z[:1])).tolist()
    results["cycles_alone"] = (await drv.registers())["CYCLES_LAST"]
    Path(args["results"]).write_text(json.dumps(results))
