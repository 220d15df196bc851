//go:build !race

package eventstest_test

// raceEnabled: timings are not asserted under the race detector.
const raceEnabled = false
