package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func startNode(t *testing.T) (*Node, string) {
	t.Helper()
	n, err := Start(context.Background(), Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return n, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=disable", n.Addr())
}

// execModes are pgx's ways of running a statement: the simple protocol,
// the extended one with a fresh statement, and with a cached one.
var execModes = []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement}

// connectInMode connects with pgx running statements in mode, closed when
// the test ends.
func connectInMode(t *testing.T, url string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// mustConnect opens a connection the test closes when it ends.
func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestPgxEndToEnd(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	for _, mode := range execModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := connectInMode(t, url, mode)
			tbl := "t_" + fmt.Sprint(int(mode))
			if _, err := conn.Exec(ctx, "CREATE TABLE "+tbl+" (id bigint PRIMARY KEY, name text NOT NULL, score numeric(10,2), ok boolean)"); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 5; i++ {
				if _, err := conn.Exec(ctx, "INSERT INTO "+tbl+" VALUES ($1, $2, $3, $4)", i, fmt.Sprint("n", i), fmt.Sprintf("%d.5", i), i%2 == 0); err != nil {
					t.Fatalf("insert %d: %v", i, err)
				}
			}
			var name string
			var ok bool
			if err := conn.QueryRow(ctx, "SELECT name, ok FROM "+tbl+" WHERE id = $1", 4).Scan(&name, &ok); err != nil || name != "n4" || !ok {
				t.Fatalf("point read: %q %v %v", name, ok, err)
			}
			var count int64
			var sum string
			if err := conn.QueryRow(ctx, "SELECT count(*), sum(score)::text FROM "+tbl+" WHERE id >= $1", 2).Scan(&count, &sum); err != nil || count != 4 || sum != "16.00" {
				t.Fatalf("aggregate: %d %q %v", count, sum, err)
			}
			_, err := conn.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1, 'dup', 0, true)")
			if sqlstate(err) != "23505" {
				t.Fatalf("duplicate key: %v", err)
			}
			_, err = conn.Exec(ctx, "SELECT * FROM nosuch")
			if sqlstate(err) != "42P01" {
				t.Fatalf("missing table: %v", err)
			}
			// The connection survives errors.
			if err := conn.QueryRow(ctx, "SELECT 1 + 1").Scan(&count); err != nil || count != 2 {
				t.Fatalf("after errors: %d %v", count, err)
			}
		})
	}
}
