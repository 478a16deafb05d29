package zk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Znode paths of the legacy Nodepool protocol (nodepool/zk/zookeeper.py,
// nodepool/zk/components.py, zuul/zk/nodepool.py).
const (
	RequestRoot     = "/nodepool/requests"
	RequestLockRoot = "/nodepool/requests-lock"
	NodeRoot        = "/nodepool/nodes"
	ComponentRoot   = "/nodepool/components"
)

// Sentinel errors. Errors returned by this package wrap them (test with
// errors.Is) together with the znode path and what was being done.
var (
	// ErrNoNode: the znode (request, node, component) does not exist.
	ErrNoNode = errors.New("znode does not exist")
	// ErrLocked: a try-lock found the lock held by another contender. The
	// error is a *LockedError that says who holds it.
	ErrLocked = errors.New("lock held by another contender")
	// ErrConflict: a versioned write found that the znode changed since it
	// was read. Read it again, reapply the change, write again.
	ErrConflict = errors.New("znode changed since it was read")
	// ErrNotLocked: the lock is not (or no longer) held, for example because
	// the session that held it expired.
	ErrNotLocked = errors.New("lock not held")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("zookeeper client closed")
)

// DecodeError is returned for a znode whose data is not the JSON expected.
type DecodeError struct {
	Path string
	Err  error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("decoding %s: %v", e.Path, e.Err) }
func (e *DecodeError) Unwrap() error { return e.Err }

// State is the state of the client's ZooKeeper session.
type State int

const (
	// StateConnected: a session is established. A Connected event with a
	// SessionID different from the previous one means a new session: every
	// ephemeral znode and lock of the old session is gone.
	StateConnected State = iota + 1
	// StateDisconnected: the connection dropped; the session (and its
	// locks) survives if the client reconnects within the session timeout.
	StateDisconnected
	// StateExpired: the server expired the session; its ephemeral znodes
	// and locks are gone. The client goes on to establish a new session.
	StateExpired
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateExpired:
		return "expired"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// SessionEvent reports a change of the session state.
type SessionEvent struct {
	State     State
	SessionID int64 // the session established, for StateConnected
}

// Options configure Connect. The zero value is usable.
type Options struct {
	// SessionTimeout is the requested session timeout; the server clamps it
	// to its limits. Default 10 s, as Nodepool's zookeeper-timeout.
	SessionTimeout time.Duration
	// TLS, if set, wraps every connection in TLS with this configuration
	// (Nodepool's zookeeper-tls: client certificate, key and CA).
	TLS *tls.Config
	// Dialer, if set, opens the TCP connections (before TLS). For tests and
	// proxies.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the client's and go-zookeeper's logs. Nil logs
	// nothing.
	Logger *slog.Logger
	// OnSessionEvent, if set, is called for every session state change, one
	// at a time and in order, from a goroutine of the client. It must not
	// block for long. Components registered with Register are re-registered
	// by the client itself after a session loss.
	OnSessionEvent func(SessionEvent)
	// LockIdentifier is written into every lock contender this client
	// creates (kazoo's Lock identifier), so that `LockHolder` can say who
	// holds a lock. Zuul and Nodepool leave it empty.
	LockIdentifier string
}

// Client is a connection to ZooKeeper speaking the Nodepool protocol. It is
// safe for concurrent use.
type Client struct {
	conn   *zk.Conn
	chroot string
	log    *slog.Logger
	opts   Options

	evMu    sync.Mutex
	evQueue []zk.Event
	evReady chan struct{}

	mu          sync.Mutex
	state       State
	sessionID   int64
	changed     chan struct{} // closed and replaced on every state change
	registered  map[*Registration]struct{}
	owed        int   // writes waiting for a connection; see owe
	dialErr     error // the last connection attempt's error, nil after a success
	closed      bool
	done        chan struct{}
	dispatchEnd chan struct{}
}

// Connect connects to the ZooKeeper servers in servers, a kazoo-style
// connection string "host:port[,host:port...][/chroot]", and waits until a
// session is established or ctx is done. A chroot that does not exist yet is
// created.
func Connect(ctx context.Context, servers string, opts Options) (*Client, error) {
	hosts, chroot, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		chroot:      chroot,
		log:         log,
		opts:        opts,
		evReady:     make(chan struct{}, 1),
		changed:     make(chan struct{}),
		registered:  map[*Registration]struct{}{},
		done:        make(chan struct{}),
		dispatchEnd: make(chan struct{}),
	}
	zopts := list(
		zk.WithLogger(zkLogger{log}),
		zk.WithEventCallback(c.enqueue),
	)
	if opts.Dialer != nil || opts.TLS != nil {
		zopts = append(zopts, zk.WithDialer(c.dial))
	}
	conn, _, err := zk.Connect(hosts, opts.SessionTimeout, zopts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to ZooKeeper %s: %w", servers, err)
	}
	c.conn = conn
	go c.dispatch()
	if err := c.waitConnected(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to ZooKeeper %s: %w", servers, err)
	}
	if chroot != "" {
		if err := c.ensurePath(ctx, chroot); err != nil {
			c.Close()
			return nil, fmt.Errorf("creating chroot %s: %w", chroot, err)
		}
	}
	return c, nil
}

// ParseServers splits a kazoo-style connection string into its host:port
// list and its chroot ("" if none).
func ParseServers(servers string) (hosts []string, chroot string, err error) {
	hostPart, root, hasRoot := strings.Cut(strings.TrimSpace(servers), "/")
	for _, h := range strings.Split(hostPart, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("parsing ZooKeeper servers %q: no host", servers)
	}
	if hasRoot {
		chroot = path.Clean("/" + root)
		if chroot == "/" {
			chroot = ""
		}
	}
	return hosts, chroot, nil
}

func (c *Client) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.opts.Dialer != nil {
		conn, err = c.opts.Dialer(ctx, network, addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, addr)
	}
	defer func() {
		c.mu.Lock()
		c.dialErr = err
		c.mu.Unlock()
	}()
	if err != nil || c.opts.TLS == nil {
		return conn, err
	}
	cfg := c.opts.TLS.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if herr := tc.HandshakeContext(ctx); herr != nil {
		conn.Close()
		err = fmt.Errorf("TLS handshake with %s: %w", addr, herr)
		return nil, err
	}
	return tc, nil
}

