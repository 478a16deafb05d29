package gitsync_test

import (
	"testing"

	"github.com/kubepool/kubepool/internal/gitsync/gitsynctest"
)

// TestConformanceLocal runs gitsync's conformance suite with the pod side
// on this machine (the same scripts, sh and git; a directory for the pod).
// test/e2e runs the same suite against a pod.
func TestConformanceLocal(t *testing.T) {
	gitsynctest.Run(t, gitsynctest.Env{
		Runner: &localRunner{},
		Target: target,
		Dest:   func(t *testing.T) string { return t.TempDir() },
	})
}
