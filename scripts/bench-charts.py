#!/usr/bin/env python3
"""Draws the benchmark charts from the figures of one run of scripts/bench-report.sh (Python 3 standard library only).

Reads the FIGURE lines (written by the loadgen example and scripts/memory-10k.sh, collected by bench-report.sh)
and the RUN line of bench/results/figures.txt, writes three SVG charts and prints a plain-text summary:
  cpu-per-call.svg   CPU per call, closed loop: echo floor, bare reqwest POST (loadgen's own CPU per call in the
                     direct scenario), their sum, the 1.2 x target line, and the gateway
  latency.svg        p50 / p90 / p99 / p99.9, open loop: direct vs gateway vs echo floor
  memory.svg         gateway RSS against calls held in flight, one line per upstream protocol, the target lines

Usage: scripts/bench-charts.py [--figures bench/results/figures.txt] [--out bench/charts]
       scripts/bench-charts.py --self-test   (renders a built-in sample into a temporary directory and checks it)
The same figures give byte-identical SVGs. A chart whose figures are missing is not written (a warning says so).
"""

import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_TARGET_FACTOR = 1.2  # gateway CPU per call <= 1.2 x (echo floor + bare reqwest POST)
ADDED_LATENCY_TARGETS_US = {"p50": 150, "p99": 500}  # added over direct at a quarter of saturation, open loop
MEMORY_TARGETS_MIB = (150, 80)  # the target lines of the memory chart: HTTP/1.1, h2c (10,000 calls in flight)
MEMORY_TARGET_OF = {"http1": 150, "h2c": 80}
PERCENTILES = (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
SCENARIOS = (("direct", "direct (REST to the upstream)"), ("gateway", "kgen-gateway"), ("echo", "echo floor"))
PROTOCOLS = (("http1", "upstream over HTTP/1.1"), ("h2c", "upstream over h2c"))
COLOURS = {
    "direct": "#4c72b0", "gateway": "#dd8452", "echo": "#55a868", "http1": "#4c72b0", "h2c": "#dd8452",
    "floor": "#8da0cb", "sum": "#b8b8b8", "within": "#1b9e77", "over": "#d95f02", "target": "#c44e52",
    "target2": "#8172b3", "grid": "#e3e3e3", "axis": "#444444", "text": "#222222", "muted": "#666666",
}
FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif"


# ---- reading the figures -------------------------------------------------------------------------------------------

def parse(text):
    """FIGURE and RUN lines -> {"run": {...}, "closed": {scenario: {...}}, "open": {...}, "memory": [{...}]}."""
    figures = {"run": {}, "closed": {}, "open": {}, "memory": []}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] not in ("FIGURE", "RUN"):
            continue
        fields = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        if words[0] == "RUN":
            figures["run"].update(fields)
        elif fields.get("scenario") == "memory":
            figures["memory"].append(fields)
        elif fields.get("mode") in ("closed", "open"):
            figures[fields["mode"]][fields.get("scenario", "?")] = fields
    return figures


def number(fields, key):
    """A field as a float, or None when it is missing or not a number."""
    try:
        return float(fields[key])
    except (KeyError, TypeError, ValueError):
        return None


# ---- SVG helpers ---------------------------------------------------------------------------------------------------

def fmt(value, decimals=0):
    return f"{value:,.{decimals}f}"


def nice_ticks(top, count=5):
    """Ticks from 0 to at least `top`, at a step of 1, 2, 2.5 or 5 x 10^k."""
    top = max(top, 1e-9)
    raw = top / count
    magnitude = 1.0
    while magnitude * 10 <= raw:
        magnitude *= 10
    while magnitude > raw:
        magnitude /= 10
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [], 0.0
    while value < top - 1e-9 * step:
        ticks.append(value)
        value = round(value + step, 10)
    ticks.append(value)
    return ticks


def tick_label(value):
    return fmt(value, 0) if value == int(value) else fmt(value, 1)


