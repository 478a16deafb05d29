package imageset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/tokens"
	"gopkg.in/yaml.v3"
)

// Template is a parsed image-set template: a Jinja2 file whose output is a
// YAML document with a container_images_template list, as in TripleO's
// overcloud_containers.yaml.j2.
type Template struct {
	path string
	tpl  *exec.Template
	env  *exec.Environment
	vars templateVars
	// names are the variables the template reads, sorted; an undefined
	// one is passed to the engine as its index in names ([undefinedName]).
	names []string
}

// templateVars is what a static look at the template (and the files it
// includes) tells about its variables.
type templateVars struct {
	// used: every variable the template reads, with the first place it does.
	used map[string]position
	// printed: variables printed with {{ }} without a default filter, with
	// the first place they are; printing one that is undefined is an error.
	printed map[string]position
	// sets: variables the template sets itself with {% set %}.
	sets map[string]bool
	// odl: the template compares something with "odl" (a neutron_driver
	// branch, gone from ussuri on).
	odl bool
	// containerParams: its Heat parameters are named Container*Image
	// (train on) rather than Docker*Image.
	containerParams bool
}

// hasContainerParam reports whether src has a line "- Container<Word>Image"
// (a train-on Heat parameter name in a params list). A line scan: the
// equivalent multi-line regular expression costs more than lexing.
func hasContainerParam(src []byte) bool {
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = nil
		}
		rest, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("-"))
		if !ok {
			continue
		}
		word := bytes.TrimSpace(rest)
		mid, ok := bytes.CutPrefix(word, []byte("Container"))
		if !ok {
			continue
		}
		mid, ok = bytes.CutSuffix(mid, []byte("Image"))
		if ok && !bytes.ContainsFunc(mid, func(r rune) bool {
			return !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) {
			return true
		}
	}
	return false
}

type position struct {
	file string
	line int
}

func (p position) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// ErrMissingParameter is returned (wrapped) when a template needs a
// parameter that was not given.
var ErrMissingParameter = errors.New("missing parameter")

// ErrUnknownParameter is returned (wrapped) when a parameter was given that
// the template does not use.
var ErrUnknownParameter = errors.New("unknown parameter")

// LoadTemplate reads and parses the template at path. {% include %} paths
// are relative to the template's directory.
func LoadTemplate(path string) (*Template, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("loading template %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("loading template: %w", err)
	}
	loader, err := loaders.NewFileSystemLoader(filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("loading template %s: %w", path, err)
	}
	// Our own environment: the engine's globals minus namespace(), which
	// would otherwise shadow TripleO's "namespace" parameter when unset.
	globals := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
	env := &exec.Environment{
		Context:           exec.EmptyContext(),
		Filters:           jinjaFilters(),
		Tests:             jinjaTests(),
		ControlStructures: builtins.ControlStructures,
		Methods:           builtins.Methods,
	}
	for _, name := range []string{"cycler", "dict", "joiner", "lipsum", "range", "gonja"} {
		if v, ok := globals.Get(name); ok {
			env.Context.Set(name, v)
		}
	}
	tpl, err := exec.NewTemplate(filepath.Base(abs), config.New(), loader, env)
	if err != nil {
		// The engine's message quotes the whole source; keep only the cause.
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
		return nil, fmt.Errorf("parsing template %s: %w", path, err)
	}
	vars := templateVars{used: map[string]position{}, printed: map[string]position{}, sets: map[string]bool{}}
	if err := scanVars(abs, path, &vars, map[string]bool{}); err != nil {
		return nil, err
	}
	return &Template{path: path, tpl: tpl, env: env, vars: vars, names: slices.Sorted(maps.Keys(vars.used))}, nil
}

// Path returns the path the template was loaded from.
func (t *Template) Path() string { return t.path }

// Parameters returns the names of the variables the template reads, sorted.
func (t *Template) Parameters() []string {
	return slices.Sorted(maps.Keys(t.vars.used))
}

