package cli

import (
	"fmt"
	"sync"

	"github.com/kubepool/kubepool/internal/cli/progress"
	"github.com/kubepool/kubepool/internal/gitsync"
)

// syncProgress is the status line of a sync: repos done of all, bytes
// sent, and what each repo in flight is doing.
type syncProgress struct {
	line   *progress.Line
	mu     sync.Mutex
	total  int
	done   int
	failed int
	sent   map[string]int64 // bytes sent, by repo
	active map[string]gitsync.Phase
	last   string // the repo that moved last
}

// newSyncProgress returns the sync's progress on line, or nil when there
// is no line (not a terminal, or output for a program).
func newSyncProgress(line *progress.Line) *syncProgress {
	if line == nil {
		return nil
	}
	return &syncProgress{line: line, sent: map[string]int64{}, active: map[string]gitsync.Phase{}}
}

// Update is a gitsync.Syncer's Progress.
func (p *syncProgress) Update(ev gitsync.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Phase {
	case gitsync.PhaseDone, gitsync.PhaseFailed:
		delete(p.active, ev.Repo)
		if ev.Phase == gitsync.PhaseDone {
			p.done++
		} else {
			p.failed++
		}
		if ev.Bytes > 0 {
			p.sent[ev.Repo] = ev.Bytes
		}
	case gitsync.PhaseSending:
		p.active[ev.Repo] = ev.Phase
		p.sent[ev.Repo] = ev.Bytes
	default:
		p.active[ev.Repo] = ev.Phase
	}
	p.last = ev.Repo
	// Bytes move often: at most ten redraws a second for them, but every
	// change of phase is shown.
	if ev.Phase == gitsync.PhaseSending {
		p.line.Tick(p.text())
	} else {
		p.line.Set(p.text())
	}
}

// Finish removes the status line.
func (p *syncProgress) Finish() {
	if p != nil {
		p.line.Finish()
	}
}

func (p *syncProgress) text() string {
	var sent int64
	for _, n := range p.sent {
		sent += n
	}
	line := fmt.Sprintf("syncing: %d of %d repos done", p.done, p.total)
	if p.failed > 0 {
		line += fmt.Sprintf(", %d failed", p.failed)
	}
	line += fmt.Sprintf(", %s sent", progress.Bytes(sent))
	if ph, ok := p.active[p.last]; ok {
		line += fmt.Sprintf("; %s: %s", p.last, ph)
		if ph == gitsync.PhaseSending {
			line += " " + progress.Bytes(p.sent[p.last])
		}
	}
	if len(p.active) > 1 {
		line += fmt.Sprintf(" (+%d more)", len(p.active)-1)
	}
	return line
}
