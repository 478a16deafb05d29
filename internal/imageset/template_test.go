package imageset

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (go test -run %s -update): %v", t.Name(), err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestLoadGolden(t *testing.T) {
	tests := []struct {
		name       string
		src        Source
		wantImages int
		wantParams []string // some of the Heat parameters the env file must have
	}{
		{
			name:       "2017-defaults",
			src:        Source{Template: "testdata/overcloud_containers.2017.yaml.j2"},
			wantImages: 75,
			wantParams: nil, // the 2017 template has no params: TripleO writes none
		},
		{
			name:       "2017-set",
			src:        Source{Template: "testdata/overcloud_containers.2017.yaml.j2", Set: Params{"namespace": "192.0.2.1:8787/tripleo", "tag": "0123456789abcdef0123456789abcdef01234567_abcd1234"}},
			wantImages: 75,
			wantParams: nil,
		},
		{
			name:       "2019",
			src:        Source{Template: "testdata/overcloud_containers.2019.yaml.j2", ParamsFile: "testdata/params-2019.yaml"},
			wantImages: 133, // stein: no NeutronMechanismDrivers means ovn, whatever the set says
			wantParams: []string{"DockerNovaApiImage", "DockerNeutronApiImage", "DockerCephDaemonImage", "DockerOpenShiftAnsibleImage", "DockerOvnControllerImage"},
		},
		{
			name:       "2019-ovn",
			src:        Source{Template: "testdata/overcloud_containers.2019.yaml.j2", ParamsFile: "testdata/params-2019.yaml", Set: Params{"neutron_driver": "ovn"}},
			wantImages: 133,
			wantParams: []string{"DockerOvnControllerImage", "DockerOvnMetadataImage"},
		},
		{
			name:       "2019-prepare",
			src:        Source{Template: "testdata/overcloud_containers.2019.yaml.j2", ParamsFile: "testdata/params-2019.yaml", PrepareFile: "testdata/prepare-env.yaml"},
			wantImages: 119,
			wantParams: []string{"DockerCephDaemonImage", "DockerOvnControllerImage"},
		},
		{
			name:       "include",
			src:        Source{Template: "testdata/include/set.yaml.j2", Set: Params{"tag": "abc", "neutron_driver": "odl"}},
			wantImages: 5,
			wantParams: []string{"ContainerNovaApiImage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images, err := tt.src.Load()
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if len(images) != tt.wantImages {
				t.Errorf("Load() gave %d images, want %d", len(images), tt.wantImages)
			}
			env := EnvFile(images)["parameter_defaults"]
			for _, p := range tt.wantParams {
				if env[p] == "" {
					t.Errorf("EnvFile() has no %s", p)
				}
			}
			var out, envOut, names bytes.Buffer
			if err := WriteImages(&out, images); err != nil {
				t.Fatal(err)
			}
			if err := WriteEnvFile(&envOut, images); err != nil {
				t.Fatal(err)
			}
			for _, img := range images {
				names.WriteString(img.Name() + "\n")
			}
			golden(t, tt.name+".images.yaml", out.Bytes())
			golden(t, tt.name+".env.yaml", envOut.Bytes())
			golden(t, tt.name+".names.txt", names.Bytes())
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unclosed := write("unclosed.j2", "container_images_template:\n- imagename: a/b:c\n{% if x %}\n")
	badFilter := write("filter.j2", "container_images_template:\n- imagename: \"a/b:{{ tag | nosuchfilter }}\"\n")
	badKey := write("key.j2", "container_images_template:\n- imagename: a/b:c\n  imgsource: kolla\n")
	badPrepare := write("prepare.yaml", "parameter_defaults:\n  ContainerImagePrepare:\n  - set:\n      tag: x\n    tag_form_label: rdo_version\n")
	badParams := write("params.yaml", "namespace: a\ntag:\n  - x\n")
	tests := []struct {
		name    string
		src     Source
		wantErr error
		want    []string // substrings of the message
	}{
		{"missing", Source{Template: "testdata/overcloud_containers.2019.yaml.j2", Defaults: "pike", Set: Params{"tag": "x"}}, ErrMissingParameter, []string{`"namespace"`, "overcloud_containers.2019.yaml.j2:3", `"ceph_tag"`}},
		{"unknown", Source{Template: "testdata/overcloud_containers.2017.yaml.j2", Set: Params{"tga": "x"}}, ErrUnknownParameter, []string{`"tga"`, "--set", "name_prefix, name_suffix, namespace, tag"}},
		{"unclosed", Source{Template: unclosed}, nil, []string{"unclosed.j2", "Line: 3"}},
		{"filter", Source{Template: badFilter, Set: Params{"tag": "x"}}, nil, []string{"filter.j2", "line 2", "nosuchfilter"}},
		{"output key", Source{Template: badKey}, nil, []string{"key.j2", "line 3", "imgsource"}},
		{"prepare key", Source{Template: "testdata/overcloud_containers.2017.yaml.j2", PrepareFile: badPrepare}, nil, []string{"prepare.yaml line 5", `"tag_form_label"`}},
		{"params value", Source{Template: "testdata/overcloud_containers.2017.yaml.j2", ParamsFile: badParams}, nil, []string{"params.yaml line 3", `"tag"`}},
		{"no file", Source{Template: filepath.Join(dir, "nope.j2")}, os.ErrNotExist, []string{"nope.j2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.src.Load()
			if err == nil {
				t.Fatalf("Load() = nil error, want one")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Load() = %v, want errors.Is %v", err, tt.wantErr)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load() = %q, want it to mention %q", err, s)
				}
			}
		})
	}
}

func TestFilter(t *testing.T) {
	images, err := Source{Template: "testdata/overcloud_containers.2019.yaml.j2", ParamsFile: "testdata/params-2019.yaml"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                       string
		include, exclude, services []string
		want                       []string
	}{
		{"service short", nil, nil, []string{"NovaConductor"}, []string{"nova-api", "nova-conductor"}},
		{"service full", nil, nil, []string{"OS::TripleO::Services::Keystone"}, []string{"keystone"}},
		{"include exclude", []string{"nova-"}, []string{"compute", "nova-api$", "placement"}, nil, nil},
		{"include regex", []string{"/centos-binary-(glance-api|keystone):"}, nil, nil, []string{"glance-api", "keystone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFilter(tt.include, tt.exclude, tt.services)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, img := range f.Apply(images) {
				got = append(got, img.Name())
			}
			if diff := cmp.Diff(tt.want, got); tt.want != nil && diff != "" {
				t.Errorf("Apply() names mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
