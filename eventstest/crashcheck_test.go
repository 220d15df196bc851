//go:build linux

package eventstest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// crashState is what both services hold of a product.
type crashState struct {
	name     string
	price    int64
	currency string
	version  int64
}

// checkCrashOutcome compares cartsvc's database with productsvc's: no
// event lost, none applied twice.
func checkCrashOutcome(t *testing.T, products, carts *pgxpool.Pool) {
	t.Helper()
	checkEveryEventOnce(t, products, carts)
	want := productStates(t, products)
	marks := versionMarks(t, carts)
	wrongMarks := 0
	for id, s := range want {
		if marks[id] != s.version {
			wrongMarks++
		}
	}
	checked, wrongLines := compareCartLines(t, carts, want)
	if wrongMarks > 0 || wrongLines > 0 || checked != 2*len(want) {
		t.Errorf("%d of %d version marks and %d of %d cart lines differ from productsvc (want 0, and %d lines)",
			wrongMarks, len(want), wrongLines, checked, 2*len(want))
	}
	t.Logf("checked %d cart lines and %d version marks against productsvc: all equal", checked, len(want))
}

// checkEveryEventOnce checks that cartsvc received every event productsvc
// published, dead-lettered none, and applied none twice or backwards.
func checkEveryEventOnce(t *testing.T, products, carts *pgxpool.Pool) {
	t.Helper()
	count := func(pool *pgxpool.Pool, sql string) int {
		var n int
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	events := count(products, "SELECT (SELECT coalesce(sum(version), 0) FROM products) + (SELECT coalesce(sum(version), 0) FROM categories)")
	received := count(carts, "SELECT count(*) FROM inbox")
	t.Logf("events published (every version of every product and category): %d; received by cartsvc: %d", events, received)
	if received != events {
		t.Errorf("cartsvc received %d distinct events, productsvc published %d", received, events)
	}
	for what, sql := range map[string]string{
		"events dead-lettered by productsvc":       "SELECT count(*) FROM outbox_dead",
		"events dead-lettered by cartsvc":          "SELECT count(*) FROM event_dlq",
		"version regressions seen by the triggers": "SELECT count(*) FROM version_regressions",
		"versions raised more than once":           "SELECT count(*) - count(DISTINCT (product_id, version)) FROM version_raises",
	} {
		pool := carts
		if strings.Contains(what, "productsvc") {
			pool = products
		}
		if n := count(pool, sql); n != 0 {
			t.Errorf("%s: %d, want 0", what, n)
		}
	}
}

// productStates returns productsvc's products by id.
func productStates(t *testing.T, products *pgxpool.Pool) map[uuid.UUID]crashState {
	want := map[uuid.UUID]crashState{}
	var id uuid.UUID
	var s crashState
	eachRow(t, products, "SELECT id, name, price_minor, currency_code, version FROM products",
		[]any{&id, &s.name, &s.price, &s.currency, &s.version}, func() { want[id] = s })
	return want
}

// versionMarks returns cartsvc's version marks by product id.
func versionMarks(t *testing.T, carts *pgxpool.Pool) map[uuid.UUID]int64 {
	marks := map[uuid.UUID]int64{}
	var id uuid.UUID
	var v int64
	eachRow(t, carts, "SELECT product_id, version FROM product_versions", []any{&id, &v}, func() { marks[id] = v })
	return marks
}

// eachRow scans each row of sql's result into scans and calls fn.
func eachRow(t *testing.T, pool *pgxpool.Pool, sql string, scans []any, fn func()) {
	t.Helper()
	rows, _ := pool.Query(context.Background(), sql)
	if _, err := pgx.ForEachRow(rows, scans, func() error {
		fn()
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// compareCartLines compares every cart line's snapshot with want and
// returns how many lines it checked and how many differ (the first five
// are reported).
func compareCartLines(t *testing.T, carts *pgxpool.Pool, want map[uuid.UUID]crashState) (checked, wrong int) {
	t.Helper()
	var id uuid.UUID
	var s crashState
	eachRow(t, carts, "SELECT product_id, name, unit_price_minor, currency_code, product_version FROM cart_items",
		[]any{&id, &s.name, &s.price, &s.currency, &s.version}, func() {
			checked++
			if s != want[id] {
				wrong++
				if wrong <= 5 {
					t.Errorf("cart line of %s = %+v, productsvc has %+v", id, s, want[id])
				}
			}
		})
	return checked, wrong
}

// auditVersions installs triggers on the cart database that record every
// version mark raised and every version mark or cart line snapshot that
// goes backwards (or a tombstone lifted).
func auditVersions(t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `
		CREATE TABLE version_regressions (what text, product_id uuid, old_version bigint, new_version bigint);
		CREATE TABLE version_raises (product_id uuid, version bigint);
		CREATE FUNCTION audit_marks() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'UPDATE' AND (NEW.version < OLD.version OR (OLD.deleted AND NOT NEW.deleted)) THEN
				INSERT INTO version_regressions VALUES ('mark', NEW.product_id, OLD.version, NEW.version);
			END IF;
			INSERT INTO version_raises VALUES (NEW.product_id, NEW.version);
			RETURN NEW;
		END $$;
		CREATE TRIGGER audit_marks AFTER INSERT OR UPDATE ON product_versions FOR EACH ROW EXECUTE FUNCTION audit_marks();
		CREATE FUNCTION audit_lines() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.product_version < OLD.product_version THEN
				INSERT INTO version_regressions VALUES ('line', NEW.product_id, OLD.product_version, NEW.product_version);
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER audit_lines AFTER UPDATE ON cart_items FOR EACH ROW EXECUTE FUNCTION audit_lines();`)
	if err != nil {
		t.Fatalf("install the audit triggers: %v", err)
	}
}
