// Package eventstest holds the end-to-end tests of event delivery
// (docs/EVENTS.md): the real productsvc, with its transactional outbox and
// relay, delivering to the real cartsvc (EventSinkService, inbox, version
// gate, dead-letter queue, cache invalidation across replicas), each
// service on its own database with its own role, tokens from a real
// issuer. It has no code of its own.
//
// The default tests run both services in this process. The tests named
// TestLong... run only with SHOP_LONG=1: 10,000 events with poison among
// them, and 10,000 events while cartsvc (a separately built binary) is
// SIGKILLed twice and PostgreSQL (a dedicated durable cluster) restarted
// once.
package eventstest