class Svg:
    def __init__(self, width, height, title, subtitles, name):
        """subtitles: the lines under the title; the body (drawn from y = 0 as if there were one) moves down for more."""
        shift = 16 * max(len(subtitles) - 1, 0)
        height += shift
        self.width, self.height = width, height
        self.parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
            f' font-family={quoteattr(FONT)} font-size="12" fill="{COLOURS["text"]}" data-chart="{name}">',
            f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        ]
        self.text(20, 28, title, size=17, weight="bold")
        for n, line in enumerate(subtitles):
            self.text(20, 48 + 16 * n, line, size=12, fill=COLOURS["muted"])
        self.add(f'<g transform="translate(0 {shift})">')

    def add(self, element):
        self.parts.append(element)

    def text(self, x, y, content, size=12, anchor="start", weight=None, fill=None, rotate=None, halo=False):
        attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        if fill:
            attrs += f' fill="{fill}"'
        if rotate is not None:
            attrs += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
        if halo:  # a white outline under the letters keeps a label readable where it crosses a line
            attrs += ' stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'
        self.add(f"<text {attrs}>{escape(content)}</text>")

    def line(self, x1, y1, x2, y2, stroke, width=1, dash=None, cls=None):
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        extra += f' class="{cls}"' if cls else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"'
                 f' stroke-width="{width}"{extra}/>')

    def rect(self, x, y, w, h, fill, cls=None, label=None):
        extra = f' class="{cls}"' if cls else ""
        extra += f" data-label={quoteattr(label)}" if label else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}"{extra}/>')

    def legend(self, x, y, items):
        """items: (kind, colour, label), kind "box", "line", "dash" or "marker"; laid out left to right."""
        for kind, colour, label in items:
            if kind == "box":
                self.rect(x, y - 9, 12, 12, colour)
            elif kind == "marker":
                self.line(x - 2, y - 3, x + 14, y - 3, colour, 2)
                self.add(f'<circle cx="{x + 6:.1f}" cy="{y - 3:.1f}" r="3.5" fill="{colour}"/>')
            else:
                self.line(x - 2, y - 3, x + 14, y - 3, colour, 2, "6 4" if kind == "dash" else None)
            self.text(x + 18, y + 1, label, size=12)
            x += 18 + 6.6 * len(label) + 22

    def render(self):
        return "\n".join(self.parts + ["</g>", "</svg>"]) + "\n"


def subtitle_of(run, what):
    """What the chart shows, then a line saying which run it comes from."""
    bits = []
    if run.get("date"):
        bits.append("run of " + run["date"].replace("T", " ").replace("Z", " UTC"))
    if run.get("commit"):
        bits.append(f"commit {run['commit']}" + (" + uncommitted changes" if run.get("dirty", "0") != "0" else ""))
    if run.get("cpus"):
        bits.append(f"{run['cpus']} CPUs")
    if run.get("quick") == "1":
        bits.append("QUICK SMOKE RUN, not for comparison")
    return [what, " · ".join(bits)] if bits else [what]


# ---- the charts ----------------------------------------------------------------------------------------------------

def cpu_values(figures):
    closed = figures["closed"]
    echo = number(closed.get("echo", {}), "cpu_us_per_call.echo")
    reqwest = number(closed.get("direct", {}), "cpu_us_per_call.loadgen")
    gateway = number(closed.get("gateway", {}), "cpu_us_per_call.gateway")
    if None in (echo, reqwest, gateway) or echo + reqwest <= 0:
        return None
    return echo, reqwest, gateway


