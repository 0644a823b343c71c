"""The user's flow through the real CLI: convert -> generate -> pack -> inspect -> run on the RTL
(Verilator, and Icarus Verilog as a second simulator), checked against the golden model."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from spikepack.accelerator import ManifestError, generate_accelerator, load_manifest
from spikepack.cli import main as cli
from spikepack.config import HardwareConfig
from spikepack.firmware.model import SpikePackModel
from spikepack.sim.runner import BUILD_ROOT


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Converted digits model, generated default accelerator and packed bitstream (via the CLI)."""
    d = tmp_path_factory.mktemp("flow")
    assert cli(["convert", "-o", str(d / "model.npz"), "--inputs-out", str(d / "inputs.npz")]) == 0
    (d / "hw.toml").write_text("[hardware]\n")          # all defaults
    assert cli(["generate", "--config", str(d / "hw.toml"), "-o", str(d / "hw")]) == 0
    assert cli(["pack", str(d / "model.npz"), "--manifest", str(d / "hw" / "manifest.json"),
                "-o", str(d / "weights.bin")]) == 0
    return d


def test_generate_writes_verilog_filelist_and_manifest(flow):
    manifest, config = load_manifest(flow / "hw")
    assert config == HardwareConfig()
    assert (flow / "hw" / "files.f").read_text().split() == ["spikepack_top.v"]
    verilog = (flow / "hw" / "spikepack_top.v").read_text()
    assert "module spikepack_top" in verilog
    names = {p["name"] for p in manifest["ports"]}
    for port in ("clk", "rst", "s_axil_awaddr", "s_axil_rdata", "s_axis_load_tdata",
                 "s_axis_load_tlast", "s_axis_in_tdata", "m_axis_out_tdata", "m_axis_out_tlast"):
        assert port in names
        assert f" {port}" in verilog or f"{port};" in verilog
    regs = {r["name"]: r for r in manifest["registers"]}
    assert regs["SIGNATURE"]["fields"][0]["value"] == config.signature == manifest["signature"]
    assert manifest["widths"]["potential"] == config.widths.potential


def test_inspect_reads_the_bitstream(flow, capsys):
    assert cli(["inspect", str(flow / "weights.bin")]) == 0
    out = capsys.readouterr().out
    assert f"{HardwareConfig().signature:08x}" in out.lower()


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_run_cli_on_verilator_is_bit_exact(flow, capsys):
    report = flow / "report.json"
    code = cli(["run", "--hw", str(flow / "hw"), "--weights", str(flow / "weights.bin"),
                "--inputs", str(flow / "inputs.npz"), "--limit", "24", "--pauses",
                "--work", str(BUILD_ROOT / "test-flow-run"), "--report", str(report)])
    result = json.loads(report.read_text())
    assert code == 0, result
    assert result["images"] == 24 and result["mismatching_images"] == 0
    # the golden model's own predictions on these images, recomputed independently of the run
    model = SpikePackModel.load(flow / "model.npz")
    with np.load(flow / "inputs.npz") as f:
        z, labels = f["z"][:24], f["labels"][:24]
    logits, _ = model.forward(z)
    assert result["golden_accuracy"] == pytest.approx(float((logits.argmax(1) == labels).mean()))
    assert result["rtl_accuracy"] == result["golden_accuracy"]
    assert result["registers"]["inferences"] == 24
    assert result["cycles_per_image"] > 0


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_run_with_relative_paths(flow, monkeypatch):
    """`make demo` passes paths relative to the repository; the simulator runs elsewhere."""
    from spikepack.run import run_inference
    monkeypatch.chdir(flow)
    with np.load("inputs.npz") as f:
        z = f["z"][:2]
    result = run_inference("hw", open("weights.bin", "rb").read(), z, work_dir="relative-run",
                           progress=False)
    assert result.images == 2 and result.mismatched_images == []


