//go:build unix

package podexec

import (
	"context"
	"syscall"
)

// control is a net.Dialer's ControlContext: it duplicates the socket's
// descriptor into s before the connection is made.
func (s *sockets) control(_ context.Context, _, _ string, c syscall.RawConn) error {
	var derr error
	err := c.Control(func(fd uintptr) {
		var d int
		syscall.ForkLock.RLock()
		d, derr = syscall.Dup(int(fd))
		if derr == nil {
			syscall.CloseOnExec(d)
		}
		syscall.ForkLock.RUnlock()
		if derr == nil {
			s.add(d)
		}
	})
	if err != nil {
		return err
	}
	return derr
}

func shutdownSocket(fd int) { syscall.Shutdown(fd, syscall.SHUT_RDWR) }
func closeSocket(fd int)    { syscall.Close(fd) }
