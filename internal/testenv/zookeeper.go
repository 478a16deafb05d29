package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeperEnv names the environment variable that points tests at an
// existing ZooKeeper ("host:port[,host:port...][/chroot]") instead of
// starting one.
const ZooKeeperEnv = "KUBEPOOL_ZOOKEEPER"

// zooKeeperJars is the server's classpath from Debian's zookeeper package.
// zookeeper.jar's manifest names the rest of its dependencies; slf4j-simple
// makes the server's own log readable in zookeeper.log.
var zooKeeperJars = []string{
	"/usr/share/java/zookeeper.jar",
	"/usr/share/java/slf4j-simple.jar",
}

// ZooKeeper returns the connection string of a ZooKeeper namespace that
// belongs to this test alone: "127.0.0.1:PORT/<chroot>", the chroot form
// that kazoo (and so Zuul and Nodepool) and internal/zk accept. Clients that
// talk to go-zookeeper directly must put the chroot in front of every path.
//
// All tests of one test binary share one server, started on first use on a
// free loopback port and killed when the test binary exits; each test gets
// a fresh chroot that is deleted in t.Cleanup. If KUBEPOOL_ZOOKEEPER is set,
// that server is used instead and nothing is started.
func ZooKeeper(t testing.TB) string {
	t.Helper()
	servers := os.Getenv(ZooKeeperEnv)
	if servers == "" {
		addr, err := sharedZooKeeper()
		if err != nil {
			t.Fatalf("starting ZooKeeper: %v", err)
		}
		servers = addr
	}
	hosts, base, _ := strings.Cut(servers, "/")
	if base != "" {
		base = "/" + strings.Trim(base, "/")
	}
	chroot := fmt.Sprintf("%s/kubepool-test/%s-%s", base, sanitizeZNode(t.Name()), zkRandSuffix())
	conn, err := dialZooKeeper(t.Context(), strings.Split(hosts, ","))
	if err != nil {
		t.Fatalf("connecting to ZooKeeper %s: %v", hosts, err)
	}
	defer conn.Close()
	if err := zkCreateAll(conn, chroot); err != nil {
		t.Fatalf("creating chroot %s on %s: %v", chroot, hosts, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := dialZooKeeper(ctx, strings.Split(hosts, ","))
		if err != nil {
			t.Logf("cleaning up ZooKeeper chroot %s: %v", chroot, err)
			return
		}
		defer conn.Close()
		if err := zkDeleteAll(conn, chroot); err != nil {
			t.Logf("cleaning up ZooKeeper chroot %s: %v", chroot, err)
		}
	})
	return hosts + chroot
}

var shared struct {
	once sync.Once
	addr string
	err  error
}

// sharedZooKeeper starts the test binary's ZooKeeper once. The server is
// killed by the kernel when the test binary exits (Pdeathsig); its data
// directory is removed by the next test binary that starts one.
func sharedZooKeeper() (string, error) {
	shared.once.Do(func() {
		sweepStaleZooKeeperDirs()
		dir, err := os.MkdirTemp("", "kubepool-zookeeper-")
		if err != nil {
			shared.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p, err := startZooKeeper(ctx, dir, 0, true)
		if err != nil {
			shared.err = err
			return
		}
		shared.addr = p.Addr()
	})
	return shared.addr, shared.err
}

// sweepStaleZooKeeperDirs removes data directories of shared servers whose
// test binary is gone.
func sweepStaleZooKeeperDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kubepool-zookeeper-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// ZooKeeperProcess is a ZooKeeper server started by StartZooKeeper.
type ZooKeeperProcess struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	exited chan struct{}
	err    error // exit status, valid after exited is closed
}

// Addr returns the server's client address, "127.0.0.1:PORT".
func (p *ZooKeeperProcess) Addr() string { return p.addr }

// PID returns the server's process id.
func (p *ZooKeeperProcess) PID() int { return p.cmd.Process.Pid }

// Dir returns the directory holding the server's configuration, data and
// log (zookeeper.log).
func (p *ZooKeeperProcess) Dir() string { return p.dir }

// Exited is closed when the server process has exited.
func (p *ZooKeeperProcess) Exited() <-chan struct{} { return p.exited }

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it to exit. It is safe to call more than once.
func (p *ZooKeeperProcess) Stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return nil
}

