package imageset

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeEnv writes a Heat environment file for a test.
func writeEnv(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func prepare(t *testing.T, s Source) *Prepared {
	t.Helper()
	p, err := s.Prepare()
	if err != nil {
		t.Fatalf("Prepare() = %v", err)
	}
	return p
}

func imageNames(p *Prepared) []string {
	var out []string
	for _, img := range p.Images {
		out = append(out, img.ImageName)
	}
	return out
}

// TestEras renders a minimal template of each release's shape with that
// release's defaults, once per neutron_driver in a ContainerImagePrepare
// entry (ovn, odl, openvswitch, not given), and checks the env file's
// parameter → reference map against what tripleo-common's code gives.
//
// How the expected values are derived (tripleo-common, each release's last
// state):
//   - namespace, name_prefix, tag and ceph_*: the release's defaults
//     (kolla_builder.py CONTAINER_IMAGES_DEFAULTS for queens,
//     container_image_prepare_defaults.yaml from rocky on; pike's template
//     sets its own, as testdata/eras/pike.yaml.j2 does). The entry's set
//     does not give them, so container_images_template_inputs fills them
//     in with setdefault.
//   - the neutron image: set_neutron_driver with no NeutronMechanismDrivers.
//     pike, queens: not called, the set's value (or the queens default
//     None) goes to the template; rocky: returns without touching the set;
//     stein: sets ovn whatever the set says; train on: keeps a true set
//     value, else sets ovn. The template then takes its odl / ovn / other
//     branch (ussuri's and wallaby's have no odl branch).
//   - only entries with params get a parameter (heat-all has none), named
//     as the template names them: Docker*Image before train.
func TestEras(t *testing.T) {
	type era struct {
		release, template string
		ns, prefix        string
		ceph              string
		extra             map[string]string // parameters every driver gets
		// neutron gives, per driver asked ("" = not given), the image name
		// the template's neutron branch renders.
		neutron map[string]string
		param   string // "Docker" or "Container"
		ovnCtl  bool   // the template has an ovn-controller entry
	}
	odlBranches := func(ovn, odl, ovs, unset string) map[string]string {
		return map[string]string{"ovn": ovn, "odl": odl, "openvswitch": ovs, "": unset}
	}
	const (
		plain = "neutron-server"
		ovn   = "neutron-server-ovn"
		odl   = "neutron-server-opendaylight"
	)
	eras := []era{
		{release: "pike", template: "testdata/eras/pike.yaml.j2", ns: "docker.io/tripleopike", prefix: "centos-binary-",
			ceph: "docker.io/ceph/daemon:v3.0.3-stable-3.0-jewel-centos-7-x86_64", param: "Docker",
			// the set's value goes to the template as is; the template has an odl branch, else plain
			neutron: odlBranches(ovn, odl, plain, plain)},
		{release: "queens", template: "testdata/eras/queens.yaml.j2", ns: "docker.io/tripleoqueens", prefix: "centos-binary-",
			ceph: "quay.ceph.io/ceph-ci/daemon:v3.2.14-stable-3.2-luminous-centos-7-x86_64", param: "Docker",
			neutron: odlBranches(ovn, odl, plain, plain)}, // default neutron_driver None
		{release: "rocky", template: "testdata/eras/rocky.yaml.j2", ns: "docker.io/tripleorocky", prefix: "centos-binary-",
			ceph: "quay.ceph.io/ceph-ci/daemon:v3.2.14-stable-3.2-luminous-centos-7-x86_64", param: "Docker",
			extra:   map[string]string{"DockerOpenShiftNodeImage": "docker.io/openshift/origin-node:v3.11.0"},
			neutron: odlBranches(ovn, odl, plain, plain)}, // default neutron_driver null
		{release: "stein", template: "testdata/eras/stein.yaml.j2", ns: "docker.io/tripleostein", prefix: "centos-binary-",
			ceph: "quay.ceph.io/ceph-ci/daemon:v4.0.13-stable-4.0-nautilus-centos-7-x86_64", param: "Docker",
			extra:   map[string]string{"DockerOpenShiftNodeImage": "docker.io/openshift/origin-node:v3.11.0"},
			neutron: odlBranches(ovn, ovn, ovn, ovn)}, // forced ovn
		{release: "train", template: "testdata/eras/train/containers.yaml.j2", ns: "quay.io/tripleotrain", prefix: "centos-binary-",
			ceph: "quay.io/ceph/daemon:v4.0.19-stable-4.0-nautilus-centos-7-x86_64", param: "Container",
			// rhel_containers: false in the defaults keeps cron
			extra:   map[string]string{"ContainerCrondImage": "quay.io/tripleotrain/centos-binary-cron:current-tripleo"},
			neutron: odlBranches(ovn, odl, plain, ovn)},
		{release: "ussuri", template: "testdata/eras/ussuri.yaml.j2", ns: "quay.io/tripleoussuri", prefix: "centos-binary-",
			ceph: "quay.ceph.io/ceph-ci/daemon:v4.0.19-stable-4.0-nautilus-centos-7-x86_64", param: "Container", ovnCtl: true,
			neutron: odlBranches(plain, plain, plain, plain)},
		{release: "wallaby", template: "testdata/eras/wallaby/containers.yaml.j2", ns: "quay.io/tripleowallaby", prefix: "openstack-",
			ceph: "quay.rdoproject.org/tripleowallabycentos9/daemon:current-ceph", param: "Container", ovnCtl: true,
			neutron: odlBranches(plain, plain, plain, plain)},
	}
	for _, e := range eras {
		for _, driver := range []string{"ovn", "odl", "openvswitch", ""} {
			name := e.release + "/" + driver
			if driver == "" {
				name = e.release + "/unset"
			}
			t.Run(name, func(t *testing.T) {
				set := "{}"
				if driver != "" {
					set = "{neutron_driver: " + driver + "}"
				}
				env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: "+set+"\n")
				p := prepare(t, Source{Template: e.template, Defaults: e.release, EnvFiles: []string{env}})
				ref := func(image string) string { return e.ns + "/" + e.prefix + image + ":current-tripleo" }
				want := map[string]any{
					e.param + "NovaApiImage":    ref("nova-api"),
					e.param + "NeutronApiImage": ref(e.neutron[driver]),
					e.param + "CephDaemonImage": e.ceph,
				}
				// ussuri's and wallaby's templates: ovn-controller only for
				// ovn, and the chosen driver is what set_neutron_driver says:
				// the set's true value, else ovn.
				if e.ovnCtl {
					chosen := driver
					if chosen == "" {
						chosen = "ovn"
					}
					if chosen == "ovn" {
						want[e.param+"OvnControllerImage"] = ref("ovn-controller")
					}
				}
				for k, v := range e.extra {
					want[k] = v
				}
				if diff := cmp.Diff(want, p.Env); diff != "" {
					t.Errorf("Prepare().Env mismatch (-want +got):\n%s", diff)
				}
				if got := GuessRelease(mustTemplate(t, e.template)); got != e.release && !(e.release == "rocky" && got == "stein") {
					t.Errorf("GuessRelease(%s) = %s, want %s", e.template, got, e.release)
				}
			})
		}
	}
}

func mustTemplate(t *testing.T, path string) *Template {
	t.Helper()
	tpl, err := LoadTemplate(path)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestNeutronMechanismDrivers: the environment's NeutronMechanismDrivers,
// read by set_neutron_driver when the set gives no (true) driver.
func TestNeutronMechanismDrivers(t *testing.T) {
	tests := []struct {
		release, template, nmd, want string
	}{
		// rocky and stein: opendaylight_v2 → odl, ovn → ovn; stein: else other.
		{"rocky", "testdata/eras/rocky.yaml.j2", "[opendaylight_v2]", "neutron-server-opendaylight"},
		{"stein", "testdata/eras/stein.yaml.j2", "[openvswitch]", "neutron-server"},
		{"train", "testdata/eras/train/containers.yaml.j2", "[opendaylight_v2]", "neutron-server-opendaylight"},
		// ussuri on: odl is gone, anything but ovn is other.
		{"ussuri", "testdata/eras/ussuri.yaml.j2", "[opendaylight_v2]", "neutron-server"},
		// a comma string: Python's "in" finds ovn in it.
		{"wallaby", "testdata/eras/wallaby/containers.yaml.j2", "ovn,sriovnicswitch", "ovn-controller"},
	}
	for _, tt := range tests {
		t.Run(tt.release, func(t *testing.T) {
			env := writeEnv(t, "parameter_defaults:\n  NeutronMechanismDrivers: "+tt.nmd+"\n  ContainerImagePrepare:\n  - set: {tag: x}\n")
			p := prepare(t, Source{Template: tt.template, Defaults: tt.release, EnvFiles: []string{env}})
			if !slices.ContainsFunc(imageNames(p), func(n string) bool {
				return strings.Contains(n, "/centos-binary-"+tt.want+":") || strings.Contains(n, "/openstack-"+tt.want+":")
			}) {
				t.Errorf("Prepare() images = %v, want %s", imageNames(p), tt.want)
			}
		})
	}
}

// TestIssueCases: each way kubepool used to differ from TripleO.
func TestIssueCases(t *testing.T) {
	const train = "testdata/tripleo-train/tripleo_containers.yaml.j2"
	const master = "testdata/tripleo-master/tripleo_containers.yaml.j2"

	t.Run("guard on an undefined name is false", func(t *testing.T) {
		p := prepare(t, Source{Template: train})
		for _, n := range imageNames(p) {
			if strings.Contains(n, "ceph3") || strings.Contains(n, "stein") {
				t.Errorf("image %s rendered although its guard's name is undefined", n)
			}
		}
		p = prepare(t, Source{Template: train, Set: Params{"ceph3_namespace": "quay.io/ceph", "ceph3_image": "daemon", "ceph3_tag": "v3"}})
		if !slices.Contains(imageNames(p), "quay.io/ceph/daemon:v3") {
			t.Errorf("with ceph3_* given, images = %v, want quay.io/ceph/daemon:v3", imageNames(p))
		}
	})

	t.Run("an undefined name that is printed is an error naming file and line", func(t *testing.T) {
		_, err := Source{Template: train, Set: Params{"ceph3_namespace": "quay.io/ceph"}}.Prepare()
		if err == nil || !strings.Contains(err.Error(), `"ceph3_image" (printed at testdata/tripleo-train/tripleo_containers.yaml.j2:`) {
			t.Errorf("Prepare() = %v, want ceph3_image named with its file and line", err)
		}
	})

	t.Run("README example on every sample", func(t *testing.T) {
		for _, tpl := range []string{"testdata/overcloud_containers.2017.yaml.j2", "testdata/overcloud_containers.2019.yaml.j2", train, master} {
			p := prepare(t, Source{Template: tpl, Set: Params{"tag": "current-tripleo"}})
			if len(p.Images) < 70 {
				t.Errorf("%s: %d images, want the whole set", tpl, len(p.Images))
			}
		}
		// The defaults beside the template are used: train's namespace.
		p := prepare(t, Source{Template: train})
		if got := p.Env["ContainerNovaApiImage"]; got != "quay.io/tripleotrain/centos-binary-nova-api:current-tripleo" {
			t.Errorf("ContainerNovaApiImage = %v, want train's default", got)
		}
	})

	t.Run("an entry setting namespace and tag gets the rest from the defaults", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set:\n      namespace: 192.0.2.1:8787/tripleo\n      tag: abc\n")
		p := prepare(t, Source{Template: master, EnvFiles: []string{env}})
		if got := p.Env["ContainerNovaApiImage"]; got != "192.0.2.1:8787/tripleo/openstack-nova-api:abc" {
			t.Errorf("ContainerNovaApiImage = %v", got)
		}
		if got := p.Env["ContainerCephDaemonImage"]; got != "quay.rdoproject.org/tripleomastercentos9/daemon:current-ceph" {
			t.Errorf("ContainerCephDaemonImage = %v, want the default ceph image", got)
		}
	})

	t.Run("name_prefix and name_suffix are hyphenated", func(t *testing.T) {
		p := prepare(t, Source{Template: train, Set: Params{"name_prefix": "openstack", "name_suffix": "x"}})
		if got := p.Env["ContainerAodhApiImage"]; got != "quay.io/tripleotrain/openstack-aodh-api-x:current-tripleo" {
			t.Errorf("ContainerAodhApiImage = %v, want openstack-aodh-api-x", got)
		}
	})

	t.Run("includes make excludes ignored", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - includes: [nova-api, nova-conductor]\n    excludes: [nova-api]\n")
		p := prepare(t, Source{Template: train, EnvFiles: []string{env}})
		want := []string{"quay.io/tripleotrain/centos-binary-nova-api:current-tripleo", "quay.io/tripleotrain/centos-binary-nova-conductor:current-tripleo"}
		if diff := cmp.Diff(want, imageNames(p)); diff != "" {
			t.Errorf("images mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("neutron_driver null means ovn from ussuri on", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {neutron_driver: null}\n")
		p := prepare(t, Source{Template: master, EnvFiles: []string{env}})
		if p.Env["ContainerOvnControllerImage"] == nil {
			t.Errorf("no ContainerOvnControllerImage; env = %v", p.Env)
		}
	})

	t.Run("--set values are YAML", func(t *testing.T) {
		set, err := ParseSet([]string{"ceph_images=false", "name_suffix=", "tag=01"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Params{"ceph_images": false, "name_suffix": "", "tag": 1}, set); diff != "" {
			t.Errorf("ParseSet mismatch (-want +got):\n%s", diff)
		}
		p := prepare(t, Source{Template: master, Set: Params{"ceph_images": false}})
		if p.Env["ContainerCephDaemonImage"] != nil {
			t.Errorf("ceph_images=false still gives ContainerCephDaemonImage = %v", p.Env["ContainerCephDaemonImage"])
		}
	})

	t.Run("every ContainerImagePrepare key TripleO reads is taken; unperformed ones warn", func(t *testing.T) {
		env := writeEnv(t, `parameter_defaults:
  ContainerImagePrepare:
  - set: {tag: abc}
    includes: ['nova-api:']
    push_destination: 127.0.0.1:8787
    pull_source: mirror.example.org:5000
    multi_arch: true
    modify_role: tripleo-modify-image
    modify_vars: {tasks_from: yum_update.yml}
    modify_only_with_source: [tripleo]
    modify_append_tag: -updated
`)
		p := prepare(t, Source{Template: train, EnvFiles: []string{env}})
		want := map[string]any{
			// host replaced by push_destination, tag + modify_append_tag
			// (train's nova-api has image_source tripleo); every param of the entry
			"ContainerNovaApiImage":            "127.0.0.1:8787/tripleotrain/centos-binary-nova-api:abc-updated",
			"ContainerNovaConfigImage":         "127.0.0.1:8787/tripleotrain/centos-binary-nova-api:abc-updated",
			"ContainerNovaMetadataConfigImage": "127.0.0.1:8787/tripleotrain/centos-binary-nova-api:abc-updated",
			"ContainerNovaMetadataImage":       "127.0.0.1:8787/tripleotrain/centos-binary-nova-api:abc-updated",
			"DockerInsecureRegistryAddress":    []string{"127.0.0.1:8787"},
		}
		if diff := cmp.Diff(want, p.Env); diff != "" {
			t.Errorf("Env mismatch (-want +got):\n%s", diff)
		}
		if len(p.Uploads) != 1 || p.Uploads[0].Source != "mirror.example.org:5000/quay.io/tripleotrain/centos-binary-nova-api:abc" {
			t.Errorf("Uploads = %+v, want one from the pull_source", p.Uploads)
		}
		if len(p.Warnings) == 0 || !strings.Contains(p.Warnings[0], `modify_role "tripleo-modify-image": not run`) {
			t.Errorf("Warnings = %q, want modify_role named", p.Warnings)
		}
	})

	t.Run("modify_append_tag defaults to -modified-<timestamp>", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {tag: abc}\n    includes: ['nova-api:']\n    modify_role: r\n")
		now := func() time.Time { return time.Date(2026, 12, 2, 5, 6, 7, 0, time.Local) }
		p := prepare(t, Source{Template: train, EnvFiles: []string{env}, Now: now})
		if got := p.Env["ContainerNovaApiImage"]; got != "quay.io/tripleotrain/centos-binary-nova-api:abc-modified-20261202050607" {
			t.Errorf("ContainerNovaApiImage = %v", got)
		}
	})

	t.Run("--params takes the defaults file's own keys", func(t *testing.T) {
		params := writeEnv(t, "rhel_containers: true\nnamespace: example.org/x\n")
		p := prepare(t, Source{Template: "testdata/overcloud_containers.2019.yaml.j2", ParamsFile: params})
		if len(p.Images) == 0 || !strings.HasPrefix(p.Images[0].ImageName, "example.org/x/") {
			t.Errorf("images = %v", imageNames(p)[:1])
		}
	})

	t.Run("only the template's params are written", func(t *testing.T) {
		p := prepare(t, Source{Template: "testdata/eras/train/containers.yaml.j2", Defaults: "train"})
		for k := range p.Env {
			if strings.Contains(k, "HeatAll") {
				t.Errorf("Env has %s, which no template entry names", k)
			}
		}
		p = prepare(t, Source{Template: "testdata/overcloud_containers.2017.yaml.j2"})
		if len(p.Env) != 0 {
			t.Errorf("2017 template (no params): Env = %v, want empty", p.Env)
		}
	})

	t.Run("tag_from_label is not used when the set gives a tag", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {tag: abc}\n    tag_from_label: rdo_version\n    includes: ['nova-api:']\n  - set: {namespace: example.org/x}\n    tag_from_label: rdo_version\n    includes: ['nova-api:']\n")
		p := prepare(t, Source{Template: train, EnvFiles: []string{env}})
		if len(p.Images) != 2 || p.Images[0].TagFromLabel != "" || p.Images[1].TagFromLabel != "rdo_version" {
			t.Errorf("images = %+v, want tag_from_label only on the entry without a tag", p.Images)
		}
		// stein's last state still used it with a tag.
		p = prepare(t, Source{Template: "testdata/eras/stein.yaml.j2", Defaults: "stein", EnvFiles: []string{env}})
		if p.Images[0].TagFromLabel != "rdo_version" {
			t.Errorf("stein: TagFromLabel = %q, want rdo_version", p.Images[0].TagFromLabel)
		}
	})

	t.Run("several -e are merged in order", func(t *testing.T) {
		first := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {tag: one}\n    includes: ['nova-api:']\n  NeutronMechanismDrivers: [ovn]\n")
		second := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {tag: two}\n    includes: [neutron-server]\n  NeutronMechanismDrivers: [openvswitch]\n")
		p := prepare(t, Source{Template: "testdata/eras/stein.yaml.j2", Defaults: "stein", EnvFiles: []string{first, second}})
		// the second file's ContainerImagePrepare and NeutronMechanismDrivers win: stein → other → plain neutron-server
		want := []string{"docker.io/tripleostein/centos-binary-neutron-server:two"}
		if diff := cmp.Diff(want, imageNames(p)); diff != "" {
			t.Errorf("images mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("a later entry's parameter wins", func(t *testing.T) {
		env := writeEnv(t, "parameter_defaults:\n  ContainerImagePrepare:\n  - set: {tag: one}\n    includes: ['nova-api:']\n  - set: {tag: two}\n    includes: ['nova-api:']\n")
		p := prepare(t, Source{Template: train, EnvFiles: []string{env}})
		if got := p.Env["ContainerNovaApiImage"]; got != "quay.io/tripleotrain/centos-binary-nova-api:two" {
			t.Errorf("ContainerNovaApiImage = %v, want the second entry's", got)
		}
	})
}
