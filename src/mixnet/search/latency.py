"""Latency in the loop: a table of measured block latencies, the predictor built on it, and its error.

``measure_table`` times every choice of the search space at every block position, at that position's input
shape, on this machine's runtime (PyTorch eager, channels_last, inference mode), with warmup and the
contenders of a position interleaved (medians over rounds). A net's predicted latency is a measured
constant plus its blocks' entries; the constant is what whole nets take beyond their blocks (the stem and
head, and the cost of running blocks one after another rather than each alone), measured on a few
calibration nets drawn with their own seed. The table records its unit, the
machine, the runtime, threads, batch, image size and library versions; :func:`load_table` refuses a table
made elsewhere or under other settings (or, asked to, uses it with a warning).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from mixnet.models.mixnet import MixBlock, MixNet
from mixnet.search.space import Arch, BlockChoice, SearchSpace
from mixnet.timing import interleaved_medians

TABLE_FORMAT, TABLE_VERSION = "mixnet-latency-table", 1
CALIBRATION_SEED = 10_007  # calibration nets; a predictor check draws with another seed
RUNTIMES = ("eager",)
# What must match between a table and the machine and settings it is used for.
_MUST_MATCH = ("runtime", "threads", "batch", "img_size", "skeleton", "channels_last")


def choice_key(c: BlockChoice) -> str:
    """A choice as short text: ``k3.5.7_e6_se0.25_sw_a2_p2``."""
    parts = ["k" + ".".join(map(str, c.kernels)), f"e{c.expand}", f"se{c.se or 0:g}"]
    parts += ["sw" if c.swish else "re", f"a{c.expand_groups}", f"p{c.project_groups}"]
    return "_".join(parts)


def machine() -> dict[str, str]:
    """The CPU, core count and library versions a table is measured with (the bench harness's record)."""
    from mixnet.bench.suite import machine_info

    info = machine_info(threads=torch.get_num_threads())
    info.pop("threads")  # the table's own ``threads`` field is the setting that counts
    return info


@dataclass
class LatencyTable:
    """Measured latencies (milliseconds) of every block choice at every position, plus the stem and head.

    Attributes:
        skeleton: the search space's skeleton model.
        img_size, batch, threads, runtime, channels_last: the measurement settings.
        machine: CPU, cores and versions.
        fixed_ms: the constant added to the blocks' sum: the median over a few calibration nets of their
            end-to-end time minus their blocks' entries (the stem and head, and the cost of running the
            blocks in one net beyond timing each alone).
        entries: per block position, choice key -> median ms.
        num_classes: classifier outputs of the measured head.
        stem_head_ms: the stem, head, pool and classifier timed alone (for information).
        unit: always ``ms``.
    """

    skeleton: str
    img_size: int
    batch: int
    threads: int
    runtime: str
    channels_last: bool
    machine: dict
    fixed_ms: float
    entries: list[dict[str, float]]
    num_classes: int = 10
    stem_head_ms: float = 0.0
    unit: str = "ms"
    created: float = field(default_factory=time.time)

    def predict(self, arch: Arch) -> float:
        """Predicted latency of a net (ms).

        Raises:
            KeyError: a choice the table does not have.
        """
        if len(arch) != len(self.entries):
            raise ValueError(f"the table has {len(self.entries)} block positions, the net {len(arch)}")
        return self.fixed_ms + sum(row[choice_key(c)] for row, c in zip(self.entries, arch, strict=True))

    def fastest(self) -> float:
        """The lowest latency any net of the space can have (ms)."""
        return self.fixed_ms + sum(min(row.values()) for row in self.entries)

    def slowest(self) -> float:
        """The highest latency any net of the space can have (ms)."""
        return self.fixed_ms + sum(max(row.values()) for row in self.entries)

    def settings(self) -> dict:
        """The settings a use of the table must share."""
        return {k: getattr(self, k) for k in _MUST_MATCH}

    def save(self, path: str | Path) -> Path:
        """Writes the table as JSON."""
        path = Path(path)
        path.write_text(json.dumps({"format": TABLE_FORMAT, "version": TABLE_VERSION, **asdict(self)}, indent=1))
        return path


def load_table(path: str | Path, *, expect: dict | None = None, allow_mismatch: bool = False) -> LatencyTable:
    """Reads a table and checks it fits this machine and ``expect`` (settings such as threads, batch).

    Args:
        path: the table file.
        expect: settings the use needs (keys of :meth:`LatencyTable.settings`).
        allow_mismatch: use a table from another machine or settings with a warning instead of refusing.

    Raises:
        ValueError: not a table, a newer format, or (without ``allow_mismatch``) another machine or setting.
    """
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read latency table {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a latency table (not JSON: {e})") from None
    if not isinstance(d, dict) or d.pop("format", None) != TABLE_FORMAT:
        raise ValueError(f'{path} is not a latency table (no "format": "{TABLE_FORMAT}")')
    if d.pop("version", None) != TABLE_VERSION:
        raise ValueError(f"{path}: latency table version not readable by this mixnet")
    if d.get("unit") != "ms":
        raise ValueError(f"{path}: latency unit {d.get('unit')!r}, expected 'ms'")
    table = LatencyTable(**d)
    problems = []
    here = machine()
    for key in ("cpu", "cores"):
        if table.machine.get(key) != here[key]:
            problems.append(f"{key} {table.machine.get(key)!r} (here {here[key]!r})")
    for key, value in (expect or {}).items():
        if getattr(table, key) != value:
            problems.append(f"{key} {getattr(table, key)!r} (wanted {value!r})")
    if problems:
        msg = f"latency table {path} was measured with other settings or on another machine: " + ", ".join(problems)
        if not allow_mismatch:
            raise ValueError(msg + "; measure a new one with `mixnet latency-table`, or allow it explicitly")
        warnings.warn(msg + "; its predictions may be off by a large factor", stacklevel=2)
    return table


def block_inputs(space: SearchSpace, img_size: int) -> list[tuple[int, int, int]]:
    """``(channels, height, width)`` of each block position's input."""
    h = w = math.ceil(img_size / 2)
    out = []
    for slot in space.slots():
        out.append((slot.in_channels, h, w))
        h, w = math.ceil(h / slot.stride), math.ceil(w / slot.stride)
    return out


def _runner(module: nn.Module, x: torch.Tensor):
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return module(x)

    return run


def _prepare(module: nn.Module, channels_last: bool) -> nn.Module:
    module = module.eval()
    return module.to(memory_format=torch.channels_last) if channels_last else module


def measure_table(
    space: SearchSpace,
    *,
    img_size: int = 224,
    batch: int = 1,
    threads: int = 1,
    rounds: int = 7,
    num_classes: int = 10,
    channels_last: bool = True,
    calibration_nets: int = 5,
    progress: bool = False,
) -> LatencyTable:
    """Times every choice at every position (interleaved per position), then the constant (see the module)."""
    base = space.base
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        entries = []
        positions = list(zip(space.slots(), block_inputs(space, img_size), strict=True))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(positions), desc="latency table", unit="position")
        for slot, (c, h, w) in positions:
            x = torch.randn(batch, c, h, w)
            x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            contenders = {}
            for choice in space.choices():
                block = MixBlock(
                    choice.block(slot), padding=base.padding, bn_eps=base.bn_eps, activation=base.activation
                )
                contenders[choice_key(choice)] = _runner(_prepare(block, channels_last), x)
            medians = interleaved_medians(contenders, rounds=rounds, iters=2, warmup=2)
            entries.append({k: round(v * 1e3, 5) for k, v in medians.items()})
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        stem_head = measure_fixed(space, img_size, batch, num_classes, channels_last, rounds)
        # The constant: whole nets minus their blocks (the stem and head, plus what running the blocks one
        # after another costs beyond timing each alone), the median over a few calibration nets drawn apart
        # from any check of the predictor.
        rng = random.Random(CALIBRATION_SEED)
        archs = [space.sample(rng) for _ in range(calibration_nets)]
        measured = measure_nets(
            space,
            archs,
            img_size=img_size,
            batch=batch,
            threads=threads,
            num_classes=num_classes,
            channels_last=channels_last,
            rounds=rounds,
        )
        table = LatencyTable(
            space.skeleton,
            img_size,
            batch,
            threads,
            "eager",
            channels_last,
            machine(),
            0.0,
            entries,
            num_classes,
            stem_head_ms=stem_head,
        )
        fixed = statistics.median(m - table.predict(a) for m, a in zip(measured, archs, strict=True))
    finally:
        torch.set_num_threads(previous)
    table.fixed_ms = round(fixed, 5)
    return table


def measure_fixed(
    space: SearchSpace, img_size: int, batch: int, num_classes: int, channels_last: bool, rounds: int
) -> float:
    """The stem, head, pool and classifier of the skeleton, timed together (ms)."""
    net = _prepare(MixNet(space.base, num_classes=num_classes), channels_last)
    x = torch.randn(batch, net.in_chans, img_size, img_size)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.inference_mode():
        trunk_out = net.stages(net.stem(x))

    def run() -> torch.Tensor:
        with torch.inference_mode():
            net.stem(x)
            return net.forward_head(net.head(trunk_out))

    return round(interleaved_medians({"fixed": run}, rounds=rounds * 3, iters=3, warmup=3)["fixed"] * 1e3, 5)


def measure_configs(
    configs: Sequence,
    *,
    img_size: int,
    batch: int,
    threads: int,
    num_classes: int = 10,
    channels_last: bool = True,
    rounds: int = 9,
) -> list[float]:
    """End-to-end medians (ms) of whole nets (:class:`mixnet.MixNetConfig` s), interleaved with each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(batch, 3, img_size, img_size)
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        contenders = {
            str(i): _runner(_prepare(MixNet(c, num_classes=num_classes), channels_last), x)
            for i, c in enumerate(configs)
        }
        medians = interleaved_medians(contenders, rounds=rounds, iters=2, warmup=2)
    finally:
        torch.set_num_threads(previous)
    return [medians[str(i)] * 1e3 for i in range(len(configs))]


def measure_nets(space: SearchSpace, archs: Sequence[Arch], **kwargs) -> list[float]:
    """End-to-end medians (ms) of nets of ``space`` (see :func:`measure_configs`)."""
    return measure_configs([space.config(a) for a in archs], **kwargs)


def predictor_error(table: LatencyTable, space: SearchSpace, *, n: int = 20, seed: int = 0, rounds: int = 9) -> dict:
    """Predicted vs measured end-to-end latency of ``n`` random nets: the points and the mean abs % error."""
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    measured = measure_nets(
        space,
        archs,
        img_size=table.img_size,
        batch=table.batch,
        threads=table.threads,
        num_classes=table.num_classes,
        channels_last=table.channels_last,
        rounds=rounds,
    )
    predicted = [table.predict(a) for a in archs]
    errors = [abs(p - m) / m for p, m in zip(predicted, measured, strict=True)]
    return {
        "n": n,
        "seed": seed,
        "predicted_ms": predicted,
        "measured_ms": measured,
        "mean_abs_error": statistics.fmean(errors),
        "max_abs_error": max(errors),
        "mean_bias": statistics.fmean((p - m) / m for p, m in zip(predicted, measured, strict=True)),
    }


def plot_predictor(result: dict, path: str | Path, title: str = "") -> Path:
    """Scatter of predicted vs measured latency with the y = x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, m = result["predicted_ms"], result["measured_ms"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(m, p, s=18)
    lo, hi = min(p + m) * 0.9, max(p + m) * 1.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = measured")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured end to end (ms, median)")
    ax.set_ylabel("predicted from the table (ms)")
    ax.set_title(title or f"{result['n']} random nets: mean abs error {100 * result['mean_abs_error']:.1f}%")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
