package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal: a program that writes to Terminal sees a
// terminal (isatty), and what it writes can be read with Output.
type PTY struct {
	// Terminal is the terminal side, to hand to the program as its stdout
	// or stderr.
	Terminal *os.File
	master   *os.File
	mu       sync.Mutex
	buf      bytes.Buffer
	done     chan struct{}
}

// NewPTY opens a pseudo-terminal that is closed when the test ends.
func NewPTY(t testing.TB) *PTY {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("opening the pseudo-terminal /dev/pts/%d: %v", n, err)
	}
	p := &PTY{Terminal: s, master: m, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				// EIO once the terminal side is closed and all is read.
				if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
					t.Logf("reading the pseudo-terminal: %v", err)
				}
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
	})
	return p
}

// Output closes the terminal side and returns all that was written to it.
func (p *PTY) Output() string {
	p.Terminal.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}
