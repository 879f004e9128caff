package pgserver

import (
	"context"
	"os"
	"syscall"
	"testing"
)

func TestStartQueryStop(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	got, err := s.Exec(ctx, "postgres", "SHOW fsync; SHOW lc_collate; SELECT 'b' > 'B'")
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	if got != "on\nC\nt" {
		t.Errorf("settings = %q, want fsync on, C collation, byte order", got)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postgres %d still running after Stop", pid)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s left behind", s.dir)
	}
}
