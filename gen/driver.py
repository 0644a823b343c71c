"""Host driver of a generated SpikePack accelerator: check the hardware, load a weight
bitstream, run images, read results, counters and errors.

The driver is written once, as a **sans-IO core** (:class:`Protocol`): every operation is a
generator that yields bus requests (:class:`Read`, :class:`Write`, :class:`Send`,
:class:`Receive`, :class:`Pause`) and receives their results. Two front ends run the same
generators:

* :class:`Driver`, synchronous, over a bus with plain methods (a board:
  :class:`PynqBus` when ``pynq`` is installed; otherwise :class:`MmapDmaBus`, the registers and
  two AXI DMAs through ``mmap`` of ``/dev/uio*`` or ``/dev/mem`` with u-dma-buf buffers, or
  :class:`MmapBus` for the registers alone);
* :class:`AsyncDriver`, ``async``, over a bus whose methods are coroutines (the RTL simulation:
  :class:`CocotbBus` over cocotbext-axi's AxiLiteMaster / AxiStreamSource / AxiStreamSink).

So what the RTL benches prove (``sim/benches/driver_bench.py``: the digits network loaded and
run bit-exactly through this driver) is the very code that drives a board; only the bus
underneath differs.

A bus has five methods (``async`` for :class:`AsyncDriver`):

* ``read32(offset) -> int`` and ``write32(offset, value)``: one AXI4-Lite register access at a
  byte offset of the accelerator's register block;
* ``send(stream, data: bytes)``: one packet (TLAST on its last beat) on ``"load"``
  (``s_axis_load``) or ``"in"`` (``s_axis_in``); it may return once the packet is queued;
* ``receive(stream, max_bytes) -> bytes``: the next packet of ``"out"`` (``m_axis_out``);
* ``pause()``: let some time pass before polling a register again.

Nothing here needs cocotb or pynq at import time; both are imported by the bus that uses them.
"""

from __future__ import annotations

import functools
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

import numpy as np

from spikepack.hw.registers import ID_MAGIC

__all__ = ["Read", "Write", "Send", "Receive", "Pause", "DriverError", "LoadError", "Protocol",
           "Driver", "AsyncDriver", "CocotbBus", "MmapBus", "MmapDmaBus", "AxiDmaMmap", "PynqBus",
           "STREAMS", "MAGIC"]

#: The ID register's value, ASCII "SPK1" (the register table's ``ID_MAGIC``).
MAGIC = ID_MAGIC
#: Stream names of the bus and the ports they stand for.
STREAMS = {"load": "s_axis_load", "in": "s_axis_in", "out": "m_axis_out"}


# --- bus requests --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Read:
    offset: int


@dataclass(frozen=True)
class Write:
    offset: int
    value: int


@dataclass(frozen=True)
class Send:
    stream: str
    data: bytes


@dataclass(frozen=True)
class Receive:
    stream: str
    max_bytes: int


@dataclass(frozen=True)
class Pause:
    pass


class DriverError(RuntimeError):
    """The accelerator is not the one the manifest describes, or it did not answer in time."""


class LoadError(DriverError):
    """The loader rejected a bitstream; ``code`` is its LOAD_ERROR code, ``name`` the code's
    name (:class:`spikepack.firmware.bitstream.ErrorCode`)."""

    def __init__(self, code: int):
        from spikepack.firmware.bitstream import ErrorCode
        try:
            self.name = ErrorCode(code).name
        except ValueError:
            self.name = f"UNKNOWN_{code}"
        self.code = code
        super().__init__(f"the loader rejected the bitstream: error {code} ({self.name})")


Op = Generator[Any, Any, Any]


