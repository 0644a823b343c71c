"""A small AXI4-Lite slave: the bus handshakes, turned into single-cycle register strobes.

:class:`AXI4LiteSlave` speaks AXI4-Lite on flat members named as in the AMBA specification
(``awaddr``, ``awvalid``, ... ``rready``; a parent prefixes them, e.g. ``s_axil_awaddr``) and
drives a simple register port for a decoder next to it:

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

__all__ = ["AXI4LiteSlave", "RESP_OKAY", "RESP_SLVERR", "AXIL_PORTS", "axil_slave_members"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10

#: AXI4-Lite member names in AMBA order, with their direction as seen by the slave.
AXIL_PORTS = ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
              "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready", "rdata",
              "rresp", "rvalid", "rready")


def axil_slave_members(addr_bits: int, prefix: str = "") -> dict:
    """The AXI4-Lite members of a slave (``prefix`` + AMBA name -> In/Out member)."""
    return {
        f"{prefix}awaddr": In(addr_bits), f"{prefix}awprot": In(3), f"{prefix}awvalid": In(1),
        f"{prefix}awready": Out(1),
        f"{prefix}wdata": In(32), f"{prefix}wstrb": In(4), f"{prefix}wvalid": In(1),
        f"{prefix}wready": Out(1),
        f"{prefix}bresp": Out(2), f"{prefix}bvalid": Out(1), f"{prefix}bready": In(1),
        f"{prefix}araddr": In(addr_bits), f"{prefix}arprot": In(3), f"{prefix}arvalid": In(1),
        f"{prefix}arready": Out(1),
        f"{prefix}rdata": Out(32), f"{prefix}rresp": Out(2), f"{prefix}rvalid": Out(1),
        f"{prefix}rready": In(1),
    }


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
            **axil_slave_members(addr_bits),
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
        m.d.comb += [self.awready.eq(~aw_held), self.wready.eq(~w_held)]
        with m.If(self.awvalid & self.awready):
            m.d.sync += [aw_held.eq(1), self.wr_addr.eq(self.awaddr)]
        with m.If(self.wvalid & self.wready):
            m.d.sync += [w_held.eq(1), self.wr_data.eq(self.wdata), self.wr_strb.eq(self.wstrb)]
        do_write = aw_held & w_held & ~self.bvalid
        m.d.comb += self.wr_en.eq(do_write)
        with m.If(do_write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), self.bvalid.eq(1)]
            with m.If(self.wr_err):
                m.d.sync += self.bresp.eq(RESP_SLVERR)
            with m.Else():
                m.d.sync += self.bresp.eq(RESP_OKAY)
        with m.If(self.bvalid & self.bready):
            m.d.sync += self.bvalid.eq(0)

        # --- read channel ------------------------------------------------------------------
        # stage[0] = rd_en, stage[i] = i cycles later; the answer is taken in the last one.
        # ar_busy: from the AR handshake to the R handshake (arready = ~ar_busy, a flip-flop);
        # rd_addr follows araddr while arready is high, so it holds the handshake's address.
        stage = [Signal(name=f"rd_stage{i}") for i in range(self._read_latency + 1)]
        ar_held = stage[0]
        ar_busy = Signal()
        m.d.comb += self.arready.eq(~ar_busy)
        with m.If(self.arready):
            m.d.sync += self.rd_addr.eq(self.araddr)
        with m.If(self.arvalid & self.arready):
            m.d.sync += [ar_held.eq(1), ar_busy.eq(1)]
        with m.Else():
            m.d.sync += ar_held.eq(0)
        with m.If(self.rvalid & self.rready):
            m.d.sync += ar_busy.eq(0)
        m.d.sync += [b.eq(a) for a, b in zip(stage, stage[1:])]
        m.d.comb += self.rd_en.eq(ar_held)
        with m.If(stage[-1]):
            m.d.sync += [self.rvalid.eq(1),
                         self.rdata.eq(self.rd_data),
                         self.rresp.eq(RESP_OKAY)]
            with m.If(self.rd_err):
                m.d.sync += [self.rdata.eq(0), self.rresp.eq(RESP_SLVERR)]
        with m.If(self.rvalid & self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m
