//go:build unix

package main

import "syscall"

// raiseOpenFilesLimit sets the soft limit on open files to the hard limit (each connection and event
// stream holds a descriptor; soft limits default as low as 1024) and reports both afterwards. Go's
// runtime already does so on Linux; this covers the other systems and says what the process has.
func raiseOpenFilesLimit() (soft, hard uint64, raised bool, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, false, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), uint64(lim.Max), false, err
		}
		raised = true
		lim = want
	}
	return uint64(lim.Cur), uint64(lim.Max), raised, nil
}

// openFilesLimit reports the current soft limit.
func openFilesLimit() (soft uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return uint64(lim.Cur), nil
}
