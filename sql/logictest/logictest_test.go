// Package logictest runs the SQL behaviour files in testdata/ against
// ShaleDB and against a throwaway PostgreSQL 15, the oracle, in the same
// test: every statement runs on both, and the results must match.
//
// # File format
//
// Blocks are separated by blank lines; lines starting with # are comments.
// Each block is a directive line followed by SQL (one statement, or several
// separated by semicolons, sent as one simple-protocol query):
//
//	statement ok          both must succeed with the same command tags
//	statement error       both must fail with the same SQLSTATE
//	query                 both must return the same columns (names and
//	                      type OIDs) and rows, in order
//	query rowsort         the same, rows compared as multisets
//	connect USER [PW]     later blocks run as USER (PW is ShaleDB's
//	                      password; the oracle trusts), until the next
//	                      connect; "connect admin" returns to the
//	                      superuser. Connections are kept and reused.
//
// Rows are compared in PostgreSQL's text format, so output formatting
// (floats, numerics, timestamps) is compared too. A COPY … TO STDOUT block
// compares the bytes sent; in a COPY … FROM STDIN block the lines after the
// first are the data sent. Each file gets a fresh
// ShaleDB node and a fresh PostgreSQL database.
package logictest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shaledb/shaledb/benchmarks/pgserver"
	"github.com/shaledb/shaledb/server"
	"github.com/shaledb/shaledb/server/servertest"
)

var oracle *pgserver.Server

func TestMain(m *testing.M) {
	var err error
	oracle, err = pgserver.Start(context.Background(), pgserver.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "logictest: cannot start the PostgreSQL oracle:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = oracle.Stop()
	os.Exit(code)
}

type block struct {
	line      int
	directive string // "statement ok", "statement error", "query", "query rowsort"
	sql       string
}

func parseFile(path string) ([]block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var blocks []block
	var cur *block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "#"):
		case trimmed == "":
			if cur != nil {
				blocks = append(blocks, *cur)
				cur = nil
			}
		case cur == nil && strings.HasPrefix(trimmed, "connect "):
			blocks = append(blocks, block{line: n, directive: trimmed})
		case cur == nil:
			switch trimmed {
			case "statement ok", "statement error", "query", "query rowsort":
				cur = &block{line: n, directive: trimmed}
			default:
				return nil, fmt.Errorf("%s:%d: unknown directive %q", path, n, trimmed)
			}
		default:
			if cur.sql != "" {
				cur.sql += "\n"
			}
			cur.sql += line
		}
	}
	if cur != nil {
		blocks = append(blocks, *cur)
	}
	return blocks, sc.Err()
}

// outcome is what one side returned for a block.
type outcome struct {
	code string // SQLSTATE, "" on success
	msg  string
	tags []string
	cols []string // name:oid
	rows []string // tab-joined text values, NULL as ∅
}

func run(ctx context.Context, c *pgconn.PgConn, sql string) outcome {
	var o outcome
	upper := strings.ToUpper(sql)
	if strings.HasPrefix(upper, "COPY") {
		first, data, _ := strings.Cut(sql, "\n")
		var tag pgconn.CommandTag
		var err error
		var out strings.Builder
		if strings.Contains(strings.ToUpper(first), "FROM STDIN") {
			tag, err = c.CopyFrom(ctx, strings.NewReader(data+"\n"), first)
		} else {
			tag, err = c.CopyTo(ctx, &out, sql)
		}
		if err != nil {
			o.setError(err)
			return o
		}
		o.tags = []string{tag.String()}
		if out.Len() > 0 {
			o.rows = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		}
		return o
	}
	results, err := c.Exec(ctx, sql).ReadAll()
	for _, r := range results {
		o.tags = append(o.tags, r.CommandTag.String())
		for _, fd := range r.FieldDescriptions {
			o.cols = append(o.cols, fmt.Sprintf("%s:%d", fd.Name, fd.DataTypeOID))
		}
		for _, row := range r.Rows {
			vals := make([]string, len(row))
			for i, v := range row {
				if v == nil {
					vals[i] = "∅"
				} else {
					vals[i] = string(v)
				}
			}
			o.rows = append(o.rows, strings.Join(vals, "\t"))
		}
		if r.Err != nil && err == nil {
			err = r.Err
		}
	}
	if err != nil {
		o.setError(err)
	}
	return o
}

// setError records err's SQLSTATE, or "connection" for a non-SQL error.
func (o *outcome) setError(err error) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		o.code, o.msg = pe.Code, pe.Message
		return
	}
	o.code, o.msg = "connection", err.Error()
}

