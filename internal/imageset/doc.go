// Package imageset manages container image sets as TripleO defines them: a
// Jinja2 template (container_images_template entries with imagename,
// image_source, params and services) rendered with parameters (namespace,
// name_prefix, name_suffix, tag, ...) into a concrete list of images.
//
// It lists and renders sets (with a Heat environment file that points every
// image parameter at its reference), discovers in a registry which
// immutable tag a moving tag points at (and writes the set pinned by
// digest: a lock file), and promotes a set to a tag: every image to the
// digest it was tested at. A promotion writes its plan to a [Journal]
// first; on return either every target has its new digest, or the journal
// says which have not and promoting again finishes them.
//
// Templates are rendered by github.com/nikolalohinski/gonja/v2 with Python
// Jinja2's semantics for what TripleO's templates use: a name not given is
// undefined (false when tested, replaced by default()), a null one is
// none; {% include %} is relative to the template. An undefined name that
// is printed is an error naming file and line ([ErrMissingParameter]).
//
// [Source.Prepare] does what TripleO's `container image prepare` does:
// TripleO's defaults by release ([Releases], [PickDefaults]), Heat
// environment files merged in order, each ContainerImagePrepare entry
// rendered with its set filled from the defaults and TripleO's rules
// (prefix and suffix hyphens, includes over excludes, the neutron driver,
// tag_from_label), and the Heat environment TripleO would write.
// [Client.Copy] performs push_destination, all or nothing.
//
// Registry access ([Client]) uses go-containerregistry: credentials from
// --creds, --authfile or $REGISTRY_AUTH_FILE, then docker config.json and
// credential helpers (errors say which were sent, from where, and what to
// do: [RegistryError]), basic and token auth, a custom CA or plain HTTP (always for localhost and
// loopback), retries with backoff on 408/429/5xx, bounded concurrency and an
// optional per-registry request rate.
//
// The package logs nothing unless given a *slog.Logger.
//
// # Usage: kubepool images
//
// Every command takes the template (-t/--template FILE) and its parameters:
// --defaults RELEASE|FILE, -e FILE (repeatable), --params FILE (a YAML
// mapping over the defaults) and --set key=value (YAML, over every
// ContainerImagePrepare entry's set). Filters: --include/--exclude REGEX
// and --service NAME (NovaApi or OS::TripleO::Services::NovaApi).
//
//	# image names for build tools, one per line (--refs for full references)
//	kubepool images list -t overcloud_containers.yaml.j2 --set tag=current-tripleo
//
//	# the concrete list (YAML) and a Heat environment file
//	kubepool images render -t overcloud_containers.yaml.j2 --params params.yaml \
//	    --env-file containers-env.yaml > images.yaml
//
//	# which hash does current-tripleo point at, image by image?
//	kubepool images discover -t overcloud_containers.yaml.j2 --params params.yaml \
//	    --moving-tag current-tripleo --images-file resolved.yaml \
//	    --env-file resolved-env.yaml --missing-report missing.yaml --require-consensus
//
//	# pin the tested set, then promote exactly it
//	kubepool images discover -t overcloud_containers.yaml.j2 --params params.yaml \
//	    --moving-tag current-tripleo --lock-file tested.lock
//	kubepool images promote --from-lock tested.lock --to current-passed-ci \
//	    --lock-file promoted.lock [--dry-run | --resume | --rollback]
//
// discover drops images that lack the moving tag and reports them
// (--require-all makes that fatal); it matches by digest among the tags
// that --tag-pattern selects (default: 40 hex digits, optional _suffix), or
// reads the tag from a label with --tag-from-label rdo_version or
// "{version}-{release}". promote checks every source and records every
// target, writes the plan to the journal, writes the targets (a manifest
// PUT of the same bytes: no blob moves; multi-arch indexes whole;
// --destination copies to another registry/namespace, mounting blobs where
// it can) and verifies each by the digest the registry answers; an
// interrupted promotion is finished by running it again (exit 3 until
// then), or undone with --rollback, which names the new tags a registry
// cannot delete. Listings take -o table|json|yaml; registry flags are
// --ca-file, --insecure, --jobs, --rps, --retries, --creds and --authfile.
package imageset