// CheckKnown returns an error wrapping [ErrUnknownParameter] if params has a
// key the template does not read.
func (t *Template) CheckKnown(params Params) error {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if _, ok := t.vars.used[k]; !ok {
			return fmt.Errorf("parameter %q: %w: template %s uses %s", k, ErrUnknownParameter, t.path, strings.Join(t.Parameters(), ", "))
		}
	}
	return nil
}

// Render renders the template with params and decodes its image list.
// Names are as in Python Jinja2: a name that is not in params is
// undefined (false in {% if %}, "is defined" false, replaced by default()),
// a name whose value is nil is none (defined, false). Unlike Jinja2, an
// undefined name that is printed is an error ([ErrMissingParameter])
// naming the file and line that prints it. Keys the template does not
// read are ignored (see [Template.CheckKnown]).
func (t *Template) Render(params Params) ([]Image, error) {
	data := make(map[string]any, len(params)+len(t.names))
	for i, name := range t.names {
		if _, ok := params[name]; !ok {
			data[name] = undefinedName(i)
		}
	}
	for k, v := range params {
		data[k] = v
	}
	var out bytes.Buffer
	if err := t.tpl.Execute(&out, exec.NewContext(data)); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", t.path, err)
	}
	if err := t.checkUndefinedOutput(out.Bytes()); err != nil {
		return nil, err
	}
	var doc struct {
		Images []Image `yaml:"container_images_template"`
	}
	dec := yaml.NewDecoder(&out)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding the output of %s (line numbers are of the rendered text): %w", t.path, err)
	}
	if doc.Images == nil {
		return nil, fmt.Errorf("rendering %s: output has no container_images_template list", t.path)
	}
	for i, img := range doc.Images {
		if img.ImageName == "" {
			return nil, fmt.Errorf("rendering %s: entry %d has no imagename", t.path, i+1)
		}
		if _, err := img.Reference(); err != nil {
			return nil, fmt.Errorf("rendering %s: entry %d: %w", t.path, i+1, err)
		}
	}
	prefix, ok := params["name_prefix"]
	if !ok || prefix == nil {
		// The template may set its own default ({% set name_prefix = ... %}).
		prefix = commonPrefix(doc.Images)
	}
	for i, img := range doc.Images {
		doc.Images[i].short = shortName(img.ImageName, fmt.Sprint(prefix), params.String("name_suffix"))
	}
	return doc.Images, nil
}

// jinjaWords are names that are syntax or engine built-ins, not parameters.
var jinjaWords = map[string]bool{
	"if": true, "elif": true, "else": true, "endif": true, "for": true, "endfor": true,
	"in": true, "not": true, "and": true, "or": true, "is": true, "set": true, "endset": true,
	"true": true, "false": true, "none": true, "True": true, "False": true, "None": true,
	"loop": true, "recursive": true, "include": true, "import": true, "from": true, "as": true,
	"with": true, "without": true, "endwith": true, "context": true, "ignore": true, "missing": true,
	"macro": true, "endmacro": true, "call": true, "endcall": true, "caller": true, "filter": true,
	"endfilter": true, "block": true, "endblock": true, "extends": true, "raw": true, "endraw": true,
	"super": true, "self": true, "varargs": true, "kwargs": true, "do": true, "break": true, "continue": true,
	"autoescape": true, "endautoescape": true, "trans": true, "endtrans": true, "pluralize": true,
	"range": true, "dict": true, "cycler": true, "joiner": true, "lipsum": true, "gonja": true,
}

