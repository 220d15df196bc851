package devstack

import "syscall"

// childProcAttr makes a child process (Prometheus) stop when shopdev dies,
// however it dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
