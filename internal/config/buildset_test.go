package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const buildsetBase = `zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: ns
providers:
  - name: p
    driver: kubernetes
    pools:
      - name: main
        labels:
          - name: ns
            type: namespace
`

func TestBuildsetRegistry(t *testing.T) {
	c, err := Parse("kubepool.yaml", []byte(buildsetBase+`    buildset-registry:
      url: https://registry.example.com:5000
      public-repositories: [base/*, tools/runner]
      ttl: 30m
      token-key: /etc/kubepool/token.key
      token-certificate: /etc/kubepool/token.crt
      promoters:
        - {username: release-bot, password-file: /etc/kubepool/release-bot.password}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &BuildsetRegistry{
		URL: "https://registry.example.com:5000", RepositoryPrefix: "buildsets/",
		PublicRepositories: []string{"base/*", "tools/runner"}, TTL: 30 * time.Minute,
		TokenKey: "/etc/kubepool/token.key", TokenCertificate: "/etc/kubepool/token.crt",
		Issuer: "kubepool", Service: "registry.example.com:5000", TokenTTL: 5 * time.Minute,
		Promoters: []Promoter{{Username: "release-bot", PasswordFile: "/etc/kubepool/release-bot.password"}},
	}
	if diff := cmp.Diff(want, c.Providers[0].BuildsetRegistry); diff != "" {
		t.Errorf("BuildsetRegistry mismatch (-want +got):\n%s", diff)
	}
	if c2, err := Parse("kubepool.yaml", []byte(buildsetBase)); err != nil || c2.Providers[0].BuildsetRegistry != nil {
		t.Errorf("provider without buildset-registry: %+v, %v; want nil", c2.Providers[0].BuildsetRegistry, err)
	}
}

func TestBuildsetRegistryErrors(t *testing.T) {
	tests := []struct {
		name, section string
		want          []string
	}{
		{"unknown key", "      url: https://r\n      token-key: k\n      token-certificate: c\n      tll: 1h\n",
			[]string{`kubepool.yaml:17: providers[0].buildset-registry.tll: unknown key (did you mean "ttl"?)`}},
		{"missing keys", "      ttl: 1h\n",
			[]string{"providers[0].buildset-registry.url: required key is missing",
				"providers[0].buildset-registry.token-key: required key is missing",
				"providers[0].buildset-registry.token-certificate: required key is missing"}},
		{"bad url", "      url: ftp://r/x\n      token-key: k\n      token-certificate: c\n",
			[]string{`kubepool.yaml:14: providers[0].buildset-registry.url: "ftp://r/x": want http(s)://host[:port] and nothing else`}},
		{"bad prefix", "      url: https://r\n      token-key: k\n      token-certificate: c\n      repository-prefix: Buildsets\n",
			[]string{`kubepool.yaml:17: providers[0].buildset-registry.repository-prefix: repository prefix "Buildsets"`}},
		{"public overlaps prefix", "      url: https://r\n      token-key: k\n      token-certificate: c\n      public-repositories: [ok/*, buildsets/*]\n",
			[]string{`providers[0].buildset-registry.public-repositories[1]: public repository "buildsets/*" overlaps`}},
		{"ttl and token-ttl", "      url: https://r\n      token-key: k\n      token-certificate: c\n      ttl: 0\n      token-ttl: 10s\n",
			[]string{"providers[0].buildset-registry.ttl: must be positive", "providers[0].buildset-registry.token-ttl: 10s is out of range"}},
		{"not a mapping", "      - url\n", []string{"providers[0].buildset-registry"}},
		{"promoters", "      url: https://r\n      token-key: k\n      token-certificate: c\n      promoters:\n" +
			"        - {username: Bad, password-file: /p}\n        - {username: buildset-x, password-file: /p}\n" +
			"        - {username: ok, password-file: rel}\n        - {username: ok, password-file: /p}\n",
			[]string{`providers[0].buildset-registry.promoters[0].username: "Bad": want lower-case`,
				`providers[0].buildset-registry.promoters[1].username: "buildset-x": names starting with "buildset-" are buildsets' own`,
				`providers[0].buildset-registry.promoters[2].password-file: "rel": want an absolute path`,
				`providers[0].buildset-registry.promoters[3].username: "ok" is listed twice`}},
		{"promoter without password", "      url: https://r\n      token-key: k\n      token-certificate: c\n      promoters:\n        - {username: nopw}\n",
			[]string{`kubepool.yaml:18: providers[0].buildset-registry.promoters[0].password-file: required key is missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("kubepool.yaml", []byte(buildsetBase+"    buildset-registry:\n"+tt.section))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildsetShared(t *testing.T) {
	base := strings.Replace(buildsetBase, "  - name: ns\nproviders", "  - name: ns\n  - name: pod\nproviders", 1)
	c, err := Parse("kubepool.yaml", []byte(buildsetBase+"            buildset-shared: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Providers[0].Pools[0].Label("ns"); !l.BuildsetShared {
		t.Errorf("label ns BuildsetShared = false, want true")
	}
	_, err = Parse("kubepool.yaml", []byte(base+"          - {name: pod, type: pod, image: img, buildset-shared: true}\n"))
	if want := "labels[1].buildset-shared: only namespace labels"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Parse(pod label with buildset-shared) = %v, want an error containing %q", err, want)
	}
}
