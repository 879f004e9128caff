package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/migrations"
	"github.com/shaledb/shaledb/server"
	"github.com/shaledb/shaledb/sql/keys"
)

// syncBuffer is a bytes.Buffer safe to read while start writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestStartServesHealthAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- start(ctx, startConfig{DataDir: dir, Listen: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, &out, io.Discard)
	}()
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == "" && time.Now().Before(deadline); {
		url = regexp.MustCompile(`http://\S+/healthz`).FindString(out.String())
		time.Sleep(10 * time.Millisecond)
	}
	if url == "" {
		cancel()
		t.Fatalf("no health URL printed; output:\n%s", out.String())
	}
	if !regexp.MustCompile(`psql "postgres://admin:\S+@127\.0\.0\.1:\d+/system"`).MatchString(out.String()) {
		t.Errorf("start did not print a psql command line:\n%s", out.String())
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("start returned %v after cancel", err)
	}
	// The store was closed cleanly: it opens again.
	s, err := badgerkv.Open(badgerkv.Options{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after shutdown: %v", err)
	}
	s.Close()
}

func TestStartRefusesNewerFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := badgerkv.Open(badgerkv.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, keys.MetaFormatVersion(), binary.BigEndian.AppendUint64(nil, migrations.Latest()+1))
	})
	s.Close()
	err = start(ctx, startConfig{DataDir: dir, Listen: "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "run a newer shaledb") {
		t.Fatalf("start on a newer store: got %v", err)
	}
}

func TestStartRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := badgerkv.Open(badgerkv.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := start(context.Background(), startConfig{DataDir: dir, Listen: "127.0.0.1:0"}, io.Discard, io.Discard); err == nil {
		t.Fatal("a second node opened a data directory in use")
	}
}

func TestCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"start"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("start without --data-dir: %v", err)
	}
	if err := run([]string{"frobnicate"}, &out, &errOut); err == nil {
		t.Error("unknown command accepted")
	}
	if err := run([]string{"version"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "store format") {
		t.Errorf("version: %v %q", err, out.String())
	}
}

func TestMemoryLimitFlag(t *testing.T) {
	for in, want := range map[string]int64{"384MiB": 384 << 20, "2GiB": 2 << 30, "512KiB": 512 << 10, "1048576": 1 << 20, "0": 0, "10B": 10} {
		cfg, err := parseStart([]string{"--data-dir", "d", "--memory-limit", in}, io.Discard)
		if err != nil || cfg.MemoryLimit != want {
			t.Errorf("--memory-limit %s = %d, %v; want %d", in, cfg.MemoryLimit, err, want)
		}
	}
	for _, bad := range []string{"", "12XB", "-1MiB", "lots", "99999999999TiB"} {
		if _, err := parseStart([]string{"--data-dir", "d", "--memory-limit", bad}, io.Discard); err == nil {
			t.Errorf("--memory-limit %q accepted", bad)
		}
	}
	if cfg, _ := parseStart([]string{"--data-dir", "d"}, io.Discard); cfg.MemoryLimit != defaultMemoryLimit {
		t.Errorf("default memory limit %d", cfg.MemoryLimit)
	}
}

// TestTenantCLI runs `shaledb tenant ...` end to end against a running
// node: by --url and by PG* environment variables.
func TestTenantCLI(t *testing.T) {
	ctx := context.Background()
	node, err := server.Start(ctx, server.Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "sys-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown(ctx)
	host, port, _ := net.SplitHostPort(node.Addr().String())
	url := "postgres://admin:sys-pw@" + node.Addr().String() + "/system"
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(append([]string{"tenant"}, args...), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := cli("create", "acme", "--url", url, "--password", "acme-pw")
	if err != nil || !strings.Contains(out, "created tenant acme (id 2)") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	// A generated password is printed once, and works.
	out, err = cli("create", "globex", "--url", url)
	m := regexp.MustCompile(`admin password \(shown once\): (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("create with a generated password: %v\n%s", err, out)
	}
	c, err := pgx.Connect(ctx, "postgres://admin:"+m[1]+"@"+node.Addr().String()+"/globex")
	if err != nil {
		t.Fatalf("connect with the printed password: %v", err)
	}
	c.Close(ctx)
	// The same through PG* variables.
	t.Setenv("PGHOST", host)
	t.Setenv("PGPORT", port)
	t.Setenv("PGUSER", "admin")
	t.Setenv("PGPASSWORD", "sys-pw")
	t.Setenv("PGSSLMODE", "disable")
	if out, err := cli("set-limit", "acme", "max_storage_bytes", "10MiB"); err != nil || !strings.Contains(out, "max_storage_bytes = 10485760") {
		t.Fatalf("set-limit: %v\n%s", err, out)
	}
	if out, err := cli("set-limit", "acme", "max_qps", "none"); err != nil || !strings.Contains(out, "max_qps = none") {
		t.Fatalf("set-limit none: %v\n%s", err, out)
	}
	out, err = cli("list")
	if err != nil || !regexp.MustCompile(`(?m)^acme\s+2\s+.*10\.0MiB`).MatchString(out) || !strings.Contains(out, "(3 tenants)") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// Errors are readable and carry their SQLSTATE.
	if out, err := cli("create", "acme", "--password", "x"); err == nil || !strings.Contains(err.Error(), `tenant "acme" already exists (SQLSTATE 42P04)`) {
		t.Fatalf("duplicate: %v\n%s", err, out)
	}
	if _, err := cli("set-limit", "acme", "max_bananas", "3"); err == nil || !strings.Contains(err.Error(), "22023") {
		t.Fatalf("unknown limit: %v", err)
	}
	if _, err := cli("drop"); err == nil {
		t.Fatal("drop without a name succeeded")
	}
	if out, err := cli("drop", "acme"); err != nil || !strings.Contains(out, "dropped tenant acme") {
		t.Fatalf("drop: %v\n%s", err, out)
	}
	if out, err := cli("list"); err != nil || strings.Contains(out, "acme") || !strings.Contains(out, "(2 tenants)") {
		t.Fatalf("list after drop: %v\n%s", err, out)
	}
	// A tenant's own admin is refused.
	t.Setenv("PGDATABASE", "globex")
	t.Setenv("PGPASSWORD", m[1])
	if _, err := cli("list"); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Fatalf("list as a tenant admin: %v", err)
	}
}
