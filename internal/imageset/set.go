package imageset

import (
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// Image is one entry of a rendered image set, in the shape of TripleO's
// container_images_template entries.
type Image struct {
	ImageName    string   `json:"imagename" yaml:"imagename"`
	ImageSource  string   `json:"image_source,omitempty" yaml:"image_source,omitempty"`
	Params       []string `json:"params,omitempty" yaml:"params,omitempty"`
	Services     []string `json:"services,omitempty" yaml:"services,omitempty"`
	TagFromLabel string   `json:"tag_from_label,omitempty" yaml:"tag_from_label,omitempty"`

	// short is the image's name without namespace, name_prefix, name_suffix
	// and tag ("nova-api"): what image build tools call it.
	short string
}

// Reference parses the image name.
func (img Image) Reference(opts ...name.Option) (name.Tag, error) {
	tag, err := name.NewTag(img.ImageName, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("parsing image name %q: %w", img.ImageName, err)
	}
	return tag, nil
}

// Name returns the short name used by image build tools ("nova-api").
func (img Image) Name() string {
	if img.short == "" {
		return shortName(img.ImageName, "", "")
	}
	return img.short
}

// WithTag returns img with its tag replaced.
func (img Image) WithTag(tag string) Image {
	repo, _ := splitTag(img.ImageName)
	img.ImageName = repo + ":" + tag
	return img
}

// splitTag splits "ns/name:tag" into "ns/name" and "tag".
func splitTag(ref string) (repo, tag string) {
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

func shortName(imageName, prefix, suffix string) string {
	repo, _ := splitTag(imageName)
	base := repo[strings.LastIndex(repo, "/")+1:]
	if prefix != "" && strings.HasPrefix(base, prefix) && len(base) > len(prefix) {
		base = base[len(prefix):]
	}
	if suffix != "" && strings.HasSuffix(base, suffix) && len(base) > len(suffix) {
		base = base[:len(base)-len(suffix)]
	}
	return base
}

// heatParams returns the Heat parameters that take this image: those the
// template lists under params. TripleO writes no parameter for an entry
// without params, and neither does kubepool.
func (img Image) heatParams() []string { return img.Params }

// Filter selects images from a set. An image is kept if it matches any
// Include (or there are none), no Exclude, and, when Services is not empty,
// is used by one of them ("NovaApi" or "OS::TripleO::Services::NovaApi").
type Filter struct {
	Include  []*regexp.Regexp
	Exclude  []*regexp.Regexp
	Services []string
}

// NewFilter compiles include and exclude patterns.
func NewFilter(include, exclude, services []string) (Filter, error) {
	inc, err := compileAll(include)
	if err != nil {
		return Filter{}, fmt.Errorf("--include: %w", err)
	}
	exc, err := compileAll(exclude)
	if err != nil {
		return Filter{}, fmt.Errorf("--exclude: %w", err)
	}
	return Filter{Include: inc, Exclude: exc, Services: services}, nil
}

// Match reports whether f keeps img.
func (f Filter) Match(img Image) bool {
	if len(f.Include) > 0 && !slices.ContainsFunc(f.Include, func(re *regexp.Regexp) bool { return re.MatchString(img.ImageName) }) {
		return false
	}
	if slices.ContainsFunc(f.Exclude, func(re *regexp.Regexp) bool { return re.MatchString(img.ImageName) }) {
		return false
	}
	if len(f.Services) == 0 {
		return true
	}
	for _, s := range img.Services {
		for _, want := range f.Services {
			if s == want || strings.TrimPrefix(s, "OS::TripleO::Services::") == want {
				return true
			}
		}
	}
	return false
}

// Apply returns the images f keeps, in order.
func (f Filter) Apply(images []Image) []Image {
	var out []Image
	for _, img := range images {
		if f.Match(img) {
			out = append(out, img)
		}
	}
	return out
}

// WriteImages writes images as YAML, in the template's entry shape, under
// container_images (what TripleO's prepare writes with --output-images-file).
func WriteImages(w io.Writer, images []Image) error {
	doc := struct {
		Images []Image `yaml:"container_images"`
	}{images}
	if doc.Images == nil {
		doc.Images = []Image{}
	}
	return encodeYAML(w, doc)
}

// EnvFile returns the Heat environment that points every image's
// parameters (the template's params) at its reference:
// parameter_defaults: {ContainerNovaApiImage: ...}.
func EnvFile(images []Image) map[string]map[string]string {
	pd := map[string]string{}
	for _, img := range images {
		for _, p := range img.heatParams() {
			pd[p] = img.ImageName
		}
	}
	return map[string]map[string]string{"parameter_defaults": pd}
}

// WriteEnvFile writes [EnvFile] as YAML.
func WriteEnvFile(w io.Writer, images []Image) error {
	return encodeYAML(w, EnvFile(images))
}

func encodeYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	return nil
}

// Source says where an image set comes from, as TripleO's
// `openstack tripleo container image prepare` takes it: a template, the
// defaults of a release, Heat environment files with
// ContainerImagePrepare, and kubepool's own --params and --set.
//
// Each ContainerImagePrepare entry's set is laid over the defaults (and
// --params), and --set over that; without ContainerImagePrepare the
// defaults' own entry is used.
type Source struct {
	Template string
	// Defaults is a release ("train"), a container_image_prepare_defaults.yaml,
	// or "" to pick them from the template ([PickDefaults]).
	Defaults   string
	ParamsFile string
	// EnvFiles are Heat environment files, merged in order (-e).
	EnvFiles []string
	// PrepareFile is one more environment file, after EnvFiles.
	PrepareFile string
	Set         Params
	// Filter is applied to each entry's images, before the environment is
	// built (as TripleO's service filter is).
	Filter Filter
	// Now gives the time for TripleO's default modify_append_tag
	// (-modified-%Y%m%d%H%M%S); time.Now if nil.
	Now func() time.Time
}

// Prepared is the outcome of [Source.Prepare].
type Prepared struct {
	Defaults Defaults
	// Images are every entry's images, in order; an image name rendered by
	// two entries is kept once, as the first had it.
	Images []Image
	// Uploads are the copies push_destination asks for, in order.
	Uploads []Upload
	// Env is the Heat parameter_defaults TripleO would write: each image
	// parameter → reference (a later entry wins, as in TripleO), and
	// DockerInsecureRegistryAddress.
	Env map[string]any
	// Warnings name settings kubepool did not act on, and why.
	Warnings []string
}

// Upload is one image copy: from Source to Target (full references).
type Upload struct {
	Source string
	Target string
	// Entry is where the ContainerImagePrepare entry is.
	Entry string
}

// Load renders the image set (see [Source.Prepare]).
func (s Source) Load() ([]Image, error) {
	p, err := s.Prepare()
	if err != nil {
		return nil, err
	}
	return p.Images, nil
}

// Prepare does what TripleO's container image prepare does, short of
// contacting a registry: renders the template once per
// ContainerImagePrepare entry with that entry's set filled from the
// defaults, filters, and builds the Heat environment.
func (s Source) Prepare() (*Prepared, error) {
	if s.Template == "" {
		return nil, fmt.Errorf("no template given")
	}
	tpl, err := LoadTemplate(s.Template)
	if err != nil {
		return nil, err
	}
	defaults, err := PickDefaults(s.Defaults, tpl)
	if err != nil {
		return nil, err
	}
	base := defaults.Set
	if s.ParamsFile != "" {
		fileParams, err := LoadParamsFile(s.ParamsFile)
		if err != nil {
			return nil, err
		}
		base = base.Merge(fileParams)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Set)) {
		if _, ok := base[k]; ok {
			continue
		}
		if err := tpl.CheckKnown(Params{k: s.Set[k]}); err != nil {
			return nil, fmt.Errorf("--set: %w", err)
		}
	}
	files := slices.Clone(s.EnvFiles)
	if s.PrepareFile != "" {
		files = append(files, s.PrepareFile)
	}
	env, err := loadEnvFiles(files...)
	if err != nil {
		return nil, err
	}
	entries := env.prepare
	if len(entries) == 0 {
		entries = defaults.PrepareEntries(base)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	out := &Prepared{Defaults: defaults, Env: map[string]any{}}
	seen := map[string]bool{}
	for _, e := range entries {
		imgs, params, err := s.prepareEntry(tpl, defaults, base, env, e, now, out)
		if err != nil {
			return nil, fmt.Errorf("ContainerImagePrepare entry at %s: %w", e.where, err)
		}
		maps.Copy(out.Env, params)
		for _, img := range imgs {
			if !seen[img.ImageName] {
				seen[img.ImageName] = true
				out.Images = append(out.Images, img)
			}
		}
	}
	return out, nil
}

// prepareEntry is tripleo-common's container_images_prepare for one entry.
func (s Source) prepareEntry(tpl *Template, defaults Defaults, base Params, env *environment, e PrepareEntry, now func() time.Time, out *Prepared) ([]Image, map[string]any, error) {
	warn := func(format string, args ...any) {
		out.Warnings = append(out.Warnings, e.where+": "+fmt.Sprintf(format, args...))
	}
	// mapping_args: the entry's set (with --set), then the neutron driver
	// TripleO chooses, then the defaults for what is missing.
	set := e.Set.Merge(s.Set)
	if driver, changed := defaults.neutronDriver(set, env.pd["NeutronMechanismDrivers"]); changed {
		set["neutron_driver"] = driver
	}
	tagFromLabel := e.TagFromLabel
	if defaults.tagDisablesLabel() && truthy(set["tag"]) {
		tagFromLabel = ""
	}
	mapping := base.Merge(set)
	if defaults.hyphenates() {
		if np, ok := mapping["name_prefix"].(string); ok && np != "" && !strings.HasSuffix(np, "-") {
			mapping["name_prefix"] = np + "-"
		}
		if ns, ok := mapping["name_suffix"].(string); ok && ns != "" && !strings.HasPrefix(ns, "-") {
			mapping["name_suffix"] = "-" + ns
		}
	}
	rendered, err := tpl.Render(mapping)
	if err != nil {
		return nil, nil, err
	}
	var imgs []Image
	for _, img := range rendered {
		if !s.Filter.Match(img) || !e.keeps(img.ImageName) {
			continue
		}
		if img.TagFromLabel == "" {
			img.TagFromLabel = tagFromLabel
		}
		imgs = append(imgs, img)
	}

	appendTag := ""
	modified := func(Image) bool { return false }
	if e.ModifyRole != "" {
		appendTag = now().Format("-modified-20060102150405")
		if e.ModifyAppendTag != nil {
			appendTag = *e.ModifyAppendTag
		}
		modified = func(img Image) bool {
			if len(e.ModifyOnlyWithLabels) == 0 && len(e.ModifyOnlyWithSource) == 0 {
				return true
			}
			return slices.Contains(e.ModifyOnlyWithSource, img.ImageSource)
		}
		n := 0
		for _, img := range imgs {
			if modified(img) {
				n++
			}
		}
		warn("modify_role %q: not run (kubepool runs no Ansible) on %d images; the environment names their %q tags, as TripleO's would", e.ModifyRole, n, appendTag)
		if len(e.ModifyOnlyWithLabels) > 0 {
			warn("modify_only_with_labels %v: labels not read; only images matching modify_only_with_source count as modified", e.ModifyOnlyWithLabels)
		}
	} else if e.ModifyVars != nil || len(e.ModifyOnlyWithLabels) > 0 || len(e.ModifyOnlyWithSource) > 0 || e.ModifyAppendTag != nil {
		warn("modify_vars, modify_only_with_* and modify_append_tag do nothing without modify_role (as in TripleO)")
	}

	dest := ""
	switch v := e.PushDestination.(type) {
	case string:
		dest = strings.TrimSuffix(v, "/")
	case bool:
		if v {
			dest = undercloudRegistry(env.pd)
			warn("push_destination: true means %s here (LocalContainerRegistry, else the host's .ctlplane name, else localhost, port 8787, as TripleO resolves it)", dest)
		}
	}

	params := map[string]any{}
	for _, img := range imgs {
		name := img.ImageName
		if dest != "" {
			src := name
			if e.PullSource != "" {
				src = strings.TrimSuffix(e.PullSource, "/") + "/" + name
			}
			_, rest, _ := strings.Cut(name, "/")
			name = dest + "/" + rest
			out.Uploads = append(out.Uploads, Upload{Source: src, Target: name, Entry: e.where})
		}
		tag := ""
		if modified(img) {
			tag = appendTag
		}
		for _, p := range img.Params {
			params[p] = name + tag
		}
	}
	if e.PullSource != "" && dest == "" {
		warn("pull_source %q: used only when images are copied (push_destination), as in TripleO", e.PullSource)
	}
	var insecure []string
	for _, v := range params {
		host, _, _ := strings.Cut(v.(string), "/")
		if isLoopbackHost(host) && !slices.Contains(insecure, host) {
			insecure = append(insecure, host)
		}
	}
	if len(insecure) > 0 {
		slices.Sort(insecure)
		params["DockerInsecureRegistryAddress"] = insecure
	}
	return imgs, params, nil
}

// keeps applies TripleO's includes and excludes: with includes, an image
// is kept if one matches and excludes are ignored; without, it is kept if
// no exclude matches.
func (e PrepareEntry) keeps(name string) bool {
	if len(e.Includes) > 0 {
		return slices.ContainsFunc(e.Includes, func(re *regexp.Regexp) bool { return re.MatchString(name) })
	}
	return !slices.ContainsFunc(e.Excludes, func(re *regexp.Regexp) bool { return re.MatchString(name) })
}

// undercloudRegistry is where TripleO's push_destination: true points:
// LocalContainerRegistry:8787, else <short hostname>.ctlplane:8787 if that
// name resolves, else localhost:8787.
func undercloudRegistry(pd map[string]any) string {
	if ip, ok := pd["LocalContainerRegistry"].(string); ok && ip != "" {
		return ip + ":8787"
	}
	if h, err := os.Hostname(); err == nil {
		name := strings.SplitN(h, ".", 2)[0] + ".ctlplane"
		if addrs, err := net.LookupHost(name); err == nil && len(addrs) > 0 {
			return name + ":8787"
		}
	}
	return "localhost:8787"
}

// isLoopbackHost reports whether a registry host[:port] is localhost or a
// loopback address: kubepool always speaks plain HTTP to those, so they
// are what TripleO calls insecure registries.
func isLoopbackHost(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// WritePreparedEnv writes the Heat environment of a [Prepared] as YAML.
func WritePreparedEnv(w io.Writer, p *Prepared) error {
	return encodeYAML(w, map[string]any{"parameter_defaults": p.Env})
}
