package imageset

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"

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
// template lists, or, for templates without params (2017), one derived
// from the short name: "nova-api" -> ContainerNovaApiImage.
func (img Image) heatParams() []string {
	if len(img.Params) > 0 {
		return img.Params
	}
	var b strings.Builder
	b.WriteString("Container")
	for _, part := range strings.FieldsFunc(img.Name(), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		rs := []rune(part)
		rs[0] = unicode.ToUpper(rs[0])
		b.WriteString(string(rs))
	}
	b.WriteString("Image")
	return []string{b.String()}
}

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

// Source says where an image set comes from: a template and its
// parameters. Parameters are laid over each other in this order: the
// parameters file (defaults), a ContainerImagePrepare entry's set, then Set.
type Source struct {
	Template    string
	ParamsFile  string
	PrepareFile string
	Set         Params
}

// Load renders the image set. With a ContainerImagePrepare file, each entry
// renders the template with its own set and filters; the results are
// joined, the first entry winning for an image name rendered twice.
func (s Source) Load() ([]Image, error) {
	if s.Template == "" {
		return nil, fmt.Errorf("no template given")
	}
	tpl, err := LoadTemplate(s.Template)
	if err != nil {
		return nil, err
	}
	fileParams := Params{}
	if s.ParamsFile != "" {
		if fileParams, err = LoadParamsFile(s.ParamsFile); err != nil {
			return nil, err
		}
		if err := tpl.CheckKnown(fileParams); err != nil {
			return nil, fmt.Errorf("%s: %w", s.ParamsFile, err)
		}
	}
	if err := tpl.CheckKnown(s.Set); err != nil {
		return nil, fmt.Errorf("--set: %w", err)
	}
	if s.PrepareFile == "" {
		return tpl.Render(fileParams.Merge(s.Set))
	}
	entries, err := LoadPrepareFile(s.PrepareFile)
	if err != nil {
		return nil, err
	}
	var out []Image
	seen := map[string]bool{}
	for i, e := range entries {
		imgs, err := tpl.Render(fileParams.Merge(e.Set).Merge(s.Set))
		if err != nil {
			return nil, fmt.Errorf("%s: ContainerImagePrepare entry %d: %w", s.PrepareFile, i+1, err)
		}
		for _, img := range (Filter{Include: e.Includes, Exclude: e.Excludes}).Apply(imgs) {
			if seen[img.ImageName] {
				continue
			}
			seen[img.ImageName] = true
			if img.TagFromLabel == "" {
				img.TagFromLabel = e.TagFromLabel
			}
			out = append(out, img)
		}
	}
	return out, nil
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
// parameters at its reference: parameter_defaults: {ContainerNovaApiImage: ...}.
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
