-- Which sender replica delivered each event (issue 15): the relay of every
-- productsvc replica names itself in the Shop-Relay-Replica header, and the
-- inbox keeps it next to peer (the client id, the same for all of them).
-- The apply transaction sets shop.relay_replica (set_config, local to the
-- transaction) when the header is present; the column's default reads it,
-- so the inbox insert itself is unchanged. NULL: no header (older senders,
-- replays).

-- +goose Up
ALTER TABLE inbox ADD COLUMN relay_replica text
    DEFAULT nullif(current_setting('shop.relay_replica', true), '')
    CHECK (char_length(relay_replica) <= 255);

-- +goose Down
ALTER TABLE inbox DROP COLUMN relay_replica;
