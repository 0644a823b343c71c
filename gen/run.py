"""``spikepack run``: inference on the generated RTL (Verilator), through its real AXI ports.

The generated Verilog of ``--hw DIR`` is compiled once (cached per configuration), the bitstream
is streamed into the loader port, the input spike words into the input port (a conv network's
(C, H, W) images in storage order, ``firmware.layout.to_storage``), and the readout potentials
are collected from the output port. Two engines run the same protocol:

* ``native`` (default): a C++ Verilator testbench with no Python per cycle
  (:mod:`spikepack.sim.native`), for bulk inference;
* ``cocotb``: the cocotb bench :mod:`spikepack.sim.benches.inference` with cocotbext-axi, the
  framework of the protocol and regression benches (also under Icarus Verilog).

Every output is compared with the golden model of the network that the bitstream itself carries
(parsed back from the bytes), so the check does not depend on the model file. A bitstream whose
first layer ``bitstream.pack`` folded (docs/bitstream.md, "The first layer") carries the folded
K_h x 1 layer, so its network reads the folded map: give the model it was packed from
(``--model``, ``run_inference(model=...)``) to run the model's own images; they are then folded
for the hardware (``firmware.layout.hardware_input``) and the model's golden model is the
reference. Each run works in
its own fresh folder under ``--work``, so concurrent runs never read each other's files; the
compiled simulators are shared through the build cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RunResult", "RunError", "InputsError", "load_inputs", "check_verilog",
           "run_inference", "input_fold_of", "add_arguments", "main", "ENGINES"]

ENGINES = ("native", "cocotb")


class InputsError(ValueError):
    """The inputs file is missing, unreadable or does not fit the network."""


class RunError(ValueError):
    """The run cannot start: the hardware folder is inconsistent or the request is invalid."""


@dataclass
class RunResult:
    logits: np.ndarray                 # (S, M) from the RTL
    golden: np.ndarray                 # (S, M) from the golden model
    mismatched_images: list[int]
    cycles_total: int                  # first input beat to last output beat
    cycles_per_image: float            # sustained (total / images)
    latency_cycles: int                # one inference alone (the last-inference cycle counter)
    wall_seconds: float                # the simulation, start to end (the compile excluded)
    registers: dict = field(default_factory=dict)
    engine: str = "native"
    cycles_simulated: int = 0          # every simulated cycle: reset, load, registers, images
    sim_seconds: float = 0.0           # the simulator's own time for them (no process start-up)
    bad_frames: list[int] = field(default_factory=list)   # images whose frame had a wrong length

    @property
    def images(self) -> int:
        return int(self.logits.shape[0])

    @property
    def images_per_second(self) -> float:
        return self.images / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def cycles_per_second(self) -> float:
        return self.cycles_simulated / self.sim_seconds if self.sim_seconds else 0.0

    def summary(self) -> dict:
        return {"images": self.images, "mismatching_images": len(self.mismatched_images),
                "first_mismatches": self.mismatched_images[:10],
                "cycles_total": self.cycles_total,
                "cycles_per_image": round(self.cycles_per_image, 2),
                "latency_cycles": self.latency_cycles,
                "simulated_images_per_second": round(self.images_per_second, 2),
                "engine": self.engine,
                "simulated_cycles": self.cycles_simulated,
                "simulated_cycles_per_second": round(self.cycles_per_second),
                "registers": self.registers}


def load_inputs(path: str | Path, fan_in, timesteps: int,
                classes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an inputs file: ``.npz`` with ``z`` spike words (and optional ``labels``), or
    ``.npy`` holding ``z``. ``fan_in`` is the network's input: N0 (or ``(N0,)``), ``z`` then
    (S, N0); or a map shape (C, H, W) for a conv network, ``z`` then (S, C, H, W) or (S,
    C*H*W) in (c, y, x) order, returned as (S, C, H, W). Checked against that shape, T and
    (labels) its ``classes`` readout neurons; at least one image."""
    path = Path(path)
    shape = (int(fan_in),) if isinstance(fan_in, (int, np.integer)) else tuple(map(int, fan_in))
    try:
        from spikepack.fileio import read_bytes
        data = io.BytesIO(read_bytes(path))     # a FIFO read that a signal interrupts
        # the content decides, not the suffix: an archive named .npy or a bare array named
        # .npz is read as what it is
        loaded = np.load(data, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded as f:
                if "z" not in f:
                    raise InputsError(f"{path}: no array 'z' (the input spike words) in the file")
                z = f["z"]
                labels = f["labels"] if "labels" in f else None
        else:
            z, labels = loaded, None
    except FileNotFoundError:
        raise InputsError(f"{path}: no such inputs file") from None
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, InputsError):
            raise
        raise InputsError(f"{path}: not a NumPy .npz/.npy file ({e})") from None
    if not np.issubdtype(z.dtype, np.integer):
        raise InputsError(f"{path}: z must hold integers, not {z.dtype}")
    n0 = int(np.prod(shape))
    if len(shape) == 3 and z.ndim == 2 and z.shape[1] == n0:
        z = z.reshape((len(z),) + shape)         # a map flattened in (c, y, x) order
    if z.ndim != len(shape) + 1 or tuple(z.shape[1:]) != shape:
        want = ", ".join(map(str, shape))
        also = f" or (images, {n0})" if len(shape) == 3 else ""
        raise InputsError(f"{path}: z has shape {z.shape}; the network expects (images, "
                          f"{want}){also}")
    if z.shape[0] == 0:
        raise InputsError(f"{path}: z holds no images")
    if z.min() < 0 or z.max() >= (1 << timesteps):
        raise InputsError(f"{path}: z holds values outside 0..{(1 << timesteps) - 1} "
                          f"(T = {timesteps} spike words)")
    if labels is not None:
        if labels.shape != (z.shape[0],):
            raise InputsError(f"{path}: labels has shape {labels.shape}, expected ({z.shape[0]},)")
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputsError(f"{path}: labels must be integers (class indices), not {labels.dtype}")
        if classes is not None and labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise InputsError(f"{path}: labels hold values outside 0..{classes - 1} (the network "
                              f"has {classes} readout neurons)")
    return z.astype(np.int64), labels


