package server

import "time"

// SetDrainWait replaces how s waits out Config.DrainDelay, so tests can hold
// a server in its draining state for as long as they need.
func SetDrainWait(s *Server, wait func(time.Duration) <-chan time.Time) {
	s.drainWait = wait
}
