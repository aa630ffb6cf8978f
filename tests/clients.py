"""Plain Kafka clients for tests: what an app publishing events or reading recommendations does."""

from __future__ import annotations

import threading
import time

import orjson
from kafka import KafkaConsumer, KafkaProducer


def produce(bootstrap: str, topic: str, records, key=lambda r: r["user_id"]) -> None:
    """Publish dicts as JSON (bytes are sent as they are), keyed by ``key(record)``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    for record in records:
        value = record if isinstance(record, bytes) else orjson.dumps(record)
        k = b"bad" if isinstance(record, bytes) else key(record).encode()
        producer.send(topic, key=k, value=value)
    producer.flush()
    producer.close()


class Collector:
    """Reads a topic from the beginning in a background thread into ``records`` (decoded JSON, None for null)."""

    def __init__(self, bootstrap: str, topic: str):
        self.records: list[dict] = []
        self.keys: list[bytes] = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                       group_id=None, consumer_timeout_ms=100,
                                       fetch_max_wait_ms=10)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer:
                self.keys.append(message.key)
                # A null value is a tombstone (a forgotten user): kept as None.
                self.records.append(None if message.value is None else orjson.loads(message.value))

    def wait(self, n: int, timeout: float = 60.0) -> list[dict]:
        """Block until at least ``n`` records arrived; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while len(self.records) < n:
            assert time.monotonic() < deadline, f"only {len(self.records)} of {n} records after {timeout}s"
            time.sleep(0.05)
        return self.records

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
