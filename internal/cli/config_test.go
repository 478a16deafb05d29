package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/kubepool/kubepool/internal/config"
)

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		file      string
		wantErr   error
		wantOut   string // a line of stdout
		wantLines int    // lines of stderr
	}{
		{file: "../config/testdata/nodepool.yaml", wantOut: "../config/testdata/nodepool.yaml: OK: 1 provider(s), 2 pool(s), 4 label(s)"},
		{file: "../config/testdata/kubepool.yaml", wantOut: "  pool dev: 2 label(s): pod-debian (pod), namespace (namespace); max-servers 10"},
		{file: "../config/testdata/nodepool-compat/openshift-quota.yaml", wantOut: "provider openshift: driver openshift, context admin-cluster.local, 1 pool(s), max-servers 2"},
		{file: "../config/testdata/nodepool-compat/openshiftpods.yaml", wantOut: "  pool main: 2 label(s): pod-fedora (pod), pod-fedora-secret (pod); max-servers unlimited"},
		{file: "../config/testdata/nodepool-compat/docs-openshift.yaml", wantOut: "../config/testdata/nodepool-compat/docs-openshift.yaml: OK: 2 provider(s), 2 pool(s), 2 label(s)"},
		{file: "../config/testdata/nodepool-compat/kubernetes-no-image.yaml", wantOut: "  pool main: 2 label(s): kubernetes-namespace (namespace), pod-default (pod); max-servers unlimited", wantLines: 1},
		{file: "../config/testdata/bad/openshift.yaml", wantErr: config.ErrInvalid, wantLines: 3},
		{file: "../config/testdata/bad/wrong-type.yaml", wantErr: config.ErrInvalid, wantLines: 9},
		{file: "../config/testdata/missing.yaml", wantErr: config.ErrNoConfig},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var out, errOut bytes.Buffer
			o := &rootOptions{Options: cliutil.Options{LogLevel: "info", LogFormat: "text", Out: &out, Err: &errOut}}
			cmd := newConfigCmd(o)
			cmd.SilenceErrors = true // as the root command does; main prints the error
			cmd.SetArgs([]string{"check", "-c", tt.file})
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			err := cmd.ExecuteContext(t.Context())
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("config check -c %s = %v, want %v", tt.file, err, tt.wantErr)
			}
			if tt.wantOut != "" && !strings.Contains(out.String(), tt.wantOut+"\n") {
				t.Errorf("config check -c %s printed %q, want a line %q", tt.file, out.String(), tt.wantOut)
			}
			if got := strings.Count(errOut.String(), "\n"); got != tt.wantLines {
				t.Errorf("config check -c %s wrote %d lines to stderr, want %d:\n%s", tt.file, got, tt.wantLines, errOut.String())
			}
		})
	}
}
