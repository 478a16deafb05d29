package imageset

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// renderPy renders a template as tripleo-common does (Python Jinja2, then
// yaml.safe_load of the output) and prints the number of entries.
const renderPy = `import sys, jinja2, yaml
mapping = yaml.safe_load(open(sys.argv[2]))
out = yaml.safe_load(jinja2.Template(open(sys.argv[1]).read()).render(**mapping))
print(len(out['container_images_template']))
`

// BenchmarkRenderProcess compares, end to end as processes, rendering the
// largest template (the 2019 sample, stein defaults, ovn) with kubepool
// and with Python Jinja2 + PyYAML as TripleO does (make bench; figures in
// BENCHMARKS.md, "Image-set rendering").
func BenchmarkRenderProcess(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 not installed")
	}
	// The interpreter itself, not a wrapper script (pyenv's shims add
	// their own start-up).
	real, err := exec.Command(py, "-c", "import jinja2, yaml, sys; print(sys.executable)").Output()
	if err != nil {
		b.Skip("python3-jinja2 or python3-yaml not installed (apt-get install python3-jinja2 python3-yaml)")
	}
	py = strings.TrimSpace(string(real))
	dir := b.TempDir()
	bin := filepath.Join(dir, "kubepool")
	lean := filepath.Join(dir, "kubepool-images")
	for out, pkg := range map[string]string{bin: "../../cmd/kubepool", lean: "../../cmd/kubepool-images"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		if msg, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	const tpl = "testdata/overcloud_containers.2019.yaml.j2"
	d, err := ReleaseDefaults("stein")
	if err != nil {
		b.Fatal(err)
	}
	mapping := d.Set.Merge(Params{"neutron_driver": "ovn"})
	var buf bytes.Buffer
	if err := encodeYAML(&buf, mapping); err != nil {
		b.Fatal(err)
	}
	params := filepath.Join(dir, "mapping.yaml")
	script := filepath.Join(dir, "render.py")
	if err := os.WriteFile(params, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(renderPy), 0o644); err != nil {
		b.Fatal(err)
	}
	// cpu runs a process and adds its user+system CPU time to *total: on
	// a shared machine that is steadier than wall time.
	run := func(total *time.Duration, name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		out, err := cmd.Output()
		if cmd.ProcessState != nil {
			*total += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		return out, err
	}
	want := 0
	b.Run("python-jinja2", func(b *testing.B) {
		var cpu time.Duration
		defer func() { b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op") }()
		for b.Loop() {
			out, err := run(&cpu, py, script, tpl, params)
			if err != nil {
				b.Fatal(err)
			}
			if want, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil || want == 0 {
				b.Fatalf("python rendered %q", out)
			}
		}
	})
	// kubepool-images is the images command tree alone (no Kubernetes
	// client to initialise); kubepool images is the same code in the
	// binary that has everything.
	for _, c := range []struct {
		name string
		argv []string
	}{
		{"kubepool-images", []string{lean, "list"}},
		{"kubepool_images", []string{bin, "images", "list"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			defer func() { b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op") }()
			args := append(c.argv[1:], "-t", tpl, "--defaults", "stein", "--params", params)
			for b.Loop() {
				out, err := run(&cpu, c.argv[0], args...)
				if err != nil {
					b.Fatal(err)
				}
				if n := strings.Count(string(out), "\n"); want != 0 && n != want {
					b.Fatalf("%s listed %d images, python %d", c.name, n, want)
				}
			}
		})
	}
}

// BenchmarkRender is the in-process half of BenchmarkRenderProcess: one
// parse, render and decode of the 2019 sample with stein's defaults
// (Python's figure: the timeit command in BENCHMARKS.md).
func BenchmarkRender(b *testing.B) {
	d, err := ReleaseDefaults("stein")
	if err != nil {
		b.Fatal(err)
	}
	mapping := d.Set.Merge(Params{"neutron_driver": "ovn"})
	for b.Loop() {
		tpl, err := LoadTemplate("testdata/overcloud_containers.2019.yaml.j2")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tpl.Render(mapping); err != nil {
			b.Fatal(err)
		}
	}
}
