// Package progress draws one status line of a long command on a terminal:
// repos synced, images promoted, what a node request waits for. It draws
// nothing when its writer is not a terminal (a pipe, a file), so that
// scripts see the same stderr as before; the line is never written to
// stdout.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// minInterval is the least time between two redraws of Tick.
const minInterval = 100 * time.Millisecond

// Line is a status line on a terminal. A nil *Line is valid and draws
// nothing: New returns nil for writers that are not terminals.
type Line struct {
	mu       sync.Mutex
	f        *os.File
	text     string
	drawn    bool
	drawnAt  time.Time
	finished bool
	onFinish []func()
}

// New returns a status line on w if w is a terminal, else nil.
func New(w io.Writer) *Line {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &Line{f: f}
}

// Set shows s as the line now.
func (l *Line) Set(s string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = s
	l.redraw()
}

// Setf is Set with a format.
func (l *Line) Setf(format string, args ...any) {
	if l == nil {
		return
	}
	l.Set(fmt.Sprintf(format, args...))
}

// Tick shows s unless the line was drawn less than 100 ms ago (then s is
// kept and shown with the next draw): for frequent updates such as bytes
// sent.
func (l *Line) Tick(s string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = s
	if time.Since(l.drawnAt) >= minInterval {
		l.redraw()
	}
}

// Write passes b (a log record) through to the terminal around the line:
// the line is cleared before and drawn again after.
func (l *Line) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
	n, err := l.f.Write(b)
	if !l.finished {
		l.draw()
	}
	return n, err
}

// OnFinish has Finish call f.
func (l *Line) OnFinish(f func()) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onFinish = append(l.onFinish, f)
}

// Finish removes the line for good. It may be called more than once.
func (l *Line) Finish() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.clear()
	l.finished = true
	fs := l.onFinish
	l.onFinish = nil
	l.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (l *Line) redraw() {
	if l.finished {
		return
	}
	l.clear()
	l.draw()
}

func (l *Line) clear() {
	if l.drawn {
		fmt.Fprint(l.f, "\r\033[K")
		l.drawn = false
	}
}

func (l *Line) draw() {
	if l.text == "" {
		return
	}
	line := l.text
	if w, _, err := term.GetSize(int(l.f.Fd())); err == nil && w > 1 && len(line) >= w {
		line = line[:w-1]
	}
	fmt.Fprint(l.f, line)
	l.drawn = true
	l.drawnAt = time.Now()
}

// Bytes renders n as 12 B, 3.4 KiB, 5.6 MiB, 7.8 GiB.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
