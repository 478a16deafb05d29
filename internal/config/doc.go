// Package config loads kubepool's launcher config.
//
// The format is Nodepool's nodepool.yaml: a user's existing config with
// kubernetes providers loads unchanged, keys, types, defaults and units as
// Nodepool's kubernetes driver reads them (cpu in cores, memory in MiB,
// storage in MB, durations in seconds). The sections kubepool uses are
// zookeeper-servers, zookeeper-tls, zookeeper-timeout, webapp, labels,
// providers, max-hold-age and tenant-resource-limits; Nodepool's image
// builder keys (diskimages, elements-dir, images-dir, build-log-dir, ...) are
// accepted and listed in Config.Ignored. A provider of any driver other than
// kubernetes is an error naming it.
//
// kubepool extensions, which Nodepool would reject:
//
//   - providers[].token-expiration: lifetime of node service-account tokens
//     (default 8h, 10m to 48h);
//   - resource keys (cpu, memory, storage, their -limit and default-label-
//     forms, gpu) also take Kubernetes quantity strings such as "500m" or
//     "2Gi"; a bare number keeps Nodepool's unit;
//   - durations (zookeeper-timeout, max-hold-age, max-ready-age,
//     boot-timeout) also take Go duration strings such as "90s";
//   - env items may use valueFrom as well as value;
//   - pool labels of type pod may have git-sidecar: {image, path,
//     size-limit}: a git container and an emptyDir shared by every
//     container at path, which kubepool sync NODE syncs into by default.
//
// Contract: Parse and Load decode strictly (an unknown key, a wrong type, a
// bad quantity, duration or image reference is an error), then apply
// defaults, then Validate. Every problem found is reported, not just the
// first, each as a *FieldError naming the file, line and key path:
//
//	nodepool.yaml:23: providers[0].pools[0].labels[1].memory: "12Zi" is not a quantity
//
// All of them match ErrInvalid; a missing file matches ErrNoConfig instead.
// A returned *Config is complete: defaults are filled in and unset quota
// limits are Unlimited. Nothing here connects to a cluster or to ZooKeeper;
// Provider.RESTConfig only resolves credentials.
package config
