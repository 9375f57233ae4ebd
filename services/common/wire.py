"""The AMQP message format of work and event messages, shared by every producer and consumer.

Work message: body = a serialized `observatory.jobs.v1.Job`, AMQP `type` = JOB_MESSAGE_TYPE,
headers ATTEMPT_HEADER (the 1-based attempt it is meant to run) and VERSION_HEADER (the
contract's major version). Event message: body = a serialized EventEnvelope, `type` =
EVENT_MESSAGE_TYPE, `message_id` = the event id; or body = a serialized EventBatch of events of
one type, `type` = EVENT_BATCH_MESSAGE_TYPE. services/common/events.py encodes and decodes both.
See services/README.md.
"""

JOB_MESSAGE_TYPE = "observatory.jobs.v1.Job"
EVENT_MESSAGE_TYPE = "observatory.events.v1.EventEnvelope"
EVENT_BATCH_MESSAGE_TYPE = "observatory.events.v1.EventBatch"
ATTEMPT_HEADER = "x-attempt"
VERSION_HEADER = "x-contract-version"
CONTRACT_MAJOR = "1"
