package podexec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Why a command's end needs watching: over SPDY, client-go returns only
// once the command's stdout and stderr ended and its exit status arrived on
// the error stream, and it copies stdin in a goroutine of its own until
// the caller's reader ends. The kubelet sends the status only once the
// container runtime's exec returned, and the runtime (containerd) returns
// only once its copy of stdin into the process ended. When the command
// exits, or is killed, before it read all of its stdin, that copy blocks on
// a pipe nobody reads and the status may never come (in the dev cluster it
// sometimes does, at once). Over SPDY the command's stdout and stderr end
// when it exits; over WebSocket the API server, which translates the
// stream to SPDY towards the kubelet, keeps them open until the status
// (measured: an endless stdin into "head -c 1024; exit 3" ended over SPDY
// by the output end in 2.0 s, over WebSocket only by the stall). So Run
// watches what it can see from here: the output streams ending, or the
// command's own last line (Options.EndLine), after which the status gets
// ExitGrace; and progress: with StallTimeout set, no byte of stdin taken
// and no byte of output for that long ends the exec too, and, with
// Options.Heartbeat, so does silence after stdin was all sent: several MB
// of stdin fit in the buffers between here and the pod, so a receiver that
// stops near the end of its input takes it "all".

// DefaultExitGrace is how long Run waits for the exit status once the
// command's output ended (see Executor.ExitGrace).
const DefaultExitGrace = 2 * time.Second

// NoStatusError is a command that ended (it closed its stdout and stderr)
// without its exit status arriving within the grace period, most likely
// because it stopped reading stdin before the end: the exec was abandoned.
// Its exit code is unknown; Stderr is what it printed last.
type NoStatusError struct {
	Target  Target
	Command []string
	// StdinLeft reports whether stdin had more to send.
	StdinLeft bool
	Stderr    string
}

func (e *NoStatusError) Error() string {
	msg := fmt.Sprintf("running %s in pod %s: the command ended without its exit status", shortCommand(e.Command), e.Target)
	if e.StdinLeft {
		msg += " (it stopped reading its input)"
	}
	if s := lastLines(e.Stderr, 5); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *NoStatusError) Unwrap() error { return ErrStream }

// StallError is an exec abandoned because nothing moved for Idle: while
// its stdin had data, the command took none of it and printed nothing; or,
// with Options.Heartbeat, once stdin was all sent, it printed nothing.
type StallError struct {
	Target  Target
	Command []string
	Idle    time.Duration
	Sent    int64  // stdin bytes taken before the stall
	Stderr  string // what the command printed last, before the stall
	// StdinDone: all of stdin had been sent (into buffers on the way,
	// maybe), and no heartbeat came since.
	StdinDone bool
}

func (e *StallError) Error() string {
	seen := fmt.Sprintf("stdin stalled after %d bytes, no output since", e.Sent)
	if e.StdinDone {
		seen = fmt.Sprintf("all %d bytes of stdin sent, no progress reported since", e.Sent)
	}
	msg := fmt.Sprintf("running %s in pod %s: no progress for %v (%s)", shortCommand(e.Command), e.Target, e.Idle, seen)
	if s := lastLines(e.Stderr, 5); s != "" {
		msg += "; it last printed: " + s
	}
	return msg
}

func (e *StallError) Unwrap() error { return ErrStream }

// watch follows one exec's streams.
type watch struct {
	last     atomic.Int64 // unix nanos of the last progress
	sent     atomic.Int64 // stdin bytes taken
	stdinEOF atomic.Bool  // stdin was read to its end
	inRead   atomic.Bool  // the caller's reader is producing: not the pod's stall
	stop     atomic.Bool  // stdin is to end now: the exec is over
	// heartbeats: the command prints progress, so the stall rule holds
	// after stdin ended too (Options.Heartbeat).
	heartbeats bool
	outputs    atomic.Int32  // attached output streams not yet ended
	ended      chan struct{} // closed when every output ended
	endOnce    sync.Once
}

