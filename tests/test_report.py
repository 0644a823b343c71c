"""spikepack.report's place and route over several nextpnr seeds: on a small block placed here
for real, the entry's figures are each seed's own nextpnr report (the first seed's stays the
entry's ``fmax_mhz``, which ``make bench`` reads), the summary is recomputed here, the report's
Fmax target is judged on the mean of the seeds, the Markdown names every seed; and the command
line refuses bad input in one line (exit 2) before any work; and make report's own run() places
and routes (the top stood in for by a small block)."""

import statistics
import subprocess
import sys

import pytest

from pnr_reference import assert_refused, nextpnr_fmax
from spikepack.report import (CONFIGS, TARGETS, _earlier_run_problem, _targets, blocks, markdown,
                               pnr_seeds)
from spikepack.synth import synthesize_component


@pytest.fixture(scope="module")
def unit_pnr(tmp_path_factory):
    work = tmp_path_factory.mktemp("report_unit")
    synthesize_component(blocks(CONFIGS["default"])["spikepack_unit"][0](), "spikepack_unit",
                         family="ecp5", keep_dir=work)
    return work, pnr_seeds(work / "netlist.json", work, TARGETS["fmax_mhz"], [2, 1], jobs=2)


def test_entry_is_each_seeds_own_report(unit_pnr):
    work, pnr = unit_pnr
    assert [r["seed"] for r in pnr["seeds"]] == [2, 1]       # in the order asked
    got = [nextpnr_fmax(work / f"seed{s}") for s in (2, 1)]
    assert [r["fmax_mhz"] for r in pnr["seeds"]] == got
    assert pnr["fmax_mhz"] == got[0]                           # the first seed's, for make bench
    assert pnr["utilisation"], pnr                             # and its utilisation
    assert pnr["placed"] == 2 and pnr["failed"] == 0
    assert pnr["mean_mhz"] == round(statistics.mean(got), 1)
    assert (pnr["min_mhz"], pnr["max_mhz"]) == (min(got), max(got))
    assert all(r["from"] and r["to"] for r in pnr["seeds"]), pnr["seeds"]


def _result(pnr):
    lut = {"lut": 100, "lut_logic": 90, "lut_memory": 10, "ff": 50, "carry8": 2, "dsp": 0,
           "bram": 0, "carry": 3}
    entry = {"config": CONFIGS["default"].as_dict(), "signature": "0x0",
             "blocks": {b: {"xcup": lut, "ecp5": lut} for b in ("spikepack_unit", "lif_unit")},
             "derived": {"pes": 64, "per_pe_xcup": {"lut": 20.0, "ff": 30.0},
                         "synaptic_ops_per_cycle": 64, "ops_per_cycle_per_lut_xcup": 0.1,
                         "ops_per_cycle_per_dsp_xcup": None},
             "pnr_ecp5": pnr}
    return {"tools": {}, "configs": {"default": entry}}


def test_target_is_judged_on_the_mean(unit_pnr, tmp_path):
    _, pnr = unit_pnr
    result = _result(pnr)
    check = next(c for c in _targets(result, tmp_path) if c["target"].startswith("Fmax"))
    assert check["measured"] == pnr["mean_mhz"], check
    assert check["met"] == (pnr["mean_mhz"] >= TARGETS["fmax_mhz"])
    for row in pnr["seeds"]:
        assert str(row["fmax_mhz"]) in check["note"], check
    result["target_check"] = _targets(result, tmp_path)
    text = markdown(result)
    line = next(ln for ln in text.splitlines() if ln.startswith("Place and route"))
    assert " / ".join(str(r["fmax_mhz"]) for r in pnr["seeds"]) in line, line
    assert "seeds 2/1" in line and f"mean {pnr['mean_mhz']}" in line, line


@pytest.mark.parametrize("args", [["--seeds", "0"], ["--seeds", "5-2"], ["--jobs", "0"],
                                  ["--configs", "nope"], ["--pnr-only"]])
def test_bad_command_line(tmp_path, args):
    assert_refused("spikepack.report", tmp_path / "report", args)


def test_run_places_the_top_at_every_seed(tmp_path, monkeypatch):
    """``make report``'s own path (run, with place and route), the top stood in for by the small
    neuron unit: the default entry holds each asked seed's own nextpnr figure, and the report is
    written."""
    import spikepack.report as report

    every = blocks(CONFIGS["default"])
    unit = every["spikepack_unit"]
    small = {"top": unit, "array": unit, "spikepack_unit": unit, "lif_unit": every["lif_unit"]}
    monkeypatch.setattr(report, "blocks", lambda config: small)
    result = report.run(["default"], tmp_path, progress=False, seeds=[3, 1], jobs=2)
    work = tmp_path / "default" / "top-ecp5"
    pnr = result["configs"]["default"]["pnr_ecp5"]
    assert [r["seed"] for r in pnr["seeds"]] == [3, 1]
    assert [r["fmax_mhz"] for r in pnr["seeds"]] == [nextpnr_fmax(work / f"seed{s}")
                                                    for s in (3, 1)]
    assert (tmp_path / "implementation.json").exists()
    assert "seeds 3/1" in (tmp_path / "implementation.md").read_text()
    assert (tmp_path / "neuron_units.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*")), list(tmp_path.glob(".*"))    # no temporary left


@pytest.mark.parametrize("report", ["{", "[]", '{"configs": {}}', '{"configs": {"default": {}}}'])
def test_pnr_only_needs_a_usable_earlier_run(tmp_path, report):
    """--pnr-only on an unreadable report, one without a top, or a top without its netlist: one
    line, exit 2, the earlier report untouched and nothing else written."""
    (tmp_path / "implementation.json").write_text(report)
    proc = subprocess.run([sys.executable, "-m", "spikepack.report", "--pnr-only", "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("python -m spikepack.report: --pnr-only"), proc.stderr
    assert (tmp_path / "implementation.json").read_text() == report
    assert [p.name for p in tmp_path.iterdir()] == ["implementation.json"]


def test_pnr_only_accepts_a_report_with_its_netlists(tmp_path):
    (tmp_path / "implementation.json").write_text('{"configs": {"default": {}, "paper": {}}}')
    assert "netlist" in _earlier_run_problem(tmp_path)
    (tmp_path / "default" / "top-ecp5").mkdir(parents=True)
    (tmp_path / "default" / "top-ecp5" / "netlist.json").write_text("{}")
    assert _earlier_run_problem(tmp_path) is None
