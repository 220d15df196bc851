package devissuer

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"
)

// loadOrCreateKeys returns the signing keys kept in path: the current key,
// the next one and the retired ones still published. When path does not
// exist, it generates a current and a next key and writes them there first.
func loadOrCreateKeys(path string) (current, next *signingKey, retired []*signingKey, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if current, err = newSigningKey(); err != nil {
			return nil, nil, nil, err
		}
		if next, err = newSigningKey(); err != nil {
			return nil, nil, nil, err
		}
		return current, next, nil, writeKeys(path, current, next, nil)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("devissuer: key file: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, nil, fmt.Errorf("devissuer: key file %s: %w", path, err)
	}
	if len(set.Keys) < 2 {
		return nil, nil, nil, fmt.Errorf("devissuer: key file %s holds %d keys, want at least the current and the next", path, len(set.Keys))
	}
	keys := make([]*signingKey, len(set.Keys))
	for n, k := range set.Keys {
		priv, ok := k.Key.(*rsa.PrivateKey)
		if !ok {
			return nil, nil, nil, fmt.Errorf("devissuer: key file %s: key %d is not an RSA private key", path, n)
		}
		key, err := signingKeyOf(priv)
		if err != nil {
			return nil, nil, nil, err
		}
		if key.id != k.KeyID {
			return nil, nil, nil, fmt.Errorf("devissuer: key file %s: key %d has kid %q, not its thumbprint", path, n, k.KeyID)
		}
		keys[n] = key
	}
	return keys[0], keys[1], keys[2:], nil
}

// writeKeys replaces path with the keys, current first, then next, then the
// retired ones: readable by its owner only, written to a temporary file and
// renamed, so a crash leaves the old file or the new one.
func writeKeys(path string, current, next *signingKey, retired []*signingKey) error {
	set := jose.JSONWebKeySet{}
	for _, k := range append([]*signingKey{current, next}, retired...) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv, KeyID: k.id, Algorithm: string(jose.RS256), Use: "sig"})
	}
	data, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return fmt.Errorf("devissuer: encode keys: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("devissuer: key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("devissuer: key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devissuer: write key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devissuer: key file: %w", err)
	}
	return nil
}

// signingKeyOf is priv with its kid, the RFC 7638 thumbprint of its public
// key.
func signingKeyOf(priv *rsa.PrivateKey) (*signingKey, error) {
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: key thumbprint: %w", err)
	}
	return &signingKey{id: base64.RawURLEncoding.EncodeToString(thumb), priv: priv}, nil
}
