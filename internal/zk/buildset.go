package zk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// BuildsetRoot holds one znode per buildset that has a private registry
// area: kubepool's own state, not part of the Nodepool protocol.
const BuildsetRoot = "/kubepool/buildsets"

// Buildset states.
const (
	// BuildsetActive: its credentials are honoured.
	BuildsetActive = "active"
	// BuildsetDeleting: its credentials are revoked and its images are
	// being deleted; the znode goes when they are gone.
	BuildsetDeleting = "deleting"
)

// Buildset is the record of one buildset (/kubepool/buildsets/<id>).
type Buildset struct {
	ID      string `json:"-"`
	Version int32  `json:"-"`
	State   string `json:"state"`
	// Created and LastNodeSeen are float seconds since the epoch.
	Created      float64 `json:"created"`
	LastNodeSeen float64 `json:"last_node_seen"`
	// Credentials are keyed by credential id; only hashes are stored.
	Credentials map[string]BuildsetCredential `json:"credentials,omitempty"`
}

// BuildsetCredential is one issued secret of a buildset.
type BuildsetCredential struct {
	// Hash is "sha256:<hex>" of the secret.
	Hash    string  `json:"hash"`
	Created float64 `json:"created"`
	// Node is the node the credential was made for, if any.
	Node string `json:"node,omitempty"`
}

func buildsetPath(id string) string { return BuildsetRoot + "/" + id }

// CreateBuildset stores a new buildset record and sets b.Version. It returns
// an error wrapping zk.ErrNodeExists if the buildset exists.
func (c *Client) CreateBuildset(ctx context.Context, b *Buildset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding buildset %s: %w", b.ID, err)
	}
	p := c.abs(buildsetPath(b.ID))
	_, err = c.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		if err := c.ensurePath(ctx, c.abs(BuildsetRoot)); err != nil {
			return err
		}
		_, err = c.conn.Create(p, data, 0, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		return fmt.Errorf("creating buildset %s: %w", b.ID, zkErr(err))
	}
	b.Version = 0
	return nil
}

// GetBuildset reads one buildset record (ErrNoNode if there is none).
func (c *Client) GetBuildset(ctx context.Context, id string) (*Buildset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := buildsetPath(id)
	data, st, err := c.conn.Get(c.abs(p))
	if err != nil {
		return nil, fmt.Errorf("reading buildset %s: %w", id, zkErr(err))
	}
	b := &Buildset{ID: id, Version: st.Version}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, &DecodeError{Path: p, Err: err}
	}
	return b, nil
}

// BuildsetIDs returns the ids of all buildset records, sorted.
func (c *Client) BuildsetIDs(ctx context.Context) ([]string, error) {
	return c.childIDs(ctx, BuildsetRoot)
}

// ListBuildsets returns every buildset record, sorted by id; records deleted
// while listing are skipped.
func (c *Client) ListBuildsets(ctx context.Context) ([]*Buildset, error) {
	ids, err := c.BuildsetIDs(ctx)
	if err != nil {
		return nil, err
	}
	return getAll(ctx, ids, c.GetBuildset)
}

// UpdateBuildset writes b if the znode's version is still b.Version
// (otherwise ErrConflict) and sets b.Version to the new one.
func (c *Client) UpdateBuildset(ctx context.Context, b *Buildset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding buildset %s: %w", b.ID, err)
	}
	st, err := c.conn.Set(c.abs(buildsetPath(b.ID)), data, b.Version)
	if err != nil {
		return fmt.Errorf("storing buildset %s: %w", b.ID, zkErr(err))
	}
	b.Version = st.Version
	return nil
}

// DeleteBuildset deletes the record if its version is still b.Version
// (otherwise ErrConflict). A missing record is not an error.
func (c *Client) DeleteBuildset(ctx context.Context, b *Buildset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := c.conn.Delete(c.abs(buildsetPath(b.ID)), b.Version)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting buildset %s: %w", b.ID, zkErr(err))
	}
	return nil
}
