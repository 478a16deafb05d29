// Package devenv is the contract between the dev cluster (hack/devcluster),
// which writes .devcluster/env.json when it is up, and the tests
// (internal/testenv), which read it: one type, so the two cannot drift.
package devenv

import (
	"encoding/json"
	"fmt"
	"os"
)

// File is the content of env.json.
type File struct {
	Kubeconfig   string `json:"kubeconfig"`    // admin kubeconfig (system:masters)
	APIServer    string `json:"api_server"`    // https://host:port
	Node         string `json:"node"`          // the Kubernetes node's name
	NodeIP       string `json:"node_ip"`       // the node's address; pods reach it as their gateway
	Registry     string `json:"registry"`      // host:port of the cluster's registry (plain HTTP)
	MachineImage string `json:"machine_image"` // an image with sh, git and python3
	PauseImage   string `json:"pause_image"`
	ZooKeeper    string `json:"zookeeper"` // host:port
	Kubectl      string `json:"kubectl"`   // path of the kubectl binary built with the cluster
}

// Write stores f at path.
func Write(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Read loads the env.json at path. A file with keys this version does not
// know is an error, so a cluster started by a newer checkout is not half
// understood.
func Read(path string) (File, error) {
	var f File
	r, err := os.Open(path)
	if err != nil {
		return f, fmt.Errorf("reading %s: %w (run `make cluster-up`)", path, err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("decoding %s: %w (restart the dev cluster with this checkout's `make cluster-up`)", path, err)
	}
	return f, nil
}
