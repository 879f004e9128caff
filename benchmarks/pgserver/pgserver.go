// Package pgserver starts a throwaway PostgreSQL 15 for oracle tests and
// side-by-side benchmarks: initdb into a fresh temporary directory, a free
// loopback port, durability on (fsync, synchronous_commit) as on ShaleDB,
// the C collation (byte order, as ShaleDB sorts text), and trust
// authentication on 127.0.0.1 only.
//
// PostgreSQL refuses to run as root; when the caller is root, initdb and
// the server run as the `postgres` system user, started directly (not
// through su or pg_ctl) so the PID held is the postmaster's own and Stop
// ends exactly that process.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configure a server. The zero value is valid.
type Options struct {
	// BinDir holds initdb, postgres and pg_isready.
	// Default /usr/lib/postgresql/15/bin.
	BinDir string
	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
	// StartTimeout bounds initdb plus start-up. Default 60s.
	StartTimeout time.Duration
}

// Server is a running PostgreSQL.
type Server struct {
	Host string // 127.0.0.1
	Port int
	// User is the superuser name; no password is needed.
	User string

	dir  string
	cmd  *exec.Cmd
	done chan error
	log  string
}

const defaultBinDir = "/usr/lib/postgresql/15/bin"

// Start runs initdb and starts the server, retrying on another port if the
// one picked was taken in the meantime.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.BinDir == "" {
		opts.BinDir = defaultBinDir
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shaledb-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgserver: chown %s: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--locale=C", "--encoding=UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgserver: initdb: %w\n%s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := launch(ctx, opts, cred, dir, data)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// credential returns the postgres user's credential when running as root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the postgres system user: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func launch(ctx context.Context, opts Options, cred *syscall.Credential, dir, data string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pgserver: pick a port: %w", err)
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": dir,
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"max_connections":         "200",
		"shared_buffers":          "256MB",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", data}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(opts.BinDir, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgserver: start postgres: %w", err)
	}
	s := &Server{Host: "127.0.0.1", Port: port, User: "postgres", dir: dir, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { s.done <- cmd.Wait() }()
	for {
		ready := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "pg_isready"), "-q", "-h", s.Host, "-p", strconv.Itoa(port), "-U", s.User)
		if ready.Run() == nil {
			return s, nil
		}
		select {
		case err := <-s.done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgserver: postgres exited during start-up (%v):\n%s", err, out)
		case <-ctx.Done():
			s.kill()
			return nil, fmt.Errorf("pgserver: postgres not ready: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL is a connection URL for database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.User, s.Host, s.Port, db)
}

// Log returns the server's log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

func (s *Server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10s) and
// removes its directory.
func (s *Server) Stop() error {
	defer os.RemoveAll(s.dir)
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgserver: stop: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
	}
	return nil
}

// Exec runs a SQL script with psql, each statement in its own transaction,
// stopping at the first error, and returns its output; for setup, not for
// measurement.
func (s *Server) Exec(ctx context.Context, db, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", s.URL(db), "-f", "-")
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pgserver: psql: %w: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
