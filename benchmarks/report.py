"""Turn ``.work/results.json`` into ``RESULTS.md`` and ``ratios.png``.

``python report.py [results.json]`` redraws both from saved results without measuring.

Ratios: for a time-per-operation workload, the configuration's time divided by the time
of ``none`` in the same repetition (lower is better; 2.0x = twice as slow).  For a
throughput workload, the configuration's requests/s divided by those of ``none`` (higher
is better; 0.85 = 15 % fewer requests served).  The chart shows every ratio as a *cost*
(time ratio, or the inverse of the throughput ratio) so that higher is always worse.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (configuration, workload) -> (comparison, bound); ">=" bounds apply to throughput ratios.
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("off", "switch-d1"): ("~", 1.0),
    ("off", "net"): ("~", 1.0),
    ("slow", "switch-d1"): ("<=", 1.25),
    ("slow", "net"): (">=", 0.97),
    ("all-nolocals", "switch-d1"): ("<=", 2.5),
    ("all-nolocals", "net"): (">=", 0.85),
    ("all-safe", "switch-d1"): ("<=", 3.5),
    ("all-safe", "net"): (">=", 0.80),
    ("recorder-nolocals", "switch-d1"): ("<=", 1.3),
    ("recorder-nolocals", "net"): (">=", 0.95),
    ("recorder-safe", "switch-d1"): ("<=", 2.0),
    ("recorder-safe", "net"): (">=", 0.90),
}
NOISE = 0.03  # "within noise" for the installed-not-enabled target

PEER_CAPTURES = {
    "debug": "creation traceback of every task/future/handle; slow-callback warnings; "
    "no per-switch record",
    "setprofile": "the same fields as coroscope except enclosing blocks",
    "viztracer": "every call/return with timestamps, per task; no locals, no awaited object",
}


def summarize(data: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (python, workload, configuration): ratios to ``none`` and absolute medians."""
    throughput = {w["key"]: w["throughput"] for w in data["info"]["workloads"]}
    by_rep: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for run in data["runs"]:
        by_rep[(run["python"], run["workload"], run["rep"])][run["config"]] = run
    ratios: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    ratios2: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    absolute: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    errors: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (python, workload, _rep), configs in by_rep.items():
        base = configs.get("none")
        for config, run in configs.items():
            if "error" in run:
                errors[(python, workload, config)].append(run["error"])
                continue
            absolute[(python, workload, config)].append(run)
            if base is None or "error" in base or not base["metric"] or not run["metric"]:
                continue
            ratios[(python, workload, config)].append(run["metric"] / base["metric"])
            second, base2 = run.get("metric2"), base.get("metric2")
            if second and base2 and not math.isnan(second) and not math.isnan(base2):
                ratios2[(python, workload, config)].append(second / base2)
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key in set(absolute) | set(errors):
        values = ratios.get(key, [])
        runs = absolute.get(key, [])
        entry: dict[str, Any] = {
            "throughput": throughput[key[1]],
            "n": len(values),
            "errors": errors.get(key, []),
        }
        if values:
            entry["median"] = statistics.median(values)
            entry["min"] = min(values)
            entry["max"] = max(values)
        values2 = ratios2.get(key, [])
        if values2:
            entry["secondary"] = {
                "throughput": False,
                "median": statistics.median(values2),
                "min": min(values2),
                "max": max(values2),
            }
        if runs:
            entry["metric"] = statistics.median(r["metric"] for r in runs)
            for pct in ("p50_us", "p99_us"):
                found = [r[pct] for r in runs if pct in r and not math.isnan(r[pct])]
                if found:
                    entry[pct] = statistics.median(found)
            recorded = [r for r in runs if "records" in r]
            if recorded:
                records = sum(r["records"] for r in recorded)
                dropped = sum(r["dropped"] for r in recorded)
                entry["records"] = records / len(recorded)
                entry["dropped_pct"] = 100 * dropped / (records + dropped) if records else 0.0
        out[key] = entry
    return out


