//go:build unix && !linux

package pgcluster

import "syscall"

// sysProcAttr runs a server binary with cred (nil: as this process's user). Without Linux's
// parent-death signal, a server left by a crashed parent keeps running until stopped
// (pgtest removes throwaway directories, and postgres then notices its lock file is gone).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
