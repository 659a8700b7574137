#!/usr/bin/env python3
"""Medians and ratios from a Google Benchmark JSON run.

Pairs each BM_Log<X> with its raw baseline BM_Raw<X> of the same run (or,
when there is none, with the baseline of the same name without X's first
argument: BM_LogPublish/1000 with BM_RawPublish) and prints a Markdown table
of the median items/s of both and their ratio.

  build/bin/event_log_bench --benchmark_repetitions=5 \
      --benchmark_enable_random_interleaving=true --benchmark_format=json > run.json
  python3 benchmarks/compare.py run.json
"""
import json
import re
import statistics
import sys
from collections import defaultdict

# Baselines that are not named BM_Raw<X>: the CLI paths (cli_bench.cc).
BASELINES = {
    "BM_LogCliAppend": "BM_RawCliFill",
    "BM_LogCliImport": "BM_RawCliFill",
    "BM_LogCliRebuild": "BM_RawCliReadSeq",
    "BM_LogCliAudit": "BM_RawCliReadSeq",
    "BM_LogDaemonRequests": "BM_RawRoundTrip",
}


def main(path):
    with open(path) as f:
        run = json.load(f)
    rates = defaultdict(list)
    delays = defaultdict(lambda: defaultdict(list))  # run name -> counter -> values
    for b in run["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        name = re.sub(r"/(iterations:\d+|real_time|min_time:[\d.]+)", "", b["run_name"])
        if "items_per_second" in b:
            rates[name].append(b["items_per_second"])
        for counter in ("p50_ms", "p99_ms"):
            if counter in b:
                delays[name][counter].append(b[counter])
    medians = {name: statistics.median(v) for name, v in rates.items()}
    print(f"machine: {run['context'].get('num_cpus')} cpus, {run['context'].get('date')}")
    print()
    print("| measure | ours (events/s, median) | raw baseline (events/s, median) | ratio | runs |")
    print("|---|---:|---:|---:|---:|")
    for name in sorted(medians):
        for ours_prefix, raw_prefix in (("BM_Log", "BM_Raw"),):
            if not name.startswith(ours_prefix):
                continue
            raw_name = raw_prefix + name[len(ours_prefix):]
            base = name.split("/")[0]
            if base in BASELINES:
                raw_name = BASELINES[base] + name[len(base):]  # same arguments first
                if raw_name not in medians:
                    raw_name = BASELINES[base]
            elif base == "BM_LogCliRead":
                raw_name = "BM_LogCliExport"  # reads must print as fast per event as export
            if raw_name not in medians:
                raw_name = re.sub(r"/\d+", "", raw_name, count=1)
            if raw_name not in medians:
                continue
            ours, raw = medians[name], medians[raw_name]
            print(f"| {name} | {ours:,.0f} | {raw:,.0f} | {ours / raw:.2f}x | {len(rates[name])} |")
    for name, counters in sorted(delays.items()):
        shown = ", ".join(f"{c} median {statistics.median(v):.1f} (runs: {', '.join(f'{x:.1f}' for x in v)})"
                          for c, v in sorted(counters.items()))
        print(f"\n{name}: {shown}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
