package gitsync

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
	// NoClean leaves a working tree that differs from HEAD (edited,
	// added or deleted files) as it is, and fails its repo with a
	// *DirtyError, instead of resetting and cleaning it.
	NoClean bool
	// StallTimeout ends an exec that, while it still has data to send,
	// sees the pod take none of it and print nothing for that long, and
	// retries it (default DefaultStallTimeout).
	StallTimeout time.Duration
	// Logger receives a record per repo and per retry; nil logs nothing.
	Logger *slog.Logger
	// Progress, when set, is called as repos move (from several
	// goroutines at once).
	Progress func(Progress)
}

// DefaultStallTimeout is Syncer.StallTimeout's default.
const DefaultStallTimeout = 30 * time.Second

// Progress is a step of one repo's sync.
type Progress struct {
	Repo  string
	Phase Phase
	// Bytes sent so far (PhaseSending), or of the whole pack (others).
	Bytes int64
	// Total is the bytes to send, when known.
	Total int64
}

// Phase is where a repo's sync is.
type Phase string

// Phases of a repo, in order.
const (
	PhaseSending  Phase = "sending"
	PhaseRetrying Phase = "retrying"
	PhaseDone     Phase = "done"
	PhaseFailed   Phase = "failed"
)

func (s *Syncer) progress(p Progress) {
	if s.Progress != nil {
		s.Progress(p)
	}
}

func (s *Syncer) stall() time.Duration {
	if s.StallTimeout > 0 {
		return s.StallTimeout
	}
	return DefaultStallTimeout
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
	// State is the repo's state in the pod: StateVerified when Sync
	// brought it there or found it there, otherwise what the pod has.
	State State
	// WasPartial: an earlier sync of this repo was interrupted (and this
	// one repaired it when State is StateVerified).
	WasPartial bool `json:",omitempty"`
	// Cleaned: the pod had the right refs and HEAD, but a working tree
	// that differed; it was reset and cleaned.
	Cleaned bool `json:",omitempty"`
	// Error is why the repo failed, if it did.
	Error string `json:",omitempty"`
}

// State is what a repo in the pod is, compared with its source.
type State string

// States of a repo in the pod.
const (
	// StateVerified: refs, HEAD and a clean working tree, read back.
	StateVerified State = "verified"
	// StateAbsent: no repo there.
	StateAbsent State = "absent"
	// StatePartial: a sync of it was interrupted; it may lack objects,
	// refs or part of its working tree.
	StatePartial State = "partial"
	// StateDiffers: refs or HEAD differ from the source's.
	StateDiffers State = "differs"
	// StateDirty: refs and HEAD match, the working tree does not.
	StateDirty State = "dirty"
	// StateUnknown: it could not be read.
	StateUnknown State = "unknown"
)

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
	Target   podexec.Target
	Attempts int
	Err      error
}

func (e *RepoError) Error() string {
	return fmt.Sprintf("syncing repo %s into pod %s (%d attempts): %v", e.Path, e.Target, e.Attempts, e.Err)
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

// DirtyError is a repo whose refs and HEAD are the source's but whose
// working tree in the pod is not HEAD's, left so (Syncer.NoClean).
type DirtyError struct {
	Path string
}

func (e *DirtyError) Error() string {
	return fmt.Sprintf("repo %s: the working tree in the pod has changes (left as they are: --no-clean)", e.Path)
}

// DestError is a destination the pod cannot create or write.
type DestError struct {
	Target  podexec.Target
	Path    string
	Message string // the pod's
}

func (e *DestError) Error() string {
	return fmt.Sprintf("destination %s in pod %s: %s", e.Path, e.Target, e.Message)
}

// ScriptError is the pod side of a sync failing: Message is what the
// failing command printed (the last lines of it).
type ScriptError struct {
	Target podexec.Target
	// ExitCode is the script's exit status, -1 when it did not arrive.
	ExitCode int
	Message  string
	Err      error // the exec's error
}

func (e *ScriptError) Error() string {
	msg := fmt.Sprintf("in pod %s: ", e.Target)
	if e.Message != "" {
		msg += e.Message + " "
	}
	if e.ExitCode > 128 && e.ExitCode < 128+65 {
		return msg + fmt.Sprintf("(killed by signal %d)", e.ExitCode-128)
	}
	if e.ExitCode >= 0 {
		return msg + fmt.Sprintf("(exit status %d)", e.ExitCode)
	}
	var ns *podexec.NoStatusError
	if errors.As(e.Err, &ns) && ns.StdinLeft {
		return msg + "(ended before it read all its input; no exit status)"
	}
	return msg + "(no exit status)"
}

func (e *ScriptError) Unwrap() error { return e.Err }

// lastLines is the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "kubepool-tar-exit ") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}

// scriptErr turns the error of an exec of the scripts into one that says
// what failed in the pod, in the failing command's own words.
func (s *Syncer) scriptErr(err error) error {
	var ee *podexec.ExecError
	var ns *podexec.NoStatusError
	code, stderr := -1, ""
	switch {
	case errors.As(err, &ee):
		code, stderr = ee.ExitCode, ee.Stderr
	case errors.As(err, &ns):
		stderr = ns.Stderr
	default:
		return err
	}
	if strings.Contains(stderr, "kubepool-gitsync: git: command not found") {
		return fmt.Errorf("%w: %w", ErrNoGit, err)
	}
	for l := range strings.Lines(stderr) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "kubepool-gitsync: destination "); ok {
			path, msg, _ := strings.Cut(rest, ": ")
			return &DestError{Target: s.Target, Path: path, Message: msg}
		}
	}
	return &ScriptError{Target: s.Target, ExitCode: code, Message: lastLines(stderr, 3), Err: err}
}

