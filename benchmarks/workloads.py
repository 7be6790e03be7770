"""Built-in benchmark workloads, generated in-process from a fixed seed.

Every workload is a batch of float32 rewards split into groups (one group per prompt, one
reward per rollout), given either by CSR ``offsets`` or by per-row ``group_ids``. Reward
values mix the shapes the GAPO paper talks about: mostly normal groups, about 15% left-skewed
and 14% right-skewed groups, plus pass/fail (binary) and partial-credit (discrete) groups.

The same name always gives the same bytes (the seed is derived from the name), so two runs,
or a run and an independent re-timing, see identical data.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib

import numpy as np

BASE_SEED = 2510_21830  # arXiv 2510.21830

# Share of groups per reward shape (sums to 1).
SHAPE_MIX = {
    "normal": 0.55,
    "left_skewed": 0.15,
    "right_skewed": 0.14,
    "binary": 0.10,
    "discrete": 0.06,
}

GROUP_SIZE_SWEEP = 16
SWEEP_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)


@dataclasses.dataclass
class Workload:
    name: str
    title: str
    rewards: np.ndarray  # float32 [N]
    offsets: np.ndarray  # int64 [G + 1]: the grouped layout (for group_ids workloads, the source layout)
    group_ids: np.ndarray | None = None  # int64 [N]: set for workloads that pass group_ids
    sweep: bool = False
    note: str = ""

    @property
    def uses_group_ids(self) -> bool:
        return self.group_ids is not None

    @property
    def n(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @functools.cached_property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def missing_fraction(self) -> float:
        return float(np.mean(~np.isfinite(self.rewards))) if self.n else 0.0

    @property
    def has_missing(self) -> bool:
        return bool(np.any(~np.isfinite(self.rewards)))

    @property
    def input_bytes(self) -> int:
        """Bytes of what the op reads: rewards plus the grouping (offsets or ids)."""
        grouping = self.group_ids if self.uses_group_ids else self.offsets
        return int(self.rewards.nbytes + grouping.nbytes)

    @functools.cached_property
    def index(self) -> np.ndarray:
        """Group label of every row (verl's ``index``; python_loop's dict key)."""
        if self.uses_group_ids:
            return self.group_ids
        return np.repeat(np.arange(self.num_groups, dtype=np.int64), self.sizes)

    @functools.cached_property
    def grouped_rewards(self) -> np.ndarray:
        """Rewards in the grouped (CSR) layout: for group_ids workloads, before the shuffle."""
        if not self.uses_group_ids:
            return self.rewards
        return self.rewards[self._rows_by_group]

    def padded(self) -> np.ndarray:
        """The [G, max n] float32 batch, NaN-padded: what a padded implementation sorts."""
        width = int(self.sizes.max()) if self.num_groups else 0
        out = np.full((self.num_groups, width), np.nan, dtype=np.float32)
        col = np.arange(self.n) - np.repeat(self.offsets[:-1], self.sizes)
        out[np.repeat(np.arange(self.num_groups), self.sizes), col] = self.grouped_rewards
        return out

    def rows_of_groups(self, groups: np.ndarray) -> list[np.ndarray]:
        """Row indices (in this workload's row order) of each listed group."""
        if not self.uses_group_ids:
            return [np.arange(self.offsets[g], self.offsets[g + 1]) for g in groups]
        order = self._rows_by_group
        return [order[self.offsets[g] : self.offsets[g + 1]] for g in groups]

    @functools.cached_property
    def _rows_by_group(self) -> np.ndarray:
        # ids are the labels 0..G-1, so ascending id order is group order.
        return np.argsort(self.group_ids, kind="stable")

    def describe(self) -> str:
        s = self.sizes
        kind = "group_ids (shuffled rows)" if self.uses_group_ids else "offsets"
        return (
            f"N={self.n:,} rewards, G={self.num_groups:,} groups of {int(s.min())}..{int(s.max())}, "
            f"{100 * self.missing_fraction:.1f}% missing, float32, grouped by {kind}"
        )

    def summary(self) -> dict:
        s = self.sizes
        return {
            "name": self.name,
            "title": self.title,
            "n": self.n,
            "groups": self.num_groups,
            "group_size_min": int(s.min()),
            "group_size_max": int(s.max()),
            "group_size_mean": float(s.mean()),
            "missing_fraction": self.missing_fraction,
            "grouping": "group_ids" if self.uses_group_ids else "offsets",
            "dtype": str(self.rewards.dtype),
            "input_bytes": self.input_bytes,
            "sweep": self.sweep,
            "note": self.note,
        }


def _seed(name: str) -> int:
    return BASE_SEED + zlib.crc32(name.encode())


def shaped_rewards(sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 rewards for groups of the given sizes, one shape per group (see SHAPE_MIX)."""
    g = len(sizes)
    n = int(sizes.sum())
    names = list(SHAPE_MIX)
    shape_of_group = rng.choice(len(names), size=g, p=np.array(list(SHAPE_MIX.values())))
    shape_of_row = np.repeat(shape_of_group, sizes)
    out = np.empty(n, dtype=np.float64)

    def per_row(values_per_group, mask):
        return np.repeat(values_per_group, sizes)[mask]

    for code, name in enumerate(names):
        mask = shape_of_row == code
        m = int(mask.sum())
        if m == 0:
            continue
        if name == "normal":  # a score with a per-prompt level and spread
            loc = per_row(rng.normal(0.0, 1.0, g), mask)
            scale = per_row(rng.uniform(0.1, 2.0, g), mask)
            out[mask] = rng.normal(loc, scale)
        elif name == "left_skewed":  # most rollouts good, a tail of failures
            out[mask] = 1.0 - rng.exponential(0.3, m) ** 2
        elif name == "right_skewed":  # most rollouts bad, a few lucky successes
            out[mask] = rng.exponential(0.3, m) ** 2
        elif name == "binary":  # pass/fail with a per-prompt pass rate
            p = per_row(rng.random(g), mask)
            out[mask] = (rng.random(m) < p).astype(np.float64)
        else:  # discrete partial-credit levels
            out[mask] = rng.choice(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), size=m)
    return out.astype(np.float32)


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def uniform_groups(name: str, title: str, groups: int, size: int, *, sweep: bool = False) -> Workload:
    rng = np.random.default_rng(_seed(name))
    sizes = np.full(groups, size, dtype=np.int64)
    return Workload(name, title, shaped_rewards(sizes, rng), _offsets(sizes), sweep=sweep)


def ragged(name: str, title: str, n: int, max_size: int, missing: float) -> Workload:
    rng = np.random.default_rng(_seed(name))
    draws = rng.integers(1, max_size + 1, size=2 * n // (max_size + 1) + 64)
    ends = np.cumsum(draws)
    g = int(np.searchsorted(ends, n)) + 1
    sizes = draws[:g].astype(np.int64)
    sizes[-1] -= int(ends[g - 1] - n)  # trim the last group so the batch holds exactly n rewards
    sizes = sizes[sizes > 0]
    rewards = shaped_rewards(sizes, rng)
    rewards[rng.random(n) < missing] = np.nan
    return Workload(name, title, rewards, _offsets(sizes), note=f"{missing:.0%} of rewards NaN (missing)")


def shuffled_ids(name: str, title: str, source: Workload) -> Workload:
    """``source``'s groups with rows shuffled, passed as group_ids."""
    rng = np.random.default_rng(_seed(name))
    # Group g keeps the label g (dense labels, as verl's as_torch_index makes from uuids); the
    # row permutation scatters each group through the whole batch.
    ids = np.repeat(np.arange(source.num_groups, dtype=np.int64), source.sizes)
    perm = rng.permutation(source.n)
    return Workload(
        name,
        title,
        np.ascontiguousarray(source.rewards[perm]),
        source.offsets,
        group_ids=np.ascontiguousarray(ids[perm]),
        note=f"rows of {source.name} in random order, passed as group_ids",
    )


def _sweep_name(n: int) -> str:
    mant, exp = f"{n:.0e}".split("e")
    return f"sweep_{mant}e{int(exp)}"


SWEEP_NAMES = tuple(_sweep_name(n) for n in SWEEP_SIZES)
MAIN_NAMES = ("512x16", "62500x16", "ragged_1m", "1000x4096", "groupids_1m")


@functools.lru_cache(maxsize=4)
def get(name: str) -> Workload:
    """The named workload (generated on first use, then cached)."""
    if name == "512x16":
        return uniform_groups(name, "typical trainer batch, 512 prompts x 16 rollouts", 512, 16)
    if name == "62500x16":
        return uniform_groups(name, "large batch, 62,500 x 16", 62_500, 16)
    if name == "ragged_1m":
        return ragged(name, "ragged 1M, groups of 1..64, 5% missing", 1_000_000, 64, 0.05)
    if name == "1000x4096":
        return uniform_groups(name, "large groups, 1,000 x 4,096", 1_000, 4_096)
    if name == "groupids_1m":
        return shuffled_ids(name, "62,500 x 16 shuffled, by group_ids", get("62500x16"))
    for n, sweep_name in zip(SWEEP_SIZES, SWEEP_NAMES):
        if name == sweep_name:
            groups = max(1, round(n / GROUP_SIZE_SWEEP))
            return uniform_groups(name, f"size sweep, {groups:,} x {GROUP_SIZE_SWEEP}", groups, GROUP_SIZE_SWEEP, sweep=True)
    raise KeyError(f"unknown workload {name!r}; known: {', '.join(MAIN_NAMES + SWEEP_NAMES)}")


def expand(spec: str, sweep_max: float = float("inf")) -> list[str]:
    """Workload names from a comma list; 'main', 'sweep' and 'all' are shorthands."""
    names: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in ("all", "main"):
            names += MAIN_NAMES
        if token in ("all", "sweep"):
            names += [s for n, s in zip(SWEEP_SIZES, SWEEP_NAMES) if n <= sweep_max]
        if token not in ("all", "main", "sweep"):
            if token not in MAIN_NAMES + SWEEP_NAMES:
                raise SystemExit(f"unknown workload {token!r}; known: {', '.join(MAIN_NAMES + SWEEP_NAMES)}, main, sweep, all")
            names.append(token)
    seen = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def head(w: Workload, groups: int) -> Workload:
    """The first ``groups`` groups of ``w`` as a small workload of the same kind (warm-ups)."""
    g = min(groups, w.num_groups)
    offsets = w.offsets[: g + 1].copy()
    if not w.uses_group_ids:
        return Workload(w.name + f"[:{g}]", w.title, w.rewards[: offsets[-1]].copy(), offsets)
    keep = w.group_ids < g  # labels are 0..G-1
    return Workload(w.name + f"[:{g}]", w.title, w.rewards[keep].copy(), offsets, group_ids=w.group_ids[keep].copy())
