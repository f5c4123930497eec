#!/usr/bin/env python3
"""Where a record's time goes: the per-stage latency breakdown scripts/bench.sh prints under its
table, from the daemon's histogram sluice_record_stage_seconds{stage, le} (each sampled record
observes the seconds from its Kafka message's timestamp to reaching each stage).

  stage_breakdown.py [--title TEXT] BEFORE AFTER [BEFORE AFTER ...]

Each BEFORE / AFTER is a scrape of /metrics (Prometheus text format) taken at the start and the end
of a window; the windows' differences are added up (histograms add), and per stage it prints the
p50 and p99, interpolated in the cumulative buckets as Prometheus's histogram_quantile does, and
the mean (_sum / _count), in milliseconds; a quantile beyond the highest finite bucket is
printed as "≥ <that bound>". Series with other labels besides stage and le are
summed per stage. When the metric is absent, or no record was sampled, it prints one line that
says so, with "-", and exits 0: the benchmark goes on without it.
"""
import math
import re
import sys

METRIC = "sluice_record_stage_seconds"
STAGES = ["consumed", "parsed", "batched", "memory", "committed", "redis"]
LINE = re.compile(r'^(' + METRIC + r'_(?:bucket|sum|count))(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse(text):
    """{stage: {"buckets": {le: count}, "sum": s, "count": n}} from one scrape."""
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, labels_text, value_text = m.groups()
        labels = dict(LABEL.findall(labels_text or ""))
        stage = labels.get("stage")
        if stage is None:
            continue
        try:
            value = float(value_text)
        except ValueError:
            continue
        entry = out.setdefault(stage, {"buckets": {}, "sum": 0.0, "count": 0.0})
        if name.endswith("_bucket"):
            if "le" not in labels:
                continue
            le = float(labels["le"])  # float() reads "+Inf" too
            entry["buckets"][le] = entry["buckets"].get(le, 0.0) + value
        elif name.endswith("_sum"):
            entry["sum"] += value
        else:
            entry["count"] += value
    return out


def subtract_add(total, before, after):
    """Adds after - before, stage by stage, into total."""
    for stage, a in after.items():
        b = before.get(stage, {"buckets": {}, "sum": 0.0, "count": 0.0})
        t = total.setdefault(stage, {"buckets": {}, "sum": 0.0, "count": 0.0})
        for le, n in a["buckets"].items():
            t["buckets"][le] = t["buckets"].get(le, 0.0) + n - b["buckets"].get(le, 0.0)
        t["sum"] += a["sum"] - b["sum"]
        t["count"] += a["count"] - b["count"]


def quantile(q, buckets):
    """histogram_quantile(q, ...) of Prometheus (promql/quantile.go, bucketQuantile): linear
    interpolation inside the bucket that holds the rank, the first bucket starting at 0, and the
    highest finite bound when the rank falls in +Inf. None when it cannot be told."""
    bounds = sorted(buckets.items())
    if len(bounds) < 2 or not math.isinf(bounds[-1][0]):
        return None
    # Cumulative counts must not fall (a scrape taken mid-update can make them); as Prometheus does.
    counts, highest = [], 0.0
    for _, n in bounds:
        highest = max(highest, n)
        counts.append(highest)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    b = next(i for i, n in enumerate(counts) if n >= rank)
    if b == len(bounds) - 1:
        return bounds[-2][0]
    if b == 0 and bounds[0][0] <= 0:
        return bounds[0][0]
    start, end = (0.0, bounds[0][0]) if b == 0 else (bounds[b - 1][0], bounds[b][0])
    below = 0.0 if b == 0 else counts[b - 1]
    return start + (end - start) * (rank - below) / (counts[b] - below)


def beyond_bounds(q, buckets):
    """Whether the rank of q lies in the +Inf bucket: the quantile is then only known to be at
    least the highest finite bound (which histogram_quantile returns)."""
    finite = [n for le, n in buckets.items() if not math.isinf(le)]
    total = max(buckets.values(), default=0.0)
    return bool(finite) and total > 0 and max(finite) < q * total


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def ms_quantile(q, buckets):
    value = ms(quantile(q, buckets))
    return "≥ " + value if value != "-" and beyond_bounds(q, buckets) else value


def report(total, title):
    stages = [s for s in STAGES if s in total] + sorted(s for s in total if s not in STAGES)
    samples = max((total[s]["count"] for s in stages), default=0)
    if not stages or samples <= 0:
        why = "no " + METRIC + " on /metrics" if not stages else "no sampled record in the window"
        return [f"{title}: - ({why})"]
    lines = [f"{title} ({samples:.0f} sampled records; ms from the Kafka message's timestamp):", "",
             "| stage | p50 | p99 | mean | mean since the stage before |", "|---|---|---|---|---|"]
    previous = 0.0
    for s in stages:
        e = total[s]
        mean = e["sum"] / e["count"] if e["count"] > 0 else None
        step = None if mean is None or previous is None else mean - previous
        lines.append(f"| {s} | {ms_quantile(0.5, e['buckets'])} | {ms_quantile(0.99, e['buckets'])} | "
                     f"{ms(mean)} | {ms(step)} |")
        previous = mean
    return lines


def main(argv):
    title = "where a record's time goes"
    if len(argv) >= 2 and argv[0] == "--title":
        title, argv = argv[1], argv[2:]
    if not argv or len(argv) % 2:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    total = {}
    for before_file, after_file in zip(argv[0::2], argv[1::2]):
        try:
            with open(before_file) as f:
                before = parse(f.read())
            with open(after_file) as f:
                after = parse(f.read())
        except OSError:
            continue  # a scrape that failed: that window is left out
        subtract_add(total, before, after)
    print("\n".join(report(total, title)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
