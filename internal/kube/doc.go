// Package kube is kubepool's Kubernetes driver: it creates the resources a
// node is made of (a namespace, a service account with a least-privilege
// Role, a bounded token from the TokenRequest API and, for pod labels, one
// pod that behaves like a machine), waits for them by watching rather than
// polling, fails fast with the reason when a pod cannot start, and deletes
// and sweeps them by label selector.
//
// Every object kubepool creates carries the labels in [Labels], so that a
// leak sweep can find exactly kubepool's objects without listing anything
// else in the cluster.
package kube
