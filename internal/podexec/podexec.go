// Package podexec runs commands in pods through the API server's exec
// subresource, as a reusable transport: WebSocket (protocol v5, so stdin can
// be half-closed) with a fallback to SPDY for servers that cannot upgrade to
// WebSocket. The command's exit status is the source of truth: a stream that
// breaks without one is an error (client-go only logs a failed stdin copy),
// and a non-zero exit is an *ExecError carrying the tail of stderr.
//
// Run never waits on a stream without a way out. A command that exits (or
// is killed) before it read all of its stdin leaves the exec open with no
// status coming (see watch.go for why): Run sees the command's output
// streams end (over SPDY) or its Options.EndLine (either protocol; over
// WebSocket the API server keeps the outputs open) and, if the status does
// not follow within ExitGrace, gives up with a *NoStatusError. With
// Options.StallTimeout, an exec whose stdin stops being read while nothing
// is printed is given up with a *StallError, and with Options.Heartbeat
// also one whose stdin was all sent (into buffers on the way) when the
// command's heartbeat stops. Both match ErrStream: the command may or may
// not have done its work. An exec given up, or whose context ended, has its
// SPDY sockets cut (see sockets.go): client-go's close of the connection
// would otherwise wait for ever on a stdin write the pod never takes.
//
// Long, idle streams (a command that computes for minutes before it writes)
// are kept alive by heartbeats on both protocols: client-go pings every 5 s
// over WebSocket (and fails the stream after 12 unanswered pings) and over
// SPDY, so proxies and load balancers between here and the API server see
// traffic, and a peer that went away is detected rather than waited on.
//
// Over SPDY, client-go reads an error stream that ended without a status as
// success, so a connection that breaks can look like a command that exited
// 0 (seen in the dev cluster with CutStreams). Callers that must know check
// their output: have the command print an end marker last.
//
// Executor.CutStreams injects a mid-stream connection cut for tests.
package podexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// Target is the container a command runs in. Container may be empty when
// the pod has one container.
type Target struct {
	Namespace string
	Pod       string
	Container string
}

func (t Target) String() string {
	s := t.Namespace + "/" + t.Pod
	if t.Container != "" {
		s += " container " + t.Container
	}
	return s
}

// ExecError is a command that ran and exited non-zero.
type ExecError struct {
	Target   Target
	Command  []string
	ExitCode int
	Stderr   string // the last few KiB of its stderr
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("running %s in pod %s: exit code %d", shortCommand(e.Command), e.Target, e.ExitCode)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// ErrStream is matched (errors.Is) by errors where the exec stream broke
// before the command's exit status arrived: the command may or may not have
// run to completion, so callers verify or retry.
var ErrStream = errors.New("exec stream broken")

type streamError struct {
	target Target
	err    error
}

func (e *streamError) Error() string {
	return fmt.Sprintf("exec in pod %s: %v", e.target, e.err)
}
func (e *streamError) Unwrap() []error { return []error{ErrStream, e.err} }

// Options are a command's streams. Nil streams are not attached.
type Options struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StallTimeout, when positive, abandons the exec with a *StallError
	// when, while stdin still has data, the command takes none of it and
	// prints nothing for that long: a receiver that stopped. Once stdin
	// ended, a command may work silently for as long as it needs.
	StallTimeout time.Duration
	// EndLine, when set, is a line the command prints on stdout as its
	// last output, right before it exits: once it came, the command is
	// taken as ended, as when its output streams end, and its exit status
	// gets ExitGrace to arrive. Over WebSocket, the API server keeps the
	// output streams of a command that exited with stdin unread open
	// until the status, which then never comes (see watch.go): the line
	// is what tells Run the command is gone.
	EndLine string
	// Heartbeat, when set, is the start of the lines the command prints
	// on stderr while it makes progress (the gitsync scripts print one
	// each second in which the processes of their session read anything).
	// StallTimeout then holds after stdin ended too: a command that took
	// all of its input, maybe only into buffers on the way, and then went
	// silent has stopped. Heartbeat lines are left out of the stderr kept
	// for errors.
	Heartbeat string
}

