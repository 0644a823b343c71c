"""``spikepack package``: from the generated Verilog to a Vivado IP, a board design and a C header.

    spikepack package --hw DIR -o IPDIR [--board kv260] [--prefix NAME] [--flavour ipi|plain]
                      [--clock-mhz 200] [--part PART]

Everything is generated from ``DIR/manifest.json`` and ``DIR/spikepack_top.v`` (written by
``spikepack generate --config ... -o DIR``); ``IPDIR`` receives:

* ``hdl/<NAME>_top.v``: the accelerator with every module renamed from ``spikepack_top*`` to
  ``<NAME>_top*`` (:func:`rename_modules`), so that two configurations can live in one design;
* ``hdl/<NAME>_ip.v``: a small wrapper, the IP's top, whose ports carry Vivado's
  ``X_INTERFACE_INFO`` / ``X_INTERFACE_PARAMETER`` attributes (AXI4-Lite slave ``s_axil``,
  AXI4-Stream slaves ``s_axis_load`` and ``s_axis_in``, master ``m_axis_out``, the clock with
  ``ASSOCIATED_BUSIF``, the reset with ``POLARITY``). Flavour ``ipi`` (default) names them
  ``aclk``/``aresetn``, active-low, as IP integrator's connection automation wires a
  ``proc_sys_reset``'s ``peripheral_aresetn``; flavour ``plain`` keeps ``clk``/``rst``,
  active-high. A wrapper rather than attributes on the Amaranth top: Yosys copies a port's
  attributes onto the ports it drives directly, and the wrapper is where the reset polarity
  changes without touching ``hw/top.py``;
* ``component.xml``: the IP-XACT (IEEE 1685-2009) description Vivado's IP catalog reads: bus
  interfaces, ports, the register map, the file sets;
* ``constraints/<NAME>.xdc``: the clock (``--clock-mhz``);
* ``vivado/package_ip.tcl`` (the same IP through ``ipx::package_project``),
  ``vivado/ooc.tcl`` (out-of-context synthesis, placement and routing, utilisation and timing
  reports) and ``vivado/bd_<board>.tcl`` (a Zynq UltraScale+ block design: processing system,
  reset, interconnects, two AXI DMAs, this IP; bitstream and ``.hwh`` for PYNQ);
* ``sw/<NAME>_regs.h``: register offsets and fields, the loader's error codes, the hardware
  signature and the stream formats for C, with ``_Static_assert`` checks (C11);
* ``<NAME>.core``: a FuseSoC (CAPI2) core of the IP, and ``hdl/lint.vlt``, the project's
  Verilator waivers for its lint target;
* ``manifest.json``: the generator's manifest, with a ``package`` section added.

Vivado is not needed to generate any of it; what only Vivado or a board can confirm is listed
in ``docs/board.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

# the Verilator waivers for Amaranth's output (each with its reason), shipped with the IP for lint
from spikepack.hw.verilog import LINT_WAIVERS

__all__ = ["BOARDS", "FLAVOURS", "PackageError", "rename_modules", "interfaces", "wrapper_verilog",
           "component_xml", "clock_xdc", "ooc_tcl", "package_ip_tcl", "block_design_tcl",
           "c_header", "fusesoc_core", "package", "add_arguments", "main"]

FLAVOURS = ("ipi", "plain")
VENDOR, LIBRARY, VERSION = "spikepack.org", "user", "1.0"

#: Boards with a block design: the part, Vivado's board part and the processing system's ports.
#: Another Zynq UltraScale+ board is one more entry (its board part from Vivado's board store).
BOARDS = {
    "kv260": {
        "title": "AMD Kria KV260 Vision AI Starter Kit (K26 SOM)",
        "part": "xck26-sfvc784-2LV-c",
        "board_part": "xilinx.com:kv260_som:part0:1.4",
        "board_connections": "som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3",
        "family": "zynquplus",
    },
    "zcu104": {
        "title": "AMD ZCU104 Evaluation Board",
        "part": "xczu7ev-ffvc1156-2-e",
        "board_part": "xilinx.com:zcu104:part0:1.1",
        "board_connections": "",
        "family": "zynquplus",
    },
}

#: AXI4-Lite logical port names (the port's suffix after ``s_axil_``, upper-cased).
AXIL_LOGICAL = ("AWADDR", "AWPROT", "AWVALID", "AWREADY", "WDATA", "WSTRB", "WVALID", "WREADY",
                "BRESP", "BVALID", "BREADY", "ARADDR", "ARPROT", "ARVALID", "ARREADY", "RDATA",
                "RRESP", "RVALID", "RREADY")
AXIS_LOGICAL = ("TDATA", "TVALID", "TREADY", "TLAST")


class PackageError(ValueError):
    """The generated design cannot be packaged (bad input: exit code 2)."""


# --- module renaming -------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/|\(\*.*?\*\))    # comments and attribute instances
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<escaped>\\\S+)                               # escaped identifier (ends at white space)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.S | re.X)


def _tokens(text: str):
    for m in _TOKEN.finditer(text):
        yield m.lastgroup, m.group()


def rename_modules(verilog: str, old: str, new: str) -> str:
    """Rename every module ``old`` or ``old.<sub>`` (Amaranth names submodules by their path,
    as escaped identifiers) to ``new`` / ``new.<sub>``, in its declaration and in every
    instantiation. Only names in module position are touched: the identifier after ``module``,
    and a module name followed by an instance name and ``(`` or ``#``; signals, instances,
    comments and strings that happen to spell a module name are left alone. Raises
    :class:`PackageError` if a new name collides with a module that is not renamed."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new):
        raise PackageError(f"module name {new!r} is not a Verilog identifier "
                           f"(letters, digits, _; not starting with a digit)")
    toks = list(_tokens(verilog))
    sig = [i for i, (kind, _) in enumerate(toks) if kind not in ("space", "comment")]

    def bare(name: str) -> str:
        return name[1:] if name.startswith("\\") else name

    declared = {}
    for n, i in enumerate(sig[:-1]):
        if toks[i][1] == "module":
            j = sig[n + 1]
            declared[j] = bare(toks[j][1])
    names = set(declared.values())

    def renamed(name: str) -> str | None:
        if name == old:
            return new
        if name.startswith(old + "."):
            return new + name[len(old):]
        return None

    mapping = {name: renamed(name) for name in names if renamed(name)}
    if not mapping:
        raise PackageError(f"no module {old!r} in the Verilog")
    clash = (set(mapping.values()) & (names - set(mapping))) 
    if clash:
        raise PackageError(f"renaming {old} to {new} collides with existing modules "
                           f"{sorted(clash)}")

    def spelled(name: str) -> str:
        return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name

    out = [t for _, t in toks]
    for n, i in enumerate(sig):
        kind, text = toks[i]
        if kind not in ("ident", "escaped") or bare(text) not in mapping:
            continue
        is_decl = i in declared
        is_inst = (n + 2 < len(sig) and toks[sig[n + 1]][0] in ("ident", "escaped")
                   and toks[sig[n + 2]][1] in ("(", "#")) or \
                  (n + 1 < len(sig) and toks[sig[n + 1]][1] == "#")
        if is_decl or is_inst:
            out[i] = spelled(mapping[bare(text)])
    return "".join(out)


def module_names(verilog: str) -> list[str]:
    """Module names declared in a Verilog text (escaped names without their backslash)."""
    toks = [t for t in _tokens(verilog) if t[0] not in ("space", "comment")]
    return [toks[n + 1][1].lstrip("\\") for n, (_, t) in enumerate(toks[:-1]) if t == "module"]


# --- interfaces --------------------------------------------------------------------------------

def _clock_reset(flavour: str) -> tuple[str, str, str]:
    """(clock port, reset port, reset polarity) of a flavour."""
    return ("aclk", "aresetn", "ACTIVE_LOW") if flavour == "ipi" else ("clk", "rst", "ACTIVE_HIGH")


def interfaces(manifest: dict, flavour: str = "ipi") -> list[dict]:
    """The IP's bus interfaces, from the manifest's ports: name, kind (aximm/axis/clock/reset),
    mode (slave/master), ``ports`` {logical: physical}, parameters. Raises
    :class:`PackageError` when a port belongs to no interface or one misses a port."""
    if flavour not in FLAVOURS:
        raise PackageError(f"flavour must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
    clk, rst, polarity = _clock_reset(flavour)
    by_name = {p["name"]: p for p in manifest["ports"]}
    out_bits = int(manifest["derived"]["output_bits"])
    groups = [
        ("s_axil", "aximm", "slave", AXIL_LOGICAL),
        ("s_axis_load", "axis", "slave", AXIS_LOGICAL),
        ("s_axis_in", "axis", "slave", AXIS_LOGICAL),
        ("m_axis_out", "axis", "master", AXIS_LOGICAL),
    ]
    result, used = [], {"clk", "rst"}
    for name, kind, mode, logical in groups:
        ports = {}
        for lp in logical:
            physical = f"{name}_{lp.lower()}"
            if physical not in by_name:
                raise PackageError(f"the manifest has no port {physical} of interface {name}")
            ports[lp] = physical
            used.add(physical)
        if kind == "aximm":
            params = {"PROTOCOL": "AXI4LITE", "DATA_WIDTH": by_name[ports["WDATA"]]["width"],
                      "ADDR_WIDTH": by_name[ports["AWADDR"]]["width"], "READ_WRITE_MODE":
                      "READ_WRITE", "HAS_PROT": 1, "HAS_WSTRB": 1, "HAS_BRESP": 1,
                      "HAS_RRESP": 1, "SUPPORTS_NARROW_BURST": 0, "MAX_BURST_LENGTH": 1}
        else:
            width = by_name[ports["TDATA"]]["width"]
            params = {"TDATA_NUM_BYTES": width // 8, "HAS_TREADY": 1, "HAS_TLAST": 1,
                      "HAS_TKEEP": 0, "HAS_TSTRB": 0, "TUSER_WIDTH": 0, "TID_WIDTH": 0,
                      "TDEST_WIDTH": 0}
            if name == "m_axis_out" and width != out_bits:
                raise PackageError(f"m_axis_out_tdata is {width} bits, the manifest's "
                                   f"output_bits is {out_bits}")
        result.append({"name": name, "kind": kind, "mode": mode, "ports": ports,
                       "params": params})
    stray = sorted(set(by_name) - used)
    if stray:
        raise PackageError(f"ports outside every interface: {', '.join(stray)}")
    busifs = ":".join(i["name"] for i in result)
    result.append({"name": clk, "kind": "clock", "mode": "slave", "ports": {"CLK": clk},
                   "params": {"ASSOCIATED_BUSIF": busifs, "ASSOCIATED_RESET": rst}})
    result.append({"name": rst, "kind": "reset", "mode": "slave", "ports": {"RST": rst},
                   "params": {"POLARITY": polarity}})
    return result


def wrapper_ports(manifest: dict, flavour: str) -> list[dict]:
    """The wrapper's ports: the manifest's, with clk/rst renamed for the flavour."""
    clk, rst, _ = _clock_reset(flavour)
    rename = {"clk": clk, "rst": rst}
    return [{**p, "name": rename.get(p["name"], p["name"]), "core": p["name"]}
            for p in manifest["ports"]]


_VLNV_KIND = {"aximm": "xilinx.com:interface:aximm:1.0", "axis": "xilinx.com:interface:axis:1.0",
              "clock": "xilinx.com:signal:clock:1.0", "reset": "xilinx.com:signal:reset:1.0"}


def _param_text(params: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items())


def wrapper_verilog(manifest: dict, *, prefix: str, flavour: str) -> str:
    """``<prefix>_ip``: the IP's top, every port attributed for IP integrator, instantiating
    ``<prefix>_top``. In flavour ``ipi`` the active-low ``aresetn`` is inverted into the core's
    active-high synchronous ``rst`` (one inverter; ``peripheral_aresetn`` of a
    ``proc_sys_reset`` is already synchronous to the clock)."""
    ifs = interfaces(manifest, flavour)
    where = {}           # physical port -> (interface, logical)
    for i in ifs:
        for lp, pp in i["ports"].items():
            where[pp] = (i, lp)
    ports = wrapper_ports(manifest, flavour)
    lines = [f"// {prefix}_ip: IP top of a generated SpikePack accelerator (signature "
             f"{manifest['signature_hex']}).",
             "// Generated by 'spikepack package' from manifest.json; do not edit.",
             f"// Flavour {flavour}: clock {ifs[-2]['name']}, reset {ifs[-1]['name']} "
             f"({ifs[-1]['params']['POLARITY'].lower().replace('_', '-')}, synchronous).",
             f"module {prefix}_ip ("]
    decls = []
    first_of = set()
    for p in ports:
        iface, lp = where[p["name"]]
        attrs = [f'(* X_INTERFACE_INFO = "{_VLNV_KIND[iface["kind"]]} {iface["name"]} {lp}" *)']
        if iface["name"] not in first_of:
            first_of.add(iface["name"])
            attrs.append(f'(* X_INTERFACE_PARAMETER = "{_param_text(iface["params"])}" *)')
        rng = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        decls.append("  " + "\n  ".join(attrs) + f"\n  {p['direction']} wire {rng}{p['name']}")
    lines.append(",\n".join(decls))
    lines.append(");")
    conns = []
    for p in ports:
        src = p["name"]
        if flavour == "ipi" and p["core"] == "rst":
            lines.append("  wire rst = ~aresetn;")
            src = "rst"
        conns.append(f"    .{p['core']}({src})")
    lines.append(f"  {prefix}_top core (")
    lines.append(",\n".join(conns))
    lines.append("  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


# --- IP-XACT -----------------------------------------------------------------------------------

SPIRIT = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
XILINX = "http://www.xilinx.com"
ET.register_namespace("spirit", SPIRIT)
ET.register_namespace("xilinx", XILINX)
ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")


def _s(tag: str) -> str:
    return f"{{{SPIRIT}}}{tag}"


def _sub(parent, tag, text=None, **attrs):
    el = ET.SubElement(parent, _s(tag), {(_s(k) if ":" not in k else k): str(v)
                                           for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


_ACCESS = {"RO": "read-only", "RW": "read-write", "W1C": "read-write", "WO": "write-only"}


def component_xml(manifest: dict, *, prefix: str, flavour: str, files: list[str],
                  family: str = "zynquplus") -> str:
    """IP-XACT 1685-2009 ``component.xml`` of the IP ``VENDOR:LIBRARY:<prefix>:VERSION``."""
    ifs = interfaces(manifest, flavour)
    comp = ET.Element(_s("component"))
    _sub(comp, "vendor", VENDOR)
    _sub(comp, "library", LIBRARY)
    _sub(comp, "name", prefix)
    _sub(comp, "version", VERSION)
    bis = _sub(comp, "busInterfaces")
    for i in ifs:
        bi = _sub(bis, "busInterface")
        _sub(bi, "name", i["name"])
        v, lib, name, ver = _VLNV_KIND[i["kind"]].split(":")
        _sub(bi, "busType", vendor=v, library=lib, name=name, version=ver)
        _sub(bi, "abstractionType", vendor=v, library=lib, name=name + "_rtl", version=ver)
        role = _sub(bi, i["mode"])
        if i["kind"] == "aximm":
            _sub(role, "memoryMapRef", memoryMapRef=i["name"])
        maps = _sub(bi, "portMaps")
        for lp, pp in i["ports"].items():
            pm = _sub(maps, "portMap")
            _sub(_sub(pm, "logicalPort"), "name", lp)
            _sub(_sub(pm, "physicalPort"), "name", pp)
        params = _sub(bi, "parameters")
        for k, val in i["params"].items():
            p = _sub(params, "parameter")
            _sub(p, "name", k)
            _sub(p, "value", val, id=f"BUSIFPARAM_VALUE.{i['name'].upper()}.{k}",
                 resolve="immediate")
    mms = _sub(comp, "memoryMaps")
    mm = _sub(mms, "memoryMap")
    _sub(mm, "name", "s_axil")
    block = _sub(mm, "addressBlock")
    _sub(block, "name", "registers")
    _sub(block, "baseAddress", 0)
    _sub(block, "range", 1 << int(next(p["width"] for p in manifest["ports"]
                                        if p["name"] == "s_axil_awaddr")))
    _sub(block, "width", 32)
    _sub(block, "usage", "register")
    for r in manifest["registers"]:
        reg = _sub(block, "register")
        _sub(reg, "name", r["name"])
        _sub(reg, "description", r["description"])
        _sub(reg, "addressOffset", f"0x{int(r['offset']):02x}")
        _sub(reg, "size", 32)
        _sub(reg, "access", _ACCESS[r["access"]])
        reset = _sub(reg, "reset")
        _sub(reset, "value", f"0x{int(r['reset']):08x}")
        for f in r["fields"]:
            fe = _sub(reg, "field")
            _sub(fe, "name", f["name"].upper())
            _sub(fe, "description", f["description"])
            _sub(fe, "bitOffset", f["lsb"])
            _sub(fe, "bitWidth", f["width"])
            if f["kind"] == "event":
                _sub(fe, "modifiedWriteValue", "oneToClear")
    model = _sub(comp, "model")
    views = _sub(model, "views")
    for view, env, fileset in (
            ("xilinx_anylanguagesynthesis", ":vivado.xilinx.com:synthesis", "synthesis"),
            ("xilinx_anylanguagebehavioralsimulation", ":vivado.xilinx.com:simulation",
             "simulation")):
        ve = _sub(views, "view")
        _sub(ve, "name", view)
        _sub(ve, "displayName", f"{fileset.capitalize()}")
        _sub(ve, "envIdentifier", env)
        _sub(ve, "language", "Verilog")
        _sub(ve, "modelName", f"{prefix}_ip")
        _sub(_sub(ve, "fileSetRef"), "localName", f"{view}_view_fileset")
    ports_el = _sub(model, "ports")
    for p in wrapper_ports(manifest, flavour):
        pe = _sub(ports_el, "port")
        _sub(pe, "name", p["name"])
        wire = _sub(pe, "wire")
        _sub(wire, "direction", "in" if p["direction"] == "input" else "out")
        if p["width"] > 1:
            vec = _sub(wire, "vector")
            _sub(vec, "left", p["width"] - 1, format="long")
            _sub(vec, "right", 0, format="long")
        tds = _sub(wire, "wireTypeDefs")
        td = _sub(tds, "wireTypeDef")
        _sub(td, "typeName", "wire")
        _sub(td, "viewNameRef", "xilinx_anylanguagesynthesis")
        _sub(td, "viewNameRef", "xilinx_anylanguagebehavioralsimulation")
    filesets = _sub(comp, "fileSets")
    for view in ("xilinx_anylanguagesynthesis", "xilinx_anylanguagebehavioralsimulation"):
        fs = _sub(filesets, "fileSet")
        _sub(fs, "name", f"{view}_view_fileset")
        for path in files:
            fe = _sub(fs, "file")
            _sub(fe, "name", path)
            _sub(fe, "fileType", "verilogSource")
    _sub(comp, "description", f"SpikePack accelerator (signature {manifest['signature_hex']}, "
                              f"{manifest['config']['rows']}x{manifest['config']['cols']} array, "
                              f"T = {manifest['config']['timesteps']})")
    params = _sub(comp, "parameters")
    p = _sub(params, "parameter")
    _sub(p, "name", "Component_Name")
    _sub(p, "value", f"{prefix}_ip_v1_0", resolve="user", type="string",
         id="PARAM_VALUE.Component_Name", order="1")
    ext = _sub(comp, "vendorExtensions")
    core = ET.SubElement(ext, f"{{{XILINX}}}coreExtensions")
    fams = ET.SubElement(core, f"{{{XILINX}}}supportedFamilies")
    fam = ET.SubElement(fams, f"{{{XILINX}}}family", {f"{{{XILINX}}}lifeCycle": "Production"})
    fam.text = family
    tax = ET.SubElement(ET.SubElement(core, f"{{{XILINX}}}taxonomies"), f"{{{XILINX}}}taxonomy")
    tax.text = "/UserIP"
    ET.SubElement(core, f"{{{XILINX}}}displayName").text = f"SpikePack accelerator ({prefix})"
    ET.indent(comp, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(comp, encoding="unicode") + "\n"


# --- constraints and Vivado scripts --------------------------------------------------------------

def clock_xdc(*, clock_port: str, clock_mhz: float) -> str:
    period = 1000.0 / clock_mhz
    return (f"# Clock of the SpikePack IP: {clock_mhz:g} MHz. Out-of-context runs use it as is;\n"
            f"# in a block design the processing system's clock constraint takes over.\n"
            f"create_clock -period {period:.3f} -name {clock_port} [get_ports {clock_port}]\n")


_TCL_HEADER = """\
# Generated by 'spikepack package' from manifest.json (signature {sig}); do not edit.
set here [file dirname [file normalize [info script]]]
set root [file dirname $here]
"""


def ooc_tcl(*, prefix: str, part: str, files: list[str], xdc: str) -> str:
    """Out-of-context synthesis, placement and routing of ``<prefix>_ip`` on ``part``; reports
    in ``build/ooc/`` under the IP folder. Run: ``vivado -mode batch -source vivado/ooc.tcl``
    (``SPIKEPACK_PART`` overrides the part)."""
    reads = "\n".join(f"read_verilog [file join $root {f}]" for f in files)
    return f"""\
set part {part}
if {{[info exists ::env(SPIKEPACK_PART)]}} {{ set part $::env(SPIKEPACK_PART) }}
set out [file join $root build ooc]
file mkdir $out
{reads}
read_xdc -mode out_of_context [file join $root {xdc}]
synth_design -top {prefix}_ip -part $part -mode out_of_context -flatten_hierarchy rebuilt
report_utilization -file [file join $out utilization_synth.rpt]
opt_design
place_design
phys_opt_design
route_design
write_checkpoint -force [file join $out {prefix}_routed.dcp]
report_utilization -file [file join $out utilization.rpt]
report_utilization -hierarchical -file [file join $out utilization_hierarchical.rpt]
report_timing_summary -max_paths 10 -report_unconstrained -file [file join $out timing_summary.rpt]
report_timing -max_paths 20 -sort_by group -file [file join $out timing_paths.rpt]
puts "spikepack: reports in $out"
"""


def package_ip_tcl(*, prefix: str, part: str, files: list[str], family: str) -> str:
    """The IP through Vivado's own packager (an alternative to the generated component.xml):
    ``ipx::package_project`` infers the bus interfaces from the wrapper's attributes. Writes
    the packaged IP to ``ipx/`` under the IP folder."""
    adds = "\n".join(f"add_files -norecurse [file join $root {f}]" for f in files)
    return f"""\
set part {part}
if {{[info exists ::env(SPIKEPACK_PART)]}} {{ set part $::env(SPIKEPACK_PART) }}
set ipx [file join $root ipx]
create_project -in_memory -part $part
{adds}
set_property top {prefix}_ip [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir $ipx -vendor {VENDOR} -library {LIBRARY} -taxonomy /UserIP -import_files -set_current true
set core [ipx::current_core]
set_property name {prefix} $core
set_property version {VERSION} $core
set_property display_name {{SpikePack accelerator ({prefix})}} $core
set_property supported_families {{{family} Production}} $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
puts "spikepack: packaged IP in $ipx"
"""


def block_design_tcl(manifest: dict, *, prefix: str, board: str, clock_mhz: float,
                     flavour: str) -> str:
    """A Zynq UltraScale+ block design on ``board``: the processing system (board preset), a
    ``proc_sys_reset``, a control interconnect (PS master -> the IP's ``s_axil`` and both DMAs'
    ``S_AXI_LITE``), a data interconnect (the DMAs' masters -> the PS's ``S_AXI_HP0_FPD``),
    ``dma_load`` (MM2S -> ``s_axis_load``), ``dma_io`` (MM2S -> ``s_axis_in``, ``m_axis_out``
    -> S2MM) and the IP as ``<prefix>_0``; then the bitstream and the ``.hwh`` for PYNQ."""
    b = BOARDS[board]
    clk, rst, _ = _clock_reset(flavour)
    out_bits = int(manifest["derived"]["output_bits"])
    ip = f"{prefix}_0"
    reset_pin = "peripheral_aresetn" if flavour == "ipi" else "peripheral_reset"
    conn = (f"set_property board_connections {{{b['board_connections']}}} [current_project]\n"
            if b["board_connections"] else "")
    return f"""\
# Block design for the {b['title']}.
# Another Zynq UltraScale+ board: change part and board_part below (and board_connections for
# a SOM on a carrier), or regenerate with 'spikepack package --board NAME'.
set part {b['part']}
set board_part {b['board_part']}
set proj [file join $root build bd_{board}]
create_project -force {prefix}_{board} $proj -part $part
set_property board_part $board_part [current_project]
{conn}set_property ip_repo_paths [list $root] [current_project]
update_ip_catalog
create_bd_design system

# processing system: board preset, one PL clock at {clock_mhz:g} MHz, HPM0_FPD master, HP0 slave
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e:3.5 zynq_ultra_ps_e_0]
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {{apply_board_preset "1"}} $ps
set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 {{1}} CONFIG.PSU__USE__M_AXI_GP1 {{0}} CONFIG.PSU__USE__M_AXI_GP2 {{0}} CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__FPGA_PL0_ENABLE {{1}} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{clock_mhz:g}}}] $ps

# reset: synchronous to pl_clk0
set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:5.0 rst_ps_pl]

# the accelerator
set acc [create_bd_cell -type ip -vlnv {VENDOR}:{LIBRARY}:{prefix}:{VERSION} {ip}]

# DMA engines, simple (register) mode: one for bitstreams, one for images and results
set dma_load [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma_load]
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_include_stscntrl_strm {{0}} CONFIG.c_include_s2mm {{0}} CONFIG.c_m_axis_mm2s_tdata_width {{32}} CONFIG.c_sg_length_width {{26}}] $dma_load
set dma_io [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma_io]
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_include_stscntrl_strm {{0}} CONFIG.c_m_axis_mm2s_tdata_width {{32}} CONFIG.c_s_axis_s2mm_tdata_width {{{out_bits}}} CONFIG.c_sg_length_width {{26}}] $dma_io

# interconnects
set ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_interconnect:2.1 ctrl_interconnect]
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{3}}] $ctrl
set data [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_interconnect:2.1 data_interconnect]
set_property -dict [list CONFIG.NUM_SI {{3}} CONFIG.NUM_MI {{1}}] $data

# streams
connect_bd_intf_net [get_bd_intf_pins dma_load/M_AXIS_MM2S] [get_bd_intf_pins {ip}/s_axis_load]
connect_bd_intf_net [get_bd_intf_pins dma_io/M_AXIS_MM2S] [get_bd_intf_pins {ip}/s_axis_in]
connect_bd_intf_net [get_bd_intf_pins {ip}/m_axis_out] [get_bd_intf_pins dma_io/S_AXIS_S2MM]

# control path
connect_bd_intf_net [get_bd_intf_pins zynq_ultra_ps_e_0/M_AXI_HPM0_FPD] [get_bd_intf_pins ctrl_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M00_AXI] [get_bd_intf_pins {ip}/s_axil]
connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M01_AXI] [get_bd_intf_pins dma_load/S_AXI_LITE]
connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M02_AXI] [get_bd_intf_pins dma_io/S_AXI_LITE]

# data path
connect_bd_intf_net [get_bd_intf_pins dma_load/M_AXI_MM2S] [get_bd_intf_pins data_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins dma_io/M_AXI_MM2S] [get_bd_intf_pins data_interconnect/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins dma_io/M_AXI_S2MM] [get_bd_intf_pins data_interconnect/S02_AXI]
connect_bd_intf_net [get_bd_intf_pins data_interconnect/M00_AXI] [get_bd_intf_pins zynq_ultra_ps_e_0/S_AXI_HP0_FPD]

# one clock, one reset
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_clk0] [get_bd_pins rst_ps_pl/slowest_sync_clk] [get_bd_pins {ip}/{clk}] [get_bd_pins dma_load/s_axi_lite_aclk] [get_bd_pins dma_load/m_axi_mm2s_aclk] [get_bd_pins dma_io/s_axi_lite_aclk] [get_bd_pins dma_io/m_axi_mm2s_aclk] [get_bd_pins dma_io/m_axi_s2mm_aclk] [get_bd_pins ctrl_interconnect/ACLK] [get_bd_pins ctrl_interconnect/S00_ACLK] [get_bd_pins ctrl_interconnect/M00_ACLK] [get_bd_pins ctrl_interconnect/M01_ACLK] [get_bd_pins ctrl_interconnect/M02_ACLK] [get_bd_pins data_interconnect/ACLK] [get_bd_pins data_interconnect/S00_ACLK] [get_bd_pins data_interconnect/S01_ACLK] [get_bd_pins data_interconnect/S02_ACLK] [get_bd_pins data_interconnect/M00_ACLK] [get_bd_pins zynq_ultra_ps_e_0/maxihpm0_fpd_aclk] [get_bd_pins zynq_ultra_ps_e_0/saxihp0_fpd_aclk]
connect_bd_net [get_bd_pins zynq_ultra_ps_e_0/pl_resetn0] [get_bd_pins rst_ps_pl/ext_reset_in]
connect_bd_net [get_bd_pins rst_ps_pl/{reset_pin}] [get_bd_pins {ip}/{rst}]
connect_bd_net [get_bd_pins rst_ps_pl/peripheral_aresetn] [get_bd_pins dma_load/axi_resetn] [get_bd_pins dma_io/axi_resetn] [get_bd_pins ctrl_interconnect/S00_ARESETN] [get_bd_pins ctrl_interconnect/M00_ARESETN] [get_bd_pins ctrl_interconnect/M01_ARESETN] [get_bd_pins ctrl_interconnect/M02_ARESETN] [get_bd_pins data_interconnect/S00_ARESETN] [get_bd_pins data_interconnect/S01_ARESETN] [get_bd_pins data_interconnect/S02_ARESETN] [get_bd_pins data_interconnect/M00_ARESETN]
connect_bd_net [get_bd_pins rst_ps_pl/interconnect_aresetn] [get_bd_pins ctrl_interconnect/ARESETN] [get_bd_pins data_interconnect/ARESETN]

# addresses: the PS assigns the register windows and the DMAs see all of DDR through HP0
assign_bd_address
validate_bd_design
save_bd_design

# wrapper, bitstream, and the .bit/.hwh pair PYNQ's Overlay reads
set bd_file [get_files system.bd]
make_wrapper -files $bd_file -top
add_files -norecurse [file join $proj {prefix}_{board}.gen sources_1 bd system hdl system_wrapper.v]
set_property top system_wrapper [current_fileset]
update_compile_order -fileset sources_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
set out [file join $root build {board}]
file mkdir $out
file copy -force [file join $proj {prefix}_{board}.runs impl_1 system_wrapper.bit] [file join $out {prefix}.bit]
file copy -force [file join $proj {prefix}_{board}.gen sources_1 bd system hw_handoff system.hwh] [file join $out {prefix}.hwh]
puts "spikepack: [file join $out {prefix}.bit] and .hwh"
"""


# --- C header ----------------------------------------------------------------------------------

def _c_ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def _c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def c_header(manifest: dict, *, prefix: str) -> str:
    """``<prefix>_regs.h``: every register's offset, reset value and fields (shift, width, mask;
    the value of constant fields), the loader's error codes, the hardware signature and the
    stream formats, with ``_Static_assert`` checks that tie the register constants to the
    configuration and the reset values to their fields. C11, no dependencies beyond
    ``stdint.h``."""
    from spikepack.firmware.bitstream import ErrorCode
    P = _c_ident(prefix)
    guard = f"{P}_REGS_H"
    cfg = manifest["config"]
    d = manifest["derived"]
    lines = [
        f"/* {prefix}_regs.h: registers and stream formats of a generated SpikePack accelerator.",
        " * Generated by 'spikepack package' from manifest.json; do not edit.",
        f" * Hardware signature {manifest['signature_hex']}: a weight bitstream must carry it.",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        "/* identification */",
        f"#define {P}_SIGNATURE 0x{int(manifest['signature']):08X}u",
        f"#define {P}_MAGIC 0x53504B31u /* ID register, ASCII \"SPK1\" */",
        "",
        "/* configuration (manifest config and derived values) */",
    ]
    for key, value in cfg.items():
        if not isinstance(value, int):            # a bool (conv) is 0 or 1
            continue
        lines.append(f"#define {P}_CFG_{_c_ident(key)} {int(value)}u")
    for key, value in d.items():
        lines.append(f"#define {P}_CFG_{_c_ident(key)} {value}u")
    lines.append(f"#define {P}_CFG_POTENTIAL_BITS {_potential_bits(manifest)}u")
    lines.append(f"#define {P}_CFG_NEURON_{_c_ident(cfg['neuron'])} 1")
    lines.append(f"#define {P}_CFG_PE_MODE_{_c_ident(cfg['pe_mode'])} 1")
    lines += ["", "/* register offsets (bytes from the AXI4-Lite base), reset values and fields */"]
    asserts = []
    for r in manifest["registers"]:
        R = _c_ident(r["name"])
        lines.append(f"/* {r['name']} ({r['access']}): {_c_comment(r['description'])} */")
        lines.append(f"#define {P}_REG_{R} 0x{int(r['offset']):02X}u")
        lines.append(f"#define {P}_REG_{R}_RESET 0x{int(r['reset']):08X}u")
        composed = []
        for f in r["fields"]:
            F = f"{P}_{R}_{_c_ident(f['name'])}"
            mask = ((1 << f["width"]) - 1) << f["lsb"]
            lines.append(f"#define {F}_SHIFT {f['lsb']}u")
            lines.append(f"#define {F}_WIDTH {f['width']}u")
            lines.append(f"#define {F}_MASK 0x{mask:08X}u")
            if f["kind"] in ("const", "rw"):
                lines.append(f"#define {F}_VALUE 0x{int(f['value']):X}u")
                composed.append(f"((uint32_t){F}_VALUE << {F}_SHIFT)")
                asserts.append(f"_Static_assert(((unsigned long long){F}_VALUE >> {F}_WIDTH) == 0u && "
                               f"{F}_SHIFT + {F}_WIDTH <= 32u, \"{r['name']}.{f['name']} fits\");")
            tied = _TIED.get((r["name"], f["name"]))
            if f["kind"] == "const" and tied:
                asserts.append(f"_Static_assert({F}_VALUE == {P}_{tied}, "
                               f"\"{r['name']}.{f['name']} is {tied}\");")
            elif f["kind"] == "const" and isinstance(cfg.get(f["name"]), int):
                asserts.append(f"_Static_assert({F}_VALUE == {P}_CFG_{_c_ident(f['name'])}, "
                               f"\"{r['name']}.{f['name']} is the configuration's\");")
        for a, fa in enumerate(r["fields"]):
            for fb in r["fields"][a + 1:]:
                asserts.append(f"_Static_assert(({P}_{R}_{_c_ident(fa['name'])}_MASK & "
                               f"{P}_{R}_{_c_ident(fb['name'])}_MASK) == 0u, "
                               f"\"{r['name']} fields do not overlap\");")
        if composed or r["access"] in ("RO", "W1C"):
            expr = " | ".join(composed) if composed else "0u"
            asserts.append(f"_Static_assert({P}_REG_{R}_RESET == ({expr}), "
                           f"\"{r['name']} reset value is its fields'\");")
        asserts.append(f"_Static_assert(({P}_REG_{R} & 3u) == 0u, \"{r['name']} is word-aligned\");")
    lines += ["", "/* the loader's error codes (LOAD_ERROR.LOAD_ERROR_CODE) */",
              f"enum {prefix}_load_error {{"]
    lines += [f"    {P}_LOAD_{e.name} = {int(e)}," for e in ErrorCode]
    lines += ["};", "",
              f"static inline const char *{prefix}_load_error_name(uint32_t code)", "{",
              "    switch (code) {"]
    lines += [f"    case {int(e)}: return \"{e.name}\";" for e in ErrorCode]
    lines += ["    default: return \"UNKNOWN\";", "    }", "}", ""]
    T, K, OB = cfg["timesteps"], d["inputs_per_beat"], d["output_bits"]
    lines += [
        "/* stream formats",
        " * s_axis_load: the weight bitstream, 32-bit little-endian words, TLAST on the CRC word.",
        f" * s_axis_in:   one image a packet; {K} spike words of T = {T} bits a 32-bit beat,",
        f" *              input i in beat i / {K} at bits (i % {K}) * {T}; zeros beyond N0; TLAST",
        " *              on the last beat.",
        f" * m_axis_out:  one readout potential a {OB}-bit beat (sign-extended, little-endian),",
        " *              in neuron order; TLAST on the last one.",
        " */",
        f"#define {P}_IN_BEAT_BITS 32u",
        f"#define {P}_IN_WORD_BITS {T}u",
        f"#define {P}_IN_WORDS_PER_BEAT {K}u",
        f"#define {P}_OUT_BEAT_BITS {OB}u",
        f"#define {P}_OUT_BEAT_BYTES {OB // 8}u",
        "",
        "/* 32-bit beats of an image of n spike words */",
        f"static inline uint32_t {prefix}_in_beats(uint32_t n)",
        "{",
        f"    return (n + {P}_IN_WORDS_PER_BEAT - 1u) / {P}_IN_WORDS_PER_BEAT;",
        "}",
        "",
        f"/* pack spike words z[0..n-1] into beats[0..{prefix}_in_beats(n)-1] */",
        f"static inline void {prefix}_pack_image(const uint16_t *z, uint32_t n, uint32_t *beats)",
        "{",
        "    uint32_t i;",
        f"    for (i = 0; i < {prefix}_in_beats(n); i++)",
        "        beats[i] = 0u;",
        "    for (i = 0; i < n; i++)",
        f"        beats[i / {P}_IN_WORDS_PER_BEAT] |= (uint32_t)(z[i] & ((1u << {P}_IN_WORD_BITS) - 1u))",
        f"                                         << ((i % {P}_IN_WORDS_PER_BEAT) * {P}_IN_WORD_BITS);",
        "}",
        "",
        "/* consistency of this header with itself and with the configuration */",
        f"_Static_assert({P}_IN_WORDS_PER_BEAT == 32u / {P}_CFG_TIMESTEPS, \"K = 32 / T\");",
        f"_Static_assert({P}_OUT_BEAT_BITS % 32u == 0u && {P}_OUT_BEAT_BITS >= "
        f"{P}_CFG_{_c_ident('output_bits')}, \"output beats hold a potential\");",
        f"_Static_assert({P}_OUT_BEAT_BITS == 32u * (({_potential_bits(manifest)}u + 31u) / 32u), "
        "\"OUT_BITS = 32 * ceil(potential bits / 32)\");",
        *asserts,
        "",
        f"#endif /* {guard} */",
    ]
    return "\n".join(lines) + "\n"


#: Constant register fields and the header macro (not of the same name) that they must equal.
_TIED = {("ID", "magic"): "MAGIC", ("SIGNATURE", "signature"): "SIGNATURE",
         ("STREAMS", "in_words_per_beat"): "CFG_INPUTS_PER_BEAT",
         ("STREAMS", "out_bits"): "CFG_OUTPUT_BITS",
         ("ACT_DEPTH", "act_depth"): "CFG_ACTIVATION_DEPTH",
         ("GEOMETRY", "rows_per_word"): "CFG_ROWS_PER_WORD",
         ("WIDTHS", "potential_bits"): "CFG_POTENTIAL_BITS"}


def _potential_bits(manifest: dict) -> int:
    return int(manifest["widths"]["potential"])


# --- FuseSoC -----------------------------------------------------------------------------------

def fusesoc_core(manifest: dict, *, prefix: str, files: list[str], xdc: str, part: str,
                 waivers: str) -> str:
    """A CAPI2 ``.core`` of the IP: file sets, a ``lint`` target (Verilator -Wall with the
    project's waivers) and a ``synth`` target (Vivado, with the clock constraint)."""
    rtl = "\n".join(f"      - {f}" for f in files)
    return f"""\
CAPI=2:
# Generated by 'spikepack package' from manifest.json; do not edit.
name: {VENDOR}:{LIBRARY}:{prefix}:{VERSION}.0
description: SpikePack accelerator {manifest['signature_hex']} ({manifest['config']['rows']}x{manifest['config']['cols']} array, T = {manifest['config']['timesteps']})

filesets:
  rtl:
    files:
{rtl}
    file_type: verilogSource
  constraints:
    files:
      - {xdc}
    file_type: xdc
  lint_waivers:
    files:
      - {waivers}
    file_type: vlt

targets:
  default:
    filesets: [rtl]
    toplevel: {prefix}_ip
  lint:
    default_tool: verilator
    filesets: [lint_waivers, rtl]
    toplevel: {prefix}_ip
    tools:
      verilator:
        mode: lint-only
        verilator_options: [-Wall]
  synth:
    default_tool: vivado
    filesets: [rtl, constraints]
    toplevel: {prefix}_ip
    tools:
      vivado:
        part: {part}
"""


# --- the command ---------------------------------------------------------------------------------

def package(hw_dir: str | Path, out_dir: str | Path, *, board: str = "kv260",
            prefix: str = "spikepack", flavour: str = "ipi", clock_mhz: float = 200.0,
            part: str | None = None) -> dict:
    """Write the IP folder ``out_dir`` (see the module docstring); return its ``package``
    manifest section (file names, VLNV, clock and reset ports). Everything is generated in a
    temporary folder beside ``out_dir`` and moved into place at the end, so a failure leaves
    ``out_dir`` as it was."""
    from spikepack.accelerator import TOP_NAME, load_manifest
    if board not in BOARDS:
        raise PackageError(f"unknown board {board!r}; known: {', '.join(BOARDS)}")
    if flavour not in FLAVOURS:
        raise PackageError(f"flavour must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix or ""):
        raise PackageError(f"prefix {prefix!r} must be lower-case letters, digits and _, "
                           f"starting with a letter")
    if not (isinstance(clock_mhz, (int, float)) and 1 <= clock_mhz <= 1000):
        raise PackageError(f"clock must be between 1 and 1000 MHz, not {clock_mhz}")
    hw_dir = Path(hw_dir)
    manifest, _ = load_manifest(hw_dir)
    source = hw_dir / manifest.get("files", [f"{TOP_NAME}.v"])[0]
    try:
        verilog = source.read_text()
    except OSError as e:
        raise PackageError(f"{source}: cannot read the generated Verilog ({e.strerror})") from None
    part = part or BOARDS[board]["part"]
    family = BOARDS[board]["family"]
    clk, rst, polarity = _clock_reset(flavour)

    core_v = rename_modules(verilog, manifest["top"], f"{prefix}_top")
    # the core is no longer the top: drop Amaranth's `top` attribute, so that a flow choosing
    # its top by that attribute (Yosys `hierarchy -auto-top`) picks the wrapper
    core_v = re.sub(r"^\(\*\s*top\s*=\s*1\s*\*\)\n", "", core_v, count=1, flags=re.M)
    files = [f"hdl/{prefix}_top.v", f"hdl/{prefix}_ip.v"]
    xdc = f"constraints/{prefix}.xdc"
    header = f"sw/{prefix}_regs.h"
    section = {"prefix": prefix, "flavour": flavour, "board": board, "part": part,
               "vlnv": f"{VENDOR}:{LIBRARY}:{prefix}:{VERSION}", "top": f"{prefix}_ip",
               "core_top": f"{prefix}_top", "clock": clk, "reset": rst,
               "reset_polarity": polarity, "clock_mhz": clock_mhz, "files": files,
               "xdc": xdc, "header": header, "component": "component.xml",
               "scripts": {"package_ip": "vivado/package_ip.tcl", "ooc": "vivado/ooc.tcl",
                           "block_design": f"vivado/bd_{board}.tcl"},
               "fusesoc": f"{prefix}.core",
               "interfaces": {i["name"]: i["kind"] for i in interfaces(manifest, flavour)}}
    sig = manifest["signature_hex"]
    contents = {
        files[0]: core_v,
        files[1]: wrapper_verilog(manifest, prefix=prefix, flavour=flavour),
        "component.xml": component_xml(manifest, prefix=prefix, flavour=flavour, files=files,
                                       family=family),
        xdc: clock_xdc(clock_port=clk, clock_mhz=clock_mhz),
        "vivado/ooc.tcl": _TCL_HEADER.format(sig=sig) + ooc_tcl(prefix=prefix, part=part,
                                                                  files=files, xdc=xdc),
        "vivado/package_ip.tcl": _TCL_HEADER.format(sig=sig) + package_ip_tcl(
            prefix=prefix, part=part, files=files, family=family),
        f"vivado/bd_{board}.tcl": _TCL_HEADER.format(sig=sig) + block_design_tcl(
            manifest, prefix=prefix, board=board, clock_mhz=clock_mhz, flavour=flavour),
        header: c_header(manifest, prefix=prefix),
        f"{prefix}.core": fusesoc_core(manifest, prefix=prefix, files=files, xdc=xdc, part=part,
                                       waivers="hdl/lint.vlt"),
        "hdl/lint.vlt": LINT_WAIVERS.read_text(),
        "manifest.json": json.dumps({**manifest, "package": section}, indent=2) + "\n",
    }
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in contents.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hw", required=True, metavar="DIR",
                        help="directory written by 'spikepack generate --config ... -o DIR'")
    parser.add_argument("-o", "--out", required=True, metavar="IPDIR", help="IP folder to write")
    parser.add_argument("--board", choices=sorted(BOARDS), default="kv260",
                        help="board of the block design and default part (default kv260)")
    parser.add_argument("--part", default=None, help="FPGA part (default: the board's)")
    parser.add_argument("--prefix", default="spikepack",
                        help="module-name prefix: modules <prefix>_top*, IP top <prefix>_ip "
                             "(default spikepack)")
    parser.add_argument("--flavour", choices=FLAVOURS, default="ipi",
                        help="ipi: aclk/aresetn (active-low) for IP integrator (default); "
                             "plain: clk/rst (active-high)")
    parser.add_argument("--clock-mhz", type=float, default=200.0,
                        help="clock constraint and PL clock in MHz (default 200)")


def main(args) -> int:
    from spikepack.accelerator import ManifestError
    try:
        section = package(args.hw, args.out, board=args.board, prefix=args.prefix,
                          flavour=args.flavour, clock_mhz=args.clock_mhz, part=args.part)
    except (ManifestError, PackageError) as e:
        print(f"spikepack package: {e}", file=sys.stderr)
        return 2
    print(f"wrote IP {section['vlnv']} ({section['top']}, {section['flavour']}: "
          f"{section['clock']}/{section['reset']}) to {args.out}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m spikepack.package",
                                      description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
