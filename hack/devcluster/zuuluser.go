package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The machine image has a "zuul" user, as Zuul's own node images do:
// Zuul's executor writes ansible_user: zuul for a node whose record names
// no user, and Ansible then puts its temporary files under ~zuul.
const (
	zuulUser = "zuul"
	zuulUID  = 1000
	zuulHome = "/home/zuul"
)

// machineImageVersion tags the machine image: the root file system's
// version plus the layers added on top of it (bump the suffix when they
// change, so that nodes do not run a cached image of the same tag).
const machineImageVersion = machineRootfsVersion + "-zuul1"

// zuulUserLayer returns a layer that adds the zuul user and group and its
// home directory to the root file system in the gzipped tar rootfs: the
// account files are rootfs's own with one line added each.
func zuulUserLayer(rootfs string) (v1.Layer, error) {
	files, err := readTarFiles(rootfs, "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")
	if err != nil {
		return nil, err
	}
	add := map[string]string{
		"etc/passwd":  fmt.Sprintf("%s:x:%d:%d:Zuul:%s:/bin/bash", zuulUser, zuulUID, zuulUID, zuulHome),
		"etc/group":   fmt.Sprintf("%s:x:%d:", zuulUser, zuulUID),
		"etc/shadow":  zuulUser + ":!:19000:0:99999:7:::",
		"etc/gshadow": zuulUser + ":!::",
	}
	modes := map[string]int64{"etc/passwd": 0o644, "etc/group": 0o644, "etc/shadow": 0o640, "etc/gshadow": 0o640}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, name := range []string{"etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"} {
		old, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s has no %s", rootfs, name)
		}
		for _, line := range strings.Split(string(old.data), "\n") {
			if strings.HasPrefix(line, zuulUser+":") {
				return nil, fmt.Errorf("%s already has a %s entry in %s", rootfs, zuulUser, name)
			}
		}
		data := strings.TrimRight(string(old.data), "\n") + "\n" + add[name] + "\n"
		hdr := &tar.Header{Name: name, Mode: modes[name], Size: int64(len(data)), Typeflag: tar.TypeReg, Uid: 0, Gid: old.hdr.Gid, ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, data); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{zuulHome, zuulHome + "/.ansible"} {
		hdr := &tar.Header{Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir, Uid: zuulUID, Gid: zuulUID, ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

// readTarFiles reads the named regular files ("etc/passwd", with or
// without a leading "./") from the gzipped tar at file.
func readTarFiles(file string, names ...string) (map[string]tarFile, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]tarFile{}
	tr := tar.NewReader(zr)
	for len(out) < len(want) {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		name := strings.TrimPrefix(path.Clean(hdr.Name), "./")
		if !want[name] || hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s from %s: %w", name, file, err)
		}
		out[name] = tarFile{hdr: hdr, data: data}
	}
	return out, nil
}
