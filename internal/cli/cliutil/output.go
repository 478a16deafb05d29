package cliutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output is -o table|json|yaml.
type Output struct{ Format string }

// AddFlags adds -o/--output to cmd.
func (p *Output) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&p.Format, "output", "o", "table", "output format: table, json or yaml")
}

// Validate checks the format.
func (p *Output) Validate() error {
	switch p.Format {
	case "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: want table, json or yaml", p.Format)
}

// Print writes v as JSON or YAML, or calls table for -o table.
func (p *Output) Print(w io.Writer, v any, table func(io.Writer) error) error {
	switch p.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return WriteYAML(w, v)
	default:
		return table(w)
	}
}

// WriteYAML writes v as one YAML document indented by two spaces.
func WriteYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
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
