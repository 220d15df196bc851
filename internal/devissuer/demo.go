package devissuer

// Demo identities, for tests and the local dev stack only. Their passwords
// are public: never point a real deployment at an issuer that has them.
const (
	DemoAlice = "alice" // a shopper; password "alice"
	DemoBob   = "bob"   // another shopper; password "bob"
	DemoAdmin = "admin" // role admin; password "admin"
	// DemoRelayClient is the client productsvc's event relay authenticates
	// as (client credentials, secret DemoRelaySecret, scope events:write).
	DemoRelayClient = "productsvc-relay"
	DemoRelaySecret = "relay-secret"
)

// DemoConfig returns a configuration with the demo identities: users alice,
// bob and admin (role "admin"), each with their name as password, and the
// relay's service client.
func DemoConfig() Config {
	return Config{
		Users: map[string]User{
			DemoAlice: {Password: DemoAlice, Email: "alice@example.com"},
			DemoBob:   {Password: DemoBob, Email: "bob@example.com"},
			DemoAdmin: {Password: DemoAdmin, Roles: []string{"admin"}, Email: "admin@example.com"},
		},
		Clients: map[string]Client{
			DemoRelayClient: {Secret: DemoRelaySecret, Scopes: []string{"events:write"}},
		},
	}
}
