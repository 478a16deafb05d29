package nodeadmin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// TestNodeRowBuildset: the buildset in a node's driver_data (as the
// launcher writes it) is the row's buildset; a node without one has none.
func TestNodeRowBuildset(t *testing.T) {
	for _, tt := range []struct {
		record, want string
	}{
		{`{"state": "ready", "driver_data": {"buildset": "0123abcd", "buildset_credential": "c1"}}`, "0123abcd"},
		{`{"state": "ready", "driver_data": {"token_expires": 1}}`, ""},
		{`{"state": "ready"}`, ""},
	} {
		var n zk.Node
		if err := json.Unmarshal([]byte(tt.record), &n); err != nil {
			t.Fatal(err)
		}
		if got := NewNodeRow(&n, time.Now()).Buildset; got != tt.want {
			t.Errorf("NewNodeRow(%s).Buildset = %q, want %q", tt.record, got, tt.want)
		}
	}
}
