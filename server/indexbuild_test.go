package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
)

// TestCreateIndexOnline builds an index while writers insert, update the
// indexed column and delete, in autocommit and in transaction blocks
// that straddle the build, and readers compare counts through the index
// with counts through the table in one snapshot. Nothing may fail but
// the deadlocks of blocks that lock rows in random order: not even with
// 40001, as a build that wrote entries under a writer's snapshot would
// make it; the readers never see a half-built index; and at the end the
// index holds exactly the table's rows.
func TestCreateIndexOnline(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	connect := func() *pgx.Conn { return mustConnect(t, url) }
	admin := connect()
	const rows = 3000
	if _, err := admin.Exec(ctx, "CREATE TABLE acct (id int PRIMARY KEY, grp int NOT NULL, pad text)"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, admin, "acct", rows, func(i int) string { return fmt.Sprintf("(%d, %d, repeat('x', 20))", i, i%50) })
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var writes, blocks, retried, reads atomic.Int64
	for w := 0; w < 4; w++ {
		c := connect()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			next := rows + 1 + w*1_000_000
			for !stop.Load() {
				var err error
				switch op := r.IntN(10); {
				case op < 3:
					_, err = c.Exec(ctx, "INSERT INTO acct VALUES ($1, $2, 'new')", next, r.IntN(50))
					next++
				case op < 7:
					_, err = c.Exec(ctx, "UPDATE acct SET grp = $2 WHERE id = $1", 1+r.IntN(rows), r.IntN(50))
				case op < 8:
					_, err = c.Exec(ctx, "DELETE FROM acct WHERE id = $1", 1+r.IntN(rows))
				default:
					// A block that holds its snapshot across a few writes.
					blocks.Add(1)
					err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
						for i := 0; i < 3; i++ {
							if _, err := tx.Exec(ctx, "UPDATE acct SET grp = (grp + 1) % 50 WHERE id = $1", 1+r.IntN(rows)); err != nil {
								return err
							}
							time.Sleep(2 * time.Millisecond)
						}
						_, err := tx.Exec(ctx, "INSERT INTO acct VALUES ($1, $2, 'blk')", next, r.IntN(50))
						next++
						return err
					})
				}
				if sqlstate(err) == "40P01" {
					// Blocks lock rows in random order.
					retried.Add(1)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("writer: %w", err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	for rd := 0; rd < 2; rd++ {
		c := connect()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var viaIndex, viaTable int64
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if err := tx.QueryRow(ctx, "SELECT count(*) FROM acct WHERE grp >= 0 AND grp < 50").Scan(&viaIndex); err != nil {
						return err
					}
					return tx.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&viaTable)
				})
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if viaIndex != viaTable {
					errs <- fmt.Errorf("reader: %d rows by the grp range, %d in the table: a half-built index was used", viaIndex, viaTable)
					return
				}
				reads.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	started := time.Now()
	if _, err := admin.Exec(ctx, "CREATE INDEX acct_grp ON acct (grp)"); err != nil {
		t.Fatal(err)
	}
	built := time.Since(started)
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("built in %v beside %d writes (%d blocks, %d deadlocks) and %d consistent reads", built, writes.Load(), blocks.Load(), retried.Load(), reads.Load())
	if writes.Load() == 0 || reads.Load() == 0 {
		t.Fatal("the writers or readers never ran")
	}

	var plan strings.Builder
	rs, err := admin.Query(ctx, "EXPLAIN SELECT id, grp FROM acct WHERE grp >= 0 AND grp < 50")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var line string
		if err := rs.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if rs.Err() != nil {
		t.Fatal(rs.Err())
	}
	if !strings.Contains(plan.String(), "acct_grp") {
		t.Fatalf("the index is not used once built:\n%s", plan.String())
	}
	// Through the index (every entry leads to a row with that grp) and
	// through the table: the same rows, each once.
	byIndex := queryPairs(t, admin, "SELECT id, grp FROM acct WHERE grp >= 0 AND grp < 50")
	byTable := queryPairs(t, admin, "SELECT id, grp FROM acct")
	if len(byIndex) != len(byTable) {
		t.Fatalf("%d rows through the index, %d in the table", len(byIndex), len(byTable))
	}
	for id, g := range byTable {
		if gi, ok := byIndex[id]; !ok || gi != g {
			t.Fatalf("row %d (grp %d) is missing from the index or wrong there (%d, %v)", id, g, gi, ok)
		}
	}
	for g := 0; g < 50; g += 7 {
		var n1, n2 int64
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM acct WHERE grp = $1", g).Scan(&n1); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM acct WHERE grp + 0 = $1", g).Scan(&n2); err != nil {
			t.Fatal(err)
		}
		if n1 != n2 {
			t.Fatalf("grp %d: %d entries, %d rows", g, n1, n2)
		}
	}
}

