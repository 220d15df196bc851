-- Writers no longer NOTIFY in their transactions. NOTIFY takes a
-- cluster-wide lock at commit, so the trigger serialized every transaction
-- that queued events (INSERT plus pg_notify ran at 0.4× a plain INSERT).
-- productsvc now wakes its own relay in-process after the commit and sends
-- at most one NOTIFY per interval outside business transactions, which
-- wakes the relays of other replicas (relay.Notifier).

-- +goose Up
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();

-- +goose Down
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
