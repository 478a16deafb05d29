package imageset

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Releases are the TripleO releases whose defaults kubepool carries, oldest
// first. "master" is an alias of zed (master's last state before TripleO
// was retired).
var Releases = []string{"pike", "queens", "rocky", "stein", "train", "ussuri", "victoria", "wallaby", "zed"}

//go:embed defaults/releases.yaml
var releasesYAML []byte

// Defaults are what TripleO's `container image prepare` of one release
// fills a template's parameters with, and the rules it follows.
type Defaults struct {
	// Release is the TripleO release ("train").
	Release string
	// Source says where the values come from.
	Source string
	// Set is the default ContainerImagePrepare entry's set
	// (CONTAINER_IMAGES_DEFAULTS before rocky).
	Set Params
	// TagFromLabel is the default entry's tag_from_label ("rdo_version").
	TagFromLabel string
}

// index is the release's place in [Releases].
func (d Defaults) index() int { return slices.Index(Releases, d.Release) }

// atLeast reports whether d's release is release or later.
func (d Defaults) atLeast(release string) bool {
	return d.index() >= slices.Index(Releases, release)
}

// hyphenates: from queens on, kolla_builder puts a "-" after a name_prefix
// and before a name_suffix that lack one; pike's template does it itself.
func (d Defaults) hyphenates() bool { return d.atLeast("queens") }

// tagDisablesLabel: from train on (the fix is on train's last state),
// tag_from_label is not used when the entry's set gives a tag.
func (d Defaults) tagDisablesLabel() bool { return d.atLeast("train") }

// PrepareEntries returns the default ContainerImagePrepare, what TripleO
// uses when an environment has none: one entry whose set is the whole of
// set (the defaults, with kubepool's --params), so its neutron_driver is
// the defaults'. Its tag_from_label is left out: a whole set has a tag,
// so from train on TripleO does not use it either, and for earlier
// releases kubepool leaves the choice to discover's --tag-from-label.
func (d Defaults) PrepareEntries(set Params) []PrepareEntry {
	return []PrepareEntry{{Set: set.Merge(nil), where: "defaults (" + d.Release + ")"}}
}

// neutronDriver returns the neutron_driver TripleO's set_neutron_driver
// puts in an entry's set, given the set's own value (ok false: not given)
// and the environment's NeutronMechanismDrivers (nil: not given). changed
// false means the set is left as it is.
//
//	pike, queens: not chosen; the set's value (or the default) is used.
//	rocky:  NeutronMechanismDrivers with opendaylight_v2 → odl, with ovn → ovn; else left.
//	stein:  as rocky, but no NeutronMechanismDrivers → ovn and neither → other,
//	        whatever the set asks.
//	train:  the set's value if true; else as stein.
//	ussuri on: the set's value if true; else ovn unless NeutronMechanismDrivers
//	        is given without ovn (→ other); odl is gone.
func (d Defaults) neutronDriver(set Params, nmd any) (driver any, changed bool) {
	has := func(name string) bool {
		switch v := nmd.(type) {
		case string:
			return strings.Contains(v, name) // Python's "in" on a string
		case []any:
			for _, e := range v {
				if fmt.Sprint(e) == name {
					return true
				}
			}
		}
		return false
	}
	switch {
	case !d.atLeast("rocky"):
		return nil, false
	case d.Release == "rocky":
		if nmd == nil {
			return nil, false
		}
		if has("opendaylight_v2") {
			return "odl", true
		}
		if has("ovn") {
			return "ovn", true
		}
		return nil, false
	}
	if d.atLeast("train") && truthy(set["neutron_driver"]) {
		return nil, false
	}
	switch {
	case nmd == nil:
		return "ovn", true
	case !d.atLeast("ussuri") && has("opendaylight_v2"):
		return "odl", true
	case has("ovn"):
		return "ovn", true
	}
	return "other", true
}

// truthy is Python's truth of a YAML value.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case int:
		return v != 0
	case float64:
		return v != 0
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

var (
	releaseTable     map[string]Defaults
	releaseTableOnce sync.Once
)

