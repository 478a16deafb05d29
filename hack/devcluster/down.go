package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// components in the order down stops them (the reverse of up).
var components = []struct{ name, bin string }{
	{"kubelet", ""},
	{"containerd", "/usr/bin/containerd"},
	{"coredns", ""},
	{"kube-proxy", ""},
	{"kube-scheduler", ""},
	{"kube-controller-manager", ""},
	{"kube-apiserver", ""},
	{"zookeeper", ""},
	{"registry", "/usr/bin/docker-registry"},
	{"etcd", "/usr/bin/etcd"},
}

// binFor is the binary a component runs, for checking that a recorded PID
// is still ours.
func (c *cluster) binFor(name, bin string) string {
	if bin != "" {
		return bin
	}
	if name == "zookeeper" {
		return javaPath()
	}
	// <cache>/k8s/<version>/<name>, <cache>/coredns/<version>/coredns
	dirs, _ := filepath.Glob(filepath.Join(c.cache, "*", "*", name))
	if len(dirs) > 0 {
		return dirs[0]
	}
	return name
}

// down stops everything up started: the kubelet, then every container
// (their shims are found by our containerd socket on their command line),
// then the daemons, then unmounts what they left mounted under our
// directories and removes the pod bridge. Data stays, so up is quick again.
func (c *cluster) down(ctx context.Context) error {
	c.stop("kubelet", c.binFor("kubelet", ""), 20*time.Second)
	c.killContainers()
	for _, comp := range components[1:] {
		c.stop(comp.name, c.binFor(comp.name, comp.bin), 20*time.Second)
	}
	// kube-proxy's iptables chains go with it.
	if bin := c.binFor("kube-proxy", ""); exists(bin) {
		if err := run(ctx, bin, "--cleanup", "--proxy-mode", "iptables"); err != nil {
			c.log.Warn("removing kube-proxy's iptables rules", "err", err)
		}
	}
	c.unmountOurs()
	if err := run(ctx, "ip", "link", "del", bridgeName); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		c.log.Warn("removing the pod bridge", "err", err)
	}
	_ = os.Remove(c.path("env.json"))
	c.log.Info("the dev cluster is down")
	return nil
}

// killContainers kills the containerd shims started for our containerd and
// every process under them (the pods' processes).
func (c *cluster) killContainers() {
	sock := c.containerdSocket()
	parents := processes()
	for pid := range parents {
		args := cmdline(pid)
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") || !slices.Contains(args, sock) {
			continue
		}
		for _, d := range descendants(parents, pid) {
			_ = syscall.Kill(d, syscall.SIGKILL)
		}
		killWait(pid, 5*time.Second)
	}
}

// unmountOurs unmounts, deepest first, every mount under .devcluster and the
// socket directory (pod volumes, container root file systems, network
// namespaces).
func (c *cluster) unmountOurs() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, c.dir+"/") || strings.HasPrefix(mp, c.run+"/") {
			mounts = append(mounts, mp)
		}
	}
	f.Close()
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range mounts {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			c.log.Warn("unmounting", "path", mp, "err", err)
		}
	}
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func (c *cluster) status(ctx context.Context) error {
	up := 0
	for i := len(components) - 1; i >= 0; i-- {
		comp := components[i]
		if pid, ok := c.running(comp.name, c.binFor(comp.name, comp.bin)); ok {
			fmt.Printf("%-24s running (pid %d)\n", comp.name, pid)
			up++
		} else {
			fmt.Printf("%-24s stopped\n", comp.name)
		}
	}
	if up == 0 {
		return errNotUp
	}
	cs, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nodeReady(ctx, cs); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	fmt.Printf("%-24s Ready\nexport KUBECONFIG=%s\n", "node "+nodeName, c.path("kubeconfig"))
	if up != len(components) {
		return fmt.Errorf("%d of %d components running; run `make cluster-up`", up, len(components))
	}
	return nil
}
