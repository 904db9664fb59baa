// make bench's Node peer: Powertools for AWS Lambda (TypeScript)'s Kafka consumer on the same MSK
// events as the Rust bench (`decode --write-events`).
//
//   node bench.mjs FILE N [--zod]
//
// prints one JSON line, {"impl", "file", "records", "ms": [N per-iteration milliseconds]}, the
// shape of `decode --time`. One iteration: the event's bytes (read once, before any timing) →
// UTF-8 text → JSON.parse (what the Lambda runtime does with the invoke body) → the wrapped
// handler, called as Lambda would, which walks every record and reads every field.
//
// Powertools decodes lazily: `record.key`, `record.value` and `record.headers` are getters that
// decode (and, with --zod, validate) on each read. The handler reads each of them exactly once
// and then every field of the decoded value, so every record is fully decoded, once.
import { readFileSync } from 'node:fs';
import { kafkaConsumer, SchemaType } from '@aws-lambda-powertools/kafka';
import { z } from 'zod';

const [file, iterationsArg, ...flags] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench.mjs FILE N [--zod]');
  process.exit(2);
}
const iterations = Number.parseInt(iterationsArg ?? '5', 10) || 5;
const zod = flags.includes('--zod');

// The chat message with the limits relaychat's `ChatMessage` checks (ids.rs, text.rs).
const token = (max) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9._@:=+-]+$/);
const text = (max) =>
  z
    .string()
    .max(max)
    .refine((s) => s.trim().length > 0, 'must not be empty');
const ChatMessage = z.object({
  schemaVersion: z.number().int().nonnegative(),
  messageId: z.string().regex(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/),
  conversationId: token(64),
  senderId: token(64),
  senderName: text(100),
  content: text(4000),
  clientMessageId: token(64).optional(),
  sentAt: z.iso.datetime({ offset: true }),
  recipients: z.array(token(64)),
});

const schemaConfig = {
  value: zod ? { type: SchemaType.JSON, parserSchema: ChatMessage } : { type: SchemaType.JSON },
};

// What the handler reads; summed so no read can be optimised away.
let sink = 0;

const handler = kafkaConsumer(async (event, _context) => {
  let decoded = 0;
  for (const record of event.records) {
    const { topic, partition, offset, timestamp, timestampType } = record;
    const key = record.key;
    const value = record.value;
    const headers = record.headers;
    sink += topic.length + partition + offset + Number(timestamp) + timestampType.length;
    sink += key === undefined || key === null ? 0 : String(key).length;
    for (const header of headers ?? []) {
      for (const [name, v] of Object.entries(header)) sink += name.length + v.length;
    }
    if (value === null || typeof value !== 'object') continue;
    const {
      schemaVersion,
      messageId,
      conversationId,
      senderId,
      senderName,
      content,
      clientMessageId,
      sentAt,
      recipients,
    } = value;
    if (typeof messageId !== 'string' || typeof content !== 'string' || !Array.isArray(recipients)) continue;
    sink += schemaVersion + messageId.length + conversationId.length + senderId.length;
    sink += senderName.length + content.length + (clientMessageId?.length ?? 0) + sentAt.length;
    for (const r of recipients) sink += r.length;
    decoded += 1;
  }
  return decoded;
}, schemaConfig);

const context = {
  functionName: 'relaychat-bench',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:relaychat-bench',
  memoryLimitInMB: '1024',
  awsRequestId: '00000000-0000-0000-0000-000000000000',
  logGroupName: '/aws/lambda/relaychat-bench',
  logStreamName: 'bench',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 60_000,
  done: () => {},
  fail: () => {},
  succeed: () => {},
};

const bytes = readFileSync(file);
const records = Object.values(JSON.parse(bytes.toString('utf8')).records).reduce((n, r) => n + r.length, 0);

const ms = [];
for (let i = 0; i < iterations; i++) {
  const started = process.hrtime.bigint();
  const event = JSON.parse(bytes.toString('utf8'));
  const decoded = await handler(event, context);
  ms.push(Number(process.hrtime.bigint() - started) / 1e6);
  if (decoded !== records) {
    console.error(`bench.mjs: ${file}: decoded ${decoded} of ${records} records`);
    process.exit(1);
  }
}
if (sink === 0) console.error('bench.mjs: nothing was read');
console.log(JSON.stringify({ impl: zod ? 'powertools-node-zod' : 'powertools-node', file, records, ms }));
