//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs a server binary with cred (nil: as this process's user). Without Linux's
// parent-death signal, a server left by a crashed test binary stops once reapOrphans removes its
// directory (postgres checks its lock file periodically).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
