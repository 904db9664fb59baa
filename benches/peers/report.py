"""make bench's table: reads the JSON lines that `decode --time` and the peers printed (one line per
implementation per process, `{"impl", "file", "records", "ms": [...]}`), drops each process's first
iteration (warm-up), and prints one table per event file: the median milliseconds of each
implementation over every round, and the ratios, all measured side by side in this one run.

    python3 report.py RESULTS.jsonl EVENTS_DIR
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict

# Column order, and the short names the table uses.
IMPLS = [
    ("relaychat", "relaychat"),
    ("rust-plain", "rust-plain"),
    ("floor", "floor"),
    ("powertools-node", "node"),
    ("powertools-node-zod", "node-zod"),
    ("powertools-python-pydantic", "py-pydantic"),
]
PEERS = ["powertools-node", "powertools-node-zod", "powertools-python-pydantic"]


def main() -> int:
    results, events_dir = sys.argv[1], sys.argv[2]
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    records: dict[str, int] = {}
    processes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with open(results) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            name = os.path.basename(r["file"]).removesuffix(".json")
            if records.setdefault(name, r["records"]) != r["records"]:
                print(f"report: {name}: {r['impl']} counted {r['records']} records, not {records[name]}", file=sys.stderr)
                return 1
            times[name][r["impl"]].extend(r["ms"][1:])
            processes[name][r["impl"]] += 1

    order = {"100": 0, "1000": 1, "6mb": 2, "10000": 3, "10000-large": 4}
    names = sorted(times, key=lambda n: (order.get(n, 99), n))
    short = dict(IMPLS)
    ratio_heads = [f"{short[p]}/rc" for p in PEERS] + ["plain/rc", "rc/floor"]
    head = (
        f"{'event':>12} {'records':>8} {'MB':>6} "
        + " ".join(f"{short[i]:>11}" for i, _ in IMPLS)
        + " |"
        + " ".join(f"{h:>15}" for h in ratio_heads)
    )
    print(head)
    print("-" * len(head))
    for name in names:
        med = {i: statistics.median(t) for i, t in times[name].items() if t}
        size = os.path.getsize(os.path.join(events_dir, f"{name}.json")) / 1e6
        cells = " ".join(f"{med[i]:>9.2f}ms" if i in med else f"{'-':>11}" for i, _ in IMPLS)
        rc = med.get("relaychat")

        def ratio(a: float | None, b: float | None) -> str:
            return f"{a / b:>14.1f}x" if a and b else f"{'-':>15}"

        ratios = [ratio(med.get(p), rc) for p in PEERS]
        ratios += [ratio(med.get("rust-plain"), rc), ratio(rc, med.get("floor"))]
        print(f"{name:>12} {records[name]:>8} {size:>6.2f} {cells} |{' '.join(ratios)}")
    n_proc = max((n for per in processes.values() for n in per.values()), default=0)
    n_iter = max((len(t) for per in times.values() for t in per.values()), default=0)
    print(
        f"\nmedian ms over {n_iter} timed iterations per cell ({n_proc} processes, interleaved in rounds; "
        "each process's first iteration dropped as warm-up)."
    )
    print(
        "rc = relaychat; node, node-zod = Powertools TypeScript's kafkaConsumer (JSON; + a Zod schema); "
        "py-pydantic = Powertools Python's kafka_consumer (JSON into a Pydantic model)."
    )
    print(
        "X/rc = X's time / relaychat's (how many times slower than relaychat); "
        "rc/floor = relaychat's time / floor's (a serde scan that only reads the bytes)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
