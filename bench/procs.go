package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the bench started: the emulator, the reverse proxy or
// tusproxy.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's result, once exited is closed
	// admin is tusproxy's admin listener (metrics, and profiles with
	// TUSPROXY_PPROF=true); "" for the other children.
	admin string
	// tree: the child's work is done by its own children too (nginx's
	// workers), whose CPU and memory count as the child's.
	tree bool
}

// startChild starts path with args and extra environment variables. A child
// dies with the bench (Pdeathsig), so an interrupted run leaves nothing
// listening behind.
func startChild(name, path string, args, env []string) (*child, io.Reader, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	c := &child{name: name, cmd: cmd, stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, stdout, nil
}

// startRole starts this executable in a role and returns its base URL.
func startRole(role string, env []string) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	c, stdout, err := startChild(role, self, nil, append(env, roleEnv+"="+role))
	if err != nil {
		return nil, "", err
	}
	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if line, ok := strings.CutPrefix(scanner.Text(), readyPrefix); ok {
				ready <- line
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case baseURL := <-ready:
		return c, baseURL, nil
	case <-c.exited:
		return nil, "", fmt.Errorf("%s exited at start: %v: %s", role, c.err, c.stderr.String())
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, "", fmt.Errorf("%s did not start within 30s", role)
	}
}

// pid is the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// running reports whether the child is still alive.
func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop asks the child to end (SIGTERM, as a service manager would) and
// kills it if it has not after 10 s.
func (c *child) stop() {
	if !c.running() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// procStat is what /proc tells about a process.
type procStat struct {
	cpu      time.Duration // user + system time so far
	rss, hwm int64         // VmRSS and VmHWM (peak RSS), bytes
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (the kernel ABI fixes it,
// whatever the kernel's own HZ).
const clockTick = 100

// readProc reads a process's CPU time and memory from /proc.
func readProc(pid int) (procStat, error) {
	var st procStat
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. utime and stime are fields 14 and 15.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return st, errors.New("unexpected /proc/pid/stat format")
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 13 {
		return st, errors.New("unexpected /proc/pid/stat format")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return st, err
	}
	st.cpu = time.Duration(utime+stime) * time.Second / clockTick

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for line := range strings.Lines(string(status)) {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return st, fmt.Errorf("/proc/pid/status %s: %w", key, err)
		}
		if key == "VmRSS" {
			st.rss = kb << 10
		} else {
			st.hwm = kb << 10
		}
	}
	return st, nil
}

// usage is the CPU time and memory of the child: of its whole process tree
// for nginx (master and workers), summed. Summed VmHWMs are an upper bound
// of the tree's peak, since the processes need not peak at once.
func (c *child) usage() (procStat, error) {
	total, err := readProc(c.pid())
	if err != nil || !c.tree {
		return total, err
	}
	for _, pid := range descendants(c.pid()) {
		st, err := readProc(pid)
		if err != nil {
			continue // it exited meanwhile
		}
		total.cpu += st.cpu
		total.rss += st.rss
		total.hwm += st.hwm
	}
	return total, nil
}

// descendants lists the processes below pid, found by their parent pid in
// /proc/<pid>/stat (the kernel's children lists are not always built in).
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parentOf := make(map[int]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(raw, ')')
		if end < 0 {
			continue
		}
		// Field 4, the parent pid, follows the state after the ')'.
		fields := strings.Fields(string(raw[end+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			parentOf[p] = ppid
		}
	}
	var found []int
	for p := range parentOf {
		for q := parentOf[p]; q > 1; q = parentOf[q] {
			if q == pid {
				found = append(found, p)
				break
			}
		}
	}
	return found
}

// machineCPU is the CPU time all processes of the machine have used, from
// the first line of /proc/stat: user, nice, system and steal (time a virtual
// machine wanted and the host gave to others). irq and softirq are left out:
// the kernel's loopback TCP work for the benchmark's own traffic is counted
// there, and in no process's utime or stime.
func machineCPU() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat format")
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 8} {
		v, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

// moduleRoot is the directory of the go.mod above dir.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the bench from the tusproxy module, or use -src")
		}
		dir = parent
	}
}

