package cliutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output is -o table|json|yaml|name, the one output option of every
// command that prints records. JSON and YAML come from the same encoding:
// YAML is the JSON document re-encoded, so both have the member names of
// the records' json tags.
type Output struct {
	Format string
	// Names offers -o name: one identifier per line (node ids, buildset
	// ids, image names), for scripts.
	Names bool
}

// Formats lists the formats o accepts.
func (p *Output) Formats() []string {
	f := []string{"table", "json", "yaml"}
	if p.Names {
		f = append(f, "name")
	}
	return f
}

// AddFlags adds -o/--output to cmd.
func (p *Output) AddFlags(cmd *cobra.Command) {
	def := p.Format
	if def == "" {
		def = "table"
	}
	help := "output format: " + orList(p.Formats())
	if p.Names {
		help += " (name: one identifier a line)"
	}
	cmd.Flags().StringVarP(&p.Format, "output", "o", def, help)
}

// orList is "a, b or c".
func orList(s []string) string {
	last := len(s) - 1
	if last < 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:last], ", ") + " or " + s[last]
}

// Validate checks the format.
func (p *Output) Validate() error {
	fs := p.Formats()
	for _, f := range fs {
		if p.Format == f {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want %s", p.Format, orList(fs))
}

// Text reports whether the output is for people (-o table), the only
// format next to which progress is shown.
func (p *Output) Text() bool { return p.Format == "" || p.Format == "table" }

// Print writes v as JSON or YAML, or calls table for -o table.
func (p *Output) Print(w io.Writer, v any, table func(io.Writer) error) error {
	return p.PrintNamed(w, v, nil, table)
}

// PrintNamed is Print with the identifiers -o name prints, one a line.
func (p *Output) PrintNamed(w io.Writer, v any, names []string, table func(io.Writer) error) error {
	switch p.Format {
	case "json":
		return WriteJSON(w, v)
	case "yaml":
		return WriteYAML(w, v)
	case "name":
		var b strings.Builder
		for _, n := range names {
			b.WriteString(n)
			b.WriteByte('\n')
		}
		_, err := io.WriteString(w, b.String())
		return err
	default:
		return table(w)
	}
}

// Table calls fill with a tabwriter on w (columns separated by tabs) and
// flushes it.
func Table(w io.Writer, fill func(w io.Writer)) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fill(tw)
	return tw.Flush()
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteYAML writes v as one YAML document indented by two spaces, with the
// member names, order and values of its JSON encoding.
func WriteYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// blockStyle drops the flow and quoting styles a JSON document parses
// with, so that the YAML encoder picks its own: block collections, plain
// scalars where they read back as the same value.
func blockStyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.SequenceNode, yaml.MappingNode:
		if len(n.Content) > 0 {
			n.Style = 0
		}
	case yaml.ScalarNode:
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// WriteFile creates path and fills it with write.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