def cpu_chart(figures):
    values = cpu_values(figures)
    if values is None:
        return None
    echo, reqwest, gateway = values
    floors = echo + reqwest
    target = CPU_TARGET_FACTOR * floors
    met = gateway <= target
    gw = figures["closed"]["gateway"]
    what = "closed loop"
    if gw.get("concurrency"):
        what += f", concurrency {gw['concurrency']}"
    if figures["run"].get("duration_s"):
        what += f", {figures['run']['duration_s']} s per scenario"
    svg = Svg(800, 330, "CPU per call by scenario (lower is better)", subtitle_of(figures["run"], what), "cpu-per-call")
    rows = [
        ("echo floor (tonic + prost alone)", echo, COLOURS["floor"], "echo"),
        ("bare reqwest POST (loadgen, direct)", reqwest, COLOURS["floor"], "reqwest"),
        ("echo floor + bare reqwest POST", floors, COLOURS["sum"], "sum"),
        ("kgen-gateway", gateway, COLOURS["within" if met else "over"], "gateway"),
    ]
    x0, x1, top, row = 270.0, 610.0, 88.0, 40.0
    ticks = nice_ticks(max(gateway, target) * 1.08)
    scale = (x1 - x0) / ticks[-1]
    bottom = top + row * len(rows)
    for tick in ticks:
        x = x0 + tick * scale
        svg.line(x, top - 6, x, bottom, COLOURS["grid"])
        svg.text(x, bottom + 16, tick_label(tick), size=11, anchor="middle", fill=COLOURS["muted"])
    svg.line(x0, top - 6, x0, bottom, COLOURS["axis"])
    svg.line(x0, bottom, x1, bottom, COLOURS["axis"])
    svg.text((x0 + x1) / 2, bottom + 34, "CPU time per call (µs), from /proc/PID/stat", anchor="middle")
    tx = x0 + target * scale
    svg.add('<g class="target" data-series="target">')
    svg.line(tx, top - 14, tx, bottom, COLOURS["target"], 2, "6 4")
    svg.text(tx, top - 18, f"target {CPU_TARGET_FACTOR} × sum = {fmt(target, 1)} µs", size=11, anchor="middle",
             fill=COLOURS["target"])
    svg.add("</g>")
    for i, (label, value, colour, key) in enumerate(rows):
        y = top + i * row + 7
        svg.text(x0 - 10, y + 17, label, anchor="end", weight="bold" if key == "gateway" else None)
        svg.add(f'<g class="series" data-series="{key}">')
        svg.rect(x0, y, value * scale, 26, colour, cls="bar", label=f"{value:.1f}")
        note = f"{fmt(value, 1)} µs"
        if key == "gateway":
            note += f" = {value / floors:.2f}× the sum"
        svg.text(x0 + value * scale + 6, y + 17, note, size=12, weight="bold" if key == "gateway" else None,
                 halo=True)
        svg.add("</g>")
    svg.legend(x0 - 250, 316, [
        ("box", COLOURS["floor"], "floor"),
        ("box", COLOURS["sum"], "sum of the floors"),
        ("box", COLOURS["within" if met else "over"], "gateway (target " + ("met" if met else "missed") + ")"),
        ("dash", COLOURS["target"], f"target: {CPU_TARGET_FACTOR} × sum"),
    ])
    return svg.render()


def latency_chart(figures):
    runs = [(key, label, figures["open"][key]) for key, label in SCENARIOS if key in figures["open"]]
    if not runs:
        return None
    rate = next((r[2].get("rate") for r in runs if r[2].get("rate")), None)
    what = "open loop" + (f" at {fmt(float(rate))} calls/s" if rate else "")
    if figures["run"].get("open_rate_from") == "quarter":
        what += " (¼ of the gateway's closed-loop calls/s)"
    what += "; from each call's scheduled start"
    svg = Svg(780, 440, "Latency percentiles: direct vs gateway vs echo floor (lower is better)",
              subtitle_of(figures["run"], what), "latency")
    x0, x1, top, bottom = 80.0, 760.0, 86.0, 350.0
    values = [number(fields, key) or 0.0 for _, _, fields in runs for _, key in PERCENTILES]
    ticks = nice_ticks(max(values) * 1.1)
    scale = (bottom - top) / ticks[-1]
    for tick in ticks:
        y = bottom - tick * scale
        svg.line(x0, y, x1, y, COLOURS["grid"])
        svg.text(x0 - 8, y + 4, tick_label(tick), size=11, anchor="end", fill=COLOURS["muted"])
    svg.line(x0, top, x0, bottom, COLOURS["axis"])
    svg.line(x0, bottom, x1, bottom, COLOURS["axis"])
    svg.text(22, (top + bottom) / 2, "latency (µs)", anchor="middle", rotate=-90)
    group = (x1 - x0) / len(PERCENTILES)
    bar = min(48.0, (group - 40) / len(runs))
    by_scenario = {key: fields for key, _, fields in runs}
    for g, (pname, pkey) in enumerate(PERCENTILES):
        centre = x0 + group * (g + 0.5)
        svg.text(centre, bottom + 20, pname, size=13, anchor="middle", weight="bold")
        gw, direct = number(by_scenario.get("gateway", {}), pkey), number(by_scenario.get("direct", {}), pkey)
        if gw is not None and direct is not None:
            svg.text(centre, bottom + 37, f"gateway − direct: {gw - direct:+,.0f} µs", size=11, anchor="middle",
                     fill=COLOURS["muted"])
    for s, (key, label, fields) in enumerate(runs):
        svg.add(f'<g class="series" data-series="{key}">')
        for g, (_, pkey) in enumerate(PERCENTILES):
            value = number(fields, pkey) or 0.0
            x = x0 + group * g + (group - bar * len(runs)) / 2 + s * bar
            svg.rect(x + 2, bottom - value * scale, bar - 4, value * scale, COLOURS[key], cls="bar",
                     label=f"{value:.0f}")
            svg.text(x + bar / 2, bottom - value * scale - 5, fmt(value), size=10, anchor="middle", halo=True)
        svg.add("</g>")
    errors = [f"{label}: {fields.get('errors')} errors" for key, label, fields in runs if fields.get("errors", "0") != "0"]
    legend = [("box", COLOURS[key], label) for key, label, _ in runs]
    svg.legend(x0, 422, legend)
    if errors:
        svg.text(x1, 422, "; ".join(errors), size=11, anchor="end", fill=COLOURS["target"])
    return svg.render()


