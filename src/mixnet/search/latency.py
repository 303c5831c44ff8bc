"""Latency in the loop: a table of per-block costs, the predictor built on it, and its error.

``measure_table`` times every choice of the search space at every block position, at that position's input
shape, on one runtime, with warmup and the contenders of a position interleaved (medians over rounds; in
each round a contender runs once untimed before its timed calls, so it is timed warm, as a deployed net
runs, however many contenders share the cache):

- ``eager``: PyTorch eager, channels_last, inference mode (the model as trained);
- ``optimized``: :func:`mixnet.optimize_for_inference`'s rewrite (BN folded, MixConv fused where the
  measured rules say so), each block taken from a rewritten net so that it is exactly what a deployed
  net runs;
- ``ort``: ONNX Runtime on the rewrite's ONNX export (each block exported on its own, whole nets with
  :func:`mixnet.deploy.export.to_onnx`);
- ``macs``: no device at all: each block's multiply-accumulates (millions, ``MMAC``) counted by
  :mod:`mixnet.models.complexity`, for users without the target device. Its sum is exact.

A net's predicted latency is ``fixed + scale x (its blocks' entries)``: a line fitted by least squares to
calibration nets timed whole, in a fresh process (:mod:`mixnet.search.netcost`), drawn with their own seed
across the range the table spans: uniform draws, cheap draws (every block among its position's cheaper
half) and the cheapest and dearest nets. ``fixed`` is the stem, head and classifier with what a net saves or
pays beyond its blocks timed alone; ``scale`` corrects what isolated timings get wrong in proportion (a
block timed alone pays its call overhead and cold caches, which weigh most on cheap blocks: a constant
fitted on uniform nets alone over-predicted the cheapest net by 70% in a fresh process). The table records its unit, the
machine, the runtime, threads, batch, image size and library versions; :func:`load_table` refuses a table
made elsewhere or under other settings (or, asked to, uses it with a warning).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from mixnet.atomic import write_json
from mixnet.measure.machine import machine_info
from mixnet.measure.runners import ort_runner, torch_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians
from mixnet.models.complexity import Complexity, config_complexity, count_block
from mixnet.search.netcost import UNITS, check_runtime, measure_configs, measure_configs_fresh, trunk_blocks
from mixnet.search.space import SKIP, Arch, BlockChoice, SearchSpace

TABLE_FORMAT, TABLE_VERSION = "mixnet-latency-table", 3  # 3: the fitted scale; 2 (scale 1) still reads
CALIBRATION_SEED = 10_007  # calibration nets; a predictor check draws with another seed
# What must match between a table and the machine and settings it is used for.
_MUST_MATCH = ("runtime", "threads", "batch", "img_size", "skeleton", "channels_last", "elastic_depth")


@functools.cache  # called for every choice at every step of a repair: the text of each is built once
def choice_key(c: BlockChoice) -> str:
    """A choice as short text: ``k3.5.7_e6_se0.25_sw_a2_p2``, or ``skip`` for a left-out block."""
    if c.is_skip:
        return "skip"
    parts = ["k" + ".".join(map(str, c.kernels)), f"e{c.expand}", f"se{c.se or 0:g}"]
    parts += ["sw" if c.swish else "re", f"a{c.expand_groups}", f"p{c.project_groups}"]
    return "_".join(parts)


def machine() -> dict[str, str]:
    """The CPU, core count and library versions a table is measured with (its own ``threads`` field is the
    setting that counts, so none is recorded here)."""
    return machine_info()


@dataclass
class LatencyTable:
    """Per-block costs of every choice at every position, plus the constant for the rest of the net.

    Attributes:
        skeleton: the search space's skeleton model.
        img_size, batch, threads, runtime, channels_last: the measurement settings.
        machine: CPU, cores and versions.
        fixed: the constant of the prediction. Measured runtimes: fitted with ``scale`` on calibration nets
            timed whole in a fresh process (see the module). ``macs``: the stem's, head's and classifier's
            MACs.
        entries: per block position, choice key -> cost (median ms, or MMAC).
        num_classes: classifier outputs of the measured head.
        stem_head: the stem, head, pool and classifier alone (for information).
        unit: ``ms`` for the measured runtimes, ``MMAC`` for ``macs``.
        elastic_depth: whether positions that may be left out have a ``skip`` entry (0: the block is not
            there; what leaving it out saves beyond its own time is in the calibrated constant).
        scale: the factor on the blocks' sum (1 for ``macs`` and for tables of format 2).
    """

    skeleton: str
    img_size: int
    batch: int
    threads: int
    runtime: str
    channels_last: bool
    machine: dict
    fixed: float
    entries: list[dict[str, float]]
    num_classes: int = 10
    stem_head: float = 0.0
    unit: str = "ms"
    elastic_depth: bool = False
    scale: float = 1.0
    created: float = field(default_factory=time.time)

    @property
    def measured(self) -> bool:
        """Whether the entries are timings on a machine (every runtime but ``macs``)."""
        return self.runtime != "macs"

    def predict(self, arch: Arch) -> float:
        """Predicted cost of a net, in the table's unit.

        Raises:
            KeyError: a choice the table does not have.
        """
        if len(arch) != len(self.entries):
            raise ValueError(f"the table has {len(self.entries)} block positions, the net {len(arch)}")
        return self.fixed + self.scale * self.block_sum(arch)

    def block_sum(self, arch: Arch) -> float:
        """The sum of a net's block entries (no constant, no scale)."""
        return sum(row[choice_key(c)] for row, c in zip(self.entries, arch, strict=True))

    def fastest(self) -> float:
        """The lowest cost any net of the space can have."""
        return self.fixed + self.scale * sum(min(row.values()) for row in self.entries)

    def slowest(self) -> float:
        """The highest cost any net of the space can have."""
        return self.fixed + self.scale * sum(max(row.values()) for row in self.entries)

    def settings(self) -> dict:
        """The settings a use of the table must share."""
        return {k: getattr(self, k) for k in _MUST_MATCH}

    def save(self, path: str | Path) -> Path:
        """Writes the table as JSON, atomically (a kill or a full disk leaves the previous table)."""
        return write_json(path, {"format": TABLE_FORMAT, "version": TABLE_VERSION, **asdict(self)})