// scanVars reads the template's tokens to learn which variables it reads,
// which it sets itself ({% set %}, {% for %}, {% macro %}) and which are
// printed without a default. It follows {% include "literal" %}.
func scanVars(abs, shown string, vars *templateVars, seen map[string]bool) error {
	if seen[abs] {
		return nil
	}
	seen[abs] = true
	src, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("reading template: %w", err)
	}
	if hasContainerParam(src) {
		vars.containerParams = true
	}
	var toks []*tokens.Token
	stream := tokens.LexAll(string(src), config.New())
	for {
		tok := stream.Next()
		if tok == nil || tok.Type == tokens.EOF {
			break
		}
		if tok.Type == tokens.Error {
			return fmt.Errorf("parsing template %s line %d: %s", shown, tok.Line, tok.Val)
		}
		toks = append(toks, tok)
		if stream.End() {
			if cur := stream.Current(); cur != nil && cur.Type == tokens.Error {
				return fmt.Errorf("parsing template %s line %d: %s", shown, cur.Line, cur.Val)
			}
			break
		}
	}

	locals := map[string]string{} // name -> the statement that binds it
	printed := map[string]position{}
	var (
		inBlock, inVar bool
		tag            string // the statement keyword of the current block
		beforeAssign   bool   // in a set/for/macro block, before "=" or "in"
		parens         int
	)
	prev := func(i int) *tokens.Token {
		if i > 0 {
			return toks[i-1]
		}
		return nil
	}
	next := func(i int) *tokens.Token {
		if i+1 < len(toks) {
			return toks[i+1]
		}
		return nil
	}
	for i, tok := range toks {
		switch tok.Type {
		case tokens.BlockBegin:
			inBlock, tag, beforeAssign, parens = true, "", false, 0
			continue
		case tokens.BlockEnd:
			inBlock = false
			continue
		case tokens.VariableBegin:
			inVar, parens = true, 0
			continue
		case tokens.VariableEnd:
			inVar = false
			continue
		case tokens.LeftParenthesis, tokens.LeftBracket, tokens.LeftBrace:
			parens++
		case tokens.RightParenthesis, tokens.RightBracket, tokens.RightBrace:
			parens--
		case tokens.Assign, tokens.In:
			if inBlock && parens == 0 {
				beforeAssign = false
			}
		case tokens.String:
			if inBlock && tok.Val == "odl" {
				vars.odl = true
			}
			if inBlock && tag == "include" && prev(i) != nil && prev(i).Val == "include" {
				inc := filepath.Join(filepath.Dir(abs), tok.Val)
				if err := scanVars(inc, filepath.Join(filepath.Dir(shown), tok.Val), vars, seen); err != nil {
					return err
				}
			}
		}
		if tok.Type != tokens.Name || !(inBlock || inVar) {
			continue
		}
		if inBlock && tag == "" {
			tag = tok.Val
			beforeAssign = tag == "set" || tag == "for" || tag == "macro" || tag == "with"
			continue
		}
		if p := prev(i); p != nil && (p.Type == tokens.Pipe || p.Type == tokens.Dot || p.Type == tokens.Is ||
			(p.Type == tokens.Not && prev(i-1) != nil && prev(i-1).Type == tokens.Is)) {
			continue // filter, attribute or test name
		}
		if n := next(i); n != nil && n.Type == tokens.Assign && parens > 0 {
			continue // keyword argument
		}
		if jinjaWords[tok.Val] {
			continue
		}
		if inBlock && beforeAssign {
			locals[tok.Val] = tag
			continue
		}
		pos := position{file: shown, line: tok.Line}
		if _, ok := vars.used[tok.Val]; !ok {
			vars.used[tok.Val] = pos
		}
		if inVar {
			// {{ x | default(...) }} has its own default.
			if n := next(i); n != nil && n.Type == tokens.Pipe && i+2 < len(toks) &&
				(toks[i+2].Val == "default" || toks[i+2].Val == "d") {
				continue
			}
			if _, ok := printed[tok.Val]; !ok {
				printed[tok.Val] = pos
			}
		}
	}
	for name, pos := range printed {
		if _, ok := vars.printed[name]; !ok {
			vars.printed[name] = pos
		}
	}
	// Loop and macro variables are not parameters at all.
	for name, kind := range locals {
		if kind == "set" {
			vars.sets[name] = true
		} else {
			delete(vars.used, name)
		}
	}
	return nil
}

