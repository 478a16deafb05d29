package config

import (
	"strings"
	"testing"
)

func TestGitSidecar(t *testing.T) {
	const head = `
zookeeper-servers: [{host: zk.example.org}]
labels: [{name: l}]
providers:
  - name: p
    driver: kubernetes
    context: c
    pools:
      - name: main
        labels:
`
	good := head + `          - name: l
            type: pod
            image: example.org/machine:1
            git-sidecar: {image: "example.org/git:2", path: /home/zuul/src, size-limit: 10Gi}
`
	cfg, err := Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	gs := cfg.Providers[0].Pools[0].Labels[0].GitSidecar
	if gs == nil || gs.Image != "example.org/git:2" || gs.Path != "/home/zuul/src" || gs.SizeLimit.String() != "10Gi" {
		t.Fatalf("GitSidecar = %+v, want image example.org/git:2, path /home/zuul/src, size-limit 10Gi", gs)
	}

	for _, tt := range []struct {
		name, label, want string
	}{
		{"relative path", "type: pod\n            image: example.org/m:1\n            git-sidecar: {image: example.org/git:2, path: src}", `git-sidecar.path: "src": want an absolute path`},
		{"no image", "type: pod\n            image: example.org/m:1\n            git-sidecar: {path: /src}", "image"},
		{"namespace label", "type: namespace\n            git-sidecar: {image: example.org/git:2, path: /src}", "only pod labels"},
		{"unknown key", "type: pod\n            image: example.org/m:1\n            git-sidecar: {image: example.org/git:2, path: /src, mount: /x}", "mount"},
		{"label named git", "name: Git\n            type: pod\n            image: example.org/m:1\n            git-sidecar: {image: example.org/git:2, path: /src}", `label "Git" names its pod's container "git"`},
		{"container named git", "type: pod\n            spec: {containers: [{name: git, image: example.org/m:1}]}\n            git-sidecar: {image: example.org/git:2, path: /src}", `container named "git"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			label := "- name: l\n            " + tt.label
			if strings.HasPrefix(tt.label, "name: ") {
				label = "- " + tt.label
			}
			_, err := Parse("bad.yaml", []byte(head+"          "+label+"\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bad.yaml:") {
				t.Fatalf("Parse(%s) = %v, want an error naming the file and saying %q", tt.name, err, tt.want)
			}
		})
	}
}
