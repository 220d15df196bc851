//go:build race

package cartsvc_test

// raceEnabled: timings are not asserted under the race detector.
const raceEnabled = true
