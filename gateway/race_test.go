//go:build race

package gateway

// raceEnabled is set when the tests run under the race detector, which
// makes the long tests too slow to repeat on every store.
const raceEnabled = true