def load_table(path: str | Path, *, expect: dict | None = None, allow_mismatch: bool = False) -> LatencyTable:
    """Reads a table and checks it fits this machine and ``expect`` (settings such as threads, batch).

    The runtime, skeleton, image size and elastic depth must always match; a ``macs`` table depends on no
    machine, thread count or batch size, so only those are checked for it.

    Args:
        path: the table file.
        expect: settings the use needs (keys of :meth:`LatencyTable.settings`).
        allow_mismatch: use a table from another machine, thread count or batch size with a warning instead
            of refusing.

    Raises:
        ValueError: not a table, a newer format, another runtime, skeleton, image size or space, or (without
            ``allow_mismatch``) another machine or setting.
    """
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read latency table {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a latency table (not JSON: {e})") from None
    if not isinstance(d, dict) or d.pop("format", None) != TABLE_FORMAT:
        raise ValueError(f'{path} is not a latency table (no "format": "{TABLE_FORMAT}")')
    if d.pop("version", None) not in (2, TABLE_VERSION):
        raise ValueError(f"{path}: latency table version not readable by this mixnet")
    runtime = d.get("runtime")
    if runtime not in UNITS:
        raise ValueError(f"{path}: unknown runtime {runtime!r}")
    if d.get("unit") != UNITS[runtime]:
        raise ValueError(f"{path}: unit {d.get('unit')!r}, expected {UNITS[runtime]!r} for runtime {runtime!r}")
    table = LatencyTable(**d)
    # What the table describes must fit the search: no flag makes another space or runtime usable.
    for key in ("runtime", "skeleton", "img_size", "elastic_depth"):
        if key in (expect or {}) and getattr(table, key) != expect[key]:
            hint = f"; pass --runtime {table.runtime} to search with it" if key == "runtime" else ""
            raise ValueError(f"latency table {path} is for {key} {getattr(table, key)!r}, not {expect[key]!r}{hint}")
    problems = []
    if table.measured:
        here = machine()
        for key in ("cpu", "cores"):
            if table.machine.get(key) != here[key]:
                problems.append(f"{key} {table.machine.get(key)!r} (here {here[key]!r})")
    for key, value in (expect or {}).items():
        if not table.measured and key in ("threads", "batch", "channels_last"):
            continue
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


def _block_onnx(block: nn.Module, x: torch.Tensor, path: Path) -> Path:
    """One block as an ONNX file.

    The TorchScript-based exporter (``dynamo=False``) takes about 0.05 s per block where the
    ``torch.export`` one takes about 2 s; a table exports thousands of blocks. Whole nets, which the
    predictor is checked against, go through :func:`mixnet.deploy.export.to_onnx` as users export them.
    """
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(block.float(), (x.contiguous(),), str(path), dynamo=False, input_names=["x"])
    return path


def _input(batch: int, c: int, h: int, w: int, runtime: str, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, c, h, w)
    # Blocks of the eager net and of the rewrite run on channels_last tensors inside a net (the rewrite's
    # wrapper converts the input once); ONNX Runtime takes NCHW arrays.
    return x.contiguous(memory_format=torch.channels_last) if channels_last and runtime != "ort" else x


def _block_macs(space: SearchSpace, choice: BlockChoice, img_size: int) -> list[float]:
    """MMACs of ``choice`` at every position (exact counts, no measurement)."""
    out = []
    for slot, (_, h, w) in zip(space.slots(), block_inputs(space, img_size), strict=True):
        c = Complexity()
        count_block(c, choice.block(slot), h, w, space.base)
        out.append(c.macs / 1e6)
    return out


def macs_table(space: SearchSpace, *, img_size: int = 224, num_classes: int = 10) -> LatencyTable:
    """The FLOPs proxy: every choice's MMACs at every position; the constant is the stem's and head's."""
    per_choice = {choice_key(c): _block_macs(space, c, img_size) for c in space.choices()}
    entries = [{k: round(v[i], 6) for k, v in per_choice.items()} for i in range(len(space.slots()))]
    _add_skips(space, entries)
    arch = space.sample(random.Random(0))  # MACs add up exactly: any net gives the constant
    table = LatencyTable(
        space.skeleton,
        img_size,
        1,
        1,
        "macs",
        False,
        machine(),
        0.0,
        entries,
        num_classes,
        unit="MMAC",
        elastic_depth=space.elastic_depth,
    )
    total = config_complexity(space.config(arch), img_size, num_classes=num_classes).macs / 1e6
    table.fixed = round(total - table.predict(arch), 6)
    table.stem_head = table.fixed
    return table


def _add_skips(space: SearchSpace, entries: list[dict[str, float]]) -> None:
    """A left-out block costs nothing of its own: ``skip`` entries of 0 where the space allows it."""
    for row, may_skip in zip(entries, space.skippable(), strict=True):
        if may_skip:
            row[choice_key(SKIP)] = 0.0


def measure_table(
    space: SearchSpace,
    *,
    runtime: str = "eager",
    img_size: int = 224,
    batch: int = 1,
    threads: int = 1,
    rounds: int = 7,
    num_classes: int = 10,
    channels_last: bool = True,
    calibration_nets: int = 10,
    progress: bool = False,
) -> LatencyTable:
    """Times every choice at every position (interleaved per position), then the constant (see the module).

    For ``runtime="macs"`` nothing is timed: see :func:`macs_table`.
    """
    check_runtime(runtime)
    if runtime == "macs":
        return macs_table(space, img_size=img_size, num_classes=num_classes)
    choices = space.choices()
    inputs = block_inputs(space, img_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(choices) + len(inputs), desc=f"latency table ({runtime})", unit="step")
    with using_threads(threads), tempfile.TemporaryDirectory() as tmp:
        # Every choice's blocks at every position, built once per choice from a net made of that choice
        # alone, so a block is exactly what the runtime runs inside a net. ONNX blocks wait on disk and
        # get sessions one position at a time: thousands of live sessions (gigabytes) slowed whole nets
        # timed afterwards in the same process by up to 2x.
        blocks: dict[str, list] = {}
        for c, choice in enumerate(choices):
            _, trunk = trunk_blocks(space.config((choice,) * len(inputs)), runtime, img_size, 1, channels_last)
            if runtime == "ort":
                trunk = [
                    _block_onnx(b, torch.randn(batch, *shape), Path(tmp) / f"{c}-{i}.onnx")
                    for i, (b, shape) in enumerate(zip(trunk, inputs, strict=True))
                ]
            blocks[choice_key(choice)] = trunk
            if bar is not None:
                bar.update()
        entries = []
        for i, shape in enumerate(inputs):
            x = _input(batch, *shape, runtime, channels_last)
            contenders = {
                key: ort_runner(b[i], x, threads) if runtime == "ort" else torch_runner(b[i], x)
                for key, b in blocks.items()
            }
            medians = interleaved_medians(contenders, rounds=rounds, iters=2, warmup=2, settle=1)
            del contenders
            entries.append({k: round(v * 1e3, 5) for k, v in medians.items()})
            if bar is not None:
                bar.update()
        del blocks
        if bar is not None:
            bar.close()
        _add_skips(space, entries)
        table = LatencyTable(
            space.skeleton,
            img_size,
            batch,
            threads,
            runtime,
            channels_last,
            machine(),
            0.0,
            entries,
            num_classes,
            elastic_depth=space.elastic_depth,
        )
        table.stem_head = measure_stem_head(space, runtime, img_size, batch, num_classes, channels_last, rounds)
    # The line through whole nets, timed in a fresh process, drawn apart from any check of the predictor.
    archs = calibration_archs(space, table, calibration_nets, CALIBRATION_SEED)
    measured = measure_configs_fresh(
        [space.config(a) for a in archs],
        runtime=runtime,
        img_size=img_size,
        batch=batch,
        threads=threads,
        num_classes=num_classes,
        channels_last=channels_last,
        rounds=rounds,
    )
    table.scale, table.fixed = fit_line([table.block_sum(a) for a in archs], measured)
    return table


def extreme(space: SearchSpace, table: LatencyTable, dearest: bool = False) -> Arch:
    """The net with the lowest (or highest) entry at every position."""
    pick = max if dearest else min
    return space.canonical(
        tuple(pick(space.choices_at(i), key=lambda c, r=row: r[choice_key(c)]) for i, row in enumerate(table.entries))
    )


def cheap_sample(space: SearchSpace, table: LatencyTable, rng: random.Random) -> Arch:
    """A net whose every block is drawn among the cheaper half of its position's choices (by the table)."""
    out = []
    for i, row in enumerate(table.entries):
        choices = space.choices_at(i)
        median = statistics.median(row[choice_key(c)] for c in choices)
        out.append(rng.choice([c for c in choices if row[choice_key(c)] <= median]))
    return space.canonical(tuple(out))


def calibration_archs(space: SearchSpace, table: LatencyTable, n: int, seed: int) -> list[Arch]:
    """``n`` (>= 4) nets across the table's range: half uniform draws, the rest cheap draws, and the cheapest
    and the dearest net."""
    rng = random.Random(seed)
    uniform = [space.sample(rng) for _ in range(max(1, n // 2))]
    cheap = [cheap_sample(space, table, rng) for _ in range(max(1, n - len(uniform) - 2))]
    return [*uniform, *cheap, extreme(space, table), extreme(space, table, dearest=True)]


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """``(scale, fixed)`` of the least-squares line ``y = fixed + scale x``; a line that does not rise (too
    little spread to fit) falls back to scale 1 with the median offset."""
    mx, my = statistics.fmean(x), statistics.fmean(y)
    var = sum((a - mx) ** 2 for a in x)
    scale = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / var if var > 0 else math.nan
    if not math.isfinite(scale) or scale <= 0:
        return 1.0, round(statistics.median(b - a for a, b in zip(x, y, strict=True)), 5)
    return round(scale, 5), round(my - scale * mx, 5)


def measure_stem_head(
    space: SearchSpace, runtime: str, img_size: int, batch: int, num_classes: int, channels_last: bool, rounds: int
) -> float:
    """The stem, head, pool and classifier of the skeleton, timed together (ms; PyTorch, for information)."""
    net, _ = trunk_blocks(space.base, "eager" if runtime == "ort" else runtime, img_size, num_classes, channels_last)
    net = net.model if hasattr(net, "model") else net  # the rewrite's inner net takes channels_last input
    x = torch.randn(batch, net.in_chans, img_size, img_size)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.inference_mode():
        trunk_out = net.stages(net.stem(x))

    def run() -> torch.Tensor:
        with torch.inference_mode():
            net.stem(x)
            return net.forward_head(net.head(trunk_out))

    return round(interleaved_medians({"fixed": run}, rounds=rounds * 3, iters=3, warmup=3)["fixed"] * 1e3, 5)


def measure_nets(space: SearchSpace, archs: Sequence[Arch], **kwargs) -> list[float]:
    """End-to-end cost of nets of ``space`` (see :func:`measure_configs`)."""
    return measure_configs([space.config(a) for a in archs], **kwargs)
