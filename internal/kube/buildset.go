package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// LabelBuildset marks the namespace of a node whose request carried a
// buildset (Zuul's build_set_uuid) with the buildset's id: the namespaces of
// one buildset admit each other's traffic (see BuildsetPeer).
const LabelBuildset = "kubepool.dev/buildset"

// RegistrySecretName is the kubernetes.io/dockerconfigjson Secret that
// holds a node's buildset registry credentials.
const RegistrySecretName = "kubepool-buildset-registry"

// DefaultServiceAccount is the service account the pods a job creates run
// as unless they name another.
const DefaultServiceAccount = "default"

// BuildsetAccess is what a node of a buildset gets in its namespace.
type BuildsetAccess struct {
	// ID is the buildset's id: the value of LabelBuildset.
	ID string
	// DockerConfig is the .dockerconfigjson of the RegistrySecretName
	// Secret; none is made if it is empty.
	DockerConfig []byte
}

// RegistrySecret returns the name of the node's registry Secret: in a
// namespace that is not the node's (openshiftpods), prefixed with the pod's
// name, as copied secrets are.
func (r *Resource) RegistrySecret() string {
	if r.InNamespace {
		return r.PodName + "-" + RegistrySecretName
	}
	return RegistrySecretName
}

// registrySecret returns the node's registry Secret.
func registrySecret(meta metav1.ObjectMeta, dockerConfig []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: meta,
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
		Immutable:  ptr(true),
	}
}

// addBuildset makes what r.Buildset asks for once the namespace exists:
// the registry Secret, and, in a namespace of the node's own, the
// Secret added to the imagePullSecrets of its default service account,
// so that every pod a job makes pulls from the buildset's repositories
// with no configuration. The node's own service account carries the
// Secret from its creation (see Create).
func (d *Driver) addBuildset(ctx context.Context, r *Resource, meta metav1.ObjectMeta) error {
	b := r.Buildset
	if b == nil || len(b.DockerConfig) == 0 {
		return nil
	}
	if _, err := d.Client.CoreV1().Secrets(r.Namespace).Create(ctx, registrySecret(meta, b.DockerConfig), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating registry secret %s/%s: %w", r.Namespace, meta.Name, err)
	}
	if r.InNamespace || r.Kind == KindPod {
		// A pod node's job makes no pods; its pod mounts the Secret.
		return nil
	}
	return d.addPullSecret(ctx, r.Namespace, DefaultServiceAccount, meta.Name)
}

// addPullSecret adds secret to the imagePullSecrets of service account sa
// in namespace, creating the account if the service-account controller has
// not yet (the controller leaves an existing one alone).
func (d *Driver) addPullSecret(ctx context.Context, namespace, sa, secret string) error {
	ref := corev1.LocalObjectReference{Name: secret}
	obj := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: sa, Namespace: namespace},
		ImagePullSecrets: []corev1.LocalObjectReference{ref},
	}
	_, err := d.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account %s/%s: %w", namespace, sa, err)
	}
	// It exists: add the Secret, with the version read, retrying when the
	// controller (or anyone) changed it meanwhile.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := d.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, sa, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if slices.Contains(cur.ImagePullSecrets, ref) {
			return nil
		}
		patch, err := json.Marshal(map[string]any{
			"metadata":         map[string]any{"resourceVersion": cur.ResourceVersion},
			"imagePullSecrets": append(cur.ImagePullSecrets, ref),
		})
		if err != nil {
			return err
		}
		_, err = d.Client.CoreV1().ServiceAccounts(namespace).Patch(ctx, sa, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("adding image pull secret %s to service account %s/%s: %w", secret, namespace, sa, err)
	}
	return nil
}

// BuildsetPeer is the NetworkPolicy peer of the namespaces of buildset id.
func BuildsetPeer(id string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelBuildset: LabelValue(id)}}}
}

// GrantBuildset gives an existing node namespace (a warm node handed to a
// request of a buildset) what Create gives a new one for b: the buildset
// label, the NetworkPolicy peer, and, with b.DockerConfig, the registry
// Secret in the imagePullSecrets of the node's and the default service
// accounts (namespace nodes; a running pod cannot mount it: a pod node's
// namespace gets the Secret only). Each of the three is tried whatever
// became of the others (the first two need rights deploy/'s RBAC does not
// grant: patching namespaces, updating NetworkPolicies); the errors are
// returned joined. It can be repeated: a Secret an unfinished grant left
// is replaced, and nothing is added twice.
func (d *Driver) GrantBuildset(ctx context.Context, namespace string, kind Kind, b *BuildsetAccess) error {
	var errs []error
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{LabelBuildset: LabelValue(b.ID)}}})
	if err != nil {
		return err
	}
	if _, err := d.Client.CoreV1().Namespaces().Patch(ctx, namespace, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		errs = append(errs, fmt.Errorf("labelling namespace %s with its buildset: %w", namespace, err))
	}
	if !d.WithoutPolicy {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			np, err := d.Client.NetworkingV1().NetworkPolicies(namespace).Get(ctx, PolicyName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(np.Spec.Ingress) == 0 {
				return nil // admits nothing from outside: leave it
			}
			peer := BuildsetPeer(b.ID)
			for _, p := range np.Spec.Ingress[0].From {
				if equality.Semantic.DeepEqual(p, peer) {
					return nil
				}
			}
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, peer)
			_, err = d.Client.NetworkingV1().NetworkPolicies(namespace).Update(ctx, np, metav1.UpdateOptions{})
			return err
		})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("admitting buildset %s to namespace %s: %w", b.ID, namespace, err))
		}
	}
	if len(b.DockerConfig) > 0 {
		errs = append(errs, d.grantRegistry(ctx, namespace, kind, b))
	}
	return errors.Join(errs...)
}

// grantRegistry is GrantBuildset's registry Secret and service accounts.
func (d *Driver) grantRegistry(ctx context.Context, namespace string, kind Kind, b *BuildsetAccess) error {
	// A Secret there already is an earlier grant's that did not finish
	// (the Secret is immutable): replace it.
	meta := metav1.ObjectMeta{Name: RegistrySecretName, Namespace: namespace}
	secrets := d.Client.CoreV1().Secrets(namespace)
	_, err := secrets.Create(ctx, registrySecret(meta, b.DockerConfig), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		if err = secrets.Delete(ctx, meta.Name, metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, registrySecret(meta, b.DockerConfig), metav1.CreateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("creating registry secret %s/%s: %w", namespace, meta.Name, err)
	}
	if kind == KindPod {
		return nil
	}
	for _, sa := range []string{ServiceAccountName, DefaultServiceAccount} {
		if err := d.addPullSecret(ctx, namespace, sa, RegistrySecretName); err != nil {
			return err
		}
	}
	return nil
}
