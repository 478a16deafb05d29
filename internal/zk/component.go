package zk

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Component kinds (nodepool/zk/components.py).
const (
	KindLauncher = "launcher"
	KindPool     = "pool"
	KindBuilder  = "builder"
)

// Component states.
const (
	ComponentInitializing = "initializing"
	ComponentRunning      = "running"
	ComponentPaused       = "paused"
	ComponentStopped      = "stopped"
)

// ModelAPI is the Nodepool data model version kubepool speaks
// (nodepool/model_api.py).
const ModelAPI = 0

// Component is a registered component, the ephemeral sequential znode
// /nodepool/components/<kind>/<hostname><sequence>. Zuul reads the pool
// components to learn which labels can be served (supported_labels);
// launchers read them to decide whether to decline, fail or leave a request
// to another provider.
type Component struct {
	record

	// ZNode is the znode name (hostname plus sequence), set when read or
	// registered.
	ZNode string `json:"-"`

	Kind     string
	Hostname string
	State    string
	Version  string // software version
	ModelAPI int

	// Pool components only (a provider pool within a launcher).
	ID              string // unique pool worker id; what goes into declined_by
	Name            string // pool name
	ProviderName    string
	SupportedLabels []string
	Priority        int // lower is preferred; Nodepool's default is 100
	Paused          bool
}

func (c *Component) fields() []field {
	fs := []field{
		{"kind", &nullString{&c.Kind}},
		{"hostname", &nullString{&c.Hostname}},
		{"state", &nullString{&c.State}},
		{"version", &nullString{&c.Version}},
		{"model_api", &c.ModelAPI},
	}
	if c.Kind == KindPool {
		fs = append(fs,
			field{"id", &nullString{&c.ID}},
			field{"name", &nullString{&c.Name}},
			field{"provider_name", &nullString{&c.ProviderName}},
			field{"supported_labels", &stringList{&c.SupportedLabels}},
			field{"priority", &c.Priority},
			field{"paused", &c.Paused},
		)
	}
	return fs
}

// MarshalJSON encodes the component as Nodepool does (sorted keys).
func (c *Component) MarshalJSON() ([]byte, error) { return c.encode(c.fields()) }

// UnmarshalJSON decodes a component of the kind already set in c.Kind (the
// kind is also in the data).
func (c *Component) UnmarshalJSON(b []byte) error {
	if c.Kind == KindPool {
		c.Priority = 100
	}
	return c.decode(b, c.fields())
}

// ListComponents returns the registered components of one kind.
func (c *Client) ListComponents(ctx context.Context, kind string) ([]*Component, error) {
	root := ComponentRoot + "/" + kind
	names, err := c.childIDs(ctx, root)
	if err != nil {
		return nil, err
	}
	var out []*Component
	for _, name := range names {
		p := root + "/" + name
		data, _, err := c.conn.Get(c.abs(p))
		if errors.Is(err, zk.ErrNoNode) {
			continue // its session just ended
		}
		if err != nil {
			return nil, fmt.Errorf("reading component %s: %w", p, zkErr(err))
		}
		comp := &Component{Kind: kind, ZNode: name}
		if err := comp.UnmarshalJSON(data); err != nil {
			return nil, &DecodeError{Path: p, Err: err}
		}
		out = append(out, comp)
	}
	return out, nil
}

// Registration is a component this client registered. The client
// re-registers it (a new ephemeral znode) whenever a new session replaces one
// that expired, until Unregister.
type Registration struct {
	c *Client

	mu        sync.Mutex
	comp      Component
	path      string // current znode, "" while not registered
	session   int64  // session that owns path
	cancelled bool
	// registered is closed and replaced each time the component is
	// (re-)registered.
	registered chan struct{}
}

// Register registers comp (Kind and Hostname must be set; ModelAPI is set
// to this package's) as Nodepool's BaseComponent.register does.
func (c *Client) Register(ctx context.Context, comp Component) (*Registration, error) {
	if comp.Kind == "" || comp.Hostname == "" {
		return nil, fmt.Errorf("registering component: kind and hostname are required")
	}
	comp.ModelAPI = ModelAPI
	r := &Registration{c: c, comp: comp, registered: make(chan struct{})}
	if err := r.create(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.registered[r] = struct{}{}
	sid := c.sessionID
	c.mu.Unlock()
	// The session may have changed between create and here.
	go r.ensure(sid)
	return r, nil
}

func (r *Registration) create(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.createLocked(ctx)
}

func (r *Registration) createLocked(ctx context.Context) error {
	c := r.c
	data, err := r.comp.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding component: %w", err)
	}
	root := ComponentRoot + "/" + r.comp.Kind
	if err := c.ensurePath(ctx, c.abs(root)); err != nil {
		return fmt.Errorf("registering component: %w", err)
	}
	sid := c.conn.SessionID()
	p, err := c.conn.Create(c.abs(root+"/"+r.comp.Hostname), data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return fmt.Errorf("registering component %s/%s: %w", root, r.comp.Hostname, zkErr(err))
	}
	r.path = c.rel(p)
	r.comp.ZNode = path.Base(p)
	r.session = sid
	close(r.registered)
	r.registered = make(chan struct{})
	c.log.Info("registered component", "path", r.path, "kind", r.comp.Kind)
	return nil
}

// ensure re-registers the component if its znode belongs to a session other
// than sid, retrying until it succeeds, the session changes again, or the
// registration is cancelled.
func (r *Registration) ensure(sid int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		r.mu.Lock()
		if r.cancelled || r.session == sid {
			r.mu.Unlock()
			return
		}
		if st, cur := r.c.State(); st != StateConnected || cur != sid {
			r.mu.Unlock()
			return // a later session event runs ensure again
		}
		err := r.createLocked(ctx)
		r.mu.Unlock()
		if err == nil {
			return
		}
		r.c.log.Warn("re-registering component", "kind", r.comp.Kind, "err", err)
		if r.c.retryWait(ctx, time.Second) != nil {
			return
		}
	}
}

// Path returns the component's current znode path ("" while it is not
// registered).
func (r *Registration) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// Registered returns a channel closed at the next (re-)registration.
func (r *Registration) Registered() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registered
}

// Component returns a copy of the registered content.
func (r *Registration) Component() Component {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.comp
	c.SupportedLabels = slices.Clone(c.SupportedLabels)
	return c
}

// Update applies change to the component and stores it. The local content
// is kept even if the store fails, and is what a re-registration writes, as
// Nodepool's component does.
func (r *Registration) Update(ctx context.Context, change func(*Component)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.comp)
	r.comp.ModelAPI = ModelAPI
	if r.path == "" {
		return nil
	}
	data, err := r.comp.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding component: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = r.c.conn.Set(r.c.abs(r.path), data, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil // the session expired; re-registration writes the new content
	}
	if err != nil {
		return fmt.Errorf("updating component %s: %w", r.path, zkErr(err))
	}
	return nil
}

// Unregister deletes the component and stops re-registering it.
func (r *Registration) Unregister(ctx context.Context) error {
	r.c.mu.Lock()
	delete(r.c.registered, r)
	r.c.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelled = true
	if r.path == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := r.c.conn.Delete(r.c.abs(r.path), -1)
	r.path = ""
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("unregistering component: %w", zkErr(err))
	}
	return nil
}
