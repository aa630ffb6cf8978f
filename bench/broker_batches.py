"""What the worker's producer batch size does to a client tailing one busy partition.

A producer sends answers (1.7 KB, the size of a ten-item recommendation with
reasons) in bursts of 256, a micro-batch's worth, to a one-partition topic on
the local broker (Tansu, memory storage); a client tails the topic as
``stream.harness.Collector`` does (kafka-python, 10 ms fetch wait). Reported
every tenth of the run: the burst's ack time, the broker's CPU share, and how
far the tailing client is behind. Once per batch size: aiokafka's default
(16 KiB, the baseline: what the worker used before) and
``Settings.producer_batch_bytes``.

Why it exists: a one-worker ``replay --via-kafka`` of ml-100k "stalled" near
85k events. The worker had answered and committed every event; the replay's
reader of the answers topic had fallen to a few records a second, because the
broker's work per fetch grows with the record batches stored in the partition
(16 KiB batches: six answers each).

    .venv/bin/python bench/broker_batches.py            # 100k answers, ~5 min on 2 cores
    .venv/bin/python bench/broker_batches.py --quick    # 30k answers, ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from tqdm import tqdm  # noqa: E402

from stream.settings import Settings  # noqa: E402
from stream.stack import LocalStack  # noqa: E402

ANSWER_BYTES = 1700
BURST = 256


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(batch_bytes: int, n_answers: int, rows: int) -> list[tuple[int, float, float, int]]:
    """One fresh broker; rows of (answers sent, burst ack ms, broker CPU %, client behind)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp)) as stack:
        boot = stack.bootstrap_servers
        KafkaAdminClient(bootstrap_servers=boot).create_topics([NewTopic("answers", 1, 1)])
        producer = KafkaProducer(bootstrap_servers=boot, linger_ms=0, batch_size=batch_bytes)
        received, stop = [0], threading.Event()

        def tail() -> None:
            consumer = KafkaConsumer("answers", bootstrap_servers=boot, auto_offset_reset="earliest",
                                     group_id=None, fetch_max_wait_ms=10, consumer_timeout_ms=100)
            while not stop.is_set():
                for _ in consumer:
                    received[0] += 1
            consumer.close()

        reader = threading.Thread(target=tail, daemon=True)
        reader.start()
        value, bursts = b"x" * ANSWER_BYTES, n_answers // BURST
        every = max(bursts // rows, 1)
        cpu0, t0 = cpu_seconds(stack.broker_pid), time.perf_counter()
        for burst in tqdm(range(1, bursts + 1), desc=f"batch {batch_bytes // 1024} KiB", unit="burst"):
            t = time.perf_counter()
            for future in [producer.send("answers", key=str(i).encode(), value=value) for i in range(BURST)]:
                future.get()
            ack_ms = (time.perf_counter() - t) * 1000
            if burst % every == 0:
                cpu1, t1 = cpu_seconds(stack.broker_pid), time.perf_counter()
                out.append((burst * BURST, ack_ms, 100 * (cpu1 - cpu0) / (t1 - t0), burst * BURST - received[0]))
                cpu0, t0 = cpu1, t1
        stop.set()
        reader.join(5)
        producer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30k answers instead of 100k")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    n = 30_000 if args.quick else 100_000
    baseline, ours = 16_384, Settings().producer_batch_bytes
    results = {size: run(size, n, 10) for size in (baseline, ours)}
    print(f"\n{n:,} answers of {ANSWER_BYTES} B in bursts of {BURST}, one partition, a client tailing it")
    print(f"{'answers sent':>12} | {'16 KiB (before)':^32} | {f'{ours // 1024} KiB (producer_batch_bytes)':^32}")
    print(f"{'':>12} | {'ack ms':>8} {'broker %':>9} {'behind':>12} | {'ack ms':>8} {'broker %':>9} {'behind':>12}")
    for (sent, *before), (_, *after) in zip(results[baseline], results[ours]):
        cells = [f"{a:8.0f} {c:8.0f}% {b:12,}" for a, c, b in (before, after)]
        print(f"{sent:>12,} | {cells[0]} | {cells[1]}")
    if args.json:
        columns = ("answers_sent", "ack_ms", "broker_cpu_pct", "client_behind")
        args.json.write_text(json.dumps({str(size): [dict(zip(columns, row)) for row in rows]
                                         for size, rows in results.items()}, indent=1))


if __name__ == "__main__":
    main()
