"""A pass-through Faust worker: the baseline for bench/pipeline.py.

Consumes ``events`` and produces every record unchanged (same key, same bytes)
to ``passthrough.out``: no decoding, no Redis, no model. Built with
``stream.faustapp.make_app`` and ``raw_topic``, with the same micro-batching
(``take_events``) and acked sends (``send_all``) as ``stream.app.on_events``,
so it has the same settings and transport (including the short fetch wait);
what it costs is the floor Faust + the broker put under any worker.

    python bench/passthrough_app.py worker -l warn --without-web

Settings come from the ``STREAMREC_*`` environment, like ``streamrec worker``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.codec import Outgoing  # noqa: E402
from stream.faustapp import make_app, raw_topic, send_all  # noqa: E402
from stream.settings import Settings  # noqa: E402

OUTPUT_TOPIC = "passthrough.out"

settings = Settings.from_env()
app = make_app(settings, settings.app_id + "-passthrough")
events = raw_topic(app, settings.events_topic, settings.partitions)
output = raw_topic(app, OUTPUT_TOPIC, settings.partitions)


@app.agent(events)
async def forward(stream):
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        await send_all(settings, None, (output, [Outgoing(e.message.key, e.message.value) for e in batch]))


if __name__ == "__main__":
    app.main()
