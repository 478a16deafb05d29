// Package testenv gives tests the real servers they run against, and cleans
// them up with t.Cleanup:
//
//   - [Cluster]: the dev cluster started by `make cluster-up` (hack/devcluster):
//     a real kube-apiserver, kubelet and containerd, its registry and its
//     ZooKeeper. Tests that need it are skipped unless KUBEPOOL_E2E=1 is set,
//     and fail (not skip) if it is set and the cluster is not up.
//   - [ZooKeeper]: a ZooKeeper server for one test (Debian's zookeeper, on a
//     free loopback port, in t.TempDir()).
//   - [Registry]: a container registry for one test (Debian's
//     docker-registry, i.e. distribution, on a free loopback port).
//
// Nothing here is a fake: a test that passes against testenv passed against
// the real server.
package testenv
