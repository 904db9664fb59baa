"""make bench's Python peer: Powertools for AWS Lambda (Python)'s Kafka consumer, values parsed
into a Pydantic model, on the same MSK events as the Rust bench (`decode --write-events`).

    python bench.py FILE N

prints one JSON line, {"impl", "file", "records", "ms": [N per-iteration milliseconds]}, the
shape of `decode --time`. One iteration: the event's bytes (read once, before any timing) ->
json.loads (what the Lambda runtime does with the invoke body) -> the decorated handler, called
as Lambda would, which walks every record and reads every field.

Powertools decodes lazily: `record.key`, `record.value` and `record.headers` decode on first
read (cached afterwards). The handler reads each of them and every field of the model, so every
record is fully decoded.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.utilities.kafka import ConsumerRecords, SchemaConfig, kafka_consumer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

# The chat message with the limits relaychat's `ChatMessage` checks (ids.rs, text.rs).
Token = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:=+-]+$")]
Ulid = Annotated[str, StringConstraints(pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    schema_version: int = Field(ge=0)
    message_id: Ulid
    conversation_id: Token
    sender_id: Token
    sender_name: Annotated[str, StringConstraints(max_length=100)]
    content: Annotated[str, StringConstraints(max_length=4000)]
    client_message_id: Token | None = None
    sent_at: datetime
    recipients: list[Token]

    @field_validator("sender_name", "content")
    @classmethod
    def not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


schema_config = SchemaConfig(value_schema_type="JSON", value_output_serializer=ChatMessage)

# What the handler reads; summed so every read is used.
sink = 0


@kafka_consumer(schema_config=schema_config)
def handler(event: ConsumerRecords, _context) -> int:
    global sink
    decoded = 0
    for record in event.records:
        sink += len(record.topic) + record.partition + record.offset + int(record.timestamp) + len(record.timestamp_type)
        key = record.key
        sink += 0 if key is None else len(key)
        for name, v in record.headers.items():
            sink += len(name) + len(v)
        m = record.value
        if not isinstance(m, ChatMessage):
            continue
        sink += m.schema_version + len(m.message_id) + len(m.conversation_id) + len(m.sender_id)
        sink += len(m.sender_name) + len(m.content) + len(m.client_message_id or "") + m.sent_at.microsecond
        for r in m.recipients:
            sink += len(r)
        decoded += 1
    return decoded


class Context:
    function_name = "relaychat-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:relaychat-bench"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/relaychat-bench"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python bench.py FILE N", file=sys.stderr)
        return 2
    file = sys.argv[1]
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with open(file, "rb") as f:
        data = f.read()
    records = sum(len(r) for r in json.loads(data)["records"].values())
    context = Context()
    ms = []
    for _ in range(iterations):
        started = time.perf_counter()
        event = json.loads(data)
        decoded = handler(event, context)
        ms.append((time.perf_counter() - started) * 1000)
        if decoded != records:
            print(f"bench.py: {file}: decoded {decoded} of {records} records", file=sys.stderr)
            return 1
    if sink == 0:
        print("bench.py: nothing was read", file=sys.stderr)
    print(json.dumps({"impl": "powertools-python-pydantic", "file": file, "records": records, "ms": ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
