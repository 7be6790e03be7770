"""The size-sweep plot: time per reward against N, log-log, one line per contender.

``python -m benchmarks.plot [results.json] [-o size_sweep.png]`` redraws it from a saved run.
"""

from __future__ import annotations

import argparse
import json
import os

STYLE = {  # role -> line style; floors are grey and dashed so they read as bounds, not rivals
    "ours": dict(linewidth=2.2, marker="o"),
    "baseline": dict(linewidth=1.5, marker="s"),
    "oracle": dict(linewidth=1.0, marker="x"),
    "floor": dict(linewidth=1.2, marker=".", linestyle="--", color="0.55"),
}


def plot_sweep(payload: dict, path: str) -> str | None:
    """Draw the size sweep of ``payload`` (a results.json dict) to ``path``; None if it has none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = set(n for n, w in payload["workloads"].items() if w.get("sweep"))
    lines: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    roles: dict[tuple[str, str], str] = {}
    for r in payload["results"]:
        if r["workload"] in sweep and r["status"] == "ok":
            key = (r["device"], r["contender"])
            tm = r["timing"]
            lines.setdefault(key, []).append(
                (r["n"], r["ns_per_reward"], tm["q1_s"] / r["n"] * 1e9, tm["q3_s"] / r["n"] * 1e9))
            roles[key] = r["role"]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=120)
    floor_styles = iter([dict(linestyle="--"), dict(linestyle=":")] * 4)
    for key in sorted(lines, key=lambda k: (k[0], ["ours", "baseline", "oracle", "floor"].index(roles[k]), k[1])):
        device, name = key
        pts = sorted(lines[key])
        style = dict(STYLE.get(roles[key], {}))
        if roles[key] == "floor":
            style.update(next(floor_styles))
        if device == "cuda":
            style["linestyle"] = "-." if roles[key] != "floor" else style.get("linestyle", "--")
        label = f"{name} (GPU)" if device == "cuda" else name
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
        # the interquartile range of the samples, so noisy points show as such
        ax.fill_between([p[0] for p in pts], [p[2] for p in pts], [p[3] for p in pts],
                        color=line.get_color(), alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N rewards (groups of 16)")
    ax.set_ylabel("time per reward (ns; median, band = IQR)")
    m = payload.get("machine", {})
    threads = payload.get("config", {}).get("threads")
    ax.set_title(f"GAPO advantages, size sweep: {m.get('cpu_model', '?')}, {threads} thread(s)", fontsize=10)
    ax.axvspan(1e4, 1e7, color="0.93", zorder=0)
    ax.text(1.05e4, ax.get_ylim()[0] * 1.15, "target: flat within 1.5x over 10^4..10^7", fontsize=8, color="0.4")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__)
    ap.add_argument("results", nargs="?", default=os.path.join(here, "results", "results.json"))
    ap.add_argument("-o", "--output", default=None, help="PNG path (default: size_sweep.png beside the JSON)")
    args = ap.parse_args(argv)
    with open(args.results) as f:
        payload = json.load(f)
    out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.results)), "size_sweep.png")
    print(plot_sweep(payload, out) or "no size-sweep results in " + args.results)


if __name__ == "__main__":
    main()