func TestLogic(t *testing.T) {
	forEachFile(t, func(t *testing.T, path, name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		node, err := server.Start(ctx, server.Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		defer node.Shutdown(context.Background())
		runFile(t, path, name, []string{node.Addr().String()})
	})
}

// TestLogicCluster runs every file against a fresh 3-node cluster
// (kvcluster/raft, metadata in a real etcd): the admin session on one
// node, each further session on the next node round the ring, so
// statements reach shard leaders through other nodes. Shards split past
// 16 KiB, so tenants soon sit on shards apart from the metadata and from
// each other, and every statement must keep its writes on one shard.
func TestLogicCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster per file")
	}
	forEachFile(t, func(t *testing.T, path, name string) {
		runFile(t, path, name, startCluster(t))
	})
}

// startCluster starts a 3-node cluster and returns its nodes' PostgreSQL
// addresses.
func startCluster(t *testing.T) []string {
	var addrs []string
	small := func(cc *server.ClusterConfig) { cc.ShardMaxBytes = 16 << 10 }
	for _, n := range servertest.StartCluster(t, 3, "pw", small) {
		addrs = append(addrs, n.Addr().String())
	}
	return addrs
}

func forEachFile(t *testing.T, fn func(t *testing.T, path, name string)) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".test")
		t.Run(name, func(t *testing.T) { fn(t, path, name) })
	}
}

// runFile runs one file's blocks against ShaleDB (sessions on addrs, in
// turn) and PostgreSQL, comparing results.
func runFile(t *testing.T, path, name string, addrs []string) {
	blocks, err := parseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shale, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://admin:pw@%s/system?sslmode=disable", addrs[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer shale.Close(ctx)

	db := "lt_" + strings.ReplaceAll(name, "-", "_")
	if _, err := oracle.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db+";"); err != nil {
		t.Fatal(err)
	}
	pgc, err := pgconn.Connect(ctx, oracle.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer pgc.Close(ctx)

	type pair struct{ shale, pg *pgconn.PgConn }
	conns := map[string]pair{"admin": {shale, pgc}}
	cur := conns["admin"]
	for _, b := range blocks {
		if f := strings.Fields(b.directive); f[0] == "connect" {
			p, ok := conns[f[1]]
			if !ok {
				pw := ""
				if len(f) > 2 {
					pw = f[2]
				}
				addr := addrs[len(conns)%len(addrs)]
				sc, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/system?sslmode=disable", f[1], pw, addr))
				if err != nil {
					t.Fatalf("%s:%d: connect to ShaleDB as %s: %v", path, b.line, f[1], err)
				}
				defer sc.Close(ctx)
				u := strings.Replace(oracle.URL(db), "postgres://"+oracle.User+"@", "postgres://"+f[1]+"@", 1)
				pc, err := pgconn.Connect(ctx, u)
				if err != nil {
					t.Fatalf("%s:%d: connect to PostgreSQL as %s: %v", path, b.line, f[1], err)
				}
				defer pc.Close(ctx)
				p = pair{sc, pc}
				conns[f[1]] = p
			}
			cur = p
			continue
		}
		shale, pgc := cur.shale, cur.pg
		want := run(ctx, pgc, b.sql)
		got := run(ctx, shale, b.sql)
		where := fmt.Sprintf("%s:%d", path, b.line)
		switch b.directive {
		case "statement ok", "query", "query rowsort":
			if want.code != "" {
				t.Fatalf("%s: PostgreSQL failed a block marked %q: %s %s\n%s", where, b.directive, want.code, want.msg, b.sql)
			}
		case "statement error":
			if want.code == "" {
				t.Fatalf("%s: PostgreSQL succeeded on a block marked statement error\n%s", where, b.sql)
			}
		}
		if got.code != want.code {
			t.Errorf("%s: SQLSTATE: ShaleDB %q (%s), PostgreSQL %q (%s)\n%s", where, got.code, got.msg, want.code, want.msg, b.sql)
			continue
		}
		if want.code != "" {
			continue
		}
		if !slices.Equal(got.tags, want.tags) {
			t.Errorf("%s: command tags: ShaleDB %q, PostgreSQL %q\n%s", where, got.tags, want.tags, b.sql)
		}
		if !slices.Equal(got.cols, want.cols) {
			t.Errorf("%s: columns: ShaleDB %q, PostgreSQL %q\n%s", where, got.cols, want.cols, b.sql)
		}
		if b.directive == "query rowsort" {
			slices.Sort(got.rows)
			slices.Sort(want.rows)
		}
		if !slices.Equal(got.rows, want.rows) {
			t.Errorf("%s: rows differ\nShaleDB:\n  %s\nPostgreSQL:\n  %s\n%s", where,
				strings.Join(got.rows, "\n  "), strings.Join(want.rows, "\n  "), b.sql)
		}
	}
}
