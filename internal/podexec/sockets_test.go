//go:build unix

package podexec

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// A write blocked on a peer that reads nothing (an SPDY exec whose pod
// stopped taking stdin) fails once the exec's sockets are cut, through the
// duplicate descriptor kept at dial time.
func TestSocketsCutBlockedWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // held open, never read
		}
	}()
	socks := &sockets{}
	defer socks.release()
	c, err := (&net.Dialer{ControlContext: socks.control}).DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	defer peer.Close()
	if len(socks.fds) != 1 {
		t.Fatalf("sockets recorded = %d, want 1", len(socks.fds))
	}

	written := make(chan error, 1)
	go func() {
		buf := bytes.Repeat([]byte{1}, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				written <- err
				return
			}
		}
	}()
	// The writer fills the socket buffers and blocks; no deadline ends it.
	select {
	case err := <-written:
		t.Fatalf("Write to a peer that does not read failed before the cut: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	socks.cut()
	err = <-written
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked Write after the cut = %v, want a broken-connection error", err)
	}
}
