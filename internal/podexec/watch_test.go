package podexec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// client-go copies output with io.Copy: the watched writer must see the
// end of each stream through ReadFrom, and the watch then gives the exit
// status its grace before it abandons the exec.
func TestWatchOutputEnded(t *testing.T) {
	w := newWatch(2)
	var out bytes.Buffer
	for range 2 {
		// Streams of client-go are plain readers (no WriterTo).
		stream := struct{ io.Reader }{strings.NewReader("hello\n")}
		if _, err := io.Copy(&watchedWriter{out: &out, w: w}, stream); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "hello\nhello\n" {
		t.Errorf("output = %q", out.String())
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan struct{})
	want := &NoStatusError{Target: Target{Namespace: "ns", Pod: "p"}}
	go w.run(done, cancel, time.Millisecond, 0, func() error { return want }, nil)
	<-ctx.Done()
	close(done)
	if err := context.Cause(ctx); err != want {
		t.Errorf("cause after the output ended = %v, want the NoStatusError", err)
	}
	if n, err := (&watchedReader{r: strings.NewReader("more"), w: w}).Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("stdin after the output ended: Read = %d, %v; want 0, EOF", n, err)
	}
}

// An exec whose status arrives in time is left alone.
func TestWatchStatusInTime(t *testing.T) {
	w := newWatch(1)
	w.outputEnded()
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		w.run(done, cancel, time.Hour, 0, func() error { return errors.New("abandoned") }, nil)
	}()
	close(done) // the status came
	<-finished
	if ctx.Err() != nil {
		t.Errorf("exec abandoned although its status came: %v", context.Cause(ctx))
	}
}

// Stdin that nobody takes, with no output, is a stall; once stdin ended,
// silence is not, unless the command promised heartbeats.
func TestWatchStall(t *testing.T) {
	for _, tt := range []struct {
		name       string
		stdinEOF   bool
		heartbeats bool
	}{{"stdin-left", false, false}, {"stdin-ended", true, false}, {"stdin-ended-heartbeats", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatch(1)
			w.heartbeats = tt.heartbeats
			if tt.stdinEOF {
				r := &watchedReader{r: strings.NewReader(""), w: w}
				if _, err := r.Read(make([]byte, 1)); err != io.EOF {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			done := make(chan struct{})
			stalled := errors.New("stalled")
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				w.run(done, cancel, time.Hour, 20*time.Millisecond, nil, func() error { return stalled })
			}()
			if tt.stdinEOF && !tt.heartbeats {
				// Many stall periods pass: no cancel. Ended by the status.
				w.last.Store(time.Now().Add(-time.Hour).UnixNano())
				ticks := time.NewTimer(200 * time.Millisecond)
				select {
				case <-ctx.Done():
					t.Errorf("a command working after its stdin ended was abandoned: %v", context.Cause(ctx))
				case <-ticks.C:
				}
				close(done)
				<-finished
				return
			}
			<-ctx.Done()
			if err := context.Cause(ctx); err != stalled {
				t.Errorf("cause = %v, want the stall", err)
			}
			close(done)
			<-finished
		})
	}
}

// A reader of the caller's that is slow to produce is not a stall.
func TestWatchSlowReaderIsNoStall(t *testing.T) {
	w := newWatch(1)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		w.run(done, cancel, time.Hour, 20*time.Millisecond, nil, func() error { return errors.New("stalled") })
	}()
	pr, pw := io.Pipe()
	r := &watchedReader{r: pr, w: w}
	read := make(chan struct{})
	go func() {
		defer close(read)
		r.Read(make([]byte, 1))
	}()
	for !w.inRead.Load() {
		time.Sleep(time.Millisecond)
	}
	// Many stall periods pass while the caller's reader produces nothing.
	w.last.Store(time.Now().Add(-time.Hour).UnixNano())
	select {
	case <-ctx.Done():
		t.Errorf("abandoned while the caller's own reader was slow: %v", context.Cause(ctx))
	case <-time.After(200 * time.Millisecond):
	}
	pw.Write([]byte{1})
	<-read
	close(done)
	<-finished
}

// Heartbeat lines stay out of the stderr kept for errors, wherever the
// writes split them.
func TestLineFilter(t *testing.T) {
	var out bytes.Buffer
	f := &lineFilter{out: &out, drop: []byte("kubepool-alive")}
	for _, w := range []string{"kubepool-al", "ive 10\nfatal: ", "bad\nkubepool-alive 20\n", "kubepool-alive 30\nerror: x\n"} {
		if n, err := f.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got, want := out.String(), "fatal: bad\nerror: x\n"; got != want {
		t.Errorf("filtered stderr = %q, want %q", got, want)
	}
}

func TestShortCommand(t *testing.T) {
	script := "set -eu\n" + strings.Repeat("echo x\n", 400)
	got := shortCommand([]string{"sh", "-c", script, "arg"})
	if strings.Contains(got, "echo x") || !strings.Contains(got, `"set -eu"`) || !strings.Contains(got, `"arg"`) {
		t.Errorf("shortCommand = %s, want the script abbreviated to its first line", got)
	}
}

// The end line is seen wherever the writes split it, and only as a whole
// line.
func TestWatchEndLine(t *testing.T) {
	for _, tt := range []struct {
		name   string
		writes []string
		ended  bool
	}{
		{"split", []string{"repo a\nhead x\nen", "d\n"}, true},
		{"alone", []string{"end\n"}, true},
		{"byte-by-byte", []string{"r", "\n", "e", "n", "d", "\n"}, true},
		{"part-of-a-line", []string{"repo end\n", "append\n"}, false},
		{"not-last-yet", []string{"end"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatch(1)
			var out bytes.Buffer
			ww := &watchedWriter{out: &out, w: w, end: endLine("end")}
			for _, s := range tt.writes {
				if _, err := ww.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-w.ended:
				if !tt.ended {
					t.Errorf("writes %q taken as the command's end", tt.writes)
				}
			default:
				if tt.ended {
					t.Errorf("writes %q: end line not seen", tt.writes)
				}
			}
			if got := out.String(); got != strings.Join(tt.writes, "") {
				t.Errorf("output = %q, want every write passed on", got)
			}
		})
	}
}
