package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
	kjson "sigs.k8s.io/json"
)

// maxNodes bounds the work one document may cause, aliases included, so a
// "billion laughs" file is an error rather than an out-of-memory; maxDepth
// bounds nesting, so a self-referencing alias is an error rather than a
// stack overflow. Real configs are far below both.
const (
	maxNodes = 1 << 18
	maxDepth = 100
)

// decoder walks a yaml.v3 node tree, reporting every problem with its file,
// line and key path, and recording the line of every key path it visits.
type decoder struct {
	errorList
	budget int
	depth  int
}

func newDecoder(file string) *decoder {
	return &decoder{errorList: errorList{file: file, lines: map[string]int{}}, budget: maxNodes}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.atLine(n.Line, path, nil, format, args...)
}

// spend charges one node against the budget; false once it is exhausted.
func (d *decoder) spend(n *yaml.Node) bool {
	d.budget--
	if d.budget == 0 {
		d.errorf(n, "", "document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	return d.budget > 0
}

// enter descends one level of nesting; false (reported once) if too deep.
// Callers that get true must call d.leave.
func (d *decoder) enter(n *yaml.Node, path string) bool {
	if d.depth >= maxDepth {
		d.errorf(n, path, "nested more than %d levels deep (a self-referencing alias?)", maxDepth)
		d.budget = -1 // stop decoding: nothing after this would make sense
		return false
	}
	d.depth++
	return true
}

func (d *decoder) leave() { d.depth-- }

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// pair is one key of a mapping, merge keys ("<<") already expanded.
type pair struct {
	key string
	k   *yaml.Node
	v   *yaml.Node
}

// mapping returns the pairs of a mapping node in file order. Keys merged in
// with "<<" come first and are overridden by explicit keys; a key given twice
// explicitly is an error. ok is false if n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string) (pairs []pair, ok bool) {
	n = resolve(n)
	if n == nil || !d.spend(n) || !d.enter(n, path) {
		return nil, false
	}
	defer d.leave()
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return nil, false
	}
	index := map[string]int{}
	explicit := map[string]bool{}
	add := func(p pair, isExplicit bool) {
		if i, seen := index[p.key]; seen {
			switch {
			case isExplicit && explicit[p.key]:
				d.errorf(p.k, joinPath(path, p.key), "key given twice (first on line %d)", pairs[i].k.Line)
			case isExplicit: // an explicit key overrides a merged one
				pairs[i] = p
				explicit[p.key] = true
			} // of two merged keys, the first merged wins
			return
		}
		index[p.key] = len(pairs)
		explicit[p.key] = isExplicit
		pairs = append(pairs, p)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || !d.spend(k) {
			return nil, false
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			for _, m := range d.mergeSources(v, path) {
				for _, p := range m {
					add(p, false)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a string key, got %s", describe(k))
			continue
		}
		add(pair{key: k.Value, k: k, v: v}, true)
	}
	return pairs, true
}

// mergeSources returns the pairs of the mapping(s) a "<<" key merges in.
func (d *decoder) mergeSources(v *yaml.Node, path string) [][]pair {
	v = resolve(v)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.SequenceNode {
		var out [][]pair
		for _, item := range v.Content {
			if ps, ok := d.mapping(item, path); ok {
				out = append(out, ps)
			}
		}
		return out
	}
	if ps, ok := d.mapping(v, path); ok {
		return [][]pair{ps}
	}
	return nil
}

// keys maps the keys an object accepts to the functions that decode them.
type keys map[string]func(v *yaml.Node, path string)

// object decodes a mapping with a table of known keys. Unknown keys are
// errors. It returns the keys present (with their value nodes) so callers can
// check required and exclusive keys; nil if n is not a mapping.
func (d *decoder) object(n *yaml.Node, path string, known keys) map[string]*yaml.Node {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	if path != "" {
		if _, seen := d.lines[path]; !seen {
			d.lines[path] = resolve(n).Line
		}
	}
	present := make(map[string]*yaml.Node, len(pairs))
	for _, p := range pairs {
		kp := joinPath(path, p.key)
		d.lines[kp] = p.k.Line
		fn, ok := known[p.key]
		if !ok {
			d.errorf(p.k, kp, "unknown key%s", suggest(p.key, known))
			continue
		}
		present[p.key] = p.v
		fn(p.v, kp)
	}
	return present
}

// require reports the keys of want that are missing from present.
func (d *decoder) require(n *yaml.Node, path string, present map[string]*yaml.Node, want ...string) {
	if present == nil {
		return
	}
	for _, k := range want {
		if _, ok := present[k]; !ok {
			d.errorf(resolve(n), joinPath(path, k), "required key is missing")
		}
	}
}

// list decodes a sequence, calling fn for each item with its path.
func (d *decoder) list(n *yaml.Node, path string, fn func(item *yaml.Node, path string)) {
	n = resolve(n)
	if n == nil || !d.spend(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		p := indexPath(path, i)
		d.lines[p] = resolve(item).Line
		fn(item, p)
	}
}

// scalar returns n as a scalar node with the given resolved tag, or reports
// a type error.
func (d *decoder) scalar(n *yaml.Node, path, want string, tags ...string) (*yaml.Node, bool) {
	n = resolve(n)
	if n == nil || !d.spend(n) {
		return nil, false
	}
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		for _, t := range tags {
			if tag == t {
				return n, true
			}
		}
	}
	d.errorf(n, path, "want %s, got %s", want, describe(n))
	return nil, false
}

func (d *decoder) str(n *yaml.Node, path string) string {
	if s, ok := d.scalar(n, path, "a string", "!!str"); ok {
		return s.Value
	}
	return ""
}

func (d *decoder) integer(n *yaml.Node, path string) int64 {
	s, ok := d.scalar(n, path, "an integer", "!!int")
	if !ok {
		return 0
	}
	var v int64
	if err := s.Decode(&v); err != nil {
		d.atLine(s.Line, path, err, "%q is not a 64-bit integer", s.Value)
	}
	return v
}

// count is a non-negative integer that fits an int.
func (d *decoder) count(n *yaml.Node, path string) int {
	v := d.integer(n, path)
	if v < 0 || v > math.MaxInt32 {
		d.errorf(resolve(n), path, "%d is out of range (0 to %d)", v, math.MaxInt32)
		return 0
	}
	return int(v)
}

// limit is a non-negative quota limit.
func (d *decoder) limit(n *yaml.Node, path string) int64 {
	v := d.integer(n, path)
	if v < 0 {
		d.errorf(resolve(n), path, "%d is negative", v)
		return 0
	}
	return v
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	s, ok := d.scalar(n, path, "true or false", "!!bool")
	if !ok {
		return false
	}
	var v bool
	if err := s.Decode(&v); err != nil {
		d.atLine(s.Line, path, err, "%q is not a boolean", s.Value)
	}
	return v
}

// seconds decodes a duration: an integer or decimal number of seconds, as
// Nodepool writes durations, or a Go duration string such as "8h" or "90s".
func (d *decoder) seconds(n *yaml.Node, path string) time.Duration {
	s, ok := d.scalar(n, path, `a number of seconds or a duration such as "90s"`, "!!int", "!!float", "!!str")
	if !ok {
		return 0
	}
	var v time.Duration
	if s.ShortTag() == "!!str" {
		var err error
		if v, err = time.ParseDuration(s.Value); err != nil {
			d.atLine(s.Line, path, err, "%q is not a duration (want e.g. \"90s\", \"8h\")", s.Value)
			return 0
		}
	} else {
		var f float64
		if err := s.Decode(&f); err != nil || math.IsNaN(f) || f > float64(math.MaxInt64)/float64(time.Second) {
			d.atLine(s.Line, path, err, "%q is not a number of seconds", s.Value)
			return 0
		}
		v = time.Duration(f * float64(time.Second))
	}
	if v < 0 {
		d.errorf(s, path, "%s is negative", s.Value)
		return 0
	}
	return v
}

// strMap decodes a mapping of strings to strings. Values must be YAML
// strings: Kubernetes rejects `key: true` in labels and selectors, so we say
// so here, with the line.
func (d *decoder) strMap(n *yaml.Node, path string) map[string]string {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		kp := joinPath(path, p.key)
		d.lines[kp] = p.k.Line
		v := resolve(p.v)
		if v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() != "!!str" && v.ShortTag() != "!!null" {
			d.errorf(v, kp, "want a string, got %s (quote it: %q)", describe(v), v.Value)
			continue
		}
		out[p.key] = d.str(p.v, kp)
	}
	return out
}

