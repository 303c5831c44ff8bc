"""Prediction: image files or folders -> the top-k classes with their probabilities.

Images go through the same eval transform as ``mixnet eval`` (resize, center crop, normalise), decoded by a
DataLoader (``workers`` processes). A file that cannot be read is named in a warning and skipped, so one bad
file never loses the others' results; with ``strict`` it is an error instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from tqdm.auto import tqdm

from mixnet.runtime import autocast, resolve_device


def list_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expands files and folders (searched recursively for image extensions, sorted) into image paths.

    A file given by name is kept whatever its extension, so a bad one is reported rather than ignored.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: no image files at all.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(IMG_EXTENSIONS))
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"{str(p)!r} does not exist")
    if not paths:
        raise ValueError(f"no image files in {[str(i) for i in inputs]}")
    return paths


def _load(path: Path, transform: Callable) -> torch.Tensor:
    with Image.open(path) as img:
        return transform(img.convert("RGB"))


class _Images(Dataset):
    """Image files -> ``(path, tensor or None, reason or None)``: a failure is data, so it crosses processes."""

    def __init__(self, paths: Sequence[str | Path], transform: Callable) -> None:
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor | None, str | None]:
        path = self.paths[i]
        try:
            return str(path), _load(path, self.transform), None
        except Exception as e:  # noqa: BLE001 - any unreadable image is reported the same way
            return str(path), None, f"{type(e).__name__}: {e}"


def _as_list(items: list) -> list:
    """DataLoader collate that keeps the items as they are (a module-level function: workers pickle it)."""
    return items


@torch.inference_mode()
def predict(
    model: nn.Module,
    paths: Sequence[str | Path],
    *,
    transform: Callable,
    class_names: Sequence[str] | None = None,
    topk: int = 5,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    workers: int = 0,
    strict: bool = False,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Top-k predictions for each readable image.

    Args:
        model: a classifier returning logits; run in eval mode (its mode is restored after).
        paths: image files.
        transform: PIL image -> normalised tensor (e.g. :func:`mixnet.data.eval_transform`).
        class_names: names in class-index order; default the index as a string.
        topk: how many classes per image (capped at the class count).
        device: where to run.
        batch_size: images per forward pass.
        amp_dtype: autocast dtype, or None for full precision.
        progress: show a tqdm bar.
        workers: DataLoader processes decoding the images (0: in this process).
        strict: an unreadable image is an error instead of being skipped.

    Returns:
        ``(results, failed)``: one ``{"path", "top": [{"index", "class", "prob"}, ...]}`` per readable image
        in input order, and ``(path, reason)`` of each unreadable one (also warned about).

    Raises:
        ValueError: (``strict``) an unreadable image, named; class names that do not match the outputs.
    """
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    results: list[dict] = []
    failed: list[tuple[str, str]] = []
    loader = DataLoader(
        _Images(paths, transform), batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_as_list
    )
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not progress, leave=False)
    try:
        for items in loader:
            batch, ok = [], []
            for path, image, reason in items:
                if image is None:
                    if strict:
                        raise ValueError(f"cannot read image {path!r}: {reason}")
                    warnings.warn(f"skipping {path!r}: {reason}", stacklevel=2)
                    failed.append((path, reason))
                else:
                    batch.append(image)
                    ok.append(path)
            bar.update(len(items))
            if not batch:
                continue
            with autocast(device, amp_dtype):
                logits = model(torch.stack(batch).to(device))
            probs = logits.float().softmax(dim=1)
            if class_names is not None and len(class_names) != probs.shape[1]:
                raise ValueError(f"{len(class_names)} class names for a model with {probs.shape[1]} outputs")
            values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
            for path, vs, ix in zip(ok, values.tolist(), indices.tolist(), strict=True):
                top = [
                    {"index": i, "class": class_names[i] if class_names is not None else str(i), "prob": v}
                    for v, i in zip(vs, ix, strict=True)
                ]
                results.append({"path": path, "top": top})
    finally:
        bar.close()
        model.train(was_training)
    return results, failed


def format_table(results: Sequence[dict]) -> str:
    """Predictions as a plain-text table: one row per image and rank."""
    rows = [("image", "rank", "class", "prob")]
    for r in results:
        for rank, t in enumerate(r["top"], 1):
            rows.append((r["path"] if rank == 1 else "", str(rank), t["class"], f"{t['prob']:.4f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i != 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )
