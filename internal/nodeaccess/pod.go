package nodeaccess

import (
	"context"
	"errors"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/zk"
)

// ResolvePod is node -> pod for the commands that run in a node's pod
// (kubepool exec, kubepool sync): it reads node id and returns how to reach
// it and its pod. A node that does not exist is a
// *nodeadmin.UnknownNodeError; a namespace or project node an error
// matching ErrNotPod.
func ResolvePod(ctx context.Context, nodes NodeGetter, id string) (*Access, podexec.Target, error) {
	a, err := Resolve(ctx, nodes, id)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, podexec.Target{}, &nodeadmin.UnknownNodeError{ID: id}
	}
	if err != nil {
		return nil, podexec.Target{}, err
	}
	t, err := a.Pod()
	if err != nil {
		return a, podexec.Target{}, err
	}
	return a, t, nil
}

// GitTarget is where to push git repositories into the node's pod: into
// container (default: the pod's git sidecar if it has one, else its only
// container) under dest (default: the sidecar's mount path, shared by every
// container, else $HOME). A pod with a git sidecar is synced through it
// unless told otherwise.
func (a *Access) GitTarget(t podexec.Target, container, dest string) (podexec.Target, string) {
	if kc := a.Connection; kc.GitContainer != "" {
		t.Container = kc.GitContainer
		if dest == "" {
			dest = kc.GitPath
		}
	}
	if container != "" {
		t.Container = container
	}
	return t, dest
}
