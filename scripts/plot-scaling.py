#!/usr/bin/env python3
"""Draws the scaling curves (issue 16 point 3) from scripts/scaling.sh's scaling.jsonl as one
SVG of four log-log panels. Standard library only.

    python3 scripts/plot-scaling.py target/scaling/scaling.jsonl docs/scaling.svg
"""
import json
import math
import sys

W, H = 460, 300  # one panel
ML, MR, MT, MB = 70, 20, 40, 50
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def decades(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b += 1
    return a, b


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(ox, oy, title, xlabel, ylabel, series):
    """series: [(label, [(x, y)])], drawn on log x and log y axes."""
    out = [
        f'<g transform="translate({ox},{oy})">',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{esc(title)}</text>',
    ]
    pts = [p for _, s in series for p in s if p[0] > 0 and p[1] > 0]
    if not pts:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></g>')
        return out
    xa, xb = decades(min(p[0] for p in pts), max(p[0] for p in pts))
    ya, yb = decades(min(p[1] for p in pts), max(p[1] for p in pts))
    pw, ph = W - ML - MR, H - MT - MB

    def X(x):
        return ML + (math.log10(x) - xa) / (xb - xa) * pw

    def Y(y):
        return MT + ph - (math.log10(y) - ya) / (yb - ya) * ph

    out.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    for e in range(xa, xb + 1):
        x = X(10**e)
        out.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + ph}" stroke="#eee"/>')
        out.append(
            f'<text x="{x:.1f}" y="{MT + ph + 16}" text-anchor="middle" '
            f'font-size="11">{fmt(10**e)}</text>'
        )
    for e in range(ya, yb + 1):
        y = Y(10**e)
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{fmt(10**e)}</text>'
        )
    out.append(
        f'<text x="{ML + pw / 2}" y="{H - 12}" text-anchor="middle" '
        f'font-size="12">{esc(xlabel)}</text>'
    )
    out.append(
        f'<text transform="translate(16,{MT + ph / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="12">{esc(ylabel)}</text>'
    )
    for i, (label, s) in enumerate(series):
        s = sorted(p for p in s if p[0] > 0 and p[1] > 0)
        if not s:
            continue
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in s)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in s:
            out.append(
                f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{c}">'
                f"<title>{esc(label)}: {x:g} → {y:.4g}</title></circle>"
            )
        out.append(
            f'<text x="{ML + 8}" y="{MT + 16 + 15 * i}" font-size="11" '
            f'fill="{c}">{esc(label)}</text>'
        )
    out.append("</g>")
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = [json.loads(line) for line in open(src) if line.strip()]
    http = [r for r in rows if r["bench"] == "http_channels"]
    sla = [r for r in rows if r["bench"] == "sla_timers"]
    brokers = sorted({r.get("broker", "mock") for r in http})
    rate, cpu, rss = [], [], []
    for b in brokers:
        rs = [r for r in http if r.get("broker", "mock") == b]
        rate.append((f"petitiond ({b})", [(r["items"], r["rate"]) for r in rs]))
        rate.append((f"raw rdkafka ({b})", [(r["items"], r["raw_rate"]) for r in rs]))
        cpu.append((f"petitiond ({b})", [(r["items"], r["cpu_s_per_1000"]) for r in rs]))
        cpu.append((f"raw rdkafka ({b})", [(r["items"], r["raw_cpu_s_per_1000"]) for r in rs]))
        rss.append((f"HTTP drain ({b})", [(r["items"], r["peak_rss_mb"]) for r in rs]))
    rss.append(("SLA engine", [(r["open_clocks"], r["peak_rss_mb"]) for r in sla]))
    timers = [
        ("restart-to-ready (ms)", [(r["open_clocks"], r["ready_ms"]) for r in sla]),
        ("alert lateness max (ms)", [(r["open_clocks"], max(r["late_max_ms"], 1)) for r in sla]),
        ("alert lateness p99 (ms)", [(r["open_clocks"], max(r["late_p99_ms"], 1)) for r in sla]),
        ("1 s poller max (ms)", [(r["open_clocks"], max(r["poller_max_ms"], 1)) for r in sla]),
    ]
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{2 * H}" '
        f'font-family="sans-serif">',
        f'<rect width="{2 * W}" height="{2 * H}" fill="white"/>',
    ]
    svg += panel(0, 0, "Backlog drain rate", "items (both channels)", "items/s", rate)
    svg += panel(W, 0, "CPU per 1,000 items", "items (both channels)", "CPU s", cpu)
    svg += panel(0, H, "Peak RSS", "items / open clocks", "MB", rss)
    svg += panel(W, H, "SLA timers vs open clocks", "open clocks", "ms", timers)
    svg.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {dst}: {len(http)} drain runs, {len(sla)} timer runs")


if __name__ == "__main__":
    main()
