# amaranth: UnusedElaboratable=no
"""`spikepack generate neuron` writes Verilog that lints clean and a manifest that matches the unit."""

from __future__ import annotations

import json

import pytest

from spikepack.cli import main as cli_main
from spikepack.generate import generate_neuron, lint_verilog
from spikepack.hw.neuron_spikepack import SpikePackNeuron



@pytest.mark.parametrize("argv,top", [
    (["--kind", "spikepack", "--timesteps", "4", "--tau-shift", "1", "--weight-bits", "8",
      "--fan-in", "64", "--rows", "8", "--bias-bits", "16", "--threshold-bits", "16"],
     "spikepack_neuron"),
    (["--kind", "spikepack", "--timesteps", "8", "--tau-shift", "3", "--weight-bits", "4",
      "--fan-in", "32", "--rows", "4", "--input-mode", "packed"], "spikepack_neuron"),
    (["--kind", "lif", "--timesteps", "16", "--tau-shift", "2", "--weight-bits", "16",
      "--fan-in", "16", "--rows", "4"], "lif_neuron"),
    (["--kind", "lif", "--timesteps", "1", "--tau-shift", "3", "--weight-bits", "2"], "lif_neuron"),
    (["--kind", "spikepack", "--timesteps", "1", "--top", "my_unit"], "my_unit"),
])
def test_cli_writes_verilog_that_lints_clean(tmp_path, argv, top):
    assert cli_main(["generate", "neuron", *argv, "-o", str(tmp_path)]) == 0
    verilog = tmp_path / f"{top}.v"
    manifest = json.loads((tmp_path / f"{top}.json").read_text())
    assert f"module {top}(" in verilog.read_text().replace(" (", "(")
    lint_verilog(verilog, top)
    T = int(argv[argv.index("--timesteps") + 1])
    assert manifest["parameters"]["timesteps"] == T
    assert manifest["ports"]["o"]["payload"]["spikes"]["width"] == T
    # T + 3 for both kinds (SpikePack in both input modes, LIF serial only)
    assert manifest["timing"]["latency"] == T + 3


def test_manifest_widths_match_the_unit(tmp_path):
    params = dict(timesteps=6, tau_shift=2, weight_bits=5, fan_in=40, rows=8, bias_bits=12,
                  threshold_bits=9, input_mode="serial")
    result = generate_neuron("spikepack", tmp_path, **params)
    unit = SpikePackNeuron(**params)
    assert result["widths"] == vars(unit.widths)
    assert result["ports"]["i"]["width"] == unit.input_layout.size
    assert result["ports"]["i"]["payload"]["current"] == {"offset": 0,
                                                          "width": unit.widths.current,
                                                          "signed": True}


def test_lint_reports_problems(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [3:0] a, output [1:0] y);\n  assign y = a;\nendmodule\n")
    with pytest.raises(RuntimeError, match="WIDTHTRUNC"):
        lint_verilog(bad, "bad")


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert cli_main(["generate", "neuron", "--kind", "lif", "--input-mode", "packed",
                     "-o", str(tmp_path)]) == 2
    assert "serial" in capsys.readouterr().err
    assert cli_main(["generate", "neuron", "--timesteps", "17", "-o", str(tmp_path)]) == 2
    assert "timesteps" in capsys.readouterr().err
    assert cli_main(["generate", "-o", str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    assert cli_main(["generate", "neuron"]) == 2
    assert "-o DIR" in capsys.readouterr().err
