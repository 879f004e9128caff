package server

import (
	"context"
	"testing"
	"time"
)

// TestUpdateLocksOnlyRowsItChanges: as in PostgreSQL, an UPDATE locks the
// rows its WHERE selects, not every row its key finds. A point UPDATE
// whose other condition fails leaves the row free; one whose WHERE is its
// key alone (read and locked in one step, executor.collectPoint) holds it.
func TestUpdateLocksOnlyRowsItChanges(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	a, b := mustConnect(t, url), mustConnect(t, url)
	if _, err := a.Exec(ctx, "CREATE TABLE r (id int PRIMARY KEY, v int); INSERT INTO r VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if tag, err := a.Exec(ctx, "UPDATE r SET v = 1 WHERE id = 1 AND v = 99"); err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("UPDATE of no row: %v %v", tag, err)
	}
	if tag, err := a.Exec(ctx, "UPDATE r SET v = 1 WHERE id = 2"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("UPDATE of row 2: %v %v", tag, err)
	}
	// Row 1 is free; row 2 is a's until it commits.
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := b.Exec(bctx, "UPDATE r SET v = 2 WHERE id = 1"); err != nil {
		t.Fatalf("row 1 stayed locked by an UPDATE that did not select it: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "UPDATE r SET v = v + 10 WHERE id = 2")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("an UPDATE of row 2 did not wait for a's lock (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := a.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var v1, v2 int
	if err := a.QueryRow(ctx, "SELECT (SELECT v FROM r WHERE id = 1), (SELECT v FROM r WHERE id = 2)").Scan(&v1, &v2); err != nil || v1 != 2 || v2 != 11 {
		t.Fatalf("rows hold %d and %d (%v), want 2 and 11", v1, v2, err)
	}
}
