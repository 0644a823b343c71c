"""The native inference path (sim/native.py + sim/native/harness.cpp) against the cocotb bench
and the golden model: same outputs, same cycle counts, same faults caught; concurrent runs."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikepack.accelerator import TOP_NAME, load_manifest
from spikepack.cli import main as cli
from spikepack.run import RunError, run_inference
from spikepack.sim import native
from spikepack.sim.runner import BUILD_ROOT, bench_seed


@given(st.sampled_from([1, 2, 3, 4, 5, 8, 16]), st.integers(1, 40), st.integers(1, 3),
       st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_pack_inputs_is_the_benchs_beat_format(timesteps, fan_in, images, rnd):
    from stream_reference import pack_image
    z = np.array([[rnd.randrange(1 << timesteps) for _ in range(fan_in)] for _ in range(images)])
    beats = native.pack_inputs(z, timesteps)
    for image, words in zip(z, beats):
        assert b"".join(int(b).to_bytes(4, "little") for b in words) == pack_image(image, timesteps)


@given(st.sampled_from([1, 2, 3, 4, 8]), st.sampled_from([1, 2, 4, 8]), st.integers(1, 9),
       st.integers(1, 4), st.integers(1, 4), st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_pack_inputs_sends_a_map_in_storage_order(timesteps, rows, channels, height, width, rnd):
    """(S, C, H, W) images go out channels last (the convolution contract, docs/architecture.md): word ((y*W + x)*CG)*R + c of the
    stream is z[c, y, x], the padding lanes c >= C of each pixel are zero, N0 = H*W*CG*R."""
    z = np.array([[[[rnd.randrange(1 << timesteps) for _ in range(width)] for _ in range(height)]
                   for _ in range(channels)] for _ in range(2)])
    beats = native.pack_inputs(z, timesteps, rows=rows)
    K = 32 // timesteps
    cg = -(-channels // rows)
    n0 = height * width * cg * rows
    assert beats.shape == (2, -(-n0 // K))
    for image, words in zip(z, beats):
        stream = [(int(words[i // K]) >> (i % K) * timesteps) & ((1 << timesteps) - 1)
                  for i in range(len(words) * K)]
        want = [0] * len(stream)
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    want[((y * width + x) * cg) * rows + c] = int(image[c, y, x])
        assert stream == want


def test_load_inputs_takes_conv_images(tmp_path):
    """A conv network's inputs: (S, C, H, W) as they are, (S, C*H*W) read in (c, y, x) order;
    any other shape refused with the shapes it expects."""
    from spikepack.run import InputsError, load_inputs
    z = np.arange(2 * 3 * 2 * 4).reshape(2, 3, 2, 4) % 16
    for given in (z, z.reshape(2, -1)):
        np.savez(tmp_path / "in.npz", z=given)
        got, labels = load_inputs(tmp_path / "in.npz", (3, 2, 4), 4)
        assert np.array_equal(got, z) and labels is None
    for bad in (z.reshape(2, 3, 8), z.reshape(2, -1)[:, :-1], z.reshape(2, 3, 4, 2)):
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(InputsError, match=r"expects \(images, 3, 2, 4\) or \(images, 24\)"):
            load_inputs(tmp_path / "bad.npy", (3, 2, 4), 4)


def test_load_inputs_reads_a_fifo(tmp_path):
    """Inputs through a FIFO (``--inputs <(...)``) read whole, as from a file: the same arrays
    (the read is spikepack.fileio.read_bytes, which a signal interrupts)."""
    import io
    import threading
    from spikepack.run import load_inputs
    z = np.arange(5 * 64).reshape(5, 64) % 16
    labels = np.arange(5) % 10
    buffer = io.BytesIO()
    np.savez(buffer, z=z, labels=labels)
    fifo = tmp_path / "in.npz"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "wb") as f:
            f.write(buffer.getvalue())
    writer = threading.Thread(target=write)
    writer.start()
    got, got_labels = load_inputs(fifo, 64, 4, classes=10)
    writer.join(timeout=30)
    assert np.array_equal(got, z) and np.array_equal(got_labels, labels)


@pytest.mark.parametrize("form, name", [("npz", "in.npz"), ("npy", "in.npy"),
                                        ("npz", "in.npy"), ("npy", "in.npz")])
def test_load_inputs_goes_by_content_not_suffix(tmp_path, form, name):
    """An archive named .npy and a bare array named .npz (both once ended in a traceback) read
    as what they are: the same z; labels only from an archive."""
    from spikepack.run import load_inputs
    z = np.arange(3 * 64).reshape(3, 64) % 16
    labels = np.array([1, 2, 3])
    with open(tmp_path / name, "wb") as f:
        np.savez(f, z=z, labels=labels) if form == "npz" else np.save(f, z)
    got, got_labels = load_inputs(tmp_path / name, 64, 4, classes=10)
    assert np.array_equal(got, z)
    assert (got_labels is None) if form == "npy" else np.array_equal(got_labels, labels)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """Converted digits model, generated default accelerator and packed bitstream (via the CLI)."""
    d = tmp_path_factory.mktemp("native")
    assert cli(["convert", "-o", str(d / "model.npz"), "--inputs-out", str(d / "inputs.npz")]) == 0
    (d / "hw.toml").write_text("[hardware]\n")
    assert cli(["generate", "--config", str(d / "hw.toml"), "-o", str(d / "hw")]) == 0
    assert cli(["pack", str(d / "model.npz"), "--manifest", str(d / "hw" / "manifest.json"),
                "-o", str(d / "weights.bin")]) == 0
    with np.load(d / "inputs.npz") as f:
        z = f["z"]
    return d, (d / "weights.bin").read_bytes(), z


def _first_mismatch(result) -> str:
    if not result.mismatched_images:
        return "none"
    i = result.mismatched_images[0]
    return f"image {i}: RTL {result.logits[i].tolist()} golden {result.golden[i].tolist()}"


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_native_and_cocotb_agree_cycle_for_cycle(flow):
    """Pauses off: both engines give the golden outputs and the same cycle counts (total,
    CYCLES_LAST) and the same register dump; pauses on (each engine's own generator): the same
    outputs."""
    d, data, z = flow
    seed = bench_seed()
    print(f"seed {seed}")
    runs = {engine: run_inference(d / "hw", data, z[:12], work_dir=BUILD_ROOT / "test-native",
                                  seed=seed, engine=engine, progress=False)
            for engine in ("native", "cocotb")}
    for engine, result in runs.items():
        assert result.mismatched_images == [], f"{engine} seed {seed}: {_first_mismatch(result)}"
    a, b = runs["native"], runs["cocotb"]
    assert (a.logits == b.logits).all()
    assert a.latency_cycles == b.latency_cycles == a.registers["cycles_last"]
    assert a.cycles_total == b.cycles_total
    assert a.registers == b.registers
    assert a.registers["inferences"] == 12 and a.registers["load_error"] == 0
    paused = run_inference(d / "hw", data, z[:40], work_dir=BUILD_ROOT / "test-native",
                           seed=seed, engine="native", pauses=True, progress=False)
    assert paused.mismatched_images == [], f"seed {seed}: {_first_mismatch(paused)}"
    assert paused.registers["out_stalls"] > 0       # the backpressure did happen
    clean = run_inference(d / "hw", data, z[:40], work_dir=BUILD_ROOT / "test-native",
                          seed=seed, engine="native", progress=False)
    assert (clean.logits == paused.logits).all()
    assert clean.registers["out_stalls"] == 0
    assert paused.cycles_total > clean.cycles_total


def _broken_copy(d, target):
    """A copy of the hardware folder whose Verilog flips bit 0 of every output beat, with the
    manifest's Verilog hash updated (a consistent, deliberately broken build)."""
    shutil.copytree(d / "hw", target)
    path = target / f"{TOP_NAME}.v"
    text, n = re.subn(r"^(\s*assign m_axis_out_tdata = )(.*);$", r"\1(\2) ^ 32'd1;",
                      path.read_text(), flags=re.M)
    assert n == 1
    path.write_text(text)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.rtl
@pytest.mark.xdist_group("top-broken")
def test_a_broken_build_is_caught_by_both_engines(flow, tmp_path):
    d, data, z = flow
    hw = _broken_copy(d, tmp_path / "hw")
    for engine in ("native", "cocotb"):
        result = run_inference(hw, data, z[:3], work_dir=BUILD_ROOT / "test-native", seed=1,
                               engine=engine, progress=False)
        assert result.mismatched_images == [0, 1, 2], engine
        assert (np.abs(result.logits - result.golden) == 1).any(axis=1).all(), engine
    code = cli(["run", "--hw", str(hw), "--weights", str(d / "weights.bin"), "--inputs",
                str(d / "inputs.npz"), "--limit", "2", "--work", str(tmp_path / "work")])
    assert code == 1


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_native_harness_reports_hangs_and_rejected_loads(flow, tmp_path):
    d, data, z = flow
    manifest, _ = load_manifest(d / "hw")
    built = native.build_native((d / "hw" / f"{TOP_NAME}.v").read_text(), progress=False)
    with pytest.raises(native.HardwareFault, match="no readout frame within 50 cycles"):
        native.run_native(built, manifest=manifest, bitstream=data, z=z[:2], work=tmp_path,
                          seed=1, pauses=False, timeout_cycles=50)
    bad = bytearray(data)
    bad[200] ^= 0x10                              # the CRC no longer matches
    with pytest.raises(native.HardwareFault, match="bad load"):
        native.run_native(built, manifest=manifest, bitstream=bytes(bad), z=z[:2],
                          work=tmp_path, seed=1, pauses=False, timeout_cycles=10_000)


@pytest.mark.rtl
@pytest.mark.xdist_group("top-default")
def test_two_concurrent_runs_on_the_same_folder(flow, tmp_path):
    """Two `spikepack run` at once, default work folder, different image counts: both exact."""
    d, _, _ = flow
    env = dict(os.environ, SPIKEPACK_BUILD=str(BUILD_ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "spikepack", "run", "--hw", str(d / "hw"),
                               "--weights", str(d / "weights.bin"), "--inputs",
                               str(d / "inputs.npz"), "--limit", str(limit), "--pauses",
                               "--report", str(tmp_path / f"report{limit}.json")],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for limit in (150, 90)]
    for limit, proc in zip((150, 90), procs):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        report = json.loads((tmp_path / f"report{limit}.json").read_text())
        assert report["images"] == limit and report["mismatching_images"] == 0
        assert report["registers"]["inferences"] == limit
        assert "RTL inference" in err
    # each run worked in its own folder, removed after success
    assert list((tmp_path / "build" / "run").iterdir()) == []


@pytest.mark.rtl
@pytest.mark.xdist_group("top-wide")
def test_native_64_bit_outputs_are_bit_exact(tmp_path):
    """T = 8, tau = 8, 16-bit weights: 46-bit potentials in 64-bit output beats (the harness
    reads them as one 64-bit port value); random network and images, drawn seeded."""
    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.firmware.bitstream import pack
    from spikepack.firmware.model import Layer, SpikePackModel

    seed = bench_seed()
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = HardwareConfig(rows=4, cols=4, timesteps=8, tau_shift=3, weight_bits=16,
                            max_fan_in=32, max_neurons=32, max_layers=2, weight_depth=256)
    assert config.widths.potential > 32
    sizes = (32, 16, 6)
    weights = [rng.integers(-(1 << 15), 1 << 15, (m, n)) for n, m in zip(sizes, sizes[1:])]
    # the readout's rows of one sign each, alternating: its inputs are spike words (>= 0), so
    # both signs of wide potentials come out whatever the draw (a free draw gave all six rows
    # one sign about once in 60 seeds)
    weights[-1] = np.abs(weights[-1]) * np.where(np.arange(sizes[-1]) % 2, -1, 1)[:, None]
    layers = [Layer(weights=w, bias=rng.integers(-1000, 1000, len(w)),
                    threshold=None if i == len(sizes) - 2 else rng.integers(1 << 10, 1 << 16, len(w)))
              for i, w in enumerate(weights)]
    model = SpikePackModel(timesteps=8, tau_shift=3, weight_bits=16, layers=layers)
    generate_accelerator(config, tmp_path / "hw")
    z = rng.integers(0, 1 << 8, (6, sizes[0]))
    result = run_inference(tmp_path / "hw", pack(model, config), z, seed=seed,
                           work_dir=BUILD_ROOT / "test-native", progress=False)
    assert result.mismatched_images == [], f"seed {seed}: {_first_mismatch(result)}"
    assert np.abs(result.golden).max() >= 1 << 31        # the upper word was exercised
    assert (result.golden < -(1 << 31)).any(), result.golden     # and its sign extension


@pytest.mark.rtl
@pytest.mark.xdist_group("top-conv")
def test_run_conv_network_on_both_engines(tmp_path, capsys):
    """A random conv network with max pooling (``spikepack.sim.benches.stimulus.random_plan``, a
    format-v2 model, its first layer one that folds: docs/array.md, "The first layer") packed
    for a small conv accelerator and run by ``spikepack run`` on both engines: images
    (S, C, H, W) go out in storage order; the native engine runs the folded bitstream on the
    model's images (``model=``: folded for the hardware, checked against the model's golden
    model), the cocotb engine the bitstream packed unfolded; outputs bit-exact. The CLI takes
    an inputs file of flattened (c, y, x) images with ``--model``, and refuses them in one line
    without it (the folded bitstream reads the folded map), naming ``--model``."""
    from spikepack.accelerator import generate_accelerator
    from spikepack.config import HardwareConfig
    from spikepack.firmware.bitstream import pack
    from spikepack.sim.benches.stimulus import conv_model, foldable_plan, random_images

    seed = bench_seed()
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = HardwareConfig(rows=4, cols=4, timesteps=4, max_fan_in=64, max_neurons=32,
                            max_layers=4, weight_depth=256, max_channels=8, max_map_side=8,
                            max_map_words=256, max_kernel=5)
    plan = foldable_plan(rng, config, max_cycles=4000)
    model = conv_model(rng, config, plan)
    assert model.input_fold(config) is not None, f"seed {seed}: {plan} does not fold"
    generate_accelerator(config, tmp_path / "hw")
    data = pack(model, config)
    z = random_images(rng, 5, model.input_shape, config.timesteps)
    for engine, bitstream in (("native", data), ("cocotb", pack(model, config, fold=False))):
        result = run_inference(tmp_path / "hw", bitstream, z, seed=seed, engine=engine,
                               pauses=engine == "native", work_dir=BUILD_ROOT / "test-native",
                               progress=False, model=model)
        assert result.mismatched_images == [], \
            f"seed {seed}, {plan}, {engine}: {_first_mismatch(result)}"
        assert np.array_equal(result.golden, model.forward(z)[0])
    # without the model, the folded bitstream's own network reads the folded maps
    folded = run_inference(tmp_path / "hw", data, model.hardware_input(z[:2], config),
                           seed=seed, work_dir=BUILD_ROOT / "test-native", progress=False)
    assert folded.mismatched_images == [] and np.array_equal(folded.logits, result.logits[:2])
    with pytest.raises(RunError, match="give --model"):
        run_inference(tmp_path / "hw", data, z, work_dir=BUILD_ROOT / "test-native",
                      progress=False)
    with pytest.raises(RunError, match="not the packing of the given model"):
        run_inference(tmp_path / "hw", pack(conv_model(rng, config, plan), config), z, model=model,
                      work_dir=BUILD_ROOT / "test-native", progress=False)
    (tmp_path / "weights.bin").write_bytes(data)
    model.save(tmp_path / "model.npz")
    np.savez(tmp_path / "images.npz", z=z)
    np.savez(tmp_path / "inputs.npz", z=z.reshape(len(z), -1))
    argv = ["run", "--hw", str(tmp_path / "hw"), "--weights", str(tmp_path / "weights.bin"),
            "--work", str(BUILD_ROOT / "test-native"), "--inputs"]
    capsys.readouterr()
    # (a flattened file is not refused when its length happens to be the folded map's:
    # without the model the run takes the inputs as the bitstream's network's)
    assert cli(argv + [str(tmp_path / "images.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err, err
    assert cli(argv + [str(tmp_path / "inputs.npz"), "--model", str(tmp_path / "model.npz")]) == 0
