package e2e

import (
	"testing"

	"github.com/kubepool/kubepool/internal/gitsync/gitsynctest"
	"github.com/kubepool/kubepool/internal/testenv"
)

// TestGitSyncConformance runs gitsync's conformance suite (the scenarios
// package gitsync runs on this machine) against a real pod over exec.
func TestGitSyncConformance(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-gitsync-conformance")
	ex := newExecutor(t, env, false)
	ex.PreferSPDY = true // as kubepool sync does
	gitsynctest.Run(t, gitsynctest.Env{
		Runner: ex,
		Target: target,
		Dest:   func(t *testing.T) string { return "/work/conformance-" + randHex(4) },
	})
}
