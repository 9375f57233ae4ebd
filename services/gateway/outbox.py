"""The transactional outbox: a change's broker messages are committed with its rows, then sent.

A change (submit, cancel, retry) writes its rows and one outbox entry holding all its messages
in one transaction, commits, and only then publishes them with confirms. So a message never
reaches the broker for a change that did not commit (before this, a commit cut off after a
confirmed publish left `job.created` events of jobs that never existed: bug 5), and a committed
change is never lost when the broker or the gateway fails between the commit and the confirm:
the relay publishes every entry older than a grace period again. Delivered entries are deleted
in batches by the same background thread. Consumers deduplicate (event ids, job versions), so
an entry sent twice is harmless.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter, Gauge

from services.gateway.publisher import BrokerUnavailableError, Message

log = logging.getLogger(__name__)

RELAYED = Counter(
    "gateway_outbox_relayed_messages_total",
    "Messages of committed changes published by the relay (their first publish did not confirm).",
)
UNDELIVERED = Gauge(
    "gateway_outbox_undelivered_entries",
    "Outbox entries of committed changes not yet confirmed by the broker (at the last relay).",
)

RELAY_BATCH = 100  # entries per relay transaction


def encode(messages: Sequence[Message]) -> bytes:
    return json.dumps(
        [
            {
                "exchange": m.exchange,
                "routing_key": m.routing_key,
                "body": base64.b64encode(m.body).decode(),
                "type": m.type,
                "headers": dict(m.headers),
                "priority": m.priority,
                "message_id": m.message_id,
                "correlation_id": m.correlation_id,
                "mandatory": m.mandatory,
            }
            for m in messages
        ],
        separators=(",", ":"),
    ).encode()


def decode(data: bytes) -> list[Message]:
    return [
        Message(
            exchange=item["exchange"],
            routing_key=item["routing_key"],
            body=base64.b64decode(item["body"]),
            type=item["type"],
            headers=item["headers"],
            priority=item["priority"],
            message_id=item["message_id"],
            correlation_id=item["correlation_id"],
            mandatory=item["mandatory"],
        )
        for item in json.loads(data)
    ]


class ConnectionSource(Protocol):
    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...


class Publishing(Protocol):
    def publish(self, messages: Sequence[Message]) -> None: ...


class Outbox:
    """Sends committed entries, deletes delivered ones, and relays those left behind.

    `grace_seconds` must exceed the longest a request can take from its commit to its confirm
    (the publisher's lock wait plus its confirm timeout), so the relay does not race requests
    that are still publishing (a race would only cost a duplicate).
    """

    def __init__(
        self,
        pool: ConnectionSource,
        publisher: Publishing,
        *,
        grace_seconds: float,
        interval_seconds: float = 0.1,
        relay_every_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._grace = grace_seconds
        self._interval = interval_seconds
        self._relay_every = relay_every_seconds
        self._lock = threading.Lock()
        self._delivered: set[int] = set()  # confirmed, not yet deleted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    @staticmethod
    def record(conn: psycopg.Connection[Any], messages: Sequence[Message]) -> int:
        """Records `messages` in the caller's transaction; returns the entry id."""
        row = conn.execute(
            "INSERT INTO outbox (messages) VALUES (%s) RETURNING id", (encode(messages),)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def deliver(self, entry: int, messages: Sequence[Message]) -> bool:
        """Publishes a committed entry's messages; False if left for the relay (broker down)."""
        try:
            self._publisher.publish(messages)
        except BrokerUnavailableError as error:
            log.warning("outbox entry %d left for the relay: %s", entry, error)
            return False
        with self._lock:
            self._delivered.add(entry)
        return True

    def start(self) -> Outbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.delete_delivered()

    def delete_delivered(self) -> None:
        """Deletes the delivered entries in one statement; kept for the next try on failure."""
        with self._lock:
            done, self._delivered = self._delivered, set()
        if not done:
            return
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (sorted(done),))
        except psycopg.Error as error:
            log.warning("could not delete %d delivered outbox entries: %s", len(done), error)
            with self._lock:
                self._delivered |= done

    def relay(self) -> int:
        """Publishes entries older than the grace period; returns how many entries it sent."""
        with self._lock:
            skip = sorted(self._delivered)
        sent = 0
        with self._pool.connection() as conn:
            while True:
                with conn.transaction():
                    rows = conn.execute(
                        "SELECT id, messages FROM outbox"
                        " WHERE created_at < now() - make_interval(secs => %s)"
                        " AND NOT id = ANY(%s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (self._grace, skip, RELAY_BATCH),
                    ).fetchall()
                    if not rows:
                        break
                    messages = [m for _, data in rows for m in decode(bytes(data))]
                    self._publisher.publish(messages)
                    conn.execute(
                        "DELETE FROM outbox WHERE id = ANY(%s)", ([row[0] for row in rows],)
                    )
                RELAYED.inc(len(messages))
                sent += len(rows)
                log.info("relayed %d outbox entries (%d messages)", len(rows), len(messages))
            count = conn.execute("SELECT count(*) FROM outbox").fetchone()
            conn.commit()
        UNDELIVERED.set(count[0] if count else 0)
        return sent

    def _run(self) -> None:
        until_relay = 0.0
        while not self._stop.wait(self._interval):
            self.delete_delivered()
            until_relay -= self._interval
            if until_relay > 0:
                continue
            until_relay = self._relay_every
            try:
                self.relay()
            except (BrokerUnavailableError, psycopg.Error) as error:
                log.warning("outbox relay failed, retrying in %.1fs: %s", self._relay_every, error)
