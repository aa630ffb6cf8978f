"""User deletion: ``streamrec forget USER_ID`` asks, the worker removes every trace of the user.

1. The request (:func:`stream.codec.encode_forget`) goes to the
   ``users.forget`` topic (``Settings.forget_topic``), keyed by the user id. It
   has as many partitions as ``events`` and the same key, so it lands on the
   worker that owns the user's events (Faust assigns co-partitioned topics
   together), whose model thread serialises it with that user's event batches.
2. The worker deletes every per-user key in Redis
   (:meth:`stream.store.RedisStore.forget_user`) and sends a tombstone — a
   null value keyed by the user — to ``recommendations``, so apps that keep
   the latest list per user drop it (and compaction would too).
3. The user's next event starts from nothing, like a new user's.

Aggregates hold no user id and stay: popularity, co-visitation, co-purchase,
the ranker's weights. Messages already in Kafka (``events``, ``events.dlq``,
past ``recommendations``) age out with the topics' retention.
"""

from __future__ import annotations

from stream.codec import decode_forget, encode_forget
from stream.settings import Settings


def request_forget(settings: Settings, user_id: str, timeout: float = 10.0) -> None:
    """Publish a forget request for ``user_id`` and wait for the broker's ack.

    Parameters
    ----------
    settings
        Gives the broker and ``forget_topic``.
    user_id
        The user to forget; validated as the worker will.
    timeout
        Seconds to wait for the ack.
    """
    from kafka import KafkaProducer

    body = encode_forget(user_id)
    decode_forget(body)  # refuse here what the worker would dead-letter
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        producer.send(settings.forget_topic, key=user_id.encode(), value=body).get(timeout=timeout)
    finally:
        producer.close(timeout=timeout)
