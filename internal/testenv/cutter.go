package testenv

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Cutter is a dialer standing between a client and its server (pass Dial
// as the client's dialer) whose connections a test can cut: Cut closes
// every open connection and refuses new ones until Restore. Cutting for
// less than the session timeout is a network outage the session survives;
// for longer, the server expires the session.
type Cutter struct {
	mu      sync.Mutex
	blocked bool
	conns   []net.Conn
	dials   int
	refused int
	// afterWrite: the next write on a connection is sent, then everything
	// is cut (see CutAfterWrite).
	afterWrite bool
}

// ErrCut is what Dial returns while the connection is cut.
var ErrCut = errors.New("connection cut by the test")

// Dial opens a TCP connection unless the cutter is cut.
func (c *Cutter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked {
		c.refused++
		return nil, ErrCut
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, conn)
	c.dials++
	return &cutConn{Conn: conn, c: c}, nil
}

// cutConn is a connection of the cutter's, for CutAfterWrite.
type cutConn struct {
	net.Conn
	c *Cutter
}

func (cc *cutConn) Write(b []byte) (int, error) {
	n, err := cc.Conn.Write(b)
	cc.c.mu.Lock()
	cut := cc.c.afterWrite
	cc.c.afterWrite = false
	cc.c.mu.Unlock()
	if cut {
		cc.c.Cut()
	}
	return n, err
}

// CutAfterWrite lets the next write on a connection through, then cuts
// (as Cut): the server gets the request, the client never its reply.
func (c *Cutter) CutAfterWrite() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.afterWrite = true
}

// Cut closes every connection and refuses new ones.
func (c *Cutter) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// Restore lets new connections through again.
func (c *Cutter) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked = false
}

// Refused returns how many connections were refused while cut.
func (c *Cutter) Refused() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// Dials returns how many connections were opened.
func (c *Cutter) Dials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dials
}
