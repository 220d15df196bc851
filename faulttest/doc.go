// Package faulttest holds the long-mode fault tests under load (issue 9,
// item 9): mixed traffic at about 200 requests per second from the
// shopload generator against the whole stack on loopback while
// PostgreSQL is restarted, productsvc is slowed beyond cartsvc's call
// deadline, or productsvc is killed and restarted. They run only with
// SHOP_LONG=1 and print their figures.
package faulttest
