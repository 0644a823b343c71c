"""A small AXI4-Lite slave: the bus handshakes, turned into single-cycle register strobes.

:class:`AXI4LiteSlave` speaks AXI4-Lite on its member ``bus`` (:class:`AXI4LiteSignature`, flipped:
``awaddr``, ``awvalid``, ... ``rready`` as in the AMBA specification; only the accelerator's top
level flattens them, as ``s_axil_awaddr`` ...) and drives a simple register port for a decoder
next to it:

* write: ``wr_en`` is high for one cycle with ``wr_addr`` (byte address), ``wr_data`` and
  ``wr_strb``; the decoder answers in the same cycle with ``wr_err`` (1 = no register there).
* read: ``rd_en`` is high for one cycle with ``rd_addr`` (which holds until the R handshake;
  while no read is in progress it follows ``araddr``);
  the decoder answers ``read_latency`` cycles later (a constructor parameter, 0 = in the same
  cycle) with ``rd_data`` and ``rd_err``; the slave registers them into ``rdata``/``rresp``. A
  decoder with ``read_latency = 1`` can register a partial decode of ``rd_addr`` on its way.

Handshakes. AW and W are accepted independently, in either order or in the same cycle; each has
a one-entry holding register, so ``awready`` (``wready``) is high exactly when no address (data)
is held. The write is performed in the first cycle in which both are held and no write response
is waiting, and ``bvalid`` rises the cycle after; the next address or data is accepted as soon
as the held one has been used. Reads are independent of writes: ``arready`` is high when no read
is in progress. ``*ready`` never depends on ``*valid``, and ``bvalid``/``rvalid`` stay high until
their handshake. Responses are OKAY (``0b00``), or SLVERR (``0b10``) when the decoder reports no
register at the address (the write is then not performed).

Latency: write, 2 cycles from the later of AW/W handshake to ``bvalid`` (1 to the register
update); read, ``2 + read_latency`` cycles from the AR handshake to ``rvalid``. Throughput: one
write every 2 cycles and one read every ``3 + read_latency`` cycles when the master answers at
once (one outstanding transaction of each kind).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4LiteSignature", "AXI4LiteSlave", "RESP_OKAY", "RESP_SLVERR",
           "axil_slave_members"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10

class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite with 32-bit data and ``addr_bits``-bit byte addresses, as the master sees it
    (a slave's member is ``In(AXI4LiteSignature(...))``); members named as in AMBA."""

    def __init__(self, addr_bits: int):
        self._addr_bits = addr_bits
        super().__init__({
            "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_bits(self) -> int:
        return self._addr_bits

    def __eq__(self, other):
        return type(other) is type(self) and other._addr_bits == self._addr_bits

    def __hash__(self):
        return hash((type(self), self._addr_bits))


def axil_slave_members(addr_bits: int, prefix: str = "") -> dict:
    """Flat AXI4-Lite members of a slave (``prefix`` + AMBA name -> In/Out member), for a top
    level's ports (the blocks use :class:`AXI4LiteSignature`)."""
    return {f"{prefix}{name}": member.flip()
            for name, member in AXI4LiteSignature(addr_bits).members.items()}


class AXI4LiteSlave(wiring.Component):
    """AXI4-Lite slave front end (32-bit data, ``addr_bits``-bit byte addresses)."""

    def __init__(self, *, addr_bits: int = 8, read_latency: int = 0):
        if not isinstance(addr_bits, int) or isinstance(addr_bits, bool):
            raise TypeError(f"addr_bits must be an integer, not {type(addr_bits).__name__}")
        if not 3 <= addr_bits <= 32:
            raise ValueError(f"addr_bits must be between 3 and 32, not {addr_bits}")
        if not isinstance(read_latency, int) or isinstance(read_latency, bool):
            raise TypeError(f"read_latency must be an integer, not {type(read_latency).__name__}")
        if not 0 <= read_latency <= 4:
            raise ValueError(f"read_latency must be between 0 and 4, not {read_latency}")
        self._addr_bits = addr_bits
        self._read_latency = read_latency
        super().__init__({
            "bus": In(AXI4LiteSignature(addr_bits)),
            # register port
            "wr_en": Out(1), "wr_addr": Out(addr_bits), "wr_data": Out(32), "wr_strb": Out(4),
            "wr_err": In(1),
            "rd_en": Out(1), "rd_addr": Out(addr_bits), "rd_data": In(32), "rd_err": In(1),
        })

    @property
    def addr_bits(self) -> int:
        return self._addr_bits

    @property
    def read_latency(self) -> int:
        return self._read_latency

    def elaborate(self, platform):
        m = Module()

        # --- write channel -----------------------------------------------------------------
        aw_held = Signal()
        w_held = Signal()
        m.d.comb += [self.bus.awready.eq(~aw_held), self.bus.wready.eq(~w_held)]
        with m.If(self.bus.awvalid & self.bus.awready):
            m.d.sync += [aw_held.eq(1), self.wr_addr.eq(self.bus.awaddr)]
        with m.If(self.bus.wvalid & self.bus.wready):
            m.d.sync += [w_held.eq(1), self.wr_data.eq(self.bus.wdata), self.wr_strb.eq(self.bus.wstrb)]
        do_write = aw_held & w_held & ~self.bus.bvalid
        m.d.comb += self.wr_en.eq(do_write)
        with m.If(do_write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), self.bus.bvalid.eq(1)]
            with m.If(self.wr_err):
                m.d.sync += self.bus.bresp.eq(RESP_SLVERR)
            with m.Else():
                m.d.sync += self.bus.bresp.eq(RESP_OKAY)
        with m.If(self.bus.bvalid & self.bus.bready):
            m.d.sync += self.bus.bvalid.eq(0)

        # --- read channel ------------------------------------------------------------------
        # stage[0] = rd_en, stage[i] = i cycles later; the answer is taken in the last one.
        # ar_busy: from the AR handshake to the R handshake (arready = ~ar_busy, a flip-flop);
        # rd_addr follows araddr while arready is high, so it holds the handshake's address.
        stage = [Signal(name=f"rd_stage{i}") for i in range(self._read_latency + 1)]
        ar_held = stage[0]
        ar_busy = Signal()
        m.d.comb += self.bus.arready.eq(~ar_busy)
        with m.If(self.bus.arready):
            m.d.sync += self.rd_addr.eq(self.bus.araddr)
        with m.If(self.bus.arvalid & self.bus.arready):
            m.d.sync += [ar_held.eq(1), ar_busy.eq(1)]
        with m.Else():
            m.d.sync += ar_held.eq(0)
        with m.If(self.bus.rvalid & self.bus.rready):
            m.d.sync += ar_busy.eq(0)
        m.d.sync += [b.eq(a) for a, b in zip(stage, stage[1:])]
        m.d.comb += self.rd_en.eq(ar_held)
        with m.If(stage[-1]):
            m.d.sync += [self.bus.rvalid.eq(1),
                         self.bus.rdata.eq(self.rd_data),
                         self.bus.rresp.eq(RESP_OKAY)]
            with m.If(self.rd_err):
                m.d.sync += [self.bus.rdata.eq(0), self.bus.rresp.eq(RESP_SLVERR)]
        with m.If(self.bus.rvalid & self.bus.rready):
            m.d.sync += self.bus.rvalid.eq(0)
        return m
