-- Results of catalog writes that carried a request_id, so that a retried
-- write (its first answer was lost) returns the first result instead of
-- applying the change again. Stored in the write's transaction; kept 24 h
-- (productsvc.RequestRetention), pruned a few rows per write.

-- +goose Up
CREATE TABLE request_results (
    -- The caller (the token's subject): ids are the caller's own.
    subject     text        NOT NULL CHECK (char_length(subject) <= 255),
    request_id  text        NOT NULL CHECK (char_length(request_id) BETWEEN 1 AND 64),
    -- SHA-256 of the procedure and the request without its request_id: a
    -- different request under the same id is refused.
    fingerprint bytea       NOT NULL,
    -- The response, protobuf binary.
    response    bytea       NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (subject, request_id)
);

CREATE INDEX request_results_create_time_idx ON request_results (create_time);

-- +goose Down
DROP TABLE request_results;
