package gitsync

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/podexec"
)

// Runner runs a command in a pod; *podexec.Executor is one.
type Runner interface {
	Run(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error
}

// Syncer pushes workspaces into one container.
type Syncer struct {
	Exec   Runner
	Target podexec.Target
	// Dest is the workspace root in the container: an absolute path, or a
	// path relative to $HOME there. Empty means $HOME.
	Dest string
	// Parallel bounds how many execs push repos at once (default 8).
	Parallel int
	// Streams bounds how many execs carry the first pushes of repos (ones
	// the pod has no refs of), several repos in each (default 4, at most
	// Parallel).
	Streams int
	// Attempts is how many times a repo is tried before Sync gives up on
	// it (default 3).
	Attempts int
	// Logger receives a record per repo and per retry; nil logs nothing.
	Logger *slog.Logger
}

// RepoResult is what Sync did to one repo.
type RepoResult struct {
	Path string
	// Head is the repo's HEAD in the pod, as verified: "ref: <refname>" or
	// a commit id.
	Head string
	// Refs is the number of refs verified in the pod.
	Refs int
	// UpToDate is true when the pod already had this state: nothing was sent.
	UpToDate bool
	// Objects and Bytes are what the last attempt's pack held; Bytes also
	// counts packs of attempts that failed (what went on the wire).
	Objects int64
	Bytes   int64
	// Attempts is the number of pushes tried (0 when UpToDate).
	Attempts int
	Duration time.Duration
}

// Result is what Sync did, repo by repo, in the order of the repos given.
type Result struct {
	Repos []RepoResult
}

// Bytes is the pack bytes sent for all repos.
func (r *Result) Bytes() int64 {
	var n int64
	for _, rr := range r.Repos {
		n += rr.Bytes
	}
	return n
}

// Objects is the number of objects in the last packs sent for all repos.
func (r *Result) Objects() int64 {
	var n int64
	for _, rr := range r.Repos {
		n += rr.Objects
	}
	return n
}

// ErrNoGit is matched when the container has no git: push into a git
// sidecar instead (see internal/nodepod).
var ErrNoGit = errors.New("git is not installed in the container (use an image with git, or a git sidecar)")

// RepoError is the failure of one repo.
type RepoError struct {
	Path     string
	Attempts int
	Err      error
}

func (e *RepoError) Error() string {
	return fmt.Sprintf("syncing repo %s (attempt %d): %v", e.Path, e.Attempts, e.Err)
}

func (e *RepoError) Unwrap() error { return e.Err }

// VerifyError is a repo whose state, read back from the pod after a push,
// is not the source's.
type VerifyError struct {
	Path string
	// What differs: the first differing ref, or "HEAD".
	Ref       string
	Want, Got string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verifying repo %s in the pod: %s is %q, want %q", e.Path, e.Ref, e.Got, e.Want)
}

// Sync brings every repo to its source's state in the pod and verifies it.
// It tries every repo, and returns an error joining the *RepoError of each
// one that failed, along with the results of all of them.
func (s *Syncer) Sync(ctx context.Context, repos []Repo) (*Result, error) {
	if s.Exec == nil || s.Target.Pod == "" || s.Target.Namespace == "" {
		return nil, errors.New("gitsync: Syncer needs Exec and a Target with Namespace and Pod")
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	repos = slices.Clone(repos)
	for i := range repos {
		p, err := cleanRelPath(repos[i].Path)
		if err != nil {
			return nil, err
		}
		repos[i].Path = p
	}
	paths := make([]string, len(repos))
	for i, r := range repos {
		paths[i] = r.Path
	}
	// What the repos are here and what the pod has, at once.
	res := &Result{Repos: make([]RepoResult, len(repos))}
	local := make([]state, len(repos))
	var remote map[string]*podState
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.parallel() + 1)
	g.Go(func() error {
		var err error
		for attempt := 1; ; attempt++ {
			remote, err = s.probe(gctx, paths)
			if err == nil || attempt >= s.attempts() || !retryable(err) {
				return err
			}
			log.Warn("retrying probe", "pod", s.Target.String(), "attempt", attempt, "err", err)
		}
	})
	for i, r := range repos {
		g.Go(func() error {
			st, err := localState(gctx, r.Dir)
			if err != nil {
				return fmt.Errorf("repo %s: %w", r.Path, err)
			}
			local[i] = st
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// First pushes go in a few streams of several repos each (see
	// pushBatch); the others, and the retries, one exec per repo.
	start := time.Now()
	batched := map[int]*batchItem{}
	var items []*batchItem
	for i, r := range repos {
		if have := remote[r.Path]; freshInPod(have, local[i]) {
			it := newBatchItem(r, local[i], local[i].digest())
			batched[i] = it
			items = append(items, it)
		}
	}
	var tmp string
	if len(items) > 0 {
		var err error
		if tmp, err = os.MkdirTemp("", "kubepool-gitsync-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
	}
	groups := balance(items, s.streams())
	prep := &errgroup.Group{}
	prep.SetLimit(2)
	go func() {
		// Each stream's first repo first.
		for j := 0; ; j++ {
			more := false
			for _, grp := range groups {
				if j < len(grp) {
					more = true
					prep.Go(func() error { grp[j].prepare(ctx, tmp); return nil })
				}
			}
			if !more {
				return
			}
		}
	}()

	var errs []error
	errc := make(chan error, len(repos))
	repoGroup := &errgroup.Group{}
	repoGroup.SetLimit(s.parallel())
	sync1 := func(i int, it *batchItem) {
		repoGroup.Go(func() error {
			rr, err := s.syncRepo(ctx, log, repos[i], local[i], remote[repos[i].Path], it, start)
			res.Repos[i] = rr
			if err != nil {
				errc <- err
			}
			return nil
		})
	}
	streams := &errgroup.Group{}
	streams.SetLimit(s.streams())
	index := map[*batchItem]int{}
	for i, it := range batched {
		index[it] = i
	}
	for _, grp := range groups {
		streams.Go(func() error {
			s.pushBatch(ctx, grp)
			for _, it := range grp {
				sync1(index[it], it)
			}
			return nil
		})
	}
	for i := range repos {
		if batched[i] == nil {
			sync1(i, nil)
		}
	}
	streams.Wait()
	repoGroup.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

func (s *Syncer) parallel() int {
	if s.Parallel > 0 {
		return s.Parallel
	}
	return 8
}

// streams is how many stream execs carry first pushes at once.
func (s *Syncer) streams() int {
	if s.Streams > 0 {
		return s.Streams
	}
	return min(s.parallel(), 4)
}

func (s *Syncer) attempts() int {
	if s.Attempts > 0 {
		return s.Attempts
	}
	return 3
}

// retryable reports whether another attempt may succeed: the stream broke,
// or the command failed in the pod (a cut stream may also show as that).
func retryable(err error) bool {
	var ee *podexec.ExecError
	var ve *VerifyError
	switch {
	case errors.Is(err, ErrNoGit), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, podexec.ErrStream), errors.As(err, &ee), errors.As(err, &ve):
		return true
	}
	return false
}

// probe asks the pod for the state of the repos at paths.
func (s *Syncer) probe(ctx context.Context, paths []string) (map[string]*podState, error) {
	var stdout bytes.Buffer
	cmd := []string{"sh", "-c", probeScript, "kubepool-gitsync", s.Dest}
	err := s.Exec.Run(ctx, s.Target, cmd, podexec.Options{
		Stdin:  strings.NewReader(strings.Join(paths, "\n") + "\n"),
		Stdout: &stdout,
	})
	if err != nil {
		return nil, fmt.Errorf("reading repo states: %w", execErr(err))
	}
	states, err := parseStates(&stdout)
	if err != nil {
		return nil, fmt.Errorf("reading repo states from pod %s: %w", s.Target, err)
	}
	return states, nil
}

// execErr adds ErrNoGit to the error of a script that found no git.
func execErr(err error) error {
	var ee *podexec.ExecError
	if errors.As(err, &ee) && ee.ExitCode == 127 && strings.Contains(ee.Stderr, "kubepool-gitsync: git: command not found") {
		return fmt.Errorf("%w: %w", ErrNoGit, err)
	}
	return err
}

// syncRepo brings one repo to want. When batched is not nil, its stream
// was the first attempt.
func (s *Syncer) syncRepo(ctx context.Context, log *slog.Logger, r Repo, want state, have *podState, batched *batchItem, start time.Time) (RepoResult, error) {
	if batched == nil {
		start = time.Now()
	}
	rr := RepoResult{Path: r.Path}
	if have == nil {
		have = &podState{}
	}
	digest := want.digest()
	if have.Exists && have.Synced == digest && have.equal(want) {
		rr.UpToDate, rr.Head, rr.Refs = true, have.Head, len(have.Refs)
		log.Debug("repo up to date", "repo", r.Path)
		return rr, nil
	}
	if batched != nil && !batched.ok && batched.err == nil {
		batched = nil // not sent in its stream
	}
	for {
		rr.Attempts++
		var got *podState
		var objects, n int64
		var err error
		if batched != nil && rr.Attempts == 1 {
			got, objects, n, err = batched.got, batched.objects, batched.sent.Load(), batched.runErr
			if got != nil {
				// The pod printed this repo's state: it was done, whatever
				// happened to the rest of the stream.
				err = nil
			}
		} else {
			got, objects, n, err = s.push(ctx, r, want, have.state, digest)
		}
		rr.Bytes += n
		rr.Objects = objects
		if err == nil {
			err = verify(r.Path, want, got)
		}
		if err == nil {
			rr.Head, rr.Refs, rr.Duration = got.Head, len(got.Refs), time.Since(start)
			log.Info("repo synced", "repo", r.Path, "objects", objects, "bytes", rr.Bytes, "attempts", rr.Attempts, "duration", rr.Duration)
			return rr, nil
		}
		if rr.Attempts >= s.attempts() || !retryable(err) || ctx.Err() != nil {
			rr.Duration = time.Since(start)
			return rr, &RepoError{Path: r.Path, Attempts: rr.Attempts, Err: err}
		}
		log.Warn("retrying repo", "repo", r.Path, "attempt", rr.Attempts, "err", err)
		states, perr := s.probe(ctx, []string{r.Path})
		if perr != nil {
			// Try again anyway: the push does compare-and-swap against
			// what it believes the pod has, so a wrong belief fails safely.
			log.Warn("re-reading repo state", "repo", r.Path, "err", perr)
			continue
		}
		if st := states[r.Path]; st != nil {
			have = st
		}
	}
}

// verify compares the state read back from the pod with the source's.
func verify(path string, want state, got *podState) error {
	if got == nil || !got.Exists {
		return &VerifyError{Path: path, Ref: "HEAD", Want: want.Head, Got: ""}
	}
	if got.Head != want.Head {
		return &VerifyError{Path: path, Ref: "HEAD", Want: want.Head, Got: got.Head}
	}
	g := map[string]string{}
	for _, r := range got.Refs {
		g[r.Name] = r.OID
	}
	for _, r := range want.Refs {
		if g[r.Name] != r.OID {
			return &VerifyError{Path: path, Ref: r.Name, Want: r.OID, Got: g[r.Name]}
		}
		delete(g, r.Name)
	}
	for name, oid := range g {
		return &VerifyError{Path: path, Ref: name, Want: "", Got: oid}
	}
	return nil
}

const zeroOID = "0000000000000000000000000000000000000000"

// push sends one repo: a pack of what the pod lacks, the ref updates from
// have to want, and HEAD. It returns the state read back, the number of
// objects in the pack and the bytes of it sent.
func (s *Syncer) push(ctx context.Context, r Repo, want, have state, digest string) (*podState, int64, int64, error) {
	haveRefs := map[string]string{}
	for _, ref := range have.Refs {
		haveRefs[ref.Name] = ref.OID
	}
	var updates bytes.Buffer
	wantNames := map[string]bool{}
	for _, ref := range want.Refs {
		wantNames[ref.Name] = true
		switch old, ok := haveRefs[ref.Name]; {
		case !ok:
			fmt.Fprintf(&updates, "create %s %s\n", ref.Name, ref.OID)
		case old != ref.OID:
			fmt.Fprintf(&updates, "update %s %s %s\n", ref.Name, ref.OID, old)
		}
	}
	for _, ref := range have.Refs {
		if !wantNames[ref.Name] {
			fmt.Fprintf(&updates, "delete %s %s\n", ref.Name, ref.OID)
		}
	}

	// The pod's tips that exist here bound the pack from below.
	haveOIDs := map[string]bool{}
	var candidates []string
	for _, ref := range have.Refs {
		if !haveOIDs[ref.OID] {
			haveOIDs[ref.OID] = true
			candidates = append(candidates, ref.OID)
		}
	}
	if len(have.Head) == len(zeroOID) && !haveOIDs[have.Head] {
		candidates = append(candidates, have.Head)
	}
	known, err := existing(ctx, r.Dir, candidates)
	if err != nil {
		return nil, 0, 0, err
	}
	var revs bytes.Buffer
	newTips := false
	seen := map[string]bool{}
	tips := append([]string{}, want.Head)
	for _, ref := range want.Refs {
		tips = append(tips, ref.OID)
	}
	for _, oid := range tips {
		if len(oid) != len(zeroOID) || seen[oid] {
			continue // a symbolic HEAD
		}
		seen[oid] = true
		if !known[oid] {
			newTips = true
		}
		fmt.Fprintln(&revs, oid)
	}
	for oid := range known {
		fmt.Fprintf(&revs, "^%s\n", oid)
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pack io.Reader = bytes.NewReader(nil)
	var objects int64
	var sent atomic.Int64
	var packCmd *exec.Cmd
	var packStderr bytes.Buffer
	mode := "0"
	if newTips && len(known) == 0 {
		// A first push: send the repo's packs and their indexes as files.
		tmp, err := os.MkdirTemp("", "kubepool-gitsync-")
		if err != nil {
			return nil, 0, 0, err
		}
		defer os.RemoveAll(tmp)
		files, n, ok, err := packFiles(ctx, r.Dir, tmp, strings.Fields(revs.String()))
		if err != nil {
			return nil, 0, 0, err
		}
		if ok {
			newTips, objects, mode = false, n, "tar"
			for _, f := range files {
				mode += " " + filepath.Base(f)
			}
			pr, pw := io.Pipe()
			defer pr.Close()
			go writePackTar(pw, files)
			pack = &countingReader{r: pr, n: &sent}
		}
	}
	if newTips {
		args := []string{"pack-objects", "--revs", "--stdout", "--thin", "--delta-base-offset", "-q"}
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, 0, 0, err
		}
		defer pr.Close()
		packCmd = exec.CommandContext(pctx, "git", args...)
		packCmd.Dir, packCmd.Stdin, packCmd.Stdout, packCmd.Stderr = r.Dir, &revs, pw, &packStderr
		err = packCmd.Start()
		pw.Close()
		if err != nil {
			return nil, 0, 0, &GitError{Dir: r.Dir, Args: args, Err: err}
		}
		var hdr [12]byte
		if _, err := io.ReadFull(pr, hdr[:]); err != nil || string(hdr[:4]) != "PACK" {
			cancel()
			werr := packCmd.Wait()
			return nil, 0, 0, &GitError{Dir: r.Dir, Args: args, Stderr: packStderr.String(), Err: errors.Join(werr, fmt.Errorf("reading pack header: %v", err))}
		}
		objects = int64(binary.BigEndian.Uint32(hdr[8:12]))
		if objects > 0 {
			mode = "pack"
			sent.Store(int64(len(hdr)))
			pack = io.MultiReader(bytes.NewReader(hdr[:]), &countingReader{r: pr, n: &sent})
		} else {
			io.Copy(io.Discard, pr)
		}
	}
	header := fmt.Sprintf("%s\n%s\n%s\n", mode, want.Head, updates.String())
	var stdout bytes.Buffer
	cmd := []string{"sh", "-c", applyScript, "kubepool-gitsync", s.Dest, r.Path, digest}
	runErr := s.Exec.Run(ctx, s.Target, cmd, podexec.Options{
		Stdin:  io.MultiReader(strings.NewReader(header), pack),
		Stdout: &stdout,
	})
	if packCmd != nil {
		if runErr != nil {
			cancel()
		}
		if werr := packCmd.Wait(); werr != nil && runErr == nil {
			return nil, objects, sent.Load(), &GitError{Dir: r.Dir, Args: packCmd.Args[1:], Stderr: packStderr.String(), Err: werr}
		}
	}
	if runErr != nil {
		return nil, objects, sent.Load(), execErr(runErr)
	}
	states, err := parseStates(&stdout)
	if err != nil {
		return nil, objects, sent.Load(), fmt.Errorf("reading back repo state from pod %s: %w", s.Target, err)
	}
	return states[r.Path], objects, sent.Load(), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
