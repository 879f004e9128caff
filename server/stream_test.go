package server

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestLargeResultsStream: a SELECT whose result is several times the
// memory bound streams through the extended protocol (pgx's default) and
// the simple one, so the node's heap stays bounded while the client reads
// it slowly.
func TestLargeResultsStream(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 150,000 rows")
	}
	_, url := startNode(t)
	ctx := context.Background()
	c := connect(t, url, pgx.QueryExecModeCacheStatement)
	if _, err := c.Exec(ctx, "CREATE TABLE big (id int PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	rows := 150_000
	if n, err := strconv.Atoi(os.Getenv("SHALEDB_LARGE_ROWS")); err == nil && n > 0 {
		rows = n // make test-large: 5,000,000
	}
	pad := strings.Repeat("x", 200)
	for done := 0; done < rows; {
		var sb strings.Builder
		for i := 0; i < 100_000 && done < rows; i++ {
			fmt.Fprintf(&sb, "%d\t%s\n", done, pad)
			done++
		}
		if _, err := c.PgConn().CopyFrom(ctx, strings.NewReader(sb.String()), "COPY big FROM STDIN"); err != nil {
			t.Fatal(err)
		}
	}
	// Let the store settle (memtable flushes and compactions of the load
	// allocate too) before measuring.
	if _, err := c.Exec(ctx, "SELECT count(*) FROM big"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		runtime.GC()
		base := heap()
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if h := heap(); h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		r, err := c.Query(ctx, "SELECT id, pad FROM big", mode)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for r.Next() {
			n++
			if n%5000 == 0 {
				runtime.GC() // a slow reader; garbage is not what is measured
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if n != rows {
			t.Fatalf("%v: %d rows, want %d", mode, n, rows)
		}
		// The result is about 32 MB of text; held whole it would be
		// several times that in the heap.
		grew := int64(peak.Load()) - int64(base)
		t.Logf("%v: %d rows streamed; the heap grew by at most %.1f MiB", mode, rows, float64(grew)/(1<<20))
		if grew > 48<<20 {
			t.Errorf("%v: the heap grew by %d MiB while streaming %d rows", mode, grew>>20, rows)
		}
	}
}
