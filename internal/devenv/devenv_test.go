package devenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env.json")
	want := File{Kubeconfig: "/k", APIServer: "https://10.0.0.1:6443", Node: "n", NodeIP: "10.0.0.1",
		Registry: "127.0.0.1:5001", MachineImage: "m", PauseImage: "p", ZooKeeper: "10.0.0.1:2181", Kubectl: "/bin/kubectl"}
	if err := Write(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Read(Write(f)) differs (-want +got):\n%s", d)
	}
}

func TestReadUnknownKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(p, []byte(`{"kubeconfig":"/k","dns":"10.96.0.10"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p)
	if err == nil || !strings.Contains(err.Error(), `"dns"`) || !strings.Contains(err.Error(), p) {
		t.Errorf("Read(%s) = %v, want an error naming the file and the key", p, err)
	}
}
