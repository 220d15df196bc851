-- LegacyNow is the legacy database's clock: where a pass begins.
-- name: LegacyNow :one
SELECT now()::timestamptz AS now;
