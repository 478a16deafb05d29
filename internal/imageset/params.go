package imageset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Params are template parameters: namespace, name_prefix, name_suffix, tag,
// and whatever else a template reads (neutron_driver, ceph_tag, ...).
// Values are strings, booleans, numbers or nil, as YAML gives them.
type Params map[string]any

// Merge returns a copy of p with other's keys laid over it.
func (p Params) Merge(other Params) Params {
	out := make(Params, len(p)+len(other))
	for k, v := range p {
		out[k] = v
	}
	for k, v := range other {
		out[k] = v
	}
	return out
}

// String returns the parameter as a string ("" if unset or nil).
func (p Params) String(key string) string {
	v, ok := p[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// ParseSet parses "key=value" arguments (--set). Values are YAML, as in
// TripleO's environment files: false is a boolean, 3 a number, null (or ~)
// none; "key=" is the empty string.
func ParseSet(args []string) (Params, error) {
	p := Params{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value", a)
		}
		if v == "" {
			p[k] = ""
			continue
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			return nil, fmt.Errorf("--set %s: value %q is not YAML: %w", k, v, err)
		}
		switch val.(type) {
		case map[string]any, []any:
			return nil, fmt.Errorf("--set %s: want a string, number, boolean or null, not %q", k, v)
		}
		p[k] = val
	}
	return p, nil
}

// LoadParamsFile reads a YAML mapping of parameters.
func LoadParamsFile(path string) (Params, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading parameters: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parsing parameters %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return Params{}, nil
	}
	return scalarMap(path, root.Content[0])
}

// scalarMap decodes a YAML mapping whose values are all scalars (or null).
func scalarMap(path string, n *yaml.Node) (Params, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s line %d: want a mapping of parameter: value", path, n.Line)
	}
	p := Params{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s line %d: parameter %q: want a string, number, boolean or null", path, v.Line, k.Value)
		}
		if _, dup := p[k.Value]; dup {
			return nil, fmt.Errorf("%s line %d: parameter %q given twice", path, k.Line, k.Value)
		}
		var val any
		if err := v.Decode(&val); err != nil {
			return nil, fmt.Errorf("%s line %d: parameter %q: %w", path, v.Line, k.Value, err)
		}
		p[k.Value] = val
	}
	return p, nil
}

// PrepareEntry is one entry of a TripleO ContainerImagePrepare list. The
// template is rendered with Set (filled from the defaults), then filtered:
// an image is kept if it matches one of Includes, or, when there are no
// Includes, none of Excludes (regular expressions searched in the image
// name). The other fields are TripleO's upload and modify settings.
type PrepareEntry struct {
	Set          Params
	Includes     []*regexp.Regexp
	Excludes     []*regexp.Regexp
	TagFromLabel string
	// PushDestination is a registry host[:port] (or host/namespace) to
	// copy the images to, or true for the undercloud's registry.
	PushDestination any
	// PullSource is the registry to pull from instead of the image's own.
	PullSource string
	// MultiArch is the entry's multi_arch (nil: not given).
	MultiArch *bool
	// ModifyRole and the others: an Ansible role TripleO runs on each
	// image before pushing it; kubepool does not run it (a warning says so).
	ModifyRole           string
	ModifyVars           any
	ModifyOnlyWithLabels []string
	ModifyOnlyWithSource []string
	ModifyAppendTag      *string

	// where is "FILE line N" (or "defaults (train)").
	where string
}

// prepareKeys are the keys a ContainerImagePrepare entry may have: those
// tripleo-common's container_images_prepare_multi reads.
var prepareKeys = map[string]bool{
	"set": true, "includes": true, "excludes": true, "tag_from_label": true,
	"push_destination": true, "pull_source": true, "multi_arch": true,
	"modify_role": true, "modify_vars": true, "modify_only_with_labels": true,
	"modify_only_with_source": true, "modify_append_tag": true,
}

// environment is the merge of Heat environment files, in order: each
// file's parameter_defaults laid over the earlier ones (mappings merged
// key by key, as heatclient does; any other value replaced).
type environment struct {
	// pd holds parameter_defaults other than ContainerImagePrepare.
	pd map[string]any
	// prepare is the last ContainerImagePrepare given (nil if none).
	prepare []PrepareEntry
	// prepareFile is the file it came from.
	prepareFile string
}

// loadEnvFiles reads and merges Heat environment files in order.
func loadEnvFiles(paths ...string) (*environment, error) {
	env := &environment{pd: map[string]any{}}
	for _, p := range paths {
		if err := env.add(p); err != nil {
			return nil, err
		}
	}
	return env, nil
}

func loadEnvFile(path string) (*environment, error) { return loadEnvFiles(path) }