// loadReleases decodes the embedded table once, when first needed (not at
// start-up: every kubepool command would pay for it).
func loadReleases() {
	var raw map[string]struct {
		Source       string `yaml:"source"`
		TagFromLabel string `yaml:"tag_from_label"`
		Set          Params `yaml:"set"`
	}
	if err := yaml.Unmarshal(releasesYAML, &raw); err != nil {
		panic(fmt.Sprintf("imageset: embedded defaults/releases.yaml: %v", err))
	}
	releaseTable = map[string]Defaults{}
	for _, r := range Releases {
		e, ok := raw[r]
		if !ok {
			panic("imageset: embedded defaults/releases.yaml has no " + r)
		}
		if e.Set == nil {
			e.Set = Params{}
		}
		releaseTable[r] = Defaults{Release: r, Source: e.Source, Set: e.Set, TagFromLabel: e.TagFromLabel}
	}
}

// ReleaseDefaults returns the defaults of a release ("train"; "master" is
// zed).
func ReleaseDefaults(release string) (Defaults, error) {
	releaseTableOnce.Do(loadReleases)
	if release == "master" {
		release = "zed"
	}
	d, ok := releaseTable[release]
	if !ok {
		return Defaults{}, fmt.Errorf("unknown TripleO release %q: want one of %s, master", release, strings.Join(Releases, ", "))
	}
	d.Set = d.Set.Merge(nil)
	return d, nil
}

// DefaultsFileName is the file TripleO ships its defaults in, beside the
// template.
const DefaultsFileName = "container_image_prepare_defaults.yaml"

// LoadDefaultsFile reads a container_image_prepare_defaults.yaml: its
// first ContainerImagePrepare entry's set and tag_from_label are the
// defaults (as kolla_builder's init_prepare_defaults reads them). The
// release (for the rules) is the one whose default namespace the file
// has, else release.
func LoadDefaultsFile(path, release string) (Defaults, error) {
	releaseTableOnce.Do(loadReleases)
	env, err := loadEnvFile(path)
	if err != nil {
		return Defaults{}, err
	}
	if len(env.prepare) == 0 {
		return Defaults{}, fmt.Errorf("%s: no ContainerImagePrepare entry to take defaults from", path)
	}
	first := env.prepare[0]
	ns := first.Set.String("namespace")
	for _, r := range Releases {
		if d := releaseTable[r]; d.Set.String("namespace") != "" && d.Set.String("namespace") == ns {
			release = r
		}
	}
	if release == "" {
		release = Releases[len(Releases)-1]
	}
	return Defaults{Release: release, Source: path, Set: first.Set, TagFromLabel: first.TagFromLabel}, nil
}

// PickDefaults chooses the defaults for a template: spec is a release
// name, a defaults file, or "" for automatic: the
// container_image_prepare_defaults.yaml beside the template if there is
// one, else the release the template's variables and parameter names
// belong to (see [GuessRelease]).
func PickDefaults(spec string, tpl *Template) (Defaults, error) {
	guess := GuessRelease(tpl)
	switch {
	case spec != "" && (strings.ContainsRune(spec, os.PathSeparator) || strings.HasSuffix(spec, ".yaml") || strings.HasSuffix(spec, ".yml")):
		return LoadDefaultsFile(spec, guess)
	case spec != "":
		return ReleaseDefaults(spec)
	}
	beside := filepath.Join(filepath.Dir(tpl.Path()), DefaultsFileName)
	if _, err := os.Stat(beside); err == nil {
		return LoadDefaultsFile(beside, guess)
	}
	return ReleaseDefaults(guess)
}

// GuessRelease names the release a template belongs to, from what it
// reads: a template that sets its own namespace is pike's; one that reads
// logging is queens'; Docker*Image parameters with openshift_* variables
// are stein's (rocky's read the same); Container*Image parameters with an
// odl branch or rhel_containers are train's, with ceph_images wallaby's
// (zed's reads the same), otherwise ussuri's (victoria's reads the same).
func GuessRelease(tpl *Template) string {
	reads := func(name string) bool { _, ok := tpl.vars.used[name]; return ok }
	readsPrefix := func(prefix string) bool {
		for n := range tpl.vars.used {
			if strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	switch {
	case tpl.vars.sets["namespace"]:
		return "pike"
	case !tpl.vars.containerParams:
		switch {
		case reads("logging"):
			return "queens"
		case readsPrefix("openshift_"):
			return "stein"
		}
		return "queens"
	case tpl.vars.odl || reads("rhel_containers"):
		return "train"
	case reads("ceph_images"):
		return "wallaby"
	}
	return "ussuri"
}
