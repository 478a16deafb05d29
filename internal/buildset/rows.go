package buildset

import (
	"context"
	"slices"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// Row is one buildset as the operator commands show it.
type Row struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Created      time.Time `json:"created"`
	LastNodeSeen time.Time `json:"last_node_seen"`
	Credentials  int       `json:"credentials"`
}

// CredentialInfo is one credential of a buildset, without its hash.
type CredentialInfo struct {
	ID      string    `json:"id"`
	Node    string    `json:"node,omitempty"`
	Created time.Time `json:"created"`
}

// Info is one buildset in detail.
type Info struct {
	Row
	// Username is the registry user of the buildset's credentials.
	Username       string           `json:"username"`
	CredentialList []CredentialInfo `json:"credential_list"`
}

// NewRow makes the row of a record.
func NewRow(b *zk.Buildset) Row {
	return Row{ID: b.ID, State: b.State, Created: zk.TimeOf(b.Created).UTC(), LastNodeSeen: zk.TimeOf(b.LastNodeSeen).UTC(), Credentials: len(b.Credentials)}
}

// Rows lists every buildset.
func (s *Store) Rows(ctx context.Context) ([]Row, error) {
	bs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(bs))
	for _, b := range bs {
		rows = append(rows, NewRow(b))
	}
	return rows, nil
}

// Info reads one buildset in detail; credentials are sorted by creation.
func (s *Store) Info(ctx context.Context, id string) (*Info, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	b, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	info := &Info{Row: NewRow(b), Username: UserPrefix + id, CredentialList: []CredentialInfo{}}
	for cid, c := range b.Credentials {
		info.CredentialList = append(info.CredentialList, CredentialInfo{ID: cid, Node: c.Node, Created: zk.TimeOf(c.Created).UTC()})
	}
	slices.SortFunc(info.CredentialList, func(a, b CredentialInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return info, nil
}