func newWatch(outputs int) *watch {
	w := &watch{ended: make(chan struct{})}
	w.outputs.Store(int32(outputs))
	w.progress()
	return w
}

func (w *watch) progress() { w.last.Store(time.Now().UnixNano()) }

func (w *watch) outputEnded() {
	if w.outputs.Add(-1) == 0 {
		w.commandEnded()
	}
}

// commandEnded is the command seen gone: its exit status is due.
func (w *watch) commandEnded() { w.endOnce.Do(func() { close(w.ended) }) }

// run ends the exec (cancel) when its output ended and no status came
// within grace, or when it stalled for stall (0: never). It returns when
// done is closed.
func (w *watch) run(done <-chan struct{}, cancel context.CancelCauseFunc, grace, stall time.Duration, noStatus, stalled func() error) {
	var tick <-chan time.Time
	if stall > 0 {
		t := time.NewTicker(min(stall/4, time.Second))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-done:
			return
		case <-w.ended:
			w.stop.Store(true)
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				cancel(noStatus())
			}
			return
		case <-tick:
			if w.stdinEOF.Load() && !w.heartbeats || w.inRead.Load() {
				// The command works on what it got (and does not say how
				// it goes), or the data is not ready here yet: not the
				// pod's stall.
				continue
			}
			if idle := time.Since(time.Unix(0, w.last.Load())); idle >= stall {
				cancel(stalled())
				return
			}
		}
	}
}

// watchedReader is stdin as client-go reads it.
type watchedReader struct {
	r io.Reader
	w *watch
}

func (r *watchedReader) Read(p []byte) (int, error) {
	if r.w.stop.Load() {
		return 0, io.EOF
	}
	r.w.inRead.Store(true)
	n, err := r.r.Read(p)
	r.w.inRead.Store(false)
	r.w.sent.Add(int64(n))
	r.w.progress() // time spent here producing is not the pod's
	if err == io.EOF {
		r.w.stdinEOF.Store(true)
	}
	return n, err
}

// watchedWriter is an output stream. client-go copies each stream with
// io.Copy, which hands the stream itself to ReadFrom: that is where its
// end is seen.
type watchedWriter struct {
	out io.Writer
	w   *watch
	// end is the command's end line ("\n" + EndLine + "\n"), nil for none;
	// tail is the stream's last len(end) bytes, with a leading "\n" for
	// the start of the stream.
	end  []byte
	tail []byte
}

// endLine is EndLine as watchedWriter looks for it.
func endLine(l string) []byte {
	if l == "" {
		return nil
	}
	return []byte("\n" + l + "\n")
}

func (o *watchedWriter) Write(p []byte) (int, error) {
	o.w.progress()
	o.seen(p)
	return o.out.Write(p)
}

// seen follows the stream's tail for the end line.
func (o *watchedWriter) seen(p []byte) {
	if o.end == nil {
		return
	}
	if o.tail == nil {
		o.tail = []byte{'\n'}
	}
	o.tail = append(o.tail, p...)
	if len(o.tail) > len(o.end) {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-len(o.end):]...)
	}
	if bytes.Equal(o.tail, o.end) {
		o.w.commandEnded()
	}
}

func (o *watchedWriter) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			o.w.progress()
			o.seen(buf[:n])
			m, werr := o.out.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			o.w.outputEnded()
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// shortCommand is cmd for a message: a long argument (a script) is
// abbreviated to the start of its first line and its size.
func shortCommand(cmd []string) string {
	parts := make([]string, len(cmd))
	for i, a := range cmd {
		if len(a) > 60 || strings.Contains(a, "\n") {
			first, _, _ := strings.Cut(a, "\n")
			parts[i] = fmt.Sprintf("%q… (%d bytes)", first[:min(len(first), 40)], len(a))
			continue
		}
		parts[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// lastLines is the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