class Protocol:
    """Everything the driver knows, from ``manifest.json`` alone: register offsets and fields,
    T, the stream formats. Its methods are generators of bus requests (run them with
    :class:`Driver` or :class:`AsyncDriver`)."""

    def __init__(self, manifest: dict, *, max_polls: int = 100_000):
        if not isinstance(manifest, dict) or "registers" not in manifest:
            raise TypeError("manifest must be the dict of a SpikePack manifest.json")
        if not isinstance(max_polls, int) or max_polls < 1:
            raise ValueError(f"max_polls must be a positive integer, not {max_polls!r}")
        self.manifest = manifest
        self.max_polls = max_polls
        self.signature = int(manifest["signature"])
        self.timesteps = int(manifest["config"]["timesteps"])
        self.inputs_per_beat = int(manifest["derived"]["inputs_per_beat"])
        self.out_bits = int(manifest["derived"]["output_bits"])
        self.max_outputs = int(manifest["config"]["max_neurons"])
        self.registers_by_name = {r["name"].upper(): r for r in manifest["registers"]}

    # --- the register map ---------------------------------------------------------------------

    def offset(self, register: str) -> int:
        try:
            return int(self.registers_by_name[register.upper()]["offset"])
        except KeyError:
            raise KeyError(f"register {register!r} is not in the manifest's register map") from None

    def field(self, register: str, field: str) -> tuple[int, int]:
        """(lsb, width) of a field."""
        for f in self.registers_by_name[register.upper()]["fields"]:
            if f["name"].lower() == field.lower():
                return int(f["lsb"]), int(f["width"])
        raise KeyError(f"register {register!r} has no field {field!r}")

    def decode(self, register: str, value: int) -> dict[str, int]:
        return {f["name"].lower(): (value >> f["lsb"]) & ((1 << f["width"]) - 1)
                for f in self.registers_by_name[register.upper()]["fields"]}

    def bit(self, register: str, field: str, value: int = 1) -> int:
        lsb, width = self.field(register, field)
        return (value & ((1 << width) - 1)) << lsb

    # --- stream formats -----------------------------------------------------------------------

    def pack_image(self, words) -> bytes:
        """Input spike words (N0,) -> the ``s_axis_in`` packet: K = 32 // T words a 32-bit beat,
        input i in beat i // K at bits (i % K)*T, zeros beyond N0, little-endian bytes."""
        z = np.asarray(words)
        T, K = self.timesteps, self.inputs_per_beat
        if z.ndim != 1 or not np.issubdtype(z.dtype, np.integer):
            raise ValueError(f"an image is a 1-D array of integer spike words, not {z.dtype} "
                             f"of shape {z.shape}")
        if z.size == 0:
            raise ValueError("an image needs at least one spike word")
        if z.min() < 0 or z.max() >= (1 << T):
            raise ValueError(f"spike words must lie in 0..{(1 << T) - 1} (T = {T})")
        padded = np.zeros(-(-z.size // K) * K, dtype=np.uint64)
        padded[:z.size] = z
        shifts = (np.arange(K, dtype=np.uint64) * np.uint64(T))
        beats = (padded.reshape(-1, K) << shifts).sum(axis=1, dtype=np.uint64)
        return beats.astype("<u4").tobytes()

    def unpack_potentials(self, data: bytes) -> np.ndarray:
        """An ``m_axis_out`` packet -> readout potentials: one OUT_BITS-wide little-endian
        signed value a beat."""
        size = self.out_bits // 8
        if len(data) % size:
            raise DriverError(f"an output packet of {len(data)} bytes is not a whole number of "
                              f"{self.out_bits}-bit beats")
        if size in (4, 8):
            return np.frombuffer(data, dtype=f"<i{size}").astype(np.int64)
        return np.array([int.from_bytes(data[i:i + size], "little", signed=True)
                         for i in range(0, len(data), size)], dtype=object)

    # --- operations (generators of bus requests) ------------------------------------------------

    def check_hardware(self) -> Op:
        """Check ID and SIGNATURE against the manifest; return the signature."""
        ident = yield Read(self.offset("ID"))
        if ident != MAGIC:
            raise DriverError(f"ID register reads 0x{ident:08x}, not 0x{MAGIC:08x} (\"SPK1\"): "
                              f"no SpikePack accelerator at this address")
        signature = yield Read(self.offset("SIGNATURE"))
        if signature != self.signature:
            raise DriverError(f"hardware signature 0x{signature:08x} differs from the "
                              f"manifest's 0x{self.signature:08x}: another configuration")
        return signature

    def load_network(self, bitstream: bytes) -> Op:
        """Stream a weight bitstream into the loader and wait for its verdict: return when it is
        committed, raise :class:`LoadError` with the loader's code when it is rejected."""
        data = bytes(bitstream)
        if not data or len(data) % 4:
            raise ValueError(f"a bitstream is a whole number of 32-bit words, not {len(data)} bytes")
        good = yield Read(self.offset("LOAD_GOOD"))
        bad = yield Read(self.offset("LOAD_BAD"))
        yield Send("load", data)
        for _ in range(self.max_polls):
            if (yield Read(self.offset("LOAD_BAD"))) != bad:
                code = yield Read(self.offset("LOAD_ERROR"))
                raise LoadError(self.decode("LOAD_ERROR", code)["load_error_code"])
            if (yield Read(self.offset("LOAD_GOOD"))) != good:
                return
            yield Pause()
        raise DriverError(f"the loader gave no verdict after {self.max_polls} polls")

    def run_images(self, images, *, window: int = 2) -> Op:
        """Run images (S, N0) of spike words in free-running mode (CONTROL.RUN = 1); return the
        readout potentials (S, M). At most ``window`` images are in flight (sent, output not
        yet received): the accelerator buffers two, so with 2 the next image is always waiting
        when one ends, and a blocking send never waits on an unread output."""
        z = np.asarray(images)
        if z.ndim != 2:
            raise ValueError(f"images must be a 2-D array (images, inputs), not shape {z.shape}")
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        packets = [self.pack_image(row) for row in z]
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "run"))
        outputs: list[np.ndarray] = []
        max_bytes = self.max_outputs * self.out_bits // 8
        for sent, packet in enumerate(packets):
            if sent - len(outputs) >= window:
                outputs.append(self.unpack_potentials((yield Receive("out", max_bytes))))
            yield Send("in", packet)
        while len(outputs) < len(packets):
            outputs.append(self.unpack_potentials((yield Receive("out", max_bytes))))
        sizes = {len(o) for o in outputs}
        if len(sizes) > 1:
            raise DriverError(f"output packets of different lengths: {sorted(sizes)}")
        return np.stack(outputs) if outputs else np.zeros((0, 0), dtype=np.int64)

    def registers(self) -> Op:
        """Every readable register: {name: value}."""
        out = {}
        for name, r in self.registers_by_name.items():
            if r["access"] != "WO":
                out[name] = yield Read(int(r["offset"]))
        return out

    def status(self) -> Op:
        """STATUS decoded: {field: value}."""
        return self.decode("STATUS", (yield Read(self.offset("STATUS"))))

    def errors(self) -> Op:
        """The loader's last error code and the sticky events: {"load_error": code,
        "load_error_name": name, "events": {field: bit}}."""
        code = self.decode("LOAD_ERROR", (yield Read(self.offset("LOAD_ERROR"))))["load_error_code"]
        events = self.decode("EVENTS", (yield Read(self.offset("EVENTS"))))
        return {"load_error": code, "load_error_name": LoadError(code).name if code else "NONE",
                "events": events}

    def clear_events(self) -> Op:
        yield Write(self.offset("EVENTS"), sum(self.bit("EVENTS", f) for f in
                                               self.decode("EVENTS", 0)))

    def set_run(self, run: bool) -> Op:
        """CONTROL.RUN: 1 free-running, 0 one inference per :meth:`start`."""
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "run", int(bool(run))))

    def start(self, *, run: bool = False) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "start")
                    | self.bit("CONTROL", "run", int(bool(run))))

    def soft_reset(self, *, run: bool = True) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "soft_reset")
                    | self.bit("CONTROL", "run", int(bool(run))))

    def clear_counters(self, *, run: bool = True) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "clear_counters")
                    | self.bit("CONTROL", "run", int(bool(run))))


