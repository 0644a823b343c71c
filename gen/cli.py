"""The ``spikepack`` command.

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and
``main(args) -> int``; it is imported only when used. Errors are reported here, the same way for
every subcommand: a subcommand raises (or lets through) an exception and :func:`main` turns it
into one line ``spikepack <command>: <problem>`` on stderr and the exit status below, never a
traceback (``SPIKEPACK_DEBUG=1`` shows it, for developers).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys

from spikepack.fileio import os_error_reason

__all__ = ["COMMANDS", "CommandError", "EXIT_OK", "EXIT_CHECK_FAILED", "EXIT_USAGE",
           "EXIT_INTERNAL", "EXIT_INTERRUPTED", "build_parser", "main"]

#: Exit status of every subcommand.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1      # the hardware check itself failed (RTL differs from the golden model)
EXIT_USAGE = 2             # bad usage or input (as argparse): bad option, file, config, model...
EXIT_INTERNAL = 70         # a bug in spikepack (sysexits EX_SOFTWARE)
EXIT_INTERRUPTED = 130     # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143      # SIGTERM (128 + SIGTERM)

DESCRIPTION = """\
Generate FPGA accelerators for SpikePack spiking neural networks, pack trained
networks into weight bitstreams, and check the generated RTL bit-exact against
the golden model. 'spikepack COMMAND --help' describes each command."""

EPILOG = f"""exit status (every command):
  {EXIT_OK}    success
  {EXIT_CHECK_FAILED}    the hardware check failed (the RTL differs from the golden model)
  {EXIT_USAGE}    bad usage or input (one line on stderr names the problem)
  {EXIT_INTERNAL}   internal error (a bug; SPIKEPACK_DEBUG=1 shows the traceback)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C; {EXIT_TERMINATED} for SIGTERM)"""

#: subcommand -> (module, one-line help)
COMMANDS = {
    "convert": ("spikepack.firmware.convert", "convert a trained ReLU network (the digits MLP, or --onnx MODEL) to a SpikePack model file"),
    "generate": ("spikepack.generate", "write the Verilog (and manifest) of a unit or of the accelerator"),
    "pack": ("spikepack.firmware.pack_cli", "pack a model file into a weight bitstream for a generated accelerator"),
    "inspect": ("spikepack.firmware.inspect_cli", "print the header and sections of a weight bitstream"),
    "run": ("spikepack.run", "simulate inference on the generated RTL through its AXI interfaces"),
    "package": ("spikepack.package", "package the accelerator as a Vivado IP: wrapper, IP-XACT, Tcl, C header, FuseSoC core"),
    "train": ("spikepack.train", "train the demo CNN on MNIST and export it to ONNX (needs the train extra)"),
}

#: Exit status of the project's own exceptions, by "module.Class" (matched along the MRO, so
#: subclasses count, and without importing anything: an exception's class is loaded when it is
#: raised). Their messages already name the file and the rule, or the failed check.
KNOWN_ERRORS = {
    "spikepack.config.ConfigError": EXIT_USAGE,
    "spikepack.accelerator.ManifestError": EXIT_USAGE,
    "spikepack.firmware.bitstream.BitstreamError": EXIT_USAGE,
    "spikepack.firmware.model.ModelFormatError": EXIT_USAGE,
    "spikepack.firmware.graph.GraphError": EXIT_USAGE,
    "spikepack.firmware.layout.LayoutError": EXIT_USAGE,
    "spikepack.firmware.onnx_import.OnnxImportError": EXIT_USAGE,
    "spikepack.run.InputsError": EXIT_USAGE,
    "spikepack.sim.golden.WidthError": EXIT_USAGE,
    "spikepack.sim.toolchain.ToolchainError": EXIT_USAGE,
    "spikepack.sim.runner.BuildPathError": EXIT_USAGE,
    "spikepack.sim.runner.BuildError": EXIT_CHECK_FAILED,   # the generated RTL did not compile
    "spikepack.sim.runner.SimulationFailed": EXIT_CHECK_FAILED,   # a bench failed or hung
}


class CommandError(Exception):
    """A problem the user can fix, reported by :func:`main` as ``spikepack <command>: <message>``
    with exit status ``code``."""

    def __init__(self, message: str, *, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported in one line like every other error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("spikepack-hw")
    except PackageNotFoundError:          # running from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spikepack", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="'spikepack COMMAND --help' describes its options")
    for name, (module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def _known_error_code(error: BaseException) -> int | None:
    for cls in type(error).__mro__:
        code = KNOWN_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if code is not None:
            return code
    return None


def _is_bad_zip(error: BaseException) -> bool:
    zipfile = sys.modules.get("zipfile")
    return zipfile is not None and isinstance(error, zipfile.BadZipFile)


def _report(prefix: str, error: BaseException) -> int:
    """Print ``error`` as one line after ``prefix``; return the exit status."""
    if isinstance(error, CommandError):
        code, text = error.code, str(error)
    elif isinstance(error, OSError):
        code, text = EXIT_USAGE, os_error_reason(error)
    elif (code := _known_error_code(error)) is not None:
        text = str(error)
    elif isinstance(error, EOFError):      # a reader ran out of data: an empty or cut-off file
        code, text = EXIT_USAGE, f"an input file is empty or cut off ({error})"
    elif _is_bad_zip(error):               # numpy's .npz reader lets this through
        code, text = EXIT_USAGE, f"an input file is not a valid .npz/zip archive ({error})"
    else:
        # a message may carry a whole traceback of a tool (amaranth's Yosys): its last line
        # says what happened
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        code = EXIT_INTERNAL
        text = (f"internal error, a bug in spikepack or a tool it runs ({type(error).__name__}: "
                f"{lines[-1] if lines else ''}); SPIKEPACK_DEBUG=1 shows the traceback")
    # one line: a multi-line message keeps its first line here; the rest follows indented
    first, *rest = (text or type(error).__name__).splitlines() or [""]
    print(f"{prefix}: {first}", file=sys.stderr)
    for line in rest:
        print(f"  {line}", file=sys.stderr)
    return code


class _Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that temporary files and locks are cleaned up."""


@contextlib.contextmanager
def _sigterm_raises():
    def handler(signum, frame):
        raise _Terminated()
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:                       # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_for_the_main_thread():
    """Block SIGINT and SIGTERM while the command's libraries load. Threads that a library
    starts at import (OpenBLAS's pool under numpy) inherit the mask of the importing thread, so
    the kernel can then deliver those signals only to the main thread, where Python runs its
    handlers. Delivered to a pool thread, a signal left the main thread asleep in a blocking
    read (a FIFO, a pipe) for good. A signal that arrives meanwhile waits and is delivered when
    the block ends."""
    wanted = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    except (AttributeError, OSError):                   # no POSIX threads: nothing to steer
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    debug = os.environ.get("SPIKEPACK_DEBUG", "0") not in ("", "0")
    prefix = "spikepack"
    try:
        with _sigterm_raises():
            with _signals_for_the_main_thread():
                import numpy  # noqa: F401  (every command needs it; its thread pool starts here)
                parser = build_parser()                # imports the commands' modules
            try:
                args = parser.parse_args(argv)
            except SystemExit as e:                       # --help, --version, usage errors
                return e.code if isinstance(e.code, int) else EXIT_USAGE
            prefix = f"spikepack {args.command}"
            with _signals_for_the_main_thread():
                module = importlib.import_module(args._module)
            return int(module.main(args) or 0)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"{prefix}: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        # the reader of stdout went away (spikepack inspect X | head): not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:
        if debug:
            raise
        return _report(prefix, e)


if __name__ == "__main__":
    sys.exit(main())
