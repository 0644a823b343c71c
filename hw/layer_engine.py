"""The layer engine: one layer of any N x M on the R x C spike array and C neuron units, in
pe_mode "serial" (spike-gated adds, one bit plane a cycle) or "packed" (a weight x p(z)
multiplier per PE, one tile a cycle).

Dataflow (weight-stationary, ``docs/array.md``). The layer is cut into K = G * CT tiles,
G = ceil(N/R) row tiles for each of CT = ceil(M/C) column tiles, processed column tile by
column tile, row tile by row tile (the order of the weight memory, ``firmware/layout.py``).
Each tile occupies one *period* of P = max(T, R/g) cycles: in its first T cycles its T bit
planes (step 1 first) enter the array, read from the activation entry of its row tile; in the
same period the weight words of later tiles are read, one per cycle, into the PEs' shadow
registers (:func:`spikepack.hw.array.load_schedule`), so the array runs tile after tile without
bubbles when R/g <= T (P = T). The array delivers, R cycles after a plane enters, one step
current per column; these go to the C neuron units (SpikePackNeuron or LIFNeuron per
``config.neuron``): every neuron receives G groups of T beats, ``last`` on the final beat, with
its bias and threshold read from the bias/threshold memories (word ``column_base + ct``) so that
they arrive with that beat. The C results of a column tile are sent on ``o`` one per cycle in
index order; results of neurons beyond M (in the last column tile) are dropped.

Packed pe_mode (``config.pe_mode == "packed"``, SpikePack neurons only). A tile is ONE beat:
the array receives the tile's activation entry (R spike words) whole, expands each row's word to
p(z) by wiring, and each PE adds w * p(z) to the partial sum passing down its column, so the
columns deliver, R cycles later, the tile's packed partial potentials sum_j w_ij * p(z_j), which
go to the C SpikePackNeuron units in input_mode "packed" (a neuron is G beats, ``last`` on the
final row tile; v = bias + sum of the beats). The period is P = max(1, R/g) with
g = ``config.rows_per_word`` (= R by default: one R*C*b_w-bit weight word per tile, read every
cycle), so the weight port streams a whole tile per cycle: P = 1. Same ports, same ``o``
semantics, same stall rules as the serial mode.

Stalls. Everything from the memory reads to the neuron inputs advances on one enable, ``en``,
which is low exactly when the array presents a beat that not all C neuron units can take. The
neuron units stall their input only when their output is blocked, so backpressure on ``o``
propagates back to the array without losing or repeating anything. The memory read enables are
gated by ``en`` (a 1-cycle synchronous read holds its data while its enable is low); the
activation word is captured into a register the cycle after its read, whatever ``en``.

Ports (``docs/architecture.md``, layer engine contract): ``start`` (descriptor stream, accepted
when idle), ``weight_raddr/_ren/_rdata``, ``bias_raddr/_ren/_rdata``,
``threshold_raddr/_ren/_rdata`` (to :class:`spikepack.hw.memories.NetworkMemories`),
``act_raddr/_ren/_rdata`` (activation buffer: entry e holds inputs e*R .. e*R+R-1, input e*R+i
at bits i*T ..), ``o`` (index, spikes, potential, last), ``busy``.

Latency and throughput, with the output never stalled (``o.ready`` = 1), in clock edges from
the descriptor handshake to the last ``o`` handshake (setup cycle and register stages included):

    serial: L = W*P + (K - 1)*P + T + R + (T + 1) + C_last     (compute-bound: C < G*P)
    packed: L = W*P + (K - 1)*P + 1 + R + (T + 2) + C_last     (compute-bound: max(C, T) < G*P)

W = ``load_schedule(...).warmup`` warm-up periods (1, or 2 when P = 1; packed with g = R: W = 2,
P = 1) load the first tile; K - 1 tile periods and the beats of the last tile (T planes, or 1
packed beat); R the array latency; T + 1 (serial) or T + 2 (packed) the neuron units' decode
latency; C_last = M - (CT-1)*C the outputs of the last column tile (:func:`expected_cycles`,
:func:`compute_bound`).

Steady state: one tile per P cycles (R*C*T spike-gated adds per P cycles; P = T for the
auto-chosen g), i.e. the ideal K*T cycles for the whole layer plus the constant fill/drain.
Bounds: a column tile cannot take fewer than C cycles (its C outputs leave one per cycle on
``o``) while it computes for G*P cycles, so a layer is compute-bound when G*P > C (at G*P = C a
unit may lose a cycle now and then) and output-bound, about CT*C ~ M cycles, when G*P < C; the
weight port bounds the period at R/g cycles (P = max(T, R/g)). ``busy`` is high from the
handshake to the last ``o`` handshake.

Packed steady state: one tile per cycle (R*C multiply-accumulates of a T-step word, i.e. R*C*T
synaptic weight x time-step products per cycle, T times the serial rate), i.e. the ideal K
cycles plus the fill/drain ``W*P - P + R + T + 3 + C_last`` (P = 1: ``W + R + T + 2 + C_last``,
24 cycles for 8x8 at T = 4). But a column tile then computes for only
G cycles, so two other bounds bite much sooner than in serial mode: its C outputs leave one per
cycle on ``o`` (at least C cycles per column tile) and each neuron unit decodes one neuron per T
cycles (at least T cycles per column tile). A packed layer takes about
``CT * max(G, C, T)`` cycles plus the fill: compute-bound only when G = ceil(N/R) > max(C, T),
i.e. N > R*max(C, T) inputs (64 on 8x8 at T = 4); below that, the one-output-per-cycle port (or
the decode) sets the pace, about M cycles for the layer whatever R.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import EnableInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from spikepack.sim.golden import signed_bits

from .array import SpikeArray, load_schedule

__all__ = ["LayerEngine", "descriptor_layout", "output_layout", "beats_per_tile", "schedule",
           "ideal_cycles", "expected_cycles", "compute_bound"]


def descriptor_layout(config: HardwareConfig) -> data.StructLayout:
    mems = config.memories
    return data.StructLayout({
        "fan_in": 16,
        "neurons": 16,
        "weight_base": mems["weight"].addr_bits,
        "column_base": mems["bias"].addr_bits,
        "readout": 1,
    })


def output_layout(config: HardwareConfig) -> data.StructLayout:
    return data.StructLayout({
        "index": 16,
        "spikes": unsigned(config.timesteps),
        "potential": signed(config.widths.potential),
        "last": 1,
    })


def beats_per_tile(config: HardwareConfig) -> int:
    """Beats a tile presents to the array: T bit planes (serial) or 1 packed word (packed)."""
    return 1 if config.pe_mode == "packed" else config.timesteps


def schedule(config: HardwareConfig):
    """The weight-load schedule (:func:`spikepack.hw.array.load_schedule`) of ``config``."""
    return load_schedule(rows=config.rows, rows_per_word=config.rows_per_word,
                         beats=beats_per_tile(config))


def ideal_cycles(config: HardwareConfig, fan_in: int, neurons: int) -> int:
    """ceil(N/R) * ceil(M/C) * T (serial: one bit plane per cycle, every PE busy) or
    ceil(N/R) * ceil(M/C) (packed: one tile per cycle)."""
    return -(-fan_in // config.rows) * -(-neurons // config.cols) * beats_per_tile(config)


def compute_bound(config: HardwareConfig, fan_in: int) -> bool:
    """True when a layer of ``fan_in`` inputs is compute-bound, i.e. :func:`expected_cycles`
    is exact with ``o`` never stalled: a column tile computes for G*P cycles, which must exceed
    the C cycles its outputs take on ``o`` and (packed mode) the T cycles a neuron unit needs to
    decode one neuron."""
    G, P = -(-fan_in // config.rows), schedule(config).period
    if config.pe_mode == "packed":
        return G * P > max(config.cols, config.timesteps)
    return G * P > config.cols


def expected_cycles(config: HardwareConfig, fan_in: int, neurons: int) -> int:
    """The latency formula of the module docstring: exact for compute-bound layers
    (:func:`compute_bound`) with ``o`` never stalled, a lower bound otherwise."""
    sched = schedule(config)
    R, C, T, P = config.rows, config.cols, config.timesteps, sched.period
    B = beats_per_tile(config)
    decode = T + 2 if config.pe_mode == "packed" else T + 1
    G, CT = -(-fan_in // R), -(-neurons // C)
    return sched.warmup * P + (G * CT - 1) * P + B + R + decode + (neurons - (CT - 1) * C)


def _neuron_class(config: HardwareConfig):
    if config.neuron == "spikepack":
        from .neuron_spikepack import SpikePackNeuron
        return SpikePackNeuron
    from .neuron_lif import LIFNeuron
    return LIFNeuron


class LayerEngine(wiring.Component):
    """Runs one layer descriptor at a time (see the module docstring for timing)."""

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            self._MustUse__silence = True   # a rejected engine is not an unused elaboratable
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        mems = config.memories
        self._schedule = schedule(config)
        super().__init__({
            "start": In(stream.Signature(descriptor_layout(config))),
            "weight_raddr": Out(mems["weight"].addr_bits),
            "weight_ren": Out(1),
            "weight_rdata": In(mems["weight"].word_bits),
            "bias_raddr": Out(mems["bias"].addr_bits),
            "bias_ren": Out(1),
            "bias_rdata": In(mems["bias"].word_bits),
            "threshold_raddr": Out(mems["threshold"].addr_bits),
            "threshold_ren": Out(1),
            "threshold_rdata": In(mems["threshold"].word_bits),
            "act_raddr": Out(self.act_addr_bits),
            "act_ren": Out(1),
            "act_rdata": In(config.rows * config.timesteps),
            "o": Out(stream.Signature(output_layout(config))),
            "busy": Out(1),
        })

    # --- read-only properties --------------------------------------------------------------------

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def act_addr_bits(self) -> int:
        return max(1, (self._config.activation_depth - 1).bit_length())

    @property
    def pe_mode(self) -> str:
        return self._config.pe_mode

    @property
    def beats(self) -> int:
        """Beats per tile: T (serial) or 1 (packed)."""
        return beats_per_tile(self._config)

    @property
    def period(self) -> int:
        """P: cycles per tile."""
        return self._schedule.period

    @property
    def warmup(self) -> int:
        """W: periods before the first plane (loading the first tile's weights)."""
        return self._schedule.warmup

    def ideal_cycles(self, fan_in: int, neurons: int) -> int:
        return ideal_cycles(self._config, fan_in, neurons)

    def expected_cycles(self, fan_in: int, neurons: int) -> int:
        return expected_cycles(self._config, fan_in, neurons)

    # --- hardware --------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C, T, g = cfg.rows, cfg.cols, cfg.timesteps, cfg.rows_per_word
        n = R // g
        packed = cfg.pe_mode == "packed"
        B = self.beats
        sched = self._schedule
        P, W = sched.period, sched.warmup
        log_r, log_c = (R - 1).bit_length(), (C - 1).bit_length()
        waddr_bits = len(self.weight_raddr)

        en = Signal()
        array = SpikeArray.from_config(cfg, tag_bits=1)
        m.submodules.array = EnableInserter(en)(array)
        neuron_cls = _neuron_class(cfg)
        units = [neuron_cls.from_config(cfg) for _ in range(C)]
        for c, unit in enumerate(units):
            m.submodules[f"neuron{c}"] = unit

        # --- descriptor ---------------------------------------------------------------------------
        busy = Signal()
        fan_in = Signal(16)
        neurons = Signal(16)
        wbase = Signal(waddr_bits)
        cbase = Signal(len(self.bias_raddr))
        readout = Signal()
        row_tiles = Signal(17 - log_r if log_r < 17 else 1)
        col_tiles = Signal(17 - log_c if log_c < 17 else 1)
        tiles = Signal(len(row_tiles) + len(col_tiles))
        setup = Signal()
        running = Signal()
        m.d.comb += [self.busy.eq(busy), self.start.ready.eq(~busy)]

        # --- controller state (advances on en) ---------------------------------------------------
        tail = sched.tail
        pm = Signal(len(tiles) + 2)                 # period counter, m = pm - W
        off = Signal(range(max(2, P)))              # offset in the period
        rt = Signal.like(row_tiles)                 # row tile of the plane tile (m >= 0)
        act_rt = Signal.like(row_tiles)             # row tile of the next activation read
        wb = Signal(waddr_bits)                     # weight_base + m * n  (mod 2**bits)
        last_period = Signal.like(pm)

        m_idx = Signal(signed(len(pm) + 1))
        m.d.comb += m_idx.eq(pm - W)
        plane_valid = Signal()
        m.d.comb += plane_valid.eq(running & (m_idx >= 0) & (m_idx < tiles) & (off < B))

        # weight reads: offset q < n reads group q of tile m + advance[q]
        w_issue = Signal()
        adv_shape = signed(signed_bits(min(sched.advance), max(sched.advance)))
        adv = Array(Const(a, adv_shape) for a in sched.advance)
        w_tile = Signal(signed(max(len(pm) + 1, adv_shape.width) + 1))
        mask = (1 << waddr_bits) - 1
        waddr_off = Array(Const((a * n + q) & mask, waddr_bits) for q, a in enumerate(sched.advance))
        if n > 1:
            m.d.comb += w_tile.eq(m_idx + adv[off])
            m.d.comb += w_issue.eq(running & (off < n) & (w_tile >= 0) & (w_tile < tiles))
            m.d.comb += self.weight_raddr.eq(wb + waddr_off[off])
        else:
            m.d.comb += w_tile.eq(m_idx + sched.advance[0])
            m.d.comb += w_issue.eq(running & (off == 0) & (w_tile >= 0) & (w_tile < tiles))
            m.d.comb += self.weight_raddr.eq(wb + waddr_off[0])
        m.d.comb += self.weight_ren.eq(w_issue & en)
        wl_valid = Signal()
        wl_group = Signal(range(max(2, n)))

        # activation reads: offset P-1 of period m reads the entry of tile m + 1
        a_issue = Signal()
        m.d.comb += [
            a_issue.eq(running & (off == P - 1) & (m_idx + 1 >= 0) & (m_idx + 1 < tiles)),
            self.act_raddr.eq(act_rt),
            self.act_ren.eq(a_issue & en),
        ]
        act_fresh = Signal()
        act_reg = Signal(R * T)
        m.d.sync += act_fresh.eq(self.act_ren)
        with m.If(act_fresh):
            m.d.sync += act_reg.eq(self.act_rdata)
        act_word = Mux(act_fresh, self.act_rdata, act_reg)
        if packed:
            # the whole entry (R spike words) is the tile's one beat
            m.d.comb += array.words.eq(act_word)
        else:
            tbit = Signal(range(max(2, T)))            # spike-word bit of step off + 1
            m.d.comb += tbit.eq(T - 1 - off)
            plane_bits = []
            for r in range(R):
                bit = Signal(name=f"plane_r{r}")
                m.d.comb += bit.eq(act_word[r * T:(r + 1) * T].bit_select(tbit, 1))
                plane_bits.append(bit)
            m.d.comb += [array.plane.eq(Cat(*plane_bits)), array.first.eq(off == 0)]

        m.d.comb += [
            array.valid.eq(plane_valid),
            array.tag.eq((rt == row_tiles - 1) & (off == B - 1)),
            array.wload.eq(wl_valid),
            array.wgroup.eq(wl_group),
            array.wdata.eq(self.weight_rdata[:len(array.wdata)]),
        ]

        # descriptor handshake and setup
        with m.If(self.start.valid & self.start.ready):
            p = self.start.payload
            m.d.sync += [
                busy.eq(1), setup.eq(1),
                fan_in.eq(p.fan_in), neurons.eq(p.neurons), wbase.eq(p.weight_base),
                cbase.eq(p.column_base), readout.eq(p.readout),
                row_tiles.eq((p.fan_in + R - 1) >> log_r),
                col_tiles.eq((p.neurons + C - 1) >> log_c),
            ]
        with m.If(setup):
            m.d.sync += [
                setup.eq(0), running.eq((row_tiles != 0) & (col_tiles != 0)),
                tiles.eq(row_tiles * col_tiles),
                pm.eq(0), off.eq(0), rt.eq(0), act_rt.eq(0),
                wb.eq(wbase - W * n), wl_valid.eq(0),
            ]
        m.d.comb += last_period.eq(tiles + (W + tail - 1))

        with m.If(en & running):
            m.d.sync += [wl_valid.eq(w_issue), wl_group.eq(off if n > 1 else 0)]
            with m.If(a_issue):
                m.d.sync += act_rt.eq(Mux(act_rt == row_tiles - 1, 0, act_rt + 1))
            with m.If(off == P - 1):
                m.d.sync += [off.eq(0), pm.eq(pm + 1), wb.eq(wb + n)]
                with m.If((m_idx >= 0) & (m_idx < tiles)):
                    m.d.sync += rt.eq(Mux(rt == row_tiles - 1, 0, rt + 1))
                with m.If(pm == last_period):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += off.eq(off + 1)
        with m.If(en & ~running):
            m.d.sync += wl_valid.eq(0)

        # --- array -> neuron units ----------------------------------------------------------------
        readies = [u.i.ready for u in units]
        all_ready = Signal()
        m.d.comb += all_ready.eq(Cat(*readies).all())
        m.d.comb += en.eq(~(array.out_valid & ~all_ready))

        bias_ct = Signal(len(self.bias_raddr))
        bias_fire = Signal()
        m.d.comb += [
            bias_fire.eq(array.pre_valid & array.pre_tag & en),
            self.bias_raddr.eq(cbase + bias_ct),
            self.bias_ren.eq(bias_fire),
            self.threshold_raddr.eq(cbase + bias_ct),
            self.threshold_ren.eq(bias_fire),
        ]
        with m.If(bias_fire):
            m.d.sync += bias_ct.eq(bias_ct + 1)
        with m.If(setup):
            m.d.sync += bias_ct.eq(0)

        bb, tb = cfg.bias_bits, cfg.threshold_bits
        for c, unit in enumerate(units):
            others = [readies[j] for j in range(C) if j != c]
            others_ready = Cat(*others).all() if others else Const(1)
            m.d.comb += [
                unit.i.valid.eq(array.out_valid & others_ready),
                unit.i.payload.current.eq(array.out[c]),
                unit.i.payload.bias.eq(self.bias_rdata[c * bb:(c + 1) * bb]),
                unit.i.payload.threshold.eq(self.threshold_rdata[c * tb:(c + 1) * tb]),
                unit.i.payload.readout.eq(readout),
                unit.i.payload.last.eq(array.out_tag),
            ]

        # --- neuron units -> o (serialised, index order, neurons >= M dropped) -------------------
        out_ct = Signal(16)
        sel = Signal(range(max(2, C)))
        out_done = Signal()
        dropped = Signal(C)
        index = Signal(16)
        m.d.comb += index.eq((out_ct << log_c) | sel if C > 1 else out_ct)
        sel_valid = Array(u.o.valid for u in units)
        sel_spikes = Array(u.o.payload.spikes for u in units)
        sel_potential = Array(u.o.payload.potential for u in units)
        m.d.comb += [
            self.o.valid.eq(busy & ~out_done & sel_valid[sel]),
            self.o.payload.index.eq(index),
            self.o.payload.spikes.eq(sel_spikes[sel]),
            self.o.payload.potential.eq(sel_potential[sel]),
            self.o.payload.last.eq(index == neurons - 1),
        ]
        beyond = []
        for c, unit in enumerate(units):
            past_m = Signal(name=f"beyond_m{c}")
            m.d.comb += past_m.eq(((out_ct << log_c) + c) >= neurons)
            beyond.append(past_m)
            take = Signal(name=f"take{c}")
            drop = Signal(name=f"drop{c}")
            m.d.comb += [
                take.eq(busy & ~out_done & (sel == c) & self.o.ready),
                drop.eq(busy & past_m & ~dropped[c]),
                unit.o.ready.eq(take | drop),
            ]
            with m.If(drop & unit.o.valid):
                m.d.sync += dropped[c].eq(1)
        with m.If(self.o.valid & self.o.ready):
            with m.If(self.o.payload.last):
                m.d.sync += out_done.eq(1)
            with m.Elif(sel == C - 1):
                m.d.sync += [sel.eq(0), out_ct.eq(out_ct + 1)]
            with m.Else():
                m.d.sync += sel.eq(sel + 1)
        # busy falls with the handshake of the last beat (or as soon as the last dropped result
        # is drained, should that come later); an empty layer (N or M = 0) finishes at once.
        drops_done = Signal()
        m.d.comb += drops_done.eq(Cat(*(dropped[c] | (beyond[c] & units[c].o.valid)
                                        | ~beyond[c] for c in range(C))).all())
        finished = (self.o.valid & self.o.ready & self.o.payload.last) | out_done
        empty = (row_tiles == 0) | (col_tiles == 0)
        with m.If(busy & ~setup & ~running & ((finished & drops_done) | empty)):
            m.d.sync += busy.eq(0)
        with m.If(self.start.valid & self.start.ready):
            m.d.sync += [out_ct.eq(0), sel.eq(0), out_done.eq(0), dropped.eq(0)]
        return m
