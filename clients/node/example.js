#!/usr/bin/env node
// A streamrec client in Node (kafkajs): the example of docs/clients.md.
//
// Publishes one valid event per user and one bad one (a millisecond timestamp,
// the usual JavaScript slip), then reads `recommendations` and `events.dlq`
// until every event it sent is answered or dead-lettered, or the timeout
// (counted from the start) passes. Prints one JSON line per thing that
// happened on stdout; kafkajs logs go to stderr.
//
//   STREAMREC_BROKER=kafka://127.0.0.1:9092 node example.js i0001 i0002   # item ids to click
//
// Topic names are streamrec's own variables (STREAMREC_EVENTS_TOPIC, ...), so a
// `Settings().env()` from Python configures it. Also: EXAMPLE_USERS (comma
// list), EXAMPLE_TIMEOUT_MS (30000), EXAMPLE_BAD=0 (no bad event), and for
// bench/node_client.py EXAMPLE_MAX_WAIT_MS, EXAMPLE_SESSION_TIMEOUT_MS.
// Exit status: 0 when everything sent was answered, 1 on timeout, 2 on error.
'use strict';

const crypto = require('crypto');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

const env = process.env;
const brokers = (env.STREAMREC_BROKER || 'kafka://127.0.0.1:9092')
  .split(';')
  .map((url) => url.replace(/^kafka:\/\//, ''));
const topics = {
  events: env.STREAMREC_EVENTS_TOPIC || 'events',
  recommendations: env.STREAMREC_RECOMMENDATIONS_TOPIC || 'recommendations',
  dlq: env.STREAMREC_DLQ_TOPIC || 'events.dlq',
};
const users = (env.EXAMPLE_USERS || 'alice,bob,carol').split(',');
const items = process.argv.length > 2 ? process.argv.slice(2) : ['i0001'];
const timeoutMs = Number(env.EXAMPLE_TIMEOUT_MS || 30000);
const runId = crypto.randomBytes(4).toString('hex');

const print = (record) => process.stdout.write(JSON.stringify(record) + '\n');
const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

const kafka = new Kafka({
  clientId: 'streamrec-node-example',
  brokers,
  logLevel: logLevel.WARN,
  // kafkajs logs to stdout by default; keep stdout for the JSON lines.
  logCreator: () => ({ level, log }) => process.stderr.write(`kafkajs ${level}: ${log.message}\n`),
});

// Java-compatible murmur2 (kafkajs' DefaultPartitioner; named explicitly, which also
// silences its start-up warning): a user's events land on the partition streamrec's
// workers expect. The LegacyPartitioner it suggests puts users elsewhere, and each
// such event costs an extra hop through `events.rekeyed`.
// Not idempotent, no transactions: the local broker fails InitProducerId.
const producer = kafka.producer({
  createPartitioner: Partitioners.JavaCompatiblePartitioner,
  allowAutoTopicCreation: false, // the broker would create a missing topic with its own partition count
  idempotent: false,
});

// Low latency: the local broker holds a fetch for about half of maxWaitTimeInMs, so
// kafkajs' default (5000) had answers 2.5 s late at p50; 100: 64-144 ms publish → answer.
// A group join takes about half the session timeout there: 3 s at 6000, 15 s at the
// default 30000 (bench/node_client.py, 2026-12-02).
const consumer = kafka.consumer({
  groupId: env.EXAMPLE_GROUP_ID || `streamrec-node-example-${runId}`,
  maxWaitTimeInMs: Number(env.EXAMPLE_MAX_WAIT_MS || 100),
  sessionTimeout: Number(env.EXAMPLE_SESSION_TIMEOUT_MS || 6000),
  heartbeatInterval: 1000,
});

async function main() {
  const expected = new Map(); // event_id -> what we sent, until it is answered
  const badDigests = new Map(); // sha256 of a bad payload -> its event_id, until dead-lettered
  const answered = new Set(); // dedupe: answers come at least once (bound it in a real app)
  const deadline = new Promise((resolve) => setTimeout(resolve, timeoutMs, 'timeout').unref());
  let done;
  let sending = true;
  const finished = new Promise((resolve) => (done = resolve));
  const checkDone = () => !sending && expected.size === 0 && badDigests.size === 0 && done();

  const startedAt = Date.now();
  await consumer.connect();
  const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
  // fromBeginning: a new group reads what the topics hold (tombstones included), as an app
  // that keeps the latest list per user rebuilds it; a notifier would start at the end.
  await consumer.subscribe({ topics: [topics.recommendations, topics.dlq], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const key = message.key === null ? null : message.key.toString();
      if (topic === topics.recommendations) {
        if (message.value === null) {
          // A tombstone: the user was forgotten. Drop what you keep for them; never JSON.parse(null).
          print({ kind: 'tombstone', user_id: key, partition, offset: message.offset });
          return;
        }
        const answer = JSON.parse(message.value.toString());
        if (answered.has(answer.event_id)) {
          print({ kind: 'duplicate', event_id: answer.event_id }); // redelivered: already handled
          return;
        }
        answered.add(answer.event_id);
        const sent = expected.get(answer.event_id);
        const latencyMs = sent ? Date.now() - sent.sentAt : null; // publish → answer in hand
        const toClientMs = Math.round(Date.now() - answer.sent_ts * 1000); // streamrec sent it → we have it
        print({ kind: 'answer', event_id: answer.event_id, user_id: key, partition, latency_ms: latencyMs,
                to_client_ms: toClientMs, record: answer });
        if (sent) expected.delete(answer.event_id);
      } else {
        const dead = JSON.parse(message.value.toString());
        const eventId = badDigests.get(dead.payload_sha256);
        print({ kind: 'dead_letter', event_id: eventId || null, reason: dead.reason, field: dead.field, record: dead });
        if (eventId) badDigests.delete(dead.payload_sha256);
      }
      checkDone();
    },
  });
  // Produce once assigned, so that latencies measure streamrec, not the group join.
  if ((await Promise.race([joined, deadline])) === 'timeout') return finish(['(no group join)']);
  print({ kind: 'joined', after_ms: Date.now() - startedAt });

  await producer.connect();
  const now = () => Date.now() / 1000; // seconds: streamrec refuses milliseconds
  const events = users.map((user, n) => ({
    event_id: `node-${runId}-${n}`,
    user_id: user,
    item_id: items[n % items.length],
    type: 'click',
    ts: now(),
    scene: 'home',
  }));
  for (const event of events) {
    expected.set(event.event_id, { event, sentAt: Date.now() });
    const [meta] = await producer.send({
      topic: topics.events,
      acks: -1,
      messages: [{ key: event.user_id, value: JSON.stringify(event) }],
    });
    print({ kind: 'sent', event_id: event.event_id, user_id: event.user_id, partition: meta.partition });
  }
  if (env.EXAMPLE_BAD !== '0') {
    const bad = { ...events[0], event_id: `node-${runId}-bad`, ts: Date.now() }; // milliseconds: bad_timestamp
    const value = Buffer.from(JSON.stringify(bad));
    badDigests.set(sha256(value), bad.event_id);
    const [meta] = await producer.send({ topic: topics.events, acks: -1, messages: [{ key: bad.user_id, value }] });
    print({ kind: 'sent_bad', event_id: bad.event_id, user_id: bad.user_id, partition: meta.partition });
  }

  sending = false;
  checkDone(); // everything may have been answered while we were still sending
  await Promise.race([finished, deadline]);
  return finish([...expected.keys(), ...badDigests.values()]);
}

async function finish(missing) {
  print({ kind: missing.length ? 'timeout' : 'done', missing });
  await Promise.all([producer.disconnect(), consumer.disconnect()]);
  return missing.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    print({ kind: 'error', error: String(err.stack || err) });
    process.exit(2);
  },
);
