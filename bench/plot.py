#!/usr/bin/env python3
"""Plot the JSON written by `corral bench --compare ... --json FILE`.

Draws two panels, throughput (ops/s) and p99 latency (µs), each with one bar per
server and workload: the bar is the mean over rounds, the whisker spans min..max.
Both axes are logarithmic because the workloads differ by orders of magnitude.

Usage (matplotlib is in tests/requirements.txt, so the .venv that .ci/run makes has it):
    python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt
    .venv/bin/python bench/plot.py compare.json            # writes bench/results.png
    .venv/bin/python bench/plot.py compare.json -o other.png

A --compare --ensemble N JSON is labelled as such and, without -o, is written to
bench/results-ensembleN.png (so the standalone figure is not overwritten).

For a --compare JSON each workload's pair of bars is labelled with the A/B ratio of the
means (throughput: above 1 means A is faster; p99: below 1 means A is better).

A single-server JSON (`corral bench --json`) is drawn the same way with one bar per
workload.
"""

import argparse
import json
import statistics
import sys


def series(results_per_round):
    """{workload: ([ops/s per round], [p99 per round])} from lists of result rows."""
    out = {}
    for rows in results_per_round:
        for r in rows:
            ops, p99 = out.setdefault(r["workload"], ([], []))
            ops.append(r["ops_per_sec"])
            p99.append(r["latency_us"]["p99"])
    return out


def short_version(v):
    """'3.8.0-${mvngit.commit.id}, built on ...' -> '3.8.0' (unexpanded build placeholders
    and the build date are noise in a legend)."""
    v = v.split(",")[0].strip()
    return v.split("-${")[0]


def ensemble_voters(doc):
    """Voters per side of a --compare --ensemble JSON; 0 for standalone servers (and for
    JSON written before the ensemble option existed)."""
    if doc.get("mode") != "compare":
        return 0
    return doc["servers"]["a"].get("voters", 0)


def default_output(doc):
    """bench/results.png, or bench/results-ensembleN.png for an ensemble comparison."""
    voters = ensemble_voters(doc)
    return f"bench/results-ensemble{voters}.png" if voters else "bench/results.png"


def load(doc):
    """[(label, {workload: (ops list, p99 list)})], workload order, title."""
    if doc.get("mode") == "compare":
        sides = []
        for key in ("a", "b"):
            info = doc["servers"][key]
            rounds = [r[key]["results"] for r in doc["rounds"]]
            sides.append((f'{info["label"]} ({short_version(info["version"])})', series(rounds)))
        order = [r["workload"] for r in doc["rounds"][0]["a"]["results"]]
        n = len(doc["rounds"])
        title = f'{doc["servers"]["a"]["label"]} vs {doc["servers"]["b"]["label"]}, ' \
                f'{n} round(s), {doc["date"][:10]}'
        voters = ensemble_voters(doc)
        if voters:
            observers = doc["servers"]["a"].get("observers", 0)
            title += f', {voters}-member ensembles' + (f' + {observers} observers' if observers else '')
    else:
        sides = [(doc.get("server", "server"), series([doc["results"]]))]
        order = [r["workload"] for r in doc["results"]]
        title = f'{doc.get("server", "")}, {doc["date"][:10]}'
    s = doc["settings"]
    title += (f' — {s["sessions"]} sessions × {s["inflight_per_session"]} in flight, '
              f'{s["duration_s"]:g} s per workload')
    return sides, order, title


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", help="file written by corral bench --json")
    p.add_argument("-o", "--output", default=None,
                   help="PNG to write (default: bench/results.png, or "
                        "bench/results-ensembleN.png for an ensemble comparison)")
    a = p.parse_args(argv)
    with open(a.json, encoding="utf-8") as f:
        doc = json.load(f)
    if a.output is None:
        a.output = default_output(doc)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides, order, title = load(doc)
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    width = 0.8 / len(sides)
    xs = range(len(order))
    panels = [(0, "throughput (ops/s, higher is better)"),
              (1, "p99 latency (µs, lower is better)")]
    for ax, (idx, label) in zip(axes, panels):
        all_means, tops = [], []
        for k, (name, data) in enumerate(sides):
            means, lo, hi = [], [], []
            for w in order:
                vals = [v for v in data.get(w, ([], []))[idx] if v > 0] or [float("nan")]
                m = statistics.fmean(vals)
                means.append(m)
                lo.append(m - min(vals))
                hi.append(max(vals) - m)
            pos = [x - 0.4 + width * (k + 0.5) for x in xs]
            ax.bar(pos, means, width, yerr=[lo, hi], capsize=3, label=name)
            all_means.append(means)
            tops.append([m + h for m, h in zip(means, hi)])
        if len(all_means) == 2:
            # The A/B ratio of the means above each pair of bars.
            for x, a_m, b_m, ta, tb in zip(xs, all_means[0], all_means[1], *tops):
                if a_m > 0 and b_m > 0:  # false for a NaN (no data) mean
                    top = max(ta, tb)
                    ax.annotate(f"{a_m / b_m:.2f}×", (x, top), xytext=(0, 3),
                                textcoords="offset points", ha="center", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend()
    axes[0].set_title(title, fontsize=10)
    axes[1].set_xticks(list(xs))
    axes[1].set_xticklabels(order, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
