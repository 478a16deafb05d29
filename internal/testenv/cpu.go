package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU is CPU time (user plus system) used so far by this process and by
// the dev cluster's daemons, by name ("self", "kube-apiserver", "etcd",
// "zookeeper", ...). Benchmarks take it before and after a run to say where
// the machine's cores went.
type CPU map[string]time.Duration

// ReadCPU reads the CPU time of this process and of every daemon with a
// pid file in the cluster's state directory. Daemons it cannot read are
// left out.
func (e *Env) ReadCPU() CPU {
	out := CPU{}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		out["self"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	files, _ := filepath.Glob(filepath.Join(e.StateDir, "pids", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if d, ok := procCPU(strings.TrimSpace(string(b))); ok {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = d
		}
	}
	return out
}

// Since returns what each entry used between before and c.
func (c CPU) Since(before CPU) CPU {
	out := CPU{}
	for k, v := range c {
		if b, ok := before[k]; ok {
			out[k] = v - b
		}
	}
	return out
}

// procCPU reads utime+stime of a process from /proc/PID/stat.
func procCPU(pid string) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields count from after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, true
}
