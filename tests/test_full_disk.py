"""Atomic writes on a real file system: a full disk (a small tmpfs) and the modes of written files.

A disk that fills up is caused for real where the machine allows it: root mounts a 16 MB tmpfs
(skipped with the reason elsewhere). torch.save's zip writer then raises RuntimeError ("unexpected
pos"), safetensors its own SafetensorError; both must reach the user as one ENOSPC line, with the
previous file intact. A simulated writer covers the messages on any machine.
"""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, write_digit_folder
from safetensors.torch import load_file

import mixnet
from mixnet.atomic import atomic_write
from mixnet.cli import main
from mixnet.io.save import save_model
from mixnet.train.checkpoint import save_checkpoint

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (``fill`` leaves a given amount free); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _free(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def fill(folder: Path, leave: int) -> None:
    """Writes a filler file so that about ``leave`` bytes stay free."""
    (folder / "filler").write_bytes(b"\0" * max(0, _free(folder) - leave))
    assert abs(_free(folder) - leave) <= 2 * PAGE


def test_torch_save_on_a_full_disk_is_enospc_and_keeps_the_previous_file(small_disk):
    path = small_disk / "last.pth"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(1000)})
    fill(small_disk, 64 * 1024)
    with pytest.raises(OSError, match=r"out of disk space\); the previous last.pth is intact") as info:
        save_checkpoint(path, {"epoch": 2, "w": torch.ones(100_000)})  # 400 KB
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value.__cause__, RuntimeError)  # what torch.save raised: not an OSError
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "last.pth"]  # no partial file left


def test_safetensors_on_a_full_disk_is_enospc_and_keeps_the_previous_file(small_disk):
    path = small_disk / "model.safetensors"
    small = mixnet.MixNet(tiny_config(), num_classes=3)
    save_model(path, small)
    before = path.read_bytes()
    fill(small_disk, 64 * 1024)
    big = mixnet.create_model("mixnet_s", num_classes=3)  # ~11 MB
    with pytest.raises(OSError, match=r"out of disk space\); the previous model.safetensors is intact") as info:
        save_model(path, big)
    assert info.value.errno == errno.ENOSPC and type(info.value.__cause__).__name__ == "SafetensorError"
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "model.safetensors"]


def test_latency_tables_and_measurement_reports_on_a_full_disk_keep_the_previous_file(small_disk):
    """A search's latency table and a benchmark's markdown are written atomically like model files."""
    from mixnet.measure.output import emit
    from mixnet.search.latency import LatencyTable, load_table, machine

    table = LatencyTable("mixnet_s", 16, 1, 1, "eager", True, machine(), 1.0, [{"a": 2.0}])
    table.save(small_disk / "table.json")
    emit("# first", small_disk / "bench.md")
    before = {p.name: p.read_bytes() for p in small_disk.iterdir()}
    fill(small_disk, 64 * 1024)
    big = LatencyTable("mixnet_s", 16, 1, 1, "eager", True, machine(), 1.0, [{f"k{i}": 1.5 for i in range(20_000)}])
    with pytest.raises(OSError, match=r"out of disk space\); the previous table.json is intact"):
        big.save(small_disk / "table.json")
    with pytest.raises(OSError, match=r"out of disk space\); the previous bench.md is intact"):
        emit("x" * 400_000, small_disk / "bench.md")
    assert {p.name: p.read_bytes() for p in small_disk.iterdir() if p.name != "filler"} == before
    assert load_table(small_disk / "table.json").entries == [{"a": 2.0}]


def test_train_on_a_full_disk_is_one_line_and_the_last_checkpoint_resumes(small_disk, tmp_path, monkeypatch, capsys):
    from mixnet.train import loop

    data = write_digit_folder(tmp_path / "digits", 3, (8, 2))
    args = ["train", "--preset", "paper", "--data", str(data), "--epochs", "2", "--batch-size", "8", "--workers"]
    args += ["0", "--threads", "1", "--model", "mixnet_s", "--width-mult", "0.25", "--head-channels", "32"]
    args += ["--img-size", "16", "--no-progress"]
    real_save, calls = loop.save_checkpoint, []

    def save(path, ckpt):
        calls.append(path)
        if len(calls) == 2:  # the disk fills up (for real) before epoch 2's checkpoint: room for half of it
            fill(small_disk, Path(path).stat().st_size // 2)
        return real_save(path, ckpt)

    monkeypatch.setattr(loop, "save_checkpoint", save)
    out = small_disk / "run"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "out of disk space" in err and "previous last.pth is intact" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 1
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    # Space freed, the run resumes from epoch 1's checkpoint and finishes.
    monkeypatch.undo()
    (small_disk / "filler").unlink()
    assert main([*args, "--out", str(out), "--resume", str(out / "last.pth")]) == 0
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize(
    "raised",
    [
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["torch", "safetensors", "oserror"],
)
def test_simulated_full_disk_messages(tmp_path, monkeypatch, raised):
    """Each writer's way of saying the disk is full, on any machine (free space faked for torch's message)."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    if isinstance(raised, RuntimeError):  # torch names no errno: the free space tells
        monkeypatch.setattr(os, "statvfs", lambda _: os.statvfs_result((PAGE, PAGE, 100, 0, 0, 0, 0, 0, 0, 255)))

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise raised

    with pytest.raises(OSError, match=r"out of disk space\); the previous f.bin is intact") as info:
        atomic_write(path, write)
    assert info.value.errno == errno.ENOSPC and path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_a_writer_bug_is_not_a_full_disk(tmp_path):
    def write(tmp: Path) -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        atomic_write(tmp_path / "f", write)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    """safetensors creates its file 0600; the saved file gets what open() would give it, as last.pth does."""
    model = mixnet.MixNet(tiny_config(), num_classes=3)
    previous = os.umask(umask)
    try:
        weights = save_model(tmp_path / "model.safetensors", model)
        ckpt = save_checkpoint(tmp_path / "last.pth", {"epoch": 1})
    finally:
        os.umask(previous)
    for path in (weights, ckpt):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert set(load_file(weights)) == set(model.state_dict())


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export_on_a_full_disk_is_one_line_and_leaves_no_file(small_disk, capsys, fmt):
    fill(small_disk, 256 * 1024)  # room for none of mixnet_s's ~11 MB of weights
    args = ["export", "--model", "mixnet_s", "--img-size", "32", "--format", fmt, "--out", str(small_disk / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "out of disk space" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list((small_disk / "x").iterdir()) == []