// buildTusproxy builds ./cmd/tusproxy of the module at src into dir.
func buildTusproxy(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "tusproxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tusproxy")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tusproxy in %s: %w\n%s", src, err, out)
	}
	return bin, nil
}

// sourceRevision describes the tusproxy source measured: its git commit and
// whether the work tree changes tusproxy's Go sources; "" when src is not a
// git checkout.
func sourceRevision(src string) string {
	rev, err := exec.Command("git", "-C", src, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	desc := strings.TrimSpace(string(rev))
	// Only changes to what goes into the binary count: not tests, not the
	// bench itself.
	status, err := exec.Command("git", "-C", src, "status", "--porcelain", "--",
		"*.go", "go.mod", "go.sum", ":!*_test.go", ":!bench").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		desc += " with uncommitted changes"
	}
	return desc
}

// startTusproxy runs `tusproxy serve` configured by environment variables,
// as in production, and waits for /healthz. dbFile is its bolt store.
func startTusproxy(bin, dbFile, initURL, token string, extraEnv []string) (*child, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	// The admin listener gets a free port too: the default 127.0.0.1:9090 may be
	// taken, and with TUSPROXY_PPROF=true (see -env) it serves the profiles
	// of the run at the address logged at start.
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	env := []string{
		"KINESCOPE_API_TOKEN=" + token,
		"KINESCOPE_PARENT_ID=bench",
		"KINESCOPE_INIT_URL=" + initURL,
		// host:port: a bare host allows only the scheme's default port.
		"TUSPROXY_UPSTREAM_HOSTS=" + upstreamHostOf(initURL),
		"TUSPROXY_STORE=bolt:" + dbFile,
		"TUSPROXY_LOG_LEVEL=warn",
		"TUSPROXY_LISTEN=" + addr,
		"TUSPROXY_METRICS_LISTEN=" + adminAddr,
	}
	env = append(env, tusproxySettings...)
	c, stdout, err := startChild("tusproxy", bin, []string{"serve"}, append(env, extraEnv...))
	if err != nil {
		return nil, "", err
	}
	c.admin = "http://" + adminAddr
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	baseURL := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, baseURL, nil
			}
		}
		if !c.running() {
			return nil, "", fmt.Errorf("tusproxy exited at start: %v: %s", c.err, c.stderr.String())
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, "", fmt.Errorf("tusproxy did not answer /healthz within 30s: %s", c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tusproxySettings are the settings the bench changes from tusproxy's
// defaults, besides addresses, the store and the upstream; -env may
// override them.
var tusproxySettings = []string{
	// Anonymous, and with no creation rate: the workloads create many
	// uploads from one address.
	"TUSPROXY_AUTH=none",
	"TUSPROXY_CREATE_RATE=0",
	// Every bench client is 127.0.0.1: the per-address PATCH cap (64 by
	// default) would answer most of the concurrent workload 429.
	"TUSPROXY_MAX_PATCHES_PER_IP=0",
	// No scraper waits for the last counters of a hop the bench stops:
	// without this every restart would wait the default 5 s.
	"TUSPROXY_METRICS_LINGER=0",
}

// serveHelp is what `tusproxy serve -h` prints: every setting with its
// default.
func serveHelp(bin string) string {
	// -h exits non-zero (flag.ErrHelp); the text is what matters.
	out, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	return string(out)
}

// settingDefault is the default of a tusproxy setting as serveHelp prints
// it (`env NAME, default "VALUE"`), or "" when it is not there.
func settingDefault(help, env string) string {
	_, rest, ok := strings.Cut(help, "env "+env+", default \"")
	if !ok {
		return ""
	}
	value, _, ok := strings.Cut(rest, "\"")
	if !ok {
		return ""
	}
	return value
}

// freeAddr finds a free loopback port for a child that must be told where
// to listen. Another process could take it before the child binds; the
// child then fails at start, loudly.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// tailBuffer keeps the last max bytes written to it: a child's stderr, shown
// when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// upstreamHostOf is the host:port of initURL, the emulator that issues the
// endpoints tusproxy is allowed to forward to.
func upstreamHostOf(initURL string) string {
	u, err := url.Parse(initURL)
	if err != nil {
		return initURL // Validate reports it
	}
	return u.Host
}
