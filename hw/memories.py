"""The loadable network memories: descriptors, weights, biases and thresholds, double-banked.

Each memory of :attr:`HardwareConfig.memories` is one ``amaranth.lib.memory.Memory`` of
``2 * 2**addr_bits`` words (bank = top address bit) with one write port of 32-bit granularity, for the
loader, and one synchronous read port, for the layer engine. The engine always reads the
*active* bank; the loader always writes the *shadow* bank. A ``commit`` strobe swaps them and
latches the committed layer count, so a network becomes visible all at once and only when the
loader says so (after its CRC passed). A commit that arrives while ``hold`` is high (an
inference is running) waits until ``hold`` falls.

``active_bank`` and ``layer_count`` are reset-less: a reset in the middle of a load, or a soft
reset, leaves the committed network active. They power up as bank 0 with no network.

Swap timing: a commit is decided in the first cycle t in which ``commit`` or a pending commit
meets ``hold`` low (and no swap is under way); ``active_bank``, ``layer_count`` and the
descriptor memory's bank switch at the edge ending t+1, the weight, bias and threshold banks at
the edge ending t+2 (register stages, so that the decision does not fan out across the chip in
one cycle). ``commit_pending`` is high from the cycle after a waiting ``commit`` until
``layer_count`` switches (in t+1 at least). So, counting from the first cycle in which ``hold``
is high (t+1 at the earliest), ``layer_count`` and the descriptors may show the old network in
that cycle, and the other memories in that one and the next: a reader that raises ``hold``
must read ``layer_count`` and the descriptors from its second ``hold`` cycle on, and the other
memories from its third (the sequencer reads ``layer_count`` and the first descriptor in its
second busy cycle and starts the layer engine in its third, at the earliest).

Implementation: each memory is one ``Memory`` per 32-bit lane (the write granularity anyway),
and every lane memory has its own reset-less copy of the bank bit, so that no single flip-flop
fans out to every block RAM's address pins across the chip (the write port uses its complement,
so the synthesizer sees that a read and a write never hit the same word).

Ports (``<name>`` is descriptor, weight, bias or threshold):

* ``<name>`` Out(:class:`ReadPortSignature`): read port (``addr``, ``en``, ``data``), TWO
  cycles latency (:data:`READ_LATENCY`: the synchronous read and the block RAM's output
  register; ``data`` holds while ``en`` stays low); the address is bank-local (the active bank
  is added here).
* ``write`` (:class:`WriteSignature`, connected to the loader's with ``wiring.connect``):
  ``mem``, ``addr``, ``lane``, ``data``, ``en`` write one 32-bit lane of one word of the
  shadow bank (registered here: the RAM is written at the next clock edge, before any commit
  that follows the write can switch the banks); ``commit``, ``commit_layers`` make the shadow
  bank active with that many layers; ``commit_pending`` Out(1).
* ``hold`` In(1); ``active_bank`` Out(1), ``layer_count`` Out.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig

__all__ = ["MEMORY_NAMES", "MEMORY_INDEX", "NetworkMemories", "READ_LATENCY", "ReadPortSignature",
           "WriteSignature"]

#: cycles from a read port's ``addr``/``en`` to its ``data``
READ_LATENCY = 2

MEMORY_NAMES = ("descriptor", "weight", "bias", "threshold")
MEMORY_INDEX = {name: index for index, name in enumerate(MEMORY_NAMES)}


class ReadPortSignature(wiring.Signature):
    """A synchronous read port as the memory sees it (the members of
    ``amaranth.lib.memory.ReadPort.Signature``, with ``en`` resetting to 0): ``addr`` In,
    ``en`` In(1), ``data`` Out. A reader's member is its flip (``In(ReadPortSignature(...))``).
    The network memories and the activation buffers answer :data:`READ_LATENCY` cycles after
    ``en``, and ``data`` holds while ``en`` is low."""

    def __init__(self, addr_bits: int, data_bits: int):
        self._addr_bits, self._data_bits = addr_bits, data_bits
        super().__init__({"addr": In(addr_bits), "en": In(1), "data": Out(data_bits)})

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self._addr_bits, self._data_bits) == (other._addr_bits, other._data_bits))

    def __hash__(self):
        return hash((type(self), self._addr_bits, self._data_bits))


class WriteSignature(wiring.Signature):
    """The loader's port into the shadow bank, as the memories see it (``NetworkMemories.write``;
    the loader's ``write`` is its flip): ``mem`` In(2) (:data:`MEMORY_INDEX`), ``addr`` In
    (bank-local word address), ``lane`` In (32-bit lane), ``data`` In(32), ``en`` In(1): write
    one lane of one word; ``commit`` In(1), ``commit_layers`` In: make the shadow bank active
    with that many layers; ``commit_pending`` Out(1): a commit waits."""

    def __init__(self, config: HardwareConfig):
        super().__init__({
            "mem": In(2),
            "addr": In(config.write_addr_bits),
            "lane": In(config.lane_bits),
            "data": In(WORD_BITS),
            "en": In(1),
            "commit": In(1),
            "commit_layers": In(config.layer_count_bits),
            "commit_pending": Out(1),
        })


class NetworkMemories(wiring.Component):
    """The four double-banked network memories (see the module docstring for ports and the swap
    timing).

    Latency: a read port's ``data`` :data:`READ_LATENCY` = 2 cycles after its ``addr``/``en``;
    a write with ``en`` in cycle t is in the shadow bank's RAM at the edge ending t+1 (the write
    register, then the RAM); a commit decided in cycle t switches ``layer_count`` and the
    descriptors at the edge ending t+1, the other memories at the edge ending t+2.
    Throughput: every read port one read a cycle, the write port one 32-bit lane a cycle,
    independently.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        specs = config.memories
        members = {}
        for name in MEMORY_NAMES:
            members[name] = Out(ReadPortSignature(specs[name].addr_bits, specs[name].word_bits))
        members.update({
            "write": Out(WriteSignature(config)),
            "hold": In(1),
            "active_bank": Out(1),
            "layer_count": Out(self._config.layer_count_bits),
        })
        super().__init__(members)

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        specs = self._config.memories

        active = Signal(1, reset_less=True)
        layers = Signal(self._config.layer_count_bits, reset_less=True)
        # A pending commit survives until it can be applied; it is ordinary state (a reset
        # drops it, which is what a reset mid-commit should do: the old network stays).
        # pending_layers is reset-less: a commit decided in the cycle of a reset is still applied.
        pending = Signal()
        pending_layers = Signal(self._config.layer_count_bits, reset_less=True)
        m.d.comb += [self.active_bank.eq(active), self.layer_count.eq(layers)]

        # decide: a commit is applied now (registered into `swap`, which then switches `active`
        # and `layers` at the next edge, and into one copy of it a memory, which switches the
        # descriptor banks, and the lane copies of the other memories one cycle later). The
        # copies are reset-less like the banks: a reset between the decision and the switch must
        # not split them. Each copy masks a repeated decision with its own output, so the copies
        # are equal but not the same logic (the synthesizer does not merge them).
        want = Signal()
        m.d.comb += want.eq((pending | self.write.commit) & ~self.hold)
        swaps = {}
        for name in (None, *MEMORY_NAMES):
            q = Signal(reset_less=True, name="swap" if name is None else f"{name}_swap")
            m.d.sync += q.eq(want & ~q)
            swaps[name] = q
        swap = swaps[None]
        decide = Signal()
        m.d.comb += decide.eq(want & ~swap)
        # commit_pending = pending | swap, as a register of its own: it gates the loader's
        # tready, and the OR behind pending and swap was on the loader's critical path. Next
        # values: a decision sets swap (and clears pending), otherwise swap falls and pending
        # becomes pending | commit, so the OR's next value is pending | commit; in a reset
        # cycle pending is cleared and swap (reset-less) takes decide.
        pending_or_swap = Signal(reset_less=True)
        m.d.sync += pending_or_swap.eq(Mux(ResetSignal(), decide, pending | self.write.commit))
        m.d.comb += self.write.commit_pending.eq(pending_or_swap)
        with m.If(self.write.commit):
            m.d.sync += pending_layers.eq(self.write.commit_layers)
        with m.If(decide):                  # applies this cycle's commit too (the latest wins)
            m.d.sync += pending.eq(0)
        with m.Elif(self.write.commit):
            m.d.sync += pending.eq(1)
        with m.If(swap):
            m.d.sync += [active.eq(~active), layers.eq(pending_layers)]

        for name in MEMORY_NAMES:
            spec = specs[name]
            port = getattr(self, name)
            raddr, ren = port.addr, port.en
            selected = self.write.en & (self.write.mem == MEMORY_INDEX[name])
            rdata = []
            # the write port is registered here, next to the block RAMs (a lane's write enable
            # and address per lane, the data once per memory): the loader's write signals would
            # otherwise cross the chip to every RAM in the cycle they are decided
            wdata_q = Signal(WORD_BITS, reset_less=True, name=f"{name}_wdata")
            m.d.sync += wdata_q.eq(self.write.data)
            for lane in range(spec.lanes):
                # A per-lane copy of the bank bit (a toggle, so the copies are not the same
                # logic and the synthesizer does not merge them back into one flip-flop).
                bank = Signal(1, reset_less=True, name=f"{name}_l{lane}_bank")
                if name == "descriptor":
                    toggle = swaps[name]
                else:               # one more register stage, next to the lane's block RAMs
                    toggle = Signal(reset_less=True, name=f"{name}_l{lane}_swap")
                    m.d.sync += toggle.eq(swaps[name] & ~toggle)
                with m.If(toggle):
                    m.d.sync += bank.eq(~bank)
                # 2**addr_bits words a bank, so the bank bit can sit on top of the address; the
                # loader bounds-checks against spec.depth.
                # no_rw_check: a read never meets a write to the same word (they are in
                # different banks), so the synthesizer needs no collision logic
                mem = memory.Memory(shape=unsigned(WORD_BITS), depth=2 << spec.addr_bits, init=[],
                                    attrs={"no_rw_check": 1})
                m.submodules[f"{name}_mem_l{lane}"] = mem
                rd = mem.read_port(domain="sync")
                wr = mem.write_port()
                m.d.comb += [
                    rd.addr.eq(_bank_addr(bank, raddr, spec.addr_bits)),
                    rd.en.eq(ren),
                ]
                we_q = Signal(name=f"{name}_l{lane}_we")
                waddr_q = Signal(spec.addr_bits + 1, reset_less=True, name=f"{name}_l{lane}_waddr")
                m.d.sync += [
                    we_q.eq(selected & (self.write.lane == lane)),
                    waddr_q.eq(_bank_addr(~bank, self.write.addr[:spec.addr_bits], spec.addr_bits)),
                ]
                m.d.comb += [wr.addr.eq(waddr_q), wr.data.eq(wdata_q), wr.en.eq(we_q)]
                # the read data's register right behind the RAM: the block RAM's own output
                # register (Vivado absorbs it; spikepack.synth packs it into ECP5 DP16KDs),
                # without which a block RAM read takes more than a 250 MHz cycle by itself
                q = Signal(WORD_BITS, reset_less=True, name=f"{name}_l{lane}_rdata")
                m.d.sync += q.eq(rd.data)
                rdata.append(q)
            m.d.comb += port.data.eq(Cat(*rdata))
        return m


def _bank_addr(bank, addr, addr_bits):
    return Cat(addr[:addr_bits], bank)