// StartZooKeeper starts a standalone ZooKeeper server from Debian's
// zookeeper package, with its configuration, data and log in dir, listening
// on 127.0.0.1:port (port 0 picks a free port), with the admin server
// disabled. It returns once the server answers `srvr` as serving; ctx bounds
// only that wait, not the server's life: the server runs until Stop.
func StartZooKeeper(ctx context.Context, dir string, port int) (*ZooKeeperProcess, error) {
	return startZooKeeper(ctx, dir, port, false)
}

func startZooKeeper(ctx context.Context, dir string, port int, dieWithParent bool) (*ZooKeeperProcess, error) {
	for _, jar := range zooKeeperJars[:1] {
		if _, err := os.Stat(jar); err != nil {
			return nil, fmt.Errorf("finding ZooKeeper (install Debian's zookeeper package): %w", err)
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("finding java: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating ZooKeeper data directory: %w", err)
	}
	pickPort := port == 0
	for attempt := 0; ; attempt++ {
		if pickPort {
			if port, err = zkFreePort(); err != nil {
				return nil, fmt.Errorf("picking a port for ZooKeeper: %w", err)
			}
		}
		p, err := launchZooKeeper(ctx, java, dir, dataDir, port, dieWithParent)
		if err == nil {
			return p, nil
		}
		// Another process may have taken the port between freePort and the
		// server's bind: try a different one.
		if !pickPort || attempt >= 3 || ctx.Err() != nil || !errors.Is(err, errExitedEarly) {
			return nil, err
		}
	}
}

var errExitedEarly = errors.New("ZooKeeper exited during startup")

func launchZooKeeper(ctx context.Context, java, dir, dataDir string, port int, dieWithParent bool) (*ZooKeeperProcess, error) {
	cfg := filepath.Join(dir, "zoo.cfg")
	conf := strings.Join([]string{
		"tickTime=500",
		"minSessionTimeout=1000",
		"maxSessionTimeout=60000",
		"dataDir=" + dataDir,
		"forceSync=no", // test data: no fsync per write
		"clientPortAddress=127.0.0.1",
		"clientPort=" + strconv.Itoa(port),
		"admin.enableServer=false",
		"4lw.commands.whitelist=srvr,ruok,stat,mntr,cons,dump",
		"maxClientCnxns=0",
		"autopurge.purgeInterval=0",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing ZooKeeper configuration: %w", err)
	}
	logPath := filepath.Join(dir, "zookeeper.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening ZooKeeper log: %w", err)
	}
	defer logFile.Close()

	var cp []string
	for _, jar := range zooKeeperJars {
		if _, err := os.Stat(jar); err == nil {
			cp = append(cp, jar)
		}
	}
	cmd := exec.Command(java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.admin.enableServer=false",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", strings.Join(cp, ":"),
		"org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if dieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting ZooKeeper: %w", err)
	}
	p := &ZooKeeperProcess{
		cmd:    cmd,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    dir,
		exited: make(chan struct{}),
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := zkWaitServing(ctx, p); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("waiting for ZooKeeper on %s (log %s): %w", p.addr, logPath, err)
	}
	return p, nil
}

// zkWaitServing polls the srvr four-letter word until the server reports that
// it serves requests, the process exits or ctx is done.
func zkWaitServing(ctx context.Context, p *ZooKeeperProcess) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok, _ := zkSrvr(ctx, p.addr); ok {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %v", errExitedEarly, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func zkSrvr(ctx context.Context, addr string) (bool, error) {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false, err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Mode: ") {
			return true, nil
		}
	}
	return false, sc.Err()
}

func zkFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func dialZooKeeper(ctx context.Context, hosts []string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(hosts, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkDiscardLogger{}))
	if err != nil {
		return nil, err
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, ctx.Err()
		}
	}
}

type zkDiscardLogger struct{}

func (zkDiscardLogger) Printf(string, ...any) {}

func zkCreateAll(conn *zk.Conn, path string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		cur += "/" + part
		if _, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

func zkDeleteAll(conn *zk.Conn, path string) error {
	for range 10 {
		children, _, err := conn.Children(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := zkDeleteAll(conn, path+"/"+c); err != nil {
				return err
			}
		}
		err = conn.Delete(path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !errors.Is(err, zk.ErrNotEmpty) {
			return err
		}
	}
	return fmt.Errorf("deleting %s: children keep appearing", path)
}

var unsafeZNode = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func sanitizeZNode(s string) string {
	s = unsafeZNode.ReplaceAllString(s, "_")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func zkRandSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