#: The operations every front end offers, run over its bus.
OPERATIONS = ("check_hardware", "load_network", "run_images", "registers", "status", "errors",
              "clear_events", "set_run", "start", "soft_reset", "clear_counters")


def _step_sync(bus, request):
    if isinstance(request, Read):
        return int(bus.read32(request.offset))
    if isinstance(request, Write):
        return bus.write32(request.offset, request.value)
    if isinstance(request, Send):
        return bus.send(request.stream, request.data)
    if isinstance(request, Receive):
        return bytes(bus.receive(request.stream, request.max_bytes))
    if isinstance(request, Pause):
        return bus.pause()
    raise TypeError(f"unknown bus request {request!r}")


async def _step_async(bus, request):
    if isinstance(request, Read):
        return int(await bus.read32(request.offset))
    if isinstance(request, Write):
        return await bus.write32(request.offset, request.value)
    if isinstance(request, Send):
        return await bus.send(request.stream, request.data)
    if isinstance(request, Receive):
        return bytes(await bus.receive(request.stream, request.max_bytes))
    if isinstance(request, Pause):
        return await bus.pause()
    raise TypeError(f"unknown bus request {request!r}")


class Driver:
    """Synchronous front end: ``Driver(bus, manifest)``; every :class:`Protocol` operation
    (:data:`OPERATIONS`) is a method that returns its result."""

    def __init__(self, bus, manifest: dict | str | Path, **kwargs):
        self.bus = bus
        self.protocol = Protocol(_manifest(manifest), **kwargs)

    def _run(self, gen: Op):
        result = None
        try:
            while True:
                result = _step_sync(self.bus, gen.send(result))
        except StopIteration as stop:
            return stop.value


