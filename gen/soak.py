"""``make soak`` / ``python -m spikepack.soak``: the random-configuration regression of
``tests/test_regression_rtl.py`` over many more configurations, for use before a release.

Each case draws a network shape and a valid configuration from the whole space of
``docs/config.md`` with memories just large enough for it
(:func:`spikepack.sim.benches.regression.draw_case`), generates the accelerator, builds it under
Verilator and runs the regression bench on it end to end through the AXI ports (random and
extreme networks bit-exact under pauses and backpressure, one bad bitstream per loader error
code, SOFT_RESET in every phase). Case ``i`` of seed ``S`` draws from
``numpy.random.default_rng([S, i])`` and runs the bench with seed ``S``, exactly as the test of
index ``i`` does with ``SPIKEPACK_SEED=S``; the report gives each case's replay command.

Writes ``build/soak/report.json`` (totals and every case: seed, configuration, sizes, tallies,
failure) and ``build/soak/report.md`` (a short summary). Exit status 0 when every case passed,
1 when a hardware check failed, 2 for bad usage.

Options: ``--configs N`` (default ``$SOAK_CONFIGS`` or 50), ``--seed S`` (default
``$SPIKEPACK_SEED`` or a fresh one), ``--first I`` (index of the first case), ``--jobs J``
(cases in parallel, default ``$JOBS`` or 1), ``--out DIR``, ``--keep-builds`` (keep the
Verilator builds of passing cases; they are deleted by default, about 15 MB each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from spikepack.fileio import atomic_write_text

__all__ = ["main", "run_one"]

DEFAULT_CONFIGS = 50


def _describe(c) -> str:
    return (f"{c.rows}x{c.cols} T={c.timesteps} k={c.tau_shift} {c.neuron}/{c.pe_mode} "
            f"w{c.weight_bits} b{c.bias_bits} t{c.threshold_bits} g={c.rows_per_word} "
            f"N<={c.max_fan_in} M<={c.max_neurons} L<={c.max_layers} depth {c.weight_depth}")


def run_one(seed: int, index: int, out: str, keep_build: bool) -> dict:
    """Draw and run case ``index`` of ``seed``; never raises (a failure is in the record)."""
    import numpy as np

    from spikepack.sim.benches.regression import run_case
    from spikepack.sim.benches.stimulus import draw_case
    t0 = time.monotonic()
    record = {"index": index, "seed": seed,
              "replay": f"python -m spikepack.soak --seed {seed} --first {index} --configs 1",
              "passed": False}
    results = Path(out) / "cases" / f"case-{index}.json"
    results.unlink(missing_ok=True)
    try:
        config, sizes = draw_case(np.random.default_rng([seed, index]))
        record.update(config=asdict(config), description=_describe(config), sizes=sizes)
        run_dir = run_case(config, sizes, seed=seed, results=results, label=f"soak-{index}")
        record["passed"] = True
        if not keep_build:
            shutil.rmtree(run_dir.parent.parent, ignore_errors=True)     # the build directory
    except AssertionError as e:
        record["failure"] = str(e).splitlines()[0]
        record["log"] = str(e)
    except Exception as e:                      # noqa: BLE001 - a build or draw error
        record["failure"] = f"{type(e).__name__}: {e}"
    if results.exists():
        record["tally"] = json.loads(results.read_text())
        if not record["passed"] and record["tally"].get("error"):
            record["failure"] = record["tally"]["error"].splitlines()[-1][:1000]
    record["seconds"] = round(time.monotonic() - t0, 1)
    return record


def _summary(records: list[dict], seed: int, seconds: float) -> dict:
    totals = {"configurations": len(records), "passed": sum(r["passed"] for r in records),
              "failed": sum(not r["passed"] for r in records)}
    for key in ("networks", "images", "outputs", "mismatches"):
        totals[key] = sum(r.get("tally", {}).get(key, 0) for r in records)
    totals["bad_streams"] = sum(len(r.get("tally", {}).get("bad_streams", {})) for r in records)
    totals["soft_resets"] = sum(len(r.get("tally", {}).get("soft_resets", {})) for r in records)
    cover = {"neuron": sorted({r["config"]["neuron"] for r in records if "config" in r}),
             "pe_mode": sorted({r["config"]["pe_mode"] for r in records if "config" in r}),
             "timesteps": sorted({r["config"]["timesteps"] for r in records if "config" in r}),
             "tau_shift": sorted({r["config"]["tau_shift"] for r in records if "config" in r}),
             "rows": sorted({r["config"]["rows"] for r in records if "config" in r}),
             "cols": sorted({r["config"]["cols"] for r in records if "config" in r}),
             "weight_bits": sorted({r["config"]["weight_bits"] for r in records if "config" in r})}
    return {"seed": seed, "seconds": round(seconds, 1), "totals": totals, "coverage": cover,
            "cases": sorted(records, key=lambda r: r["index"])}


def _markdown(report: dict) -> str:
    t = report["totals"]
    lines = [
        "# Soak: random-configuration regression", "",
        f"Seed {report['seed']}, {t['configurations']} configurations in "
        f"{report['seconds'] / 60:.1f} min: **{t['passed']} passed, {t['failed']} failed**.", "",
        f"{t['networks']} networks, {t['images']} images, {t['outputs']} outputs checked "
        f"against the golden model, **{t['mismatches']} mismatches**; {t['bad_streams']} bad "
        f"bitstreams, {t['soft_resets']} soft resets.", "",
        "Coverage: " + "; ".join(f"{k} {v}" for k, v in report["coverage"].items()), "",
        "| case | configuration | sizes | images | outputs | result | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:
        tally = r.get("tally", {})
        result = "ok" if r["passed"] else f"FAIL: {r.get('failure', '?')[:160]}"
        lines.append(f"| {r['index']} | {r.get('description', '?')} | {r.get('sizes', '?')} | "
                     f"{tally.get('images', 0)} | {tally.get('outputs', 0)} | {result} | "
                     f"{r['seconds']} |")
    failed = [r for r in report["cases"] if not r["passed"]]
    if failed:
        lines += ["", "Replay a failure:", ""] + [f"    {r['replay']}" for r in failed]
    return "\n".join(lines) + "\n"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"spikepack soak: {name} must be an integer, not {value!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.soak",
                                     description="random-configuration RTL regression")
    parser.add_argument("--configs", type=int, default=None,
                        help=f"configurations to run (default $SOAK_CONFIGS or {DEFAULT_CONFIGS})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed (default $SPIKEPACK_SEED or a fresh one)")
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument("--jobs", type=int, default=None,
                        help="cases run in parallel (default $JOBS or 1)")
    parser.add_argument("--out", default=None, help="report directory (default build/soak)")
    parser.add_argument("--keep-builds", action="store_true",
                        help="keep the Verilator builds of passing cases")
    args = parser.parse_args(argv)
    try:
        configs = args.configs if args.configs is not None else _env_int("SOAK_CONFIGS",
                                                                         DEFAULT_CONFIGS)
        jobs = args.jobs if args.jobs is not None else _env_int("JOBS", 1)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    for name, value, low in (("configs", configs, 1), ("jobs", jobs, 1), ("first", args.first, 0)):
        if value < low:
            print(f"spikepack soak: --{name} must be at least {low}, not {value}", file=sys.stderr)
            return 2
    from spikepack.sim import runner
    seed = args.seed if args.seed is not None else runner.bench_seed()
    out = Path(args.out) if args.out else runner.BUILD_ROOT / "soak"
    (out / "cases").mkdir(parents=True, exist_ok=True)
    indices = range(args.first, args.first + configs)
    print(f"[spikepack] soak: {configs} configurations, seed {seed} "
          f"(replay with --seed {seed}), {jobs} at a time; report in {out}", flush=True)
    t0 = time.monotonic()
    records = []

    def progress(record):
        records.append(record)
        tally = record.get("tally", {})
        status = "ok" if record["passed"] else f"FAIL {record.get('failure', '')[:200]}"
        print(f"[{len(records)}/{configs}] case {record['index']}: "
              f"{record.get('description', '?')} sizes {record.get('sizes', '?')}: "
              f"{tally.get('images', 0)} images, {tally.get('outputs', 0)} outputs, "
              f"{tally.get('mismatches', 0)} mismatches: {status} ({record['seconds']} s)",
              flush=True)
        report = _summary(records, seed, time.monotonic() - t0)
        atomic_write_text(out / "report.json", json.dumps(report, indent=1))
        atomic_write_text(out / "report.md", _markdown(report))

    if jobs == 1:
        for i in indices:
            progress(run_one(seed, i, str(out), args.keep_builds))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, seed, i, str(out), args.keep_builds) for i in indices]
            for future in as_completed(futures):
                progress(future.result())
    report = _summary(records, seed, time.monotonic() - t0)
    t = report["totals"]
    print(f"[spikepack] soak: {t['passed']}/{t['configurations']} configurations passed; "
          f"{t['networks']} networks, {t['images']} images, {t['outputs']} outputs, "
          f"{t['mismatches']} mismatches; report {out / 'report.md'}", flush=True)
    return 0 if t["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
