"""The R x C weight-stationary spike array (``docs/array.md``), serial or packed pe_mode.

PE (r, c) holds the weight from input r of the current row tile to output c of the current
column tile. A bit plane (the spikes of the tile's R inputs at one time step) enters on
``plane``; row r sees it r cycles later (the input skew a systolic array needs, because the
partial sum moves down one row per cycle through the PEs' registers). The spike bit is broadcast
along the row, so all C columns are aligned: the column currents of the plane presented in cycle
c appear on ``out`` in cycle c + R, together with ``out_valid`` and ``out_tag`` (``valid`` and
``tag`` delayed by R cycles). No output de-skew is needed.

Double buffering and weight loading. ``first`` is high in the cycle BEFORE the first plane of
a tile enters (not gated by ``valid``, which belongs to the plane of its own cycle); it travels
with the skew, so row r swaps shadow -> active at the end of the cycle before that plane
reaches it (cycle s + r for a tile whose ``first`` entered at s, its first plane at s + 1).
A weight word holds g = ``rows_per_word`` array rows (word layout of ``spikepack.firmware.layout``: row q*g + rr, column c at bit
(rr*C + c)*b_w). ``wload`` with ``wgroup`` = q and ``wdata`` launches one word: row q*g + rr's
shadow registers are written rr cycles later (a shared delay chain of g - 1 stages, because the
swap reaches row q*g + rr rr cycles after row q*g). So a word launched in cycle x for the tile
whose ``first`` enters at s_k must satisfy s_(k-1) + q*g <= x <= s_k + q*g - 1, a window of
exactly one tile period. :func:`load_schedule` gives a conflict-free schedule: with a tile
period of P = max(T, R/g) cycles, group q's word is read at offset q of every period.

All state advances every cycle; a parent may stall the whole array with ``EnableInserter`` (the
layer engine never does: it inserts bubbles instead, ``docs/array.md``).

**Packed mode** (``mode="packed"``, with ``timesteps`` T and ``tau_shift`` k): a tile is ONE beat.
``words`` carries the R spike words of the tile's inputs (input r at bits r*T .. r*T+T-1); row r
sees its word r cycles later (skewed as T-bit words, the cheaper form) and expands it to
p(z) = sum_t s_t * tau**(T-t) by wiring (bit b of z to bit k*b, once per row, shared by the C
PEs of the row); PE (r, c) adds w_rc * p(z_r) to the partial sum passing down its column. The
column outputs, R cycles after the beat, are the tile's packed partial potentials
sum_r w_rc * p(z_r) (``current_bits`` is then the partial-potential width). There is no
``first``: every valid beat is a new tile, the PE computes with its single weight register,
and the same weight-launch chain and :func:`load_schedule` (with ``beats=1``: one word a cycle
when g = R) deliver each row's weight in the cycle before the beat reaches it.

Ports: ``plane`` In(R) and ``first`` In(1) (serial) or ``words`` In(R*T) (packed), ``valid``
In(1), ``tag`` In(tag_bits) (if tag_bits); with ``plane_gated=True`` (serial) the parent
promises ``plane`` = 0 whenever ``valid`` = 0 and the array does not gate it again;
``wload`` In(1), ``wgroup`` In(range(R/g)), ``wdata`` In(g*C*weight_bits);
``out`` Out(ArrayLayout(signed(current_bits), C)), ``out_valid`` Out(1), ``out_tag`` Out(tag_bits);

Latency: R cycles from ``plane``/``words`` to ``out``. Throughput, serial: one bit plane per
cycle, i.e. R*C spike-gated adds (weight x time-step products) per cycle, tile after tile
without bubbles as long as R/g <= T. Packed: one tile per cycle, i.e. R*C multiply-accumulates
of a T-step word = R*C*T weight x time-step products per cycle, without bubbles when g = R (the
tile period is R/g cycles otherwise).
Cost: R*C PEs; skew flip-flops R(R-1) (serial: spike + first) or R(R-1)/2 * T (packed);
g(g-1)/2 * C * weight_bits delay-chain flip-flops (packed, g = R: R(R-1)/2 * C * weight_bits,
the price of skewing a whole tile of weights that arrives in one word); R flip-flops of
``valid``/``tag`` delay per tag bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import C as Const
from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int
from spikepack.sim.golden import packed_max, signed_bits

from .pe import PE_MODES, ProcessingElement

__all__ = ["SpikeArray", "LoadSchedule", "load_schedule", "row_bits", "packed_value_bits"]


@dataclass(frozen=True)
class LoadSchedule:
    """When the weight words of a tile are read, relative to the tile periods.

    ``period`` P = max(T, R/g) cycles per tile. Group q's word is scheduled at offset q of period
    m, for the tile ``m + advance[q]``, and launched into the array one cycle later, counted in
    the planes' time: the offsets are those of the planes as the array sees them. (The layer
    engine issues the memory read that many cycles earlier: the memories' read latency of 2
    and the engine's entry register delay the planes and the weight words alike, so only the
    distance between a plane and a launch matters.) ``advance`` is 1 or 2 for the
    first groups and decreases (possibly below 0) for later ones, because the skew makes row
    q*g swap q*g cycles after row 0. ``warmup`` = max(advance) periods precede the first plane,
    ``tail`` = max(0, -min(advance)) periods of reads follow the last one.
    """
    period: int
    advance: tuple[int, ...]

    @property
    def warmup(self) -> int:
        return max(self.advance)

    @property
    def tail(self) -> int:
        return max(0, -min(self.advance))


def load_schedule(*, rows: int, rows_per_word: int, beats: int) -> LoadSchedule:
    """The weight-read schedule for an array of ``rows`` rows, g = ``rows_per_word`` rows per
    word and ``beats`` planes per tile (T). Derivation (``docs/array.md``): the word of offset q
    of period m launches at s_m + q + 1 (plane time) and writes row q*g + rr at
    s_m + q + 1 + rr; that must lie
    in [s_(k-1) + r, s_k + r - 1] for tile k = m + d, which gives
    d = 1 + floor((1 - q*(g - 1)) / P)."""
    if rows % rows_per_word:
        raise ValueError(f"rows_per_word ({rows_per_word}) must divide rows ({rows})")
    n = rows // rows_per_word
    period = max(beats, n)
    advance = tuple(1 + (1 - q * (rows_per_word - 1)) // period for q in range(n))
    return LoadSchedule(period=period, advance=advance)


def row_bits(r: int, weight_bits: int, current_bits: int, scale: int = 1) -> int:
    """Width of row r's registered partial sum: r + 1 weights times at most ``scale`` (1 in
    serial mode, the largest p(z) in packed mode), capped at ``current_bits``."""
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    return min(current_bits, signed_bits((r + 1) * lo * scale, (r + 1) * hi * scale))


def packed_value_bits(timesteps: int, tau_shift: int) -> int:
    """Width of p(z): k*(T-1) + 1 bits."""
    return tau_shift * (timesteps - 1) + 1


class SpikeArray(wiring.Component):
    """R x C spike-gated accumulate array (see the module docstring)."""

    def __init__(self, *, rows: int, cols: int, weight_bits: int, rows_per_word: int,
                 current_bits: int | None = None, tag_bits: int = 0, mode: str = "serial",
                 timesteps: int | None = None, tau_shift: int | None = None,
                 plane_gated: bool = False):
        if not isinstance(plane_gated, bool):
            raise TypeError(f"plane_gated must be a bool, not {type(plane_gated).__name__}")
        self._check(rows, cols, weight_bits, rows_per_word, tag_bits, mode, timesteps, tau_shift)
        self._mode = mode
        self._timesteps, self._tau_shift = timesteps, tau_shift
        self._scale = packed_max(timesteps, tau_shift) if mode == "packed" else 1
        full = row_bits(rows - 1, weight_bits, 64, self._scale)
        if current_bits is None:
            current_bits = full
        if not isinstance(current_bits, int) or isinstance(current_bits, bool):
            raise TypeError(f"current_bits must be an integer, not {type(current_bits).__name__}")
        if not weight_bits <= current_bits <= 64:
            raise ValueError(f"current_bits must be between weight_bits ({weight_bits}) and 64, "
                             f"not {current_bits}")
        self._rows, self._cols = rows, cols
        self._weight_bits = weight_bits
        self._g = rows_per_word
        self._current_bits = current_bits
        self._tag_bits = tag_bits
        self._plane_gated = plane_gated
        if mode == "serial":
            members = {"plane": In(rows), "first": In(1)}
        else:
            members = {"words": In(rows * timesteps)}
        members.update({
            "valid": In(1),
            "wload": In(1),
            "wgroup": In(range(max(2, self.groups))),
            "wdata": In(rows_per_word * cols * weight_bits),
            "out": Out(data.ArrayLayout(signed(current_bits), cols)),
            "out_valid": Out(1),
        })
        if tag_bits:
            members["tag"] = In(tag_bits)
            members["out_tag"] = Out(tag_bits)
        super().__init__(members)

    @staticmethod
    def _check(rows, cols, weight_bits, rows_per_word, tag_bits, mode, timesteps, tau_shift):
        for name, value, limit in (("rows", rows, limits.ARRAY_SIZE),
                                   ("cols", cols, limits.ARRAY_SIZE),
                                   ("weight_bits", weight_bits, limits.WEIGHT_BITS),
                                   ("rows_per_word", rows_per_word, limits.ARRAY_SIZE),
                                   ("tag_bits", tag_bits, (0, 64))):
            check_int(name, value, limit)
        if rows % rows_per_word:
            raise ValueError(f"rows_per_word ({rows_per_word}) must divide rows ({rows})")
        limits.check_choice("mode", mode, PE_MODES)
        if mode == "serial":
            if timesteps is not None or tau_shift is not None:
                raise ValueError("timesteps and tau_shift are packed-mode parameters (a serial "
                                 "array sees one bit plane at a time); leave them out")
            return
        for name, value in (("timesteps", timesteps), ("tau_shift", tau_shift)):
            if value is None:
                raise TypeError(f"mode 'packed' needs {name}")
            if not limits.is_int(value):
                raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
        check_int("timesteps", timesteps, limits.TIMESTEPS)
        limits.check_choice("tau_shift", tau_shift, limits.TAU_SHIFTS)

    @classmethod
    def from_config(cls, config, *, tag_bits: int = 0, plane_gated: bool = False) -> "SpikeArray":
        """The array of a :class:`spikepack.config.HardwareConfig`, as the layer engine builds
        it: its ``pe_mode``, g = ``rows_per_word``, outputs of ``widths.current`` (serial) or
        ``widths.potential`` (packed) bits."""
        from spikepack.config import HardwareConfig
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        common = dict(rows=config.rows, cols=config.cols, weight_bits=config.weight_bits,
                      rows_per_word=config.rows_per_word, tag_bits=tag_bits)
        if config.pe_mode == "packed":
            return cls(**common, current_bits=config.widths.potential, mode="packed",
                       timesteps=config.timesteps, tau_shift=config.tau_shift)
        return cls(**common, current_bits=config.widths.current, plane_gated=plane_gated)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def value_bits(self) -> int | None:
        """Width of p(z) in packed mode (None in serial mode)."""
        if self._mode != "packed":
            return None
        return packed_value_bits(self._timesteps, self._tau_shift)

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def rows_per_word(self) -> int:
        return self._g

    @property
    def groups(self) -> int:
        """R/g: weight words per tile."""
        return self._rows // self._g

    @property
    def current_bits(self) -> int:
        return self._current_bits

    @property
    def latency(self) -> int:
        return self._rows

    def elaborate(self, platform):
        m = Module()
        R, C, g, bw = self._rows, self._cols, self._g, self._weight_bits
        n = self.groups

        # Input skew: row r sees its input r cycles after the beat enters (serial: the spike
        # bit and first; packed: the T-bit spike word, gated by valid, expanded to p(z) after
        # the skew, by wiring).
        spike_in = [None] * R
        first_in = [None] * R
        value_in = [None] * R
        packed = self._mode == "packed"
        T, k = self._timesteps, self._tau_shift
        for r in range(R):
            if packed:
                z = Signal(T, name=f"word_r{r}")
                m.d.comb += z.eq(self.words[r * T:(r + 1) * T] & self.valid.replicate(T))
                for d in range(r):
                    z_next = Signal(T, name=f"skew_z_r{r}_d{d}")
                    m.d.sync += z_next.eq(z)
                    z = z_next
                # p(z): bit b of z (step T - b) weighs tau**b = 2**(k*b)
                parts = []
                for b in range(T):
                    parts.append(z[b])
                    if b < T - 1 and k > 1:
                        parts.append(Const(0, k - 1))
                value = Signal(self.value_bits, name=f"value_r{r}")
                m.d.comb += value.eq(Cat(*parts))
                value_in[r] = value
                continue
            # (a gated plane is 0 wherever valid is: row 0's spike then reaches the reset pins
            # of its PEs' registers straight from the parent's plane register)
            s = self.plane[r] if self._plane_gated else self.plane[r] & self.valid
            f = self.first
            for d in range(r):
                s_next = Signal(name=f"skew_s_r{r}_d{d}")
                f_next = Signal(name=f"skew_f_r{r}_d{d}")
                m.d.sync += [s_next.eq(s), f_next.eq(f)]
                s, f = s_next, f_next
            spike_in[r], first_in[r] = s, f

        # Weight launch delay chain: stage rr holds the word launched rr cycles ago.
        def word_row(word, rr, c):
            return word[(rr * C + c) * bw:(rr * C + c + 1) * bw]

        stage_valid = [self.wload]
        stage_group = [self.wgroup]
        stage_word = [self.wdata]
        for rr in range(1, g):
            v = Signal(name=f"wchain{rr}_valid")
            grp = Signal.like(self.wgroup, name=f"wchain{rr}_group")
            # only rows rr .. g-1 are still needed downstream
            word = Signal(g * C * bw, name=f"wchain{rr}_word")
            m.d.sync += [v.eq(stage_valid[-1]), grp.eq(stage_group[-1])]
            m.d.sync += word[rr * C * bw:].eq(stage_word[-1][rr * C * bw:])
            stage_valid.append(v)
            stage_group.append(grp)
            stage_word.append(word)

        # PEs
        pes = {}
        for r in range(R):
            q, rr = divmod(r, g)
            wr = Signal(name=f"wr_row{r}")
            m.d.comb += wr.eq(stage_valid[rr] & (stage_group[rr] == q) if n > 1
                              else stage_valid[rr])
            in_bits = row_bits(r - 1, bw, self._current_bits, self._scale) if r else 0
            out_bits = row_bits(r, bw, self._current_bits, self._scale)
            for c in range(C):
                if packed:
                    pe = ProcessingElement(weight_bits=bw, in_bits=in_bits, out_bits=out_bits,
                                           mode="packed", value_bits=self.value_bits)
                else:
                    pe = ProcessingElement(weight_bits=bw, in_bits=in_bits, out_bits=out_bits)
                m.submodules[f"pe_r{r}_c{c}"] = pe
                pes[r, c] = pe
                m.d.comb += [
                    pe.wr_en.eq(wr),
                    pe.wr_data.eq(word_row(stage_word[rr], rr, c)),
                ]
                if packed:
                    m.d.comb += pe.value.eq(value_in[r])
                else:
                    m.d.comb += [pe.spike.eq(spike_in[r]), pe.first.eq(first_in[r])]
                if r:
                    m.d.comb += pe.psum_in.eq(pes[r - 1, c].psum_out)
        for c in range(C):
            m.d.comb += self.out[c].eq(pes[R - 1, c].psum_out)

        # valid / tag delayed by R cycles, aligned with out.
        v, t = self.valid, (self.tag if self._tag_bits else None)
        for d in range(R):
            v_next = Signal(name=f"valid_d{d}")
            m.d.sync += v_next.eq(v)
            v = v_next
            if t is not None:
                t_next = Signal(self._tag_bits, name=f"tag_d{d}")
                m.d.sync += t_next.eq(t)
                t = t_next
        m.d.comb += self.out_valid.eq(v)
        if t is not None:
            m.d.comb += self.out_tag.eq(t)
        return m
