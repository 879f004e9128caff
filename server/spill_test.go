package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestLargeTransactionsSpill loads more rows in one transaction than the
// node keeps in memory, so the writes spill to disk: the transaction reads
// its own spilled rows, commits them, and ALTER TABLE ... ADD PRIMARY KEY
// re-keys the table page by page (with a secondary unique index) and
// rejects duplicates without changing the table.
func TestLargeTransactionsSpill(t *testing.T) {
	dir := t.TempDir()
	n, err := Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", AdminPassword: "secret", TxnMemoryBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	}()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=disable", n.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	one := func(sql string, args ...any) int64 {
		t.Helper()
		var v int64
		if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	const rows = 20000
	exec("CREATE TABLE big (id int NOT NULL, grp int, name text, UNIQUE (name))")
	exec("CREATE TABLE dups (id int NOT NULL, pad text)")
	exec("BEGIN")
	var src strings.Builder
	for i := range rows {
		// Ids in an order unlike the insertion (rowid) order.
		id := (i*7919)%rows + 1
		fmt.Fprintf(&src, "%d\t%d\tname-%06d\n", id, id%10, id)
	}
	copyIn := func(stmt, data string) {
		t.Helper()
		if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(data), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	copyIn("COPY big (id, grp, name) FROM STDIN", src.String())
	if got := one("SELECT count(*) FROM big"); got != rows {
		t.Fatalf("count inside the loading transaction = %d", got)
	}
	exec("DELETE FROM big WHERE grp = 3")
	if got := one("SELECT count(*) FROM big WHERE grp = 3"); got != 0 {
		t.Fatalf("deleted rows still visible to their transaction: %d", got)
	}
	exec("COMMIT")
	want := int64(rows - rows/10)
	if got := one("SELECT count(*) FROM big"); got != want {
		t.Fatalf("count after commit = %d, want %d", got, want)
	}
	exec("ALTER TABLE big ADD PRIMARY KEY (id)")
	if got := one("SELECT count(*) FROM big"); got != want {
		t.Fatalf("count after ADD PRIMARY KEY = %d, want %d", got, want)
	}
	if got := one("SELECT grp FROM big WHERE id = $1", 12345); got != 5 {
		t.Fatalf("point read after ADD PRIMARY KEY: grp %d", got)
	}
	if got := one("SELECT sum(id) FROM big WHERE id BETWEEN 101 AND 110"); got != 1055-103 {
		// ids 101..110 minus those with id%10 == 3 (103)
		t.Fatalf("range sum = %d", got)
	}
	for _, stmt := range []string{
		"INSERT INTO big VALUES (12345, 0, 'fresh')",
		"INSERT INTO big VALUES (999999, 0, 'name-012345')",
	} {
		if _, err := conn.Exec(ctx, stmt); sqlstate(err) != "23505" {
			t.Fatalf("%s: %v, want 23505", stmt, err)
		}
	}
	exec("UPDATE big SET name = 'renamed' WHERE id = 7")
	if got := one("SELECT count(*) FROM big WHERE name = 'renamed'"); got != 1 {
		t.Fatalf("update through the rebuilt unique index: %d rows", got)
	}

	// A duplicate far from its twin fails the whole ALTER.
	var dup strings.Builder
	for i := 1; i < rows; i++ {
		fmt.Fprintf(&dup, "%d\tx\n", i)
	}
	dup.WriteString("1\tx\n")
	copyIn("COPY dups FROM STDIN", dup.String())
	if _, err := conn.Exec(ctx, "ALTER TABLE dups ADD PRIMARY KEY (id)"); sqlstate(err) != "23505" {
		t.Fatalf("ADD PRIMARY KEY over a duplicate: %v", err)
	}
	if got := one("SELECT count(*) FROM dups WHERE id = 1"); got != 2 {
		t.Fatalf("the failed ALTER changed the table: %d rows with id 1", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "txn-spill", "*")); len(m) != 0 {
		t.Fatalf("spills left behind: %v", m)
	}
}
