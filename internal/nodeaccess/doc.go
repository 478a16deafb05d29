// Package nodeaccess turns kubepool node records (Nodepool's kubectl,
// namespace and project nodes) into the means to use them:
//
//   - Resolve and ForNode give a *rest.Config carrying the node's own
//     credentials and, for pod nodes, the podexec.Target of the pod. This is
//     what `kubepool exec` and `kubepool sync` run commands with.
//   - NewExecutorFiles gives the kubeconfig and the Ansible inventory exactly
//     as Zuul's executor writes them for the same nodes
//     (zuul/executor/server.py prepareKubeConfig and the kubectl inventory
//     variables), so that a job run by hand or by another CI system sees
//     what it would see under Zuul.
//
// Contract: nothing here talks to Kubernetes, and nothing here writes to
// ZooKeeper. The credentials are the node's (a service-account token scoped
// to the node's namespace), never the launcher's. Records that are not
// Kubernetes nodes (an SSH node of another Nodepool driver) are an error
// matching ErrNotKubernetes; asking for the pod of a namespace node is an
// error matching ErrNotPod.
package nodeaccess
