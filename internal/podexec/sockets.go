package podexec

import (
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"
	streamspdy "k8s.io/streaming/pkg/httpstream/spdy"
)

// Why an abandoned SPDY exec needs its socket cut: client-go's SPDY
// executor returns as soon as its context ends, but first closes its
// connection, and spdystream's close (a reset of each stream, then a
// GOAWAY) takes the connection's write lock. When the pod stopped reading
// stdin, client-go's stdin copy holds that lock in a write blocked on a
// full TCP send buffer, and nothing ever frees it: the close, and with it
// Run, would wait forever (seen in the dev cluster with a command that
// stays alive but reads no more). So Run dials SPDY exec connections itself
// and keeps a duplicate of each socket's descriptor; shutting the socket
// down through it fails the blocked write, the lock is released, and the
// close completes. WebSocket needs none of this: gorilla's close closes the
// network connection without a lock.

// sockets are the network connections of one exec, as duplicated
// descriptors (see dupSocket); the zero value is ready to use.
type sockets struct {
	mu     sync.Mutex
	fds    []int
	closed bool
}

// add keeps fd, or closes it when the exec is already over.
func (s *sockets) add(fd int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		closeSocket(fd)
		return
	}
	s.fds = append(s.fds, fd)
}

// cut shuts every socket down both ways: blocked reads and writes on the
// connections fail at once.
func (s *sockets) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fd := range s.fds {
		shutdownSocket(fd)
	}
}

// release closes the duplicates (the connections themselves are closed by
// their owner).
func (s *sockets) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fd := range s.fds {
		closeSocket(fd)
	}
	s.fds = nil
	s.closed = true
}

// newSPDYExecutor is client-go's SPDY executor for cfg (TLS, credentials
// and proxy as remotecommand.NewSPDYExecutor sets them up), with its
// connections dialed through a dialer that records each socket in socks.
func newSPDYExecutor(cfg *rest.Config, u *url.URL, socks *sockets) (remotecommand.Executor, error) {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	proxy := http.ProxyFromEnvironment
	if cfg.Proxy != nil {
		proxy = cfg.Proxy
	}
	rt, err := streamspdy.NewRoundTripperWithConfig(streamspdy.RoundTripperConfig{TLS: tlsConfig, Proxier: proxy, PingPeriod: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	rt.Dialer = &net.Dialer{ControlContext: socks.control}
	wrapper, err := rest.HTTPWrappersForConfig(cfg, rt)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewSPDYExecutorForTransports(wrapper, clientspdy.NewUpgraderForStreaming(rt), http.MethodPost, u)
}
