package shopmigrate

import (
	"fmt"
	"strings"
	"testing"
)

// schemaState renders the legacy database's shape and data: its foreign
// keys, its columns and a checksum of every table.
func schemaState(t *testing.T, b *bundle) string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid), E'\n' ORDER BY conrelid::regclass::text, conname)
		 FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`,
		`SELECT string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable, E'\n' ORDER BY table_name, ordinal_position)
		 FROM information_schema.columns WHERE table_schema = 'public'`,
	} {
		var s string
		if err := b.legacy.QueryRow(t.Context(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	for _, tbl := range legacyTables {
		n, sum, err := checksum(t.Context(), b.legacy, "SELECT * FROM "+tbl)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s: %d rows, checksum %s", tbl, n, sum))
	}
	return strings.Join(out, "\n")
}

// TestInplaceMigratesInOneTransaction: a dry run and a run failing midway
// leave the legacy database exactly as it was; a run drops the
// cross-service foreign keys and backfills the snapshot columns, verified;
// a second run changes nothing; --down restores the original shape.
func TestInplaceMigratesInOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, SmallSize)
	cfg := InplaceConfig{LegacyURL: b.cfg.LegacyURL}
	original := schemaState(t, b)

	dry := cfg
	dry.DryRun = true
	rep, err := Inplace(t.Context(), dry)
	if err != nil || !rep.Verified || rep.Changed == 0 {
		t.Fatalf("dry run: err %v, verified %t, changed %d; want a verified plan with changes", err, rep.Verified, rep.Changed)
	}
	if got := schemaState(t, b); got != original {
		t.Fatal("the dry run changed the legacy database")
	}

	failing := cfg
	failing.failAfterStep = 7 // foreign keys dropped, the first columns added
	if rep, err := Inplace(t.Context(), failing); err == nil || !strings.Contains(rep.Outcome, "rolled back") {
		t.Fatalf("run failing midway: err %v, outcome %q; want a rollback", err, rep.Outcome)
	}
	if got := schemaState(t, b); got != original {
		t.Fatal("a run failing midway changed the legacy database")
	}

	rep, err = Inplace(t.Context(), cfg)
	if err != nil || !rep.Verified {
		t.Fatalf("Inplace: %v (verified %t): %s", err, rep.Verified, rep.Outcome)
	}
	if n := count(t, b.legacy, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid IN ('users'::regclass, 'products'::regclass, 'categories'::regclass)`); n != 0 {
		t.Errorf("%d cross-service foreign keys left", n)
	}
	if n := count(t, b.legacy, `SELECT count(*) FROM cart_items i JOIN products p ON p.id = i.product_id
		WHERE i.product_name <> p.name OR i.product_price <> p.price`); n != 0 {
		t.Errorf("%d cart lines with a snapshot other than their product", n)
	}
	if n := count(t, b.legacy, `SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id WHERE p.category_name <> c.name`); n != 0 {
		t.Errorf("%d products with another category_name than their category's", n)
	}
	migrated := schemaState(t, b)

	again, err := Inplace(t.Context(), cfg)
	if err != nil || again.Changed != 0 || !strings.HasPrefix(again.Outcome, "Nothing changed") {
		t.Errorf("second run: err %v, changed %d, %q; want nothing changed", err, again.Changed, again.Outcome)
	}
	if got := schemaState(t, b); got != migrated {
		t.Error("the second run changed the database")
	}

	down := cfg
	down.Down = true
	if rep, err := Inplace(t.Context(), down); err != nil || !rep.Verified {
		t.Fatalf("--down: %v: %s", err, rep.Outcome)
	}
	if got := schemaState(t, b); got != original {
		t.Errorf("after --down the legacy database differs from the original:\n%s\n----\n%s", got, original)
	}
}