// Sync brings every repo to its source's state in the pod and verifies it.
// It tries every repo, and returns an error joining the *RepoError of each
// one that failed, along with the results of all of them.
func (s *Syncer) Sync(ctx context.Context, repos []Repo) (*Result, error) {
	if s.Exec == nil || s.Target.Pod == "" || s.Target.Namespace == "" {
		return nil, errors.New("gitsync: Syncer needs Exec and a Target with Namespace and Pod")
	}
	log := s.logger()
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
	sv, err := s.survey(ctx, repos, paths, true, s.attempts())
	if err != nil {
		return nil, err
	}
	local, localErr, remote := sv.local, sv.localErr, sv.remote
	for i, r := range repos {
		if have := remote[r.Path]; have != nil && have.Partial {
			res.Repos[i].WasPartial = true
			log.Warn("repo left partial by an interrupted sync: repairing it", "repo", r.Path, "pod", s.Target.String())
		}
	}

	// First pushes go in a few streams of several repos each (see
	// pushBatch); the others, and the retries, one exec per repo.
	start := time.Now()
	batched := map[int]*batchItem{}
	var items []*batchItem
	for i, r := range repos {
		if have := remote[r.Path]; localErr[i] == nil && freshInPod(have, local[i]) {
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
			var rr RepoResult
			var err error
			if localErr[i] != nil {
				rr = RepoResult{Path: repos[i].Path, State: StateUnknown}
				err = &RepoError{Path: repos[i].Path, Target: s.Target, Err: localErr[i]}
			} else {
				rr, err = s.syncRepo(ctx, log, repos[i], local[i], remote[repos[i].Path], it, start)
			}
			rr.WasPartial = res.Repos[i].WasPartial
			if err != nil {
				rr.Error = err.Error()
				s.progress(Progress{Repo: rr.Path, Phase: PhaseFailed})
			} else {
				s.progress(Progress{Repo: rr.Path, Phase: PhaseDone, Bytes: rr.Bytes})
			}
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
	if len(errs) > 0 {
		s.failedStates(ctx, local, res)
	}
	return res, errors.Join(errs...)
}

// logger is Logger, or one that discards.
func (s *Syncer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// survey is what repos are here and what the pod has of them (at paths),
// read at once.
type survey struct {
	local    []state
	localErr []error // a repo that cannot be read here fails alone
	remote   map[string]*podState
}

// survey reads each repo's state here while the pod is probed (probe's
// create: whether the probe may create the destination), the probe tried
// up to attempts times while its errors are retryable.
func (s *Syncer) survey(ctx context.Context, repos []Repo, paths []string, create bool, attempts int) (*survey, error) {
	sv := &survey{local: make([]state, len(repos)), localErr: make([]error, len(repos))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.parallel() + 1)
	g.Go(func() error {
		var err error
		for attempt := 1; ; attempt++ {
			sv.remote, err = s.probe(gctx, paths, create)
			if err == nil || attempt >= attempts || !retryable(err) {
				return err
			}
			s.logger().Warn("retrying probe", "pod", s.Target.String(), "attempt", attempt, "err", err)
		}
	})
	for i, r := range repos {
		g.Go(func() error {
			sv.local[i], sv.localErr[i] = localState(gctx, r.Dir)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return sv, nil
}

// failedStates reads back what the pod has of the repos that failed, for
// their results: best effort, the pod may be gone.
func (s *Syncer) failedStates(ctx context.Context, local []state, res *Result) {
	var paths []string
	for _, rr := range res.Repos {
		if rr.Error != "" && rr.State == "" {
			paths = append(paths, rr.Path)
		}
	}
	if len(paths) == 0 || ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	states, err := s.probe(ctx, paths, false)
	for i := range res.Repos {
		rr := &res.Repos[i]
		if rr.Error == "" || rr.State != "" {
			continue
		}
		if err != nil {
			rr.State = StateUnknown
			continue
		}
		rr.State = describe(local[i], states[rr.Path])
	}
}

// describe compares what the pod has with want.
func describe(want state, have *podState) State {
	switch {
	case have == nil:
		return StateUnknown
	case have.Partial:
		return StatePartial
	case !have.Exists:
		return StateAbsent
	case verify("", want, have) == nil:
		return StateVerified
	case have.equal(want) && (have.Tree == "dirty" || have.Tree == "broken"):
		return StateDirty
	case have.equal(want):
		return StatePartial // right refs, but the checkout never finished
	}
	return StateDiffers
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
	case errors.As(err, new(*DestError)), errors.As(err, new(*DirtyError)), errors.Is(err, ErrNotRepo):
		return false
	case errors.As(err, new(*ScriptError)) && permanent(err.Error()):
		return false
	case errors.Is(err, podexec.ErrStream), errors.As(err, &ee), errors.As(err, &ve):
		return true
	}
	return false
}

// permanent reports whether a pod's message says that trying again will
// not help.
func permanent(msg string) bool {
	return strings.Contains(msg, "No space left on device") || strings.Contains(msg, "Read-only file system") ||
		strings.Contains(msg, "Disk quota exceeded") || strings.Contains(msg, "Permission denied")
}

// probe asks the pod for the state of the repos at paths; with create,
// it first makes the destination root as a sync needs it.
func (s *Syncer) probe(ctx context.Context, paths []string, create bool) (map[string]*podState, error) {
	var stdout bytes.Buffer
	mode := ""
	if create {
		mode = "create"
	}
	cmd := []string{"sh", "-c", probeScript, "kubepool-gitsync", s.Dest, mode}
	err := s.Exec.Run(ctx, s.Target, cmd, podexec.Options{
		Stdin:        strings.NewReader(strings.Join(paths, "\n") + "\n"),
		Stdout:       &stdout,
		StallTimeout: s.stall(),
		EndLine:      endLine,
	})
	if err != nil {
		return nil, fmt.Errorf("reading repo states: %w", s.scriptErr(err))
	}
	states, err := parseStates(&stdout)
	if err != nil {
		return nil, fmt.Errorf("reading repo states from pod %s: %w", s.Target, err)
	}
	return states, nil
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
	if have.Exists && have.Synced == digest && have.equal(want) && !have.Partial {
		switch {
		case have.Tree == "clean" || have.Tree == "none" && !wantsCheckout(want):
			rr.UpToDate, rr.Head, rr.Refs, rr.State = true, have.Head, len(have.Refs), StateVerified
			log.Debug("repo up to date", "repo", r.Path)
			return rr, nil
		case s.NoClean:
			rr.Head, rr.Refs, rr.State = have.Head, len(have.Refs), StateDirty
			return rr, &RepoError{Path: r.Path, Target: s.Target, Err: &DirtyError{Path: r.Path}}
		}
		rr.Cleaned = true
		log.Info("repo has changes in its working tree: resetting and cleaning it", "repo", r.Path, "tree", have.Tree)
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
			if s.NoClean && got != nil && got.Tree == "dirty" && got.equal(want) {
				rr.Head, rr.Refs, rr.State, rr.Duration = got.Head, len(got.Refs), StateDirty, time.Since(start)
				return rr, &RepoError{Path: r.Path, Target: s.Target, Attempts: rr.Attempts, Err: &DirtyError{Path: r.Path}}
			}
		}
		if err == nil {
			rr.Head, rr.Refs, rr.Duration, rr.State = got.Head, len(got.Refs), time.Since(start), StateVerified
			log.Info("repo synced", "repo", r.Path, "objects", objects, "bytes", rr.Bytes, "attempts", rr.Attempts, "duration", rr.Duration)
			return rr, nil
		}
		if rr.Attempts >= s.attempts() || !retryable(err) || ctx.Err() != nil {
			rr.Duration = time.Since(start)
			return rr, &RepoError{Path: r.Path, Target: s.Target, Attempts: rr.Attempts, Err: err}
		}
		log.Warn("retrying repo", "repo", r.Path, "pod", s.Target.String(), "attempt", rr.Attempts, "err", err)
		s.progress(Progress{Repo: r.Path, Phase: PhaseRetrying})
		states, perr := s.probe(ctx, []string{r.Path}, false)
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
	switch {
	case got.Tree == "clean":
	case got.Tree == "none" && !wantsCheckout(want):
	default:
		return &VerifyError{Path: path, Ref: "working tree", Want: "clean", Got: got.Tree}
	}
	return nil
}

// wantsCheckout reports whether want's HEAD names a commit, so the repo
// has a working tree to check out.
func wantsCheckout(want state) bool {
	head, ok := strings.CutPrefix(want.Head, "ref: ")
	return !ok || slices.ContainsFunc(want.Refs, func(r ref) bool { return r.Name == head })
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
	keep := ""
	if s.NoClean {
		keep = "keep"
	}
	cmd := []string{"sh", "-c", applyScript, "kubepool-gitsync", s.Dest, r.Path, digest, keep}
	var stdin io.Reader = io.MultiReader(strings.NewReader(header), pack)
	if s.Progress != nil {
		stdin = &progressReader{r: stdin, report: func(n int64) { s.progress(Progress{Repo: r.Path, Phase: PhaseSending, Bytes: n}) }}
	}
	runErr := s.Exec.Run(ctx, s.Target, cmd, podexec.Options{
		Stdin:        stdin,
		Stdout:       &stdout,
		StallTimeout: s.stall(),
		EndLine:      endLine,
		Heartbeat:    heartbeat,
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
		// An exec whose status did not come, but whose output is
		// complete, did its work: verify decides.
		var ns *podexec.NoStatusError
		if errors.As(runErr, &ns) && !ns.StdinLeft {
			if states, err := parseStates(bytes.NewReader(stdout.Bytes())); err == nil && states[r.Path] != nil {
				return states[r.Path], objects, sent.Load(), nil
			}
		}
		return nil, objects, sent.Load(), s.scriptErr(runErr)
	}
	states, err := parseStates(&stdout)
	if err != nil {
		return nil, objects, sent.Load(), fmt.Errorf("reading back repo state from pod %s: %w", s.Target, err)
	}
	return states[r.Path], objects, sent.Load(), nil
}

// progressReader reports the bytes read through it, at most every 64 KiB.
type progressReader struct {
	r      io.Reader
	n, at  int64
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.at >= 64<<10 || err != nil {
		p.at = p.n
		p.report(p.n)
	}
	return n, err
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

// CheckError is a Check that found repos not in their source's state.
type CheckError struct {
	Target podexec.Target
	// Repos are the paths of the repos not verified, with their states.
	Repos map[string]State
}

func (e *CheckError) Error() string {
	paths := slices.Sorted(maps.Keys(e.Repos))
	parts := make([]string, 0, min(len(paths), 5))
	for _, p := range paths[:min(len(paths), 5)] {
		parts = append(parts, fmt.Sprintf("%s %s", p, e.Repos[p]))
	}
	more := ""
	if len(paths) > 5 {
		more = fmt.Sprintf(", and %d more", len(paths)-5)
	}
	return fmt.Sprintf("%d repos in pod %s are not their source's: %s%s", len(paths), e.Target, strings.Join(parts, ", "), more)
}

// Check compares the repos in the pod with their sources and changes
// nothing, in the pod or here: each repo's State is StateVerified when
// its refs, HEAD and working tree are the source's and its last sync
// did not stop half way. It returns a *CheckError when any repo is not verified.
func (s *Syncer) Check(ctx context.Context, repos []Repo) (*Result, error) {
	if s.Exec == nil || s.Target.Pod == "" || s.Target.Namespace == "" {
		return nil, errors.New("gitsync: Syncer needs Exec and a Target with Namespace and Pod")
	}
	paths := make([]string, len(repos))
	for i, r := range repos {
		p, err := cleanRelPath(r.Path)
		if err != nil {
			return nil, err
		}
		paths[i] = p
	}
	sv, err := s.survey(ctx, repos, paths, false, 1)
	if err != nil {
		return nil, err
	}
	local, localErr, remote := sv.local, sv.localErr, sv.remote
	res := &Result{Repos: make([]RepoResult, len(repos))}
	bad := map[string]State{}
	for i, p := range paths {
		rr := RepoResult{Path: p}
		have := remote[p]
		switch {
		case localErr[i] != nil:
			rr.State, rr.Error = StateUnknown, localErr[i].Error()
		default:
			rr.State = describe(local[i], have)
		}
		if have != nil && have.Exists {
			rr.Head, rr.Refs = have.Head, len(have.Refs)
		}
		rr.UpToDate = rr.State == StateVerified
		rr.WasPartial = have != nil && have.Partial
		if rr.State != StateVerified {
			bad[p] = rr.State
		}
		res.Repos[i] = rr
	}
	if len(bad) > 0 {
		return res, &CheckError{Target: s.Target, Repos: bad}
	}
	return res, nil
}