// intMap decodes a mapping of strings to integers (Nodepool's {str: int}).
func (d *decoder) intMap(n *yaml.Node, path string) map[string]int64 {
	pairs, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	out := make(map[string]int64, len(pairs))
	for _, p := range pairs {
		kp := joinPath(path, p.key)
		d.lines[kp] = p.k.Line
		out[p.key] = d.limit(p.v, kp)
	}
	return out
}

// anyMap decodes a mapping of arbitrary values (node-attributes).
func (d *decoder) anyMap(n *yaml.Node, path string) map[string]any {
	if r := resolve(n); r == nil || r.Kind != yaml.MappingNode {
		d.mapping(n, path) // report the type
		return nil
	}
	v, _ := d.toAny(n, path).(map[string]any)
	return v
}

// Units in which Nodepool's kubernetes driver reads bare integers.
const (
	mib = 1 << 20 // memory: MiB
	mb  = 1000000 // ephemeral storage: MB
)

// quantityKind says how a bare number in a resource key is read.
type quantityKind int

const (
	cores      quantityKind = iota // cpu: a number of cores
	mebibytes                      // memory: an integer number of MiB
	megabytes                      // storage: an integer number of MB
	plainCount                     // gpu: a number
)

// quantity decodes a resource amount. A bare number is read in Nodepool's
// unit for the key (cores, MiB or MB), so Nodepool configs mean what they
// meant; a string is a Kubernetes quantity such as "500m" or "2Gi" (a kubepool
// extension). For memory and storage a string must carry a unit, since "2048"
// would otherwise silently mean bytes where Nodepool meant MiB.
func (d *decoder) quantity(n *yaml.Node, path string, kind quantityKind) resource.Quantity {
	want := "an integer or a quantity string such as \"2Gi\""
	tags := []string{"!!int", "!!str"}
	if kind == cores || kind == plainCount {
		want = "a number or a quantity string such as \"500m\""
		tags = append(tags, "!!float")
	}
	s, ok := d.scalar(n, path, want, tags...)
	if !ok {
		return resource.Quantity{}
	}
	switch s.ShortTag() {
	case "!!int":
		var v int64
		if err := s.Decode(&v); err != nil {
			d.atLine(s.Line, path, err, "%q is not a 64-bit integer", s.Value)
			return resource.Quantity{}
		}
		if v < 0 {
			d.errorf(s, path, "%d is negative", v)
			return resource.Quantity{}
		}
		switch kind {
		case mebibytes:
			if v > math.MaxInt64/mib {
				d.errorf(s, path, "%d MiB is too large", v)
				return resource.Quantity{}
			}
			return *resource.NewQuantity(v*mib, resource.BinarySI)
		case megabytes:
			if v > math.MaxInt64/mb {
				d.errorf(s, path, "%d MB is too large", v)
				return resource.Quantity{}
			}
			return *resource.NewQuantity(v*mb, resource.DecimalSI)
		default:
			return *resource.NewQuantity(v, resource.DecimalSI)
		}
	case "!!float":
		var f float64
		if err := s.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.atLine(s.Line, path, err, "%q is not a finite number", s.Value)
			return resource.Quantity{}
		}
		if f < 0 {
			d.errorf(s, path, "%s is negative", s.Value)
			return resource.Quantity{}
		}
		q, err := resource.ParseQuantity(strconv.FormatFloat(f, 'f', -1, 64))
		if err != nil {
			d.atLine(s.Line, path, err, "%q is not a quantity", s.Value)
		}
		return q
	}
	q, err := resource.ParseQuantity(s.Value)
	if err != nil {
		d.atLine(s.Line, path, err, "%q is not a quantity", s.Value)
		return resource.Quantity{}
	}
	if q.Sign() < 0 {
		d.errorf(s, path, "%q is negative", s.Value)
		return resource.Quantity{}
	}
	if (kind == mebibytes || kind == megabytes) && unitless(s.Value) {
		unit := "Mi"
		if kind == megabytes {
			unit = "M"
		}
		d.errorf(s, path, "%q has no unit; write %s%s, or a bare integer (unquoted) for Nodepool's %s", s.Value, s.Value, unit, map[quantityKind]string{mebibytes: "MiB", megabytes: "MB"}[kind])
		return resource.Quantity{}
	}
	return q
}

