package buildset

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// EnvRegistry names the environment variable that tells a build tool in a
// node where its buildset may push: "<registry host>/<prefix><buildset>".
const EnvRegistry = "KUBEPOOL_BUILDSET_REGISTRY"

// DockerConfig returns a docker config.json that logs in to registryHost
// (host[:port], as image references name it) with c: the content of a
// kubernetes.io/dockerconfigjson Secret's .dockerconfigjson, and of the
// config.json that DOCKER_CONFIG and REGISTRY_AUTH_FILE point at in a pod.
// It carries both the "auth" field (what the kubelet, containerd and docker
// read) and username/password (what podman and skopeo also accept).
func DockerConfig(registryHost string, c Credentials) ([]byte, error) {
	if registryHost == "" || c.Username == "" || c.Password == "" {
		return nil, fmt.Errorf("docker config: registry host, username and password are required")
	}
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	cfg := struct {
		Auths map[string]entry `json:"auths"`
	}{Auths: map[string]entry{registryHost: {
		Username: c.Username, Password: c.Password,
		Auth: base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password)),
	}}}
	return json.Marshal(cfg)
}

// RegistryPath returns the value of EnvRegistry for buildset id:
// "<registryHost>/<prefix><id>".
func (p Policy) RegistryPath(registryHost, id string) string {
	return registryHost + "/" + strings.TrimSuffix(p.Repository(id), "/")
}
