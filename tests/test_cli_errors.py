"""The command line's error path, through the real CLI: every bad input ends in one line
``spikepack <command>: <problem>`` naming the problem, exit status 2 (bad usage or input), no
traceback, and nothing half-written (no output, no temporary file); Ctrl-C says "interrupted" and
exits 130; an interrupted Verilator build is never reused as complete.

Most cases run in-process (``spikepack.cli.main`` with capsys); a few run ``python -m spikepack``
as a subprocess to prove that no traceback reaches stderr and that real signals are handled.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spikepack import cli, fileio
from spikepack.accelerator import generate_accelerator
from spikepack.config import HardwareConfig
from spikepack.firmware.bitstream import pack
from spikepack.firmware.model import Layer, SpikePackModel
from spikepack.sim.benches.loader import random_layers, small_config

CONFIG = small_config()
TOML = "".join(f"{k} = {json.dumps(v)}\n" for k, v in CONFIG.as_dict().items())
#: the same network size at another T: a model for CONFIG does not fit it
OTHER = HardwareConfig(**{**CONFIG.as_dict(), "timesteps": 3})
ENV = {k: v for k, v in os.environ.items() if k != "SPIKEPACK_DEBUG"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A generated small accelerator, a model for it, its bitstream, and bad files."""
    d = tmp_path_factory.mktemp("cli-errors")
    (d / "small.toml").write_text(TOML)
    (d / "other.toml").write_text(TOML.replace("timesteps = 2", "timesteps = 3"))
    generate_accelerator(CONFIG, d / "hw")
    layers = random_layers(np.random.default_rng(12), CONFIG)
    model = SpikePackModel(timesteps=CONFIG.timesteps, tau_shift=CONFIG.tau_shift,
                           weight_bits=CONFIG.weight_bits, neuron=CONFIG.neuron,
                           layers=tuple(Layer(weights=w, bias=b, threshold=t)
                                        for w, b, t in layers))
    model.save(d / "model.npz")
    data = pack(model, CONFIG)
    (d / "w.bin").write_bytes(data)
    (d / "truncated.bin").write_bytes(data[:100])
    (d / "garbage.bin").write_bytes(np.random.default_rng(3).bytes(500))
    (d / "empty.bin").write_bytes(b"")
    (d / "truncated.npz").write_bytes((d / "model.npz").read_bytes()[:300])
    (d / "adir").mkdir()
    (d / "afile").write_text("not a folder\n")
    (d / "bad_manifest.json").write_text('{"format": "something-else"}\n')
    return d


