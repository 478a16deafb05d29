// Package goimage builds OCI images of Go programs the way ko does: no
// Dockerfile and no container runtime, just `go build` of a static binary
// (CGO_ENABLED=0) put in a layer of its own, on a base layer that holds only
// what a static Go program expects of a Linux file system (CA certificates, a
// non-root user, /tmp).
//
// Images are reproducible: file times, owners and the config's creation
// time are fixed, so the same source and toolchain give the same digest, and
// pushing an unchanged image moves no bytes.
//
// The layout follows ko's: the binary is /ko-app/<name>, which is the
// entrypoint; the user is 65532 (distroless's "nonroot"), numeric so that
// Kubernetes can enforce runAsNonRoot.
package goimage

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AppDir is where the binary goes in the image, as in ko.
const AppDir = "/ko-app"

// NonRootUID is the image's user and group: distroless's "nonroot".
const NonRootUID = 65532

// DefaultCACerts is the host's CA bundle on Debian, copied into the base
// layer so that the program can verify TLS servers.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// Options say what to build.
type Options struct {
	// Dir is where `go build` runs (a directory of the main module).
	Dir string
	// Package is the main package to build, as `go build` takes it
	// ("./cmd/kubepool").
	Package string
	// Name is the binary's name in the image; default: the package's last
	// path element.
	Name string
	// GOARCH is the target architecture; default: runtime.GOARCH. GOOS is
	// always linux.
	GOARCH string
	// Ldflags are passed to `go build` after "-s -w".
	Ldflags []string
	// CACerts is a PEM bundle to install at /etc/ssl/certs/ca-certificates.crt;
	// "" installs none. Use DefaultCACerts for the host's.
	CACerts string
	// Labels are the OCI config's labels (org.opencontainers.image.*).
	Labels map[string]string
	// Created is the config's creation time; zero means the Unix epoch,
	// as ko does without SOURCE_DATE_EPOCH.
	Created time.Time
	// Log, if set, is told about the build.
	Log *slog.Logger
}

// ErrNotStatic is matched by the error Build returns when the binary it built
// needs a dynamic loader (cgo crept in), which an image without libc cannot run.
var ErrNotStatic = errors.New("binary is not statically linked")

// Build compiles o.Package and returns its image. Nothing is written outside
// a temporary directory.
func Build(ctx context.Context, o Options) (v1.Image, error) {
	if o.Package == "" {
		return nil, errors.New("building image: no package")
	}
	if o.Name == "" {
		o.Name = path.Base(filepath.ToSlash(o.Package))
	}
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	tmp, err := os.MkdirTemp("", "goimage-")
	if err != nil {
		return nil, fmt.Errorf("building image of %s: %w", o.Package, err)
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, o.Name)
	if err := goBuild(ctx, o, bin); err != nil {
		return nil, err
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("reading the built binary: %w", err)
	}

	base, err := baseLayer(o.CACerts)
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{
		{name: AppDir + "/", mode: 0o755, dir: true},
		{name: AppDir + "/" + o.Name, mode: 0o755, data: binData},
	})
	if err != nil {
		return nil, fmt.Errorf("making the application layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, app)
	if err != nil {
		return nil, fmt.Errorf("adding layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	cf = cf.DeepCopy()
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	cf.Created = v1.Time{Time: created.UTC()}
	cf.OS, cf.Architecture = "linux", o.GOARCH
	cf.Author = "github.com/kubepool/kubepool/internal/goimage"
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:" + AppDir}
	if o.CACerts != "" {
		env = append(env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	cf.Config = v1.Config{
		Entrypoint: []string{AppDir + "/" + o.Name},
		Env:        env,
		User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
		WorkingDir: "/",
		Labels:     o.Labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting image config: %w", err)
	}
	if o.Log != nil {
		d, _ := img.Digest()
		o.Log.Info("built image", "package", o.Package, "binary", AppDir+"/"+o.Name, "size", len(binData), "digest", d)
	}
	return img, nil
}

// goBuild builds a static linux binary of o.Package at out.
func goBuild(ctx context.Context, o Options, out string) error {
	ldflags := strings.Join(append([]string{"-s", "-w"}, o.Ldflags...), " ")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags, "-o", out, o.Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", o.Package, err, strings.TrimSpace(stderr.String()))
	}
	return checkStatic(out)
}

// checkStatic fails unless the ELF file at p has no program interpreter and
// no shared-library dependencies.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("checking %s: %w (it has a program interpreter)", p, ErrNotStatic)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("checking %s: %w (it needs %v)", p, ErrNotStatic, libs)
	}
	return nil
}

// baseLayer holds what a static Go program expects of a Linux root file
// system: /etc/passwd and /etc/group naming root and nonroot, a home for
// nonroot, a world-writable /tmp, and optionally a CA bundle.
func baseLayer(caCerts string) (v1.Layer, error) {
	uid := NonRootUID
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)},
		{name: "etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", uid)},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: uid},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
	if caCerts != "" {
		pem, err := os.ReadFile(caCerts)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificates: %w", err)
		}
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, fmt.Errorf("reading CA certificates: %s holds no PEM certificate", caCerts)
		}
		files = append(files,
			file{name: "etc/ssl/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: pem},
		)
	}
	l, err := layer(files)
	if err != nil {
		return nil, fmt.Errorf("making the base layer: %w", err)
	}
	return l, nil
}

type file struct {
	name string
	mode int64
	dir  bool
	uid  int
	data []byte
}

// layer is an uncompressed-on-disk, gzip-on-push OCI layer holding files in
// order, with fixed times and numeric owners so that its digest depends on
// the contents only.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    strings.TrimPrefix(f.name, "/"),
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.uid,
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// Push writes img to ref (a tag or repository; plain HTTP for localhost and
// private addresses, as go-containerregistry's name.Insecure allows) and
// returns the digest reference it can be pulled by. An image the registry
// already has under that tag is not pushed again.
func Push(ctx context.Context, ref string, img v1.Image) (name.Digest, error) {
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("computing image digest: %w", err)
	}
	dig := tag.Context().Digest(d.String())
	if got, err := remote.Head(tag, remote.WithContext(ctx)); err == nil && got.Digest == d {
		return dig, nil
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	return dig, nil
}
