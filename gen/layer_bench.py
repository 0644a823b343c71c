"""Layer-engine benchmark: cycles per layer from RTL simulation (Verilator), against the ideal.

    python -m spikepack.layer_bench [--shapes 32x32,64x64,...] [--timesteps 4,8] [--out DIR]

For each configuration (default: the 8x8 array at T = 4 and at T = 8, everything else at its
default, with a weight memory large enough for 256 x 256, see :func:`bench_config`) one Verilator build runs every layer
shape through the same cocotb bench as the RTL tests (``spikepack.sim.benches.layer``: outputs
checked bit-exactly against the golden model, ``o`` never stalled) and records the cycles from
the descriptor handshake to the last output handshake. Writes ``<out>/layers.json`` and
``<out>/layers.md`` (default ``build/bench``) with: shape, cycles, the ideal
ceil(N/R) * ceil(M/C) * T, measured / ideal, the engine's latency formula, and PE utilisation
= useful spike-gated adds N*M*T / (R*C*cycles).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from spikepack.config import HardwareConfig

DEFAULT_SHAPES = ((32, 32), (64, 64), (128, 64), (256, 256))
BUILD_ARGS = ("--output-split", "0")   # see tests/test_layer_rtl.py


def bench_config(timesteps: int, **overrides) -> HardwareConfig:
    """The default configuration at ``timesteps``, with a weight memory that holds a 256 x 256
    layer (plus the bench's 1-neuron readout behind it)."""
    words_per_tile = HardwareConfig(timesteps=timesteps).words_per_tile
    fields = dict(rows=8, cols=8, timesteps=timesteps, weight_depth=2 * 32 * 32 * words_per_tile)
    fields.update(overrides)
    return HardwareConfig(**fields)


def measure(config: HardwareConfig, shapes, *, seed: int = 1) -> list[dict]:
    """Run every (N, M) in ``shapes`` (hidden layers, o never stalled); return one row each."""
    from spikepack.hw.layer_engine import expected_cycles, ideal_cycles
    from spikepack.sim import runner
    from spikepack.sim.benches.layer import LayerBenchTop

    built = runner.build("layer_top", lambda: LayerBenchTop(config=config), build_args=BUILD_ARGS)
    cases = [{"N": n, "M": m, "readout": False, "stall": 0.0} for n, m in shapes]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        runner.run(built, "spikepack.sim.benches.layer", name="layer-bench", seed=seed,
                   args={"config": dataclasses.asdict(config), "cases": cases,
                         "results": str(out)})
        results = json.loads(out.read_text())
    R, C, T = config.rows, config.cols, config.timesteps
    rows = []
    for r in results:
        n, m, cycles = r["N"], r["M"], r["cycles"]
        ideal = ideal_cycles(config, n, m)
        rows.append({
            "R": R, "C": C, "T": T, "tau_shift": config.tau_shift, "neuron": config.neuron,
            "N": n, "M": m, "cycles": cycles, "ideal": ideal,
            "ratio": round(cycles / ideal, 4),
            "formula": expected_cycles(config, n, m),
            "pe_utilisation": round(n * m * T / (R * C * cycles), 4),
        })
    return rows


def markdown(rows) -> str:
    lines = ["| array | T | N x M | cycles | ideal ceil(N/R)ceil(M/C)T | measured/ideal | formula | PE utilisation |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['R']}x{r['C']} | {r['T']} | {r['N']} x {r['M']} | {r['cycles']} | "
                     f"{r['ideal']} | {r['ratio']:.3f} | {r['formula']} | "
                     f"{100 * r['pe_utilisation']:.1f}% |")
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
    parser.add_argument("--out", type=Path, default=None, help="output folder (default build/bench)")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from spikepack.sim.runner import BUILD_ROOT
    out = args.out or BUILD_ROOT / "bench"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for T in tqdm([int(t) for t in args.timesteps.split(",")], desc="configurations", unit="cfg"):
        config = bench_config(T)
        too_big = [s for s in args.shapes if s[0] > config.max_fan_in or s[1] > config.max_neurons]
        if too_big:
            parser.error(f"shapes {too_big} exceed max_fan_in/max_neurons "
                         f"{config.max_fan_in}/{config.max_neurons}")
        rows += measure(config, args.shapes)
    (out / "layers.json").write_text(json.dumps(rows, indent=1))
    table = markdown(rows)
    (out / "layers.md").write_text("# Layer engine cycles (RTL simulation, Verilator)\n\n" + table)
    print(table)
    print(f"wrote {out / 'layers.json'} and {out / 'layers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