// Executor runs commands in pods of one cluster.
type Executor struct {
	config *rest.Config
	client rest.Interface
	// NoWebSocket forces SPDY (for comparison and for old servers).
	NoWebSocket bool
	// PreferSPDY tries SPDY first and falls back to WebSocket when the
	// server will not upgrade to SPDY. Bulk transfers gain from it: the
	// API server relays an SPDY exec byte for byte, but translates a
	// WebSocket one frame by frame into SPDY towards the kubelet, which
	// costs it CPU per byte. On the 2-core dev cluster 300 MB through exec
	// stdin took 4.6–6.0 s over SPDY against 6.9–8.2 s over WebSocket, and
	// 3.0–3.7 s over SPDY in 4 parallel streams. SPDY closes stdin by
	// closing its stream, so commands still see end of input.
	PreferSPDY bool
	// ExitGrace is how long an exec whose command closed its output may
	// take to deliver the exit status before it is abandoned with a
	// *NoStatusError (default DefaultExitGrace); see watch.go.
	ExitGrace time.Duration

	proxy atomic.Pointer[url.URL] // set by CutStreams
}

// New returns an Executor for the cluster cfg points at.
func New(cfg *rest.Config) (*Executor, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &Executor{config: cfg, client: cs.CoreV1().RESTClient()}, nil
}

// stderrTailSize bounds the stderr kept for an ExecError.
const stderrTailSize = 4 << 10

// Run runs cmd in t and waits for it to exit. It returns nil for exit code
// 0, an *ExecError for another exit code, and an error matching ErrStream
// when the stream broke first.
func (e *Executor) Run(ctx context.Context, t Target, cmd []string, o Options) error {
	req := e.client.Post().Resource("pods").Namespace(t.Namespace).Name(t.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: t.Container,
			Command:   cmd,
			Stdin:     o.Stdin != nil,
			Stdout:    o.Stdout != nil,
			Stderr:    true,
		}, scheme.ParameterCodec)
	socks := &sockets{}
	defer socks.release()
	ex, err := e.executor(req.URL(), socks)
	if err != nil {
		return fmt.Errorf("preparing exec in pod %s: %w", t, err)
	}
	tailBuf := &tailBuffer{max: stderrTailSize}
	var stderr io.Writer = tailBuf
	if o.Heartbeat != "" {
		stderr = &lineFilter{out: tailBuf, drop: []byte(o.Heartbeat)}
	}
	if o.Stderr != nil {
		stderr = io.MultiWriter(o.Stderr, stderr)
	}
	outputs := 1
	if o.Stdout != nil {
		outputs++
	}
	w := newWatch(outputs)
	w.heartbeats = o.Heartbeat != ""
	so := remotecommand.StreamOptions{Stderr: &watchedWriter{out: stderr, w: w}}
	if o.Stdin != nil {
		so.Stdin = &watchedReader{r: o.Stdin, w: w}
	}
	if o.Stdout != nil {
		so.Stdout = &watchedWriter{out: o.Stdout, w: w, end: endLine(o.EndLine)}
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	grace := e.ExitGrace
	if grace <= 0 {
		grace = DefaultExitGrace
	}
	go w.run(done, cancel, grace, o.StallTimeout,
		func() error {
			return &NoStatusError{Target: t, Command: cmd, StdinLeft: o.Stdin != nil && !w.stdinEOF.Load(), Stderr: tailBuf.String()}
		},
		func() error {
			return &StallError{Target: t, Command: cmd, Idle: o.StallTimeout, Sent: w.sent.Load(), Stderr: tailBuf.String(), StdinDone: w.stdinEOF.Load()}
		})
	err = stream(sctx, ex, so, socks)
	close(done)
	w.stop.Store(true) // client-go may still read stdin: it gets EOF
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && sctx.Err() != nil {
		// Abandoned by the watch: its cause says why.
		return context.Cause(sctx)
	}
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return &ExecError{Target: t, Command: cmd, ExitCode: exit.ExitStatus(), Stderr: tailBuf.String()}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("exec in pod %s: %w", t, context.Cause(ctx))
	}
	if nf := e.notFound(ctx, t); nf != nil {
		return nf
	}
	if strings.Contains(err.Error(), kubeletStartFailure) {
		return &StartError{Target: t, Command: cmd, Message: err.Error()}
	}
	return &streamError{target: t, err: err}
}