def call(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, command: str, *needles) -> str:
    """stderr is one line, ``spikepack <command>: ...``, holding every needle; no traceback."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"spikepack {command}: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, err)
    return lines[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- generate --config: every invalid configuration --------------------------------------------

BAD_CONFIGS = {
    "toml-syntax": ("rows = \n", "not valid TOML"),
    "unknown-key": ("rowz = 8\n", "unknown field(s) rowz"),
    "wrong-type": ('rows = "8"\n', "rows must be an integer, not str"),
    "rows-6": ("rows = 6\n", "rows must be a power of two, not 6"),
    "T-17": ("timesteps = 17\n", "timesteps must be between 1 and 16, not 17"),
    "tau_shift-4": ("tau_shift = 4\n", "tau_shift must be one of (1, 2, 3), not 4"),
    "tau_shift-float": ("tau_shift = 1.0\n", "tau_shift must be one of (1, 2, 3), not 1.0"),
    "weight_bits-17": ("weight_bits = 17\n", "weight_bits must be between 2 and 16, not 17"),
    "wider-than-62": ("timesteps = 16\ntau_shift = 3\nthreshold_bits = 32\n", "the limit is 62"),
    "lif-packed": ('neuron = "lif"\npe_mode = "packed"\n', "LIF cannot use"),
    "mixed-layout": ("rows = 4\n[hardware]\ncols = 8\n",
                     "rows at top level and a [hardware] table"),
    "hardware-not-table": ("hardware = 3\n", "'hardware' must be a table"),
    "binary": (bytes(range(256)) * 4, "not a TOML text file"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_generate_names_a_bad_config_and_writes_nothing(name, tmp_path, capsys):
    text, needle = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.toml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    out = tmp_path / "out"
    code, stdout, err = call(["generate", "--config", path, "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", path, needle)
    assert not out.exists() and not temporaries(tmp_path)


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_generate_names_a_config_that_is_not_a_file(what, tmp_path, capsys):
    path = tmp_path / "cfg.toml"
    if what == "directory":
        path.mkdir()
    code, _, err = call(["generate", "--config", path, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert_one_line(err, "generate", path,
                    "no such config file" if what == "missing" else "is a directory")
    assert not (tmp_path / "out").exists()


def test_bad_config_through_python_m_has_no_traceback(tmp_path):
    (tmp_path / "bad.toml").write_text("rows = 4\n[hardware]\ncols = 8\n")
    proc = subprocess.run([sys.executable, "-m", "spikepack", "generate", "--config",
                           str(tmp_path / "bad.toml"), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"spikepack generate: {tmp_path / 'bad.toml'}: field(s) rows")
    assert not (tmp_path / "out").exists()


# --- generate: output paths and OS errors -------------------------------------------------------

def test_generate_output_path_is_a_file(files, tmp_path, capsys):
    out = tmp_path / "afile"
    out.write_text("keep me\n")
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"cannot write {out}: is a file, not a directory")
    assert out.read_text() == "keep me\n" and not temporaries(tmp_path)


def test_generate_output_path_under_a_file(files, tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me\n")
    out = tmp_path / "afile" / "sub" / "hw"
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"{tmp_path / 'afile'} is a file, not a directory")


def test_generate_directory_where_a_file_belongs(files, tmp_path, capsys):
    out = tmp_path / "hw"
    (out / "spikepack_top.v").mkdir(parents=True)
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"cannot write {out / 'spikepack_top.v'}: is a directory")
    # all or nothing: neither files.f nor manifest.json was written beside it
    assert sorted(p.name for p in out.iterdir()) == ["spikepack_top.v"]


def _fail_write_halfway(error_number, fail_on=None):
    """A file write that stores half its data, then fails like a full disk (``fail_on``: only
    for a file whose data contains that text)."""
    real = fileio._write

    def write(handle, data):
        if fail_on is None or fail_on.encode() in data:
            handle.write(data[:len(data) // 2])
            handle.flush()
            raise OSError(error_number, os.strerror(error_number))
        real(handle, data)
    return write


@pytest.mark.parametrize("error_number,reason", [
    (errno.ENOSPC, "no space left on device"),
    (errno.EIO, "input/output error"),
])
def test_generate_on_a_full_disk_leaves_nothing(files, tmp_path, capsys, monkeypatch,
                                                error_number, reason):
    monkeypatch.setattr(fileio, "_write", _fail_write_halfway(error_number))
    out = tmp_path / "new" / "hw"
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"cannot write {out / 'spikepack_top.v'}: {reason}")
    assert not (tmp_path / "new").exists()          # the folders it created are gone too
    assert not temporaries(tmp_path)


def test_generate_failing_on_the_manifest_keeps_the_previous_files(files, tmp_path, capsys,
                                                                  monkeypatch):
    """The last file fails: the earlier ones, already complete, are not renamed into place
    either, so the folder keeps the previous generation, consistent."""
    out = tmp_path / "hw"
    assert call(["generate", "--config", files / "other.toml", "-o", out], capsys)[0] == 0
    before = snapshot(out)
    monkeypatch.setattr(fileio, "_write", _fail_write_halfway(errno.ENOSPC, '"format"'))
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"cannot write {out / 'manifest.json'}: no space left")
    assert snapshot(out) == before and not temporaries(tmp_path)


def test_generate_output_not_writable(files, tmp_path, capsys, monkeypatch):
    # as root a chmod does not stop a write: refuse the temporary file the way the OS does
    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES),
                              str(Path(dir) / ".x.tmp"))
    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    out = tmp_path / "hw"
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "generate", f"cannot write {out / 'spikepack_top.v'}: permission denied")
    assert not out.exists()


def test_generate_neuron_errors(tmp_path, capsys):
    code, _, err = call(["generate", "neuron", "--timesteps", "0", "-o", tmp_path / "n"], capsys)
    assert code == 2
    assert_one_line(err, "generate", "timesteps must be between 1 and 16, not 0")
    (tmp_path / "afile").write_text("x")
    code, _, err = call(["generate", "neuron", "-o", tmp_path / "afile" / "n"], capsys)
    assert code == 2
    assert_one_line(err, "generate", "is a file, not a directory")
    code, _, err = call(["generate", "--config", tmp_path / "x.toml"], capsys)
    assert code == 2
    assert_one_line(err, "generate", "give an output directory with -o DIR")
    assert not temporaries(tmp_path)


# --- pack ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,needle", [
    ("missing.npz", "no such model file"),
    ("adir", "adir"),
    ("garbage.bin", "garbage.bin"),
    ("empty.bin", "empty.bin"),
    ("truncated.npz", "not a valid .npz archive"),
    ("w.bin", "w.bin"),                                  # a bitstream is not a model
])
def test_pack_names_a_bad_model(files, tmp_path, capsys, model, needle):
    out = tmp_path / "out" / "w.bin"
    code, _, err = call(["pack", files / model, "--manifest", files / "hw", "-o", out], capsys)
    assert code == 2
    assert_one_line(err, "pack", files / model, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("hardware,needle", [
    (["--manifest", "bad_manifest.json"], "not a SpikePack manifest"),
    (["--manifest", "garbage.bin"], "not a readable JSON manifest"),
    (["--manifest", "adir"], "no manifest"),
    (["--manifest", "missing.json"], "no manifest"),
    (["--config", "other.toml"], "the model has timesteps = 2"),        # wrong hardware
    (["--config", "garbage.bin"], "not a TOML text file"),
])
def test_pack_names_a_bad_target(files, tmp_path, capsys, hardware, needle):
    out = tmp_path / "w.bin"
    argv = ["pack", files / "model.npz", hardware[0], files / hardware[1], "-o", out]
    code, _, err = call(argv, capsys)
    assert code == 2
    assert_one_line(err, "pack", needle)
    assert not out.exists() and not temporaries(tmp_path)


def test_pack_output_paths(files, tmp_path, capsys):
    base = ["pack", files / "model.npz", "--manifest", files / "hw", "-o"]
    (tmp_path / "adir").mkdir()
    code, _, err = call([*base, tmp_path / "adir"], capsys)
    assert code == 2
    assert_one_line(err, "pack", f"cannot write {tmp_path / 'adir'}: is a directory")
    (tmp_path / "afile").write_text("x")
    code, _, err = call([*base, tmp_path / "afile" / "w.bin"], capsys)
    assert code == 2
    assert_one_line(err, "pack", f"cannot write {tmp_path / 'afile'}: is a file, not a directory")
    assert not temporaries(tmp_path)


def test_pack_on_a_full_disk_keeps_the_old_bitstream(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "w.bin"
    out.write_bytes(b"previous")
    monkeypatch.setattr(fileio, "_write", _fail_write_halfway(errno.ENOSPC))
    code, _, err = call(["pack", files / "model.npz", "--manifest", files / "hw", "-o", out],
                        capsys)
    assert code == 2
    assert_one_line(err, "pack", f"cannot write {out}: no space left on device")
    assert out.read_bytes() == b"previous" and not temporaries(tmp_path)


def test_pack_past_the_file_size_limit_leaves_no_partial_bitstream(files, tmp_path):
    """A real failed write (RLIMIT_FSIZE; Python ignores SIGXFSZ, so write() fails with
    EFBIG): the half-written bitstream never appears."""
    import resource
    size = len((files / "w.bin").read_bytes())
    out = tmp_path / "w.bin"
    proc = subprocess.run(
        [sys.executable, "-m", "spikepack", "pack", str(files / "model.npz"), "--manifest",
         str(files / "hw"), "-o", str(out)], capture_output=True, text=True, env=ENV, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2)))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"spikepack pack: cannot write {out}: file too large (the file-size " \
                          f"limit was reached)\n"
    assert list(tmp_path.iterdir()) == []


# --- inspect -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,needle", [
    ("missing.bin", "cannot read {path}: no such file or directory"),
    ("adir", "cannot read {path}: is a directory"),
    ("empty.bin", "{path}: empty file"),
    ("garbage.bin", "{path}: invalid bitstream: BadMagic at word 0"),
    ("truncated.bin", "{path}: invalid bitstream: Truncated"),
    ("model.npz", "{path}: invalid bitstream: BadMagic"),
])
def test_inspect_names_a_bad_bitstream(files, capsys, name, needle):
    code, _, err = call(["inspect", files / name], capsys)
    assert code == 2
    assert_one_line(err, "inspect", needle.format(path=files / name))


@pytest.mark.parametrize("hardware,needle", [
    (["--manifest", "bad_manifest.json"], "not a SpikePack manifest"),
    (["--manifest", "missing.json"], "no manifest"),
    (["--config", "other.toml"], "invalid bitstream: SignatureMismatch"),   # wrong hardware
])
def test_inspect_names_a_bad_target(files, capsys, hardware, needle):
    code, _, err = call(["inspect", files / "w.bin", hardware[0], files / hardware[1]], capsys)
    assert code == 2
    assert_one_line(err, "inspect", needle)


def test_inspect_garbage_through_python_m_has_no_traceback(files):
    proc = subprocess.run([sys.executable, "-m", "spikepack", "inspect",
                           str(files / "garbage.bin")], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"spikepack inspect: {files / 'garbage.bin'}: invalid bitstream")
    assert "verdict: INVALID: BadMagic" in proc.stdout      # the report still shows where


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut off"])
def test_run_with_an_empty_or_cut_off_inputs_file_is_one_line(files, tmp_path, capsys, content):
    inputs = tmp_path / "inputs.npz"
    inputs.write_bytes(content)
    code, _, err = call(["run", "--hw", files / "hw", "--weights", files / "w.bin",
                         "--inputs", inputs, "--work", tmp_path / "work"], capsys)
    assert code == 2
    assert_one_line(err, "run")
    assert not (tmp_path / "work").exists()


# --- usage, help, version, internal errors ------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["bogus"], "spikepack: argument COMMAND: invalid choice: 'bogus'"),
    ([], "spikepack: the following arguments are required: COMMAND"),
    (["pack", "m.npz", "-o", "x.bin"], "spikepack pack: one of the arguments --manifest --config"),
    (["generate", "neuron", "--timesteps", "four", "-o", "x"],
     "spikepack generate neuron: argument --timesteps/-T: invalid int value: 'four'"),
])
def test_usage_errors_are_one_line_exit_2(argv, needle, capsys):
    code, out, err = call(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(needle), err


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version
    code, out, _ = call(["--version"], capsys)
    assert code == 0 and out == f"spikepack {version('spikepack-hw')}\n"


def test_help_is_for_users_and_states_the_exit_statuses(capsys):
    code, out, _ = call(["--help"], capsys)
    assert code == 0
    assert "Generate FPGA accelerators for SpikePack spiking neural networks" in out
    for line in ("1    the hardware check failed", "2    bad usage or input", "130  interrupted"):
        assert line in out


def _options(parser):
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield "", action
            for name, sub in action.choices.items():
                yield from ((f"{name} {where}", a) for where, a in _options(sub))
        elif not isinstance(action, argparse._HelpAction):
            yield "", action


def test_every_option_of_these_commands_has_help():
    # convert and run are checked by their owners' tests
    missing = [f"{where}{'/'.join(a.option_strings) or a.dest}"
               for where, a in _options(cli.build_parser())
               if not a.help and not where.startswith(("convert", "run"))]
    assert missing == []


def test_a_bug_is_one_line_with_exit_70(monkeypatch, capsys):
    import spikepack.firmware.inspect_cli as inspect_cli

    def broken(args):
        raise RuntimeError("Traceback (most recent call last):\n  File x\nRuntimeError: boom")
    monkeypatch.setattr(inspect_cli, "main", broken)
    monkeypatch.delenv("SPIKEPACK_DEBUG", raising=False)
    code, _, err = call(["inspect", "x.bin"], capsys)
    assert code == 70
    assert_one_line(err, "inspect", "internal error", "RuntimeError: boom", "SPIKEPACK_DEBUG=1")
    monkeypatch.setenv("SPIKEPACK_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["inspect", "x.bin"])


@pytest.mark.parametrize("name,message,code", [
    ("SimulationFailed", "inference: 1 of 1 cocotb tests failed (seed 5)\nlog excerpt", 1),
    ("BuildError", "verilator could not build spikepack_top; see build.log", 1),
    ("BuildPathError", "the build folder has a space in its path", 2),
])
def test_a_failed_hardware_check_exits_1(name, message, code, monkeypatch, capsys):
    """A failing bench or an RTL that does not compile is the hardware check failing (1);
    a build folder make cannot use is bad input (2)."""
    import spikepack.run
    from spikepack.sim import runner

    def failing(args):
        raise getattr(runner, name)(message)
    monkeypatch.setattr(spikepack.run, "main", failing)
    status, _, err = call(["run", "--hw", "h", "--weights", "w", "--inputs", "i"], capsys)
    assert status == code
    assert err.splitlines()[0] == f"spikepack run: {message.splitlines()[0]}"
    assert "Traceback" not in err


# --- Ctrl-C and SIGTERM --------------------------------------------------------------------------

@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_ctrl_c_in_any_command_says_interrupted(command, monkeypatch, capsys):
    import importlib
    module = importlib.import_module(cli.COMMANDS[command][0])

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(module, "main", interrupted)
    argv = {"convert": [], "generate": ["-o", "x"], "pack": ["m", "--config", "c", "-o", "o"],
            "inspect": ["x.bin"], "run": ["--hw", "h", "--weights", "w", "--inputs", "i"],
            "train": [], "package": ["--hw", "h", "-o", "o"]}
    code, out, err = call([command, *argv[command]], capsys)
    assert code == 130 and err == f"spikepack {command}: interrupted\n"


def test_ctrl_c_while_writing_leaves_nothing(files, tmp_path, monkeypatch, capsys):
    real = fileio._write

    def write(handle, data):
        if b'"format"' in data:                  # the manifest, written last
            handle.write(data[:10])
            raise KeyboardInterrupt
        real(handle, data)
    monkeypatch.setattr(fileio, "_write", write)
    out = tmp_path / "new" / "hw"
    code, _, err = call(["generate", "--config", files / "small.toml", "-o", out], capsys)
    assert code == 130 and err == "spikepack generate: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def _default_sigint():
    """Popen's preexec_fn: SIGINT back to its default action in the child, as a shell starts a
    command. pytest-xdist's workers ignore SIGINT and a child inherits an ignored signal, so
    Python would never raise KeyboardInterrupt there and every Ctrl-C test below would fail
    under ``make test`` while passing alone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _blocked_on_fifo(tmp_path, argv, env=None):
    """Start ``python -m spikepack argv`` reading the FIFO ``tmp_path/fifo`` and return once it
    is blocked in that read (a writer can open a FIFO only while a reader has it open)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "spikepack",
                             *[str(a).replace("FIFO", str(fifo)) for a in argv]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, **(env or {})}, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    while True:
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"the command never read the FIFO: {proc.communicate()}")
            time.sleep(0.05)
    return proc, writer


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("argv,command", [
    (["generate", "--config", "FIFO", "-o", "OUT"], "generate"),
    (["inspect", "FIFO"], "inspect"),
])
def test_a_signal_mid_command_is_one_line(tmp_path, sig, code, word, argv, command):
    out = tmp_path / "out"
    proc, writer = _blocked_on_fifo(tmp_path, [str(a).replace("OUT", str(out)) for a in argv])
    try:
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        os.close(writer)
    assert proc.returncode == code, stderr
    assert stderr == f"spikepack {command}: {word}\n"
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_signals_reach_only_the_main_thread(tmp_path):
    """OpenBLAS (under numpy) starts a thread pool at import. A SIGTERM the kernel hands to a
    pool thread leaves the main thread asleep in its read for good (the signal test above then
    hung about one run in 16): every thread but the main one must block SIGINT and SIGTERM."""
    proc, writer = _blocked_on_fifo(tmp_path, ["inspect", "FIFO"],
                                    env={"OPENBLAS_NUM_THREADS": "2"})   # a pool on any machine
    try:
        masks = {}
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            status = (task / "status").read_text()
            masks[int(task.name)] = int(status.split("SigBlk:")[1].split()[0], 16)
    finally:
        proc.kill()
        proc.communicate()
        os.close(writer)
    others = {tid: mask for tid, mask in masks.items() if tid != proc.pid}
    assert others, f"no thread besides the main one: {masks}"
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    assert all(mask & wanted == wanted for mask in others.values()), masks
    assert masks[proc.pid] & wanted == 0, masks


@pytest.mark.rtl
@pytest.mark.slow
def test_an_interrupted_build_is_rebuilt_not_reused(tmp_path, monkeypatch):
    """Ctrl-C while make compiles the model: no completion marker, and the next build empties
    the folder and compiles afresh (a partial object is never linked in); the result passes the
    neuron bench bit-exact."""
    from spikepack.sim import runner
    params = dict(timesteps=2, tau_shift=1, weight_bits=4, fan_in=4, rows=4, bias_bits=8,
                  threshold_bits=8, input_mode="serial")
    script = ("from spikepack.sim import runner\n"
              "from spikepack.hw.neuron_spikepack import SpikePackNeuron\n"
              f"runner.build('spikepack_neuron', lambda: SpikePackNeuron(**{params!r}))\n")
    build_root = tmp_path / "build"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint,
                            env={**ENV, "SPIKEPACK_BUILD": str(build_root)})
    deadline = time.monotonic() + 300
    log = None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(build_root.glob("sim/*/build.log"))
        if logs and "Entering directory" in logs[0].read_text(errors="replace"):
            log = logs[0]                     # Verilator is done; make is compiling C++
            break
        time.sleep(0.1)
    assert log is not None, f"the build never reached make: {proc.communicate()}"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)        # as Ctrl-C: to Python, make and the compilers
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    directory = log.parent
    assert not (directory / ".built").exists()
    (directory / "leftover.o").write_text("a partial object of the interrupted build")

    monkeypatch.setattr(runner, "BUILD_ROOT", build_root)
    from spikepack.hw.neuron_spikepack import SpikePackNeuron
    built = runner.build("spikepack_neuron", lambda: SpikePackNeuron(**params))
    assert built.directory == directory and (directory / ".built").exists()
    assert not (directory / "leftover.o").exists()
    runner.run(built, "spikepack.sim.benches.neuron", name="after-interrupt",
               args={"kind": "spikepack", **params, "count": 300})


@pytest.mark.rtl
@pytest.mark.parametrize("engine", ["native", "cocotb"])
def test_ctrl_c_during_the_build_of_spikepack_run(files, tmp_path, engine):
    """The real thing: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while
    make compiles the accelerator for ``spikepack run``: one line, exit 130, no marker."""
    build_root = tmp_path / "build"
    z = np.zeros((2, SpikePackModel.load(files / "model.npz").widths[0]), dtype=np.int64)
    np.savez(tmp_path / "inputs.npz", z=z)
    proc = subprocess.Popen([sys.executable, "-m", "spikepack", "run", "--hw", str(files / "hw"),
                             "--weights", str(files / "w.bin"), "--inputs",
                             str(tmp_path / "inputs.npz"), "--work", str(tmp_path / "work"),
                             "--engine", engine],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint,
                            env={**ENV, "SPIKEPACK_BUILD": str(build_root)})
    deadline = time.monotonic() + 300
    log = None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(build_root.glob("sim/*/build.log" if engine == "cocotb"
                                    else "native/spikepack_top-*/build.log"))
        if logs and ("Entering directory" in logs[0].read_text(errors="replace")
                     or engine == "native"):
            log = logs[0]
            break
        time.sleep(0.1)
    assert log is not None, f"the build never reached make: {proc.communicate()}"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    # the build's progress line ("... ...") may stand before it; nothing else may
    assert stderr.endswith("\nspikepack run: interrupted\n") and "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) <= 2 and "failed" not in stderr, stderr
    assert not (log.parent / ".built").exists()


def test_a_build_folder_with_a_space_is_refused_up_front(tmp_path, monkeypatch, capsys):
    from spikepack.sim import runner
    monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path / "my builds")
    with pytest.raises(runner.BuildPathError, match="has a space in its path.*SPIKEPACK_BUILD"):
        runner.build_verilog("m", "module m; endmodule\n")
    assert not (tmp_path / "my builds").exists()


def test_run_with_a_build_folder_with_a_space_is_one_line(files, tmp_path):
    """Through the CLI: refused before Verilator starts, exit 2."""
    z = np.zeros((1, SpikePackModel.load(files / "model.npz").widths[0]), dtype=np.int64)
    np.savez(tmp_path / "inputs.npz", z=z)
    build = tmp_path / "my builds"
    proc = subprocess.run([sys.executable, "-m", "spikepack", "run", "--hw", str(files / "hw"),
                           "--weights", str(files / "w.bin"), "--inputs",
                           str(tmp_path / "inputs.npz"), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=300,
                          env={**ENV, "SPIKEPACK_BUILD": str(build)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"spikepack run: the build folder '{build}/native/spikepack_top-")
    assert "has a space in its path" in proc.stderr
    assert not build.exists()
