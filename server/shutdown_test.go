package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestShutdownLetsStatementsFinish: Shutdown stops accepting connections,
// lets a running statement finish and answers it, ends idle sessions with
// 57P01, and closes the store.
func TestShutdownLetsStatementsFinish(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=disable", n.Addr())
	busy := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	idle := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := busy.Exec(ctx, "CREATE TABLE s (id int PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO s VALUES ")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, "(%d, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')", i)
	}
	if _, err := busy.Exec(ctx, sb.String()); err != nil {
		t.Fatal(err)
	}
	// A statement that runs for a while: many aggregate rounds.
	result := make(chan error, 1)
	go func() {
		_, err := busy.Exec(ctx, strings.Repeat("SELECT count(*), max(pad || id::text) FROM s;", 150))
		result <- err
	}()
	time.Sleep(50 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", n.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the server still accepts connections while shutting down")
	}
	if err := <-result; err != nil {
		t.Fatalf("the running statement did not finish: %v", err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not finish")
	}
	var one int
	err = idle.QueryRow(ctx, "SELECT 1").Scan(&one)
	if err == nil {
		t.Fatal("an idle session still works after shutdown")
	}
}
