package gitsync

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubepool/kubepool/internal/podexec"
)

// A first push of a repo (the pod has no refs of it) is the bulk of a
// first sync, and needs no negotiation: Sync sends those repos over a few
// exec streams, several repos in each, rather than one exec per repo. Each
// exec costs a runtime exec in the pod and a round trip, and the pod
// installs and checks out each repo while the next one is still arriving.

// maxBatch bounds the repos of one stream exec: their paths are arguments
// of the command.
const maxBatch = 64

// batchItem is one repo of a stream: what to send, and what came back.
type batchItem struct {
	repo    Repo
	want    state
	updates string // git update-ref --stdin commands
	digest  string
	size    int64 // the bytes of its packs, to balance the streams

	ready   chan struct{} // closed once prepare has run
	files   []string
	objects int64
	ok      bool  // false: its storage cannot be sent as files (see packFiles)
	err     error // of prepare

	sent atomic.Int64
	got  *podState
	// runErr is the stream's outcome for this repo when got is nil or
	// does not verify.
	runErr error
}

// freshInPod reports whether a push of want into have is a first push:
// the pod has no refs and no detached HEAD there, and want has commits.
func freshInPod(have *podState, want state) bool {
	if have != nil && (len(have.Refs) > 0 || len(have.Head) == len(zeroOID)) {
		return false
	}
	return len(want.Refs) > 0 || len(want.Head) == len(zeroOID)
}

// newBatchItem plans the first push of r.
func newBatchItem(r Repo, want state, digest string) *batchItem {
	var updates strings.Builder
	for _, ref := range want.Refs {
		fmt.Fprintf(&updates, "create %s %s\n", ref.Name, ref.OID)
	}
	it := &batchItem{repo: r, want: want, updates: updates.String(), digest: digest, ready: make(chan struct{})}
	objdir := filepath.Join(r.Dir, ".git", "objects")
	packs, _ := filepath.Glob(filepath.Join(objdir, "pack", "pack-*.pack"))
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil {
			it.size += fi.Size()
		}
	}
	return it
}

// prepare finds the files that carry its objects, into tmp when they
// must be written.
func (it *batchItem) prepare(ctx context.Context, tmp string) {
	defer close(it.ready)
	var tips []string
	seen := map[string]bool{}
	for _, oid := range append([]string{it.want.Head}, refOIDs(it.want.Refs)...) {
		if len(oid) == len(zeroOID) && !seen[oid] {
			seen[oid] = true
			tips = append(tips, oid)
		}
	}
	dir, err := os.MkdirTemp(tmp, "repo-")
	if err != nil {
		it.err = err
		return
	}
	it.files, it.objects, it.ok, it.err = packFiles(ctx, it.repo.Dir, dir, tips)
}

func refOIDs(refs []ref) []string {
	oids := make([]string, len(refs))
	for i, r := range refs {
		oids[i] = r.OID
	}
	return oids
}

// balance splits items into at least n groups of at most maxBatch items,
// with about as many bytes in each: largest first, each into the group
// with the fewest bytes so far. Each group ends with its smallest repos, so
// what the pod does after the last byte arrived is little.
func balance(items []*batchItem, n int) [][]*batchItem {
	n = max(n, (len(items)+maxBatch-1)/maxBatch)
	n = min(n, len(items))
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b *batchItem) int { return int(min(max(b.size-a.size, -1), 1)) })
	groups := make([][]*batchItem, n)
	sizes := make([]int64, n)
	for _, it := range sorted {
		best := -1
		for g := range groups {
			if len(groups[g]) < maxBatch && (best < 0 || sizes[g] < sizes[best]) {
				best = g
			}
		}
		groups[best] = append(groups[best], it)
		sizes[best] += it.size
	}
	return groups
}

// pushBatch sends the repos of items through one exec and records, for
// each, the state read back or why there is none.
func (s *Syncer) pushBatch(ctx context.Context, items []*batchItem) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keep := ""
	if s.NoClean {
		keep = "keep"
	}
	cmd := []string{"sh", "-c", batchScript, "kubepool-gitsync", s.Dest, keep}
	for _, it := range items {
		cmd = append(cmd, it.repo.Path)
	}
	var stdout bytes.Buffer
	in := &batchStream{ctx: ctx, items: items, s: s}
	runErr := s.Exec.Run(ctx, s.Target, cmd, podexec.Options{Stdin: in, Stdout: &stdout, StallTimeout: s.stall(), EndLine: endLine, Heartbeat: heartbeat})
	cancel()
	in.close()
	for _, it := range items {
		<-it.ready // prepare may still run for repos the stream did not reach
	}
	states, perr := parseStates(&stdout)
	runErr = s.scriptErr(runErr)
	for _, it := range items {
		st := states[it.repo.Path]
		switch {
		case it.err != nil:
			it.runErr = it.err
		case !it.ok:
			// Sent as a push of its own instead.
		case st != nil && st.Failed:
			// The pod said why, in this repo's own words.
			it.runErr = &ScriptError{Target: s.Target, ExitCode: st.ExitCode, Message: lastLines(strings.Join(st.Errors, "\n"), 3), Err: runErr}
			if runErr == nil {
				it.runErr.(*ScriptError).Err = podexec.ErrStream
			}
		case st != nil:
			it.got = st
			it.runErr = runErr
		case runErr != nil:
			it.runErr = runErr
		case perr != nil:
			it.runErr = fmt.Errorf("reading back repo state from pod %s: %w", s.Target, perr)
		default:
			it.runErr = fmt.Errorf("reading back repo state from pod %s: repo %s missing: %w", s.Target, it.repo.Path, errIncomplete)
		}
	}
}

