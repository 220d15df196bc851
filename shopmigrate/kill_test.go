package shopmigrate

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestHelperSplitProcess is the split process TestSplitSurvivesKill kills:
// it runs only when that test starts it.
func TestHelperSplitProcess(t *testing.T) {
	if os.Getenv("SHOPMIGRATE_HELPER") != "1" {
		t.Skip("run by TestSplitSurvivesKill")
	}
	if err := Run(context.Background(), []string{"split"}, os.Getenv, os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// TestSplitSurvivesKill runs the split in a process of its own, kills it
// (SIGKILL) in the middle of the cart tables, reruns it, and gets exactly
// what a split that was never interrupted gets.
func TestSplitSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process of its own")
	}
	t.Parallel()
	b := setup(t, SmallSize)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSplitProcess$")
	cmd.Env = append(os.Environ(), "SHOPMIGRATE_HELPER=1",
		"LEGACY_URL="+b.cfg.LegacyURL, "PRODUCT_DATABASE_URL="+b.cfg.ProductURL, "CART_DATABASE_URL="+b.cfg.CartURL,
		"REPORT_DIR="+t.TempDir(), "USER_RULE=email", "ROUND_FRACTIONS=true", "BATCH_SIZE=100", "THROTTLE=20ms")
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok, _ := hasState(t.Context(), b.cart); ok && count(t, b.cart, `SELECT coalesce(sum(batches), 0) FROM shopmigrate.checkpoints`) >= 5 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the split process ended before it could be killed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the split process wrote no 5 cart batches within 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	killedAt := count(t, b.cart, `SELECT coalesce(sum(batches), 0) FROM shopmigrate.checkpoints`)

	resumed := split(t, b.cfg)
	if !resumed.Resumed || !resumed.Verified {
		t.Fatalf("rerun after the kill (%d cart batches in): resumed %t, verified %t", killedAt, resumed.Resumed, resumed.Verified)
	}
	got := b.dump(t)
	b.retarget(t)
	split(t, b.cfg)
	if want := b.dump(t); got != want {
		t.Errorf("the split killed after %d cart batches and resumed differs from an uninterrupted one: %s", killedAt, firstDiff(got, want))
	}
	t.Logf("killed after %d committed cart batches; the rerun resumed and matches an uninterrupted split", killedAt)
}
