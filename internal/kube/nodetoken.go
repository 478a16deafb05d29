package kube

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeTokenSecret is the Secret a node's token is bound to in a namespace
// that several nodes share.
func nodeTokenSecret(node string) string { return DNSLabel("kubepool-node-" + node) }

// NodeToken gives conn (a namespace node's connection) a token of node's
// own, bound to a Secret made for it in the namespace, so that
// RevokeNodeToken ends it while the namespace lives on (a buildset's shared
// namespace, whose nodes come and go).
func (d *Driver) NodeToken(ctx context.Context, conn *Connection, node string) error {
	name := nodeTokenSecret(node)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: conn.Namespace, Labels: map[string]string{LabelManagedBy: managedByValue, LabelNodeID: LabelValue(node)}}, Immutable: ptr(true)}
	got, err := d.Client.CoreV1().Secrets(conn.Namespace).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = d.Client.CoreV1().Secrets(conn.Namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("making the token secret %s/%s of node %s: %w", conn.Namespace, name, node, err)
	}
	exp := d.TokenExpiration
	if exp <= 0 {
		exp = DefaultTokenExpiration
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr(int64(exp.Seconds())),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: name, UID: got.UID},
	}}
	tok, err := d.Client.CoreV1().ServiceAccounts(conn.Namespace).CreateToken(ctx, conn.User, tr, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting token for %s/%s bound to %s: %w", conn.Namespace, conn.User, name, err)
	}
	conn.Token, conn.TokenExpiry = tok.Status.Token, tok.Status.ExpirationTimestamp.Time
	return nil
}

// RevokeNodeToken ends the token NodeToken gave node in namespace by
// deleting the Secret it is bound to. A missing one is not an error.
func (d *Driver) RevokeNodeToken(ctx context.Context, namespace, node string) error {
	err := d.Client.CoreV1().Secrets(namespace).Delete(ctx, nodeTokenSecret(node), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("revoking the token of node %s in %s: %w", node, namespace, err)
	}
	return nil
}
