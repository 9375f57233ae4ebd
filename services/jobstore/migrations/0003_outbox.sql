-- Transactional outbox: the broker messages of a committed change (a submit, cancel or retry)
-- until the broker has confirmed them. A change commits its rows and its outbox entry together,
-- then publishes; an entry left behind (broker or gateway down after the commit) is published
-- again by the gateway's relay. One entry per change, not per message: a batch submit of 500
-- jobs is one row. `messages` is services/gateway/outbox.py's encoding.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    messages   bytea       NOT NULL
);