class AsyncDriver:
    """``async`` front end: ``AsyncDriver(bus, manifest)``; every :class:`Protocol` operation
    (:data:`OPERATIONS`) is a coroutine method (``await drv.run_images(z)``)."""

    def __init__(self, bus, manifest: dict | str | Path, **kwargs):
        self.bus = bus
        self.protocol = Protocol(_manifest(manifest), **kwargs)

    async def _run(self, gen: Op):
        result = None
        try:
            while True:
                result = await _step_async(self.bus, gen.send(result))
        except StopIteration as stop:
            return stop.value


def _sync_op(name):
    @functools.wraps(getattr(Protocol, name))
    def op(self, *args, **kwargs):
        return self._run(getattr(self.protocol, name)(*args, **kwargs))
    return op


def _async_op(name):
    @functools.wraps(getattr(Protocol, name))
    async def op(self, *args, **kwargs):
        return await self._run(getattr(self.protocol, name)(*args, **kwargs))
    return op


for _name in OPERATIONS:
    setattr(Driver, _name, _sync_op(_name))
    setattr(AsyncDriver, _name, _async_op(_name))


def _manifest(manifest) -> dict:
    if isinstance(manifest, dict):
        return manifest
    from spikepack.accelerator import load_manifest
    return load_manifest(manifest)[0]


# --- buses -----------------------------------------------------------------------------------

class CocotbBus:
    """The RTL simulation (async): cocotbext-axi's AxiLiteMaster on ``s_axil``, AxiStreamSource
    on ``s_axis_load`` and ``s_axis_in``, AxiStreamSink on ``m_axis_out``. ``pause`` waits
    ``poll_cycles`` clock cycles; ``receive`` fails after ``timeout_cycles`` without a packet."""

    def __init__(self, clk, *, axil, load, inp, out, poll_cycles: int = 16,
                 timeout_cycles: int = 1_000_000, clock_ns: float = 10):
        self.clk, self.axil = clk, axil
        self.sources = {"load": load, "in": inp}
        self.out = out
        self.poll_cycles, self.timeout_cycles, self.clock_ns = poll_cycles, timeout_cycles, clock_ns

    async def read32(self, offset: int) -> int:
        return await self.axil.read_dword(offset)

    async def write32(self, offset: int, value: int) -> None:
        await self.axil.write_dword(offset, value)

    async def send(self, stream: str, data: bytes) -> None:
        from cocotbext.axi import AxiStreamFrame
        await self.sources[stream].send(AxiStreamFrame(data))

    async def receive(self, stream: str, max_bytes: int) -> bytes:
        from cocotb.triggers import SimTimeoutError, with_timeout
        if stream != "out":
            raise ValueError(f"only the 'out' stream can be received, not {stream!r}")
        try:
            frame = await with_timeout(self.out.recv(), self.timeout_cycles * self.clock_ns, "ns")
        except SimTimeoutError:
            raise DriverError(f"no output packet within {self.timeout_cycles} cycles") from None
        data = bytes(frame.tdata)
        if len(data) > max_bytes:
            raise DriverError(f"an output packet of {len(data)} bytes exceeds {max_bytes}")
        return data

    async def pause(self) -> None:
        from cocotb.triggers import ClockCycles
        await ClockCycles(self.clk, self.poll_cycles)


