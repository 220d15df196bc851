package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Access is what a procedure requires of its caller.
type Access int

const (
	// Public admits anyone. Its requests are never authenticated: a token
	// sent along is ignored, not verified, and the handler sees no
	// identity.
	Public Access = iota + 1
	// User requires a user token (service tokens are refused).
	User
	// Admin requires a user token with RoleAdmin.
	Admin
	// Service requires a service token (user tokens are refused).
	Service
)

// String names the access level ("public", "user", "admin", "service").
func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case User:
		return "user"
	case Admin:
		return "admin"
	case Service:
		return "service"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// Rules maps full procedure names ("/shop.product.v1.ProductService/GetProduct")
// to the access they require. Middleware refuses every procedure not in the
// map: deny unless classified.
type Rules map[string]Access

// Check returns an error naming every procedure in procedures that r does
// not classify, every malformed procedure name in r, and every invalid
// Access value in r; nil when all is well. Services call it in a test with
// Procedures of their generated descriptors.
func (r Rules) Check(procedures []string) error {
	var errs []error
	var missing []string
	for _, p := range procedures {
		if _, ok := r[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		errs = append(errs, fmt.Errorf("auth: procedures not classified: %s", strings.Join(missing, ", ")))
	}
	keys := make([]string, 0, len(r))
	for p := range r {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	for _, p := range keys {
		if !isProcedure(p) {
			errs = append(errs, fmt.Errorf("auth: %q is not a procedure name (/package.Service/Method)", p))
		}
		if a := r[p]; a < Public || a > Service {
			errs = append(errs, fmt.Errorf("auth: %s has invalid access %v", p, a))
		}
	}
	return errors.Join(errs...)
}

// Procedures lists the full procedure name of every method of services,
// in declaration order.
func Procedures(services ...protoreflect.ServiceDescriptor) []string {
	var out []string
	for _, s := range services {
		methods := s.Methods()
		for i := range methods.Len() {
			out = append(out, "/"+string(s.FullName())+"/"+string(methods.Get(i).Name()))
		}
	}
	return out
}

// isProcedure reports whether p has the shape "/service/method".
func isProcedure(p string) bool {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return false
	}
	svc, method, ok := strings.Cut(rest, "/")
	return ok && svc != "" && method != "" && !strings.Contains(method, "/")
}