// batchStream is the stdin of a stream exec: a tar of each item's meta,
// refs and pack files, then its done marker, as batchScript reads it. It
// reads the files straight into the caller's buffer, waiting for each
// item to be prepared in turn.
type batchStream struct {
	mu    sync.Mutex // Read may still run when the exec is over
	ctx   context.Context
	s     *Syncer // for progress
	items []*batchItem
	next  int // the next item to start
	segs  []segment
	cur   *batchItem
	f     *os.File // file being sent
	left  int64    // bytes of f still to send
	ended bool     // end of archive queued
}

// segment is bytes to send, or a file of a known size.
type segment struct {
	data []byte
	path string
	size int64
}

func (b *batchStream) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if err := b.ctx.Err(); err != nil {
			return 0, err
		}
		if b.f != nil {
			n, err := b.f.Read(p[:min(int64(len(p)), b.left)])
			b.left -= int64(n)
			if sent := b.cur.sent.Add(int64(n)); b.s.Progress != nil && (sent-int64(n))>>16 != sent>>16 {
				b.s.progress(Progress{Repo: b.cur.repo.Path, Phase: PhaseSending, Bytes: sent, Total: b.cur.size})
			}
			if b.left == 0 {
				b.f.Close()
				b.f = nil
			} else if err != nil {
				return n, fmt.Errorf("sending %s: %w", b.f.Name(), noEOF(err))
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if len(b.segs) > 0 {
			sg := &b.segs[0]
			if sg.path == "" {
				n := copy(p, sg.data)
				sg.data = sg.data[n:]
				if len(sg.data) == 0 {
					b.segs = b.segs[1:]
				}
				if b.cur != nil {
					b.cur.sent.Add(int64(n))
				}
				return n, nil
			}
			f, err := os.Open(sg.path)
			if err != nil {
				return 0, err
			}
			if fi, err := f.Stat(); err != nil || fi.Size() != sg.size {
				f.Close()
				return 0, fmt.Errorf("sending %s: changed while being sent", sg.path)
			}
			b.f, b.left = f, sg.size
			b.segs = b.segs[1:]
			continue
		}
		if b.next < len(b.items) {
			it := b.items[b.next]
			b.next++
			select {
			case <-it.ready:
			case <-b.ctx.Done():
				return 0, b.ctx.Err()
			}
			segs, err := it.segments()
			if err != nil {
				return 0, err
			}
			b.cur, b.segs = it, segs
			continue
		}
		if !b.ended {
			b.ended, b.cur = true, nil
			b.segs = []segment{{data: make([]byte, 2*blockSize)}}
			continue
		}
		return 0, io.EOF
	}
}

func (b *batchStream) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f != nil {
		b.f.Close()
		b.f = nil
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

const blockSize = 512

// segments are the tar members of it.
func (it *batchItem) segments() ([]segment, error) {
	prefix := it.repo.Path + "/" + incoming + "/"
	meta := "skip\n"
	if it.err == nil && it.ok {
		names := make([]string, len(it.files))
		for i, f := range it.files {
			fi, err := os.Stat(f)
			if err != nil {
				return nil, err
			}
			names[i] = fmt.Sprintf("%s:%d", filepath.Base(f), fi.Size())
		}
		checkout := 0
		if wantsCheckout(it.want) {
			checkout = 1
		}
		meta = fmt.Sprintf("tar %s\n%s\n%s\n%d\n", strings.Join(names, " "), it.want.Head, it.digest, checkout)
	}
	var segs []segment
	small := func(name, data string) error {
		h, err := tarHeader(prefix+name, int64(len(data)))
		if err != nil {
			return err
		}
		segs = append(segs, segment{data: append(append(h, data...), padding(int64(len(data)))...)})
		return nil
	}
	if err := small("kubepool-meta", meta); err != nil {
		return nil, err
	}
	if meta != "skip\n" {
		if err := small("kubepool-refs", it.updates); err != nil {
			return nil, err
		}
		for _, f := range it.files {
			fi, err := os.Stat(f)
			if err != nil {
				return nil, err
			}
			h, err := tarHeader(prefix+filepath.Base(f), fi.Size())
			if err != nil {
				return nil, err
			}
			segs = append(segs, segment{data: h}, segment{path: f, size: fi.Size()})
			if pad := padding(fi.Size()); len(pad) > 0 {
				segs = append(segs, segment{data: pad})
			}
		}
	}
	if err := small("kubepool-done", ""); err != nil {
		return nil, err
	}
	return segs, nil
}

// tarHeader is the header block(s) of a read-only regular file (with a
// PAX record when the name is too long for USTAR).
func tarHeader(name string, size int64) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, fmt.Errorf("sending %s: %w", name, err)
	}
	// Not closed: the data and its padding follow from the caller.
	return b.Bytes(), nil
}

func padding(size int64) []byte {
	return make([]byte, (blockSize-size%blockSize)%blockSize)
}
