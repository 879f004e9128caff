package server

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestExplainShowsTheChosenScan asserts, through EXPLAIN, which read the
// planner chooses for each shape of WHERE clause.
func TestExplainShowsTheChosenScan(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		c := connect(t, url, mode)
		if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS ex (a int, b int, c text, PRIMARY KEY (a, b))"); err != nil {
			t.Fatal(err)
		}
		plan := func(q string, args ...any) string {
			t.Helper()
			rows, err := c.Query(ctx, "EXPLAIN "+q, args...)
			if err != nil {
				t.Fatalf("EXPLAIN %s: %v", q, err)
			}
			var lines []string
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, strings.TrimSpace(l))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return strings.Join(lines, "\n")
		}
		for _, tc := range []struct{ q, want string }{
			{"SELECT * FROM ex WHERE a = 1 AND b = 2", "Point Get on ex (primary key a = …, b = …)"},
			{"SELECT * FROM ex WHERE a = 1 AND b > 2", "Range Scan on ex (primary key a = …, b in a range)"},
			{"SELECT * FROM ex WHERE a = 1", "Range Scan on ex (primary key a = …)"},
			{"SELECT * FROM ex WHERE c || 'y' = 'xy'", "Full Scan on ex, filtered"},
			{"SELECT c, count(*) FROM ex GROUP BY c", "Hash Aggregate (1 group key)"},
			{"SELECT * FROM ex WHERE a = (SELECT max(a) FROM ex) AND b = 1", "Point Get on ex (primary key a = …, b = …)"},
			{"SELECT * FROM ex e WHERE EXISTS (SELECT 1 FROM ex x WHERE x.a = e.b AND x.b = e.a)", "SubPlan\n->  Project\n->  Point Get on ex (primary key a = …, b = …)"},
			{"SELECT a FROM ex UNION ALL SELECT b FROM ex", "Append"},
			{"DELETE FROM ex WHERE a = 3 AND b = 4", "Delete on ex\n->  Point Get on ex"},
			// Joins: the primary key of the right table fixed by the left
			// row is a lookup (index nested-loop) join; other equalities
			// hash; no equality compares every pair.
			{"SELECT * FROM ex l JOIN ex r ON r.a = l.b AND r.b = l.a", "Inner Lookup Join (index nested loop into the right table)\n->  Full Scan on ex\n->  Point Get on ex (primary key a = …, b = …)"},
			{"SELECT * FROM ex l LEFT JOIN ex r ON r.a = l.b", "Left Lookup Join"},
			{"SELECT * FROM ex l FULL JOIN ex r ON r.a = l.b", "Full Hash Join (1 key)"},
			{"SELECT * FROM ex l JOIN ex r ON r.a < l.b", "Inner Nested Loop Join"},
			{"SELECT * FROM ex l, ex r WHERE r.a = l.b AND r.b = l.a AND l.a = 5", "Inner Lookup Join (index nested loop into the right table)\n->  Range Scan on ex (primary key a = …)"},
			// A FROM list holding an outer join (as psql's \d queries do):
			// WHERE's equalities still join the items by hash.
			{"SELECT * FROM ex l, ex m LEFT JOIN ex r ON r.a = m.b WHERE l.c = m.c AND l.a = 5", "Inner Hash Join (1 key)\n->  Range Scan on ex (primary key a = …)"},
		} {
			if got := plan(tc.q); !strings.Contains(got, tc.want) {
				t.Errorf("%v: EXPLAIN %s:\n%s\nwant it to contain %q", mode, tc.q, got, tc.want)
			}
		}
		if mode == pgx.QueryExecModeSimpleProtocol {
			for _, q := range []string{"CREATE INDEX ex_c ON ex (c)", "CREATE UNIQUE INDEX ex_cb ON ex (c, b)"} {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range []struct{ q, want string }{
			{"SELECT * FROM ex WHERE c = 'x'", "Range Scan on ex (index ex_c c = …)"},
			{"SELECT * FROM ex WHERE c = 'x' AND b = 3", "Point Get on ex (index ex_cb c = …, b = …)"},
			{"SELECT * FROM ex WHERE c > 'x'", "Range Scan on ex (index ex_c c in a range)"},
			{"SELECT * FROM ex WHERE a = 1 AND c = 'x'", "Range Scan on ex (primary key a = …)"}, // a tie keeps the primary key
			{"SELECT * FROM ex WHERE a = 1 AND b = 2 AND c = 'x'", "Point Get on ex (primary key a = …, b = …)"},
			{"SELECT * FROM ex l JOIN ex r ON r.c = l.c", "Inner Lookup Join (index nested loop into the right table)\n->  Full Scan on ex\n->  Range Scan on ex (index ex_c c = …)"},
		} {
			if got := plan(tc.q); !strings.Contains(got, tc.want) {
				t.Errorf("%v: EXPLAIN %s:\n%s\nwant it to contain %q", mode, tc.q, got, tc.want)
			}
		}
		if got := plan("SELECT * FROM ex WHERE a = $1 AND b = $2", 1, 2); !strings.Contains(got, "Point Get") {
			t.Errorf("with parameters: %s", got)
		}
		if _, err := c.Exec(ctx, "EXPLAIN ANALYZE SELECT 1"); sqlstate(err) != "0A000" {
			t.Errorf("EXPLAIN ANALYZE: %v", err)
		}
	}
}

// TestConcurrentUpserts: concurrent INSERT … ON CONFLICT DO UPDATE of one
// key lose no increment (the conflicting row is locked before update).
func TestConcurrentUpserts(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	setup := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := setup.Exec(ctx, "CREATE TABLE counters (k text PRIMARY KEY, n int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 40
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		c := connect(t, url, pgx.QueryExecModeCacheStatement)
		go func() {
			for i := 0; i < each; i++ {
				if _, err := c.Exec(ctx, "INSERT INTO counters VALUES ('hits', 1) ON CONFLICT (k) DO UPDATE SET n = counters.n + 1"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := setup.QueryRow(ctx, "SELECT n FROM counters WHERE k = 'hits'").Scan(&n); err != nil || n != workers*each {
		t.Fatalf("counter %d (%v), want %d", n, err, workers*each)
	}
}
