#!/usr/bin/env python3
"""Talks to a running Prometheus for scripts/prometheus-check.sh (Python 3 standard library only).

  prometheus-kit.py alerts URL                       the active alerts, one `STATE NAME {labels}` line each
  prometheus-kit.py wait URL SECONDS NAME...          waits until every alert NAME is firing; prints each as it fires;
                                                      exits 1 (naming the missing ones) when the time is up
  prometheus-kit.py rules URL START END [--no-data NAME...]
                                                      every loaded rule is healthy, and every recording rule has data
                                                      over [START, END] (unix seconds) except the NAMEs; a PASS/FAIL
                                                      line each, exit 1 if any failed
  prometheus-kit.py dashboard URL JSON START END [--no-data TITLE...]
                                                      every query of the Grafana dashboard JSON, its variables
                                                      substituted ($job, $instance, $tenant: all; $__rate_interval:
                                                      10s), parses and has data over [START, END]; PASS/FAIL lines
  prometheus-kit.py picture URL JSON START END OUT.svg
                                                      draws the dashboard's panels from the same data as an SVG
                                                      (rsvg-convert turns it into a PNG)
"""

import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from xml.sax.saxutils import escape

RATE_INTERVAL = "10s"  # $__rate_interval for a 1 s scrape interval (Grafana: max(4 x scrape, interval))
STEP = 1


def api(base, path, **params):
    """GET base/api/v1/path?params -> data, or raises RuntimeError with Prometheus' error."""
    url = f"{base}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        try:
            body = json.load(error)
        except ValueError:
            raise RuntimeError(f"HTTP {error.code}") from None
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def active_alerts(base):
    return api(base, "alerts")["alerts"]


def label_text(labels):
    keep = {k: v for k, v in sorted(labels.items()) if k not in ("alertname", "severity")}
    return "{" + ", ".join(f"{k}={v}" for k, v in keep.items()) + "}"


def cmd_alerts(base):
    for alert in active_alerts(base):
        print(f"{alert['state']} {alert['labels']['alertname']} {label_text(alert['labels'])}")


def cmd_wait(base, seconds, names):
    deadline = time.monotonic() + float(seconds)
    seen = set()
    while True:
        for alert in active_alerts(base):
            name = alert["labels"]["alertname"]
            if alert["state"] == "firing" and name in names and name not in seen:
                seen.add(name)
                print(f"firing {name} {label_text(alert['labels'])} since {alert.get('activeAt', '?')}")
        missing = [n for n in names if n not in seen]
        if not missing:
            return 0
        if time.monotonic() > deadline:
            print(f"not firing after {seconds}s: {' '.join(missing)}")
            return 1
        time.sleep(0.5)


def has_data(base, expr, start, end):
    """(series, points) of a range query, or raises RuntimeError."""
    data = api(base, "query_range", query=expr, start=start, end=end, step=STEP)
    return data["result"]


def cmd_rules(base, start, end, no_data):
    failed = 0
    groups = api(base, "rules")["groups"]
    for group in groups:
        for rule in group["rules"]:
            name = rule.get("name")
            if rule.get("health") != "ok":
                print(f"FAIL: rule {name} ({group['name']}): health {rule.get('health')}: {rule.get('lastError')}")
                failed += 1
                continue
            if rule["type"] != "recording":
                print(f"PASS: alert {name} evaluates (health ok)")
                continue
            labels = rule.get("labels") or {}
            selector = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
            try:
                result = has_data(base, selector, start, end)
            except RuntimeError as error:
                print(f"FAIL: {selector}: {error}")
                failed += 1
                continue
            points = sum(len(s["values"]) for s in result)
            if name in no_data or selector in no_data:
                print(f"PASS: {selector}: no data expected in this scenario (got {len(result)} series)")
            elif points:
                print(f"PASS: {selector}: {len(result)} series, {points} points")
            else:
                print(f"FAIL: {selector}: no data")
                failed += 1
    return 1 if failed else 0


def substitute(expr):
    for var, value in (("$__rate_interval", RATE_INTERVAL), ("$job", ".*"), ("$instance", ".*"), ("$tenant", ".*")):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    return expr


