package imageset

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A Journal is the plan of a set of tag writes that must all happen: for
// every target tag, the digest it gets and the digest it had (or none).
// Its contract:
//
//   - It is written (atomically: a temporary file, fsynced, renamed, the
//     directory fsynced) before the first write to any target, so any
//     interruption after that (network cut, registry down, kill -9) leaves
//     it on disk.
//   - [Client.ApplyJournal] reads the registry, writes only the targets not
//     yet at their digest, verifies each write, and removes the journal
//     when every target is right; otherwise the journal stays and applying
//     it again finishes the rest. Applying it is idempotent.
//   - [Client.RollbackJournal] puts every target that had a digest back to
//     it and removes the tags that did not exist where the registry can
//     remove a tag alone; it names the ones it cannot.
//
// Promote uses it; anything else that must write a set of tags all or
// nothing (a push to another registry) can build one and apply it.
type Journal struct {
	Version   int            `json:"version"`
	Operation string         `json:"operation"` // what wrote it: "promote to current-passed-ci"
	Created   time.Time      `json:"created"`
	Entries   []JournalEntry `json:"entries"`
}

// JournalEntry is one target tag.
type JournalEntry struct {
	// Source is where the manifest is read from (repository@digest); a
	// source in another repository is copied with its blobs.
	Source    string `json:"source"`
	Target    string `json:"target"` // repository:tag
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	// Previous is the digest Target had before; "" if it did not exist.
	Previous string `json:"previous,omitempty"`
	// Manifest is the source manifest (saves reading it again when the
	// source is in the target's repository).
	Manifest []byte `json:"manifest,omitempty"`
}

const journalVersion = 1

// ErrNoJournal is returned (wrapped) by [ReadJournal] when there is none.
var ErrNoJournal = errors.New("no journal: no unfinished promotion to resume or roll back")

// WriteJournal writes j to path atomically and durably. It refuses to
// replace an existing journal: an unfinished plan must be finished or
// rolled back first.
func WriteJournal(path string, j *Journal) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("writing journal %s: it exists (an unfinished promotion)", path)
	}
	j.Version = journalVersion
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding journal: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// ReadJournal reads the journal at path; it wraps [ErrNoJournal] if there
// is none.
func ReadJournal(path string) (*Journal, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoJournal)
	}
	if err != nil {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("reading journal %s: %w (move it away to start over)", path, err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("reading journal %s: version %d, want %d", path, j.Version, journalVersion)
	}
	for i, e := range j.Entries {
		if e.Target == "" || e.Digest == "" || e.Source == "" {
			return nil, fmt.Errorf("reading journal %s: entry %d lacks its source, target or digest", path, i+1)
		}
	}
	return &j, nil
}

// Targets returns the entries' targets, sorted.
func (j *Journal) Targets() []string {
	out := make([]string, len(j.Entries))
	for i, e := range j.Entries {
		out[i] = e.Target
	}
	slices.Sort(out)
	return out
}

// removeJournal removes the journal and syncs its directory.
func removeJournal(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing journal: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory: after a crash path has the old content or the new.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
