package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Messages clients see. They never carry verification details.
const (
	msgUnauthenticated  = "missing or invalid access token"
	msgPermissionDenied = "permission denied"
	msgNotClassified    = "unknown procedure; check the service and method names (server reflection lists them)"
	msgKeysUnavailable  = "cannot verify access token now, retry later"
)

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithLogger logs each refused request (procedure, code, and the reason,
// which clients never see) at Info level. The token is never logged.
func WithLogger(l *slog.Logger) MiddlewareOption {
	return func(m *middleware) {
		if l != nil {
			m.logger = l
		}
	}
}

type middleware struct {
	verifier *Verifier
	rules    Rules
	next     http.Handler
	errors   *connect.ErrorWriter
	logger   *slog.Logger
	realm    string
}

// Middleware guards the Connect handlers in next. Mount it around RPC
// handlers only (after CORS), since it treats the request path as the
// procedure name, which is the same for Connect (POST and GET), gRPC and
// gRPC-Web.
//
// For each request:
//   - a procedure not in rules (or an escaped path) is refused with
//     Unimplemented "unknown procedure ...", before any token work (deny
//     unless classified);
//   - a Public procedure is served at once: its Authorization header is
//     never read, so the handler sees no identity even for a valid token;
//   - a malformed Authorization header (not exactly one "Bearer <token>",
//     scheme case-insensitive) is Unauthenticated;
//   - a token that fails v.Verify is Unauthenticated (Unavailable if the
//     issuer's keys could not be fetched);
//   - then the rule decides: User, Admin and Service
//     without a token are Unauthenticated; User refuses service tokens,
//     Admin refuses service tokens and users without RoleAdmin, Service
//     refuses user tokens, all with PermissionDenied.
//
// Admitted requests carry the Identity in their context (see FromContext).
// Unauthenticated responses carry a "WWW-Authenticate: Bearer" challenge.
// Changing rules after the call has no effect.
func Middleware(v *Verifier, rules Rules, next http.Handler, opts ...MiddlewareOption) http.Handler {
	m := &middleware{
		verifier: v,
		rules:    maps.Clone(rules),
		next:     next,
		errors:   connect.NewErrorWriter(),
		logger:   slog.New(slog.DiscardHandler),
		realm:    v.Audience(),
	}
	for _, opt := range opts {
		opt(m)
	}
	return m
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	procedure := r.URL.Path
	access, ok := m.rules[procedure]
	if !ok || r.URL.RawPath != "" {
		// Deny unless classified. Every procedure a service serves has a
		// rule (each service checks that in a test), so a path without one
		// is a misspelt or foreign procedure: say so, as gRPC does.
		m.refuse(w, r, connect.CodeUnimplemented, msgNotClassified, "", "no rule for this path")
		return
	}
	if access == Public {
		// Public procedures never look at the token: a request carrying one
		// costs what one without does, and the handler sees no identity.
		m.next.ServeHTTP(w, r)
		return
	}
	token, present, err := bearerToken(r.Header)
	if err != nil {
		m.refuse(w, r, connect.CodeUnauthenticated, msgUnauthenticated, "invalid_request", err.Error())
		return
	}
	var id *Identity
	if present {
		id, err = m.verifier.Verify(r.Context(), token)
		switch {
		case err == nil:
		case errors.Is(err, ErrKeysUnavailable):
			m.refuse(w, r, connect.CodeUnavailable, msgKeysUnavailable, "", err.Error())
			return
		case errors.Is(err, context.Canceled):
			m.refuse(w, r, connect.CodeCanceled, "request canceled", "", err.Error())
			return
		case errors.Is(err, context.DeadlineExceeded):
			m.refuse(w, r, connect.CodeDeadlineExceeded, "request deadline exceeded", "", err.Error())
			return
		default:
			m.refuse(w, r, connect.CodeUnauthenticated, msgUnauthenticated, "invalid_token", err.Error())
			return
		}
	}
	if code, reason := authorize(access, id, m.verifier.serviceScope); code != 0 {
		msg := msgPermissionDenied
		if code == connect.CodeUnauthenticated {
			msg = msgUnauthenticated
		}
		m.refuse(w, r, code, msg, "", reason)
		return
	}
	if id != nil {
		r = r.WithContext(WithIdentity(r.Context(), id))
	}
	m.next.ServeHTTP(w, r)
}

// authorize applies the rule to the verified identity (nil: no token);
// Service procedures need a machine token carrying serviceScope.
func authorize(access Access, id *Identity, serviceScope string) (connect.Code, string) {
	if access == Public {
		return 0, ""
	}
	if id == nil {
		return connect.CodeUnauthenticated, "no access token for a " + access.String() + " procedure"
	}
	switch access {
	case User:
		if id.Service {
			return connect.CodePermissionDenied, "service token on a user procedure"
		}
	case Admin:
		if id.Service {
			return connect.CodePermissionDenied, "service token on an admin procedure"
		}
		if !id.HasRole(RoleAdmin) {
			return connect.CodePermissionDenied, "user lacks role " + RoleAdmin
		}
	case Service:
		if !id.Service {
			return connect.CodePermissionDenied, "user token on a service procedure"
		}
		if !id.HasScope(serviceScope) {
			return connect.CodePermissionDenied, "service token lacks scope " + serviceScope
		}
	default:
		return connect.CodePermissionDenied, "invalid access rule " + access.String()
	}
	return 0, ""
}

// refuse writes err in the request's protocol. bearerError, if set, goes
// into the WWW-Authenticate challenge (RFC 6750 section 3).
func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, code connect.Code, msg, bearerError, reason string) {
	m.logger.LogAttrs(r.Context(), slog.LevelInfo, "auth: request refused",
		slog.String("procedure", r.URL.Path),
		slog.String("code", code.String()),
		slog.String("reason", reason))
	if code == connect.CodeUnauthenticated {
		challenge := fmt.Sprintf("Bearer realm=%q", m.realm)
		if bearerError != "" {
			challenge += fmt.Sprintf(", error=%q", bearerError)
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	_ = m.errors.Write(w, r, connect.NewError(code, errors.New(msg)))
}

// bearerToken extracts the token of the one Authorization header.
// present is false when there is no Authorization header at all.
func bearerToken(h http.Header) (token string, present bool, err error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, errors.New("more than one Authorization header")
	}
	scheme, rest, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true, errors.New("authorization scheme is not Bearer")
	}
	token = strings.TrimLeft(rest, " ")
	if !isB64Token(token) {
		return "", true, errors.New("malformed bearer token")
	}
	return token, true, nil
}

// isB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