// insertRows inserts rows 1..n into table, row(i) giving each one's
// VALUES tuple, 500 to a statement.
func insertRows(t *testing.T, c *pgx.Conn, table string, n int, row func(i int) string) {
	t.Helper()
	for lo := 1; lo <= n; lo += 500 {
		var vals []string
		for i := lo; i <= n && i < lo+500; i++ {
			vals = append(vals, row(i))
		}
		if _, err := c.Exec(context.Background(), "INSERT INTO "+table+" VALUES "+strings.Join(vals, ", ")); err != nil {
			t.Fatal(err)
		}
	}
}

// queryPairs runs a query of (id, grp) rows, failing on a repeated id.
func queryPairs(t *testing.T, c *pgx.Conn, q string) map[int64]int64 {
	t.Helper()
	rs, err := c.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for rs.Next() {
		var id, g int64
		if err := rs.Scan(&id, &g); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[id]; dup {
			t.Fatalf("%s: row %d twice (a stale index entry)", q, id)
		}
		out[id] = g
	}
	if rs.Err() != nil {
		t.Fatal(rs.Err())
	}
	return out
}

// TestCreateIndexWaitsAndFails: a build waits for a transaction that
// began before it; a unique build that meets a duplicate fails with
// 23505 after its CommandComplete (in a block, at COMMIT), leaves no
// index behind, and the name can be used again.
func TestCreateIndexWaitsAndFails(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	a, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE u (id int PRIMARY KEY, v int)"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, a, "u", 500, func(i int) string { return fmt.Sprintf("(%d, %d)", i, i) })
	// b's block began before the build and writes after the index is
	// known to new transactions: the build must wait for it.
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM u LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, "CREATE UNIQUE INDEX u_v ON u (v)")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the build did not wait for an older transaction: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// A duplicate committed by the old transaction: the build finds it.
	if _, err := tx.Exec(ctx, "INSERT INTO u VALUES (1000, 7)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; sqlstate(err) != "23505" || !strings.Contains(err.Error(), `could not create unique index "u_v"`) {
		t.Fatalf("want 23505 from the build, got %v", err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'u_v'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed build left its index in pg_class: %d, %v", n, err)
	}
	// The table takes the duplicate's twin, then the index builds.
	if _, err := a.Exec(ctx, "INSERT INTO u VALUES (1001, 7)"); err != nil {
		t.Fatalf("a failed build still enforces uniqueness: %v", err)
	}
	if _, err := a.Exec(ctx, "DELETE FROM u WHERE id >= 1000"); err != nil {
		t.Fatal(err)
	}
	// In a block, the build runs at COMMIT.
	tx2, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, "CREATE UNIQUE INDEX u_v ON u (v)"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, "INSERT INTO u VALUES (2000, 2000)"); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO u VALUES (2001, 2000)"); sqlstate(err) != "23505" {
		t.Fatalf("the index built at COMMIT does not hold the block's own row: %v", err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO u VALUES (2002, 5)"); sqlstate(err) != "23505" {
		t.Fatalf("the index built at COMMIT is not enforced: %v", err)
	}
}

