package gitsync

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// packFiles returns the pack and index files that hold every object of the
// repo in dir reachable from tips, for a push into an empty repo: the
// repo's packs as they are on disk, plus a pack of its reachable loose
// objects written into tmp. The pod then needs no git index-pack: sending
// an index saves it hashing and inflating every object. ok is false when
// the repo's storage does not allow this (alternates, promisor packs).
func packFiles(ctx context.Context, dir, tmp string, tips []string) (files []string, objects int64, ok bool, err error) {
	objdir, err := objectDir(ctx, dir)
	if err != nil {
		return nil, 0, false, err
	}
	if _, err := os.Stat(filepath.Join(objdir, "info", "alternates")); err == nil {
		return nil, 0, false, nil
	}
	idxs, err := filepath.Glob(filepath.Join(objdir, "pack", "pack-*.idx"))
	if err != nil {
		return nil, 0, false, err
	}
	for _, idx := range idxs {
		base := strings.TrimSuffix(idx, ".idx")
		if _, err := os.Stat(base + ".promisor"); err == nil {
			return nil, 0, false, nil
		}
		if _, err := os.Stat(base + ".pack"); err != nil {
			continue // being written or removed: not a usable pack
		}
		files = append(files, base+".pack", idx)
	}
	loose, err := hasLoose(objdir)
	if err != nil {
		return nil, 0, false, err
	}
	if loose {
		out, err := git(ctx, dir, []byte(strings.Join(tips, "\n")+"\n"),
			"pack-objects", "--revs", "--unpacked", "--delta-base-offset", "-q", filepath.Join(tmp, "pack"))
		if err != nil {
			return nil, 0, false, err
		}
		if h := strings.TrimSpace(string(out)); h != "" {
			files = append(files, filepath.Join(tmp, "pack-"+h+".pack"), filepath.Join(tmp, "pack-"+h+".idx"))
		}
	}
	var kept []string
	for i := 0; i < len(files); i += 2 {
		n, err := idxObjects(files[i+1])
		if err != nil {
			return nil, 0, false, err
		}
		if n > 0 {
			kept = append(kept, files[i], files[i+1])
			objects += n
		}
	}
	return kept, objects, true, nil
}

// objectDir is the object directory of the repo in dir: .git/objects
// for a plain working tree, found without starting git.
func objectDir(ctx context.Context, dir string) (string, error) {
	if fi, err := os.Lstat(filepath.Join(dir, ".git")); err == nil && fi.IsDir() && os.Getenv("GIT_DIR") == "" && os.Getenv("GIT_OBJECT_DIRECTORY") == "" {
		return filepath.Join(dir, ".git", "objects"), nil
	}
	out, err := git(ctx, dir, nil, "rev-parse", "--git-path", "objects")
	if err != nil {
		return "", err
	}
	objdir := strings.TrimSpace(string(out))
	if !filepath.IsAbs(objdir) {
		objdir = filepath.Join(dir, objdir)
	}
	return objdir, nil
}

// hasLoose reports whether objdir holds any loose object.
func hasLoose(objdir string) (bool, error) {
	ents, err := os.ReadDir(objdir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if len(e.Name()) != 2 || !e.IsDir() || strings.Trim(e.Name(), "0123456789abcdef") != "" {
			continue
		}
		f, err := os.Open(filepath.Join(objdir, e.Name()))
		if err != nil {
			return false, err
		}
		names, _ := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// idxObjects reads the number of objects from a version 2 pack index.
func idxObjects(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hdr [8 + 256*4]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, fmt.Errorf("reading pack index %s: %w", path, err)
	}
	if !bytes.Equal(hdr[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		return 0, fmt.Errorf("reading pack index %s: %w", path, errors.New("not a version 2 pack index"))
	}
	return int64(binary.BigEndian.Uint32(hdr[len(hdr)-4:])), nil
}

// writePackTar writes files into w as a tar archive of plain, read-only
// files named by their base names, each pack before its index (git ignores
// a pack without one), and closes w with the result.
func writePackTar(w *io.PipeWriter, files []string) {
	tw := tar.NewWriter(w)
	err := func() error {
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fi, err := f.Stat()
			if err == nil {
				err = tw.WriteHeader(&tar.Header{Name: filepath.Base(p), Mode: 0o444, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR})
			}
			if err == nil {
				_, err = io.Copy(tw, f)
			}
			f.Close()
			if err != nil {
				return fmt.Errorf("sending %s: %w", p, err)
			}
		}
		return tw.Close()
	}()
	w.CloseWithError(err)
}
