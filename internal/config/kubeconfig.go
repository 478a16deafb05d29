package config

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig resolves the provider's credentials without connecting to
// anything: the kubeconfig context named by Context (from $KUBECONFIG or
// ~/.kube/config, as kubectl finds them), or, when Context is empty, the
// in-cluster service account, as Nodepool does.
func (p *Provider) RESTConfig() (*rest.Config, error) {
	return RESTConfig(p.Context)
}

// RESTConfig resolves a kubeconfig context, or the in-cluster service account
// when kubecontext is empty. See Provider.RESTConfig.
func RESTConfig(kubecontext string) (*rest.Config, error) {
	if kubecontext == "" {
		cfg, err := rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("loading in-cluster credentials (no context configured): %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster credentials: %w", err)
		}
		return cfg, nil
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(),
		&clientcmd.ConfigOverrides{CurrentContext: kubecontext},
	)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig context %q: %w", kubecontext, err)
	}
	return cfg, nil
}
