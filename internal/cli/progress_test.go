package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/requestor/requestortest"
	"github.com/kubepool/kubepool/internal/testenv"
)

// runWithStderr runs kubepool with args, stderr going to stderr; it returns
// stdout.
func runWithStderr(t *testing.T, stderr io.Writer, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&rootOptions{Options: cliutil.Options{Out: &out, Err: stderr}})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(stderr)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// TestProgressOnTerminalOnly promotes images against a real registry with
// stderr on a pseudo-terminal, then in a pipe: the progress line shows on
// the terminal, never in the pipe, and never on stdout.
func TestProgressOnTerminalOnly(t *testing.T) {
	reg := testenv.Registry(t)
	dir := t.TempDir()
	const n = 3
	var file strings.Builder
	file.WriteString("container_images:\n")
	for i := range n {
		ref, err := name.ParseReference(fmt.Sprintf("%s/progress/img%d:tested", reg.Host, i), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&file, "- imagename: %s\n", ref)
	}
	imagesFile := filepath.Join(dir, "images.yaml")
	if err := os.WriteFile(imagesFile, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	promote := func(stderr io.Writer, to string) string {
		t.Helper()
		out, err := runWithStderr(t, stderr, "images", "promote", "--from-images-file", imagesFile, "--to", to,
			"--journal", filepath.Join(dir, to+".journal"))
		if err != nil {
			t.Fatalf("images promote --to %s = %v", to, err)
		}
		if !strings.Contains(out, fmt.Sprintf("promoted %d of %d", n, n)) {
			t.Errorf("images promote --to %s printed %q, want its table", to, out)
		}
		if strings.Contains(out, "of 3 images") || strings.Contains(out, "\r") {
			t.Errorf("images promote --to %s: progress on stdout: %q", to, out)
		}
		return out
	}

	pty := testenv.NewPTY(t)
	promote(pty.Terminal, "on-a-terminal")
	onTTY := pty.Output()
	t.Logf("on a terminal: %q", onTTY)
	if !strings.Contains(onTTY, fmt.Sprintf("of %d images", n)) || !strings.Contains(onTTY, "\r\033[K") {
		t.Errorf("stderr on a terminal = %q, want the progress line (\"... of %d images\") drawn and cleared", onTTY, n)
	}

	if got := piped(t, func(w io.Writer) { promote(w, "in-a-pipe") }); strings.Contains(got, "images") || strings.Contains(got, "\r") {
		t.Errorf("stderr in a pipe = %q, want no progress", got)
	}
}

// TestRequestProgress: `kubepool request` says what it waits for on a
// terminal (-o table), and nothing in a pipe or with -o json; stdout has
// the result only.
func TestRequestProgress(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	requestortest.Start(t, servers)
	request := func(stderr io.Writer, format string) string {
		t.Helper()
		out, err := runWithStderr(t, stderr, "request", "pod", "--zookeeper", servers, "-o", format)
		if err != nil {
			t.Fatalf("request -o %s = %v", format, err)
		}
		if strings.Contains(out, "waiting for") || strings.Contains(out, "\r") {
			t.Errorf("request -o %s: progress on stdout: %q", format, out)
		}
		return out
	}

	pty := testenv.NewPTY(t)
	out := request(pty.Terminal, "table")
	onTTY := pty.Output()
	t.Logf("on a terminal: %q", onTTY)
	// The stand-in may fulfil the request before the first state is drawn:
	// any state of it will do, drawn and cleared.
	if !regexp.MustCompile(`request \S+: (requested|pending|fulfilled)`).MatchString(onTTY) || !strings.Contains(onTTY, "\r\033[K") {
		t.Errorf("stderr on a terminal = %q, want the request's state drawn and cleared", onTTY)
	}
	if !strings.Contains(out, "in-use") {
		t.Errorf("request -o table = %q, want the node in use", out)
	}

	pty = testenv.NewPTY(t)
	request(pty.Terminal, "json")
	if got := pty.Output(); strings.Contains(got, "waiting for a launcher to take it") || strings.Contains(got, "\r\033[K") {
		t.Errorf("stderr on a terminal with -o json = %q, want no progress", got)
	}

	if got := piped(t, func(w io.Writer) { request(w, "table") }); strings.Contains(got, "waiting for a launcher to take it") || strings.Contains(got, "\r") {
		t.Errorf("stderr in a pipe = %q, want no progress", got)
	}
}

// piped runs f with a pipe as its stderr and returns what went through it.
func piped(t *testing.T, f func(stderr io.Writer)) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	f(w)
	w.Close()
	return <-out
}
