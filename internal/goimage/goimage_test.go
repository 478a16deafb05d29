package goimage

import (
	"archive/tar"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func buildHello(t *testing.T, o Options) v1.Image {
	t.Helper()
	o.Package = "./testdata/hello"
	o.Dir = "."
	img, err := Build(t.Context(), o)
	if err != nil {
		t.Fatalf("Build(%s) = %v", o.Package, err)
	}
	return img
}

// TestBuild checks the image is laid out as ko lays it out, is reproducible,
// and that its binary runs.
func TestBuild(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"org.opencontainers.image.title": "hello"}
	img := buildHello(t, Options{CACerts: ca, Labels: labels})

	mt, err := img.MediaType()
	if err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("MediaType() = %v, %v, want %v", mt, err, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Entrypoint: []string{"/ko-app/hello"},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin:/ko-app", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		User:       "65532:65532",
		WorkingDir: "/",
		Labels:     labels,
	}
	if diff := cmp.Diff(want, cf.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if cf.OS != "linux" || cf.Created.Unix() != 0 {
		t.Errorf("config os %q created %v, want linux at the epoch", cf.OS, cf.Created)
	}

	files := imageFiles(t, img)
	for p, mode := range map[string]int64{
		"ko-app/hello":                      0o755,
		"etc/passwd":                        0o644,
		"etc/ssl/certs/ca-certificates.crt": 0o644,
		"tmp/":                              0o1777,
	} {
		h, ok := files[p]
		if !ok {
			t.Errorf("image has no %s", p)
			continue
		}
		if h.Mode != mode || h.ModTime.Unix() != 0 {
			t.Errorf("%s: mode %o, mtime %v; want %o at the epoch", p, h.Mode, h.ModTime, mode)
		}
	}
	if h := files["home/nonroot/"]; h == nil || h.Uid != NonRootUID {
		t.Errorf("home/nonroot/ = %+v, want a directory owned by %d", h, NonRootUID)
	}

	// The same source gives the same digest.
	d1, _ := img.Digest()
	d2, _ := buildHello(t, Options{CACerts: ca, Labels: labels}).Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same source: digests %v and %v, want equal", d1, d2)
	}

	// The binary in the image is static and runs here.
	bin := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(bin, fileData(t, img, "ko-app/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin).Output()
	if err != nil || !strings.HasPrefix(string(out), "hello from") {
		t.Errorf("running the image's binary = %q, %v, want hello", out, err)
	}
}

func TestBuildWithoutCACerts(t *testing.T) {
	img := buildHello(t, Options{})
	if _, ok := imageFiles(t, img)["etc/ssl/certs/ca-certificates.crt"]; ok {
		t.Errorf("image without CACerts has a CA bundle")
	}
	cf, _ := img.ConfigFile()
	if got := strings.Join(cf.Config.Env, " "); strings.Contains(got, "SSL_CERT_FILE") {
		t.Errorf("Env = %q, want no SSL_CERT_FILE", got)
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(t.Context(), Options{Dir: ".", Package: "./testdata/no-such-package"}); err == nil || !strings.Contains(err.Error(), "go build") {
		t.Errorf("Build(missing package) = %v, want a go build error", err)
	}
	if _, err := Build(t.Context(), Options{Dir: ".", Package: "./testdata/hello", CACerts: "testdata/hello/main.go"}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("Build(CACerts not PEM) = %v, want an error naming it", err)
	}
	// The host's own go binary is not necessarily static; a dynamically
	// linked C program certainly is not.
	if sh, err := exec.LookPath("sh"); err == nil {
		if err := checkStatic(sh); !errors.Is(err, ErrNotStatic) {
			t.Errorf("checkStatic(%s) = %v, want ErrNotStatic", sh, err)
		}
	}
}

// TestPush pushes to an in-process registry, pulls back by digest, and
// pushes again without error.
func TestPush(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	img := buildHello(t, Options{})
	want, _ := img.Digest()

	ref, err := Push(t.Context(), host+"/test/hello:dev", img)
	if err != nil {
		t.Fatalf("Push = %v", err)
	}
	if ref.DigestStr() != want.String() || ref.Context().String() != host+"/test/hello" {
		t.Errorf("Push = %v, want %s/test/hello@%v", ref, host, want)
	}
	got, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pulling %v: %v", ref, err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled digest %v, want %v", d, want)
	}
	if again, err := Push(t.Context(), host+"/test/hello:dev", img); err != nil || again != ref {
		t.Errorf("Push again = %v, %v, want %v", again, err, ref)
	}
	if _, err := Push(t.Context(), "Not A Reference", img); err == nil {
		t.Errorf("Push(bad reference) = nil error")
	}
}

// imageFiles lists the tar headers of all layers, keyed by path.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	walk(t, img, func(h *tar.Header, _ io.Reader) { out[h.Name] = h })
	return out
}

func fileData(t *testing.T, img v1.Image, p string) []byte {
	t.Helper()
	var data []byte
	walk(t, img, func(h *tar.Header, r io.Reader) {
		if h.Name == p {
			data, _ = io.ReadAll(r)
		}
	})
	return data
}

func walk(t *testing.T, img v1.Image, f func(*tar.Header, io.Reader)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			f(h, tr)
		}
		rc.Close()
	}
}
