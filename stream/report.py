"""What every replay writes: the report with its environment and timings, and the plots people look at.

Both replay paths (:mod:`stream.replay` in-process, :mod:`stream.kafka_replay`
through the pipeline) finish through :func:`finish`, so their reports have
one shape: ``report.json``, ``hit_rate.png`` (HR@k over time, one line per
system) and ``latency.png`` (a histogram per system).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import orjson

from model.evaluate.prequential import Report


def finish(report: Report, result: dict, timings: dict[str, float], started: float,
           out: str | Path | None, title: str) -> dict:
    """Add what every replay report carries (environment, timings, table); write it to ``out`` if given."""
    result["environment"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "cpus": os.cpu_count(), "machine": platform.machine()}
    timings["total_s"] = time.perf_counter() - started + timings.get("load_s", 0.0)
    result["timings"] = timings
    result["table"] = report.table()
    if out is not None:
        write_outputs(report, result, Path(out), title=title)
    return result


def write_outputs(report: Report, result: dict, out: Path, title: str) -> None:
    """``report.json``, ``hit_rate.png`` and ``latency.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    plot_hit_rate(report, out / "hit_rate.png", title)
    plot_latency(report, out / "latency.png", title)


def plot_hit_rate(report: Report, path: Path, title: str) -> None:
    """HR@k per window of scored events, every system on one plot."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    for result in report.systems:
        ends, rates = result.hit_rate_windows(report.window)
        ax.plot(ends + 1, rates, marker="o", markersize=3, linewidth=1.5,
                label=f"{result.name} (overall {result.metrics['hit_rate']:.3f})")
    ax.set_title(f"HR@{report.k} over time — {title}, windows of {report.window:,} scored events")
    ax.set_xlabel("events replayed")
    ax.set_ylabel(f"HR@{report.k} in the window")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(report: Report, path: Path, title: str) -> None:
    """One histogram of recommend + observe time per system, on a shared log axis."""
    plt = pyplot()
    n = len(report.systems)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.9 * n + 1.2), sharex=True, layout="constrained", squeeze=False)
    all_us = np.concatenate([r.latency_ns for r in report.systems]) / 1e3 if n else np.ones(1)
    lo, hi = max(float(all_us.min()), 0.1) if len(all_us) else 1.0, float(all_us.max()) if len(all_us) else 10.0
    bins = np.logspace(np.log10(lo) - 0.05, np.log10(hi) + 0.05, 80)
    for ax, result in zip(axes[:, 0], report.systems):
        ax.hist(result.latency_ns / 1e3, bins=bins, color="tab:blue")
        for pct, style in ((50, "--"), (99, ":")):
            ax.axvline(result.latency_us(pct), color="tab:red", linestyle=style,
                       label=f"p{pct} {result.latency_us(pct):,.0f} µs")
        ax.set_xscale("log")
        ax.set_ylabel("events")
        ax.set_title(f"{result.name}: {result.events_per_s:,.0f} events/s", loc="left", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("recommend + observe per event (µs, log scale)")
    fig.suptitle(f"Latency per event — {title}")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on workers or CI
    import matplotlib.pyplot as plt

    return plt
