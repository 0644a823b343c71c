"""The loader's conv descriptor checks that need products (``docs/bitstream.md``, "Descriptor
checks"), as free-running pipelines of adder trees: :class:`ConvChecker`, and
:func:`conv_check_cycles`, how long the loader holds a conv descriptor's lane 5 for them.

The descriptor's fields reach the checker through :func:`FieldsSignature` (one member a field
of :data:`FIELDS`), captured by the loader's descriptor checks from its lanes as they pass
(:mod:`spikepack.hw.descriptor_check`).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.config import HardwareConfig
from spikepack.hw.stream import or_all

__all__ = ["FIELDS", "FieldsSignature", "ConvChecker", "conv_check_cycles"]

#: the descriptor fields the loader captures (name: width), by lane: 0: fan-in n, neurons m;
#: 3: the pooled map hp, wp; 4: the input map cin, h, w; 5: kernel, stride, pad and pool per axis
FIELDS = {"n": 16, "m": 16, "hp": 8, "wp": 8, "cin": 16, "h": 8, "w": 8, "kh": 4, "kw": 4,
          "sh": 2, "sw": 2, "ph": 3, "pw": 3, "qh": 3, "qw": 3}
#: the cycle (relative to the beat ``b`` of the descriptor's lane 5) from which each field holds
#: its value at the latest: lane 0 at b - 3, lane 3 at b, lane 4 at b + 1, lane 5 at b + 2
FIELD_READY = {"n": -3, "m": -3, "hp": 0, "wp": 0, "cin": 1, "h": 1, "w": 1,
               **{name: 2 for name in ("kh", "kw", "sh", "sw", "ph", "pw", "qh", "qw")}}


def FieldsSignature() -> wiring.Signature:
    """A layer descriptor's captured fields (:data:`FIELDS`), from the loader's descriptor
    checks (Out) to the conv checker (In)."""
    return wiring.Signature({name: Out(width) for name, width in FIELDS.items()})


class _Timing:
    """Builds the pipelines into ``m`` (``None``: only their widths and timing) and tracks, for
    each registered value, the cycle (relative to ``b``, see :data:`FIELD_READY`) from which it
    holds its final value."""

    def __init__(self, m: Module | None):
        self.m = m
        self.ready: dict[int, int] = {}

    def _add(self, domain: str, statement):
        if self.m is not None:
            self.m.d[domain] += statement

    def at(self, signal, t: int):
        self.ready[id(signal)] = t
        return signal

    def t(self, *values) -> int:
        return max(self.ready[id(v)] for v in values)

    def reg(self, value, shape, name: str, *inputs):
        r = Signal(shape, name=name)
        self._add("sync", r.eq(value))
        return self.at(r, self.t(*inputs) + 1)

    def alias(self, value, shape, name: str, *inputs):
        """``value`` as a named (combinational) signal, ready when its inputs are."""
        r = Signal(shape, name=name)
        self._add("comb", r.eq(value))
        return self.at(r, self.t(*inputs))

    def product(self, a, b, name: str):
        """``a * b`` (unsigned) as a pipelined adder tree: the partial products of the narrower
        operand's bits, summed pairwise, one adder level a cycle (no multiplier block)."""
        t0 = self.t(a, b)
        if len(b) > len(a):
            a, b = b, a
        width = len(a) + len(b)
        terms = [Mux(b[i], a << i, 0) for i in range(len(b))]
        level = 0
        while True:
            pairs = [terms[i:i + 2] for i in range(0, len(terms), 2)]
            out = []
            for j, pair in enumerate(pairs):
                r = Signal(width, name=f"{name}_{level}_{j}")
                self._add("sync", r.eq(sum(pair[1:], pair[0])))
                out.append(r)
            terms, level = out, level + 1
            if len(terms) == 1:
                return self.at(terms[0], t0 + level)


