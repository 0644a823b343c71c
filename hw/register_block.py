"""The register file of the accelerator's register map (:data:`spikepack.hw.registers.REGISTERS`)
behind an AXI4-Lite slave (:class:`spikepack.hw.axil.AXI4LiteSlave`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.axil import AXI4LiteSignature, AXI4LiteSlave
from spikepack.hw.registers import ADDR_BITS, REGISTER_BY_NAME, REGISTERS, Field, Register
from spikepack.hw.stream import or_all

__all__ = ["StatusSignature", "ControlSignature", "RegisterBlock"]


class StatusSignature(wiring.Signature):
    """What the accelerator reports to the register block, one member per input field of
    :data:`REGISTERS` (the producer's view, so all ``Out``): ``<field>`` (its width) for a
    ``status`` field, ``<field>_inc`` (1) for a ``counter``, ``<field>_set`` (1) for an
    ``event``. The table is its only definition: a field added there appears here."""

    def __init__(self):
        members = {}
        for r in REGISTERS:
            for f in r.fields:
                if f.kind in _STATUS_SUFFIX:
                    members[f.name + _STATUS_SUFFIX[f.kind]] = Out(1 if f.kind != "status"
                                                                  else f.width)
        super().__init__(members)


class ControlSignature(wiring.Signature):
    """What the register block drives (its view, so all ``Out``): ``<field>`` for every ``rw``
    field (its width and reset value) and every ``pulse`` (1 bit, one cycle)."""

    def __init__(self, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        super().__init__({f.name: Out(f.width, init=f.value_for(config) if f.kind == "rw" else 0)
                          for r in REGISTERS for f in r.fields if f.kind in ("rw", "pulse")})


#: member name suffix of each input field kind in :class:`StatusSignature`
_STATUS_SUFFIX = {"status": "", "counter": "_inc", "event": "_set"}


class RegisterBlock(wiring.Component):
    """The register file of :data:`REGISTERS` behind an :class:`AXI4LiteSlave`.

    Members: the AXI4-Lite slave ``bus`` (``In(AXI4LiteSignature(ADDR_BITS))``), ``status``
    (``In(StatusSignature())``: what the rest of the accelerator reports) and ``control``
    (``Out(ControlSignature(config))``: the RW fields and pulses), both derived from the table.

    Timing: every ``status`` input, ``_inc`` and ``_set`` is registered on entry, so nothing
    outside reaches the read multiplexer or a counter's adder in the same cycle: counters and
    events act one cycle after their input. Reads go through a two-level multiplexer with a
    register between (:class:`AXI4LiteSlave` with ``read_latency = 1``): ``rvalid`` rises 3
    cycles after the AR handshake, and a read returns the status inputs as they were in the
    cycle of the AR handshake (and counters and events as of the cycle before). Writes to RW
    fields and W1C bits go through a register stage: they take effect 2 cycles after the
    slave's ``wr_en`` (3 after the later of the AW/W handshakes, 1 after ``bvalid`` rises), so a
    read that follows the B handshake sees them; pulses are high in the cycle after ``wr_en``
    (as ``bvalid`` rises).

    Latency, in short: read ``2 + read_latency = 3`` cycles from the AR handshake to
    ``rvalid``; write 2 cycles from the later of the AW/W handshakes to ``bvalid``, 3 to the
    register update. Throughput: one read every ``3 + read_latency = 4`` cycles and one write
    every 2 (:class:`AXI4LiteSlave`, a master that answers at once); a counter counts one
    ``_inc`` a cycle.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        for r in REGISTERS:      # resolve every constant now, so a bad one fails early
            r.reset_value(config)
        super().__init__({"bus": In(AXI4LiteSignature(ADDR_BITS)),
                          "status": In(StatusSignature()),
                          "control": Out(ControlSignature(config))})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        m.submodules.axil = axil = AXI4LiteSlave(addr_bits=ADDR_BITS, read_latency=1)
        wiring.connect(m, wiring.flipped(self.bus), axil.bus)

        # write address, decoded one-hot into flip-flops from awaddr while the slave is ready
        # for an address (so they hold the accepted one until its write is done)
        wsel = {r.name: Signal(name=f"wsel_{r.name.lower()}") for r in REGISTERS}
        whit = Signal()
        with m.If(axil.bus.awready):
            awaddr = self.bus.awaddr[2:]
            m.d.sync += [wsel[r.name].eq(awaddr == r.offset >> 2) for r in REGISTERS]
            m.d.sync += whit.eq(or_all([awaddr == r.offset >> 2 for r in REGISTERS]))
        m.d.comb += axil.wr_err.eq(~whit)

        def pulse_of(r: Register, f: Field):
            """The write-1 strobe of field ``f`` of ``r``, in the slave's ``wr_en`` cycle."""
            return (axil.wr_en & wsel[r.name] & axil.wr_data[f.lsb]
                    & axil.wr_strb[f.lsb // 8])

        # write stage: data and byte mask registered every cycle, applied in the next cycle
        # when `wgo` (so no wide enable depends on the handshake logic in the same cycle)
        wgo = Signal()
        wdata = Signal(32)
        wmask = Signal(32)
        m.d.sync += [wgo.eq(axil.wr_en), wdata.eq(axil.wr_data),
                     wmask.eq(Cat(*(axil.wr_strb[i].replicate(8) for i in range(4))))]

        def sampled(signal, name):
            """``signal`` registered (inputs from other blocks)."""
            reg = Signal.like(signal, name=f"{name}_q")
            m.d.sync += reg.eq(signal)
            return reg

        # storage for counters and events; field value signals for the read mux
        values: dict[str, object] = {}
        for r in REGISTERS:
            for f in r.fields:
                if f.kind == "const":
                    values[f.name] = Const(f.value_for(config), f.width)
                elif f.kind == "status":
                    values[f.name] = sampled(getattr(self.status, f.name), f.name)
                elif f.kind == "rw":
                    values[f.name] = getattr(self.control, f.name)
                elif f.kind == "pulse":
                    values[f.name] = Const(0, 1)
                elif f.kind == "counter":
                    # two halves, so no carry chain is longer than half the counter: `lo_full`
                    # (low half all ones) is kept one step ahead as a flag
                    half = f.width // 2
                    lo = Signal(half, name=f"{f.name}_count_lo")
                    hi = Signal(f.width - half, name=f"{f.name}_count_hi")
                    lo_full = Signal(name=f"{f.name}_lo_full")
                    inc = sampled(getattr(self.status, f"{f.name}_inc"), f"{f.name}_inc")
                    # this counter's own copy of the CLEAR_COUNTERS pulse, a cycle later
                    # (distinct logic, so copies are not merged: a pulse never follows itself,
                    # as writes come at most every other cycle)
                    clear = Signal(name=f"{f.name}_clear")
                    m.d.sync += clear.eq(self.control.clear_counters & ~clear)
                    with m.If(clear):
                        m.d.sync += [lo.eq(0), hi.eq(0), lo_full.eq(0)]
                    with m.Elif(inc):
                        m.d.sync += [lo.eq(lo + 1), lo_full.eq(lo == (1 << half) - 2)]
                        with m.If(lo_full):
                            m.d.sync += hi.eq(hi + 1)
                    values[f.name] = Cat(lo, hi)
                elif f.kind == "event":
                    sticky = Signal(1, name=f"{f.name}_sticky")
                    values[f.name] = sticky
                    setter = sampled(getattr(self.status, f"{f.name}_set"), f"{f.name}_set")
                    r_match = Signal(1, name=f"{f.name}_w1c")
                    m.d.comb += r_match.eq(wgo & wsel[r.name] & wdata[f.lsb] & wmask[f.lsb])
                    with m.If(setter):
                        m.d.sync += sticky.eq(1)
                    with m.Elif(r_match):
                        m.d.sync += sticky.eq(0)

        # RW storage from the write stage, pulses straight from the write (events are handled
        # above)
        for r in REGISTERS:
            with m.If(wgo & wsel[r.name]):
                for f in r.fields:
                    sl = slice(f.lsb, f.lsb + f.width)
                    if f.kind == "rw":
                        reg = getattr(self.control, f.name)
                        m.d.sync += reg.eq((reg & ~wmask[sl]) | (wdata[sl] & wmask[sl]))
            # pulses straight from the slave's write (one bit each, no wide fan-out), so they
            # act as early as before the write stage existed
            for f in r.fields:
                if f.kind == "pulse":
                    m.d.sync += getattr(self.control, f.name).eq(pulse_of(r, f))

        # read decode: the address is decoded one-hot from araddr into flip-flops (like rd_addr),
        # then two AND-OR levels with a register between: 1. every cycle, each group
        # of 8 words ORs its selected word into a register; 2. the OR of the group registers
        # (at most one is not 0; an unmapped address reads 0).
        hit = Signal()
        onehot = {}
        for r in REGISTERS:
            onehot[r.name] = Signal(name=f"rd_{r.name.lower()}")
        with m.If(axil.bus.arready):        # holds the accepted address's decode until done
            araddr = self.bus.araddr[2:]
            m.d.sync += [sel.eq(araddr == REGISTER_BY_NAME[name].offset >> 2)
                         for name, sel in onehot.items()]
            m.d.sync += hit.eq(or_all([araddr == r.offset >> 2 for r in REGISTERS]))
        groups: dict[int, list[Register]] = {}
        for r in REGISTERS:
            groups.setdefault(r.offset >> 5, []).append(r)
        group_data = []
        for g, members in sorted(groups.items()):
            data = Signal(32, name=f"rd_group{g}")
            m.d.sync += data.eq(or_all([Mux(onehot[r.name], _read_value(r, values), 0)
                                         for r in members]))
            group_data.append(data)
        m.d.comb += [axil.rd_err.eq(~hit), axil.rd_data.eq(or_all(group_data))]
        return m


def _read_value(r: Register, values: dict):
    parts, pos = [], 0
    for f in sorted(r.fields, key=lambda f: f.lsb):
        if f.lsb > pos:
            parts.append(Const(0, f.lsb - pos))
        parts.append(values[f.name][:f.width])
        pos = f.lsb + f.width
    return Cat(*parts)

