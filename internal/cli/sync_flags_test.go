package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
)

// TestSyncConfigFlag: -c is the launcher config in sync as everywhere;
// --launcher-config still works with a deprecation warning; the old -c
// (the container) gets an error that says to use --container.
func TestSyncConfigFlag(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRoot(&rootOptions{Options: cliutil.Options{Out: &out, Err: &errOut}})
		root.SetArgs(args)
		// Cobra prints flag warnings with Print: to stderr unless SetOut
		// was called, as in kubepool (New sets no output).
		root.SetOut(&errOut)
		root.SetErr(&errOut)
		err := root.ExecuteContext(t.Context())
		return errOut.String(), err
	}
	src := t.TempDir()

	stderr, err := run("sync", "-n", "ns", "--pod", "p", "-c", "git", "--src", src)
	if err == nil || !strings.Contains(err.Error(), "--container") {
		t.Errorf("sync --pod -c git = %v, want an error pointing to --container", err)
	}
	if strings.Contains(stderr, "deprecated") {
		t.Errorf("sync -c: stderr %q warns of a deprecation; -c is current", stderr)
	}

	missing := src + "/no-such-launcher.yaml"
	stderr, err = run("sync", "0000000001", "--launcher-config", missing, "--src", src)
	if !strings.Contains(stderr, "--launcher-config has been deprecated") || !strings.Contains(stderr, "-c/--config") {
		t.Errorf("sync --launcher-config: stderr %q, want a deprecation warning naming -c/--config", stderr)
	}
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("sync --launcher-config %s = %v, want it read (an error naming it)", missing, err)
	}

	_, err = run("sync", "0000000001", "-c", "git", "--src", src)
	if err == nil || !strings.Contains(err.Error(), "git") || !strings.Contains(err.Error(), "--container") {
		t.Errorf("sync NODE -c git = %v, want the missing config named and a pointer to --container", err)
	}
	if _, statErr := os.Stat("git"); statErr == nil {
		t.Skip("a file named git in the test directory")
	}
}
