"""The host driver (``spikepack.driver``) on the RTL: the digits network loaded and run through
the driver's async front end over cocotbext-axi (bench ``sim/benches/driver_bench.py``), bit
for bit against the golden model; a corrupted bitstream rejected with the code the firmware's
own parser predicts; the latency of one inference the sequencer's formula."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikepack.accelerator import TOP_NAME, generate_accelerator
from spikepack.config import HardwareConfig
from spikepack.firmware import convert
from spikepack.firmware.bitstream import BitstreamError, pack, parse
from spikepack.hw.layer_engine import compute_bound, expected_cycles
from spikepack.sim import golden, runner

IMAGES = 6


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits network (default convert), the default accelerator and its bitstream."""
    d = tmp_path_factory.mktemp("driver")
    mlp, split = convert.train_float_mlp()
    model = convert.convert(mlp, split.x_calib)
    config = HardwareConfig()
    manifest = generate_accelerator(config, d / "hw")
    data = pack(model, config)
    z = model.encode(split.x_test)[:IMAGES].astype(np.int64)
    return d, manifest, config, data, z


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_driver_runs_digits_on_the_rtl_bit_exact(digits):
    d, manifest, config, data, z = digits
    bad = bytearray(data)
    bad[-1] ^= 0x5A                                        # the CRC word
    with pytest.raises(BitstreamError) as info:
        parse(bytes(bad), config)
    expected_code = int(info.value.code)
    (d / "weights.bin").write_bytes(data)
    (d / "bad.bin").write_bytes(bytes(bad))
    np.save(d / "inputs.npy", z)
    results = d / "results.json"
    verilog = (d / "hw" / f"{TOP_NAME}.v").read_text()
    built = runner.build_verilog(TOP_NAME, verilog)      # the build `spikepack run` shares
    runner.run(built, "spikepack.sim.benches.driver_bench", name="driver",
               args={"manifest": str(d / "hw" / "manifest.json"),
                     "bitstream": str(d / "weights.bin"), "bad_bitstream": str(d / "bad.bin"),
                     "inputs": str(d / "inputs.npy"), "results": str(results),
                     "pauses": True, "timeout_cycles": 200_000})
    res = json.loads(results.read_text())

    assert res["signature"] == manifest["signature"]
    assert res["bad_load"] == {"code": expected_code, "name": info.value.code.name}
    assert res["errors_after_bad_load"]["load_error"] == expected_code
    assert res["status_after_bad_load"]["loaded"] == 0
    assert res["errors_after_load"]["load_error"] == 0

    model = parse(data, config)
    expected, _ = golden.run_network(z, model.as_layer_tuples(), config.timesteps,
                                     config.tau_shift, neuron=config.neuron)
    logits = np.array(res["logits"], dtype=np.int64)
    assert logits.shape == expected.shape, (logits.shape, expected.shape)
    bad_rows = np.nonzero((logits != expected).any(axis=1))[0]
    assert not len(bad_rows), (f"image {bad_rows[0]}: RTL {logits[bad_rows[0]].tolist()} != "
                               f"golden {expected[bad_rows[0]].tolist()}")
    assert res["alone"] == expected[:1].tolist()
    # the latency of one inference alone: the sequencer's formula, 2 + sum of (3 + the engine's
    # layer latency), exact for these compute-bound layers (526 cycles for the digits network)
    layers = [(layer.weights.shape[1], layer.weights.shape[0]) for layer in model.layers]
    assert all(compute_bound(config, n) for n, _ in layers)
    assert res["cycles_alone"] == 2 + sum(3 + expected_cycles(config, n, m) for n, m in layers)
    regs = res["registers"]
    assert regs["INFERENCES"] == IMAGES and regs["OUT_BEATS"] == expected.size
    assert regs["LOAD_GOOD"] == 1 and regs["LOAD_BAD"] == 1
    assert regs["LOAD_WORDS"] == 2 * len(data) // 4
