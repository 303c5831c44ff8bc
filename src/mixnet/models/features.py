"""Feature maps of a backbone: which ones exist (:class:`FeatureInfo`) and which ones a caller wants.

The same questions timm's ``feature_info`` answers (``channels()``, ``reduction()``, ``module_name()``),
so detection and segmentation code written against timm's backbones works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class FeatureInfo:
    """The feature maps a model can return, one dict each: ``num_chs``, ``reduction``, ``module``, ``stage``.

    Indexing and iteration give the dicts (``channels`` is an alias of ``num_chs``), so code that reads
    ``[f["channels"] for f in model.feature_info]`` keeps working.
    """

    def __init__(self, entries: Sequence[dict], out_indices: Sequence[int] | None = None) -> None:
        self.info = [dict(e, channels=e["num_chs"]) for e in entries]
        self.out_indices = tuple(range(len(self.info))) if out_indices is None else tuple(out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> object:
        """The value of ``key`` for the selected maps (all of them when ``idx`` is None)."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> object:
        """Channel count(s) of the selected maps."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> object:
        """Stride(s) relative to the input of the selected maps."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> object:
        """Name(s) of the module whose output each selected map is."""
        return self.get("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None) -> list[dict]:
        """The selected maps as dicts (only ``keys`` when given)."""
        rows = [self.info[i] for i in self.out_indices]
        return [dict(r) if keys is None else {k: r[k] for k in keys} for r in rows]

    def __getitem__(self, i: int) -> dict:
        return self.info[self.out_indices[i]]

    def __len__(self) -> int:
        return len(self.out_indices)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.get_dicts())

    def __repr__(self) -> str:
        return f"FeatureInfo({self.get_dicts(['module', 'num_chs', 'reduction'])})"


def take_indices(count: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's ``feature_take_indices``: None = all, an int n = the last n, a list = those (negatives allowed).

    Raises:
        ValueError: an index outside ``0..count-1`` (or ``-count..-1``), or n outside ``1..count``.
    """
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"can take the last 1..{count} feature maps, not {indices}")
        return list(range(count - indices, count))
    out = []
    for i in indices:
        if not -count <= i < count:
            raise ValueError(f"feature index {i} is outside 0..{count - 1}")
        out.append(i % count)
    return out
