"""The bitstream loader + NetworkMemories as Verilog under Verilator, driven by cocotbext-axi's
AxiStreamSource with random pauses: good streams load under back-pressure and read back bit for
bit equal to layout_network's images; hundreds of bad streams (bit flips in every section,
truncation, wrong signatures, oversize lengths, extra words, reset mid-stream) each leave the
committed network intact with the reference error code; a good stream still loads after them;
conv networks load and conv descriptor faults get the reference code too.
The bench is spikepack.sim.benches.loader."""

import dataclasses

import pytest

from spikepack.config import HardwareConfig
from spikepack.hw.loader_harness import LoaderWithMemories
from spikepack.sim import runner
from spikepack.sim.benches.loader import conv_config, small_config

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("loader_rtl")]

CONFIG = small_config()


@pytest.fixture(scope="module")
def built():
    # --output-split 0: one C++ file, so the wheel's verilated.mk never takes its (broken) PCH path
    return runner.build("loader_top", lambda: LoaderWithMemories(config=CONFIG),
                        build_args=["--output-split", "0"])


def test_loader_rtl_good_bad_reset_hold(built):
    runner.run(built, "spikepack.sim.benches.loader",
               args={"config": dataclasses.asdict(CONFIG), "good": 6, "bad": 400, "resets": 10})


CONV = conv_config()


def test_loader_rtl_conv_descriptors():
    """Conv networks load and read back; random conv descriptor faults (every conv check, the
    ones with products included) get the parser's verdict under Verilator."""
    built = runner.build("loader_top", lambda: LoaderWithMemories(config=CONV),
                         build_args=["--output-split", "0"])
    runner.run(built, "spikepack.sim.benches.loader",
               args={"config": dataclasses.asdict(CONV), "good": 2, "bad": 40, "resets": 2,
                     "conv_good": 4, "conv_bad": 240})


# issue 12: this configuration's odd signature made the loader refuse every good stream
# (the signature covers the conv limits too: max_channels = 40 keeps it odd)
ISSUE12 = HardwareConfig(rows=8, cols=4, timesteps=7, tau_shift=3, weight_bits=4, bias_bits=17,
                         threshold_bits=8, max_fan_in=40, max_neurons=40, max_layers=4,
                         weight_depth=384, max_channels=40)


def test_loader_rtl_issue12_configuration():
    assert ISSUE12.signature & 1, "the regression needs the odd signature of issue 12"
    built = runner.build("loader_top", lambda: LoaderWithMemories(config=ISSUE12),
                         build_args=["--output-split", "0"])
    runner.run(built, "spikepack.sim.benches.loader",
               args={"config": dataclasses.asdict(ISSUE12), "good": 8, "bad": 48, "resets": 2})
