package shopload

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a service binary run as a child process, so that its CPU and
// memory can be read from /proc. It dies with this process (SIGKILL, on
// Linux), whatever happens to it.
type Proc struct {
	// Name is what reports call it (productsvc, cartsvc, …).
	Name string
	bin  string
	args []string
	log  string // log file path
	url  string // base URL answering /readyz

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{}
}

// NewProc describes a process; Start runs it.
func NewProc(name, bin string, args []string, logPath, baseURL string) *Proc {
	return &Proc{Name: name, bin: bin, args: args, log: logPath, url: baseURL}
}

// URL is the process's base URL.
func (p *Proc) URL() string { return p.url }

// Pid is the running process's id, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.Pid
}

// Start runs the binary (with an empty environment besides PATH: flags
// alone configure it) and returns once /readyz answers 200, or an error
// with the end of its log.
func (p *Proc) Start(timeout time.Duration) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	exited := make(chan struct{})
	go func() {
		// The parent-death signal fires when the starting thread exits
		// (go.dev/issue/27505): keep it for as long as the child lives.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	if err := <-started; err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.mu.Lock()
	p.proc, p.exited = cmd.Process, exited
	p.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting; end of its log %s:\n%s", p.Name, p.log, p.Tail())
		default:
		}
		if resp, err := http.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("%s not ready within %s; end of its log %s:\n%s", p.Name, timeout, p.log, p.Tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to the running process (SIGSTOP and SIGCONT freeze and
// thaw it).
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.proc.Signal(sig)
}

// Kill SIGKILLs the process and waits until it is gone.
func (p *Proc) Kill() { p.stop(syscall.SIGKILL) }

// Stop asks the process to shut down (SIGTERM), and kills it after 15 s.
func (p *Proc) Stop() { p.stop(syscall.SIGTERM) }

func (p *Proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	proc, exited := p.proc, p.exited
	p.proc = nil
	p.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Signal(syscall.SIGCONT) // a frozen process cannot exit
	_ = proc.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = proc.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Tail is the end of the process's log, for error messages.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// clockTick is the kernel's USER_HZ, the unit of /proc CPU times; 100 on
// every Linux architecture Go supports.
const clockTick = 100

// cpuTime returns the user plus system CPU time pid has used.
func cpuTime(pid int) (time.Duration, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after the command: state(3) ppid(4) … utime(14) stime(15).
	utime, err1 := strconv.ParseInt(fields[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(fields[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// statFields returns /proc/pid/stat's fields after the command name (the
// first is the state, field 3).
func statFields(pid int) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	return fields, nil
}

// treeCPUTime returns the CPU time used by pid, by its children now
// running, and by the children it has reaped: for a PostgreSQL postmaster,
// the whole server's CPU, including backends that have exited.
func treeCPUTime(pid int) (time.Duration, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, i := range []int{14, 15, 16, 17} { // utime stime cutime cstime
		v, err := strconv.ParseInt(fields[i-3], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	total := time.Duration(ticks) * time.Second / clockTick
	for _, child := range withChildren(pid)[1:] {
		if d, err := cpuTime(child); err == nil {
			total += d
		}
	}
	return total, nil
}

// rss returns pid's resident set size in bytes (0 if unknown).
func rss(pid int) int64 {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "statm"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// withChildren returns pid and the ids of its child processes (a
// PostgreSQL postmaster and its backends and workers).
func withChildren(pid int) []int {
	out := []int{pid}
	entries, _ := os.ReadDir("/proc")
	want := strconv.Itoa(pid)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if f, err := statFields(child); err == nil && f[1] == want {
			out = append(out, child)
		}
	}
	return out
}
