"""``python -m spikepack.fmax``: place and route single blocks for their Fmax, fast.

    python -m spikepack.fmax [--config default] [--freq 250] [--seed 1] block [block ...]
    python -m spikepack.fmax --depth [--config default] block [block ...]
    python -m spikepack.fmax --seeds 1-8 [--jobs 2] [--config default] block [block ...]

Synthesizes each named block of :func:`spikepack.report.blocks` (``top``, ``layer_engine``,
``array``, ``spikepack_unit``, ``lif_unit``, ``loader``, ``sequencer``, ``memories``,
``registers``) with ``synth_ecp5``, places and routes it out of context on the LFE5U-85F speed 8
with nextpnr-ecp5 (the part of ``make report``), and prints its Fmax and critical path, one line
per net with the cumulative delay, so that timing work on one block does not wait for the whole
report. Work files go to ``build/fmax/<config>/<block>``. With ``--depth`` it stops after
synthesis and prints :mod:`spikepack.logic_depth`'s report instead (every register input ranked by
the LUT levels and fan-out in front of it: a minute, and no seed).

One seed's Fmax is as much the placer's luck as the design's: on the default top, seeds 1-16
spread over 25 MHz, and a netlist change of a few LUTs moves one seed by as much. With
``--seeds`` (``1-8``, ``1,2,5``) each block is synthesized once and placed and routed at every
seed (``--jobs`` at a time), and the spread is written to ``<out>/<config>/<block>/seeds.json``,
``seeds.md`` and ``seeds.png`` (Fmax per seed, its mean and the target): judge a timing change on
the mean of several seeds, and the same seeds before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spikepack.report import (CONFIGS, MAX_SEEDS, TARGETS, blocks, critical_path,
                              parse_seeds, place_and_route, place_seeds, seed_summary)
from spikepack.fileio import atomic_write_text, write_figure
from spikepack.synth import synthesize_component

__all__ = ["MAX_SEEDS", "block_fmax", "critical_path", "parse_seeds", "seed_sweep"]


def block_fmax(config_name: str, block: str, *, freq: float = TARGETS["fmax_mhz"], seed: int = 1,
               out: Path = Path("build/fmax")) -> dict:
    """Synthesize ``block`` of configuration ``config_name`` for ECP5, place and route it."""
    table = blocks(CONFIGS[config_name])
    if block not in table:
        raise ValueError(f"unknown block {block!r}; known: {sorted(table)}")
    work = Path(out) / config_name / block
    res = synthesize_component(table[block][0](), block, family="ecp5", keep_dir=work)
    pnr = place_and_route(work / "netlist.json", work, freq, seed=seed)
    log = work / "nextpnr.log"
    pnr["path"] = critical_path(log.read_text(errors="replace")) if log.exists() else []
    pnr["resources"] = res.as_row()
    return pnr


def seed_sweep(config_name: str, block: str, seeds: list[int], *,
               freq: float = TARGETS["fmax_mhz"], out: Path = Path("build/fmax"), jobs: int = 2,
               progress=None) -> dict:
    """Synthesize ``block`` once and place and route it at each of ``seeds`` (``jobs`` at a
    time); ``progress`` (optional) is called with each seed's row as it ends. Returns the rows
    and their summary, also written (atomically) to ``seeds.json``, ``seeds.md`` and
    ``seeds.png`` in the block's work folder."""
    table = blocks(CONFIGS[config_name])
    if block not in table:
        raise ValueError(f"unknown block {block!r}; known: {sorted(table)}")
    work = Path(out) / config_name / block
    res = synthesize_component(table[block][0](), block, family="ecp5", keep_dir=work)
    rows = place_seeds(work / "netlist.json", work, freq, seeds, jobs=jobs, progress=progress)
    summary = {"config": config_name, "block": block, "part": "LFE5U-85F-8BG381 (out of context)",
               "resources": res.as_row(), **seed_summary(rows, freq)}
    got = summary["placed"]
    atomic_write_text(work / "seeds.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(work / "seeds.md", _seeds_markdown(summary))
    if got:
        _seeds_plot(summary, work / "seeds.png")
    return summary


def _seeds_markdown(s: dict) -> str:
    lines = [f"# Fmax over nextpnr seeds: {s['block']} ({s['config']})", "",
             f"{s['part']}, target {s['target_mhz']:g} MHz; {s['resources'].get('lut')} LUT4, "
             f"{s['resources'].get('ff')} FF, {s['resources'].get('bram')} EBR.", "",
             "| seed | Fmax (MHz) | critical path from | to |", "|---|---|---|---|"]
    for r in s["seeds"]:
        fmax = r["fmax_mhz"] if r.get("fmax_mhz") else f"failed: {r.get('error', '?')[:80]}"
        lines.append(f"| {r['seed']} | {fmax} | `{r.get('from', '')}` | `{r.get('to', '')}` |")
    if s["placed"]:
        lines += ["", f"Mean {s['mean_mhz']} MHz, median {s['median_mhz']}, range "
                      f"{s['min_mhz']}-{s['max_mhz']}, standard deviation {s['stdev_mhz']}; "
                      f"{s['meeting_target']} of {s['placed']} seeds meet the target."]
    return "\n".join(lines) + "\n"


def _seeds_plot(s: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in s["seeds"] if r.get("fmax_mhz")]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([r["seed"] for r in rows], [r["fmax_mhz"] for r in rows], "o", color="tab:blue",
            label="Fmax")
    ax.set_xticks([r["seed"] for r in rows])
    ax.axhline(s["target_mhz"], color="tab:red", linestyle="--", label=f"target {s['target_mhz']:g}")
    ax.axhline(s["mean_mhz"], color="black", linewidth=1, label=f"mean {s['mean_mhz']}")
    low = min(s["min_mhz"], s["target_mhz"])
    ax.set_ylim(low * 0.9, max(s["max_mhz"], s["target_mhz"]) * 1.03)
    ax.set_xlabel("nextpnr seed")
    ax.set_ylabel("Fmax (MHz)")
    ax.set_title(f"{s['block']} ({s['config']}): Fmax per placement seed")
    ax.legend(loc="best")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)