// commonPrefix returns the name prefix, ending at a "-" or "_", that most
// of the images' base names share, the longest of equals ("centos-binary-").
func commonPrefix(images []Image) string {
	counts := map[string]int{}
	for _, img := range images {
		repo, _ := splitTag(img.ImageName)
		base := repo[strings.LastIndex(repo, "/")+1:]
		for i, r := range base {
			if (r == '-' || r == '_') && i+1 < len(base) {
				counts[base[:i+1]]++
			}
		}
	}
	best := ""
	for p, n := range counts {
		if n < 2 || 2*n < len(images) {
			continue
		}
		if n > counts[best] || (n == counts[best] && (len(p) > len(best) || (len(p) == len(best) && p < best))) {
			best = p
		}
	}
	return best
}

// undefinedName stands, in the engine's context, for a variable the
// template reads but that was not given: the index of its name in
// Template.names. The engine holds it false (its kind is neither number,
// string, container nor bool) and not none; our defined/undefined tests
// and default filter treat it as Jinja2 treats Undefined; printed, it
// leaves a marker that Render reports.
type undefinedName uintptr

const undefinedMarker = "\x00kubepool-undefined:"

func (u undefinedName) String() string {
	return undefinedMarker + strconv.Itoa(int(u)) + "\x00"
}

func isUndefined(v *exec.Value) bool {
	if v == nil || v.IsError() {
		return true
	}
	if v.IsNil() {
		return false // none
	}
	_, ok := v.Interface().(undefinedName)
	return ok
}

// checkUndefinedOutput reports the undefined names the output printed.
func (t *Template) checkUndefinedOutput(out []byte) error {
	if !bytes.Contains(out, []byte(undefinedMarker)) {
		return nil
	}
	seen := map[string]bool{}
	var missing []string
	rest := out
	for {
		i := bytes.Index(rest, []byte(undefinedMarker))
		if i < 0 {
			break
		}
		rest = rest[i+len(undefinedMarker):]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			break
		}
		n, err := strconv.Atoi(string(rest[:end]))
		rest = rest[end+1:]
		if err != nil || n < 0 || n >= len(t.names) {
			continue
		}
		name := t.names[n]
		if seen[name] {
			continue
		}
		seen[name] = true
		pos, ok := t.vars.printed[name]
		if !ok {
			pos = t.vars.used[name]
		}
		missing = append(missing, fmt.Sprintf("%q (printed at %s)", name, pos))
	}
	slices.Sort(missing)
	return fmt.Errorf("rendering %s: %w: %s is defined nowhere (not in the defaults, the environment or --set)", t.path, ErrMissingParameter, strings.Join(missing, ", "))
}

// jinjaTests are the engine's tests with defined, undefined and none as
// Python Jinja2 has them: none is defined.
func jinjaTests() *exec.TestSet {
	return exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests).Update(exec.NewTestSet(map[string]exec.TestFunction{
		"defined": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return !isUndefined(in), nil
		},
		"undefined": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return isUndefined(in), nil
		},
		"none": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in != nil && in.IsNil(), nil
		},
	}))
}

// jinjaFilters are the engine's filters with default (d) as Python Jinja2
// has it: default(value, boolean=false) replaces an undefined name, and
// with boolean true also a false one; none is not replaced otherwise.
func jinjaFilters() *exec.FilterSet {
	def := func(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
		dflt := exec.AsValue("")
		boolean := false
		if len(params.Args) > 0 {
			dflt = params.Args[0]
		}
		if len(params.Args) > 1 {
			boolean = params.Args[1].IsTrue()
		}
		if v, ok := params.KwArgs["default_value"]; ok {
			dflt = v
		}
		if v, ok := params.KwArgs["boolean"]; ok {
			boolean = v.IsTrue()
		}
		if isUndefined(in) || (boolean && !in.IsTrue()) {
			return dflt
		}
		return in
	}
	return exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters).Update(exec.NewFilterSet(map[string]exec.FilterFunction{
		"default": def,
		"d":       def,
	}))
}
