// Package scaletest runs the shop as it is scaled out: several replicas of
// each service on loopback behind client-side balancing, one PostgreSQL
// through a transaction-mode PgBouncer, restarted replica by replica
// under load. Its long tests (TestLong…, SHOP_LONG=1) print their figures;
// the short one checks that both services work through PgBouncer.
package scaletest