// list builds a slice of go-zookeeper's (unexported) option type.
func list[T any](xs ...T) []T { return xs }

// zkLogger routes go-zookeeper's own log lines to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "go-zookeeper")
}

// enqueue is go-zookeeper's event callback. It runs on the library's
// connection goroutine, so it only queues.
func (c *Client) enqueue(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	c.evMu.Lock()
	c.evQueue = append(c.evQueue, ev)
	c.evMu.Unlock()
	select {
	case c.evReady <- struct{}{}:
	default:
	}
}

func (c *Client) dispatch() {
	defer close(c.dispatchEnd)
	for {
		select {
		case <-c.evReady:
		case <-c.done:
			return
		}
		c.evMu.Lock()
		queue := c.evQueue
		c.evQueue = nil
		c.evMu.Unlock()
		for _, ev := range queue {
			c.handle(ev)
		}
	}
}

func (c *Client) handle(ev zk.Event) {
	var st State
	switch ev.State {
	case zk.StateHasSession:
		st = StateConnected
	case zk.StateDisconnected:
		st = StateDisconnected
	case zk.StateExpired:
		st = StateExpired
	default:
		return
	}
	sid := c.conn.SessionID()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if st == c.state && (st != StateConnected || sid == c.sessionID) {
		c.mu.Unlock()
		return
	}
	c.state = st
	var regs []*Registration
	if st == StateConnected {
		c.sessionID = sid
		for r := range c.registered {
			regs = append(regs, r)
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()

	c.log.Info("zookeeper session", "state", st.String(), "session", fmt.Sprintf("%#x", sid))
	if c.opts.OnSessionEvent != nil {
		e := SessionEvent{State: st}
		if st == StateConnected {
			e.SessionID = sid
		}
		c.opts.OnSessionEvent(e)
	}
	for _, r := range regs {
		go r.ensure(sid)
	}
}

// State returns the current session state and session id.
func (c *Client) State() (State, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.sessionID
}

// waitConnected waits until the client has a session.
func (c *Client) waitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, closed := c.state, c.changed, c.closed
		c.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if st == StateConnected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			dialErr := c.dialErr
			c.mu.Unlock()
			if dialErr != nil {
				// Say why there is no session (a certificate that does not
				// verify, a refused connection), not only that there is none.
				return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), dialErr)
			}
			return ctx.Err()
		}
	}
}

// StateChanged returns a channel closed at the next change of the session
// state (a reconnect, a disconnect, an expiry, Close).
func (c *Client) StateChanged() <-chan struct{} { return c.stateChanged() }

// stateChanged returns a channel closed at the next state change.
func (c *Client) stateChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Close ends the session: its ephemeral znodes (components, locks) go away
// at once.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.state = StateClosed
	close(c.changed)
	c.changed = make(chan struct{})
	close(c.done)
	c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
	<-c.dispatchEnd
	if c.opts.OnSessionEvent != nil {
		c.opts.OnSessionEvent(SessionEvent{State: StateClosed})
	}
}

// abs turns a protocol path into the path on the server (under the chroot).
func (c *Client) abs(p string) string { return c.chroot + p }

// rel turns a path on the server back into a protocol path.
func (c *Client) rel(p string) string { return strings.TrimPrefix(p, c.chroot) }

// zkErr maps go-zookeeper errors to this package's sentinels.
func zkErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%w (%w)", ErrNoNode, err)
	case errors.Is(err, zk.ErrBadVersion):
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	case errors.Is(err, zk.ErrClosing):
		return fmt.Errorf("%w (%w)", ErrClosed, err)
	}
	return err
}

// ensurePath creates the server path p (chroot included) and its ancestors
// as empty persistent znodes, as kazoo's ensure_path does.
func (c *Client) ensurePath(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The path, or all but its last part, usually exists: try it first
	// (one round trip), and make the parents only when they are missing.
	_, err := c.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) && path.Dir(p) != "/" {
		if err := c.ensurePath(ctx, path.Dir(p)); err != nil {
			return err
		}
		_, err = c.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	}
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", p, zkErr(err))
	}
	return nil
}

// deleteTree deletes p and everything under it (kazoo's recursive delete).
func (c *Client) deleteTree(ctx context.Context, p string) error {
	for range 20 {
		if err := ctx.Err(); err != nil {
			return err
		}
		children, _, err := c.conn.Children(c.abs(p))
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", p, zkErr(err))
		}
		for _, ch := range children {
			if err := c.deleteTree(ctx, p+"/"+ch); err != nil {
				return err
			}
		}
		err = c.conn.Delete(c.abs(p), -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !errors.Is(err, zk.ErrNotEmpty) {
			return fmt.Errorf("deleting %s: %w", p, zkErr(err))
		}
	}
	return fmt.Errorf("deleting %s: children keep appearing", p)
}

// retryWait waits before retrying an operation that failed: until the
// session state changes, a short backoff passes, or ctx is done.
func (c *Client) retryWait(ctx context.Context, backoff time.Duration) error {
	t := time.NewTimer(backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	case <-c.stateChanged():
	case <-t.C:
	}
	return nil
}
