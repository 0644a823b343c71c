"""``spikepack generate``: write the Verilog (and a JSON manifest) of one unit or of the whole
accelerator.

    spikepack generate neuron --kind spikepack|lif --timesteps 4 --tau-shift 1 --weight-bits 8 \\
        --fan-in 64 --rows 8 --bias-bits 16 --threshold-bits 16 [--input-mode serial|packed] -o DIR
    spikepack generate --config FILE.toml -o DIR        # the accelerator (spikepack.accelerator)

A unit is one subcommand of ``generate`` (today: ``neuron``); the accelerator is ``generate``
without a unit and with ``--config``. Python API: :func:`generate_neuron`, :func:`lint_verilog`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from spikepack.fileio import check_directory, os_error_reason, write_files
from spikepack.hw.verilog import LINT_WAIVERS, fields_of

__all__ = ["NEURON_TOPS", "generate_neuron", "neuron_manifest", "lint_verilog", "LINT_WAIVERS",
           "add_arguments", "main"]

#: Verilog module name of each neuron kind.
NEURON_TOPS = {"spikepack": "spikepack_neuron", "lif": "lif_neuron"}


def _layout_json(layout) -> dict:
    return {name: {"offset": o, "width": w, "signed": s} for name, (o, w, s) in fields_of(layout).items()}


def neuron_manifest(unit, top: str) -> dict:
    """Parameters, derived widths, payload layouts and timing of a neuron unit, as JSON data."""
    p = unit.params
    return {
        "top": top,
        "kind": unit.kind,
        "parameters": {"timesteps": p.timesteps, "tau_shift": p.tau_shift,
                       "weight_bits": p.weight_bits, "fan_in": p.fan_in, "rows": p.rows,
                       "bias_bits": p.bias_bits, "threshold_bits": p.threshold_bits,
                       "input_mode": p.input_mode},
        "widths": dict(vars(unit.widths)),
        "ports": {"i": {"payload": _layout_json(unit.input_layout),
                        "width": unit.input_layout.size},
                  "o": {"payload": _layout_json(unit.output_layout),
                        "width": unit.output_layout.size}},
        "timing": {"latency": unit.latency,
                   "cycles_per_neuron": ("G*T" if p.input_mode == "serial" else "max(G, T)"),
                   "output_depth": unit.output_depth},
    }


def generate_neuron(kind: str, out_dir, *, top: str | None = None, **params) -> dict:
    """Write ``out_dir/<top>.v`` and ``out_dir/<top>.json`` for one neuron unit of ``kind``
    ("spikepack" | "lif") with the unit parameters ``params`` (timesteps, tau_shift,
    weight_bits, fan_in, rows, bias_bits, threshold_bits, input_mode). Returns the manifest with
    the two paths added."""
    from spikepack.hw.verilog import to_verilog
    from spikepack.hw.neuron_common import neuron_class
    top = top or NEURON_TOPS.get(kind, "neuron")
    cls = neuron_class(kind)
    cls.check(**params)         # before a unit exists: a refused one is never built
    unit = cls(**params)
    out_dir = Path(out_dir)
    manifest = neuron_manifest(unit, top)
    verilog_path, json_path = write_files(out_dir, {        # all or nothing, manifest last
        f"{top}.v": to_verilog(unit, top),
        f"{top}.json": json.dumps(manifest, indent=2) + "\n"})
    return {**manifest, "verilog": str(verilog_path), "manifest": str(json_path)}


def lint_verilog(sources, top: str, *, waivers=LINT_WAIVERS) -> None:
    """``verilator --lint-only -Wall`` with the project's waivers; raise ``RuntimeError`` with
    Verilator's messages when anything is reported."""
    from spikepack.sim.toolchain import verilator_env
    verilator_env()
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top,
           *([str(waivers)] if waivers else []), *sources]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    messages = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("%")]
    if proc.returncode or messages:
        raise RuntimeError(f"verilator lint of {top} failed (exit {proc.returncode}):\n"
                           + "\n".join(messages or [proc.stderr]))


# --- command line ----------------------------------------------------------------------------

