"""Host driver of a generated SpikePack accelerator: check the hardware, load a weight
bitstream, run images, read results, counters and errors.

The driver is written once, as a **sans-IO core**: :mod:`spikepack.protocol` (:class:`Protocol`,
its requests :class:`Read`, :class:`Write`, :class:`Send`, :class:`Receive`, :class:`Pause`,
and the register map), re-exported here. Two front ends run the same generators:

* :class:`Driver`, synchronous, over a bus with plain methods (a board:
  :class:`PynqBus` when ``pynq`` is installed; otherwise :class:`MmapDmaBus`, the registers and
  two AXI DMAs through ``mmap`` of ``/dev/uio*`` or ``/dev/mem`` with u-dma-buf buffers, or
  :class:`MmapBus` for the registers alone);
* :class:`AsyncDriver`, ``async``, over a bus whose methods are coroutines (the RTL simulation:
  :class:`CocotbBus` over cocotbext-axi's AxiLiteMaster / AxiStreamSource / AxiStreamSink,
  from :mod:`spikepack.sim.benches.host`).

Both take the manifest as a dict or as the path of ``manifest.json`` (or its folder). So what
the RTL benches prove (``sim/benches/driver_bench.py``: the digits network loaded and run
bit-exactly through the protocol) is the very code that drives a board; only the bus
underneath differs. A bus's five methods are listed in :mod:`spikepack.protocol`.

Images go to :meth:`Driver.run_images` as spike words in the order ``s_axis_in`` carries them
(:func:`spikepack.protocol.stream_words`). A bitstream whose first conv layer ``spikepack pack``
folded (docs/bitstream.md, "The first layer") reads the folded map: pass the model's fold,
``stream_words(image, R, fold=model.input_fold(config))`` (the same fold ``bitstream.pack``
applied, from the model and the configuration alone).

Nothing here needs cocotb or pynq at import time; both are imported by the bus that uses them.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import numpy as np

from spikepack import protocol
from spikepack.protocol import (MAGIC, OPERATIONS, STREAMS, DriverError, LoadError, Pause,
                                Protocol, Read, Receive, RegisterMap, Registers, Send, Write,
                                run_async, run_sync)
from spikepack.sim.benches.host import CocotbBus

__all__ = ["Read", "Write", "Send", "Receive", "Pause", "DriverError", "LoadError", "Protocol",
           "Driver", "AsyncDriver", "CocotbBus", "MmapBus", "MmapDmaBus", "AxiDmaMmap", "PynqBus",
           "STREAMS", "MAGIC", "OPERATIONS", "RegisterMap", "Registers", "run_sync", "run_async"]


def _manifest(manifest) -> dict:
    if isinstance(manifest, dict):
        return manifest
    from spikepack.accelerator import load_manifest
    return load_manifest(manifest)[0]


class Driver(protocol.Driver):
    """Synchronous front end: ``Driver(bus, manifest)``, the manifest a dict or the path of
    ``manifest.json`` (or its folder); every :class:`Protocol` operation (:data:`OPERATIONS`)
    is a method that returns its result."""

    _manifest = staticmethod(_manifest)


class AsyncDriver(protocol.AsyncDriver):
    """``async`` front end: ``AsyncDriver(bus, manifest)``, the manifest a dict or a path; every
    :class:`Protocol` operation (:data:`OPERATIONS`) is a coroutine method
    (``await drv.run_images(z)``)."""

    _manifest = staticmethod(_manifest)


# --- buses -----------------------------------------------------------------------------------

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
