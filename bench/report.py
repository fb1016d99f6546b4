"""Reports of the HTTP load harness: the JSON envelope, its markdown table, A-vs-B ratios.

A report is a dict (written as JSON by ``python -m bench.http --json``):
``label, url, started, params, scenarios{name: summary}, host`` and, after
seeding, ``prefix`` and ``seed``. Each scenario's summary comes from
bench/load.py ``summarize`` (rps, p50_ms, p99_ms, errors, requests, ...).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from typing import Any


def envelope(
    label: str, url: str, params: dict[str, Any], scenarios: dict[str, Any]
) -> dict[str, Any]:
    """A report: what ran where, with which parameters, on which host."""
    return {
        "label": label,
        "url": url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": params,
        "scenarios": scenarios,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }


def markdown_table(report: dict[str, Any]) -> str:
    p = report["params"]
    bound = f"{p['requests']} responses" if p.get("requests") else f"{p['duration']} s"
    if p.get("rounds", 1) > 1:
        bound += f" (medians of {p['rounds']} rounds)"
    driver = p["driver"] + (f" ({p['driver_note']})" if p.get("driver_note") else "")
    lines = [
        f"### {report.get('label') or report['url']}",
        "",
        f"{report['url']} — {bound} per scenario, {p['concurrency']} connections, "
        f"{p['clients']} client processes, driver {driver}",
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | requests | server CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["scenarios"].items():
        lines.append(
            f"| {name} | {s['rps']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
            f"| {s['errors']} | {s['requests']} | {_cpu(s)} |"
        )
    if "seed" in report:
        sd = report["seed"]
        lines += ["", f"Seeded {sd['publishes']} publishes in {sd['seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "—"


def _cpu(s: dict[str, Any]) -> str:
    cpu = s.get("cpu_us_per_request")
    return "—" if cpu is None else f"{cpu:.0f}"


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    la = a.get("label") or "A"
    lb = b.get("label") or "B"
    lines = [
        f"### {la} vs {lb} (ratio = {la} / {lb}; req/s higher is better, latency lower)",
        "",
        f"| scenario | {la} req/s | {lb} req/s | req/s ratio | {la} p50 | {lb} p50 | p50 ratio "
        f"| {la} p99 | {lb} p99 | p99 ratio | errors {la}/{lb} "
        f"| CPU µs/req {la} / {lb} | CPU ratio {lb} / {la} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(a["scenarios"]) + [n for n in b["scenarios"] if n not in a["scenarios"]]
    for n in names:
        sa, sb = a["scenarios"].get(n), b["scenarios"].get(n)
        if sa is None or sb is None:
            only = la if sb is None else lb
            lines.append(f"| {n} | (only in {only}) |||||||||||| ")
            continue
        lines.append(
            f"| {n} | {sa['rps']:.1f} | {sb['rps']:.1f} | {_ratio(sa['rps'], sb['rps'])} "
            f"| {sa['p50_ms']:.2f} | {sb['p50_ms']:.2f} | {_ratio(sa['p50_ms'], sb['p50_ms'])} "
            f"| {sa['p99_ms']:.2f} | {sb['p99_ms']:.2f} | {_ratio(sa['p99_ms'], sb['p99_ms'])} "
            f"| {sa['errors']}/{sb['errors']} | {_cpu(sa)} / {_cpu(sb)} "
            f"| {_cpu_ratio(sb, sa)} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_ratio(b: dict[str, Any], a: dict[str, Any]) -> str:
    """How many times more CPU a request costs B than A (B / A), when both were measured."""
    cb, ca = b.get("cpu_us_per_request"), a.get("cpu_us_per_request")
    return _ratio(cb, ca) if cb is not None and ca is not None else "—"


def ratio_table(reports: dict[str, dict[str, Any]], pairs: Sequence[tuple[str, str]]) -> str:
    """One table of a run: req/s of each registry per scenario, then each ratio A/B of
    ``pairs`` whose both sides ran."""
    labels = list(reports)
    shown = [(a, b) for a, b in pairs if a in reports and b in reports]
    head = " | ".join(f"{label} req/s" for label in labels)
    ratios = " | ".join(f"{a}/{b}" for a, b in shown)
    lines = [
        "### req/s side by side (ratios of req/s in this run)",
        "",
        f"| scenario | {head} | {ratios} |",
        "|---|" + "---:|" * (len(labels) + len(shown)),
    ]
    names: list[str] = []
    for report in reports.values():
        names += [n for n in report["scenarios"] if n not in names]
    for n in names:
        rps = {lb: reports[lb]["scenarios"].get(n, {}).get("rps") for lb in labels}
        cells = [f"{rps[lb]:.1f}" if rps[lb] is not None else "—" for lb in labels]
        for a, b in shown:
            ra, rb = rps[a], rps[b]
            cells.append(_ratio(ra, rb) if ra is not None and rb is not None else "—")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
