//go:build !unix

package redistest

import "os"

// Pause and Resume need job-control signals; elsewhere they fail.
var sigStop, sigCont os.Signal = unsupported{}, unsupported{}

type unsupported struct{}

func (unsupported) String() string { return "unsupported signal" }
func (unsupported) Signal()        {}