def _fmt_ratio(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if "median" not in entry:
        return "failed" if entry.get("errors") else "-"
    if entry["throughput"]:
        return f"{entry['median']:.2f} ({entry['min']:.2f}-{entry['max']:.2f})"
    return f"{entry['median']:.2f}x ({entry['min']:.2f}-{entry['max']:.2f})"


def _fmt_abs(entry: dict[str, Any] | None) -> str:
    if entry is None or "metric" not in entry:
        return "-"
    if entry["throughput"]:
        text = f"{entry['metric']:,.0f}/s"
        if "p50_us" in entry and "p99_us" in entry:
            text += f", p50 {entry['p50_us'] / 1e3:.2f} ms, p99 {entry['p99_us'] / 1e3:.2f} ms"
        return text
    return f"{entry['metric']:.2f} us CPU"


def _target_met(comparison: str, bound: float, entry: dict[str, Any]) -> bool:
    median = entry["median"]
    if comparison == "<=":
        return bool(median <= bound)
    if comparison == ">=":
        return bool(median >= bound)
    return bool(abs(median - bound) <= NOISE or entry["min"] <= bound <= entry["max"])


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _lever_notes(data: dict[str, Any], python: str) -> dict[str, str]:
    known = set(data["info"]["pythons"][python]["settings"])
    notes = {}
    for config in data["info"]["configurations"]:
        missing = [n for n in config["needs"] if n not in known]
        if missing:
            notes[config["key"]] = (
                f"{', '.join(missing)} not known to this coroscope build: "
                "it ran as 'all, safe locals'"
            )
    return notes


def write_chart(data: dict[str, Any], summary: dict[tuple[str, str, str], Any], path: Path) -> None:
    """A bar per (workload, configuration): median cost ratio, min-max whiskers, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pythons = list(data["info"]["pythons"])
    workloads = data["info"]["workloads"]
    configs = [c for c in data["info"]["configurations"] if c["key"] != "none"]
    fig, axes = plt.subplots(
        len(pythons), 1, figsize=(15, 5.2 * len(pythons)), squeeze=False, sharey=True
    )
    cmap = matplotlib.colormaps["tab10"]
    width = 0.85 / len(configs)
    for row, python in enumerate(pythons):
        ax = axes[row][0]
        for c_index, config in enumerate(configs):
            xs, ys, lows, highs = [], [], [], []
            for w_index, workload in enumerate(workloads):
                entry = summary.get((python, workload["key"], config["key"]))
                if entry is None or "median" not in entry:
                    continue
                invert = entry["throughput"]

                def cost(v: float, inv: bool = invert) -> float:
                    return 1 / v if inv else v

                median = cost(entry["median"])
                lo, hi = sorted((cost(entry["min"]), cost(entry["max"])))
                xs.append(w_index + (c_index - (len(configs) - 1) / 2) * width)
                ys.append(median)
                lows.append(median - lo)
                highs.append(hi - median)
            ax.bar(
                xs,
                [y - 1 for y in ys],  # from 1 (no cost), up for slower, down for faster
                width,
                bottom=1,
                yerr=[lows, highs],
                capsize=2,
                label=config["label"],
                color=cmap(c_index % 10),
                error_kw={"elinewidth": 0.8},
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels([w["label"] for w in workloads], fontsize=9)
        ax.set_ylabel("cost vs no monitoring (x, log)")
        version = data["info"]["pythons"][python]["version"]
        ax.set_title(
            f"Python {version}: median of interleaved repetitions, whiskers min-max "
            "(throughput workloads: inverse of the req/s ratio)",
            fontsize=10,
        )
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, ncol=4, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.08 / len(pythons), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(data: dict[str, Any], md_path: Path, png_path: Path) -> None:
    """Write RESULTS.md (tables) and the chart."""
    summary = summarize(data)
    info = data["info"]
    m = info["machine"]
    workloads = info["workloads"]
    configs = info["configurations"]
    profile = info["profile"]
    lines = [
        "# coroscope benchmark results",
        "",
        "Generated by `benchmarks/run`"
        + (" --quick" if profile["name"] == "quick" else "")
        + "; method and configurations in [README.md](README.md).  Do not edit by hand.",
        "",
        f"- Date: {info['date']}; total run time {info['runtime_s']:.0f} s",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"{m['system']} {m['kernel']}; load average before/after "
        f"{m['load_before'][0]:.2f} / {m['load_after'][0]:.2f}",
        "- Pythons: "
        + ", ".join(
            f"{p['version']} ({', '.join(f'{k} {v}' for k, v in sorted(p['packages'].items()))})"
            for p in info["pythons"].values()
        ),
        f"- coroscope commit: {m['commit'] or 'unknown'}",
        f"- {profile['reps']} repetitions, interleaved; task-switch and queue workloads "
        f"{profile['switch_duration']} s timed (+{profile['switch_warmup']} s warm-up) per "
        f"measurement; network {profile['net_duration']} s (+{profile['net_warmup']} s).",
        "",
        "Cells: median ratio to *no monitoring* measured in the same repetition, "
        "(min-max over repetitions).  Task switches and queue: CPU time of the process "
        "(all threads, so the writer thread counts) per operation, lower is better.  "
        "Network: requests/s measured by the load client, higher is better.  "
        "*Installed, not enabled* runs the same code as *no monitoring* once started: its "
        "spread shows the noise of this run.",
        "",
        "![ratios](ratios.png)",
        "",
    ]
    for python, pinfo in info["pythons"].items():
        notes = _lever_notes(data, python)
        lines += [f"## Python {pinfo['version']}", ""]
        header = ["configuration", *[w["label"] for w in workloads]]
        rows = []
        for config in configs:
            if config["key"] == "none":
                continue
            label = config["label"] + (" (1)" if config["key"] in notes else "")
            rows.append(
                [label]
                + [_fmt_ratio(summary.get((python, w["key"], config["key"]))) for w in workloads]
            )
        lines += _table(header, rows)
        if notes:
            lines += [""] + [f"(1) {note}" for note in sorted(set(notes.values()))]
        lines += [
            "",
            "Second view, less disturbed by other load for the network service and more by it "
            "for the others: wall-clock time per operation (task switches, queue) and the "
            "server's CPU time per request (network), as ratios (lower is better):",
            "",
        ]
        rows = []
        for config in configs:
            if config["key"] == "none":
                continue
            cells = []
            for w in workloads:
                entry = summary.get((python, w["key"], config["key"]))
                cells.append(_fmt_ratio(entry.get("secondary") if entry else None))
            rows.append([config["label"], *cells])
        lines += _table(header, rows)
        lines += ["", "Absolute medians (network: requests/s and client-side latency):", ""]
        rows = [
            [config["label"]]
            + [_fmt_abs(summary.get((python, w["key"], config["key"]))) for w in workloads]
            for config in configs
        ]
        lines += _table(header, rows)
        lines += [
            "",
            "Records written per measurement (median) and share dropped (buffer full):",
            "",
        ]
        rows = []
        for config in configs:
            cells = []
            for w in workloads:
                entry = summary.get((python, w["key"], config["key"]))
                if entry is None or "records" not in entry:
                    cells.append("-")
                else:
                    cells.append(f"{entry['records']:,.0f}, {entry['dropped_pct']:.1f} % dropped")
            if any(c != "-" for c in cells):
                rows.append([config["label"], *cells])
        lines += _table(header, rows)
        failures = [
            (key, entry["errors"][0])
            for key, entry in sorted(summary.items())
            if key[0] == python and entry["errors"]
        ]
        if failures:
            lines += ["", "Failed measurements (first error of each):", ""]
            lines += [f"- {w} / {c}: `{err[:300]}`" for (_p, w, c), err in failures]
        lines += [""]

    lines += ["## Targets", ""]
    header = ["Python", "configuration", "workload", "target", "measured", "met", "second view"]
    rows = []
    for python, pinfo in info["pythons"].items():
        for (config, workload), (comparison, bound) in TARGETS.items():
            entry = summary.get((python, workload, config))
            if entry is None or "median" not in entry:
                continue
            target = (
                f"{bound:.2f} (within noise)" if comparison == "~" else f"{comparison} {bound:g}"
            )
            if not entry["throughput"] and comparison != "~":
                target += "x"
            met = "yes" if _target_met(comparison, bound, entry) else "**no**"
            label = next(c["label"] for c in configs if c["key"] == config)
            wlabel = next(w["label"] for w in workloads if w["key"] == workload)
            second = _fmt_ratio(entry.get("secondary"))
            second += " server CPU/request" if entry["throughput"] else " wall-clock"
            rows.append([pinfo["version"], label, wlabel, target, _fmt_ratio(entry), met, second])
        own = summary.get((python, "switch-d1", "all-safe"))
        peer = summary.get((python, "switch-d1", "setprofile"))
        if own and peer and "median" in own and "median" in peer:
            rows.append(
                [
                    pinfo["version"],
                    "all, safe locals vs setprofile peer (same fields)",
                    "task switches, depth 1",
                    "faster than the peer",
                    f"{own['median']:.2f}x vs {peer['median']:.2f}x",
                    "yes" if own["median"] < peer["median"] else "**no**",
                    "",
                ]
            )
    lines += _table(header, rows)
    lines += [
        "",
        "Peers that capture at least as much as coroscope's *all, safe locals*: only the "
        "setprofile logger (it omits the enclosing blocks).  The others capture different "
        "things:",
        "",
    ]
    lines += [f"- {key}: {text}" for key, text in PEER_CAPTURES.items()]
    lines += [""]

    lines += ["## Writer, memory, start-up", ""]
    for python, extras in data["extras"].items():
        version = info["pythons"][python]["version"]
        lines += [f"### Python {version}", ""]
        writer = extras.get("writer", {})
        if "error" in writer:
            lines += [f"- Writer throughput: failed (`{writer['error'][:300]}`)"]
        else:
            for depth in ("depth1", "depth5"):
                w = writer.get(depth)
                if w:
                    lines.append(
                        f"- Writer throughput, {depth[:5]} {depth[5:]} records with safe locals: "
                        f"{w['records_per_s']:,.0f} records per CPU second "
                        f"({w['us_per_record']:.1f} us per record, {w['bytes_per_record']:.0f} "
                        "bytes each), rendered and appended to a file."
                    )
        cap = extras.get("capture", {})
        if "error" in cap:
            lines.append(f"- Capture alone: failed (`{cap['error'][:300]}`)")
        elif cap:
            parts = [
                f"depth {depth[5:]}: locals off {c['locals_off']:.2f}x, "
                f"safe locals {c['locals_safe']:.2f}x"
                for depth, c in cap.items()
                if depth.startswith("depth")
            ]
            lines.append(
                "- Capture alone (writer held by a stalled sink, 'all' mode), time per switch "
                "vs unmonitored in the same process: " + "; ".join(parts) + ".  The rest of "
                "the 'all' ratios above is the writer thread's rendering and writing."
            )
        for name in ("stalled", "stalled-8192"):
            s = extras.get(name, {})
            if "error" in s:
                lines.append(f"- Stalled sink ({name}): failed (`{s['error'][:300]}`)")
            elif s:
                lines.append(
                    f"- Stalled sink, buffer {s['capacity']:,} records: RSS +"
                    f"{s['growth_short_mib']:.1f} MiB after {s['short_s']:g} s, "
                    f"+{s['growth_long_mib']:.1f} MiB after {s['long_s']:g} s "
                    f"({s['buffered']:,} records held, {s['dropped']:,} dropped)."
                )
        big, small = extras.get("stalled", {}), extras.get("stalled-8192", {})
        if "growth_long_mib" in big and "growth_long_mib" in small:
            held = big["buffered"] - small["buffered"]
            if held > 0:
                per = (big["growth_long_mib"] - small["growth_long_mib"]) * 2**20 / held
                lines.append(
                    f"- Memory per held depth-5 record with safe locals (difference of the two "
                    f"runs above): ~{per / 1024:.1f} KiB.  The growth shared by both runs is "
                    "not the buffer's (allocator, per-task state, the first rendered batch)."
                )
        st = extras.get("startup", {})
        if st and "deltas_ms" in st:
            med = st["median_ms"]
            for prog, label in (
                ("pass", "python -c pass"),
                ("asyncio", 'python -c "import asyncio"'),
            ):
                d = st["deltas_ms"][prog]
                lines.append(
                    f"- Start-up (`{label}`, interleaved medians of {st['runs']}): no "
                    f"coroscope {med[f'bare/{prog}']:.1f} ms, installed not enabled "
                    f"{med[f'installed/{prog}']:.1f} ms ({d['installed_minus_bare']:+.2f} ms), "
                    f"`COROSCOPE=1` {med[f'enabled/{prog}']:.1f} ms "
                    f"({d['enabled_minus_installed']:+.2f} ms over installed)."
                )
            lines.append(
                f"- The `.pth` line itself costs {st['pth_line_us']:.2f} us when not enabled."
            )
        lines.append("")
    md_path.write_text("\n".join(lines))
    write_chart(data, summary, png_path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else HERE / ".work" / "results.json"
    data = json.loads(source.read_text())
    write_report(data, HERE / "RESULTS.md", HERE / "ratios.png")
    print(f"wrote {HERE / 'RESULTS.md'} and {HERE / 'ratios.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