def _add_neuron_arguments(p: argparse.ArgumentParser):
    p.add_argument("--kind", choices=("spikepack", "lif"), default="spikepack",
                   help="neuron model (default: spikepack)")
    p.add_argument("--timesteps", "-T", type=int, default=4, help="time steps T (1..16)")
    p.add_argument("--tau-shift", type=int, default=1, help="k, tau = 2**k (1..3)")
    p.add_argument("--weight-bits", type=int, default=8, help="signed weight width (2..16)")
    p.add_argument("--fan-in", type=int, default=64, help="largest number of inputs N")
    p.add_argument("--rows", type=int, default=8, help="inputs per row tile (array height)")
    p.add_argument("--bias-bits", type=int, default=16, help="signed bias width")
    p.add_argument("--threshold-bits", type=int, default=16, help="unsigned threshold width")
    p.add_argument("--input-mode", choices=("serial", "packed"), default="serial",
                   help="serial: step currents, T beats per group; packed: packed partial "
                        "potentials (SpikePack only)")
    p.add_argument("--top", default=None, help="Verilog module name (default: <kind>_neuron)")
    p.add_argument("--lint", action="store_true", help="also run verilator --lint-only -Wall")
    p.add_argument("-o", "--out", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                   help="output directory (created if missing)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                        help="hardware configuration (TOML): generate the whole accelerator")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                        help="output directory (created if missing)")
    units = parser.add_subparsers(dest="unit", metavar="UNIT", required=False,
                                  help="generate one unit instead of the accelerator")
    neuron = units.add_parser("neuron", help="one SpikePack or LIF neuron unit",
                              description="write <top>.v and <top>.json of one neuron unit")
    _add_neuron_arguments(neuron)


def main(args) -> int:
    """Errors are raised (``CommandError``, ``ConfigError``, ``OSError``...) and reported by
    :func:`spikepack.cli.main` as one line with the exit status of every command."""
    from spikepack.cli import EXIT_CHECK_FAILED, CommandError
    out = getattr(args, "out", None)
    if out is None:
        raise CommandError("give an output directory with -o DIR")
    if args.unit == "neuron":
        if args.config is not None:
            raise CommandError("--config belongs to the accelerator ('generate --config FILE "
                               "-o DIR', without the unit 'neuron')")
        params = dict(timesteps=args.timesteps, tau_shift=args.tau_shift,
                      weight_bits=args.weight_bits, fan_in=args.fan_in, rows=args.rows,
                      bias_bits=args.bias_bits, threshold_bits=args.threshold_bits,
                      input_mode=args.input_mode)
        try:           # the unit checks its parameters before anything is written
            result = generate_neuron(args.kind, out, top=args.top, **params)
        except OSError as e:
            raise CommandError(f"cannot write {os_error_reason(e)}") from None
        except (TypeError, ValueError) as e:
            raise CommandError(f"neuron: {e}") from None
        if args.lint:
            from spikepack.sim.toolchain import ToolchainError
            try:
                lint_verilog(result["verilog"], result["top"])
            except ToolchainError:
                raise
            except RuntimeError as e:
                raise CommandError(str(e), code=EXIT_CHECK_FAILED) from None
        w = result["widths"]
        print(f"wrote {result['verilog']} and {result['manifest']} (potential {w['potential']} "
              f"bits, latency {result['timing']['latency']} cycles)")
        return 0
    if args.config is None:
        raise CommandError("give a unit (e.g. 'neuron') or --config FILE.toml")
    return generate_accelerator_from_file(args.config, out)


def generate_accelerator_from_file(config_path, out_dir) -> int:
    """Load the TOML configuration and call ``spikepack.accelerator.generate_accelerator``;
    a bad configuration raises ``ConfigError`` before anything is written."""
    from spikepack.cli import CommandError
    from spikepack.config import load_config
    from spikepack.accelerator import generate_accelerator
    config = load_config(config_path)
    try:
        check_directory(out_dir)                # a bad -o fails before seconds of elaboration
        manifest = generate_accelerator(config, Path(out_dir))
    except OSError as e:
        raise CommandError(f"cannot write {os_error_reason(e)}") from None
    print(f"wrote {manifest['top']}.v, files.f and manifest.json to {out_dir} (hardware "
          f"signature {manifest['signature_hex']})")
    return 0
