//go:build !unix

package main

import "errors"

func raiseOpenFilesLimit() (soft, hard uint64, raised bool, err error) {
	return 0, 0, false, errors.New("no open-files limit on this system")
}

func openFilesLimit() (soft uint64, err error) {
	return 0, errors.New("no open-files limit on this system")
}
