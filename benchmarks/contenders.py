"""The contenders: every way of computing the advantages that the suite times, plus floors.

A contender turns a workload into a zero-argument callable (all data conversion happens
before timing, so only the call is timed) and says how to read its output back as float64
NumPy in the workload's row order, for the correctness check against the reference.

Roles:
  ours      gapo_kernels' compiled backends (cpu, cuda, triton) and the raw torch op;
  baseline  what a user has today: ``python_loop``, ``torch_padded``, verl's vectorised GRPO;
  floor     not an advantage at all: the bare sort of the padded batch and a copy of the
            rewards, i.e. what any sort-based implementation has to pay at least;
  oracle    the NumPy reference itself (opt-in: slow).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any, Callable

import numpy as np
import torch

from .workloads import Workload

TAU = 0.5
EPS = 1e-6

# The (baseline, scale) each kind of check compares with. verl's GRPO is GAPO's family member
# (mean, rms): (r - mean) / (Bessel std + eps).
CHECK_PARAMS = {"gapo": ("hdi_median", "rms"), "grpo": ("mean", "rms")}


@dataclasses.dataclass
class Prepared:
    fn: Callable[[], Any]  # the timed call
    to_numpy: Callable[[Any], np.ndarray]  # its output as float64 NumPy, in the workload's row order


@dataclasses.dataclass
class Contender:
    name: str
    role: str  # "ours" | "baseline" | "floor" | "oracle"
    device: str  # "cpu" | "cuda"
    check: str | None  # key of CHECK_PARAMS, or None for floors (not an advantage)
    description: str
    _available: Callable[[], tuple[bool, str]]
    _prepare: Callable[[Workload, str], Prepared]
    _supports: Callable[[Workload], tuple[bool, str]] = lambda w: (True, "")
    slow: bool = False  # capped by --python-loop-max-n (see run.py)
    max_n: int | None = None  # never run above this N (too slow to be worth the wait)

    def available(self) -> tuple[bool, str]:
        try:
            return self._available()
        except Exception as exc:  # an import that half-works must not stop the suite
            return False, f"{type(exc).__name__}: {exc}"

    def supports(self, workload: Workload) -> tuple[bool, str]:
        return self._supports(workload)

    def prepare(self, workload: Workload) -> Prepared:
        return self._prepare(workload, self.device)


# --------------------------------------------------------------------------- gapo_kernels


def _gapo():
    import gapo_kernels

    if not hasattr(gapo_kernels, "advantage"):
        raise ImportError("gapo_kernels.advantage is missing (package not built/installed?)")
    return gapo_kernels


def gapo_backends() -> list[str]:
    """gapo_kernels.available_backends(), or [] when the package does not import."""
    try:
        g = _gapo()
        return list(g.available_backends()) if hasattr(g, "available_backends") else []
    except Exception:
        return []


def _tensor_inputs(w: Workload, device: str):
    rewards = torch.from_numpy(w.rewards).to(device)
    if w.uses_group_ids:
        return rewards, None, torch.from_numpy(w.group_ids).to(device)
    return rewards, torch.from_numpy(w.offsets).to(device), None


def _tensor_out(out: torch.Tensor) -> np.ndarray:
    return out.detach().to("cpu", torch.float64).numpy()


def _backend_available(backend: str) -> Callable[[], tuple[bool, str]]:
    def available():
        try:
            g = _gapo()
        except Exception as exc:
            return False, f"gapo_kernels does not import: {exc}"
        backends = gapo_backends()
        if backend not in backends:
            return False, f"backend {backend!r} not in gapo_kernels.available_backends() = {backends}"
        if backend in ("cuda", "triton") and not torch.cuda.is_available():
            return False, "no CUDA device (triton on CPU is the interpreter: never timed)"
        del g
        return True, ""

    return available


def _backend_prepare(backend: str) -> Callable[[Workload, str], Prepared]:
    def prepare(w: Workload, device: str) -> Prepared:
        g = _gapo()
        rewards, offsets, ids = _tensor_inputs(w, device)
        if ids is not None:
            fn = lambda: g.advantage(rewards, group_ids=ids, tau=TAU, eps=EPS, backend=backend)  # noqa: E731
        else:
            fn = lambda: g.advantage(rewards, offsets, tau=TAU, eps=EPS, backend=backend)  # noqa: E731
        return Prepared(fn, _tensor_out)

    return prepare


def _raw_op_available() -> tuple[bool, str]:
    ok, why = _backend_available("cpu")()
    if not ok:
        return ok, why
    try:
        torch.ops.gapo.advantage  # noqa: B018
    except (AttributeError, RuntimeError) as exc:
        return False, f"torch.ops.gapo.advantage not registered: {exc}"
    return True, ""


def _raw_op_prepare(w: Workload, device: str) -> Prepared:
    _gapo()  # loads the extension
    rewards, offsets, ids = _tensor_inputs(w, device)
    if ids is not None:
        op = torch.ops.gapo.advantage_by_ids
        fn = lambda: op(rewards, ids, TAU, "hdi_median", "rms", EPS)  # noqa: E731
    else:
        op = torch.ops.gapo.advantage
        fn = lambda: op(rewards, offsets, TAU, "hdi_median", "rms", EPS)  # noqa: E731
    return Prepared(fn, _tensor_out)


def _raw_op_supports(w: Workload) -> tuple[bool, str]:
    if w.uses_group_ids:
        try:
            torch.ops.gapo.advantage_by_ids  # noqa: B018
        except (AttributeError, RuntimeError):
            return False, "torch.ops.gapo.advantage_by_ids not registered"
    return True, ""


# --------------------------------------------------------------------------- python_loop


def python_loop_advantage(rewards: torch.Tensor, index: np.ndarray, tau: float = TAU, eps: float = EPS) -> torch.Tensor:
    """GAPO advantages the way the authors' public code computes them: plain Python.

    This project's own rewrite of the shape of the public reference (a verl fork): a dict of
    lists keyed by the group label, then per group a Python sort, a scan over the windows of
    the sorted scores for the narrowest one (the highest-density interval), the window's
    median and the group's spread, then a loop over the rows to normalise. It follows
    docs/spec.md's choices (window size, ties, singletons, missing rewards) so that it passes the
    same check as every other contender.
    """
    scores = rewards.tolist()
    keys = index.tolist()
    id2score: dict[Any, list[float]] = defaultdict(list)
    for score, key in zip(scores, keys):
        if math.isfinite(score):
            id2score[key].append(score)
    id2baseline: dict[Any, float] = {}
    id2scale: dict[Any, float] = {}
    for key, values in id2score.items():
        n = len(values)
        if n == 1:  # verl's convention for a lone rollout
            id2baseline[key], id2scale[key] = 0.0, 1.0
            continue
        values.sort()
        k = min(n, max(1, math.ceil(n * tau)))
        best_start, best_width = 0, math.inf
        for start in range(n - k + 1):
            width = values[start + k - 1] - values[start]
            if width < best_width:
                best_start, best_width = start, width
        window = values[best_start : best_start + k]
        q = window[k // 2] if k % 2 else (window[k // 2 - 1] + window[k // 2]) / 2.0
        id2baseline[key] = q
        id2scale[key] = math.sqrt(sum((v - q) ** 2 for v in values) / (n - 1))
    out = [0.0] * len(scores)
    for i, (score, key) in enumerate(zip(scores, keys)):
        if math.isfinite(score):
            divisor = id2scale[key] + eps
            out[i] = (score - id2baseline[key]) / divisor if divisor > 0 else 0.0
    return torch.tensor(out, dtype=rewards.dtype)


def _python_loop_prepare(w: Workload, device: str) -> Prepared:
    rewards = torch.from_numpy(w.rewards)
    index = w.index
    return Prepared(lambda: python_loop_advantage(rewards, index), _tensor_out)


def python_loop_tensors_advantage(rewards: torch.Tensor, index: np.ndarray, tau: float = TAU, eps: float = EPS) -> torch.Tensor:
    """The same algorithm in the shape of verl's naive ``compute_grpo_outcome_advantage``.

    verl's per-row loop keeps 0-d tensors, not floats, in its dict of lists (``scores[i]``),
    stacks each group into a tensor, and normalises row by row with tensor arithmetic. The
    authors' GAPO is a patch of that function, so this is what their code costs in practice:
    several times ``python_loop``. Run by default up to 300k rewards.
    """
    scores = rewards.clone()
    id2score: dict[Any, list[torch.Tensor]] = defaultdict(list)
    id2baseline: dict[Any, torch.Tensor] = {}
    id2scale: dict[Any, torch.Tensor] = {}
    bsz = scores.shape[0]
    for i in range(bsz):
        id2score[index[i]].append(scores[i])
    for idx, values in id2score.items():
        group = torch.stack(values)
        group = group[torch.isfinite(group)]
        n = group.numel()
        if n <= 1:  # lone rollout (or none): verl's Q = 0, S = 1
            id2baseline[idx], id2scale[idx] = torch.tensor(0.0), torch.tensor(1.0)
            continue
        ordered = torch.sort(group).values
        k = min(n, max(1, math.ceil(n * tau)))
        best_start, best_width = 0, math.inf
        for start in range(n - k + 1):
            width = (ordered[start + k - 1].double() - ordered[start].double()).item()
            if width < best_width:
                best_start, best_width = start, width
        window = ordered[best_start : best_start + k].double()
        q = window[k // 2] if k % 2 else (window[k // 2 - 1] + window[k // 2]) / 2
        id2baseline[idx] = q
        id2scale[idx] = torch.sqrt(((group.double() - q) ** 2).sum() / (n - 1))
    for i in range(bsz):
        if torch.isfinite(scores[i]):
            scores[i] = (scores[i] - id2baseline[index[i]]) / (id2scale[index[i]] + eps)
        else:
            scores[i] = 0.0
    return scores


def _python_loop_tensors_prepare(w: Workload, device: str) -> Prepared:
    rewards = torch.from_numpy(w.rewards)
    index = w.index
    return Prepared(lambda: python_loop_tensors_advantage(rewards, index), _tensor_out)


# --------------------------------------------------------------------------- verl


def _verl_fn():
    from verl.trainer.ppo.core_algos import compute_grpo_vectorized_outcome_advantage

    return compute_grpo_vectorized_outcome_advantage


def _verl_available() -> tuple[bool, str]:
    try:
        import verl  # noqa: F401
    except Exception as exc:
        return False, f"verl is not installed ({type(exc).__name__}: {exc})"
    try:
        _verl_fn()
    except Exception as exc:
        return False, f"verl {getattr(verl, '__version__', '?')} has no usable compute_grpo_vectorized_outcome_advantage ({type(exc).__name__}: {exc})"
    return True, ""


def _verl_supports(w: Workload) -> tuple[bool, str]:
    if w.has_missing:
        return False, "verl's GRPO has no notion of missing (NaN) rewards"
    return True, ""


def _verl_prepare(w: Workload, device: str) -> Prepared:
    fn = _verl_fn()
    # verl's calling convention: token-level rewards [bs, T] (here T = 1: the outcome reward on
    # the last token), a response mask, and ``index``, a NumPy array of group labels per row
    # (verl passes uuid strings; integer labels take its fastest path, so this is its best case).
    token_level_rewards = torch.from_numpy(w.rewards).to(device).unsqueeze(-1)
    response_mask = torch.ones_like(token_level_rewards)
    index = w.index

    def call():
        advantages, _ = fn(
            token_level_rewards=token_level_rewards,
            response_mask=response_mask,
            index=index,
            epsilon=EPS,
            norm_adv_by_std_in_grpo=True,
        )
        return advantages

    return Prepared(call, lambda out: _tensor_out(out[:, 0]))


# --------------------------------------------------------------------------- reference


def _reference_prepare(w: Workload, device: str) -> Prepared:
    from gapo_kernels import reference

    if w.uses_group_ids:
        fn = lambda: reference.advantage(w.rewards, group_ids=w.group_ids, tau=TAU, eps=EPS)  # noqa: E731
    else:
        fn = lambda: reference.advantage(w.rewards, w.offsets, tau=TAU, eps=EPS)  # noqa: E731
    return Prepared(fn, lambda out: np.asarray(out, dtype=np.float64))


# --------------------------------------------------------------------------- floors


def _numpy_sort_prepare(w: Workload, device: str) -> Prepared:
    padded = w.padded()
    return Prepared(lambda: np.sort(padded, axis=1), lambda out: None)


def _torch_sort_prepare(w: Workload, device: str) -> Prepared:
    padded = torch.from_numpy(w.padded()).to(device)
    return Prepared(lambda: torch.sort(padded, dim=1), lambda out: None)


def _copy_prepare(w: Workload, device: str) -> Prepared:
    rewards = torch.from_numpy(w.rewards).to(device)
    return Prepared(rewards.clone, lambda out: None)


def _always() -> tuple[bool, str]:
    return True, ""


def _cuda_available() -> tuple[bool, str]:
    return (True, "") if torch.cuda.is_available() else (False, "no CUDA device")


# --------------------------------------------------------------------------- registry


def cpu_contenders() -> list[Contender]:
    return [
        Contender("python_loop", "baseline", "cpu", "gapo",
                  "plain-Python rewrite of the authors' public code (dict of lists, per-group sort and scan)",
                  _always, _python_loop_prepare, slow=True),
        Contender("python_loop_tensors", "baseline", "cpu", "gapo",
                  "python_loop in the shape of verl's GRPO loop, where the authors patched GAPO in: 0-d tensors per row",
                  _always, _python_loop_tensors_prepare, slow=True, max_n=300_000),
        Contender("torch_padded", "baseline", "cpu", "gapo",
                  "gapo_kernels backend='torch': vectorised PyTorch over the padded [G, n] batch",
                  _backend_available("torch"), _backend_prepare("torch")),
        Contender("cpu", "ours", "cpu", "gapo", "gapo_kernels backend='cpu': the C++ kernel through the Python API",
                  _backend_available("cpu"), _backend_prepare("cpu")),
        Contender("cpu_op", "ours", "cpu", "gapo",
                  "torch.ops.gapo.advantage[_by_ids] called directly (no Python wrapper, no checks in Python)",
                  _raw_op_available, _raw_op_prepare, _raw_op_supports),
        Contender("verl_grpo_vectorized", "baseline", "cpu", "grpo",
                  "verl's compute_grpo_vectorized_outcome_advantage (plain GRPO: mean/std), integer index",
                  _verl_available, _verl_prepare, _verl_supports),
        Contender("reference", "oracle", "cpu", "gapo", "gapo_kernels.reference (NumPy oracle, float64, per group)",
                  _always, _reference_prepare, slow=True),
        Contender("numpy_sort", "floor", "cpu", None, "floor: np.sort of the NaN-padded [G, n] float32 batch along axis 1",
                  _always, _numpy_sort_prepare),
        Contender("copy", "floor", "cpu", None, "floor: a copy of the rewards (torch clone)", _always, _copy_prepare),
    ]


def gpu_contenders() -> list[Contender]:
    return [
        Contender("torch_padded", "baseline", "cuda", "gapo", "gapo_kernels backend='torch' on CUDA tensors",
                  lambda: _cuda_available() if _cuda_available()[0] is False else _backend_available("torch")(),
                  _backend_prepare("torch")),
        Contender("cuda", "ours", "cuda", "gapo", "gapo_kernels backend='cuda' (CUDA C++ kernel)",
                  _backend_available("cuda"), _backend_prepare("cuda")),
        Contender("triton", "ours", "cuda", "gapo", "gapo_kernels backend='triton'",
                  _backend_available("triton"), _backend_prepare("triton")),
        Contender("verl_grpo_vectorized", "baseline", "cuda", "grpo",
                  "verl's compute_grpo_vectorized_outcome_advantage on CUDA tensors",
                  lambda: _cuda_available() if _cuda_available()[0] is False else _verl_available(),
                  _verl_prepare, _verl_supports),
        Contender("torch_sort", "floor", "cuda", None, "floor: torch.sort of the NaN-padded [G, n] batch on the device",
                  _cuda_available, _torch_sort_prepare),
        Contender("copy", "floor", "cuda", None, "floor: a device copy of the rewards (clone)", _cuda_available, _copy_prepare),
    ]


DEFAULT_CPU = ("python_loop", "python_loop_tensors", "torch_padded", "cpu", "cpu_op", "verl_grpo_vectorized", "numpy_sort", "copy")
DEFAULT_GPU = ("torch_padded", "cuda", "triton", "verl_grpo_vectorized", "torch_sort", "copy")


def select(names: list[str] | None, device: str) -> list[Contender]:
    pool = cpu_contenders() if device == "cpu" else gpu_contenders()
    default = DEFAULT_CPU if device == "cpu" else DEFAULT_GPU
    wanted = list(default) if not names else names
    by_name = {c.name: c for c in pool}
    return [by_name[n] for n in wanted if n in by_name]


def all_names() -> list[str]:
    seen: list[str] = []
    for c in cpu_contenders() + gpu_contenders():
        if c.name not in seen:
            seen.append(c.name)
    return seen


# --------------------------------------------------------------------------- the check


class Oracle:
    """Reference advantages for a workload, computed once and shared by every contender.

    Small workloads are checked in full. Big ones are checked on a fixed random sample of
    whole groups (the reference is a per-group Python loop), always including the first and
    last group, a singleton and a group with missing rewards where the workload has them.
    Whole groups are what make the sample exact: a group's advantages depend on that group only.
    """

    # GAPO contenders: the project's float32 bar (tests/oracle.py). verl: its one-pass float32
    # variance (sum of squares minus squared sum) loses ~1e-4 relative on groups of 4,096.
    RTOL = {"gapo": 1e-5, "grpo": 1e-3}

    def __init__(self, full_max_n: int = 2_000_000, sample_groups: int = 1024, seed: int = 0):
        self.full_max_n = full_max_n
        self.sample_groups = sample_groups
        self.seed = seed
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray, str]] = {}

    def _rows_and_scope(self, w: Workload) -> tuple[np.ndarray | None, str]:
        if w.n <= self.full_max_n:
            return None, f"full ({w.num_groups:,} groups)"
        rng = np.random.default_rng(self.seed)
        g = w.num_groups
        picks = set(rng.choice(g, size=min(self.sample_groups, g), replace=False).tolist())
        picks |= {0, g - 1}
        sizes = w.sizes
        singles = np.nonzero(sizes == 1)[0]
        if len(singles):
            picks.add(int(singles[0]))
        if w.has_missing:
            bad = np.nonzero(~np.isfinite(w.grouped_rewards))[0]
            picks.add(int(np.searchsorted(w.offsets, bad[0], side="right") - 1))
        groups = np.array(sorted(picks))
        return groups, f"sampled ({len(groups):,} of {g:,} whole groups, fixed seed)"

    def expected(self, w: Workload, kind: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(rows checked, expected advantages at those rows, scope text)."""
        key = (w.name, kind)
        if key not in self._cache:
            from gapo_kernels import reference

            baseline, scale = CHECK_PARAMS[kind]
            groups, scope = self._rows_and_scope(w)
            values = w.rewards.astype(np.float64)
            # Whole groups, each one's rows gathered (the reference's own group_ids path scans
            # all rows once per group): the same per-group answer at a fraction of the cost.
            row_lists = w.rows_of_groups(np.arange(w.num_groups) if groups is None else groups)
            rows = np.concatenate(row_lists) if row_lists else np.zeros(0, dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum([len(r) for r in row_lists])]).astype(np.int64)
            exp = reference.advantage(values[rows], offsets, tau=TAU, baseline=baseline, scale=scale, eps=EPS)
            self._cache[key] = (rows, exp, scope)
        return self._cache[key]

    def check(self, w: Workload, contender: Contender, output_numpy: np.ndarray) -> dict:
        rows, exp, scope = self.expected(w, contender.check)
        if output_numpy.shape != (w.n,):
            return {"ok": False, "scope": scope, "detail": f"output shape {output_numpy.shape}, expected ({w.n},)"}
        got = output_numpy[rows]
        rtol = self.RTOL[contender.check]
        atol = rtol * max(1.0, float(np.abs(exp).max(initial=0.0)))
        err = np.abs(got - exp)
        finite = np.isfinite(got)
        bad = ~finite | (err > atol + rtol * np.abs(exp))
        nbad = int(bad.sum())
        max_err = float(err[finite].max(initial=0.0)) if finite.any() else math.inf
        baseline, scale = CHECK_PARAMS[contender.check]
        result = {
            "ok": nbad == 0,
            "scope": scope,
            "against": f"reference(baseline={baseline!r}, scale={scale!r})",
            "rtol": rtol,
            "max_abs_err": max_err,
            "mismatches": nbad,
        }
        if nbad:
            i = int(np.argmax(bad))
            result["detail"] = (f"{nbad:,} of {len(exp):,} checked rewards off by more than rtol {rtol:g}; "
                                f"e.g. got {float(got[i]):.7g}, expected {float(exp[i]):.7g}")
        return result
