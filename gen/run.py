"""``spikepack run``: inference on the generated RTL (Verilator), through its real AXI ports.

The generated Verilog of ``--hw DIR`` is compiled once (cached), the bitstream is streamed into
the loader port, the input spike words into the input port, and the readout potentials are
collected from the output port, all by cocotbext-axi. Every output is compared with the golden
model of the network that the bitstream itself carries (parsed back from the bytes), so the
check does not depend on the model file. A progress bar follows the simulation.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RunResult", "load_inputs", "run_inference", "add_arguments", "main"]


class InputsError(ValueError):
    """The inputs file is missing, unreadable or does not fit the network."""


@dataclass
class RunResult:
    logits: np.ndarray                 # (S, M) from the RTL
    golden: np.ndarray                 # (S, M) from the golden model
    mismatched_images: list[int]
    cycles_total: int                  # first input beat to last output beat
    cycles_per_image: float            # sustained (total / images)
    latency_cycles: int                # one inference alone (the last-inference cycle counter)
    wall_seconds: float
    registers: dict = field(default_factory=dict)

    @property
    def images(self) -> int:
        return int(self.logits.shape[0])

    @property
    def images_per_second(self) -> float:
        return self.images / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> dict:
        return {"images": self.images, "mismatching_images": len(self.mismatched_images),
                "first_mismatches": self.mismatched_images[:10],
                "cycles_total": self.cycles_total,
                "cycles_per_image": round(self.cycles_per_image, 2),
                "latency_cycles": self.latency_cycles,
                "simulated_images_per_second": round(self.images_per_second, 2),
                "registers": self.registers}


def load_inputs(path: str | Path, fan_in: int, timesteps: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an inputs file: ``.npz`` with ``z`` (S, N0) spike words (and optional ``labels``),
    or ``.npy`` holding ``z``. Checked against the network's fan-in and T."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            z, labels = np.load(path, allow_pickle=False), None
        else:
            with np.load(path, allow_pickle=False) as f:
                if "z" not in f:
                    raise InputsError(f"{path}: no array 'z' (the input spike words) in the file")
                z = f["z"]
                labels = f["labels"] if "labels" in f else None
    except FileNotFoundError:
        raise InputsError(f"{path}: no such inputs file") from None
    except (OSError, ValueError) as e:
        if isinstance(e, InputsError):
            raise
        raise InputsError(f"{path}: not a NumPy .npz/.npy file ({e})") from None
    if not np.issubdtype(z.dtype, np.integer):
        raise InputsError(f"{path}: z must hold integers, not {z.dtype}")
    if z.ndim != 2 or z.shape[1] != fan_in:
        raise InputsError(f"{path}: z has shape {z.shape}; the network expects (images, {fan_in})")
    if z.size and (z.min() < 0 or z.max() >= (1 << timesteps)):
        raise InputsError(f"{path}: z holds values outside 0..{(1 << timesteps) - 1} "
                          f"(T = {timesteps} spike words)")
    if labels is not None and labels.shape != (z.shape[0],):
        raise InputsError(f"{path}: labels has shape {labels.shape}, expected ({z.shape[0]},)")
    return z.astype(np.int64), labels


def run_inference(hw_dir: str | Path, bitstream: bytes, z: np.ndarray, *, work_dir: str | Path,
                  seed: int | None = None, pauses: bool = False, progress: bool = True,
                  simulator: str = "verilator") -> RunResult:
    """Simulate ``z`` (S, N0) through the accelerator in ``hw_dir`` loaded with ``bitstream``
    (``simulator``: "verilator", or "icarus" for Icarus Verilog)."""
    from tqdm import tqdm

    from spikepack.accelerator import TOP_NAME, load_manifest
    from spikepack.firmware.bitstream import parse
    from spikepack.sim import golden, runner

    hw_dir = Path(hw_dir).resolve()            # the simulator runs in its own directory
    manifest, config = load_manifest(hw_dir)
    model = parse(bitstream, config)            # rejects a bad bitstream before simulating
    logits_golden, _ = golden.run_network(z, model.as_layer_tuples(), config.timesteps,
                                          config.tau_shift, neuron=config.neuron)
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "weights.bin").write_bytes(bitstream)
    np.save(work / "inputs.npy", z)
    progress_file = work / "progress.txt"
    results_file = work / "results.json"
    for f in (progress_file, results_file):
        f.unlink(missing_ok=True)

    # a bound on one image's cycles (the layers' compute with generous room for the streams'
    # pauses), so that a hung accelerator fails the run instead of simulating for ever
    from spikepack.hw.layer_engine import expected_cycles
    image_cycles = sum(expected_cycles(config, layer.weights.shape[1], layer.weights.shape[0])
                       for layer in model.layers)
    timeout_cycles = 8 * image_cycles + 20_000
    verilog = (Path(hw_dir) / f"{TOP_NAME}.v").read_text()
    built = runner.build_verilog(TOP_NAME, verilog, simulator=simulator)
    stop = threading.Event()

    def follow():
        bar = tqdm(total=len(z), unit="img", desc="RTL inference", disable=not progress,
                   file=sys.stderr)
        done = 0
        while not stop.wait(0.5):
            try:
                now = int(progress_file.read_text() or 0)
            except (FileNotFoundError, ValueError):
                continue
            bar.update(now - done)
            done = now
        try:
            bar.update(int(progress_file.read_text() or 0) - done)
        except (FileNotFoundError, ValueError):
            pass
        bar.close()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        runner.run(built, "spikepack.sim.benches.inference", seed=seed, name="inference",
                   args={"manifest": str(Path(hw_dir) / "manifest.json"),
                         "bitstream": str(work / "weights.bin"),
                         "inputs": str(work / "inputs.npy"),
                         "results": str(results_file), "progress": str(progress_file),
                         "pauses": pauses, "timeout_cycles": timeout_cycles})
    finally:
        stop.set()
        watcher.join()
    wall = time.perf_counter() - start
    res = json.loads(results_file.read_text())
    logits = np.array(res["logits"], dtype=np.int64).reshape(logits_golden.shape)
    mismatched = [int(i) for i in np.nonzero((logits != logits_golden).any(axis=1))[0]]
    return RunResult(logits=logits, golden=logits_golden, mismatched_images=mismatched,
                     cycles_total=int(res["cycles_total"]),
                     cycles_per_image=res["cycles_total"] / max(1, len(z)),
                     latency_cycles=int(res["latency_cycles"]), wall_seconds=wall,
                     registers=res.get("registers", {}))


def add_arguments(parser) -> None:
    parser.add_argument("--hw", required=True, metavar="DIR",
                        help="directory written by 'spikepack generate --config ... -o DIR'")
    parser.add_argument("--weights", required=True, metavar="FILE.bin",
                        help="bitstream written by 'spikepack pack'")
    parser.add_argument("--inputs", required=True, metavar="FILE",
                        help=".npz with z (images, N0) input spike words and optional labels")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N images")
    parser.add_argument("--pauses", action="store_true",
                        help="random pauses and backpressure on every AXI stream")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                        help="RTL simulator (default verilator; icarus needs iverilog installed)")
    parser.add_argument("--work", default="build/run", help="work directory (default build/run)")
    parser.add_argument("--report", default=None, help="write the report as JSON here")


def main(args) -> int:
    from spikepack.accelerator import ManifestError, load_manifest
    from spikepack.firmware.bitstream import BitstreamError, parse

    try:
        manifest, config = load_manifest(args.hw)
        data = Path(args.weights).read_bytes()
        model = parse(data, config)
        z, labels = load_inputs(args.inputs, model.layers[0].weights.shape[1], config.timesteps)
    except (ManifestError, BitstreamError, InputsError, FileNotFoundError) as e:
        print(f"spikepack run: {e}", file=sys.stderr)
        return 2
    if args.limit is not None:
        z = z[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    result = run_inference(args.hw, data, z, work_dir=args.work, seed=args.seed,
                           pauses=args.pauses, simulator=args.simulator)
    report = result.summary()
    if labels is not None:
        report["rtl_accuracy"] = float((result.logits.argmax(axis=1) == labels).mean())
        report["golden_accuracy"] = float((result.golden.argmax(axis=1) == labels).mean())
    print(json.dumps(report, indent=2))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    if result.mismatched_images:
        print(f"spikepack run: {len(result.mismatched_images)} images differ from the golden "
              f"model (first: {result.mismatched_images[:5]})", file=sys.stderr)
        return 1
    return 0
