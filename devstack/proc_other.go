//go:build !linux

package devstack

import "syscall"

// childProcAttr: outside Linux a child outlives a shopdev that is killed
// (Ctrl-C still stops it).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