// abandonWait bounds how long an exec whose context ended may take to let
// go once its sockets were cut (see sockets.go); past it Run returns and
// leaves client-go's goroutine behind rather than wait.
const abandonWait = 5 * time.Second

// stream runs ex until it returns or ctx ends; then it cuts the exec's
// sockets, so that client-go's close of an SPDY connection, stuck behind a
// blocked stdin write, completes, and gives it abandonWait to return.
func stream(ctx context.Context, ex remotecommand.Executor, so remotecommand.StreamOptions, socks *sockets) error {
	res := make(chan error, 1)
	go func() { res <- ex.StreamWithContext(ctx, so) }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
	}
	socks.cut()
	t := time.NewTimer(abandonWait)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return context.Cause(ctx)
	}
}

// kubeletStartFailure is how the kubelet words a command the container
// runtime could not start (no such executable, for one); it reaches the
// client as the exec's error status.
const kubeletStartFailure = "error executing command in container"

// StartError is a command the container runtime could not start: it did
// not run at all, so, unlike a broken stream, retrying will not help.
type StartError struct {
	Target  Target
	Command []string
	Message string // the runtime's reason, as the API server relayed it
}

func (e *StartError) Error() string {
	return fmt.Sprintf("starting %s in pod %s: %s", shortCommand(e.Command), e.Target, e.Message)
}

// ErrNotFound is matched by errors about a pod or container that does not
// exist (or is gone): retrying will not help.
var ErrNotFound = errors.New("not found")

// notFound checks, after a failed exec, whether t's pod and container exist,
// and returns an error matching ErrNotFound if they do not.
func (e *Executor) notFound(ctx context.Context, t Target) error {
	var pod corev1.Pod
	err := e.client.Get().Resource("pods").Namespace(t.Namespace).Name(t.Pod).Do(ctx).Into(&pod)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("exec in pod %s: pod %s/%s: %w (check the namespace and pod name; the pod may have been deleted)", t, t.Namespace, t.Pod, ErrNotFound)
	case err != nil || t.Container == "":
		return nil
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == t.Container {
			return nil
		}
	}
	names := make([]string, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		names[i] = c.Name
	}
	return fmt.Errorf("exec in pod %s: container %q: %w (the pod has %s)", t, t.Container, ErrNotFound, strings.Join(names, ", "))
}

func (e *Executor) executor(u *url.URL, socks *sockets) (remotecommand.Executor, error) {
	cfg := e.config
	if p := e.proxy.Load(); p != nil {
		cfg = rest.CopyConfig(cfg)
		cfg.Proxy = http.ProxyURL(p)
	}
	spdy, err := newSPDYExecutor(cfg, u, socks)
	if err != nil {
		return nil, err
	}
	if e.NoWebSocket {
		return spdy, nil
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return nil, err
	}
	if e.PreferSPDY {
		// An SPDY upgrade failure is an untyped error; it happens before
		// any of stdin is read, so trying WebSocket next is safe.
		return remotecommand.NewFallbackExecutor(spdy, ws, func(err error) bool {
			return strings.Contains(err.Error(), "unable to upgrade connection")
		})
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// lineFilter passes the lines written to it on to out, but those that
// start with drop. A last line without its newline is held back.
type lineFilter struct {
	out  io.Writer
	drop []byte
	line []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.line = append(f.line, p...)
			break
		}
		f.line = append(f.line, p[:i+1]...)
		p = p[i+1:]
		if !bytes.HasPrefix(f.line, f.drop) {
			if _, err := f.out.Write(f.line); err != nil {
				return n, err
			}
		}
		f.line = f.line[:0]
	}
	return n, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
