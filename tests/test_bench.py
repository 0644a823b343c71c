"""spikepack.bench's Fmax source: images per second of ``make bench`` use the mean over the seeds
of the last ``make report`` (not its first seed's luck), an older one-seed report's figure, or
nothing when there is no usable report."""

import json

import pytest

from spikepack.bench import measured_fmax


def _report(tmp_path, monkeypatch, pnr) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build" / "report").mkdir(parents=True)
    (tmp_path / "build" / "report" / "implementation.json").write_text(
        json.dumps({"configs": {"default": {"pnr_ecp5": pnr}}}))


def test_mean_of_the_seeds(tmp_path, monkeypatch):
    _report(tmp_path, monkeypatch, {
        "fmax_mhz": 227.4, "mean_mhz": 231.9, "seeds": [
            {"seed": 1, "fmax_mhz": 227.4}, {"seed": 2, "fmax_mhz": 231.7},
            {"seed": 3, "fmax_mhz": 236.5}, {"seed": 4, "error": "nextpnr failed"}]})
    fmax, source = measured_fmax()
    assert fmax == 231.9
    assert "mean of nextpnr seeds 1/2/3" in source, source


def test_report_of_one_seed(tmp_path, monkeypatch):
    _report(tmp_path, monkeypatch, {"fmax_mhz": 224.7})
    assert measured_fmax() == (224.7, "build/report/implementation.json (ECP5-85 -8, nextpnr seed 1)")


@pytest.mark.parametrize("text", [None, "", "{", "[]", '{"configs": {"default": {}}}',
                                  '{"configs": {"default": {"pnr_ecp5": {"mean_mhz": 1}}}}'])
def test_no_usable_report(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "build" / "report").mkdir(parents=True)
        (tmp_path / "build" / "report" / "implementation.json").write_text(text)
    assert measured_fmax() == (None, "")
