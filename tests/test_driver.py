"""The host driver's protocol core and its synchronous front end, without the RTL: the stream
formats against the benches' independent packers, and the register path over a real ``mmap``
(a file standing in for ``/dev/mem``)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikepack.accelerator import build_manifest
from spikepack.config import HardwareConfig
from spikepack.driver import MAGIC, Driver, DriverError, MmapBus, Protocol
from spikepack.hw.registers import ID_MAGIC as HW_MAGIC
from spikepack.sim.benches.inference import pack_image, unpack_potentials
from spikepack.sim.benches.system import input_beats


def _manifest(**kw):
    from spikepack.hw.top import SpikePackTop
    config = HardwareConfig(**kw)
    top = SpikePackTop(config=config)
    top._MustUse__silence = True            # only its signature is read (the port list)
    return build_manifest(config, top), config


@pytest.fixture(scope="module", params=[dict(), dict(timesteps=6, weight_bits=12, bias_bits=20,
                                                     threshold_bits=12, tau_shift=3)])
def manifest(request):
    return _manifest(**request.param)


def test_magic_is_the_hardware_id():
    assert MAGIC == HW_MAGIC == int.from_bytes(b"SPK1", "big")     # the register reads "SPK1"


@given(data=st.data())
def test_image_packing_matches_the_benches(manifest, data):
    m, config = manifest
    T = config.timesteps
    words = data.draw(st.lists(st.integers(0, (1 << T) - 1), min_size=1, max_size=100))
    packed = Protocol(m).pack_image(np.array(words, dtype=np.int64))
    assert packed == pack_image(words, T)
    assert list(struct.unpack(f"<{len(packed) // 4}I", packed)) == input_beats(words, T)


@given(data=st.data())
def test_potential_unpacking_matches_the_bench(manifest, data):
    m, config = manifest
    bits = m["derived"]["output_bits"]
    values = data.draw(st.lists(st.integers(-(1 << (config.widths.potential - 1)),
                                            (1 << (config.widths.potential - 1)) - 1),
                                min_size=1, max_size=20))
    raw = b"".join(v.to_bytes(bits // 8, "little", signed=True) for v in values)
    assert list(Protocol(m).unpack_potentials(raw)) == unpack_potentials(raw, bits) == values


def test_bad_images_are_refused(manifest):
    p = Protocol(manifest[0])
    with pytest.raises(ValueError, match="spike words must lie"):
        p.pack_image(np.array([1 << manifest[1].timesteps]))
    with pytest.raises(ValueError, match="1-D"):
        p.pack_image(np.zeros((2, 2), dtype=int))


def _register_file(tmp_path, manifest, values):
    path = tmp_path / "regs.bin"
    image = bytearray(4096)
    for name, value in values.items():
        offset = next(r["offset"] for r in manifest["registers"] if r["name"] == name)
        image[offset:offset + 4] = value.to_bytes(4, "little")
    path.write_bytes(bytes(image))
    return path


def test_sync_driver_over_mmap_checks_the_hardware(tmp_path, manifest):
    m, config = manifest
    path = _register_file(tmp_path, m, {"ID": HW_MAGIC, "SIGNATURE": config.signature,
                                        "STATUS": 0b10 | (3 << 16)})
    bus = MmapBus(path, base=0)
    try:
        drv = Driver(bus, m)
        assert drv.check_hardware() == config.signature
        status = drv.status()
        assert status["loaded"] == 1 and status["layers"] == 3 and status["busy"] == 0
        drv.set_run(False)
        control = next(r for r in m["registers"] if r["name"] == "CONTROL")
        assert bus.read32(control["offset"]) == 0
        drv.soft_reset()
        assert bus.read32(control["offset"]) == 0b11        # SOFT_RESET | RUN
    finally:
        bus.close()
    assert path.read_bytes()[control["offset"]] == 0b11     # written through to the "device"


def test_sync_driver_refuses_another_configuration(tmp_path, manifest):
    m, config = manifest
    path = _register_file(tmp_path, m, {"ID": HW_MAGIC, "SIGNATURE": config.signature ^ 1})
    bus = MmapBus(path, base=0)
    try:
        with pytest.raises(DriverError, match="signature"):
            Driver(bus, m).check_hardware()
        with pytest.raises(DriverError, match="streams need PynqBus"):
            Driver(bus, m).load_network(b"\0" * 8)
    finally:
        bus.close()


def test_driver_reads_a_manifest_file(tmp_path):
    from spikepack.accelerator import generate_accelerator
    manifest = generate_accelerator(HardwareConfig(rows=4, cols=4), tmp_path / "hw")
    path = _register_file(tmp_path, manifest, {"ID": HW_MAGIC, "SIGNATURE": manifest["signature"]})
    bus = MmapBus(path)
    try:
        assert Driver(bus, tmp_path / "hw").check_hardware() == manifest["signature"]
    finally:
        bus.close()