class MmapBus:
    """Registers through ``mmap`` of a UIO device (``/dev/uioN``, map 0) or of ``/dev/mem`` at
    the accelerator's physical base address (root only). No streams: the DMA engines need
    physically contiguous buffers, which :class:`PynqBus` gets from PYNQ's ``allocate``."""

    def __init__(self, path: str | Path = "/dev/mem", *, base: int = 0, size: int = 0x1000,
                 poll_seconds: float = 1e-4):
        page = mmap.ALLOCATIONGRANULARITY
        if base % page:
            raise ValueError(f"base 0x{base:x} is not aligned to the {page}-byte page")
        self._fd = os.open(str(path), os.O_RDWR | os.O_SYNC)
        try:
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
        except BaseException:
            os.close(self._fd)
            raise
        self._words = memoryview(self._map).cast("I")
        self.poll_seconds = poll_seconds

    def read32(self, offset: int) -> int:
        return int(self._words[offset >> 2])

    def write32(self, offset: int, value: int) -> None:
        self._words[offset >> 2] = value & 0xFFFFFFFF

    def send(self, stream: str, data: bytes) -> None:
        raise DriverError("MmapBus maps the registers only; streams need PynqBus (pip install "
                          "pynq on the board) or your own DMA bus")

    def receive(self, stream: str, max_bytes: int) -> bytes:
        self.send(stream, b"")

    def pause(self) -> None:
        time.sleep(self.poll_seconds)

    def close(self) -> None:
        self._words.release()
        self._map.close()
        os.close(self._fd)


class AxiDmaMmap:
    """One AXI DMA engine (PG021) in simple (register) mode, through ``mmap`` of its register
    window, with a physically contiguous buffer from the u-dma-buf kernel module
    (``/dev/udmabufN``, physical address in ``/sys/class/u-dma-buf/udmabufN/phys_addr``), opened
    with ``O_SYNC`` so that the CPU's view is uncached. For boards without PYNQ; not testable
    without a board (see docs/board.md).

    A transfer: set DMACR.RS, write the buffer address, write LENGTH (which starts it), poll
    DMASR until Idle, clear IOC; S2MM_LENGTH then holds the bytes received."""

    #: channel -> offsets of DMACR, DMASR, the buffer address (low word; high word + 4), LENGTH
    CHANNELS = {"mm2s": (0x00, 0x04, 0x18, 0x28), "s2mm": (0x30, 0x34, 0x48, 0x58)}
    RS, IDLE, IOC, ERRORS = 1 << 0, 1 << 1, 1 << 12, 0x70

    def __init__(self, regs: "MmapBus", buffer: str | Path = "/dev/udmabuf0", *,
                 max_polls: int = 1_000_000):
        self.regs, self.max_polls = regs, max_polls
        sys_dir = Path("/sys/class/u-dma-buf") / Path(buffer).name
        self.phys = int((sys_dir / "phys_addr").read_text(), 0)
        self.size = int((sys_dir / "size").read_text(), 0)
        self._fd = os.open(str(buffer), os.O_RDWR | os.O_SYNC)
        try:
            self._map = mmap.mmap(self._fd, self.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self._fd)
            raise

    def _transfer(self, channel: str, nbytes: int) -> int:
        """Run one transfer of ``nbytes`` (S2MM: at most); return LENGTH afterwards."""
        cr, sr, addr, length = self.CHANNELS[channel]
        r = self.regs
        if not 0 < nbytes <= self.size:
            raise DriverError(f"a transfer of {nbytes} bytes does not fit the {self.size}-byte "
                              f"buffer")
        r.write32(cr, self.RS)
        r.write32(addr, self.phys & 0xFFFFFFFF)
        r.write32(addr + 4, self.phys >> 32)
        r.write32(length, nbytes)                       # starts the transfer
        for _ in range(self.max_polls):
            status = r.read32(sr)
            if status & self.ERRORS:
                raise DriverError(f"AXI DMA {channel} error, DMASR 0x{status:08x}")
            if status & self.IDLE:
                r.write32(sr, self.IOC)
                return r.read32(length)
        raise DriverError(f"the AXI DMA's {channel} did not finish within {self.max_polls} polls")

    def send(self, data: bytes) -> None:
        self._map[:len(data)] = data
        self._transfer("mm2s", len(data))

    def receive(self, max_bytes: int) -> bytes:
        n = self._transfer("s2mm", max_bytes)           # S2MM_LENGTH: the bytes received
        return bytes(self._map[:n])

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class MmapDmaBus:
    """A Linux board without PYNQ: the IP's registers and two AXI DMAs through ``mmap``
    (:class:`MmapBus` windows, e.g. ``/dev/uio0..2`` or ``/dev/mem`` at the addresses of the
    block design), buffers from u-dma-buf (:class:`AxiDmaMmap`). Not testable without a board."""

    def __init__(self, regs: MmapBus, dma_load: AxiDmaMmap, dma_io: AxiDmaMmap):
        self.regs, self.dma = regs, {"load": dma_load, "in": dma_io}
        self.dma_out = dma_io

    def read32(self, offset: int) -> int:
        return self.regs.read32(offset)

    def write32(self, offset: int, value: int) -> None:
        self.regs.write32(offset, value)

    def send(self, stream: str, data: bytes) -> None:
        self.dma[stream].send(data)

    def receive(self, stream: str, max_bytes: int) -> bytes:
        return self.dma_out.receive(max_bytes)

    def pause(self) -> None:
        self.regs.pause()