def dashboard_targets(path):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    for panel in dash["panels"]:
        if panel.get("type") == "row":
            yield panel, None
            continue
        yield panel, [(t.get("legendFormat", ""), substitute(t["expr"])) for t in panel.get("targets", [])]


def cmd_dashboard(base, path, start, end, no_data):
    failed = 0
    for panel, targets in dashboard_targets(path):
        if targets is None:
            continue
        for legend, expr in targets:
            where = f"panel '{panel['title']}' ({legend})"
            try:
                result = has_data(base, expr, start, end)
            except RuntimeError as error:
                print(f"FAIL: {where}: {error}\n      {expr}")
                failed += 1
                continue
            points = sum(len(s["values"]) for s in result)
            if panel["title"] in no_data:
                print(f"PASS: {where}: no data expected in this scenario ({len(result)} series)")
            elif points:
                print(f"PASS: {where}: {len(result)} series, {points} points")
            else:
                print(f"FAIL: {where}: no data\n      {expr}")
                failed += 1
    return 1 if failed else 0


# ---- the picture ------------------------------------------------------------------------------------------------

COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
           "#64b5cd"]
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


def legend_of(fmt, metric):
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__") or "value"
    out = fmt
    for key, value in metric.items():
        out = out.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    while "{{" in out and "}}" in out:  # labels the series lacks
        a = out.index("{{")
        b = out.index("}}", a)
        out = out[:a] + out[b + 2:]
    return out.strip() or "value"


def fmt_value(v, unit):
    if v != v:  # NaN
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.3g}%"
    if unit == "s":
        return f"{v * 1000:.3g} ms" if abs(v) < 1 else f"{v:.3g} s"
    if unit == "reqps":
        return f"{v:.3g}/s"
    return f"{v:.4g}"


def nice_max(v):
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 4, 8, 10):  # four grid steps of 0.25, 0.5, 1, 2 or 2.5 times a power of ten
        if v <= m * mag:
            return m * mag
    return 10 * mag


def draw_panel(svg, x, y, w, h, panel, series_list, start, end):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    mappings = panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])
    svg.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="4" fill="#ffffff" stroke="#d0d0d0"/>')
    svg.append(f'<text x="{x + 10}" y="{y + 20}" font-size="14" font-weight="bold" fill="#222">'
               f'{escape(panel["title"])}</text>')
    if panel["type"] == "stat":
        texts = []
        for legend, values in series_list:
            last = next((v for _, v in reversed(values) if v == v), float("nan"))
            text = fmt_value(last, unit)
            for mapping in mappings:
                for key, opt in mapping.get("options", {}).items():
                    if last == last and str(int(last)) == key:
                        text = opt["text"]
            if panel["title"] == "Build":
                text = legend.split(" ")[-1]
            texts.append(text)
        big = " / ".join(texts) if texts else "no data"
        svg.append(f'<text x="{x + w / 2}" y="{y + h / 2 + 16}" font-size="30" text-anchor="middle" '
                   f'fill="#1f5fa8" font-weight="bold">{escape(big)}</text>')
        return
    left, right, top, bottom = x + 62, x + w - 12, y + 32, y + h - 46
    vmax = max([v for _, vs in series_list for _, v in vs if v == v] + [0])
    ymax = nice_max(vmax)
    if panel.get("fieldConfig", {}).get("defaults", {}).get("max") is not None:
        ymax = max(ymax, panel["fieldConfig"]["defaults"]["max"])
    for i in range(5):
        gy = bottom - (bottom - top) * i / 4
        svg.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{right}" y2="{gy:.1f}" stroke="#eeeeee"/>')
        svg.append(f'<text x="{left - 4}" y="{gy + 4:.1f}" font-size="10" text-anchor="end" fill="#666">'
                   f'{escape(fmt_value(ymax * i / 4, unit))}</text>')
    span = max(end - start, 1)
    for t in range(0, int(span) + 1, 15):
        gx = left + (right - left) * t / span
        svg.append(f'<text x="{gx:.1f}" y="{bottom + 13}" font-size="10" text-anchor="middle" fill="#666">'
                   f'{t}s</text>')
    svg.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>')
    for i, (legend, values) in enumerate(series_list[:8]):
        colour = COLOURS[i % len(COLOURS)]
        path, pen = [], "M"
        for t, v in values:
            if v != v:
                pen = "M"
                continue
            px = left + (right - left) * (t - start) / span
            py = bottom - (bottom - top) * min(v, ymax) / ymax
            path.append(f"{pen}{px:.1f},{py:.1f}")
            pen = "L"
        if path:
            svg.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
    lx, ly = x + 10, y + h - 24
    for i, (legend, _) in enumerate(series_list[:8]):
        colour = COLOURS[i % len(COLOURS)]
        label = legend if len(legend) <= 34 else legend[:33] + "…"
        width = 14 + 6.2 * len(label) + 12
        if lx + width > x + w - 4:
            lx, ly = x + 10, ly + 12
            if ly > y + h - 2:
                break
        svg.append(f'<rect x="{lx}" y="{ly - 7}" width="10" height="3" fill="{colour}"/>')
        svg.append(f'<text x="{lx + 14}" y="{ly}" font-size="10" fill="#333">{escape(label)}</text>')
        lx += width
    if not series_list:
        svg.append(f'<text x="{x + w / 2}" y="{y + h / 2}" font-size="12" text-anchor="middle" fill="#999">'
                   'no data</text>')


