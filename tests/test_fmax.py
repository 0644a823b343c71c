"""spikepack.fmax: the seeds of ``--seeds`` (property test: any set of seeds written as ranges and
singles reads back as itself; bad text is refused), the command's bad input (one line, exit 2,
nothing written), and a real sweep of nextpnr seeds on a small block: each seed's Fmax is the
one nextpnr wrote in that seed's own report, the summary is recomputed here, and the work folder
is under /tmp (pytest's tmp_path), which the YoWASP runtime maps to a folder of its own."""

import json
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pnr_reference import assert_refused, nextpnr_fmax
from spikepack.fmax import MAX_SEEDS, parse_seeds, seed_sweep


def _as_text(seeds: list[int], data) -> str:
    """``seeds`` (sorted, distinct) written as comma-separated runs, each run as a range or as
    its singles, in an order drawn by ``data``."""
    runs, run = [], [seeds[0]]
    for s in seeds[1:]:
        if s == run[-1] + 1:
            run.append(s)
        else:
            runs.append(run)
            run = [s]
    runs.append(run)
    parts = []
    for run in runs:
        if len(run) > 1 and data.draw(st.booleans()):
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts += [str(s) for s in run]
    return ",".join(data.draw(st.permutations(parts)))


@settings(max_examples=200, deadline=None)
@given(seeds=st.sets(st.integers(1, 200), min_size=1, max_size=MAX_SEEDS), data=st.data())
def test_seeds_read_back(seeds, data):
    expected = sorted(seeds)
    text = _as_text(expected, data)
    assert parse_seeds(text) == expected, text


@pytest.mark.parametrize("text", ["", "x", "0", "3-1", "1-", "-2", "1--3", "1,,2", "1.5",
                                  "1-2-3", f"1-{MAX_SEEDS + 1}", " "])
def test_bad_seeds_are_refused(text):
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(text)


@pytest.mark.parametrize("args", [["--seeds", "2-1", "spikepack_unit"],
                                  ["--seeds", "1", "--jobs", "0", "spikepack_unit"],
                                  ["--seeds", "1", "no_such_block"]])
def test_bad_command_line(tmp_path, args):
    assert_refused("spikepack.fmax", tmp_path / "fmax", args)


def test_sweep_of_two_seeds(tmp_path):
    seen = []
    s = seed_sweep("default", "spikepack_unit", [1, 2], out=tmp_path, jobs=2,
                   progress=seen.append)
    work = tmp_path / "default" / "spikepack_unit"
    assert [r["seed"] for r in seen] == [1, 2]
    assert s["placed"] == 2 and s["failed"] == 0, s
    fmax = []
    for row in s["seeds"]:
        assert row["fmax_mhz"] == nextpnr_fmax(work / f"seed{row['seed']}"), row
        assert row["from"] and row["to"], row
        fmax.append(row["fmax_mhz"])
    assert s["mean_mhz"] == round(statistics.mean(fmax), 1)
    assert (s["min_mhz"], s["max_mhz"]) == (min(fmax), max(fmax))
    assert s["meeting_target"] == sum(f >= 250.0 for f in fmax)
    assert json.loads((work / "seeds.json").read_text()) == s
    md = (work / "seeds.md").read_text()
    for f in fmax:
        assert f"| {f} |" in md, md
    assert (work / "seeds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(work.glob(".*")), list(work.glob(".*"))     # no temporary file left