// TestInterruptedIndexBuildIsAbandoned puts a node's data in the state a
// crash in the middle of a build leaves (an index still building, its
// marker, some of its entries) and checks that the next start takes the
// index and every one of its entries away.
func TestInterruptedIndexBuildIsAbandoned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", AdminPassword: "secret"}
	n := startWithIndexedTable(t, cfg)
	var err error
	// Turn the built index back into one being built, as a crash leaves it.
	codec := keys.MakeCodec(keys.SystemTenantID)
	cat := catalog.New(codec)
	var table *catalog.Table
	err = kvcluster.Update(ctx, n.store, 1, func(txn kvcluster.Txn) error {
		tb, err := cat.MustTable(ctx, txn, "h")
		if err != nil {
			return err
		}
		if len(tb.Indexes) != 1 {
			return fmt.Errorf("want one index, have %d", len(tb.Indexes))
		}
		tb.Indexes[0].Building = true
		table = tb
		if err := txn.Put(ctx, keys.MetaIndexBuild(keys.SystemTenantID, tb.ID, tb.Indexes[0].ID), nil); err != nil {
			return err
		}
		return cat.UpdateTable(ctx, txn, tb)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countSpan(t, n.store, codec, table.ID, table.Indexes[0].ID); got != 300 {
		t.Fatalf("%d entries before the restart, want 300", got)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	n, err = Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	if got := countSpan(t, n.store, codec, table.ID, table.Indexes[0].ID); got != 0 {
		t.Fatalf("%d entries of the abandoned index left", got)
	}
	err = kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) error {
		if err := noBuildMarkers(ctx, txn); err != nil {
			return err
		}
		tb, err := cat.MustTable(ctx, txn, "h")
		if err == nil && len(tb.Indexes) != 0 {
			b, _ := json.Marshal(tb.Indexes)
			err = fmt.Errorf("the index is still in the descriptor: %s", b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=disable", n.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE INDEX h_v ON h (v)"); err != nil {
		t.Fatalf("the name is not free again: %v", err)
	}
	var k int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM h WHERE v > 100").Scan(&k); err != nil || k != 200 {
		t.Fatalf("after rebuilding: %d rows, %v", k, err)
	}
}

// TestStaleIndexBuildMarkers: a build's marker is written before the
// statement's transaction commits and removed after the build ends, each
// in a transaction of its own (the metadata may live on another shard).
// A crash can therefore leave a marker of an index that is public (after
// the last step) or that never was (before the commit). The next start
// removes both markers and leaves the public index, with its entries.
func TestStaleIndexBuildMarkers(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminPassword: "secret"}
	n := startWithIndexedTable(t, cfg)
	var err error
	codec := keys.MakeCodec(keys.SystemTenantID)
	cat := catalog.New(codec)
	var table *catalog.Table
	err = kvcluster.Update(ctx, n.store, 1, func(txn kvcluster.Txn) error {
		if table, err = cat.MustTable(ctx, txn, "h"); err != nil {
			return err
		}
		public := table.Indexes[0].ID
		for _, ix := range []keys.IndexID{public, table.NextIndexID} {
			if err := txn.Put(ctx, keys.MetaIndexBuild(keys.SystemTenantID, table.ID, ix), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err = Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	err = kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) error {
		if err := noBuildMarkers(ctx, txn); err != nil {
			return err
		}
		tb, err := cat.MustTable(ctx, txn, "h")
		if err == nil && (len(tb.Indexes) != 1 || tb.Indexes[0].Building) {
			b, _ := json.Marshal(tb.Indexes)
			err = fmt.Errorf("the public index did not stay: %s", b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countSpan(t, n.store, codec, table.ID, table.Indexes[0].ID); got != 300 {
		t.Fatalf("%d entries of the public index, want 300", got)
	}
}

// startWithIndexedTable starts a node on cfg with table h of the system
// tenant: 300 rows and an index h_v on v.
func startWithIndexedTable(t *testing.T, cfg Config) *Node {
	t.Helper()
	ctx := context.Background()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=disable", n.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE h (id int PRIMARY KEY, v int)"); err != nil {
		t.Fatal(err)
	}
	insertRows(t, c, "h", 300, func(i int) string { return fmt.Sprintf("(%d, %d)", i, i) })
	if _, err := c.Exec(ctx, "CREATE INDEX h_v ON h (v)"); err != nil {
		t.Fatal(err)
	}
	return n
}

// noBuildMarkers fails if any index build marker is left.
func noBuildMarkers(ctx context.Context, txn kvcluster.Txn) error {
	start, end := keys.MetaIndexBuildSpan()
	kvs, err := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 10})
	if err == nil && len(kvs) != 0 {
		err = fmt.Errorf("%d build markers left", len(kvs))
	}
	return err
}

func countSpan(t *testing.T, kv kvcluster.KvCluster, codec keys.Codec, table keys.TableID, index keys.IndexID) int {
	t.Helper()
	n := 0
	err := kvcluster.View(context.Background(), kv, func(txn kvcluster.Txn) error {
		start, end := codec.IndexSpan(table, index)
		return kvcluster.ScanAll(context.Background(), txn, start, end, 256, func(kvcluster.KeyValue) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSetNotNullOnline: SET NOT NULL commits only once no writer that
// began before it is left. A NULL written by such a writer after the
// statement's own check fails it with 23502 and leaves the column
// nullable; without one it succeeds, and NULLs are refused. ADD COLUMN
// … NOT NULL on an empty table is undone the same way when an older
// writer adds a row, which reads NULL for the new column.
func TestSetNotNullOnline(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	a, b := mustConnect(t, url), mustConnect(t, url)
	if _, err := a.Exec(ctx, "CREATE TABLE nn (id int PRIMARY KEY, v int); INSERT INTO nn VALUES (1, 1), (2, 2)"); err != nil {
		t.Fatal(err)
	}
	// old began before the ALTER and writes a NULL after its check.
	racing := func(alter, write string) error {
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM nn LIMIT 1"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := a.Exec(ctx, alter)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("%s did not wait for an older transaction: %v", alter, err)
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := tx.Exec(ctx, write); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	if err := racing("ALTER TABLE nn ALTER COLUMN v SET NOT NULL", "INSERT INTO nn VALUES (3, NULL)"); sqlstate(err) != "23502" {
		t.Fatalf("want 23502 for the NULL an older writer added, got %v", err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO nn VALUES (4, NULL)"); err != nil {
		t.Fatalf("the failed SET NOT NULL still refuses NULLs: %v", err)
	}
	if _, err := a.Exec(ctx, "DELETE FROM nn WHERE v IS NULL"); err != nil {
		t.Fatal(err)
	}
	if err := racing("ALTER TABLE nn ALTER COLUMN v SET NOT NULL", "INSERT INTO nn VALUES (5, 5)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "INSERT INTO nn VALUES (6, NULL)"); sqlstate(err) != "23502" {
		t.Fatalf("want 23502 once NOT NULL is set, got %v", err)
	}
	var notnull bool
	if err := a.QueryRow(ctx, "SELECT is_nullable = 'NO' FROM information_schema.columns WHERE table_name = 'nn' AND column_name = 'v'").Scan(&notnull); err != nil || !notnull {
		t.Fatalf("the catalog does not show NOT NULL: %v %v", notnull, err)
	}

	if _, err := a.Exec(ctx, "CREATE TABLE e (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := racing("ALTER TABLE e ADD COLUMN w int NOT NULL", "INSERT INTO e VALUES (1)"); sqlstate(err) != "23502" {
		t.Fatalf("want 23502 for the row an older writer added, got %v", err)
	}
	var cols int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'e'").Scan(&cols); err != nil || cols != 1 {
		t.Fatalf("the failed ADD COLUMN left %d columns (%v)", cols, err)
	}
}