def cmd_picture(base, path, start, end, out):
    start, end = float(start), float(end)
    scale_x, scale_y = 1600 / 24, 34  # Grafana grid: 24 columns; one grid row -> 34 px
    panels = []
    for panel, targets in dashboard_targets(path):
        panels.append((panel, targets))
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _ in panels)
    height = int(bottom * scale_y + 70)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="1620" height="{height}" font-family="{FONT}">',
           f'<rect width="1620" height="{height}" fill="#f4f5f7"/>',
           '<text x="12" y="26" font-size="18" font-weight="bold" fill="#222">kgen-gateway (deploy/grafana/'
           'kgen-gateway.json), drawn from a real Prometheus by scripts/prometheus-check.sh</text>',
           f'<text x="12" y="46" font-size="12" fill="#555">{int(end - start)} s of sandbox traffic: good calls, '
           'slow calls, overload (OVERLOADED), KGeN 401, KGeN 503 (breaker opens); x axis: seconds from start'
           '</text>']
    oy = 56
    for panel, targets in panels:
        g = panel["gridPos"]
        x, y = 10 + g["x"] * scale_x, oy + g["y"] * scale_y
        w, h = g["w"] * scale_x - 8, g["h"] * scale_y - 8
        if targets is None:
            svg.append(f'<text x="{x}" y="{y + 22}" font-size="15" font-weight="bold" fill="#1f3b66">'
                       f'{escape(panel["title"])}</text>')
            continue
        series_list = []
        for legend_fmt, expr in targets:
            try:
                result = has_data(base, expr, start, end)
            except RuntimeError:
                result = []
            for s in result:
                values = [(float(t), float(v)) for t, v in s["values"]]
                series_list.append((legend_of(legend_fmt, s["metric"]), values))
        draw_panel(svg, x, y, w, h, panel, series_list, start, end)
    svg.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(svg) + "\n")
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, base = argv[1], argv[2].rstrip("/")
    rest = argv[3:]

    def split_no_data(args):
        if "--no-data" in args:
            i = args.index("--no-data")
            return args[:i], set(args[i + 1:])
        return args, set()

    if command == "alerts":
        cmd_alerts(base)
        return 0
    if command == "wait":
        return cmd_wait(base, rest[0], rest[1:])
    if command == "rules":
        args, no_data = split_no_data(rest)
        return cmd_rules(base, args[0], args[1], no_data)
    if command == "dashboard":
        args, no_data = split_no_data(rest)
        return cmd_dashboard(base, args[0], args[1], args[2], no_data)
    if command == "picture":
        return cmd_picture(base, *rest[:4])
    print(f"unknown command {command}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
