-- CountVersionListeners counts the sessions on this database LISTENing for
-- product versions (one per running cartsvc replica: ListenForVersions
-- names its connection VersionsListener), other than the caller's.
-- name: CountVersionListeners :one
SELECT count(*) FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND application_name = @application_name::text AND pid <> pg_backend_pid();

-- SetRelayReplica names the sender replica whose delivery the current
-- transaction applies; the inbox rows it inserts record it (the default of
-- inbox.relay_replica, migration 00004).
-- name: SetRelayReplica :exec
SELECT set_config('shop.relay_replica', @replica::text, true);
