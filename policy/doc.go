// Package policy holds the gateway's pure decisions: domain normalisation
// and install classes, the activation decision, and the other rules that
// decide what a licence allows. Everything here is a deterministic function
// of its arguments so it can be table-tested and fuzzed in isolation.
// No I/O.
package policy
