package buildset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// imageDeleter deletes the images of the repositories under a prefix
// (*Registry does, through the registry API).
type imageDeleter interface {
	DeletePrefix(ctx context.Context, prefix string) (repos, manifests int, err error)
}

// Sweeper ends buildsets whose nodes are gone. It holds no state of its
// own: every launcher may run it, at the same time as others.
type Sweeper struct {
	Store    *Store
	Registry imageDeleter
	Policy   Policy
	// TTL is how long a buildset lives after its last node was seen.
	TTL time.Duration
	// Log receives a record per buildset ended; nil logs nothing.
	Log *slog.Logger
}

// SweepResult says what one sweep did, by buildset id.
type SweepResult struct {
	// Seen: live buildsets whose last_node_seen was moved forward.
	Seen []string
	// Revoked: buildsets whose credentials were revoked by this sweep.
	Revoked []string
	// Deleted: buildsets whose images and record were deleted.
	Deleted []string
}

func (s *Sweeper) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Sweep looks at every buildset record once. live holds the buildsets that
// have a node now (any state but deleted). A live buildset has its
// last_node_seen moved forward (at most once per TTL/10); one whose last node
// was seen TTL ago or more is revoked (state deleting, no credentials), its
// manifests are deleted and then its record. A record already in state
// deleting (a sweep or a delete that was interrupted) is finished.
//
// Sweep continues past a buildset it cannot finish and returns the errors
// joined; a record changed by someone else meanwhile is left for the next
// sweep.
func (s *Sweeper) Sweep(ctx context.Context, live map[string]bool) (SweepResult, error) {
	var res SweepResult
	if s.TTL <= 0 {
		return res, fmt.Errorf("buildset sweep: TTL %v is not positive", s.TTL)
	}
	records, err := s.Store.List(ctx)
	if err != nil {
		return res, fmt.Errorf("listing buildsets: %w", err)
	}
	now := s.Store.now()
	var errs []error
	for _, b := range records {
		last := zk.TimeOf(b.LastNodeSeen)
		switch {
		case b.State == zk.BuildsetDeleting:
		case live[b.ID]:
			if now.Sub(last) < s.TTL/10 {
				continue
			}
			b.LastNodeSeen = zk.Timestamp(now)
			err := s.Store.ZK.UpdateBuildset(ctx, b)
			if errors.Is(err, zk.ErrConflict) || errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res.Seen = append(res.Seen, b.ID)
			continue
		case now.Sub(last) >= s.TTL:
			if err := s.revoke(ctx, b); err != nil {
				if !errors.Is(err, zk.ErrConflict) && !errors.Is(err, zk.ErrNoNode) {
					errs = append(errs, err)
				}
				continue
			}
			res.Revoked = append(res.Revoked, b.ID)
		default:
			continue
		}
		if err := s.purge(ctx, b); err != nil {
			if !errors.Is(err, zk.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		res.Deleted = append(res.Deleted, b.ID)
	}
	return res, errors.Join(errs...)
}

// Delete ends buildset id now, whether or not it has nodes: it revokes its
// credentials, deletes its manifests and its record. A buildset with no
// record is not an error (its images are still looked for and deleted).
func (s *Sweeper) Delete(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	for {
		b, err := s.Store.Get(ctx, id)
		if errors.Is(err, zk.ErrNoNode) {
			_, _, err := s.Registry.DeletePrefix(ctx, s.Policy.Repository(id))
			return err
		}
		if err != nil {
			return err
		}
		if b.State != zk.BuildsetDeleting {
			if err := s.revoke(ctx, b); errors.Is(err, zk.ErrConflict) {
				continue
			} else if err != nil {
				return err
			}
		}
		if err := s.purge(ctx, b); errors.Is(err, zk.ErrConflict) {
			continue
		} else {
			return err
		}
	}
}

// revoke stores b as deleting, without credentials.
func (s *Sweeper) revoke(ctx context.Context, b *zk.Buildset) error {
	b.State = zk.BuildsetDeleting
	b.Credentials = nil
	return s.Store.ZK.UpdateBuildset(ctx, b)
}

// purge deletes a revoked buildset's manifests, then its record.
func (s *Sweeper) purge(ctx context.Context, b *zk.Buildset) error {
	repos, manifests, err := s.Registry.DeletePrefix(ctx, s.Policy.Repository(b.ID))
	if err != nil {
		return fmt.Errorf("buildset %s: %w", b.ID, err)
	}
	if err := s.Store.ZK.DeleteBuildset(ctx, b); err != nil {
		return err
	}
	s.log().InfoContext(ctx, "buildset ended", "buildset", b.ID, "repositories", repos, "manifests", manifests)
	return nil
}
