package devissuer_test

import (
	"slices"
	"testing"
	"time"

	"github.com/decoupledshop/shop/internal/devissuer"
	"github.com/decoupledshop/shop/internal/devissuer/issuertest"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	bad := map[string]devissuer.Config{
		"user without password": {Users: map[string]devissuer.User{"bob": {}}},
		"client without secret": {Clients: map[string]devissuer.Client{"svc": {}}},
		"reserved client id":    {Clients: map[string]devissuer.Client{devissuer.WebClientID: {Secret: "x"}}},
		"negative ttl":          {TokenTTL: -time.Second},
	}
	for name, cfg := range bad {
		if _, err := devissuer.New(cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

func TestRotateKeysPublishesNextAndRetiresCurrent(t *testing.T) {
	t.Parallel()
	iss := issuertest.New(t, testConfig())
	oldCur, _ := iss.KeyID(devissuer.KeyCurrent)
	oldNext, _ := iss.KeyID(devissuer.KeyNext)
	before, err := iss.UserToken("alice")
	if err != nil {
		t.Fatal(err)
	}

	if err := iss.RotateKeys(); err != nil {
		t.Fatal(err)
	}
	cur, _ := iss.KeyID(devissuer.KeyCurrent)
	next, _ := iss.KeyID(devissuer.KeyNext)
	if cur != oldNext || next == oldNext || next == oldCur {
		t.Fatalf("after rotation current=%s next=%s, want current=%s (old next) and a fresh next", cur, next, oldNext)
	}
	if got := kids(fetchJWKS(t, iss)); !slices.Equal(got, []string{cur, next, oldCur}) {
		t.Fatalf("JWKS after rotation = %v, want current, next, retired %v", got, []string{cur, next, oldCur})
	}
	verified(t, iss, before) // the retired key still verifies its tokens
	after, err := iss.UserToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := verified(t, iss, after); h.KeyID != cur {
		t.Fatalf("new token kid %s, want the new current key %s", h.KeyID, cur)
	}

	iss.RemoveOldKeys()
	if got := kids(fetchJWKS(t, iss)); !slices.Equal(got, []string{cur, next}) {
		t.Fatalf("JWKS after RemoveOldKeys = %v, want %v", got, []string{cur, next})
	}
}

func TestSubjectIsStablePerUsername(t *testing.T) {
	t.Parallel()
	// The literal pins the derivation: changing it would orphan dev carts.
	if got := devissuer.Subject("alice"); got != devissuer.Subject("alice") || got != "ca6095b7-0cbd-5f40-973b-896243c0d1a0" {
		t.Errorf("Subject(alice) = %s, want the pinned stable value", got)
	}
	if devissuer.Subject("alice") == devissuer.Subject("bob") {
		t.Error("alice and bob share a subject")
	}
}
