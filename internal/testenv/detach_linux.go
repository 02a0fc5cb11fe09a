package testenv

import "syscall"

// detached puts the watchdog in its own session so a signal to our process group (a
// Ctrl-C in the terminal) does not kill it before it has cleaned up.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
