package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// asymmetricAlgs are the only signature algorithms accepted: never "none",
// never HS* (a public key must not become an HMAC secret).
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

const (
	maxJWKSBytes = 1 << 20
	fetchTimeout = 10 * time.Second
)

var errUnknownKey = errors.New("no published key matches the token's kid")

// keySet is an oidc.KeySet that caches the issuer's JWKS. A token whose kid
// is not cached triggers a refetch, but at most one fetch starts per
// minInterval (failed fetches count), and concurrent callers share it. A
// refetch replaces the cache, so unpublished keys are dropped.
type keySet struct {
	url         string
	client      *http.Client
	now         func() time.Time
	minInterval time.Duration

	group singleflight.Group

	mu          sync.RWMutex
	keys        []jose.JSONWebKey
	lastAttempt time.Time // zero: never fetched
	lastErr     error     // result of the last fetch
}

// keyErrSlot lets Verify learn why the key set refused a token, since
// go-oidc flattens the error it gets from VerifySignature.
type keyErrSlot struct{}

// VerifySignature implements oidc.KeySet: it returns the payload of a
// compact JWS signed (with an asymmetric algorithm) by a published key.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := k.verify(ctx, raw)
	if err != nil {
		if slot, ok := ctx.Value(keyErrSlot{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

func (k *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, asymmetricAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	if payload, found, err := verifyWith(jws, k.cached()); found {
		return payload, err
	}
	keys, err := k.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if payload, found, err := verifyWith(jws, keys); found {
		return payload, err
	}
	return nil, errUnknownKey
}

// verifyWith checks jws against keys. found reports whether the answer is
// final: a key with the token's kid exists (its verdict stands, a refetch
// would not change the key behind a kid), or, for a token without kid, some
// key verified it.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) (payload []byte, found bool, err error) {
	h := jws.Signatures[0].Header
	for _, key := range keys {
		if h.KeyID != "" && key.KeyID != h.KeyID {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != h.Algorithm {
			if h.KeyID != "" {
				return nil, true, fmt.Errorf("key %s is for %s, token uses %s", key.KeyID, key.Algorithm, h.Algorithm)
			}
			continue
		}
		payload, err := jws.Verify(key)
		if err == nil {
			return payload, true, nil
		}
		if h.KeyID != "" {
			return nil, true, fmt.Errorf("bad signature for key %s: %w", key.KeyID, err)
		}
	}
	return nil, false, nil
}

func (k *keySet) cached() []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys
}

// refresh returns the key set after a fetch if one may start now (or is
// already running), else the cached keys, or ErrKeysUnavailable while the
// last fetch failed.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	ch := k.group.DoChan("jwks", func() (any, error) {
		k.mu.Lock()
		now := k.now()
		if !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.minInterval {
			keys, err := k.keys, k.lastErr
			k.mu.Unlock()
			return keys, err
		}
		k.lastAttempt = now
		k.mu.Unlock()

		// The fetch outlives any single caller: others may be waiting on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		keys, err := k.fetch(fctx)

		k.mu.Lock()
		defer k.mu.Unlock()
		k.lastErr = err
		if err != nil {
			return nil, err
		}
		k.keys = keys
		return keys, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]jose.JSONWebKey), nil
	}
}

// fetch GETs the JWKS and keeps the usable public signing keys. Keys of
// unsupported types, symmetric keys and encryption keys are skipped.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s: %s", ErrKeysUnavailable, k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read JWKS: %v", ErrKeysUnavailable, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("%w: JWKS larger than %d bytes", ErrKeysUnavailable, maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%w: decode JWKS: %v", ErrKeysUnavailable, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, rawKey := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(rawKey); err != nil {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if pub := key.Public(); pub.Valid() && pub.IsPublic() {
			keys = append(keys, pub)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: JWKS has no usable signing key", ErrKeysUnavailable)
	}
	return keys, nil
}
