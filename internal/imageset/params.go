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

// ParseSet parses "key=value" arguments (--set).
func ParseSet(args []string) (Params, error) {
	p := Params{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want key=value", a)
		}
		p[k] = v
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

// PrepareEntry is one entry of a TripleO ContainerImagePrepare list: the
// template is rendered with Set, then filtered by Includes and Excludes
// (regular expressions searched in the image name), and TagFromLabel names
// the label discover reads to find each image's tag.
type PrepareEntry struct {
	Set          Params
	Includes     []*regexp.Regexp
	Excludes     []*regexp.Regexp
	TagFromLabel string
}

// prepareKeys are the keys a ContainerImagePrepare entry may have. Only
// set, includes, excludes and tag_from_label matter here; the others are
// TripleO's upload and modify settings, accepted so that an existing file
// loads unchanged.
var prepareKeys = map[string]bool{
	"set": true, "includes": true, "excludes": true, "tag_from_label": true,
	"push_destination": true, "push_sub_namespace": true, "modify_role": true, "modify_vars": true,
	"modify_only_with_labels": true, "modify_only_with_source": true,
}

// LoadPrepareFile reads a Heat environment file with
// parameter_defaults.ContainerImagePrepare.
func LoadPrepareFile(path string) ([]PrepareEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ContainerImagePrepare file: %w", err)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file", path)
		}
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	doc := root.Content[0]
	pd := mapValue(doc, "parameter_defaults")
	if pd == nil {
		return nil, fmt.Errorf("%s line %d: no parameter_defaults", path, doc.Line)
	}
	cip := mapValue(pd, "ContainerImagePrepare")
	if cip == nil {
		return nil, fmt.Errorf("%s line %d: parameter_defaults has no ContainerImagePrepare", path, pd.Line)
	}
	if cip.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s line %d: ContainerImagePrepare: want a list", path, cip.Line)
	}
	var entries []PrepareEntry
	for _, en := range cip.Content {
		if en.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s line %d: ContainerImagePrepare entry: want a mapping", path, en.Line)
		}
		var e PrepareEntry
		for i := 0; i+1 < len(en.Content); i += 2 {
			k, v := en.Content[i], en.Content[i+1]
			if !prepareKeys[k.Value] {
				return nil, fmt.Errorf("%s line %d: unknown key %q in ContainerImagePrepare entry", path, k.Line, k.Value)
			}
			switch k.Value {
			case "set":
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
			case "tag_from_label":
				if v.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s line %d: tag_from_label: want a string", path, v.Line)
				}
				e.TagFromLabel = v.Value
			}
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s line %d: ContainerImagePrepare is empty", path, cip.Line)
	}
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
