// Command gendocs writes kubepool's command reference, one Markdown page per
// command, from the cobra tree, so that the docs cannot drift from the flags.
//
//	go run ./hack/gendocs            # rewrite docs/cli
//	go run ./hack/gendocs -check     # exit 1 if docs/cli is not what the code says
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/kubepool/kubepool/internal/cli"
)

func main() {
	dir := flag.String("dir", "docs/cli", "where the pages go")
	check := flag.Bool("check", false, "compare instead of writing; exit 1 when the pages are stale")
	flag.Parse()
	if err := run(*dir, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(dir string, check bool) error {
	pages, err := render(cli.New())
	if err != nil {
		return err
	}
	if check {
		return compare(dir, pages)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// render returns the page of every command that a user can run, by file name.
func render(root *cobra.Command) (map[string][]byte, error) {
	root.DisableAutoGenTag = true
	pages := map[string][]byte{}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		c.DisableAutoGenTag = true
		var b bytes.Buffer
		if err := doc.GenMarkdownCustom(c, &b, func(s string) string { return s }); err != nil {
			return fmt.Errorf("rendering %q: %w", c.CommandPath(), err)
		}
		pages[strings.ReplaceAll(c.CommandPath(), " ", "_")+".md"] = b.Bytes()
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return pages, walk(root)
}

// compare reports every page that is missing, different or no longer made.
func compare(dir string, pages map[string][]byte) error {
	var stale []string
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			stale = append(stale, name)
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, ok := pages[d.Name()]; !ok {
			stale = append(stale, d.Name()+" (no such command)")
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		return fmt.Errorf("%s is stale (%s): run `go run ./hack/gendocs` and commit the result", dir, strings.Join(stale, ", "))
	}
	return nil
}
