package caddyrun

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// The listener count sees the socket Caddy opens for a site (one dual-stack
// socket on every interface, shown only in /proc/net/tcp6): a count that
// missed it would make every reload wait a no-op.
func TestReloadLeavesOneListener(t *testing.T) {
	addr := FreeAddr(t)
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	config := fmt.Sprintf("{\n\tadmin off\n}\n\nhttp://%s {\n\trespond \"hi\"\n}\n", addr)
	Load(t, config)
	n, err := listeningSockets(port)
	if err != nil {
		t.Fatalf("counting listeners: %v (the reload wait needs procfs)", err)
	}
	if n != 1 {
		t.Fatalf("%d listening sockets on port %d after the first load, want 1", n, port)
	}
	for range 5 {
		Load(t, config) // waits for the replaced socket to close
		if n, _ := listeningSockets(port); n != 1 {
			t.Fatalf("%d listening sockets on port %d after a reload, want 1", n, port)
		}
	}
}
