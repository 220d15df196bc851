package server

import (
	"net/http"
	"slices"
	"strings"

	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
)

// withCORS answers cross-origin requests from origins (exact matches,
// case-insensitive) for the Connect, gRPC-Web and GET protocols, with the
// Authorization header allowed and no credentials; preflights are answered
// here and never reach h. With no origins it returns h unchanged, so no CORS
// header is ever sent.
func withCORS(origins []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[strings.ToLower(o)] = true
	}
	return cors.New(cors.Options{
		AllowOriginFunc:  func(origin string) bool { return allowed[strings.ToLower(origin)] },
		AllowedMethods:   connectcors.AllowedMethods(),
		AllowedHeaders:   append(slices.Clone(connectcors.AllowedHeaders()), "Authorization"),
		ExposedHeaders:   connectcors.ExposedHeaders(),
		MaxAge:           int(corsMaxAge.Seconds()),
		AllowCredentials: false,
	}).Handler(h)
}
