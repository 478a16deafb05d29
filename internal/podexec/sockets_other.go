//go:build !unix

package podexec

import (
	"context"
	"syscall"
)

// control records nothing here: an abandoned SPDY exec is left to its
// goroutine (Run still returns, see abandonWait).
func (s *sockets) control(context.Context, string, string, syscall.RawConn) error { return nil }

func shutdownSocket(int) {}
func closeSocket(int)    {}
