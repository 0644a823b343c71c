"""spikepack.logic_depth on a netlist that Yosys synthesizes here: a register behind a 16-input
AND (two LUT levels at least) ranks above one behind a 2-input AND, and the path names them."""


from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.logic_depth import depth_report, format_rows
from spikepack.synth import synthesize_component


class _TwoCones(wiring.Component):
    i: In(16)
    deep: Out(1)
    shallow: Out(1)

    def elaborate(self, platform):
        m = Module()
        src = Signal(16, name="src_reg")
        deep_reg = Signal(name="deep_reg")
        shallow_reg = Signal(name="shallow_reg")
        m.d.sync += [src.eq(self.i), deep_reg.eq(src.all()), shallow_reg.eq(src[0] & src[1])]
        m.d.comb += [self.deep.eq(deep_reg), self.shallow.eq(shallow_reg)]
        return m


def test_a_wide_cone_ranks_above_a_narrow_one(tmp_path):
    synthesize_component(_TwoCones(), "two_cones", family="ecp5", keep_dir=tmp_path)
    rows = depth_report(tmp_path / "netlist.json")
    print(format_rows(rows, 10))
    by_reg = {r.register: r for r in rows if r.pin == "DI"}
    # (the registers take the names of the ports they drive)
    assert "deep" in by_reg and "shallow" in by_reg, sorted(by_reg)
    deep, shallow = by_reg["deep"], by_reg["shallow"]
    assert deep.score >= 2.0 > shallow.score >= 1.0, (deep, shallow)
    assert deep.score > shallow.score
    assert deep.path[-1][0].startswith("src_reg"), deep.path


def test_a_bad_netlist_is_one_line_and_exit_1(tmp_path, capsys):
    from spikepack.logic_depth import main
    bad = tmp_path / "netlist.json"
    bad.write_text("{not json")
    assert main([str(bad)]) == 1
    assert main([str(tmp_path / "missing.json")]) == 1
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("Traceback" not in line for line in err), err