def check_verilog(hw_dir: Path, manifest: dict) -> Path:
    """The Verilog file of ``hw_dir``, checked to be the one the manifest was generated with
    (its sha256; a manifest without one: the Verilog must hold the manifest's signature)."""
    from spikepack.accelerator import TOP_NAME
    path = hw_dir / f"{TOP_NAME}.v"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path}: no Verilog (run 'spikepack generate --config ... -o "
                       f"{hw_dir}')") from None
    except OSError as e:
        raise RunError(f"{path}: cannot read the Verilog ({e.strerror})") from None
    stored = manifest.get("verilog_sha256")
    if stored is not None:
        if hashlib.sha256(data).hexdigest() != stored:
            raise RunError(f"{path} is not the Verilog its manifest was generated with (sha256 "
                           f"differs): regenerate {hw_dir} with 'spikepack generate'")
    else:
        signature = int(manifest["signature"])
        if not re.search(rf"32'(d{signature}|h0*{signature:x})\b".encode(), data, re.I):
            raise RunError(f"{path} does not carry the manifest's signature "
                           f"0x{signature:08x}: the Verilog and the manifest come from different "
                           f"configurations")
    return path


def _frames_to_logits(frames: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """The RTL's frames (one list of potentials an image) as an (S, M) array, and the images
    whose frame is missing or has the wrong length (their row is left 0; counted mismatching)."""
    logits = np.zeros(shape, dtype=np.int64)
    bad = []
    for i in range(shape[0]):
        frame = frames[i] if i < len(frames) else None
        if frame is None or len(frame) != shape[1]:
            bad.append(i)
        else:
            logits[i] = frame
    return logits, bad


def _timeout_cycles(config, model) -> int:
    # a bound on one image's cycles (the layers' compute with generous room for the streams'
    # pauses), so that a hung accelerator fails the run instead of simulating for ever; a conv
    # layer counted as its patch layer at every output position (pooled or not)
    from spikepack.firmware.layout import storage_words
    from spikepack.hw.layer_engine import expected_cycles
    R = config.rows
    image_cycles = 0
    for shape, layer in zip(model.shapes, model.layers):
        if layer.kind == "conv":
            patch = layer.kernel[0] * layer.kernel[1] * -(-shape[0] // R) * R
            _, h, w = layer.out_shape(shape)
            image_cycles += h * w * expected_cycles(config, patch, layer.out_channels)
        elif layer.kind == "dense":
            n = storage_words(shape, R) if len(shape) == 3 else layer.fan_in
            image_cycles += expected_cycles(config, n, layer.neurons)
    return 8 * image_cycles + 20_000


def input_fold_of(model, config, bitstream: bytes):
    """The :class:`~spikepack.firmware.layout.InputFold` with which ``bitstream`` was packed
    from ``model`` for ``config`` (``None``: its first layer is not folded), or
    :class:`RunError` when the bitstream is not ``bitstream.pack(model, config)`` with or
    without folding."""
    from spikepack.firmware.bitstream import BitstreamError, pack
    try:
        if pack(model, config) == bytes(bitstream):
            return model.input_fold(config)
        if pack(model, config, fold=False) == bytes(bitstream):
            return None
    except BitstreamError as e:
        raise RunError(f"the model does not fit this hardware: {e}") from None
    raise RunError("the bitstream is not the packing of the given model for this hardware "
                   "('spikepack pack' the model for it, or run without the model)")


def run_inference(hw_dir: str | Path, bitstream: bytes, z: np.ndarray, *, work_dir: str | Path,
                  seed: int | None = None, pauses: bool = False, progress: bool = True,
                  simulator: str = "verilator", engine: str = "native",
                  keep_work: bool = False, model=None) -> RunResult:
    """Simulate ``z`` (S, N0), or (S, C, H, W) images of a conv network (sent in storage
    order), through the accelerator in ``hw_dir`` loaded with ``bitstream``.

    Without ``model``, ``z`` is the input of the network the bitstream carries (a folded
    first layer's folded maps) and that network's golden model is the reference. With
    ``model`` (the :class:`~spikepack.firmware.model.SpikePackModel` the bitstream was packed
    from, :func:`input_fold_of`), ``z`` is the model's input: folded for the hardware when the
    bitstream's first layer is (``firmware.layout.hardware_input``), checked against the
    model's own golden model.

    ``engine``: "native" (C++ harness) or "cocotb" (``simulator`` "verilator", or "icarus" for
    Icarus Verilog). The run works in a fresh folder inside ``work_dir``, removed afterwards
    unless ``keep_work`` or the simulation failed. Raises :class:`RunError` before simulating
    when the inputs or the hardware folder are inconsistent.
    """
    from spikepack.accelerator import TOP_NAME, load_manifest
    from spikepack.firmware.bitstream import parse
    from spikepack.sim import runner

    if engine not in ENGINES:
        raise RunError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "native" and simulator != "verilator":
        raise RunError(f"the native engine is Verilator only; use --engine cocotb for {simulator}")
    z = np.asarray(z)
    if z.ndim not in (2, 4) or z.shape[0] == 0:
        raise RunError(f"no images to run (inputs of shape {z.shape})")
    hw_dir = Path(hw_dir).resolve()            # the simulators run in their own directories
    manifest, config = load_manifest(hw_dir)
    verilog_path = check_verilog(hw_dir, manifest)
    carried = parse(bitstream, config)          # rejects a bad bitstream before simulating
    fold = None if model is None else input_fold_of(model, config, bitstream)
    reference = carried if model is None else model
    shape = tuple(reference.input_shape)
    if len(shape) == 3 and z.ndim == 2 and z.shape[1] == int(np.prod(shape)):
        z = z.reshape((len(z),) + shape)        # a map flattened in (c, y, x) order
    if tuple(z.shape[1:]) != shape:
        raise RunError(f"inputs of shape {z.shape} do not fit the network's input "
                       f"{' x '.join(map(str, shape))}{_fold_hint(carried, model)}")
    # the golden model of the model (or of the network the bitstream carries; conv and pooling
    # layers included); the hardware reads the folded images of a folded first layer
    logits_golden, _ = reference.forward(z)
    from spikepack.firmware.layout import hardware_input
    z = hardware_input(z, fold)
    model = carried
    seed = runner.bench_seed() if seed is None else int(seed)
    timeout_cycles = _timeout_cycles(config, model)
    verilog = verilog_path.read_text()
    root = Path(work_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    ok = False
    try:
        if engine == "native":
            result = _run_native(verilog, manifest, bitstream, z, work, seed, pauses, progress,
                                 timeout_cycles)
        else:
            result = _run_cocotb(verilog, TOP_NAME, hw_dir, bitstream, z, work, seed, pauses,
                                 progress, simulator, timeout_cycles)
        ok = True
    finally:
        if ok and not keep_work:
            shutil.rmtree(work, ignore_errors=True)
    logits, bad = _frames_to_logits(result["frames"], logits_golden.shape)
    mismatched = sorted(set(bad) | {int(i) for i in
                                    np.nonzero((logits != logits_golden).any(axis=1))[0]})
    return RunResult(logits=logits, golden=logits_golden, mismatched_images=mismatched,
                     cycles_total=int(result["cycles_total"]),
                     cycles_per_image=result["cycles_total"] / len(z),
                     latency_cycles=int(result["latency_cycles"]),
                     wall_seconds=result["wall_seconds"], registers=result.get("registers", {}),
                     engine=engine, cycles_simulated=int(result.get("cycles_simulated", 0)),
                     sim_seconds=float(result.get("sim_wall_seconds", 0.0)), bad_frames=bad)


def _fold_hint(carried, model) -> str:
    """A hint for inputs that do not fit a bitstream whose first layer may be folded."""
    first = carried.layers[0]
    if model is None and first.kind == "conv" and first.kernel[1] == 1:
        return (" (if the bitstream's first layer was folded by 'spikepack pack', it reads the "
                "folded map: give --model, the model it was packed from, to run the model's "
                "images)")
    return ""


def _run_native(verilog, manifest, bitstream, z, work, seed, pauses, progress, timeout_cycles):
    from tqdm import tqdm

    from spikepack.sim import native

    built = native.build_native(verilog, progress=progress)
    print(f"[spikepack] native inference: seed {seed}, pauses {'on' if pauses else 'off'}",
          file=sys.stderr, flush=True)
    bars: dict = {}

    def on_progress(phase, done, total):
        if not progress:
            return
        if phase == "load":
            if "load" not in bars:
                bars["load"] = tqdm(total=total, unit="word", desc="bitstream load",
                                    file=sys.stderr)
            bar = bars["load"]
            bar.update(done - bar.n)
        elif phase == "loaded":
            if "load" in bars:
                bars["load"].update(bars["load"].total - bars["load"].n)
                bars["load"].close()
        elif phase == "images":
            if "images" not in bars:
                bars["images"] = tqdm(total=total, unit="img", desc="RTL inference",
                                      file=sys.stderr)
            bar = bars["images"]
            bar.update(done - bar.n)

    start = time.perf_counter()
    try:
        result = native.run_native(built, manifest=manifest, bitstream=bitstream, z=z, work=work,
                                   seed=seed, pauses=pauses, timeout_cycles=timeout_cycles,
                                   on_progress=on_progress)
    finally:
        for bar in bars.values():
            bar.close()
    result["wall_seconds"] = time.perf_counter() - start
    return result


def _run_cocotb(verilog, top_name, hw_dir, bitstream, z, work, seed, pauses, progress, simulator,
                timeout_cycles):
    from tqdm import tqdm

    from spikepack.sim import native, runner

    (work / "weights.bin").write_bytes(bitstream)
    np.save(work / "inputs.npy", z)
    progress_file = work / "progress.txt"
    results_file = work / "results.json"
    with native.elapsed(f"building the {simulator} model for cocotb (cached once per "
                        f"configuration)", enabled=progress):
        built = runner.build_verilog(top_name, verilog, simulator=simulator)
    stop = threading.Event()

    def follow():
        bar = tqdm(total=len(z), unit="img", desc="RTL inference (load, then images)",
                   disable=not progress, file=sys.stderr)
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
    # a label of its own: concurrent runs with the same seed get separate simulator folders
    label = f"inference-{work.name}"
    try:
        test_dir = runner.run(built, "spikepack.sim.benches.inference", seed=seed, name=label,
                              args={"manifest": str(hw_dir / "manifest.json"),
                                    "bitstream": str(work / "weights.bin"),
                                    "inputs": str(work / "inputs.npy"),
                                    "results": str(results_file), "progress": str(progress_file),
                                    "pauses": pauses, "timeout_cycles": timeout_cycles})
    finally:
        stop.set()
        watcher.join()
    wall = time.perf_counter() - start
    res = json.loads(results_file.read_text())
    sim_ns, sim_seconds = _cocotb_times(test_dir / "results.xml")
    shutil.rmtree(test_dir, ignore_errors=True)
    return {"frames": res["logits"], "cycles_total": res["cycles_total"],
            "latency_cycles": res["latency_cycles"], "registers": res.get("registers", {}),
            "wall_seconds": wall, "cycles_simulated": int(sim_ns // 10),
            "sim_wall_seconds": sim_seconds}


def _cocotb_times(results_xml: Path) -> tuple[float, float]:
    """(simulated ns, real seconds) of the cocotb test, from its results file."""
    try:
        case = ElementTree.parse(results_xml).getroot().find(".//testcase")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        return float(props["sim_time_duration"]), float(case.get("time"))
    except (OSError, ElementTree.ParseError, AttributeError, KeyError, TypeError, ValueError):
        return 0.0, 0.0


def add_arguments(parser) -> None:
    import argparse
    parser.add_argument("--hw", required=True, metavar="DIR",
                        help="directory written by 'spikepack generate --config ... -o DIR'")
    parser.add_argument("--weights", required=True, metavar="FILE.bin",
                        help="bitstream written by 'spikepack pack'")
    parser.add_argument("--inputs", required=True, metavar="FILE",
                        help=".npz with z (images, N0) input spike words (a conv network: "
                             "(images, C, H, W)) and optional labels (class indices), or .npy "
                             "holding z")
    parser.add_argument("--model", default=None, metavar="MODEL.npz",
                        help="the model the bitstream was packed from: the inputs are its "
                             "images (folded for the hardware when 'spikepack pack' folded the "
                             "first layer) and its golden model is the reference (default: the "
                             "network the bitstream carries, reading its own input)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="run only the first N images (N >= 1)")
    parser.add_argument("--engine", choices=ENGINES, default="native",
                        help="native: C++ Verilator testbench, no Python per cycle (default); "
                             "cocotb: the cocotb bench with cocotbext-axi (slower)")
    parser.add_argument("--pauses", action=argparse.BooleanOptionalAction, default=False,
                        help="random pauses on the load and input streams and backpressure on "
                             "the output stream, drawn from --seed (default: none, --no-pauses)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random pauses (default: a fresh one, printed; "
                             "SPIKEPACK_SEED also sets it)")
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                        help="RTL simulator of the cocotb engine (default verilator; icarus "
                             "needs iverilog installed)")
    parser.add_argument("--work", default="build/run", metavar="DIR",
                        help="folder for the runs' files; each run uses a fresh subfolder, "
                             "removed after a successful run (default build/run)")
    parser.add_argument("--report", default=None, metavar="FILE.json",
                        help="write the report as JSON here (written atomically)")


def _cocotb_reason(message: str) -> str:
    """One line from a failed cocotb run's message: the bench's own assertion when the log
    excerpt holds one, and the first line (test, seed, log file) otherwise."""
    lines = message.splitlines()
    for line in lines[1:]:
        found = re.search(r"(AssertionError|TimeoutError): (.+)", line)
        if found:
            return f"{found.group(2).strip()} ({lines[0]})"
    return lines[0] if lines else "the cocotb bench failed"


def _fail(message: str, code: int = 2) -> int:
    print(f"spikepack run: {message}", file=sys.stderr)
    return code


def main(args) -> int:
    from spikepack.accelerator import ManifestError, load_manifest
    from spikepack.fileio import atomic_write_text, read_bytes
    from spikepack.firmware.bitstream import BitstreamError, parse
    from spikepack.firmware.model import ModelFormatError, SpikePackModel
    from spikepack.sim.native import HardwareFault, NativeError
    from spikepack.sim.toolchain import ToolchainError

    if args.engine == "native" and args.simulator != "verilator":
        return _fail(f"--simulator {args.simulator} needs --engine cocotb (the native engine "
                     f"is Verilator only)")
    if args.limit is not None and args.limit < 1:
        return _fail(f"--limit must be at least 1, not {args.limit}")
    try:
        manifest, config = load_manifest(args.hw)
        check_verilog(Path(args.hw), manifest)
        try:
            data = read_bytes(args.weights)
        except OSError as e:
            raise RunError(f"{args.weights}: cannot read the bitstream ({e.strerror})") from None
        model = parse(data, config)
        given = None
        if args.model is not None:
            try:
                given = SpikePackModel.load(args.model)
            except OSError as e:
                raise RunError(f"{args.model}: cannot read the model "
                               f"({e.strerror or e})") from None
            input_fold_of(given, config, data)  # RunError: not the model's bitstream
            model = given
        try:
            z, labels = load_inputs(args.inputs, model.input_shape, config.timesteps,
                                    classes=model.classes)
        except InputsError as e:
            hint = _fold_hint(model, None) if given is None else ""
            raise InputsError(f"{e}{hint}") from None
    except (ManifestError, BitstreamError, InputsError, RunError, ModelFormatError) as e:
        return _fail(str(e))
    if args.limit is not None:
        z = z[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    try:
        result = run_inference(args.hw, data, z, work_dir=args.work, seed=args.seed,
                               pauses=args.pauses, simulator=args.simulator, engine=args.engine,
                               model=given)
    except (RunError, ManifestError, BitstreamError) as e:
        return _fail(str(e))
    except (NativeError, ToolchainError) as e:
        return _fail(str(e))
    except HardwareFault as e:
        return _fail(f"the hardware failed: {e}", 1)
    except AssertionError as e:                 # the cocotb bench's checks (hang, load error)
        return _fail(f"the hardware failed: {_cocotb_reason(str(e))}", 1)
    except OSError as e:
        return _fail(f"{e.filename or ''}: {e.strerror or e}")
    report = result.summary()
    if labels is not None:
        report["rtl_accuracy"] = float((result.logits.argmax(axis=1) == labels).mean())
        report["golden_accuracy"] = float((result.golden.argmax(axis=1) == labels).mean())
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        try:
            Path(args.report).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.report, text + "\n")
        except OSError as e:
            return _fail(f"{args.report}: cannot write the report ({e.strerror})")
    if result.mismatched_images:
        return _fail(f"{len(result.mismatched_images)} images differ from the golden model "
                     f"(first: {result.mismatched_images[:5]})", 1)
    return 0
