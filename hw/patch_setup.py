"""The patch generator's setup (:class:`PatchSetup`): the geometry register, CG and CT, the
three shift-and-add multiply phases, the origin and the loop bounds, and the run control of
the pipeline (``spikepack.hw.patch``, its module docstring for the arithmetic).

The products it forms (a descriptor's conv geometry, CG = ceil(C_in / R), CT = ceil(C_out / C)):

    d_ky = W*CG, d_wx = s_w*CG, d_wy = s_h*W*CG, d_px = k_w*s_w*CG, d_py = k_h*s_h*W*CG,
    org = -(p_h*W + p_w)*CG (modulo 2**addr_bits), sxp = k_w*s_w, syp = k_h*s_h,
    ix0 = -p_w, iy0 = -p_h, positions = (H_p*k_h)*(W_p*k_w), window = k_h*k_w,

and the loop bounds ``top`` (the last index of each loop of :data:`LEVELS`: CG-1, K_w-1, K_h-1,
CT-1, k_w-1, k_h-1, W_p-1, H_p-1) with their ``== 0`` and ``== 1`` flags.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS

__all__ = ["PatchSetup", "LEVELS", "POOL_BITS", "geometry_layout", "phase_steps",
           "setup_latency", "side_bits", "control_signature", "bounds_signature",
           "steps_layout", "bits"]

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


def bits(n: int) -> int:
    """Bits of the unsigned integer ``n`` (at least 1)."""
    return max(1, int(n).bit_length())


def side_bits(config: HardwareConfig) -> int:
    """Bs: bits of a map side (``max_map_side``); H, W, H_p, W_p fit in them."""
    return bits(config.max_map_side)


def phase_steps(config: HardwareConfig) -> tuple[int, int, int]:
    """Shift-and-add steps of the three setup phases: the bits of their widest multipliers
    (phase 0: W and H_p, W_p; phase 1: H_out' <= max_map_side + 14; phase 2: k_h)."""
    Bs = side_bits(config)
    return (max(Bs, POOL_BITS), max(bits(config.max_map_side + 14), POOL_BITS), POOL_BITS)


def setup_latency(config: HardwareConfig) -> int:
    """Cycles from ``start`` to the first tile on the generator's ``o``: 13 + S0 + S1 + S2
    (``spikepack.hw.patch``'s module docstring, :func:`phase_steps`)."""
    return 13 + sum(phase_steps(config))


def _coord_bits(config: HardwareConfig) -> int:
    # signed input coordinates: -7 .. side + 14 (and the wrap-around beyond, harmlessly)
    return bits(config.max_map_side + 64) + 1


def _bound_widths(config: HardwareConfig) -> dict[str, int]:
    cg_max, ct_max = -(-config.max_channels // config.rows), -(-config.max_channels // config.cols)
    kb = bits(config.max_kernel - 1)
    return {"cg": bits(cg_max - 1), "kx": kb, "ky": kb, "ct": bits(ct_max - 1),
            "wx": POOL_BITS, "wy": POOL_BITS, "px": side_bits(config), "py": side_bits(config)}


def control_signature() -> wiring.Signature:
    """The pipeline's control, shared by the loops and the sums (all flip-flops):
    ``restart`` (the cycle after ``start``), ``init`` (tile 0's values are loaded), ``adv``
    (S1-S6 move), ``adv1`` (S1 moves: ``adv`` or the priming step)."""
    return wiring.Signature({n: Out(1) for n in ("restart", "init", "adv", "adv1")})


def bounds_signature(config: HardwareConfig) -> wiring.Signature:
    """The loop bounds of :data:`LEVELS` (registers): ``top`` (a struct, one field a loop),
    ``top_zero``, ``top_one`` (bit i: loop i's bound is 0, 1)."""
    return wiring.Signature({"top": Out(data.StructLayout(_bound_widths(config))),
                             "top_zero": Out(len(LEVELS)), "top_one": Out(len(LEVELS))})


def steps_layout(config: HardwareConfig) -> data.StructLayout:
    """The steps of the sums' terms, the origin and the map size (registers)."""
    ab, ib, Bs = config.act_addr_bits, _coord_bits(config), side_bits(config)
    fields = {n: ab for n in ("org", "d_ky", "d_wx", "d_wy", "d_px", "d_py")}
    fields.update(sxp=ib, syp=ib, s_w=2, s_h=2, ix0=signed(ib), iy0=signed(ib), H=Bs, W=Bs)
    return data.StructLayout(fields)


class PatchSetup(wiring.Component):
    """The setup of the patch generator of ``config`` (module docstring).

    Ports: ``start`` In(1) (a strobe: every field of ``geometry`` is sampled in its cycle and
    the setup starts over), ``geometry`` In(:func:`geometry_layout`), ``room`` In(1) (the
    output FIFO's room); ``control`` Out(:func:`control_signature`), ``bounds``
    Out(:func:`bounds_signature`), ``steps`` Out(:func:`steps_layout`), ``positions``,
    ``window`` Out.

    Latency: from ``start`` in cycle t (S = S0 + S1 + S2, :func:`phase_steps`), ``restart``
    is high in t + 1; CG, CT are set in t + 2; the three multiply phases (a load cycle and S_i
    steps each) end in t + 4 + S; the origin cycle t + 5 + S sets ``org``, ``ix0``, ``iy0``
    and ``bounds``, valid (as are the products, ``positions`` and ``window``) from t + 6 + S
    until the next ``start``; ``init`` is high in t + 6 + S; ``adv1`` from t + 7 + S and
    ``adv`` from t + 8 + S in every cycle after one with ``room`` (a running setup's ``adv``
    and ``adv1`` are still high in t + 1: they are registered). Throughput: one setup per
    ``start``; then ``adv`` and ``adv1`` once a cycle while ``room``.
    """

    def __init__(self, *, config: HardwareConfig):
        self._config = config
        self.pos_bits = bits((config.max_map_side + 14) ** 2)
        super().__init__({
            "start": In(1), "geometry": In(geometry_layout()), "room": In(1),
            "control": Out(control_signature()), "bounds": Out(bounds_signature(config)),
            "steps": Out(steps_layout(config)),
            "positions": Out(self.pos_bits), "window": Out(bits(7 * 7)),
        })

    def _geometry_register(self, m):
        cfg, g = self._config, self.geometry
        chb, Bs, kb, Bk = bits(cfg.max_channels), side_bits(cfg), bits(cfg.max_kernel), POOL_BITS
        shapes = {"in_channels": chb, "in_height": Bs, "in_width": Bs, "kernel_h": kb,
                  "kernel_w": kb, "stride_h": 2, "stride_w": 2, "pad_h": 3, "pad_w": 3,
                  "pool_h": Bk, "pool_w": Bk, "out_height": Bs, "out_width": Bs, "neurons": chb}
        regs = {}
        for name, width in shapes.items():
            regs[name] = Signal(width, name=f"g_{name}")
            with m.If(self.start):
                m.d.sync += regs[name].eq(getattr(g, name)[:width])
        return regs

    def _phases(self, m, ph_cg, restart):
        """The multiply phases' one-hot chain: (load, stepping) per phase and their end."""
        steps = phase_steps(self._config)
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
        m.d.sync += [load[0].eq(ph_cg), load[1].eq(done[0]), load[2].eq(done[1])]
        with m.If(restart):
            m.d.sync += [s.eq(0) for s in stepping]

        def multiply(phase, a, b, width, name):
            """a * b (modulo 2**width), b of steps[phase] bits, MSB first: acc = 2*acc + b_i*a."""
            acc = Signal(width, name=name)
            mb = Signal(steps[phase], name=f"{name}_b")
            with m.If(load[phase]):
                m.d.sync += [acc.eq(0), mb.eq(b)]
            with m.Elif(stepping[phase]):
                m.d.sync += [acc.eq((acc << 1) + Mux(mb[-1], a, 0)), mb.eq(mb << 1)]
            return acc
        return multiply, done[2]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        ab, ib, pb = cfg.act_addr_bits, _coord_bits(cfg), self.pos_bits
        g = self._geometry_register(m)
        C_in, W, s_h, s_w = g["in_channels"], g["in_width"], g["stride_h"], g["stride_w"]
        p_h, p_w, k_h, k_w = g["pad_h"], g["pad_w"], g["pool_h"], g["pool_w"]
        H_p, W_p = g["out_height"], g["out_width"]
        ctl, st = self.control, self.steps
        # the start's clear of every stage is registered (its fan-out then starts at a
        # flip-flop); the generator only runs again three setup phases later
        restart = ctl.restart
        m.d.sync += restart.eq(self.start)
        # ph_cg: CG and CT; three multiply phases; ph_org: the origin and the bounds; init:
        # the loop counters and terms of tile 0; ph_prime: S1 takes its first step; then run
        ph_cg, ph_org, ph_prime, run, run1 = (
            Signal(name=n) for n in ("ph_cg", "ph_org", "ph_prime", "run", "run1"))
        multiply, mul_done = self._phases(m, ph_cg, restart)
        m.d.sync += [ph_cg.eq(self.start), ph_org.eq(mul_done), ctl.init.eq(ph_org),
                     ph_prime.eq(ctl.init)]
        with m.If(ph_prime):
            m.d.sync += run.eq(1)
        with m.If(ctl.init):
            m.d.sync += run1.eq(1)
        with m.If(restart):
            m.d.sync += [run.eq(0), run1.eq(0)]
        # adv and adv1 from the next values of run and run1 (flip-flops)
        m.d.sync += [ctl.adv.eq((run | ph_prime) & ~restart & self.room),
                     ctl.adv1.eq((run1 | ctl.init) & ~restart & self.room)]

        CG = Signal(range(-(-cfg.max_channels // R) + 1))
        CT = Signal(range(-(-cfg.max_channels // C) + 1))
        with m.If(ph_cg):
            m.d.sync += [CG.eq((C_in + R - 1) >> (R - 1).bit_length()),
                         CT.eq((g["neurons"] + C - 1) >> (C - 1).bit_length())]
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
        m.d.comb += [self.positions.eq(pos), self.window.eq(win),
                     st.d_ky.eq(d_ky), st.d_wx.eq(d_wx), st.d_wy.eq(d_wy), st.d_px.eq(d_px),
                     st.d_py.eq(d_py), st.sxp.eq(sxp), st.syp.eq(syp), st.s_w.eq(s_w),
                     st.s_h.eq(s_h), st.H.eq(g["in_height"]), st.W.eq(W)]

        maxima = {"cg": CG - 1, "kx": g["kernel_w"] - 1, "ky": g["kernel_h"] - 1, "ct": CT - 1,
                  "wx": k_w - 1, "wy": k_h - 1, "px": W_p - 1, "py": H_p - 1}
        bd = self.bounds
        org, ix0, iy0 = Signal(ab), Signal(signed(ib)), Signal(signed(ib))
        top = {name: Signal(len(getattr(bd.top, name)), name=f"max_{name}") for name in LEVELS}
        top_zero, top_one = Signal(len(LEVELS)), Signal(len(LEVELS))
        with m.If(ph_org):
            m.d.sync += [org.eq(-(phdky + pwcg)), ix0.eq(-p_w), iy0.eq(-p_h)]
            for i, name in enumerate(LEVELS):
                v = maxima[name][:len(top[name])]
                m.d.sync += [top[name].eq(v), top_zero[i].eq(v == 0), top_one[i].eq(v == 1)]
        m.d.comb += [st.org.eq(org), st.ix0.eq(ix0), st.iy0.eq(iy0), bd.top_zero.eq(top_zero),
                     bd.top_one.eq(top_one)]
        m.d.comb += [getattr(bd.top, name).eq(top[name]) for name in LEVELS]
        return m
