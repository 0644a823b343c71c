"""spikepack.fileio.read_bytes, the one way commands read an input file: the same bytes and the
same errors as Path.read_bytes for regular files, missing files and folders, and every byte of
a FIFO whose writer sends in pieces with pauses (the path that polls beside the signal wakeup
pipe). That a signal always interrupts the FIFO read is test_cli_errors'
test_a_signal_mid_command_is_one_line, in a real process."""

import os
import random
import threading
import time

import pytest

from spikepack.fileio import read_bytes
from spikepack.sim.runner import bench_seed

SEED = bench_seed()     # SPIKEPACK_SEED replays a run


@pytest.fixture
def rng():
    print(f"seed {SEED}")
    return random.Random(SEED)


def test_a_regular_file_reads_as_path_read_bytes(tmp_path, rng):
    data = rng.randbytes(rng.randrange(0, 300_000))
    (tmp_path / "f").write_bytes(data)
    assert read_bytes(tmp_path / "f") == data
    assert read_bytes(str(tmp_path / "f")) == data


def test_a_missing_file_and_a_folder_raise_as_path_read_bytes(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        read_bytes(tmp_path / "absent")
    assert e.value.filename == str(tmp_path / "absent")
    with pytest.raises(IsADirectoryError) as e:
        read_bytes(tmp_path)
    assert e.value.filename == str(tmp_path)


def test_a_fifo_gives_every_byte_its_writer_sends(tmp_path, rng):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pieces = [rng.randbytes(rng.choice([0, 1, 100, 70_000, 200_000])) for _ in range(6)]

    def writer():
        with open(fifo, "wb", buffering=0) as f:
            for piece in pieces:
                f.write(piece)
                time.sleep(rng.choice([0, 0.02]))
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        got = read_bytes(fifo)
    finally:
        thread.join(timeout=60)
    want = b"".join(pieces)
    assert len(got) == len(want) and got == want, f"seed {SEED}"


def test_a_fifo_whose_writer_sends_nothing_is_empty(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    thread = threading.Thread(target=lambda: open(fifo, "wb").close())
    thread.start()
    assert read_bytes(fifo) == b""
    thread.join(timeout=60)


def test_write_figure_is_a_png_written_whole_and_closes_the_figure(tmp_path):
    """write_figure: the same figure gives the same bytes (no Software entry), the figure is
    closed, and a failing render leaves the earlier file as it was and no temporary beside it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikepack.fileio import write_figure

    def figure():
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 2], [2, 0, 1])
        return fig

    first = figure()
    write_figure(first, tmp_path / "a.png", dpi=50)
    assert not plt.fignum_exists(first.number)
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    write_figure(figure(), tmp_path / "b.png", dpi=50)
    assert (tmp_path / "b.png").read_bytes() == data
    broken = figure()

    def half_then_fail(buffer, **kwargs):      # a render that dies midway
        buffer.write(data[:100])
        raise RuntimeError("render failed")

    broken.savefig = half_then_fail
    with pytest.raises(RuntimeError):
        write_figure(broken, tmp_path / "a.png", dpi=50)
    assert not plt.fignum_exists(broken.number)
    assert (tmp_path / "a.png").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
