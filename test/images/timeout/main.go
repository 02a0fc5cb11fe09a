// Command timeout is BusyBox 1.28's timeout applet, for the local cluster's stand-in of
// the image busybox:1.28 (test/cluster, images.go): seed 001's init container runs
// `timeout -t 60 sh -c "until grep ...; done"`, and the BusyBox that Debian packages
// (1.30 and later) took -t away for coreutils' `timeout SECS PROG`. Everything else in
// that image is Debian's busybox-static.
//
//	timeout [-t SECS] [-s SIG] PROG ARGS
//
// runs PROG and sends it SIG (TERM) after SECS (10) seconds. Its exit status is PROG's,
// or 128 + the signal's number when PROG died of a signal, as a shell reports it.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "timeout: %s\nUsage: timeout [-t SECS] [-s SIG] PROG ARGS\n", msg)
	os.Exit(1)
}

func main() {
	secs, sig := 10, syscall.SIGTERM
	args := os.Args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		opt := args[0]
		if opt == "--" {
			args = args[1:]
			break
		}
		if len(args) < 2 {
			usage("option " + opt + " needs a value")
		}
		switch opt {
		case "-t":
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				usage("invalid number '" + args[1] + "'")
			}
			secs = n
		case "-s":
			name := strings.TrimPrefix(strings.ToUpper(args[1]), "SIG")
			if n, err := strconv.Atoi(name); err == nil {
				sig = syscall.Signal(n)
			} else if s, ok := signals[name]; ok {
				sig = s
			} else {
				usage("bad signal name '" + args[1] + "'")
			}
		default:
			usage("invalid option -- '" + strings.TrimLeft(opt, "-") + "'")
		}
		args = args[2:]
	}
	if len(args) == 0 {
		usage("no PROG")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "timeout:", err)
		os.Exit(127)
	}
	timer := time.AfterFunc(time.Duration(secs)*time.Second, func() { _ = cmd.Process.Signal(sig) })
	err := cmd.Wait()
	timer.Stop()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(exit.ExitCode())
	default:
		fmt.Fprintln(os.Stderr, "timeout:", err)
		os.Exit(1)
	}
}