func (env *environment) add(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading environment file: %w", err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty environment
		}
		return fmt.Errorf("parsing environment file %s: %w", path, err)
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("%s line %d: want a Heat environment (a mapping)", path, doc.Line)
	}
	pd := mapValue(doc, "parameter_defaults")
	if pd == nil {
		return nil
	}
	if pd.Kind != yaml.MappingNode {
		return fmt.Errorf("%s line %d: parameter_defaults: want a mapping", path, pd.Line)
	}
	for i := 0; i+1 < len(pd.Content); i += 2 {
		k, v := pd.Content[i], pd.Content[i+1]
		if k.Value == "ContainerImagePrepare" {
			entries, err := parsePrepare(path, v)
			if err != nil {
				return err
			}
			env.prepare, env.prepareFile = entries, path
			continue
		}
		var val any
		if err := v.Decode(&val); err != nil {
			return fmt.Errorf("%s line %d: %s: %w", path, v.Line, k.Value, err)
		}
		env.pd[k.Value] = deepMerge(env.pd[k.Value], val)
	}
	return nil
}

// deepMerge lays b over a: mappings key by key, anything else replaced.
func deepMerge(a, b any) any {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		return b
	}
	out := make(map[string]any, len(am)+len(bm))
	for k, v := range am {
		out[k] = v
	}
	for k, v := range bm {
		out[k] = deepMerge(out[k], v)
	}
	return out
}

// LoadPrepareFile reads the ContainerImagePrepare of a Heat environment
// file.
func LoadPrepareFile(path string) ([]PrepareEntry, error) {
	env, err := loadEnvFile(path)
	if err != nil {
		return nil, err
	}
	if env.prepare == nil {
		return nil, fmt.Errorf("%s: parameter_defaults has no ContainerImagePrepare", path)
	}
	return env.prepare, nil
}

func parsePrepare(path string, cip *yaml.Node) ([]PrepareEntry, error) {
	if cip.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s line %d: ContainerImagePrepare: want a list", path, cip.Line)
	}
	var entries []PrepareEntry
	for _, en := range cip.Content {
		if en.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s line %d: ContainerImagePrepare entry: want a mapping", path, en.Line)
		}
		e := PrepareEntry{Set: Params{}, where: fmt.Sprintf("%s line %d", path, en.Line)}
		for i := 0; i+1 < len(en.Content); i += 2 {
			k, v := en.Content[i], en.Content[i+1]
			if !prepareKeys[k.Value] {
				return nil, fmt.Errorf("%s line %d: unknown key %q in ContainerImagePrepare entry", path, k.Line, k.Value)
			}
			var err error
			switch k.Value {
			case "set":
				if v.Tag == "!!null" {
					continue
				}
				if e.Set, err = scalarMap(path, v); err != nil {
					return nil, err
				}
			case "includes", "excludes":
				var pats []string
				if err := v.Decode(&pats); err != nil {
					return nil, fmt.Errorf("%s line %d: %s: want a list of regular expressions: %w", path, v.Line, k.Value, err)
				}
				res, err := compileAll(pats)
				if err != nil {
					return nil, fmt.Errorf("%s line %d: %s: %w", path, v.Line, k.Value, err)
				}
				if k.Value == "includes" {
					e.Includes = res
				} else {
					e.Excludes = res
				}
			case "tag_from_label", "pull_source", "modify_role":
				if v.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s line %d: %s: want a string", path, v.Line, k.Value)
				}
				switch k.Value {
				case "tag_from_label":
					e.TagFromLabel = v.Value
				case "pull_source":
					e.PullSource = v.Value
				default:
					e.ModifyRole = v.Value
				}
			case "modify_append_tag":
				if v.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s line %d: modify_append_tag: want a string", path, v.Line)
				}
				tag := v.Value
				e.ModifyAppendTag = &tag
			case "push_destination":
				var val any
				if err := v.Decode(&val); err != nil {
					return nil, fmt.Errorf("%s line %d: push_destination: %w", path, v.Line, err)
				}
				switch val.(type) {
				case string, bool, nil:
					e.PushDestination = val
				default:
					return nil, fmt.Errorf("%s line %d: push_destination: want a registry address or true", path, v.Line)
				}
			case "multi_arch":
				var b bool
				if err := v.Decode(&b); err != nil {
					return nil, fmt.Errorf("%s line %d: multi_arch: want a boolean: %w", path, v.Line, err)
				}
				e.MultiArch = &b
			case "modify_vars":
				if err := v.Decode(&e.ModifyVars); err != nil {
					return nil, fmt.Errorf("%s line %d: modify_vars: %w", path, v.Line, err)
				}
			case "modify_only_with_labels", "modify_only_with_source":
				var list []string
				if err := v.Decode(&list); err != nil {
					return nil, fmt.Errorf("%s line %d: %s: want a list of strings: %w", path, v.Line, k.Value, err)
				}
				if k.Value == "modify_only_with_labels" {
					e.ModifyOnlyWithLabels = list
				} else {
					e.ModifyOnlyWithSource = list
				}
			}
		}
		entries = append(entries, e)
	}
	// An empty list is no list: TripleO then uses its defaults.
	return entries, nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// compileAll compiles regular expressions (Go RE2 syntax).
func compileAll(pats []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling %q: %w", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}