func unitless(s string) bool {
	return strings.TrimLeft(s, "+-0123456789.") == ""
}

// toAny converts a node to plain Go values (map[string]any, []any, string,
// int64, float64, bool, nil) for JSON, within the node budget. Errors are
// reported and yield nil.
func (d *decoder) toAny(n *yaml.Node, path string) any {
	n = resolve(n)
	if n == nil || !d.spend(n) || !d.enter(n, path) {
		return nil
	}
	defer d.leave()
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return d.toAny(n.Content[0], path)
	case yaml.MappingNode:
		pairs, _ := d.mapping(n, path)
		m := make(map[string]any, len(pairs))
		for _, p := range pairs {
			kp := joinPath(path, p.key)
			m[p.key] = d.toAny(p.v, kp)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			s = append(s, d.toAny(item, indexPath(path, i)))
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b
			}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil {
				return i
			}
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) {
				return f
			}
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
			d.errorf(n, path, "%q is not a finite number", n.Value)
			return nil
		default: // !!str, !!timestamp, !!binary and custom tags: keep the text
			return n.Value
		}
		d.errorf(n, path, "cannot read %q", n.Value)
		return nil
	}
	d.errorf(n, path, "cannot read %s", describe(n))
	return nil
}

// kube decodes n into a Kubernetes API type (PodSpec, Volume, EnvVar, ...)
// the way the API server would: field names case-sensitive, unknown and
// duplicate fields rejected. Errors point at the offending line where the
// decoder reports a field path, else at n.
func (d *decoder) kube(n *yaml.Node, path string, into any) bool {
	before := len(d.errs)
	v := d.toAny(n, path)
	if len(d.errs) > before {
		return false
	}
	data, err := json.Marshal(v)
	if err != nil {
		d.atLine(resolve(n).Line, path, err, "cannot convert to JSON: %v", err)
		return false
	}
	strict, err := kjson.UnmarshalStrict(data, into)
	if err != nil {
		field := ""
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			field = te.Field
		}
		d.atLine(lineAt(n, field), joinPath(path, field), err, "%s", kubeMessage(err))
		return false
	}
	for _, se := range strict {
		field := ""
		if m := quotedField.FindStringSubmatch(se.Error()); m != nil {
			field = m[1]
		}
		msg := se.Error()
		if strings.HasPrefix(msg, "unknown field") {
			msg = "unknown field"
		} else if strings.HasPrefix(msg, "duplicate field") {
			msg = "field given twice"
		}
		d.atLine(lineAt(n, field), joinPath(path, field), se, "%s", msg)
	}
	return len(strict) == 0
}

