package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Label keys kubepool puts on every object it creates. They are what the leak
// sweep selects on; nothing else in the cluster is ever listed.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelProvider  = "kubepool.dev/provider"
	LabelPool      = "kubepool.dev/pool"
	LabelNodeID    = "kubepool.dev/node-id"
	LabelLauncher  = "kubepool.dev/launcher"
	LabelLabel     = "kubepool.dev/label"

	managedByValue = "kubepool"
)

// Owner names the node an object belongs to.
type Owner struct {
	Provider string
	Pool     string
	NodeID   string
	Label    string
	Launcher string
}

// Labels returns the labels that mark an object as o's.
func (o Owner) Labels() map[string]string {
	return map[string]string{
		LabelManagedBy: managedByValue,
		LabelProvider:  LabelValue(o.Provider),
		LabelPool:      LabelValue(o.Pool),
		LabelNodeID:    LabelValue(o.NodeID),
		LabelLabel:     LabelValue(o.Label),
		LabelLauncher:  LabelValue(o.Launcher),
	}
}

// ProviderSelector selects every object kubepool made for provider.
func ProviderSelector(provider string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: managedByValue, LabelProvider: LabelValue(provider)})
}

var notLabelChar = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// LabelValue makes s a valid label value: at most 63 characters from
// [A-Za-z0-9._-], starting and ending alphanumeric. Long values keep a hash
// suffix so that distinct inputs stay distinct.
func LabelValue(s string) string {
	v := notLabelChar.ReplaceAllString(s, "_")
	if len(v) > 63 {
		sum := sha256.Sum256([]byte(s))
		v = v[:63-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return strings.Trim(v, "._-")
}

var notDNSChar = regexp.MustCompile(`[^a-z0-9-]+`)

// DNSLabel makes s a valid RFC 1123 label (namespace and pod names): lower
// case, [a-z0-9-], at most 63 characters, alphanumeric at both ends. Long
// names keep a hash suffix so that distinct inputs stay distinct.
func DNSLabel(s string) string {
	v := notDNSChar.ReplaceAllString(strings.ToLower(s), "-")
	v = strings.Trim(v, "-")
	if len(v) > 63 {
		sum := sha256.Sum256([]byte(s))
		v = strings.TrimRight(v[:63-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	if v == "" {
		v = "node"
	}
	return v
}