def _short(name: str, width: int = 110) -> str:
    return name if len(name) <= width else name[:60] + "..." + name[-(width - 63):]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.fmax", description=__doc__.splitlines()[0])
    parser.add_argument("blocks", nargs="+")
    parser.add_argument("--config", default="default", choices=sorted(CONFIGS))
    parser.add_argument("--freq", type=float, default=TARGETS["fmax_mhz"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="build/fmax")
    parser.add_argument("--full-path", action="store_true", help="print every element of the path")
    parser.add_argument("--depth", type=int, nargs="?", const=30, default=None, metavar="ROWS",
                        help="synthesize only and print the ROWS (30) deepest register inputs")
    parser.add_argument("--seeds", default=None, metavar="SEEDS",
                        help="place and route at each of these seeds (1-8, 1,2,5) and report the spread")
    parser.add_argument("--jobs", type=int, default=None,
                        help="places and routes at once with --seeds (default: the CPU count)")
    args = parser.parse_args(argv)
    if args.seeds is not None:
        return _sweep_main(args)
    if args.depth is not None:
        from spikepack.logic_depth import depth_report, format_rows
        table = blocks(CONFIGS[args.config])
        for block in args.blocks:
            if block not in table:
                print(f"python -m spikepack.fmax: unknown block {block!r}; known: {sorted(table)}",
                      file=sys.stderr)
                return 2
            work = Path(args.out) / args.config / block
            res = synthesize_component(table[block][0](), block, family="ecp5", keep_dir=work)
            print(f"{block}: {res.as_row().get('lut')} LUT4, {res.as_row().get('ff')} FF; "
                  f"deepest register inputs (score: LUT levels + 0.02 per sink of each net)")
            print(format_rows(depth_report(work / "netlist.json"), args.depth))
        return 0
    worst = None
    for block in args.blocks:
        r = block_fmax(args.config, block, freq=args.freq, seed=args.seed, out=Path(args.out))
        if "error" in r:
            print(f"{block}: {r['error']}")
            worst = 0.0
            continue
        print(f"{block}: Fmax {r['fmax_mhz']} MHz (target {args.freq:g}); "
              f"{r['resources'].get('lut')} LUT4, {r['resources'].get('ff')} FF")
        path = r["path"]
        if not args.full_path:   # nets and the endpoints only: carry-chain cells add no insight
            path = [p for i, p in enumerate(path) if p[1] in ("clk-to-q", "routing", "setup")
                    or i in (0, len(path) - 1)]
        for total, kind, name in path:
            print(f"    {total:6.2f} {kind:8s} {_short(name)}")
        worst = r["fmax_mhz"] if worst is None else min(worst, r["fmax_mhz"] or 0.0)
    return 0 if worst is not None and worst >= args.freq else 1


def _sweep_main(args) -> int:
    import os

    prog = "python -m spikepack.fmax"
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        print(f"{prog}: --jobs must be at least 1, not {jobs}", file=sys.stderr)
        return 2
    table = blocks(CONFIGS[args.config])
    for block in args.blocks:
        if block not in table:
            print(f"{prog}: unknown block {block!r}; known: {sorted(table)}", file=sys.stderr)
            return 2
    every_seed_met = True
    for block in args.blocks:
        print(f"{block} ({args.config}): synthesis, then seeds {args.seeds} ({jobs} at a time)",
              flush=True)

        def show(row, block=block):
            ends = f"{_short(row.get('from', '?'), 60)} -> {_short(row.get('to', '?'), 60)}"
            got = f"{row['fmax_mhz']} MHz" if row.get("fmax_mhz") else row.get("error", "failed")
            print(f"  seed {row['seed']:>3}: {got}  {ends}", flush=True)

        s = seed_sweep(args.config, block, seeds, freq=args.freq, out=Path(args.out), jobs=jobs,
                       progress=show)
        if s["placed"]:
            print(f"{block}: mean {s['mean_mhz']} MHz, median {s['median_mhz']}, range "
                  f"{s['min_mhz']}-{s['max_mhz']}, {s['meeting_target']} of {s['placed']} seeds "
                  f"meet {args.freq:g} MHz; {Path(args.out) / args.config / block / 'seeds.md'}")
        every_seed_met &= not s["failed"] and s.get("meeting_target") == s["placed"]
    return 0 if every_seed_met else 1


if __name__ == "__main__":
    sys.exit(main())