@pytest.mark.rtl
@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog is not installed (.ci/run installs Debian's iverilog)")
def test_run_on_icarus_is_bit_exact(flow):
    from spikepack.run import run_inference
    with np.load(flow / "inputs.npz") as f:
        z = f["z"][:4]
    result = run_inference(flow / "hw", (flow / "weights.bin").read_bytes(), z,
                           work_dir=BUILD_ROOT / "test-flow-icarus", simulator="icarus",
                           engine="cocotb", progress=False)
    assert result.images == 4
    assert result.mismatched_images == [], result.summary()
    assert (result.logits == result.golden).all()


def test_run_rejects_bad_inputs_before_simulating(flow, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, z=np.zeros((3, 63), dtype=np.int64))
    assert cli(["run", "--hw", str(flow / "hw"), "--weights", str(flow / "weights.bin"),
                "--inputs", str(bad)]) == 2
    assert "expects (images, 64)" in capsys.readouterr().err
    np.savez(bad, z=np.full((3, 64), 16, dtype=np.int64))
    assert cli(["run", "--hw", str(flow / "hw"), "--weights", str(flow / "weights.bin"),
                "--inputs", str(bad)]) == 2
    assert "outside 0..15" in capsys.readouterr().err


def test_run_rejects_a_corrupt_bitstream(flow, tmp_path, capsys):
    data = bytearray((flow / "weights.bin").read_bytes())
    data[200] ^= 0x10
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    assert cli(["run", "--hw", str(flow / "hw"), "--weights", str(tmp_path / "bad.bin"),
                "--inputs", str(flow / "inputs.npz")]) == 2
    assert "crc" in capsys.readouterr().err.lower()


def _run(flow, *extra, inputs=None, hw=None):
    return cli(["run", "--hw", str(hw or flow / "hw"), "--weights", str(flow / "weights.bin"),
                "--inputs", str(inputs or flow / "inputs.npz"), *extra])


def test_run_refuses_no_images_and_bad_limits(flow, tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    np.savez(empty, z=np.zeros((0, 64), dtype=np.int64))
    assert _run(flow, inputs=empty) == 2
    err = capsys.readouterr().err
    assert "holds no images" in err and len(err.strip().splitlines()) == 1
    for limit in ("0", "-1"):
        assert _run(flow, "--limit", limit) == 2
        err = capsys.readouterr().err
        assert "--limit must be at least 1" in err and len(err.strip().splitlines()) == 1


def test_run_refuses_bad_labels(flow, tmp_path, capsys):
    with np.load(flow / "inputs.npz") as f:
        z, labels = f["z"][:5], f["labels"][:5]
    bad = tmp_path / "labels.npz"
    for wrong, message in ((np.array([0, 1, 2, 3, 10]), "outside 0..9"),
                           (np.array([0, 1, -1, 3, 4]), "outside 0..9"),
                           (labels.astype(np.float64), "labels must be integers")):
        np.savez(bad, z=z, labels=wrong)
        assert _run(flow, inputs=bad) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_run_refuses_the_manifest_of_another_verilog(flow, tmp_path, capsys):
    """The manifest of T = 8 beside the Verilog of T = 4 (the bitstream fits the manifest): refused
    before simulating, by the manifest's Verilog hash, and by the signature for a manifest
    written without the hash."""
    other = tmp_path / "other"
    generate_accelerator(HardwareConfig(timesteps=8), other)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(flow / "hw" / "spikepack_top.v", mixed)
    shutil.copy(other / "manifest.json", mixed)
    assert _run(flow, hw=mixed) == 2
    err = capsys.readouterr().err
    assert "not the Verilog its manifest was generated with" in err
    assert len(err.strip().splitlines()) == 1
    manifest = json.loads((mixed / "manifest.json").read_text())
    del manifest["verilog_sha256"]
    (mixed / "manifest.json").write_text(json.dumps(manifest))
    assert _run(flow, hw=mixed) == 2
    assert "does not carry the manifest's signature" in capsys.readouterr().err
    (mixed / "spikepack_top.v").unlink()
    assert _run(flow, hw=mixed) == 2
    assert "no Verilog" in capsys.readouterr().err


def test_run_reports_an_unusable_work_folder_in_one_line(flow, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert _run(flow, "--work", str(tmp_path / "file" / "work")) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and len(err.strip().splitlines()) == 1


def test_cocotb_failures_are_reported_by_their_assertion():
    from spikepack.run import _cocotb_reason
    message = ("inference-run-1: 1 of 1 cocotb tests failed (seed 7; log sim.log)\n"
               "  File \"inference.py\", line 120, in receive\n"
               "AssertionError: no readout frame within 50 cycles: the accelerator hangs\n")
    reason = _cocotb_reason(message)
    assert reason.startswith("no readout frame within 50 cycles") and "seed 7" in reason
    assert "\n" not in reason


def test_run_options_have_help_and_engines(flow, capsys):
    import argparse

    from spikepack.run import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for action in parser._actions:
        assert action.help, action.dest
    assert {"--engine", "--pauses", "--no-pauses", "--seed"} <= set(parser._option_string_actions)
    assert _run(flow, "--engine", "native", "--simulator", "icarus") == 2
    assert "needs --engine cocotb" in capsys.readouterr().err


def test_generate_rejects_a_bad_config_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("[hardware]\nrows = 6\n")
    out = tmp_path / "out"
    code = subprocess.run([sys.executable, "-m", "spikepack", "generate", "--config",
                           str(tmp_path / "bad.toml"), "-o", str(out)],
                          capture_output=True, text=True)
    assert code.returncode != 0
    assert "rows must be a power of two" in code.stderr
    assert not out.exists()


def test_manifest_tampering_is_detected(flow, tmp_path):
    manifest = json.loads((flow / "hw" / "manifest.json").read_text())
    manifest["config"]["timesteps"] = 8
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="does not match its config"):
        load_manifest(tmp_path)


def test_generate_accelerator_refuses_a_non_config(tmp_path):
    with pytest.raises(TypeError, match="HardwareConfig"):
        generate_accelerator({"rows": 8}, tmp_path)
