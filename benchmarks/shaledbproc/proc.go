// Package shaledbproc runs a shaledb binary as a child process for the
// benchmarks: started on a data directory with a known admin password and
// a free loopback port, stopped cleanly with SIGTERM.
package shaledbproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
)

// AdminPassword is the system tenant admin's password in a started node.
const AdminPassword = "bench"

// Proc is a running shaledb node.
type Proc struct {
	Cmd  *exec.Cmd
	Port int
}

// Start runs `binary start --data-dir dir --listen 127.0.0.1:0` and waits
// until it reports its address.
func Start(ctx context.Context, binary, dir string) (*Proc, error) {
	cmd := exec.CommandContext(ctx, binary, "start", "--data-dir", dir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "SHALEDB_ADMIN_PASSWORD="+AdminPassword)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`postgres:\s+127\.0\.0\.1:(\d+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			port, _ := strconv.Atoi(m[1])
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return &Proc{Cmd: cmd, Port: port}, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, errors.New("shaledb did not report its address")
}

// Pid is the node's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop shuts the node down cleanly (SIGTERM) and waits for it.
func (p *Proc) Stop() error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.Cmd.Wait()
}

// URL is a connection URL for user of tenant db.
func (p *Proc) URL(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, password, p.Port, db)
}
