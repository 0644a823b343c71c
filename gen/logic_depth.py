"""Logic depth between registers in a ``synth_ecp5`` netlist (Yosys JSON), weighted by fan-out.

Place and route gives one critical path per run, and which one depends on the seed. This
report ranks every register input (flip-flop D, CE, LSR; block and LUT RAM inputs) by a
depth score of the worst path into it, so that timing work sees every path of the same
shape at once: a LUT counts 1, a PFUMX or L6MUX 0.3, a carry cell 1 from its data inputs
and 0.06 along the chain, a LUT RAM read 1, and each net adds ``fanout_weight`` per sink (up
to 100 sinks: high fan-out nets route long). Scores of about 4.5 and more were the critical
paths at 200-225 MHz on the ECP5-85 (speed 8) of ``make report``.

    python -m spikepack.fmax top --depth        # synthesize, then print this report
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

__all__ = ["DepthRow", "depth_report", "format_rows"]

_COMB = {"LUT4": (("A", "B", "C", "D"), ("Z",), 1.0), "PFUMX": (("ALUT", "BLUT", "C0"), ("Z",), 0.3),
         "L6MUX21": (("D0", "D1", "SD"), ("Z",), 0.3)}
_ENDPOINTS = {"TRELLIS_FF": ("DI", "CE", "LSR", "M"), "DP16KD": None,
              "TRELLIS_DPR16X4": ("WAD0", "WAD1", "WAD2", "WAD3", "DI0", "DI1", "DI2", "DI3",
                                  "WRE")}


class DepthRow(NamedTuple):
    score: float
    register: str        # the endpoint register (its output net's name, without the bit)
    pin: str             # DI, CE, LSR, ... of the endpoint
    path: list           # (net name, fan-out) from the endpoint back to the start register


def _bits(conn, ports):
    return [b for p in ports for b in conn.get(p, []) if isinstance(b, int)]


def depth_report(netlist: Path | str, *, fanout_weight: float = 0.02) -> list[DepthRow]:
    """Every endpoint's worst path, one row per (start, endpoint register, pin), worst first."""
    design = json.loads(Path(netlist).read_text())
    top = next(m for m in design["modules"].values() if m.get("attributes", {}).get("top"))
    names: dict[int, str] = {}
    for name, net in top["netnames"].items():        # the most readable name of each bit
        for b in net["bits"]:
            if isinstance(b, int) and (b not in names or (name.count("$"), len(name))
                                       < (names[b].count("$"), len(names[b]))):
                names[b] = name
    drivers: dict[int, list] = {}
    sinks: Counter = Counter()
    endpoints = []
    for cname, cell in top["cells"].items():
        kind, conn = cell["type"], cell["connections"]
        dirs = cell.get("port_directions", {})
        for port, bits in conn.items():
            if dirs.get(port) == "input":
                sinks.update(b for b in bits if isinstance(b, int))
        if kind in _COMB:
            ins, outs, delay = _COMB[kind]
            for b in _bits(conn, outs):
                drivers[b] = [(x, delay) for x in _bits(conn, ins)]
        elif kind == "CCU2C":
            a0, a1 = ("A0", "B0", "C0", "D0"), ("A1", "B1", "C1", "D1")
            cin = [(x, 0.6) for x in _bits(conn, ("CIN",))]
            drivers[conn["S0"][0]] = [(x, 1.0) for x in _bits(conn, a0)] + cin
            drivers[conn["S1"][0]] = [(x, 1.0) for x in _bits(conn, a0 + a1)] + cin
            drivers[conn["COUT"][0]] = ([(x, 0.3) for x in _bits(conn, a0 + a1)]
                                        + [(x, 0.06) for x in _bits(conn, ("CIN",))])
        elif kind == "TRELLIS_DPR16X4":
            rad = [(x, 1.0) for x in _bits(conn, ("RAD0", "RAD1", "RAD2", "RAD3"))]
            for b in _bits(conn, ("DO0", "DO1", "DO2", "DO3")):
                drivers[b] = rad
        if kind in _ENDPOINTS:
            pins = _ENDPOINTS[kind] or [p for p in conn if dirs.get(p) == "input"
                                        and not p.startswith("CLK")]
            q = _bits(conn, ("Q",))
            register = re.sub(r"\[\d+\]$", "", names.get(q[0], cname)) if q else cname
            endpoints += [(register, p, b) for p in pins for b in _bits(conn, (p,))]

    memo: dict[int, tuple] = {}         # bit -> (score, previous bit) of its worst path
    expanded: set[int] = set()

    def worst(bit):
        stack = [bit]
        while stack:                    # iterative: the cones are deep
            b = stack[-1]
            if b in memo:
                stack.pop()
                continue
            if b not in expanded:       # first visit: its drivers first (a loop is cut)
                expanded.add(b)
                stack += [x for x, _ in drivers.get(b, []) if x not in memo
                          and x not in expanded]
                continue
            best = (0.0, None)
            for x, delay in drivers.get(b, []):
                score = (memo.get(x) or (0.0, None))[0] + delay + fanout_weight * min(sinks[x], 100)
                if score > best[0]:
                    best = (score, x)
            memo[b] = best
            stack.pop()
        return memo[bit]

    rows, seen = [], set()
    scored = sorted(((worst(b)[0] + fanout_weight * min(sinks[b], 100), reg, pin, b)
                     for reg, pin, b in endpoints), reverse=True)
    for score, reg, pin, b in scored:
        path, x = [], b
        while x is not None and len(path) < 64:
            path.append((names.get(x, "?"), sinks[x]))
            x = worst(x)[1]
        key = (path[-1][0], reg, pin)
        if key not in seen:
            seen.add(key)
            rows.append(DepthRow(round(score, 2), reg, pin, path))
    return rows


def format_rows(rows, limit: int = 30, width: int = 220) -> str:
    out = []
    for r in rows[:limit]:
        chain = " <- ".join(f"{n}[{f}]" for n, f in r.path)
        line = f"{r.score:5.2f} {r.register} {r.pin} <- {chain}"
        out.append(line if len(line) <= width else line[:width - 3] + "...")
    return "\n".join(out)


def main(argv=None) -> int:
    """``python -m spikepack.logic_depth NETLIST.json [ROWS]``: the report of a netlist."""
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2 or (len(argv) == 2 and not argv[1].isdigit()):
        print("usage: python -m spikepack.logic_depth NETLIST.json [ROWS]", file=sys.stderr)
        return 2
    try:
        rows = depth_report(argv[0])
    except (OSError, ValueError, KeyError, StopIteration) as e:
        print(f"spikepack.logic_depth: {argv[0]}: not a readable synth_ecp5 netlist "
              f"({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    print(format_rows(rows, int(argv[1]) if len(argv) > 1 else 30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
