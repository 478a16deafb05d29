package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one long-running process of the dev cluster. Its PID is
// recorded in pids/<name>.pid; stop signals exactly that PID.
type daemon struct {
	name string
	bin  string
	args []string
	env  []string
	// healthy reports whether the daemon is serving. It is polled after a
	// start until it returns nil or the start deadline passes.
	healthy func(ctx context.Context) error
}

func (c *cluster) pidFile(name string) string { return filepath.Join(c.dir, "pids", name+".pid") }
func (c *cluster) logFile(name string) string { return filepath.Join(c.dir, "logs", name+".log") }

// running returns the PID of name if the process recorded for it is alive
// and is still the binary we started.
func (c *cluster) running(name, bin string) (int, bool) {
	b, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, false
	}
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		want = bin
	}
	if strings.TrimSuffix(exe, " (deleted)") != want && filepath.Base(exe) != filepath.Base(want) {
		return 0, false
	}
	return pid, true
}

// start starts d detached (own session, output to its log file) unless it is
// already running, then waits for it to be healthy.
func (c *cluster) start(ctx context.Context, d daemon) error {
	if pid, ok := c.running(d.name, d.bin); ok {
		c.log.Info("already running", "component", d.name, "pid", pid)
		return c.waitHealthy(ctx, d, pid)
	}
	logf, err := os.OpenFile(c.logFile(d.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s starting %s %s\n", time.Now().Format(time.RFC3339), d.bin, strings.Join(d.args, " "))
	cmd := exec.Command(d.bin, d.args...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", d.name, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(c.pidFile(d.name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	// Reap it if it dies while we wait; once we exit, init adopts it.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.log.Info("started", "component", d.name, "pid", pid, "log", c.logFile(d.name))
	return c.waitHealthyOrExit(ctx, d, pid, exited)
}

func (c *cluster) waitHealthy(ctx context.Context, d daemon, pid int) error {
	return c.waitHealthyOrExit(ctx, d, pid, nil)
}

func (c *cluster) waitHealthyOrExit(ctx context.Context, d daemon, pid int, exited <-chan error) error {
	if d.healthy == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = d.healthy(ctx); last == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s (pid %d) exited: %v; last lines of %s:\n%s", d.name, pid, err, c.logFile(d.name), tail(c.logFile(d.name), 25))
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not healthy: %v; last lines of %s:\n%s", d.name, pid, last, c.logFile(d.name), tail(c.logFile(d.name), 25))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the recorded PID of name, waits up to grace for it
// to exit, then SIGKILLs it. A component that is not running is fine.
func (c *cluster) stop(name, bin string, grace time.Duration) {
	pid, ok := c.running(name, bin)
	if !ok {
		_ = os.Remove(c.pidFile(name))
		return
	}
	c.log.Info("stopping", "component", name, "pid", pid)
	killWait(pid, grace)
	_ = os.Remove(c.pidFile(name))
}

// killWait terminates pid: SIGTERM, then SIGKILL after grace.
func killWait(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state is the field after the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// processes returns the PIDs and parent PIDs of every process.
func processes() map[int]int {
	parents := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parents[pid] = ppid
	}
	return parents
}

// cmdline returns pid's arguments.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// descendants returns every process below root, deepest first.
func descendants(parents map[int]int, root int) []int {
	children := map[int][]int{}
	for pid, ppid := range parents {
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			walk(c)
			out = append(out, c)
		}
	}
	walk(root)
	return out
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(b, n)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

var errNotUp = errors.New("the dev cluster is not up; run `make cluster-up`")