def memory_series(figures):
    series = {}
    for fields in figures["memory"]:
        calls, idle, peak = number(fields, "calls"), number(fields, "rss_idle_kib"), number(fields, "rss_peak_kib")
        if None in (calls, idle, peak):
            continue
        series.setdefault(fields.get("upstream", "?"), {})[int(calls)] = (idle, peak, number(fields, "grpc_ok"))
    return {key: dict(sorted(points.items())) for key, points in series.items()}


def memory_chart(figures):
    series = memory_series(figures)
    if not series:
        return None
    hold = next((f.get("hold_ms") for f in figures["memory"] if f.get("hold_ms")), None)
    what = "each call held" + (f" {float(hold) / 1000:g} s" if hold else "") + " by the upstream; RSS from /proc"
    svg = Svg(780, 440, "Gateway memory against calls in flight (peak RSS)", subtitle_of(figures["run"], what),
              "memory")
    x0, x1, top, bottom = 80.0, 640.0, 86.0, 360.0
    max_calls = max(c for points in series.values() for c in points)
    peaks = [p[1] / 1024 for points in series.values() for p in points.values()]
    xticks = nice_ticks(max_calls)
    yticks = nice_ticks(max(peaks + list(MEMORY_TARGETS_MIB)) * 1.1)
    xs, ys = (x1 - x0) / xticks[-1], (bottom - top) / yticks[-1]
    for tick in yticks:
        y = bottom - tick * ys
        svg.line(x0, y, x1, y, COLOURS["grid"])
        svg.text(x0 - 8, y + 4, tick_label(tick), size=11, anchor="end", fill=COLOURS["muted"])
    for tick in xticks:
        x = x0 + tick * xs
        svg.line(x, top, x, bottom, COLOURS["grid"])
        svg.text(x, bottom + 17, tick_label(tick), size=11, anchor="middle", fill=COLOURS["muted"])
    svg.line(x0, top, x0, bottom, COLOURS["axis"])
    svg.line(x0, bottom, x1, bottom, COLOURS["axis"])
    svg.text(22, (top + bottom) / 2, "gateway RSS (MiB)", anchor="middle", rotate=-90)
    svg.text((x0 + x1) / 2, bottom + 36, "calls in flight (0 = idle, before the calls)", anchor="middle")
    for target, colour in zip(MEMORY_TARGETS_MIB, (COLOURS["target"], COLOURS["target2"])):
        y = bottom - target * ys
        svg.add(f'<g class="target" data-series="target-{target}">')
        svg.line(x0, y, x1, y, colour, 2, "6 4")
        whose = {150: "HTTP/1.1", 80: "h2c"}.get(target, "")
        svg.text(x1 + 6, y + 4, f"{whose} target {target} MiB".strip(), size=11, fill=colour, halo=True)
        svg.add("</g>")
    legend, any_shed = [], False
    labels = dict(PROTOCOLS)
    order = [key for key, _ in PROTOCOLS if key in series] + sorted(k for k in series if k not in labels)
    for n, key in enumerate(order):
        points = series[key]
        colour = COLOURS.get(key, COLOURS["muted"])
        idles = sorted(p[0] for p in points.values())
        coords = [(0, idles[len(idles) // 2] / 1024, None, None)]
        coords += [(calls, peak / 1024, ok, calls) for calls, (_, peak, ok) in points.items()]
        path = " ".join(f"{x0 + c * xs:.1f},{bottom - m * ys:.1f}" for c, m, _, _ in coords)
        svg.add(f'<g class="series" data-series="{key}">')
        svg.add(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        for c, mib, ok, calls in coords:
            x, y = x0 + c * xs, bottom - mib * ys
            shed = ok is not None and calls is not None and ok < calls
            any_shed |= shed
            fill = "#ffffff" if shed else colour
            svg.add(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="{colour}"'
                    f' stroke-width="2" data-label="{mib:.1f}"/>')
            if c == 0:
                continue  # the idle RSS is in the legend: the two series' idle points nearly coincide
            note = f"{mib:,.0f}"
            if shed:
                note += f" ({calls - ok:,.0f} not OK)"
            svg.text(x + 8, y + (-8 if n == 0 else 16), note, size=11, fill=colour, halo=True)
        svg.add("</g>")
        legend.append(("marker", colour, f"{labels.get(key, key)} (idle {coords[0][1]:.1f} MiB)"))
    svg.legend(x0, 428, legend)
    if any_shed:
        svg.text(x1 + 120, 428, "hollow: not every call answered OK", size=11, anchor="end", fill=COLOURS["muted"])
    return svg.render()


# ---- the summary ---------------------------------------------------------------------------------------------------

def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def cpu_cells(fields):
    return ", ".join(f"{k.split('.', 1)[1]} {float(v):.1f}" for k, v in fields.items() if k.startswith("cpu_us_per_call."))


def summary(figures):
    out = []
    run = figures["run"]
    if run:
        out.append("run: " + " ".join(f"{k}={v}" for k, v in run.items()))
    for mode, heading in (("closed", "closed loop (CPU per call)"), ("open", "open loop (latency)")):
        runs = [(key, figures[mode][key]) for key, _ in SCENARIOS if key in figures[mode]]
        if not runs:
            continue
        first = runs[0][1]
        detail = f"concurrency {first.get('concurrency')}" if mode == "closed" else f"{first.get('rate')} calls/s"
        out.append(f"{heading}, {detail}:")
        rows = [("scenario", "calls/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "errors", "CPU µs per call")]
        for key, f in runs:
            rows.append((key, fmt(number(f, "calls_per_s") or 0), fmt(number(f, "p50_us") or 0),
                         fmt(number(f, "p90_us") or 0), fmt(number(f, "p99_us") or 0),
                         fmt(number(f, "p999_us") or 0), f.get("errors", "?"), cpu_cells(f)))
        out += table(rows)
        if mode == "closed" and cpu_values(figures):
            echo, reqwest, gateway = cpu_values(figures)
            target = CPU_TARGET_FACTOR * (echo + reqwest)
            out.append(f"  target: gateway ≤ {CPU_TARGET_FACTOR} × (echo {echo:.1f} + reqwest {reqwest:.1f}) = "
                       f"{target:.1f} µs; measured {gateway:.1f} µs ({gateway / (echo + reqwest):.2f}× the sum): "
                       + ("met" if gateway <= target else "missed"))
        if mode == "open" and "gateway" in figures["open"] and "direct" in figures["open"]:
            gw, direct = figures["open"]["gateway"], figures["open"]["direct"]
            added = []
            for name, limit in ADDED_LATENCY_TARGETS_US.items():
                a, b = number(gw, f"{name}_us"), number(direct, f"{name}_us")
                if a is not None and b is not None:
                    added.append(f"{name} {a - b:+,.0f} µs (target ≤ {limit}: {'met' if a - b <= limit else 'missed'})")
            out.append("  added by the gateway over direct: " + ", ".join(added))
    series = memory_series(figures)
    if series:
        out.append("memory (gateway RSS with calls held in flight):")
        rows = [("upstream", "calls", "idle MiB", "peak MiB", "per call KB", "answered OK")]
        for key in sorted(series, key=lambda k: ([p for p, _ in PROTOCOLS] + [k]).index(k)):
            for calls, (idle, peak, ok) in series[key].items():
                rows.append((key, fmt(calls), f"{idle / 1024:.1f}", f"{peak / 1024:.1f}",
                             f"{(peak - idle) * 1.024 / calls:.1f}", "?" if ok is None else fmt(ok)))
        out += table(rows)
        for key, limit in MEMORY_TARGET_OF.items():
            at_10k = series.get(key, {}).get(10000)
            if at_10k:
                peak_mib = at_10k[1] / 1024
                out.append(f"  {key} at 10,000 calls: {peak_mib:.1f} MiB (target ≤ {limit} MiB: "
                           f"{'met' if peak_mib <= limit else 'missed'})")
    return "\n".join(out)


# ---- entry points --------------------------------------------------------------------------------------------------

CHARTS = (("cpu-per-call.svg", cpu_chart), ("latency.svg", latency_chart), ("memory.svg", memory_chart))


def render(figures, out_dir):
    """Writes the charts whose figures are there; returns the names written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, draw in CHARTS:
        svg = draw(figures)
        if svg is None:
            print(f"bench-charts: no figures for {name}; not written", file=sys.stderr)
            continue
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(svg)
        written.append(name)
    return written


SAMPLE = """\
RUN date=2026-11-24T21:00Z commit=0000000 dirty=0 cpus=2 quick=0 duration_s=10 concurrency=64 hold_ms=15000
FIGURE scenario=direct mode=closed concurrency=64 rate=0 connections=4 calls=547840 ok=547840 errors=0 not_sent=0 calls_per_s=54784 p50_us=1096 p90_us=1500 p99_us=2040 p999_us=5195 max_us=9000 cpu_us_per_call.upstream=17.2 cpu_us_per_call.loadgen=18.0
FIGURE scenario=gateway mode=closed concurrency=64 rate=0 connections=4 calls=173020 ok=173020 errors=0 not_sent=0 calls_per_s=17302 p50_us=3517 p90_us=5000 p99_us=8583 p999_us=11551 max_us=20000 cpu_us_per_call.gateway=56.8 cpu_us_per_call.upstream=21.8 cpu_us_per_call.loadgen=26.6
FIGURE scenario=echo mode=closed concurrency=64 rate=0 connections=4 calls=626400 ok=626400 errors=0 not_sent=0 calls_per_s=62640 p50_us=1002 p90_us=1400 p99_us=2001 p999_us=4943 max_us=8000 cpu_us_per_call.echo=14.5 cpu_us_per_call.loadgen=15.7
FIGURE scenario=direct mode=open concurrency=64 rate=4300 connections=4 calls=43000 ok=43000 errors=0 not_sent=0 calls_per_s=4300 p50_us=1337 p90_us=1900 p99_us=2597 p999_us=4100 max_us=7000 cpu_us_per_call.upstream=30.1 cpu_us_per_call.loadgen=33.0
FIGURE scenario=gateway mode=open concurrency=64 rate=4300 connections=4 calls=43000 ok=43000 errors=0 not_sent=0 calls_per_s=4300 p50_us=1627 p90_us=2400 p99_us=5551 p999_us=8200 max_us=12000 cpu_us_per_call.gateway=99.0 cpu_us_per_call.upstream=33.2 cpu_us_per_call.loadgen=41.0
FIGURE scenario=echo mode=open concurrency=64 rate=4300 connections=4 calls=43000 ok=43000 errors=0 not_sent=0 calls_per_s=4300 p50_us=1359 p90_us=1950 p99_us=2661 p999_us=4300 max_us=6500 cpu_us_per_call.echo=38.0 cpu_us_per_call.loadgen=30.0
FIGURE scenario=memory calls=1000 upstream=http1 hold_ms=15000 rss_idle_kib=9112 rss_peak_kib=43000 rss_after_kib=40000 fds_peak=1023 grpc_ok=1000
FIGURE scenario=memory calls=10000 upstream=http1 hold_ms=15000 rss_idle_kib=9112 rss_peak_kib=349292 rss_after_kib=347000 fds_peak=10023 grpc_ok=10000
FIGURE scenario=memory calls=1000 upstream=h2c hold_ms=15000 rss_idle_kib=8968 rss_peak_kib=30000 rss_after_kib=29000 fds_peak=24 grpc_ok=1000
FIGURE scenario=memory calls=10000 upstream=h2c hold_ms=15000 rss_idle_kib=8968 rss_peak_kib=219600 rss_after_kib=210000 fds_peak=24 grpc_ok=9990
"""


def self_test():
    """Renders SAMPLE twice and checks the SVGs: well-formed XML, the expected series, identical bytes."""
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    figures = parse(SAMPLE)
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        written = render(figures, first)
        render(parse(SAMPLE), second)
        check(written == [name for name, _ in CHARTS], f"charts written: {written}")
        expected = {
            "cpu-per-call.svg": {"echo": 1, "reqwest": 1, "sum": 1, "gateway": 1, "target": 0},
            "latency.svg": {"direct": 4, "gateway": 4, "echo": 4},
            "memory.svg": {"http1": 3, "h2c": 3, "target-150": 0, "target-80": 0},
        }
        for name in written:
            with open(os.path.join(first, name), "rb") as f:
                data = f.read()
            with open(os.path.join(second, name), "rb") as f:
                check(f.read() == data, f"{name}: not the same bytes for the same figures")
            try:
                tree = ET.fromstring(data)
            except ET.ParseError as e:
                check(False, f"{name}: not well-formed XML: {e}")
                continue
            ns = "{http://www.w3.org/2000/svg}"
            check(tree.tag == f"{ns}svg", f"{name}: root is {tree.tag}")
            check(tree.find(f"{ns}title") is not None, f"{name}: no <title>")
            groups = {g.get("data-series"): g for g in tree.iter(f"{ns}g") if g.get("data-series")}
            for series, marks in expected[name].items():
                group = groups.get(series)
                check(group is not None, f"{name}: no series {series}")
                if group is None:
                    continue
                found = len(group.findall(f"{ns}rect[@class='bar']")) + len(group.findall(f"{ns}circle[@class='point']"))
                check(found == marks, f"{name}: series {series} has {found} bars or points, expected {marks}")
            check(not any(el.tag in (f"{ns}script", f"{ns}image", f"{ns}foreignObject") for el in tree.iter()),
                  f"{name}: scripts, images or foreign objects")
        cpu = ET.fromstring(open(os.path.join(first, "cpu-per-call.svg"), "rb").read())
        labels = {r.get("data-label") for r in cpu.iter("{http://www.w3.org/2000/svg}rect") if r.get("data-label")}
        check(labels == {"14.5", "18.0", "32.5", "56.8"}, f"cpu-per-call.svg: bar values {sorted(labels)}")
    text = summary(figures)
    for needle in ("= 39.0 µs; measured 56.8 µs", "p50 +290 µs", "h2c", "missed"):
        check(needle in text, f"summary lacks {needle!r}")
    empty = parse("nothing here\nFIGURE scenario=memory calls=x\n")
    check(all(draw(empty) is None for _, draw in CHARTS), "charts drawn from no figures")
    for failure in failures:
        print(f"bench-charts self-test: FAIL: {failure}", file=sys.stderr)
    if failures:
        return 1
    print(f"bench-charts self-test: OK ({len(expected)} charts, well-formed, expected series, deterministic)")
    return 0


def main(argv):
    figures_path = os.path.join(ROOT, "bench", "results", "figures.txt")
    out_dir = os.path.join(ROOT, "bench", "charts")
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--self-test":
            return self_test()
        if flag in ("--figures", "--out") and args:
            value = args.pop(0)
            if flag == "--figures":
                figures_path = value
            else:
                out_dir = value
        elif flag in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            print(f"bench-charts: unknown argument or missing value: {flag}", file=sys.stderr)
            return 2
    try:
        with open(figures_path, encoding="utf-8") as f:
            figures = parse(f.read())
    except OSError as e:
        print(f"bench-charts: cannot read {figures_path}: {e}", file=sys.stderr)
        return 1
    written = render(figures, out_dir)
    print(summary(figures))
    print(f"charts: {', '.join(os.path.join(out_dir, n) for n in written) or 'none'}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
