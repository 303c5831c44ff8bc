"""Image folders in torchvision's ``ImageFolder`` layout, with every file checked before training.

Every file is decoded once up front, so a corrupt or non-image file is reported by name instead of
crashing a DataLoader worker mid-epoch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from tqdm.auto import tqdm

# How many skipped files a warning or error names before it only counts the rest.
_MAX_NAMED = 20


def check_image(path: str | Path) -> str | None:
    """Decodes an image file fully; returns None if it is a readable image, else the reason it is not."""
    try:
        with Image.open(path) as img:
            # JPEG only: decode at 1/8 scale, which still reads every byte (so truncation shows) but is
            # about twice as fast; other formats ignore draft().
            img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()  # verify() alone misses truncated JPEGs; a decode does not
        return None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files; all mean "unreadable"
        return f"{type(e).__name__}: {e}"


def _name_some(items: Sequence[tuple[str, str]]) -> str:
    shown = "; ".join(f"{p} ({why})" for p, why in items[:_MAX_NAMED])
    return shown + (f"; ... and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else "")


def class_folders(directory: str | Path) -> list[str]:
    """Sorted names of the class subfolders of ``directory``; none is a ValueError."""
    found = sorted(e.name for e in Path(directory).iterdir() if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise ValueError(f"no class folders in {str(directory)!r} (expected {directory}/<class>/<image files>)")
    return found


class VerifiedImageFolder(ImageFolder):
    """``torchvision.datasets.ImageFolder`` that decodes every file up front and skips the unreadable ones.

    Files without an image extension are skipped (as ImageFolder does) but named in a warning; images that
    fail to decode are skipped with the same warning, or with ``strict=True`` are a ValueError naming them.
    Hidden files (``.DS_Store``) are ignored. A class folder with no readable image is a ValueError. At load
    time a file that has gone bad since is reported by name (strict) or replaced by the next sample with a
    warning, so a DataLoader worker never dies on it.

    Args:
        root: folder with one subfolder per class.
        transform: applied to each PIL image.
        class_to_idx: a fixed class -> index map (e.g. the train set's, for a val folder); a class folder
            missing from it is a ValueError. Default: sorted folder names.
        strict: raise instead of skipping unreadable files.
        verify: decode every file up front (True) or trust the extensions (False, faster on huge sets).
        workers: threads decoding files during verification.
        exclude: ``path -> reason`` of files already known to be unreadable (e.g. found by another
            process's verification): left out without being opened, and listed in ``skipped``.

    Attributes:
        skipped: (path, reason) of every file left out.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable | None = None,
        *,
        class_to_idx: dict[str, int] | None = None,
        strict: bool = False,
        verify: bool = True,
        workers: int = 8,
        exclude: Mapping[str, str] | None = None,
    ) -> None:
        self._fixed = class_to_idx
        self._exclude = dict(exclude or {})
        self.strict, self.verify, self.workers = strict, verify, workers
        self.skipped: list[tuple[str, str]] = []
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
        super().__init__(str(root), transform=transform)
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} of {len(self.samples) + len(self.skipped)} file(s) in "
                f"{str(root)!r}: {_name_some(self.skipped)}",
                stacklevel=2,
            )

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        """Class folders of ``directory`` and their indices (the fixed map when one was given)."""
        found = class_folders(directory)
        if self._fixed is None:
            return found, {c: i for i, c in enumerate(found)}
        extra = [c for c in found if c not in self._fixed]
        if extra:
            raise ValueError(
                f"{str(directory)!r} has class folder(s) {extra} that the training classes lack "
                f"(known: {sorted(self._fixed)[:_MAX_NAMED]}{' ...' if len(self._fixed) > _MAX_NAMED else ''})"
            )
        classes = sorted(self._fixed, key=self._fixed.get)
        return classes, dict(self._fixed)

    def make_dataset(  # type: ignore[override] - an instance method, so it sees strict/verify
        self,
        directory: str | Path,
        class_to_idx: dict[str, int],
        extensions: tuple[str, ...] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        """(path, class index) of every readable image, in sorted order; unreadable files are skipped."""
        directory = Path(directory)
        candidates: list[tuple[str, int]] = []
        present: list[str] = []
        for cls in sorted(class_to_idx):
            folder = directory / cls
            if not folder.is_dir():
                continue  # a fixed map may name classes this split lacks
            present.append(cls)
            # os.walk with followlinks, as torchvision's make_dataset: symlinked subfolders count.
            files = [Path(d, f) for d, _, names in os.walk(folder, followlinks=True) for f in names]
            for path in sorted(files):
                if path.name.startswith("."):
                    continue  # .DS_Store and friends
                if has_file_allowed_extension(str(path), IMG_EXTENSIONS):
                    candidates.append((str(path), class_to_idx[cls]))
                else:
                    self.skipped.append((str(path), "not an image file extension"))
        bad: list[tuple[str, str]] = []
        if self._exclude:
            bad = [(p, self._exclude[p]) for p, _ in candidates if p in self._exclude]
            candidates = [c for c in candidates if c[0] not in self._exclude]
        if self.verify and candidates:
            with ThreadPoolExecutor(max(1, self.workers)) as pool:
                reasons = list(
                    tqdm(
                        pool.map(check_image, [p for p, _ in candidates]),
                        total=len(candidates),
                        desc=f"checking images in {directory.name}",
                        unit="img",
                        leave=False,
                        disable=len(candidates) < 1000,
                    )
                )
            bad += [(p, why) for (p, _), why in zip(candidates, reasons, strict=True) if why is not None]
            bad_paths = {p for p, _ in bad}
            candidates = [c for c in candidates if c[0] not in bad_paths]
        if bad and self.strict:
            raise ValueError(f"{len(bad)} unreadable image file(s) in {str(directory)!r}: {_name_some(bad)}")
        self.skipped += bad
        self.skipped.sort()
        counts = {class_to_idx[c]: 0 for c in present}
        for _, i in candidates:
            counts[i] += 1
        empty = [c for c in present if counts[class_to_idx[c]] == 0]
        if empty:
            dirs = tuple(str(directory / c) + "/" for c in empty)
            unreadable = [(p, why) for p, why in self.skipped if p.startswith(dirs)]
            raise ValueError(
                f"class folder(s) with no readable images in {str(directory)!r}: {empty}"
                + (f"; their files were left out: {_name_some(unreadable)}" if unreadable else "")
            )
        return candidates

    def __getitem__(self, index: int) -> tuple[object, int]:
        # A file that passed verification can still fail later (replaced, unmounted, truncated on disk).
        tries = min(len(self.samples), 10)
        for attempt in range(tries):
            path, target = self.samples[(index + attempt) % len(self.samples)]
            try:
                img = self.loader(path)
            except Exception as e:  # noqa: BLE001 - any unreadable file is handled the same way
                if self.strict:
                    raise RuntimeError(f"cannot read image {path!r}: {type(e).__name__}: {e}") from e
                warnings.warn(f"cannot read image {path!r} ({type(e).__name__}: {e}); using the next one", stacklevel=2)
                continue
            return (self.transform(img) if self.transform else img), target
        which = "every image of the data set" if tries == len(self.samples) else f"{tries} images in a row"
        raise RuntimeError(f"cannot read {which} ({tries} tried) in {self.root!r}, starting at index {index}")