var quotedField = regexp.MustCompile(`"([^"]*)"`)

// kubeMessage shortens encoding/json's type errors to what a config author
// needs: "want string, got number".
func kubeMessage(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("want %s, got %s", te.Type, te.Value)
	}
	return err.Error()
}

// lineAt finds the line of a field path inside n as the Kubernetes decoder
// writes it: "containers[0].image", or without indices, "containers.image",
// in which case the first item that has the key is taken. It returns the line
// of the deepest node found.
func lineAt(n *yaml.Node, field string) int {
	n = resolve(n)
	if n == nil {
		return 0
	}
	line := n.Line
	if field == "" {
		return line
	}
	segs := strings.FieldsFunc(field, func(r rune) bool { return r == '.' || r == '[' })
	var walk func(n *yaml.Node, segs []string, depth int) (int, bool)
	walk = func(n *yaml.Node, segs []string, depth int) (int, bool) {
		n = resolve(n)
		if n == nil || len(segs) == 0 || depth > 64 {
			return 0, false
		}
		seg := segs[0]
		switch n.Kind {
		case yaml.SequenceNode:
			if strings.HasSuffix(seg, "]") {
				i, err := strconv.Atoi(strings.TrimSuffix(seg, "]"))
				if err != nil || i < 0 || i >= len(n.Content) {
					return 0, false
				}
				item := resolve(n.Content[i])
				if item == nil {
					return 0, false
				}
				if l, ok := walk(item, segs[1:], depth+1); ok {
					return l, true
				}
				return item.Line, len(segs) == 1
			}
			for _, item := range n.Content {
				if l, ok := walk(item, segs, depth+1); ok {
					return l, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := resolve(n.Content[i]); k != nil && k.Value == seg {
					if len(segs) == 1 {
						return k.Line, true
					}
					if l, ok := walk(n.Content[i+1], segs[1:], depth+1); ok {
						return l, true
					}
					return k.Line, false
				}
			}
		}
		return 0, false
	}
	if l, _ := walk(n, segs, 0); l > 0 {
		return l
	}
	return line
}

// describe names a node's type for messages: `string "abc"`, "a list", ...
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return n.Value
		default:
			return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
		}
	}
	return "an alias"
}

// suggest offers the closest known key for a misspelt one.
func suggest(key string, known keys) string {
	best, bestDist := "", 3
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
