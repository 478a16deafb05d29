package buildset

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/kubepool/kubepool/internal/zk"
)

// ErrDeleting is returned when credentials are asked for a buildset whose
// images are being deleted; ask again once the sweep has finished.
var ErrDeleting = errors.New("buildset is being deleted")

// Store keeps buildset records in ZooKeeper.
type Store struct {
	ZK *zk.Client
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Credentials are what a node of a buildset gets to log in to the registry.
type Credentials struct {
	Username string
	Password string
	// ID names the credential in the buildset's record.
	ID string
}

// NewCredentials makes a credential for a node of buildset id, creating the
// buildset's record if it has none, and stores only its hash. node is
// recorded with it (it may be empty).
func (s *Store) NewCredentials(ctx context.Context, id, node string) (Credentials, error) {
	if err := ValidateID(id); err != nil {
		return Credentials{}, err
	}
	var raw [8 + 32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Credentials{}, fmt.Errorf("making buildset credential: %w", err)
	}
	credID := hex.EncodeToString(raw[:8])
	secret := base64.RawURLEncoding.EncodeToString(raw[8:])
	cred := zk.BuildsetCredential{Hash: hashSecret(secret), Created: zk.Timestamp(s.now()), Node: node}
	err := s.update(ctx, id, true, func(b *zk.Buildset) error {
		if b.State == zk.BuildsetDeleting {
			return fmt.Errorf("buildset %s: %w", id, ErrDeleting)
		}
		if b.Credentials == nil {
			b.Credentials = map[string]zk.BuildsetCredential{}
		}
		b.Credentials[credID] = cred
		b.LastNodeSeen = zk.Timestamp(s.now())
		return nil
	})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Username: UserPrefix + id, Password: credID + "." + secret, ID: credID}, nil
}

// Revoke removes one credential of buildset id. Missing ones are not an error.
func (s *Store) Revoke(ctx context.Context, id, credID string) error {
	err := s.update(ctx, id, false, func(b *zk.Buildset) error {
		delete(b.Credentials, credID)
		return nil
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// Authenticate checks a registry user and password and returns the buildset
// they belong to. Any mismatch, unknown buildset or revoked credential is
// ErrUnauthorized.
func (s *Store) Authenticate(ctx context.Context, user, password string) (string, error) {
	id, ok := strings.CutPrefix(user, UserPrefix)
	if !ok || ValidateID(id) != nil {
		return "", ErrUnauthorized
	}
	credID, secret, ok := strings.Cut(password, ".")
	if !ok || credID == "" || secret == "" {
		return "", ErrUnauthorized
	}
	b, err := s.ZK.GetBuildset(ctx, id)
	if errors.Is(err, zk.ErrNoNode) {
		return "", ErrUnauthorized
	}
	if err != nil {
		return "", err
	}
	c, ok := b.Credentials[credID]
	if !ok || b.State != zk.BuildsetActive {
		return "", ErrUnauthorized
	}
	if subtle.ConstantTimeCompare([]byte(c.Hash), []byte(hashSecret(secret))) != 1 {
		return "", ErrUnauthorized
	}
	return id, nil
}

// Get reads one buildset record (an error wrapping zk.ErrNoNode if none).
func (s *Store) Get(ctx context.Context, id string) (*zk.Buildset, error) {
	return s.ZK.GetBuildset(ctx, id)
}

// List reads every buildset record, sorted by id.
func (s *Store) List(ctx context.Context) ([]*zk.Buildset, error) {
	return s.ZK.ListBuildsets(ctx)
}

// hashSecret hashes a credential secret. The secrets are 256 random bits,
// so a fast hash is enough: there is nothing to brute-force.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// update reads buildset id, applies fn and writes it back, retrying on
// concurrent changes. With create, a missing record is made (state active).
func (s *Store) update(ctx context.Context, id string, create bool, fn func(*zk.Buildset) error) error {
	for {
		b, err := s.ZK.GetBuildset(ctx, id)
		missing := errors.Is(err, zk.ErrNoNode)
		switch {
		case missing && create:
			now := zk.Timestamp(s.now())
			b = &zk.Buildset{ID: id, State: zk.BuildsetActive, Created: now, LastNodeSeen: now}
		case err != nil:
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		if missing {
			err = s.ZK.CreateBuildset(ctx, b)
			if errors.Is(err, gozk.ErrNodeExists) {
				continue // someone else made it: read theirs
			}
		} else {
			err = s.ZK.UpdateBuildset(ctx, b)
			if errors.Is(err, zk.ErrConflict) || errors.Is(err, zk.ErrNoNode) {
				continue
			}
		}
		return err
	}
}
