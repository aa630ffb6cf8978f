"""1 vs 2 ``streamrec worker`` processes on a 4-partition events topic.

Same harness as bench/pipeline.py (LocalStack, open-loop producer, client
consumer on ``recommendations``): a fixed rate near one worker's saturation,
then a burst, once with one worker and once with two in the same consumer
group (each gets 2 of the 4 partitions). On a 2-core machine the two workers,
the broker, redis and the load generator share the same cores, so little gain
is expected here; see bench/README.md for what to expect on a cluster.

    .venv/bin/python bench/scaleout.py            # ~3 min
    .venv/bin/python bench/scaleout.py --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import fmt_ms, measure  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=300.0, help="events/s, near one worker's saturation")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=3000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--items-per-category", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="~1 min run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.duration_s, args.burst, args.items_per_category = 3.0, 800, 10
    print(f"# scale-out benchmark: {args.partitions} partitions, rate {args.rate:g}/s for {args.duration_s:g} s "
          f"then a burst of {args.burst}, load avg {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    rows = []
    for w in [int(x) for x in args.workers.split(",")]:
        rows += measure("streamrec", [args.rate, None], args.duration_s, args.burst, partitions=args.partitions,
                        workers=w, items_per_category=args.items_per_category, drain_s=60.0)
    base = {r["rate"]: r["achieved_per_s"] for r in rows if r["workers"] == rows[0]["workers"]}
    print("\n| workers | partitions | offered ev/s | achieved ev/s | vs 1 worker | p50 ms | p99 ms | answered |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        offered = f"burst ({r['offered_per_s']:,.0f})" if r["rate"] is None else f"{r['rate']:,.0f}"
        print(f"| {r['workers']} | {r['partitions']} | {offered} | {r['achieved_per_s']:,.0f} "
              f"| {r['achieved_per_s'] / base[r['rate']]:.2f}× | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} "
              f"| {r['answered']}/{r['sent']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
