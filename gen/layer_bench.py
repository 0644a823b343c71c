"""Layer-engine benchmark: cycles per layer from RTL simulation (Verilator), against the ideal;
optionally the synthesized array of both pe_modes.

    python -m spikepack.layer_bench [--shapes 32x32,64x64,...] [--timesteps 4,8]
                                    [--pe-modes serial,packed] [--synth] [--out DIR]

For each configuration (default: the 8x8 array at T = 4 and at T = 8 in pe_mode serial,
everything else at its default, with a weight memory large enough for 256 x 256, see
:func:`bench_config`; ``--pe-modes serial,packed`` adds the packed array) one Verilator build runs every layer
shape through the same cocotb bench as the RTL tests (``spikepack.sim.benches.layer``: outputs
checked bit-exactly against the golden model, ``o`` never stalled) and records the cycles from
the descriptor handshake to the last output handshake. Writes ``<out>/layers.json`` and
``<out>/layers.md`` (default ``build/bench``) with: shape, cycles, the ideal
ceil(N/R) * ceil(M/C) * T (serial; packed: ceil(N/R) * ceil(M/C), a tile per cycle), measured /
ideal, the engine's latency formula, synaptic operations per cycle (N*M*T weight x time-step
products / cycles) and PE utilisation (serial: N*M*T spike-gated adds / (R*C*cycles); packed:
N*M multiply-accumulates / (R*C*cycles)).

``--conv`` (:func:`measure_conv`) runs the conv table instead (:data:`CONV_LAYERS`: 3x3 16->32 on
14x14 pad 1, 3x3 32->64 on 7x7 pad 1, 5x5 1->16 on 28x28 pad 2, each without and with 2x2
max pooling, and the first layer of the MNIST CNN, 3x3 1->16 on 28x28 pad 1 with 2x2 pooling)
on the default configuration (8x8, T = 4, pe_mode serial, or ``--pe-modes``), its memories
sized for the layers and the bench's dummy readout (:func:`conv_bench_config`), and writes
``<out>/conv.json`` and ``<out>/conv.md``: measured cycles (RTL, every beat and the pooled map
checked against the golden model, ``o`` never stalled), ``layer_engine.conv_expected_cycles``,
the ideal ``conv_ideal_cycles`` (ceil(C_in K_h K_w / R) * ceil(C_out / C) * H_out' * W_out' * T),
measured / ideal and ``conv_utilisation`` (C_out C_in K_h K_w H_out' W_out' T / (R C cycles)).

``--synth`` (:func:`synth_arrays`) synthesizes the bare R x C array of each pe_mode with Yosys
(``synth_xilinx -family xcup``, through :mod:`spikepack.synth`'s toolchain and cell classes) and
writes ``<out>/arrays.json`` / ``arrays.md``: LUT, FF, CARRY8, DSP and synaptic operations per
cycle (serial R*C, packed R*C*T) per LUT and per DSP.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from spikepack.config import HardwareConfig
from spikepack.fileio import atomic_write_text

DEFAULT_SHAPES = ((32, 32), (64, 64), (128, 64), (256, 256))
BUILD_ARGS = ("--output-split", "0")   # see tests/test_layer_rtl.py


def bench_config(timesteps: int, **overrides) -> HardwareConfig:
    """The default configuration at ``timesteps`` (and ``overrides``, e.g. ``pe_mode``), with a
    weight memory that holds a 256 x 256 layer (plus the bench's 1-neuron readout behind it)."""
    words_per_tile = HardwareConfig(timesteps=timesteps,
                                    pe_mode=overrides.get("pe_mode", "serial")).words_per_tile
    fields = dict(rows=8, cols=8, timesteps=timesteps, weight_depth=2 * 32 * 32 * words_per_tile)
    fields.update(overrides)
    return HardwareConfig(**fields)


def measure(config: HardwareConfig, shapes, *, seed: int = 1) -> list[dict]:
    """Run every (N, M) in ``shapes`` (hidden layers, o never stalled); return one row each."""
    from spikepack.hw.layer_engine import expected_cycles, ideal_cycles
    from spikepack.sim import runner
    from spikepack.sim.benches.layer import LayerBenchTop

    built = runner.build("layer_top", lambda: LayerBenchTop(config=config),
                         build_args=BUILD_ARGS)
    cases = [{"N": n, "M": m, "readout": False, "stall": 0.0} for n, m in shapes]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        runner.run(built, "spikepack.sim.benches.layer", name="layer-bench", seed=seed,
                   args={"config": dataclasses.asdict(config), "cases": cases,
                         "results": str(out)})
        results = json.loads(out.read_text())
    R, C, T = config.rows, config.cols, config.timesteps
    # work a PE does per cycle: one spike-gated add (serial) or one weight x p(z) MAC (packed)
    per_pe = 1 if config.pe_mode == "packed" else T
    rows = []
    for r in results:
        n, m, cycles = r["N"], r["M"], r["cycles"]
        ideal = ideal_cycles(config, n, m)
        rows.append({
            "pe_mode": config.pe_mode,
            "R": R, "C": C, "T": T, "tau_shift": config.tau_shift, "neuron": config.neuron,
            "N": n, "M": m, "cycles": cycles, "ideal": ideal,
            "ratio": round(cycles / ideal, 4),
            "formula": expected_cycles(config, n, m),
            "synops_per_cycle": round(n * m * T / cycles, 2),
            "pe_utilisation": round(n * m * per_pe / (R * C * cycles), 4),
        })
    return rows


#: The conv table: (name, C_in, C_out, map side, kernel, padding, pool).
CONV_LAYERS = (
    ("3x3 16->32, 14x14, pad 1", 16, 32, 14, 3, 1, 1),
    ("3x3 16->32, 14x14, pad 1, pool 2", 16, 32, 14, 3, 1, 2),
    ("3x3 32->64, 7x7, pad 1", 32, 64, 7, 3, 1, 1),
    ("3x3 32->64, 7x7, pad 1, pool 2", 32, 64, 7, 3, 1, 2),
    ("5x5 1->16, 28x28, pad 2", 1, 16, 28, 5, 2, 1),
    ("5x5 1->16, 28x28, pad 2, pool 2", 1, 16, 28, 5, 2, 2),
    ("MNIST CNN layer 1: 3x3 1->16, 28x28, pad 1, pool 2", 1, 16, 28, 3, 1, 2),
)


def conv_bench_config(pe_mode: str = "serial", **overrides) -> HardwareConfig:
    """The default configuration (8x8, T = 4; the cycles depend on R, C, T, pe_mode and g only)
    with memories that hold every layer of :data:`CONV_LAYERS` and the bench's dummy readout
    over the layer's whole stored output map (28 x 28 x 16 words)."""
    fields = dict(pe_mode=pe_mode, max_fan_in=16384, max_map_words=16384, weight_depth=8192)
    fields.update(overrides)
    return HardwareConfig(**fields)


def conv_case(C_in, C_out, side, kernel, pad, pool) -> dict:
    return {"conv": True, "C_in": C_in, "C_out": C_out, "H": side, "W": side,
            "kernel": (kernel, kernel), "stride": (1, 1), "pad": (pad, pad),
            "pool": (pool, pool), "readout": False, "stall": 0.0}


def measure_conv(config: HardwareConfig, layers=CONV_LAYERS, *, seed: int = 1) -> list[dict]:
    """Run the conv ``layers`` on ``config`` (RTL, o never stalled); one row each."""
    from spikepack.hw.layer_engine import (conv_compute_bound, conv_expected_cycles,
                                           conv_ideal_cycles, conv_utilisation)
    from spikepack.sim import runner
    from spikepack.sim.benches.layer import LayerBenchTop

    built = runner.build("layer_top", lambda: LayerBenchTop(config=config),
                         build_args=BUILD_ARGS)
    cases = [conv_case(*layer[1:]) for layer in layers]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        runner.run(built, "spikepack.sim.benches.layer", name="conv-bench", seed=seed,
                   args={"config": dataclasses.asdict(config), "cases": cases,
                         "results": str(out)})
        results = json.loads(out.read_text())
    R, C = config.rows, config.cols
    rows = []
    for (name, C_in, C_out, side, k, pad, pool), r in zip(layers, results):
        N, Q, cycles = r["N"], r["positions"], r["cycles"]
        ideal = conv_ideal_cycles(config, C_in, (k, k), C_out, Q)
        rows.append({
            "layer": name, "pe_mode": config.pe_mode, "R": R, "C": C, "T": config.timesteps,
            "C_in": C_in, "C_out": C_out, "side": side, "kernel": k, "pad": pad, "pool": pool,
            "patch": N, "positions": Q, "cycles": cycles, "ideal": ideal,
            "formula": conv_expected_cycles(config, N, C_out, Q),
            "compute_bound": conv_compute_bound(config, N),
            "ratio": round(cycles / ideal, 4),
            "utilisation": round(conv_utilisation(config, C_in, (k, k), C_out, Q, cycles), 4),
        })
    return rows


def conv_markdown(rows) -> str:
    lines = ["| layer | pe_mode | patch rows N (useful) | positions | cycles | formula | ideal | "
             "measured/ideal | utilisation |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        useful = r["C_in"] * r["kernel"] ** 2
        lines.append(f"| {r['layer']} | {r['pe_mode']} | {r['patch']} ({useful}) | "
                     f"{r['positions']} | {r['cycles']} | {r['formula']} | {r['ideal']} | "
                     f"{r['ratio']:.3f} | {100 * r['utilisation']:.1f}% |")
    return "\n".join(lines) + "\n"


def markdown(rows) -> str:
    lines = ["| pe_mode | array | T | N x M | cycles | ideal | measured/ideal | formula | "
             "synaptic ops/cycle | PE utilisation |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('pe_mode', 'serial')} | {r['R']}x{r['C']} | {r['T']} | "
                     f"{r['N']} x {r['M']} | {r['cycles']} | "
                     f"{r['ideal']} | {r['ratio']:.3f} | {r['formula']} | "
                     f"{r['synops_per_cycle']:.1f} | {100 * r['pe_utilisation']:.1f}% |")
    return "\n".join(lines) + "\n"


# --- synthesis of the bare array ----------------------------------------------------------------

def synth_array(config: HardwareConfig, *, family: str = "xcup"):
    """Synthesize the bare SpikeArray of ``config`` (its pe_mode); :class:`spikepack.synth.Resources`."""
    from spikepack.hw.array import SpikeArray
    from spikepack.synth import synthesize_component
    return synthesize_component(SpikeArray.from_config(config), "spike_array", family=family)


def synth_arrays(*, rows: int = 8, cols: int = 8, weight_bits: int = 8, timesteps: int = 4,
                 tau_shift: int = 1, family: str = "xcup", progress: bool = True) -> list[dict]:
    """Synthesize the array of both pe_modes at one size; one row each with LUT, FF, CARRY8,
    DSP and synaptic operations (weight x time-step products) per cycle: R*C (serial: R*C
    spike-gated adds of one time step) or R*C*T (packed: R*C multiply-accumulates of a T-step
    word), and those per LUT and per DSP."""
    out = []
    for mode in ("serial", "packed"):
        config = HardwareConfig(rows=rows, cols=cols, weight_bits=weight_bits,
                                timesteps=timesteps, tau_shift=tau_shift, pe_mode=mode)
        if progress:
            print(f"synthesizing the {rows}x{cols} {mode} array ({family}) ...",
                  file=sys.stderr, flush=True)
        res = synth_array(config, family=family)
        ops = rows * cols * (timesteps if mode == "packed" else 1)
        out.append({
            "pe_mode": mode, "R": rows, "C": cols, "weight_bits": weight_bits, "T": timesteps,
            "tau_shift": tau_shift, "family": family, "lut": res.lut, "ff": res.ff,
            "carry8": res.carry8, "dsp": res.dsp, "srl": res.srl,
            "synops_per_cycle": ops,
            "synops_per_cycle_per_lut": round(ops / res.lut, 4) if res.lut else None,
            "synops_per_cycle_per_dsp": round(ops / res.dsp, 2) if res.dsp else None,
        })
    return out


def synth_markdown(rows) -> str:
    lines = ["| pe_mode | array | b_w | T | LUT | FF | CARRY8 | DSP | synaptic ops/cycle | "
             "ops/cycle per LUT | ops/cycle per DSP |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_dsp = "-" if r["synops_per_cycle_per_dsp"] is None else f"{r['synops_per_cycle_per_dsp']:g}"
        lines.append(f"| {r['pe_mode']} | {r['R']}x{r['C']} | {r['weight_bits']} | {r['T']} | "
                     f"{r['lut']} | {r['ff']} | {r['carry8']} | {r['dsp']} | "
                     f"{r['synops_per_cycle']} | {r['synops_per_cycle_per_lut']:.3f} | {per_dsp} |")
    return "\n".join(lines) + "\n"


def _shapes(text: str):
    out = []
    for part in text.split(","):
        try:
            n, m = (int(x) for x in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad shape {part!r}: expected NxM, e.g. 64x32") from None
        out.append((n, m))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.layer_bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=_shapes, default=list(DEFAULT_SHAPES),
                        help="comma-separated NxM layer shapes (default: %(default)s)")
    parser.add_argument("--timesteps", default="4,8", help="comma-separated T values (default 4,8)")
    parser.add_argument("--pe-modes", default="serial",
                        help="comma-separated pe_modes to run: serial, packed (default serial)")
    parser.add_argument("--synth", action="store_true",
                        help="also synthesize the 8x8 array (8-bit weights, first T) of both "
                             "pe_modes (Yosys, xcup) and write arrays.json / arrays.md")
    parser.add_argument("--no-sim", action="store_true", help="skip the RTL simulation")
    parser.add_argument("--conv", action="store_true",
                        help="run the conv table (CONV_LAYERS) on the default configuration "
                             "instead of the dense shapes; writes conv.json / conv.md")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/bench)")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from spikepack.sim.runner import BUILD_ROOT
    out = args.out or BUILD_ROOT / "bench"
    out.mkdir(parents=True, exist_ok=True)
    timesteps = [int(t) for t in args.timesteps.split(",")]
    modes = [m.strip() for m in args.pe_modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("serial", "packed")]
    if bad:
        parser.error(f"unknown pe_mode(s) {bad}: choose serial and/or packed")
    if args.conv and not args.no_sim:
        rows = []
        for mode in modes:
            rows += measure_conv(conv_bench_config(mode))
        atomic_write_text(out / "conv.json", json.dumps(rows, indent=1))
        table = conv_markdown(rows)
        atomic_write_text(out / "conv.md", "# Conv layers on the layer engine (RTL simulation, "
                                     "Verilator)\n\n" + table)
        print(table)
        print(f"wrote {out / 'conv.json'} and {out / 'conv.md'}")
    elif not args.no_sim:
        rows = []
        plan = [(mode, T) for mode in modes for T in timesteps]
        for mode, T in tqdm(plan, desc="configurations", unit="cfg"):
            config = bench_config(T, pe_mode=mode)
            too_big = [s for s in args.shapes
                       if s[0] > config.max_fan_in or s[1] > config.max_neurons]
            if too_big:
                parser.error(f"shapes {too_big} exceed max_fan_in/max_neurons "
                             f"{config.max_fan_in}/{config.max_neurons}")
            rows += measure(config, args.shapes)
        atomic_write_text(out / "layers.json", json.dumps(rows, indent=1))
        table = markdown(rows)
        atomic_write_text(out / "layers.md", "# Layer engine cycles (RTL simulation, Verilator)\n\n"
                                       + table)
        print(table)
        print(f"wrote {out / 'layers.json'} and {out / 'layers.md'}")
    if args.synth:
        srows = synth_arrays(timesteps=timesteps[0])
        atomic_write_text(out / "arrays.json", json.dumps(srows, indent=1))
        stable = synth_markdown(srows)
        atomic_write_text(out / "arrays.md", "# The bare array, synthesized (Yosys)\n\n" + stable)
        print(stable)
        print(f"wrote {out / 'arrays.json'} and {out / 'arrays.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
