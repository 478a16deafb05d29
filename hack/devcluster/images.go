package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// machineRootfsVersion names the cached machine root file system; bump it
// when machinePackages change.
const (
	machineRootfsVersion = "bookworm-1"
	debianSuite          = "bookworm"
)

// machinePackages are what the machine image adds to Debian's minbase: git
// for repos pushed over exec, python3 for Ansible.
var machinePackages = []string{"git", "python3", "ca-certificates", "procps"}

// images builds the pause and machine images (in Go: a static Go binary,
// and a debootstrap'd Debian root file system as one layer) and pushes them
// to the dev cluster's registry. Both are cached; pushing what the registry
// already has is skipped.
func (c *cluster) images(ctx context.Context) (pause, machine string, err error) {
	dir := filepath.Join(c.cache, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	pause = registry + "/kubepool/pause:3.10"
	machine = registry + "/kubepool/machine:" + machineImageVersion

	pauseBin := filepath.Join(dir, "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", pauseBin, "./hack/devcluster/pause")
	build.Dir = c.repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("building the pause binary: %w: %s", err, out)
	}
	bin, err := os.ReadFile(pauseBin)
	if err != nil {
		return "", "", err
	}
	pauseLayer, err := tarLayer(map[string][]byte{"pause": bin})
	if err != nil {
		return "", "", err
	}
	pauseImg, err := image(pauseLayer, v1.Config{Entrypoint: []string{"/pause"}})
	if err != nil {
		return "", "", err
	}
	if err := c.push(ctx, pause, pauseImg); err != nil {
		return "", "", err
	}

	rootfs, err := c.machineRootfs(ctx)
	if err != nil {
		return "", "", err
	}
	layer, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		return "", "", fmt.Errorf("reading %s: %w", rootfs, err)
	}
	users, err := zuulUserLayer(rootfs)
	if err != nil {
		return "", "", fmt.Errorf("adding the zuul user: %w", err)
	}
	machineImg, err := image(layer, v1.Config{
		Cmd:        []string{"/bin/sh"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		WorkingDir: "/root",
		Labels:     map[string]string{"org.opencontainers.image.title": "kubepool dev machine (Debian " + debianSuite + " minbase + " + strings.Join(machinePackages, ",") + ")"},
	})
	if err != nil {
		return "", "", err
	}
	if machineImg, err = mutate.AppendLayers(machineImg, users); err != nil {
		return "", "", err
	}
	if err := c.push(ctx, machine, machineImg); err != nil {
		return "", "", err
	}
	return pause, machine, nil
}

func image(layer v1.Layer, cfg v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0)}
	return mutate.ConfigFile(img, cf)
}

// tarLayer is a layer holding files, executable, at the root.
func tarLayer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func (c *cluster) push(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	want, err := img.Digest()
	if err != nil {
		return err
	}
	if d, err := remote.Head(r, remote.WithContext(ctx)); err == nil && d.Digest == want {
		return nil
	}
	c.log.Info("pushing image", "ref", ref, "digest", want)
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// machineRootfs returns the cached machine root file system, making it
// the first time.
func (c *cluster) machineRootfs(ctx context.Context) (string, error) {
	rootfs := filepath.Join(c.cache, "images", "machine-"+machineRootfsVersion+".tar.gz")
	if exists(rootfs) {
		return rootfs, nil
	}
	if err := os.MkdirAll(filepath.Dir(rootfs), 0o755); err != nil {
		return "", err
	}
	return rootfs, c.debootstrap(ctx, rootfs)
}

// debootstrap makes the machine image's root file system with Debian's
// debootstrap from the mirror apt uses, and stores it as a gzipped tar at
// dst.
func (c *cluster) debootstrap(ctx context.Context, dst string) error {
	mirror := aptMirror()
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	c.log.Info("debootstrapping the machine image (once; cached)", "suite", debianSuite, "mirror", mirror, "packages", machinePackages)
	t0 := time.Now()
	root := filepath.Join(tmp, "rootfs")
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(machinePackages, ","), debianSuite, root, mirror)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s from %s: %w\n%s", debianSuite, mirror, err, lastLines(out.Bytes(), 30))
	}
	for _, junk := range []string{"var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"} {
		p := filepath.Join(root, junk)
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(p, e.Name()))
		}
	}
	part := dst + ".part"
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", root, "-I", "gzip -1", "-cf", part, ".")
	if b, err := tarCmd.CombinedOutput(); err != nil {
		return fmt.Errorf("archiving the machine root file system: %w: %s", err, b)
	}
	if err := os.Rename(part, dst); err != nil {
		return err
	}
	c.log.Info("machine root file system ready", "took", time.Since(t0).Round(time.Second), "file", dst)
	return nil
}

// aptMirror is the Debian mirror this machine's apt uses.
func aptMirror() string {
	if f, err := os.Open("/etc/apt/sources.list.d/debian.sources"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "URIs:"); ok {
				for _, u := range strings.Fields(v) {
					if !strings.Contains(u, "security") {
						return u
					}
				}
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "deb" && !strings.Contains(f[1], "security") {
				return f[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}
