package images

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/cli/progress"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

// NewCmd is `kubepool images`: container image sets (TripleO's
// overcloud_containers templates): list, render, discover, promote.
func NewCmd(o *cliutil.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Container image sets: list, render, discover and promote templates' images",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newImagesListCmd(o),
		newImagesRenderCmd(o),
		newImagesDiscoverCmd(o),
		newImagesPromoteCmd(o),
		newImagesDefaultsCmd(o),
		newImagesPrepareCmd(o),
	)
	return cmd
}

// imageSetOptions say which image set a command works on.
type imageSetOptions struct {
	Template    string
	Set         []string
	ParamsFile  string
	PrepareFile string
	EnvFiles    []string
	Defaults    string
	Include     []string
	Exclude     []string
	Services    []string
}

func (s *imageSetOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&s.Template, "template", "t", "", "image-set template (Jinja2, TripleO overcloud_containers.yaml.j2 format)")
	f.StringArrayVar(&s.Set, "set", nil, "template parameter key=value (repeatable; wins over files)")
	f.StringVar(&s.ParamsFile, "params", "", "YAML file of template parameters")
	f.StringVar(&s.PrepareFile, "prepare-env", "", "Heat environment file with ContainerImagePrepare (set, includes, excludes, tag_from_label)")
	f.StringArrayVarP(&s.EnvFiles, "environment-file", "e", nil, "Heat environment file (ContainerImagePrepare, NeutronMechanismDrivers, ...); repeatable, merged in order")
	f.StringVar(&s.Defaults, "defaults", "", "TripleO defaults: a release (pike ... zed, master) or a container_image_prepare_defaults.yaml (default: the file beside the template, else the template's release)")
	f.StringArrayVar(&s.Include, "include", nil, "keep only images whose name matches this regular expression (repeatable)")
	f.StringArrayVar(&s.Exclude, "exclude", nil, "drop images whose name matches this regular expression (repeatable)")
	f.StringSliceVar(&s.Services, "service", nil, "keep only images used by these services (NovaApi or OS::TripleO::Services::NovaApi)")
}

func (s *imageSetOptions) Validate() error {
	if s.Template == "" {
		return fmt.Errorf("--template is required")
	}
	return nil
}

// loadLogged renders and filters the image set; warnings go to o's log.
func (s *imageSetOptions) loadLogged(o *cliutil.Options) ([]imageset.Image, error) {
	p, err := s.prepare(o)
	if err != nil {
		return nil, err
	}
	return p.Images, nil
}

// prepare does what TripleO's container image prepare does without a
// registry; warnings go to the log.
func (s *imageSetOptions) prepare(o *cliutil.Options) (*imageset.Prepared, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	set, err := imageset.ParseSet(s.Set)
	if err != nil {
		return nil, err
	}
	filter, err := imageset.NewFilter(s.Include, s.Exclude, s.Services)
	if err != nil {
		return nil, err
	}
	p, err := imageset.Source{
		Template: s.Template, Defaults: s.Defaults, ParamsFile: s.ParamsFile,
		EnvFiles: s.EnvFiles, PrepareFile: s.PrepareFile, Set: set, Filter: filter,
	}.Prepare()
	if err != nil {
		return nil, err
	}
	log := slog.Default()
	if o != nil {
		log = o.Log()
	}
	for _, w := range p.Warnings {
		log.Warn(w)
	}
	return p, nil
}

// imagesRegistryOptions are the flags for registry access.
type imagesRegistryOptions struct {
	CAFile   string
	Insecure bool
	Jobs     int
	RPS      float64
	Retries  int
	Creds    string
	AuthFile string
}

func (r *imagesRegistryOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.CAFile, "ca-file", "", "PEM file of CA certificates to trust for registries")
	f.BoolVar(&r.Insecure, "insecure", false, "allow plain HTTP and unverified TLS for every registry (localhost and loopback always get HTTP)")
	f.IntVar(&r.Jobs, "jobs", 8, "concurrent registry requests")
	f.Float64Var(&r.RPS, "rps", 0, "requests per second per registry (0: no limit)")
	f.IntVar(&r.Retries, "retries", 4, "retries of a request failing with 408, 429 or 5xx, with backoff")
	f.StringVar(&r.Creds, "creds", "", "USER:PASSWORD for the registries (default: --authfile, $REGISTRY_AUTH_FILE, then docker's config.json and credential helpers)")
	f.StringVar(&r.AuthFile, "authfile", "", "read registry credentials from this auth.json / config.json (as skopeo and podman write them)")
}

func (r *imagesRegistryOptions) Validate() error {
	if r.Jobs < 1 {
		return fmt.Errorf("--jobs %d: want at least 1", r.Jobs)
	}
	if r.RPS < 0 {
		return fmt.Errorf("--rps %v: want 0 or more", r.RPS)
	}
	if r.Retries < 0 {
		return fmt.Errorf("--retries %d: want 0 or more", r.Retries)
	}
	return nil
}

// client returns a registry client; it tells line (nil: nobody) how far
// each phase is, and wrap, if not nil, wraps its HTTP transport (a
// [imageset.BackoffMeter]).
func (r *imagesRegistryOptions) client(o *cliutil.Options, line *progress.Line, wrap func(http.RoundTripper) http.RoundTripper) (*imageset.Client, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	log := o.Log()
	retries := r.Retries
	if retries == 0 {
		retries = -1 // the library's 0 means its default
	}
	return imageset.NewClient(imageset.RegistryOptions{
		CAFile: r.CAFile, Insecure: r.Insecure, Jobs: r.Jobs,
		RequestsPerSecond: r.RPS, Retries: retries, Logger: log,
		Creds: r.Creds, AuthFile: r.AuthFile, OnProgress: imagesProgress(line), WrapTransport: wrap,
	})
}

// imagesProgress shows a registry operation's progress on line.
func imagesProgress(line *progress.Line) func(imageset.Progress) {
	if line == nil {
		return nil
	}
	return func(p imageset.Progress) {
		text := fmt.Sprintf("%s: %d of %d images", p.Phase, p.Done, p.Total)
		if p.Done == p.Total {
			line.Set(text)
		} else {
			line.Tick(text)
		}
	}
}
