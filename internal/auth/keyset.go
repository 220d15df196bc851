package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
// minInterval (failed fetches count), and concurrent callers share it. The
// set is also refetched on a schedule (see refreshIfDue), so a key the
// issuer stops publishing stops verifying without anyone's help. A refetch
// replaces the cache, so unpublished keys are dropped.
type keySet struct {
	url         string
	client      *http.Client
	now         func() time.Time
	minInterval time.Duration
	every       time.Duration // scheduled refresh interval, before max-age

	group singleflight.Group

	mu          sync.RWMutex
	keys        []jose.JSONWebKey
	fingerprint string    // the keys' JSON, to tell whether a fetch changed them
	lastAttempt time.Time // zero: never fetched
	lastErr     error     // result of the last fetch
	due         time.Time // when the scheduled refresh is due
	generation  uint64    // bumped whenever the fetched keys differ from the cached ones
}

// Bounds of the scheduled refresh interval, whatever the configuration or
// the issuer's Cache-Control say.
const (
	minScheduledRefresh = time.Minute
	maxScheduledRefresh = time.Hour
	// scheduledWait bounds how long a request waits for a scheduled fetch.
	scheduledWait = 2 * time.Second
)

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

// refreshIfDue refetches the key set if the scheduled refresh is due, and
// returns the generation of the keys to verify with. It waits for the fetch
// at most scheduledWait, then goes on with the cached keys while the fetch
// completes. A failed scheduled fetch keeps the cached keys (the issuer
// being down must not stop verification) and is retried after minInterval.
func (k *keySet) refreshIfDue(ctx context.Context) uint64 {
	k.mu.RLock()
	due, gen := !k.now().Before(k.due), k.generation
	k.mu.RUnlock()
	if due {
		// Wait for the fetch only so long: an issuer that does not answer
		// must not hold requests for fetchTimeout. The fetch goes on.
		wctx, cancel := context.WithTimeout(ctx, scheduledWait)
		_, _ = k.fetchShared(wctx, true)
		cancel()
		k.mu.RLock()
		gen = k.generation
		k.mu.RUnlock()
	}
	return gen
}

// refresh returns the key set after a fetch if one may start now (or is
// already running), else the cached keys, or ErrKeysUnavailable while the
// last fetch failed.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	return k.fetchShared(ctx, false)
}

// fetchShared fetches the key set unless it was fetched too recently: for a
// scheduled refresh, before the refresh is due; for an unknown kid, within
// minInterval of the last attempt. Concurrent callers share one fetch.
func (k *keySet) fetchShared(ctx context.Context, scheduled bool) ([]jose.JSONWebKey, error) {
	ch := k.group.DoChan("jwks", func() (any, error) {
		k.mu.Lock()
		now := k.now()
		if (scheduled && now.Before(k.due)) ||
			(!scheduled && !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.minInterval) {
			keys, err := k.keys, k.lastErr
			k.mu.Unlock()
			return keys, err
		}
		k.lastAttempt = now
		k.mu.Unlock()

		// The fetch outlives any single caller: others may be waiting on it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		keys, maxAge, err := k.fetch(fctx)

		k.mu.Lock()
		defer k.mu.Unlock()
		k.lastErr = err
		if err != nil {
			k.due = now.Add(k.minInterval)
			return nil, err
		}
		k.due = now.Add(scheduleInterval(k.every, maxAge))
		if fp := fingerprint(keys); fp != k.fingerprint {
			k.fingerprint = fp
			k.generation++
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

// scheduleInterval is every, shortened to the issuer's max-age (if it sent
// one, maxAge >= 0), within [minScheduledRefresh, maxScheduledRefresh].
func scheduleInterval(every, maxAge time.Duration) time.Duration {
	if maxAge >= 0 {
		every = min(every, maxAge)
	}
	return min(max(every, minScheduledRefresh), maxScheduledRefresh)
}

// fingerprint identifies a key set by its keys' JSON.
func fingerprint(keys []jose.JSONWebKey) string {
	var b strings.Builder
	for _, key := range keys {
		j, _ := key.MarshalJSON()
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// cacheMaxAge returns the max-age of a Cache-Control header, or -1 if it has
// none.
func cacheMaxAge(h http.Header) time.Duration {
	for _, v := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			if !strings.EqualFold(name, "max-age") {
				continue
			}
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 32); err == nil && secs >= 0 {
				return time.Duration(secs) * time.Second
			}
		}
	}
	return -1
}

// fetch GETs the JWKS and keeps the usable public signing keys, and
// returns the response's Cache-Control max-age (-1: none). Keys of
// unsupported types, symmetric keys and encryption keys are skipped.
func (k *keySet) fetch(ctx context.Context) (_ []jose.JSONWebKey, maxAge time.Duration, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%w: GET %s: %s", ErrKeysUnavailable, k.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: read JWKS: %v", ErrKeysUnavailable, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, 0, fmt.Errorf("%w: JWKS larger than %d bytes", ErrKeysUnavailable, maxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, 0, fmt.Errorf("%w: decode JWKS: %v", ErrKeysUnavailable, err)
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
		return nil, 0, fmt.Errorf("%w: JWKS has no usable signing key", ErrKeysUnavailable)
	}
	return keys, cacheMaxAge(resp.Header), nil
}
