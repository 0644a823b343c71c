"""The register table (``spikepack.hw.registers``) and the document rendered from it."""

from __future__ import annotations

from pathlib import Path

from spikepack.config import HardwareConfig
from spikepack.hw.registers import ID_MAGIC, REGISTER_BY_NAME, REGISTERS
from spikepack.register_docs import render_markdown
from spikepack.sim.benches.system import expected_constants

REPO = Path(__file__).resolve().parent.parent


# --- table and documentation ---------------------------------------------------------------------

def test_registers_doc_is_generated_from_the_table():
    text = (REPO / "docs" / "registers.md").read_text()
    assert text == render_markdown(), ("docs/registers.md is stale: regenerate it with "
                                       "spikepack.register_docs.render_markdown()")
    for r in REGISTERS:
        assert f"| {r.name} |" in text


def test_register_table_is_consistent():
    offsets = [r.offset for r in REGISTERS]
    assert len(set(offsets)) == len(offsets)
    assert REGISTER_BY_NAME["ID"].reset == ID_MAGIC == 0x53504B31
    c = HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=2, neuron="lif")
    for name, value in expected_constants(c).items():
        assert REGISTER_BY_NAME[name].reset_value(c) == value, name
    assert REGISTER_BY_NAME["CONTROL"].reset == 1       # RUN = 1: free-running after reset
