# Stand-ins for the Vivado Tcl commands that the scripts of 'spikepack package' call, for
# running those scripts under plain tclsh (tests/test_package.py). Each stub records its call,
# name and arguments, as one JSON array a line in the log file, and returns what the script
# uses of Vivado's answer (an object's name). A command without a stub is an error, so a
# misspelt or new Vivado command fails the test instead of being ignored.
#
#   tclsh tests/vivado_stubs.tcl LOG SCRIPT    records SCRIPT's calls in LOG
#
# What this proves: the scripts are valid Tcl, call these commands in this order with these
# arguments (file names, ports, interfaces, clock period from the manifest). What it cannot:
# that Vivado accepts the arguments; see docs/board.md.

if {[llength $argv] != 2} {
    puts stderr "usage: tclsh vivado_stubs.tcl LOG SCRIPT"
    exit 2
}
set ::stub_log [open [lindex $argv 0] w]
namespace eval ipx {}

proc _json {s} {
    return "\"[string map [list \\ \\\\ \" \\\" \n \\n \r \\r \t \\t] $s]\""
}

proc _record {name arguments} {
    set parts [list [_json $name]]
    foreach a $arguments { lappend parts [_json $a] }
    puts $::stub_log "\[[join $parts ,]\]"
    flush $::stub_log
}

# commands whose result the scripts ignore
foreach cmd {
    read_verilog read_xdc synth_design opt_design place_design phys_opt_design route_design
    write_checkpoint report_utilization report_timing_summary report_timing
    add_files set_property update_compile_order update_ip_catalog
    ipx::package_project ipx::create_xgui_files ipx::update_checksums ipx::check_integrity
    ipx::save_core
    create_bd_design apply_bd_automation connect_bd_intf_net connect_bd_net assign_bd_address
    validate_bd_design save_bd_design make_wrapper launch_runs wait_on_run create_clock
} {
    proc $cmd {args} "_record $cmd \$args; return {}"
}

# commands whose result is an object the script passes on: its name
proc create_project {args} { _record create_project $args; return [lindex $args end-1] }
proc current_project {args} { _record current_project $args; return project_1 }
proc current_fileset {args} { _record current_fileset $args; return sources_1 }
proc ipx::current_core {args} { _record ipx::current_core $args; return core_1 }
proc create_bd_cell {args} { _record create_bd_cell $args; return [lindex $args end] }
foreach cmd {get_bd_pins get_bd_intf_pins get_bd_cells get_ports get_files} {
    proc $cmd {args} "_record $cmd \$args; return \[lindex \$args end\]"
}

# 'file copy' of Vivado's outputs (which do not exist here) is recorded, not done
rename file _tcl_file
proc file {sub args} {
    if {$sub eq "copy"} {
        _record file [concat copy $args]
        return {}
    }
    return [_tcl_file $sub {*}$args]
}

proc unknown {args} {
    error "not a stubbed Vivado command: [lindex $args 0]"
}

source [lindex $argv 1]
close $::stub_log
