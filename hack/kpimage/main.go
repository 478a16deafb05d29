// Command kpimage builds kubepool's container image in Go, the way ko does
// (a static binary of ./cmd/kubepool on a minimal base layer; no Docker), and
// pushes it. It prints the digest reference to deploy by:
//
//	go run ./hack/kpimage 127.0.0.1:5001/kubepool/kubepool:dev
//	127.0.0.1:5001/kubepool/kubepool@sha256:...
//
// See deploy/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kubepool/kubepool/internal/goimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kpimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kpimage", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./hack/kpimage [flags] REGISTRY/REPOSITORY[:TAG]")
		fs.PrintDefaults()
	}
	dir := fs.String("C", ".", "the kubepool checkout to build")
	caCerts := fs.String("ca-certs", goimage.DefaultCACerts, `CA bundle to put in the image ("" for none)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one image reference, got %d", fs.NArg())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	labels := map[string]string{
		"org.opencontainers.image.title":       "kubepool",
		"org.opencontainers.image.description": "kubepool: Kubernetes build resources for CI jobs (Zuul's node provider)",
		"org.opencontainers.image.source":      "https://github.com/kubepool/kubepool",
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if rev := gitRevision(ctx, *dir); rev != "" {
		labels["org.opencontainers.image.revision"] = rev
	}
	img, err := goimage.Build(ctx, goimage.Options{Dir: *dir, Package: "./cmd/kubepool", CACerts: *caCerts, Labels: labels, Log: log})
	if err != nil {
		return err
	}
	ref, err := goimage.Push(ctx, fs.Arg(0), img)
	if err != nil {
		return err
	}
	fmt.Println(ref)
	return nil
}

// gitRevision is the checkout's commit, with "-dirty" when it has changes;
// "" when dir is not a git checkout.
func gitRevision(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += "-dirty"
	}
	return rev
}
