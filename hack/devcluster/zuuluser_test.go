package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestZuulUserLayer: the layer adds the zuul user to the root file
// system's own account files and makes its home, owned by it.
func TestZuulUserLayer(t *testing.T) {
	rootfs := writeRootfs(t, map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":   "root:x:0:\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"etc/gshadow": "root:*::\n",
	})
	if real := filepath.Join(os.Getenv("HOME"), ".cache/kubepool/images/machine-"+machineRootfsVersion+".tar.gz"); exists(real) {
		rootfs = real // the dev cluster's, when it was built here
	}
	layer, err := zuulUserLayer(rootfs)
	if err != nil {
		t.Fatalf("zuulUserLayer = %v", err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	got := map[string]string{}
	dirs := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs[hdr.Name] = hdr
			continue
		}
		b, _ := io.ReadAll(tr)
		got[hdr.Name] = string(b)
	}
	if p := got["etc/passwd"]; !strings.HasPrefix(p, "root:x:0:0:") || !strings.Contains(p, "\nzuul:x:1000:1000:Zuul:/home/zuul:/bin/bash\n") {
		t.Errorf("etc/passwd = %q, want root's line kept and zuul's added", p)
	}
	if g := got["etc/group"]; !strings.Contains(g, "\nzuul:x:1000:\n") {
		t.Errorf("etc/group = %q, want a zuul group", g)
	}
	if h := dirs["home/zuul/"]; h == nil || h.Uid != zuulUID || h.Gid != zuulUID {
		t.Errorf("home/zuul/ = %+v, want a directory owned by %d", h, zuulUID)
	}
	// Adding it twice is an error, not a second entry.
	twice := writeRootfs(t, map[string]string{"etc/passwd": got["etc/passwd"], "etc/group": got["etc/group"], "etc/shadow": got["etc/shadow"], "etc/gshadow": got["etc/gshadow"]})
	if _, err := zuulUserLayer(twice); err == nil || !strings.Contains(err.Error(), "already has a zuul entry") {
		t.Errorf("zuulUserLayer(root file system with zuul) = %v, want an error saying so", err)
	}
}
