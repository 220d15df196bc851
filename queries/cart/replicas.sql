-- CountVersionListeners counts the sessions on this database LISTENing for
-- product versions (one per running cartsvc replica: ListenForVersions
-- names its connection VersionsListener), other than the caller's.
-- name: CountVersionListeners :one
SELECT count(*) FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND application_name = @application_name::text AND pid <> pg_backend_pid();
