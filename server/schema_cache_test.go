package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSchemaChangesAreNeverServedStale races readers against a session
// that replaces a table in a loop: each round drops it and creates it
// again with a column named after the round, holding one row with the
// round's number. A reader that ever plans with a descriptor from another
// snapshot than its rows sees a column name that disagrees with the value,
// or no row at all.
func TestSchemaChangesAreNeverServedStale(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	connect := func() *pgx.Conn { return mustConnect(t, url) }
	writer := connect()
	if _, err := writer.Exec(ctx, "CREATE TABLE flip (c0 int); INSERT INTO flip VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	const rounds = 150
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
		reader := connect()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reads := 0; ; reads++ {
				select {
				case <-done:
					if reads == 0 {
						errs <- fmt.Errorf("reader never ran")
					}
					return
				default:
				}
				rows, err := reader.Query(ctx, "SELECT * FROM flip", pgx.QueryExecModeSimpleProtocol)
				if err != nil {
					errs <- err
					return
				}
				col := string(rows.FieldDescriptions()[0].Name)
				n := 0
				for rows.Next() {
					var v int64
					if err := rows.Scan(&v); err != nil {
						errs <- err
						return
					}
					if want := strconv.FormatInt(v, 10); strings.TrimPrefix(col, "c") != want {
						errs <- fmt.Errorf("column %s holds the value of round %d", col, v)
					}
					n++
				}
				if err := rows.Err(); err != nil {
					errs <- err
					return
				}
				if n != 1 {
					errs <- fmt.Errorf("read %d rows under column %s, want 1", n, col)
					return
				}
			}
		}()
	}
	for round := 1; round <= rounds; round++ {
		_, err := writer.Exec(ctx, fmt.Sprintf("BEGIN; DROP TABLE flip; CREATE TABLE flip (c%d bigint); INSERT INTO flip VALUES (%d); COMMIT", round, round))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPreparedStatementsFollowSchemaChanges: a prepared statement keeps
// its plan while its table is unchanged, is planned again when the table
// is replaced by one of the same shape, and fails as PostgreSQL does
// (0A000) when the result columns would change under the client.
func TestPreparedStatementsFollowSchemaChanges(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE p (id int PRIMARY KEY, v text)")
	exec("INSERT INTO p VALUES (1, 'one'), (2, 'two')")
	if _, err := conn.Prepare(ctx, "get", "SELECT v FROM p WHERE id = $1"); err != nil {
		t.Fatal(err)
	}
	get := func(id int) (string, error) {
		var v string
		err := conn.QueryRow(ctx, "get", id).Scan(&v)
		return v, err
	}
	for _, id := range []int{1, 2, 1} {
		if v, err := get(id); err != nil || v != map[int]string{1: "one", 2: "two"}[id] {
			t.Fatalf("get(%d) = %q, %v", id, v, err)
		}
	}
	exec("UPDATE p SET v = 'uno' WHERE id = 1")
	if v, err := get(1); err != nil || v != "uno" {
		t.Fatalf("after UPDATE: %q, %v", v, err)
	}
	// Same shape, new table: the plan must read the new one.
	exec("BEGIN; DROP TABLE p; CREATE TABLE p (id int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'new'); COMMIT")
	if v, err := get(1); err != nil || v != "new" {
		t.Fatalf("after the table was replaced: %q, %v", v, err)
	}
	// Another result type: refused, not decoded wrongly.
	exec("DROP TABLE p")
	exec("CREATE TABLE p (id int PRIMARY KEY, v int)")
	exec("INSERT INTO p VALUES (1, 7)")
	if _, err := get(1); sqlstate(err) != "0A000" {
		t.Fatalf("after the result type changed: %v, want 0A000", err)
	}
	exec("DROP TABLE p")
	if _, err := get(1); sqlstate(err) != "42P01" {
		t.Fatalf("after DROP TABLE: %v, want 42P01", err)
	}
}
