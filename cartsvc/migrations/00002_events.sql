-- Event delivery, receiver side (docs/EVENTS.md). productsvc's relay calls
-- EventSinkService.DeliverEvents; each event is applied in ONE transaction
-- that also records it in the inbox (so a redelivery is a DUPLICATE) and
-- raises the product's high-water mark in product_versions (so an older or
-- equal version is STALE, and a tombstone keeps a deleted product deleted).
-- A poison event (one that cannot be applied, whatever the retry) goes to
-- event_dlq instead, where an admin lists, replays or purges it.

-- +goose Up

-- One row per event given a final result other than DEAD_LETTERED, written
-- in the transaction of the event's effect. The janitor deletes rows older
-- than the retention window; product_versions keeps a redelivery after
-- that harmless (it is STALE).
CREATE TABLE inbox (
    event_id          uuid        PRIMARY KEY,
    type              text        NOT NULL,
    -- The changed aggregate, when its id is a UUID (unknown types may not
    -- use UUIDs).
    aggregate_id      uuid,
    aggregate_version bigint      NOT NULL,
    -- applied: product data changed; stale: not newer than what was known;
    -- unused: a known type cartsvc keeps nothing of (CategoryChanged);
    -- unknown: a type this build does not know, ignored.
    outcome           text        NOT NULL CHECK (outcome IN ('applied', 'stale', 'unused', 'unknown')),
    -- The caller (service client id) that delivered it.
    peer              text        NOT NULL,
    receive_time      timestamptz NOT NULL
);

CREATE INDEX inbox_receive_time_idx ON inbox (receive_time);

-- Poison events: undecodable, or violating the event contract (ids,
-- versions, currency, ...). A redelivery of the same event id updates its
-- row (reason, attempts) rather than adding one; applying the event (by a
-- replay, or a redelivery a fixed receiver accepts) deletes it.
CREATE TABLE event_dlq (
    -- The dead letter's own id (DeadLetter.id).
    id                uuid        PRIMARY KEY,
    -- The event's id when it is a UUID (the idempotency key); NULL when it
    -- is not, and then every delivery is a row of its own.
    event_id          uuid        UNIQUE,
    type              text        NOT NULL,
    aggregate_id      uuid,
    aggregate_version bigint      NOT NULL,
    -- The whole shop.events.v1.Event as received, protobuf binary.
    event             bytea       NOT NULL,
    peer              text        NOT NULL,
    -- Why it cannot be applied, safe to show to operators (the last reason
    -- after a failed replay).
    reason            text        NOT NULL,
    -- Deliveries and replays that found it poison.
    attempts          integer     NOT NULL CHECK (attempts > 0),
    -- When it was first dead-lettered, and last found poison.
    create_time       timestamptz NOT NULL,
    update_time       timestamptz NOT NULL
);

CREATE INDEX event_dlq_list_idx ON event_dlq (create_time DESC, id);

-- +goose Down
DROP TABLE event_dlq;
DROP TABLE inbox;