class PynqBus:
    """A Zynq board under PYNQ: registers through the IP's MMIO, streams through two AXI DMA
    engines of the block design that ``spikepack package`` writes (``dma_load``: MM2S to
    ``s_axis_load``; ``dma_io``: MM2S to ``s_axis_in``, S2MM from ``m_axis_out``), buffers from
    ``pynq.allocate``. Not testable without a board (see docs/board.md).

    ``PynqBus.from_bitfile("spikepack.bit")`` programs the FPGA (PYNQ reads the ``.hwh`` next to
    the ``.bit``) and finds the IP and the DMAs by their block-design names."""

    #: AXI DMA S2MM_LENGTH register (PG021): bytes actually written by the last transfer.
    S2MM_LENGTH = 0x58

    def __init__(self, overlay, *, ip: str = "spikepack_0", dma_load: str = "dma_load",
                 dma_io: str = "dma_io", poll_seconds: float = 1e-4):
        import pynq
        self._pynq = pynq
        self.overlay = overlay
        self.mmio = getattr(overlay, ip).mmio
        self.dma = {"load": getattr(overlay, dma_load).sendchannel,
                    "in": getattr(overlay, dma_io).sendchannel}
        self.dma_out = getattr(overlay, dma_io)
        self.poll_seconds = poll_seconds

    @classmethod
    def from_bitfile(cls, bitfile: str | Path, **names) -> "PynqBus":
        import pynq
        return cls(pynq.Overlay(str(bitfile)), **names)

    def read32(self, offset: int) -> int:
        return int(self.mmio.read(offset))

    def write32(self, offset: int, value: int) -> None:
        self.mmio.write(offset, value & 0xFFFFFFFF)

    def send(self, stream: str, data: bytes) -> None:
        buf = self._pynq.allocate(shape=(len(data),), dtype=np.uint8)
        try:
            buf[:] = np.frombuffer(data, dtype=np.uint8)
            buf.flush()
            self.dma[stream].transfer(buf)
            self.dma[stream].wait()
        finally:
            buf.freebuffer()

    def receive(self, stream: str, max_bytes: int) -> bytes:
        buf = self._pynq.allocate(shape=(max_bytes,), dtype=np.uint8)
        try:
            self.dma_out.recvchannel.transfer(buf)
            self.dma_out.recvchannel.wait()
            n = int(self.dma_out.mmio.read(self.S2MM_LENGTH))
            buf.invalidate()
            return bytes(buf[:n])
        finally:
            buf.freebuffer()

    def pause(self) -> None:
        time.sleep(self.poll_seconds)
