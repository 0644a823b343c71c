"""``python -m spikepack.fmax``: place and route single blocks for their Fmax, fast.

    python -m spikepack.fmax [--config default] [--freq 250] [--seed 1] block [block ...]
    python -m spikepack.fmax --depth [--config default] block [block ...]

Synthesizes each named block of :func:`spikepack.report.blocks` (``top``, ``layer_engine``,
``array``, ``spikepack_unit``, ``lif_unit``, ``loader``, ``sequencer``, ``memories``,
``registers``) with ``synth_ecp5``, places and routes it out of context on the LFE5U-85F speed 8
with nextpnr-ecp5 (the part of ``make report``), and prints its Fmax and critical path, one line
per net with the cumulative delay, so that timing work on one block does not wait for the whole
report. Work files go to ``build/fmax/<config>/<block>``. With ``--depth`` it stops after
synthesis and prints :mod:`spikepack.logic_depth`'s report instead (every register input ranked by
the LUT levels and fan-out in front of it: a minute, and no seed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from spikepack.report import CONFIGS, TARGETS, blocks, place_and_route
from spikepack.synth import synthesize_component

__all__ = ["block_fmax", "critical_path"]


def critical_path(log_text: str) -> list[tuple[float, str, str]]:
    """(cumulative ns, kind, cell or net) of the last critical path in a nextpnr log."""
    found = list(re.finditer(r"Critical path report for clock '[^']+'[^\n]*\n(.*?)Info: [0-9.]+ ns logic",
                             log_text, re.S))
    if not found:
        return []
    rows = []
    for line in found[-1].group(1).splitlines():
        hit = re.match(r"Info:\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s+(?:Source|Net)\s+(\S+)", line)
        if hit:
            rows.append((float(hit.group(3)), hit.group(1), hit.group(4)))
    return rows


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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
