#!/usr/bin/env bash
# Unit test of scripts/lib/stage_breakdown.py (the stage breakdown under scripts/bench.sh's table)
# on a hand-made /metrics fixture: two scrapes of sluice_record_stage_seconds whose difference has
# quantiles and means worked out by hand (bench/testdata/stage_breakdown.expected), one stage split
# over two label sets; and the line it prints when the metric is absent. The fixture is test data,
# not a benchmark result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
parser=$here/../scripts/lib/stage_breakdown.py
data=$here/testdata
diff -u "$data/stage_breakdown.expected" \
  <(python3 "$parser" "$data/stage_metrics_before.txt" "$data/stage_metrics_after.txt")
absent=$(python3 "$parser" --title "at half load" "$data/stage_metrics_before.txt" /dev/null)
[[ $absent == "at half load: - (no sluice_record_stage_seconds on /metrics)" ]] || { echo "absent: $absent" >&2; exit 1; }
same=$(python3 "$parser" "$data/stage_metrics_before.txt" "$data/stage_metrics_before.txt")
[[ $same == "where a record's time goes: - (no sampled record in the window)" ]] || { echo "empty window: $same" >&2; exit 1; }
echo "stage_breakdown: ok"
