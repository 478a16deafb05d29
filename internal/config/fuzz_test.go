package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic or return neither a
// config nor an ErrInvalid error. Seeds are the testdata configs.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, file := range append(files, bad...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("x: &x {<<: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse() = %v, want an error matching ErrInvalid", err)
			}
			if len(FieldErrors(err)) == 0 {
				t.Errorf("Parse() = %v, want FieldErrors", err)
			}
			return
		}
		if c == nil {
			t.Fatalf("Parse() = nil, nil")
		}
		for _, p := range c.Providers {
			for _, pl := range p.Pools {
				for i := range pl.Labels {
					_ = pl.Labels[i].Resources().Map()
					_ = pl.Labels[i].ResourceRequirements()
				}
			}
		}
	})
}

// TestParseHostile feeds inputs that once made Parse slow or deep: aliases
// that refer to themselves or multiply. Each must fail promptly with an
// ErrInvalid error.
func TestParseHostile(t *testing.T) {
	laughs := "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n" +
		"providers: [{name: x, driver: kubernetes, pools: [{name: m, node-attributes: {a: *f}, labels: []}]}]\n"
	tests := []struct{ name, yaml string }{
		{"self-referencing list", "labels: &l [*l, *l]\n"},
		{"self-referencing providers", "providers: &p [{name: x, driver: kubernetes, pools: *p}]\n"},
		{"self-referencing node-attributes", "providers: [{name: x, driver: kubernetes, pools: [{name: m, node-attributes: &n {a: *n, b: *n}, labels: []}]}]\n"},
		{"self-referencing spec", "providers: [{name: x, driver: kubernetes, pools: [{name: m, labels: [{name: l, type: pod, spec: &n {a: *n, b: *n}}]}]}]\n"},
		{"self-referencing merge", "zookeeper-tls: &z {<<: *z}\n"},
		{"billion laughs", laughs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("hostile.yaml", []byte(tt.yaml)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, want an error matching ErrInvalid", tt.yaml, err)
			}
		})
	}
}
