package auth

import (
	"context"
	"slices"
)

// Identity is the caller a verified access token names.
type Identity struct {
	// Subject is the token's sub: the user id (or, for a service, its
	// client id). Never empty for a verified token.
	Subject string
	// ClientID is the client the token was issued to (client_id, else azp);
	// may be empty.
	ClientID string
	// Scopes from the space-separated scope claim.
	Scopes []string
	// Roles from the configured roles claim.
	Roles []string
	// Service is true for a client-credentials (machine) token:
	// sub == client_id. Such a token is never a user, whatever its scopes;
	// Service procedures additionally require the configured service scope.
	// Every other token is a user token.
	Service bool
}

// HasRole reports whether the identity has role; false for a nil Identity.
func (id *Identity) HasRole(role string) bool {
	return id != nil && slices.Contains(id.Roles, role)
}

// HasScope reports whether the identity has scope; false for a nil Identity.
func (id *Identity) HasScope(scope string) bool {
	return id != nil && slices.Contains(id.Scopes, scope)
}

type identityKey struct{}

// WithIdentity returns a context carrying id, as Middleware does for a
// verified token; handler tests use it directly.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity Middleware verified for this request;
// ok is false when the request carried no token (Public procedures only).
func FromContext(ctx context.Context) (id *Identity, ok bool) {
	id, ok = ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
