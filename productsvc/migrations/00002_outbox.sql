-- The transactional outbox (docs/EVENTS.md). Every catalog change writes its
-- events here in the transaction that makes the change: one row per event
-- and subscriber, holding that subscriber's delivery state. The relay claims
-- due rows (next_attempt_at <= now) with FOR UPDATE SKIP LOCKED and leases
-- them (locked_until, locked_by); a final answer from the subscriber deletes
-- the row, a transient failure reschedules it with backoff, and an event that
-- cannot or may no longer be delivered moves to outbox_dead.
--
-- Nothing here depends on insertion or commit order: rows are claimed by due
-- time, and a row that commits late is simply due when it becomes visible.

-- +goose Up
CREATE TABLE outbox (
    -- The subscriber (a configured name such as "cartsvc") this row delivers to.
    subscriber        text        NOT NULL CHECK (subscriber ~ '^[a-z][a-z0-9_-]{0,62}$'),
    event_id          uuid        NOT NULL,
    -- Fully qualified payload type, e.g. shop.events.v1.ProductChanged.
    type              text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL CHECK (aggregate_version > 0),
    occurred_at       timestamptz NOT NULL,
    -- The whole shop.events.v1.Event, protobuf binary, sent as stored.
    event             bytea       NOT NULL,
    -- Delivery attempts so far; a claim counts as one.
    attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the row is due; a claim moves it to the end of the lease, so rows
    -- of a relay that died are due again once the lease is over.
    next_attempt_at   timestamptz NOT NULL,
    -- The lease of the relay that claimed the row (NULL when not claimed).
    locked_until      timestamptz,
    locked_by         uuid,
    -- The last transient failure, for operators.
    last_error        text        NOT NULL DEFAULT '',
    -- When the row was queued (written with its change, or replayed); the
    -- relay's maximum age counts from here.
    create_time       timestamptz NOT NULL,
    PRIMARY KEY (subscriber, event_id)
);

CREATE INDEX outbox_due_idx ON outbox (subscriber, next_attempt_at);

-- Events the relay gave up on: a permanent failure, or attempts or age
-- exhausted. They stay until replayed (moved back to outbox with attempts
-- reset) or purged, through DeadLetterService.
CREATE TABLE outbox_dead (
    id                uuid        PRIMARY KEY,
    subscriber        text        NOT NULL,
    event_id          uuid        NOT NULL,
    type              text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    occurred_at       timestamptz NOT NULL,
    event             bytea       NOT NULL,
    attempts          integer     NOT NULL,
    last_error        text        NOT NULL,
    -- When the event was dead-lettered.
    create_time       timestamptz NOT NULL,
    UNIQUE (subscriber, event_id)
);

CREATE INDEX outbox_dead_list_idx ON outbox_dead (create_time DESC, id);

-- Wake the relays when events commit (NOTIFY is delivered at commit, and
-- once per transaction however many statements insert). The relays LISTEN
-- over the direct database URL and also poll, so a lost notification only
-- delays delivery.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shop_outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox_dead;
DROP TABLE outbox;
