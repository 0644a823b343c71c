"""The host driver (``spikepack.driver``) without the RTL: its synchronous front end and the
register path over a real ``mmap`` (a file standing in for ``/dev/mem``), manifests read from
files, and the protocol re-exported (``tests/test_protocol.py`` tests the protocol itself)."""

from __future__ import annotations

import pytest

from spikepack import driver, protocol
from spikepack.config import HardwareConfig
from spikepack.driver import Driver, DriverError, MmapBus
from spikepack.hw.registers import ID_MAGIC as HW_MAGIC
from test_protocol import manifest  # noqa: F401  (the fixture)


def test_the_protocol_is_re_exported():
    """``spikepack.driver`` keeps offering the protocol's names to users."""
    for name in ("Read", "Write", "Send", "Receive", "Pause", "DriverError", "LoadError",
                 "Protocol", "STREAMS", "MAGIC", "OPERATIONS", "RegisterMap", "Registers"):
        assert getattr(driver, name) is getattr(protocol, name), name
    assert issubclass(driver.Driver, protocol.Driver)
    assert issubclass(driver.AsyncDriver, protocol.AsyncDriver)
    from spikepack.sim.benches.host import CocotbBus
    assert driver.CocotbBus is CocotbBus


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
