package pgcluster

import "syscall"

// sysProcAttr runs a server binary with cred (nil: as this process's user) and has the kernel
// stop it (SIGQUIT, an immediate shutdown) if the process that started it dies without stopping it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