def _build(m: Module | None, c: HardwareConfig, cur) -> tuple:
    """The pipelines from the fields ``cur`` (an object with one attribute a field) into ``m``
    (``None``: none, for the widths and timing): returns ``(bad, large, out_words, cycles)``
    (see :class:`ConvChecker`)."""
    R = c.rows
    lr = R.bit_length() - 1
    tm = _Timing(m)
    cur = {name: getattr(cur, name) for name in FIELDS}
    cg_bits = max(1, (-(-c.max_channels // R)).bit_length())
    h_bits = max(1, c.max_map_side.bit_length())
    p_bits = max(1, min(255, c.max_map_side + 2 * limits.PAD[1]).bit_length())
    for name, t in FIELD_READY.items():
        tm.at(cur[name], t)
    words_cap = c.max_map_words // R               # stored words > max_map_words <=> x > this
    cg_in = tm.reg((cur["cin"] + R - 1) >> lr, cg_bits, "cg_in", cur["cin"])
    cg_out = tm.reg((cur["m"] + R - 1) >> lr, cg_bits, "cg_out", cur["m"])
    n_hi = tm.reg(cur["n"] >> lr, 16 - lr, "n_hi", cur["n"])
    n_odd = tm.reg(cur["n"][:lr] != 0 if lr else 0, 1, "n_odd", cur["n"])
    # stored input and output maps
    h = tm.alias(cur["h"][:h_bits], h_bits, "h_side", cur["h"])
    w = tm.alias(cur["w"][:h_bits], h_bits, "w_side", cur["w"])
    hw = tm.product(h, w, "in_hw")
    in_words = tm.product(hw, cg_in, "in_words")
    in_large = tm.reg(in_words > words_cap, 1, "in_large", in_words)
    hp = tm.alias(cur["hp"][:p_bits], p_bits, "hp_side", cur["hp"])
    wp = tm.alias(cur["wp"][:p_bits], p_bits, "wp_side", cur["wp"])
    hpwp = tm.product(hp, wp, "out_hw")
    out_groups = tm.product(hpwp, cg_out, "out_words")
    out_large = tm.reg(out_groups > words_cap, 1, "out_large", out_groups)
    # the patch: fan-in = K_h K_w ceil(C_in/R) R
    kk = tm.product(cur["kh"], cur["kw"], "kk")
    patch = tm.product(kk, cg_in, "patch")
    n_bad = tm.reg((patch != n_hi) | n_odd, 1, "patch_bad", patch, n_hi, n_odd)
    # per axis: H + 2p >= K, and H_p = H_out // pool with H_out >= pool, as products:
    # H_p >= 1 and (H_p k - 1) s <= A < (H_p k + k - 1) s, A = H + 2p - K
    flags = [n_bad]
    for axis, side, out, pad, ker, stride, pool in (
            ("h", h, "hp", "ph", "kh", "sh", "qh"), ("w", w, "wp", "pw", "kw", "sw", "qw")):
        small = tm.reg((cur[pad] << 1) - cur[ker], signed(6), f"pk_{axis}", cur[pad], cur[ker])
        a = tm.reg(side + small, signed(h_bits + 2), f"a_{axis}", side, small)
        x = tm.product(cur[out], cur[pool], f"x_{axis}")
        lo1 = tm.reg(x - 1, len(x), f"lo1_{axis}", x)
        hi1 = tm.reg(x + cur[pool] - 1, len(x) + 1, f"hi1_{axis}", x, cur[pool])
        lo = tm.product(lo1, cur[stride], f"lo_{axis}")
        hi = tm.product(hi1, cur[stride], f"hi_{axis}")
        # one comparison a register (a carry chain each); bad ORs them
        flags += [tm.reg(a < 0, 1, f"kernel_over_{axis}", a),
                  tm.reg(cur[out] == 0, 1, f"pooled_zero_{axis}", cur[out]),
                  tm.reg(lo > a, 1, f"pooled_high_{axis}", lo, a),
                  tm.reg(a >= hi, 1, f"pooled_low_{axis}", a, hi)]
    bad = tm.reg(or_all(flags), 1, "conv_bad", *flags)
    large = tm.reg(in_large | out_large, 1, "conv_large", in_large, out_large)
    cycles = max(0, tm.t(bad) - 3, tm.t(large) - 3, tm.t(out_groups) - 2)
    return bad, large, out_groups << lr, cycles


class ConvChecker(wiring.Component):
    """The checks of a conv descriptor's lane 5 that need products, from its captured fields
    (``docs/bitstream.md``, "Descriptor checks"; the golden twin is
    :func:`spikepack.firmware.layout.descriptor_faults`, lane 5):

    * ``bad`` Out(1): BAD_DESCRIPTOR by the patch (fan-in n != K_h K_w ceil(C_in/R) R), or,
      per axis, the kernel over the padded map (H + 2p < K) or the pooled map wrong (H_p = 0,
      or not (H_p k - 1) s <= H + 2p - K < (H_p k + k - 1) s);
    * ``large`` Out(1): TOO_LARGE by the stored input or output map (H W ceil(C_in/R) R or
      H_p W_p ceil(C_out/R) R words) above ``max_map_words``;
    * ``out_words`` Out: the stored output map's words, H_p W_p ceil(C_out/R) R (the next
      layer's chain).

    The fields (``fields`` In(:func:`FieldsSignature`)) may be assumed within what the earlier
    lanes' checks guarantee when they pass (C_in, C_out <= max_channels, H, W <= max_map_side);
    lane 5's own fields and the pooled map are taken whole by ``bad``, so ``bad`` is exact
    whenever no earlier lane faulted and lane 5's kernel, stride and pool are at least 1;
    ``large`` and ``out_words`` are exact when ``bad`` is 0 too (they read the pooled map's
    sides to max_map_side + 2 max pad only; the loader's BAD_DESCRIPTOR comes before TOO_LARGE).

    Latency: a free-running pipeline of adder trees (one adder level a cycle, no multiplier
    block). With the fields steady from the cycles of :data:`FIELD_READY` on (relative to the
    beat ``b`` of lane 5), ``bad`` and ``large`` hold the descriptor's verdict from cycle
    ``b + 3 + F`` and ``out_words`` from ``b + 2 + F``, where ``F = self.cycles`` =
    :func:`conv_check_cycles` (config) = max(0, T_flags - 3, T_words - 2), T being the cycle
    each result is ready in, which the builder derives from the product widths (5 for the
    default configuration, at most 7). Throughput: one descriptor each ``F + 3`` cycles at
    least (the loader sends one each 6 + F beats at most).
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        _, _, words, self.cycles = _scratch_build(config)
        super().__init__({"fields": In(FieldsSignature()), "bad": Out(1), "large": Out(1),
                          "out_words": Out(len(words))})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        bad, large, out_words, _ = _build(m, self._config, self.fields)
        m.d.comb += [self.bad.eq(bad), self.large.eq(large), self.out_words.eq(out_words)]
        return m


def conv_check_cycles(config: HardwareConfig) -> int:
    """F: the extra cycles a conv descriptor's lane 5 waits in the loader's stage 0
    (``s_axis_tready`` low) while :class:`ConvChecker` computes its products (0 without
    ``config.conv``)."""
    if not isinstance(config, HardwareConfig):
        raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
    if not config.conv:
        return 0
    return _scratch_build(config)[3]


def _scratch_build(config: HardwareConfig) -> tuple:
    """:func:`_build` on fields of its own, for the widths and ``cycles`` it derives."""
    return _build(None, config, FieldsSignature().flip().create())
