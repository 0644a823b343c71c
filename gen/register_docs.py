"""``docs/registers.md``, rendered from the register table :data:`spikepack.hw.registers.REGISTERS`
(``tests/test_registers.py`` checks that the file matches).

    python -m spikepack.register_docs > docs/registers.md
"""

from __future__ import annotations

from spikepack.firmware.bitstream import load_error_table
from spikepack.hw.registers import ADDR_BITS, REGISTERS

__all__ = ["render_markdown"]


def render_markdown() -> str:
    """``docs/registers.md``: the register map, generated from :data:`REGISTERS`."""
    lines = [
        "# SpikePack accelerator registers",
        "",
        "<!-- Generated from spikepack.hw.registers.REGISTERS by "
        "spikepack.register_docs.render_markdown(); tests/test_registers.py checks that this "
        "file matches. Do not edit by hand. -->",
        "",
        "AXI4-Lite slave `s_axil_*`, 32-bit data, "
        f"{ADDR_BITS}-bit byte addresses; every register is one aligned 32-bit word (address "
        "bits 1:0 are ignored). Both channels answer OKAY, except that an address with no "
        "register answers **SLVERR** (reads return 0, writes change nothing). Writes to "
        "read-only registers or fields are accepted (OKAY) and **ignored**. `wstrb` byte "
        "enables are honoured for RW fields, pulses and W1C bits.",
        "",
        "Access: **RO** read-only; **RW** read/write (its `pulse` fields are write-1 strobes "
        "that read 0); **W1C** sticky bits set by hardware and cleared by writing 1; **WO** "
        "write-only. Field kinds: `const` fixed at generation time (reset column `config`: "
        "the value depends on the hardware configuration), `status` live state, `counter` "
        "32-bit wrapping counter cleared by CONTROL.CLEAR_COUNTERS and `rst` (not by soft "
        "reset), `rw` storage, `pulse` write-1 strobe, `event` sticky W1C bit.",
        "",
        "## Behaviour",
        "",
        "* With CONTROL.RUN = 1 (the reset value) the accelerator is free-running: every image "
        "received on `s_axis_in` is run through the committed network as soon as the engine is "
        "free, and its readout potentials leave on `m_axis_out`.",
        "* With RUN = 0 an image waits in its buffer until CONTROL.START arms one inference. "
        "A START while an inference is running (STATUS.BUSY) or while a START is already armed "
        "is ignored and sets EVENTS.START_IGNORED; a START while idle arms exactly one "
        "inference, which begins when an image is buffered and a network is committed.",
        "* Two images can be buffered on chip; while both buffers are full, `s_axis_in_tready` "
        "is low. An image ends at its TLAST beat; beats beyond the activation buffer "
        "(ACT_DEPTH x R spike words) are accepted and dropped, setting EVENTS.INPUT_OVERFLOW.",
        "* A network committed by the loader while an inference runs becomes active between "
        "inferences (STATUS.COMMIT_PENDING meanwhile); each inference uses one network "
        "throughout, the one active when it starts.",
        "* The pulses of one CONTROL write act in the same cycle; SOFT_RESET wins over START.",
        "* CONTROL.SOFT_RESET clears the sequencer and the layer engine; the committed network, "
        "the loader, the registers and all counters survive (except CYCLES_LAST, which reads 0 "
        "until the next inference ends). An inference in flight is abandoned; its output "
        "packet is cut short (no TLAST).",
        "",
        "## Summary",
        "",
        "| offset | name | access | reset | description |",
        "|---|---|---|---|---|",
    ]
    for r in REGISTERS:
        reset = "config" if r.reset is None else f"`{r.reset:#010x}`"
        lines.append(f"| `{r.offset:#04x}` | {r.name} | {r.access} | {reset} | {r.description} |")
    lines += ["", "## LOAD_ERROR codes", "",
              "The loader checks a bitstream (`docs/bitstream.md`) word by word and reports the "
              "first fault in stream order; a refused stream changes nothing (the committed "
              "network stays active). The same table is the manifest's `load_errors`, and "
              "`spikepack.firmware.bitstream.ErrorCode`.", "",
              "| value | name | meaning |", "|---|---|---|"]
    for row in load_error_table():
        lines.append(f"| {row['value']} | {row['name']} | {row['meaning']} |")
    lines += ["", "## Fields", ""]
    for r in REGISTERS:
        lines += [f"### {r.name} (`{r.offset:#04x}`, {r.access})", "", r.description, "",
                  "| bits | field | kind | value / reset | description |", "|---|---|---|---|---|"]
        for f in r.fields:
            bits = f"{f.msb}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
            if f.kind in ("const", "rw"):
                value = "config" if f.config_dependent else f"`{f.value_for(None):#x}`"
            else:
                value = "-"
            lines.append(f"| {bits} | {f.name.upper()} | {f.kind} | {value} | {f.description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    sys.stdout.write(render_markdown())
