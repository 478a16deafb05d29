package podexec

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
)

// CutStreams is a fault injector for tests of retry paths. From now on, e's
// exec connections go through an in-process HTTP CONNECT proxy on loopback,
// and the first times connections that carry more than n bytes towards the
// API server are aborted there, both ways, as a dropped network connection
// would be. Connections that stay under n bytes (short commands) pass
// untouched. The returned stop function removes the proxy; it must not be
// called while a Run is in progress.
//
// It is the only test hook in this package: the cut happens below TLS, so
// what a caller sees is exactly what a real network failure produces.
func (e *Executor) CutStreams(n int64, times int) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the stream-cutting proxy: %w", err)
	}
	p := &cutProxy{after: n}
	p.left.Store(int64(times))
	go p.serve(ln)
	e.proxy.Store(&url.URL{Scheme: "http", Host: ln.Addr().String()})
	return func() {
		e.proxy.Store(nil)
		ln.Close()
		p.wg.Wait()
	}, nil
}

// cutProxy relays CONNECT tunnels and cuts the ones that go past after
// bytes upstream, while left > 0.
type cutProxy struct {
	after int64
	left  atomic.Int64
	wg    sync.WaitGroup
}

func (p *cutProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.tunnel(c)
		}()
	}
}

func (p *cutProxy) tunnel(client net.Conn) {
	defer client.Close()
	br := bufio.NewReader(client)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		io.WriteString(client, "HTTP/1.1 400 Bad Request\r\n\r\n")
		return
	}
	server, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer server.Close()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	abort := func() {
		for _, c := range []net.Conn{client, server} {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // reset, not a clean close
			}
			c.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(client, server)
		abort()
	}()
	var sent int64
	decided := false // whether this connection was weighed against p.left
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			sent += int64(n)
			if !decided && sent > p.after {
				decided = true
				if p.left.Add(-1) >= 0 {
					abort()
					break
				}
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	abort()
	<-done
}
