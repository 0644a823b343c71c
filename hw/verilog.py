"""Verilog out of the hardware: stable Verilog text of a component, the field map of a payload
layout (for manifests and benches) and the Verilator lint waivers for the generator's output
(``hw/lint.vlt``, package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["TOP_NAME", "to_verilog", "fields_of", "LINT_WAIVERS"]

#: Verilog module name of the accelerator (:class:`spikepack.hw.top.SpikePackTop`).
TOP_NAME = "spikepack_top"

#: Verilator waivers for patterns of Amaranth's Verilog output (installed with the package).
LINT_WAIVERS = Path(str(resources.files(__package__) / "lint.vlt"))


def to_verilog(component, name: str) -> str:
    """Stable Verilog text for an Amaranth component (no source locations, no internal attrs)."""
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)


def fields_of(layout) -> dict[str, tuple[int, int, bool]]:
    """``{name: (offset, width, signed)}`` of an Amaranth ``data.StructLayout``."""
    out = {}
    for name, field in layout:
        shape = field.shape
        sig = shape.signed if hasattr(shape, "signed") else False
        out[name] = (field.offset, field.width, bool(sig))
    return out
