"""The patch address generator of a conv layer: im2col without storing it (``docs/array.md``,
``docs/architecture.md``, "Convolution contract", "Engine").

A conv layer (input map C_in x H x W stored channels last, ``firmware.layout.to_storage``:
activation entry ``(y*W + x)*CG + cg`` holds channels cg*R .. cg*R + R - 1 of pixel (y, x),
CG = ceil(C_in / R)) runs on the array as the dense layer (C_out, N), N = K_h*K_w*CG*R, once per
computed output position. This block produces the activation entry of every tile, in the tile
order of the contract:

    for (py, px) in raster order of the pooled map (H_p x W_p):
      for (wy, wx) in raster order of the k_h x k_w pool window:  # oy = py*k_h + wy, ox = px*k_w + wx
        for ct in 0 .. CT-1:                                     # CT = ceil(C_out / C)
          for ky in 0 .. K_h-1:  for kx in 0 .. K_w-1:  for cg in 0 .. CG-1:
            # row tile rt = (ky*K_w + kx)*CG + cg
            iy = oy*s_h + ky - p_h;  ix = ox*s_w + kx - p_w
            entry (iy*W + ix)*CG + cg, or "padding" unless 0 <= iy < H and 0 <= ix < W

After the last tile the sequence starts again from the first (the generator runs ahead of its
consumer, which takes exactly the tiles of its layer and restarts it with ``start``).

**Incremental adds only.** The entries of one kernel row are consecutive (cg innermost, then
kx: ``(iy*W + ix + 1)*CG + 0`` follows ``(iy*W + ix)*CG + CG - 1``), so

    entry = org + py*d_py + px*d_px + wy*d_wy + wx*d_wx + ky*d_ky + col,   col = kx*CG + cg

with d_ky = W*CG, d_wx = s_w*CG, d_wy = s_h*W*CG, d_px = k_w*s_w*CG, d_py = k_h*s_h*W*CG and
org = -(p_h*W + p_w)*CG (entries are counted modulo 2**addr_bits: a padding tile's entry may be
"negative"; it is never read). Each term is a counter that adds its step when its loop moves
and clears when an outer loop does; the input coordinates ix = -p_w + px*k_w*s_w + wx*s_w + kx
and iy = -p_h + py*k_h*s_h + wy*s_h + ky, for the padding test, are formed the same way. The
products are formed in setup cycles by shift-and-add (one add per multiplier bit), so no
multiplier sits in the running datapath.

**Pipeline** (one tile a cycle, every stage a register): S1 the loop counters (a down-counter
and a registered ``== 0`` flag per loop, the innermost first), and for S2 which loop moves at
the next step (the lowest whose flag is clear) and which loops clear (those inside it; all of
them when every flag is set: the sequence starts again), registered; S2 the terms (a carry
chain each, no selection); S3 and S4 a registered adder tree (seven terms of the entry, four of
each coordinate); S5 the entry and the four compares of ``pad``, S6 their OR, registered; then a
four-entry :class:`~spikepack.hw.stream.RunAheadFifo` (``o`` is its read side). S1-S6 move
together (``adv``, a flip-flop): they hold while the FIFO held 3 or more tiles the cycle before
(it can have gained at most one since, so a tile leaving S6 always finds room), which keeps
``o.ready`` (the FIFO's read enable: its read pointer and level) away from the 140-odd enables
of S1-S6 and one tile a cycle flowing while the consumer takes one a cycle.

Ports: ``start`` In(1) (a strobe: ``geometry`` is sampled in its cycle and the generator starts
over, whatever it was doing), ``geometry`` In(:func:`geometry_layout`) (the descriptor's conv
fields and ``neurons`` = C_out), ``o`` Out(stream of ``{addr, pad}``): one tile each; ``pad``
set means the tile's activation word is zero and ``addr`` is meaningless. ``positions``
Out: the computed output positions H_out' * W_out' = (H_p*k_h) * (W_p*k_w), and ``window``
Out: k_h*k_w, both valid from the first ``o.valid`` after ``start`` until the next ``start``.

Latency and throughput. From a ``start`` in cycle t the first tile is valid on ``o`` in cycle
t + :func:`setup_latency` (config) = t + 13 + S0 + S1 + S2, where S0, S1, S2 are the steps of
the three multiply phases (:func:`phase_steps`: the bits of their widest multipliers, W and the
pooled sides in phase 0, H_out' <= max_map_side + 14 in phase 1, k_h in phase 2; 6 + 6 + 3
for max_map_side 32): the geometry register, the CG/CT cycle, a load cycle per phase, the
origin cycle, the loop counters' initial values, the priming of S1, the steps into S3, S4, S5
and S6 and the output buffer's register. Then one tile per cycle for as long as ``o.ready`` is
high (the generator never runs dry: S1-S6 advance whenever the buffer has room); with
``o.ready`` low the tile stays on ``o`` (a stream). Throughput: one tile per cycle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.stream import RunAheadFifo


__all__ = ["PatchGenerator", "geometry_layout", "patch_sequence", "setup_latency", "LEVELS"]

#: the loops of the tile order, innermost first (S1's counters and the levels of a step)
LEVELS = ("cg", "kx", "ky", "ct", "wx", "wy", "px", "py")
#: bits of the pool window multipliers (pool_h, pool_w: 1..7)
POOL_BITS = 3

_GEOMETRY = ("in_channels", "in_height", "in_width", "kernel_h", "kernel_w", "stride_h",
             "stride_w", "pad_h", "pad_w", "pool_h", "pool_w", "out_height", "out_width")


def geometry_layout() -> data.StructLayout:
    """The conv fields of a descriptor (``firmware.layout.DESCRIPTOR_FIELDS`` widths) and
    ``neurons`` (C_out)."""
    fields = {name: DESCRIPTOR_FIELDS[name][1] for name in _GEOMETRY}
    fields["neurons"] = DESCRIPTOR_FIELDS["neurons"][1]
    return data.StructLayout(fields)


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def side_bits(config: HardwareConfig) -> int:
    """Bs: bits of a map side (``max_map_side``); H, W, H_p, W_p fit in them."""
    return _bits(config.max_map_side)


def phase_steps(config: HardwareConfig) -> tuple[int, int, int]:
    """Shift-and-add steps of the three setup phases: the bits of their widest multipliers
    (phase 0: W and H_p, W_p; phase 1: H_out' <= max_map_side + 14; phase 2: k_h)."""
    Bs = side_bits(config)
    return (max(Bs, POOL_BITS), max(_bits(config.max_map_side + 14), POOL_BITS), POOL_BITS)


def setup_latency(config: HardwareConfig) -> int:
    """Cycles from ``start`` to the first tile on ``o``: 13 + S0 + S1 + S2 (module docstring,
    :func:`phase_steps`)."""
    return 13 + sum(phase_steps(config))


def patch_sequence(*, rows: int, cols: int, in_channels: int, in_height: int, in_width: int,
                   kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                   pool: tuple[int, int], out_channels: int):
    """The reference loop nest: yields (entry or None for padding) for every tile of one layer,
    in the contract's order (``rows`` = R, ``cols`` = C)."""
    R, C = rows, cols
    H, W = in_height, in_width
    (K_h, K_w), (s_h, s_w), (p_h, p_w), (k_h, k_w) = kernel, stride, padding, pool
    CG, CT = -(-in_channels // R), -(-out_channels // C)
    H_out = (H + 2 * p_h - K_h) // s_h + 1
    W_out = (W + 2 * p_w - K_w) // s_w + 1
    for py in range(H_out // k_h):
        for px in range(W_out // k_w):
            for wy in range(k_h):
                for wx in range(k_w):
                    oy, ox = py * k_h + wy, px * k_w + wx
                    for _ct in range(CT):
                        for ky in range(K_h):
                            for kx in range(K_w):
                                for cg in range(CG):
                                    iy, ix = oy * s_h + ky - p_h, ox * s_w + kx - p_w
                                    if 0 <= iy < H and 0 <= ix < W:
                                        yield (iy * W + ix) * CG + cg
                                    else:
                                        yield None


class PatchGenerator(wiring.Component):
    """Pipelined patch address generator of ``config`` (see the module docstring)."""

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        if not config.conv:
            raise ValueError("a configuration with conv = False has no conv layers and no "
                             "patch generator")
        self._config = config
        self._abits = config.act_addr_bits
        side = config.max_map_side
        # H_out <= H + 2*p - K + 1 <= side + 14 (pad <= 7): the positions of one layer
        self._pos_bits = _bits((side + 14) ** 2)
        super().__init__({
            "start": In(1),
            "geometry": In(geometry_layout()),
            "o": Out(stream.Signature(data.StructLayout({"addr": self._abits, "pad": 1}))),
            "positions": Out(self._pos_bits),
            "window": Out(_bits(7 * 7)),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first tile on ``o`` (:func:`setup_latency`)."""
        return setup_latency(self._config)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        log_r, log_c = (R - 1).bit_length(), (C - 1).bit_length()
        ab = self._abits
        Bs, Bk = side_bits(cfg), POOL_BITS
        kb = _bits(cfg.max_kernel)
        cg_max = -(-cfg.max_channels // R)
        ct_max = -(-cfg.max_channels // C)
        chb = _bits(cfg.max_channels)
        # signed input coordinates: -7 .. side + 14 (and the wrap-around beyond, harmlessly)
        ib = _bits(cfg.max_map_side + 64) + 1

        # --- geometry register (the fields within the configuration's limits) ---------------
        g = self.geometry
        C_in, H, W = Signal(chb), Signal(Bs), Signal(Bs)
        K_h, K_w = Signal(kb), Signal(kb)
        s_h, s_w, p_h, p_w = Signal(2), Signal(2), Signal(3), Signal(3)
        k_h, k_w = Signal(Bk), Signal(Bk)
        H_p, W_p = Signal(Bs), Signal(Bs)
        C_out = Signal(chb)
        # the start's clear of every stage is registered (its fan-out then starts at a
        # flip-flop); the generator only runs again three setup phases later
        restart = Signal()
        m.d.sync += restart.eq(self.start)
        with m.If(self.start):
            m.d.sync += [
                C_in.eq(g.in_channels[:chb]), H.eq(g.in_height[:Bs]), W.eq(g.in_width[:Bs]),
                K_h.eq(g.kernel_h[:kb]), K_w.eq(g.kernel_w[:kb]),
                s_h.eq(g.stride_h), s_w.eq(g.stride_w), p_h.eq(g.pad_h), p_w.eq(g.pad_w),
                k_h.eq(g.pool_h[:Bk]), k_w.eq(g.pool_w[:Bk]),
                H_p.eq(g.out_height[:Bs]), W_p.eq(g.out_width[:Bs]), C_out.eq(g.neurons[:chb]),
            ]

        # --- setup: a one-hot phase chain --------------------------------------------------
        # ph_cg: CG and CT; then three multiply phases (a load cycle, then one shift-and-add
        # step per multiplier bit); ph_org: the first origin; ph_init: the loop counters and
        # origins of tile 0; ph_prime: S1 takes its first step; then run.
        ph_cg, ph_org, ph_init, ph_prime, run = (Signal(name=n) for n in
                                                 ("ph_cg", "ph_org", "ph_init", "ph_prime", "run"))
        steps = phase_steps(cfg)
        load = [Signal(name=f"mul{i}_load") for i in range(3)]
        stepping = [Signal(name=f"mul{i}_step") for i in range(3)]
        count = [Signal(range(n + 1), name=f"mul{i}_count") for i, n in enumerate(steps)]
        done = [Signal(name=f"mul{i}_done") for i in range(3)]
        for i, n in enumerate(steps):
            m.d.comb += done[i].eq(stepping[i] & (count[i] == 1))
            with m.If(load[i]):
                m.d.sync += [stepping[i].eq(1), count[i].eq(n)]
            with m.Elif(stepping[i]):
                m.d.sync += count[i].eq(count[i] - 1)
                with m.If(count[i] == 1):
                    m.d.sync += stepping[i].eq(0)
        m.d.sync += [
            ph_cg.eq(self.start),
            load[0].eq(ph_cg), load[1].eq(done[0]), load[2].eq(done[1]),
            ph_org.eq(done[2]), ph_init.eq(ph_org), ph_prime.eq(ph_init),
        ]
        with m.If(ph_prime):
            m.d.sync += run.eq(1)
        with m.If(restart):
            m.d.sync += [run.eq(0)] + [s.eq(0) for s in stepping]

        CG = Signal(range(cg_max + 1))
        CT = Signal(range(ct_max + 1))
        with m.If(ph_cg):
            m.d.sync += [CG.eq((C_in + R - 1) >> log_r), CT.eq((C_out + C - 1) >> log_c)]

        def multiply(phase, a, b, width, name):
            """a * b (modulo 2**width), b of steps[phase] bits, MSB first: acc = 2*acc + b_i*a."""
            n = steps[phase]
            acc = Signal(width, name=name)
            mb = Signal(n, name=f"{name}_b")
            with m.If(load[phase]):
                m.d.sync += [acc.eq(0), mb.eq(b)]
            with m.Elif(stepping[phase]):
                m.d.sync += [acc.eq((acc << 1) + Mux(mb[-1], a, 0)), mb.eq(mb << 1)]
            return acc

        pb = self._pos_bits
        # phase 0: products of CG and the map / pool sizes
        d_ky = multiply(0, CG, W, ab, "d_ky")                    # W*CG
        d_wx = multiply(0, CG, s_w, ab, "d_wx")                  # s_w*CG
        pwcg = multiply(0, CG, p_w, ab, "pwcg")                  # p_w*CG
        sxp = multiply(0, k_w, s_w, ib, "sxp")                   # k_w*s_w
        syp = multiply(0, k_h, s_h, ib, "syp")                   # k_h*s_h
        wo = multiply(0, k_w, W_p, pb, "wo")                     # W_out' = W_p*k_w
        ho = multiply(0, k_h, H_p, pb, "ho")                     # H_out' = H_p*k_h
        win = multiply(0, k_h, k_w, len(self.window), "win")     # k_h*k_w
        # phase 1
        d_wy = multiply(1, d_ky, s_h, ab, "d_wy")                # s_h*W*CG
        phdky = multiply(1, d_ky, p_h, ab, "phdky")              # p_h*W*CG
        d_px = multiply(1, d_wx, k_w, ab, "d_px")                # k_w*s_w*CG
        pos = multiply(1, wo, ho, pb, "pos")                     # H_out' * W_out'
        # phase 2
        d_py = multiply(2, d_wy, k_h, ab, "d_py")                # k_h*s_h*W*CG
        org = Signal(ab)
        with m.If(ph_org):
            m.d.sync += org.eq(-(phdky + pwcg))
        m.d.comb += [self.positions.eq(pos), self.window.eq(win)]

        # --- S1: the loop counters and the level of their next step --------------------------
        maxima = {
            "cg": (CG - 1)[:_bits(cg_max - 1)], "kx": (K_w - 1)[:_bits(cfg.max_kernel - 1)],
            "ky": (K_h - 1)[:_bits(cfg.max_kernel - 1)], "ct": (CT - 1)[:_bits(ct_max - 1)],
            "wx": (k_w - 1)[:Bk], "wy": (k_h - 1)[:Bk],
            "px": (W_p - 1)[:Bs], "py": (H_p - 1)[:Bs],
        }
        n_lv = len(LEVELS)
        left = [Signal(len(maxima[name]), name=f"left_{name}") for name in LEVELS]
        zero = [Signal(name=f"zero_{name}") for name in LEVELS]     # left == 0
        one = [Signal(name=f"one_{name}") for name in LEVELS]       # left == 1
        # inner[i]: loops 0 .. i-1 are all at their last value (loop i moves at the next step);
        # kept as registers (a prefix AND of the zero flags), so that no AND chain sits between
        # the stall and the counters' enables
        inner = [Signal(name=f"inner_{name}") for name in LEVELS] + [Signal(name="inner_all")]
        # the loop bounds as registers (set while the origin is formed), with their == 0 and
        # == 1 flags
        top = [Signal(len(maxima[name]), name=f"max_{name}") for name in LEVELS]
        top_zero = [Signal(name=f"max_{name}_zero") for name in LEVELS]
        top_one = [Signal(name=f"max_{name}_one") for name in LEVELS]
        with m.If(ph_org):
            for i, name in enumerate(LEVELS):
                m.d.sync += [top[i].eq(maxima[name]), top_zero[i].eq(maxima[name] == 0),
                             top_one[i].eq(maxima[name] == 1)]

        # the output FIFO (below); S1-S6 hold while it held 3 or more tiles the cycle before
        out_fifo = ResetInserter(restart)(RunAheadFifo(width=len(self.o.payload.as_value()),
                                                       depth=4))
        m.submodules.out_fifo = out_fifo
        room = out_fifo.room
        adv = Signal()                      # S1-S6 move (run and not stalled), a flip-flop
        adv1 = Signal()                     # S1 moves (adv, or the priming step), a flip-flop
        # (run1: run, from the priming step on)
        run1 = Signal()
        with m.If(ph_init):
            m.d.sync += run1.eq(1)
        with m.If(restart):
            m.d.sync += run1.eq(0)
        # adv and adv1 from the next values of run and run1 (run: set by ph_prime, run1 by
        # ph_init, both cleared by restart)
        m.d.sync += [adv.eq((run | ph_prime) & ~restart & room),
                     adv1.eq((run1 | ph_init) & ~restart & room)]

        # A step: the loops inside the lowest one that is not at its last value start again,
        # that one counts down, the others hold. Every next value is formed from registers
        # (as if the step happened) and taken with adv1: the flags' next values are a tree of
        # ANDs over per-loop terms, not a chain behind the enable.
        # registered for S2: move[i] (loop i steps on) and reset[i] (a loop outside i steps on,
        # or the sequence starts again: loop i goes back to its first value)
        move = Signal(n_lv)
        reset = Signal(n_lv)
        zero_step = []
        for i in range(n_lv):
            with m.If(adv1 & inner[i]):
                m.d.sync += [
                    left[i].eq(Mux(zero[i], top[i], left[i] - 1)),
                    one[i].eq(Mux(zero[i], top_one[i], left[i] == 2)),
                ]
            zero_step.append(Mux(inner[i], Mux(zero[i], top_zero[i], one[i]), zero[i]))
        with m.If(adv1):
            m.d.sync += [zero[i].eq(zero_step[i]) for i in range(n_lv)]
            m.d.sync += [inner[i + 1].eq(Cat(*zero_step[:i + 1]).all()) for i in range(n_lv)]
            m.d.sync += [move.eq(Cat(*(inner[i] & ~zero[i] for i in range(n_lv)))),
                         reset.eq(Cat(*inner[1:]))]
        m.d.comb += inner[0].eq(1)
        with m.If(ph_init):
            for i in range(n_lv):
                m.d.sync += [left[i].eq(top[i]), zero[i].eq(top_zero[i]), one[i].eq(top_one[i]),
                             inner[i + 1].eq(Cat(*top_zero[:i + 1]).all())]

        # --- S2: one term of the entry and of the coordinates per loop ----------------------
        # Each term is its loop's index times the loop's step: a counter that adds the step when
        # its loop moves and clears when an outer one does (a carry chain and the flip-flops'
        # clear), so the entry is org + P_py + P_px + P_wy + P_wx + P_ky + col with
        # col = kx*CG + cg, and ix = -p_w + X_px + X_wx + kx, iy = -p_h + Y_py + Y_wy + ky.
        lv = {name: i for i, name in enumerate(LEVELS)}

        def term(width, steps_by, clear_at, name, sign=False):
            """A counter of S2: += step when one of the loops in ``steps_by`` (name -> step)
            moves, 0 when loop ``clear_at`` is reset."""
            reg = Signal(signed(width) if sign else width, name=name)
            with m.If(adv):
                with m.If(reset[lv[clear_at]]):
                    m.d.sync += reg.eq(0)
                for loop, step in steps_by.items():
                    with m.Elif(move[lv[loop]]):
                        m.d.sync += reg.eq(reg + step)
            with m.If(ph_init):
                m.d.sync += reg.eq(0)
            return reg

        col = term(_bits(cfg.max_kernel * cg_max), {"cg": 1, "kx": 1}, "kx", "col")
        P_ky = term(ab, {"ky": d_ky}, "ky", "P_ky")
        P_wx = term(ab, {"wx": d_wx}, "wx", "P_wx")
        P_wy = term(ab, {"wy": d_wy}, "wy", "P_wy")
        P_px = term(ab, {"px": d_px}, "px", "P_px")
        P_py = term(ab, {"py": d_py}, "py", "P_py")
        X_kx = term(ib, {"kx": 1}, "kx", "X_kx", True)
        X_wx = term(ib, {"wx": s_w}, "wx", "X_wx", True)
        X_px = term(ib, {"px": sxp}, "px", "X_px", True)
        Y_ky = term(ib, {"ky": 1}, "ky", "Y_ky", True)
        Y_wy = term(ib, {"wy": s_h}, "wy", "Y_wy", True)
        Y_py = term(ib, {"py": syp}, "py", "Y_py", True)
        ix0 = Signal(signed(ib))            # -p_w
        iy0 = Signal(signed(ib))            # -p_h
        with m.If(ph_org):
            m.d.sync += [ix0.eq(-p_w), iy0.eq(-p_h)]

        # --- S3-S5: the sums (a registered adder tree) and the padding test ------------------
        def stage(values, shape, name):
            """Registers of the next stage (moved with adv), truncated to ``shape``."""
            regs = []
            for k, v in enumerate(values):
                r = Signal(shape, name=f"{name}{k}")
                with m.If(adv):
                    m.d.sync += r.eq(v)
                regs.append(r)
            return regs

        a0, a1, a2, a3 = stage([org + P_py, P_px + P_wy, P_wx + P_ky, col], ab, "s3_a")
        x0, x1, y0, y1 = stage([ix0 + X_px, X_wx + X_kx, iy0 + Y_py, Y_wy + Y_ky], signed(ib),
                               "s3_c")
        b0, b1 = stage([a0 + a1, a2 + a3], ab, "s4_a")
        xs, ys = stage([x0 + x1, y0 + y1], signed(ib), "s4_c")
        s5_addr = Signal(ab)
        s5_out = Signal(4)                  # the four ways out of the map
        s6_addr = Signal(ab)
        s6_pad = Signal()
        with m.If(adv):
            m.d.sync += [s5_addr.eq(b0 + b1),
                         s5_out.eq(Cat(ys < 0, ys >= H, xs < 0, xs >= W)),
                         s6_addr.eq(s5_addr), s6_pad.eq(s5_out.any())]
        # S3-S6 hold a tile once S2 has passed one on (four moves after the priming)
        filled = Signal(4)
        with m.If(adv):
            m.d.sync += filled.eq(Cat(1, filled[:-1]))
        with m.If(restart):
            m.d.sync += filled.eq(0)
        s5_valid = filled[3]                # (S6's tile)

        # --- output FIFO: o (first word fall through) ------------------------------------------
        m.d.comb += [
            out_fifo.w_en.eq(s5_valid & adv),
            out_fifo.w_data.eq(Cat(s6_addr, s6_pad)),
        ]
        # (the cycle after a start the FIFO still holds the previous layer's tiles; a pop then
        # is overridden by its reset)
        m.d.comb += [self.o.valid.eq(out_fifo.r_rdy & ~restart),
                     self.o.payload.eq(out_fifo.r_data), out_fifo.r_en.eq(self.o.ready)]
        return m
