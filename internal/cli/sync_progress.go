package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kubepool/kubepool/internal/gitsync"
)

// syncProgress draws a status line of a sync on a terminal: repos done of
// all, bytes sent, and what each repo in flight is doing. Log records
// written through it clear the line first and redraw it after, so the two
// do not mix.
type syncProgress struct {
	mu      sync.Mutex
	w       io.Writer
	total   int
	done    int
	failed  int
	sent    map[string]int64 // bytes sent, by repo
	active  map[string]gitsync.Phase
	last    string // the repo that moved last
	drawn   bool
	drawnAt time.Time
}

// newSyncProgress returns a progress line on w when w is a terminal, and
// nil otherwise (in a pipe, progress stays quiet).
func newSyncProgress(w io.Writer, total int) *syncProgress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &syncProgress{w: w, total: total, sent: map[string]int64{}, active: map[string]gitsync.Phase{}}
}

// Write passes a log record through, around the status line.
func (p *syncProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	n, err := p.w.Write(b)
	p.draw()
	return n, err
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
	// At most ten redraws a second, but always the last repo's end.
	if time.Since(p.drawnAt) < 100*time.Millisecond && ev.Phase == gitsync.PhaseSending {
		return
	}
	p.clear()
	p.draw()
}

// Finish removes the status line.
func (p *syncProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *syncProgress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *syncProgress) draw() {
	var sent int64
	for _, n := range p.sent {
		sent += n
	}
	line := fmt.Sprintf("syncing: %d of %d repos done", p.done, p.total)
	if p.failed > 0 {
		line += fmt.Sprintf(", %d failed", p.failed)
	}
	line += fmt.Sprintf(", %s sent", humanBytes(sent))
	if ph, ok := p.active[p.last]; ok {
		line += fmt.Sprintf("; %s: %s", p.last, ph)
		if ph == gitsync.PhaseSending {
			line += " " + humanBytes(p.sent[p.last])
		}
	}
	if len(p.active) > 1 {
		line += fmt.Sprintf(" (+%d more)", len(p.active)-1)
	}
	if w, _, err := term.GetSize(int(p.w.(*os.File).Fd())); err == nil && w > 1 && len(line) >= w {
		line = line[:w-1]
	}
	fmt.Fprint(p.w, line)
	p.drawn = true
	p.drawnAt = time.Now()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
