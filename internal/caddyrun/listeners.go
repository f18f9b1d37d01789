package caddyrun

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// AwaitOneListener waits until at most one socket listens on port.
// On Linux Caddy binds a reloaded site with SO_REUSEPORT beside the old
// socket and returns from a load a moment before the old one closes ("the
// scheduler might still pause them right before calling Shutdown()", in
// caddyhttp's App.Stop); a connection the kernel hands to the old socket
// then is reset or closed unanswered. Real clients see that too, but it is
// Caddy's reload, not licensegate, so tests wait it out.
func AwaitOneListener(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := listeningSockets(port)
		if err != nil {
			time.Sleep(200 * time.Millisecond) // no procfs: a grace pause instead
			return
		}
		if n <= 1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the old listener on port %d was still open 5s after the reload", port)
}

// listeningSockets counts TCP sockets in LISTEN state on port, whatever
// their address, from procfs: Caddy listens on ":port" (every interface)
// for a site named http://127.0.0.1:port, which Go opens as one dual-stack
// socket that only /proc/net/tcp6 shows.
func listeningSockets(port int) (int, error) {
	suffix := fmt.Sprintf(":%04X", port)
	n, read := 0, 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		read++
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st ...; st 0A is LISTEN.
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[1], suffix) && fields[3] == "0A" {
				n++
			}
		}
	}
	if read == 0 {
		return 0, errors.New("no procfs")
	}
	return n, nil
}
