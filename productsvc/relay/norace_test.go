//go:build !race

package relay_test

// raceEnabled: timings are not asserted under the race detector.
const raceEnabled = false
