package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

func connect(t *testing.T, url string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestBinaryRoundTrip: every supported type goes in as a parameter and
// comes back equal, in the binary format pgx prefers, and in text.
func TestBinaryRoundTrip(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	setup := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := setup.Exec(ctx, `CREATE TABLE rt (id int PRIMARY KEY, s smallint, i integer, b bigint, r real, d double precision,
		n numeric, t text, v varchar(10), ok boolean, by bytea, dt date, ts timestamp, tz timestamptz, u uuid, j jsonb)`); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	num := pgtype.Numeric{Int: big.NewInt(-123456789), Exp: -4, Valid: true}
	u := [16]byte{0xa0, 0xee, 0xbc, 0x99, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for mode, id := range map[pgx.QueryExecMode]int{pgx.QueryExecModeCacheStatement: 1, pgx.QueryExecModeExec: 2, pgx.QueryExecModeSimpleProtocol: 3} {
		c := connect(t, url, mode)
		_, err := c.Exec(ctx, `INSERT INTO rt VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			id, int16(-7), int32(math.MinInt32), int64(math.MaxInt64), float32(1.5), math.Pi, num, "héllo", "short",
			true, []byte{0, 1, 0xff}, ts, ts, ts, pgtype.UUID{Bytes: u, Valid: true}, `{"a": [1, "x"]}`)
		if err != nil {
			t.Fatalf("%v insert: %v", mode, err)
		}
		var (
			s   int16
			i   int32
			b   int64
			r   float32
			d   float64
			n   pgtype.Numeric
			tx  string
			v   string
			ok  bool
			by  []byte
			dt  time.Time
			tsv time.Time
			tzv time.Time
			uv  [16]byte
			j   map[string]any
		)
		err = c.QueryRow(ctx, `SELECT s, i, b, r, d, n, t, v, ok, by, dt, ts, tz, u, j FROM rt WHERE id = $1`, id).
			Scan(&s, &i, &b, &r, &d, &n, &tx, &v, &ok, &by, &dt, &tsv, &tzv, &uv, &j)
		if err != nil {
			t.Fatalf("%v select: %v", mode, err)
		}
		nv, _ := n.Value()
		if s != -7 || i != math.MinInt32 || b != math.MaxInt64 || r != 1.5 || d != math.Pi || nv != "-12345.6789" ||
			tx != "héllo" || v != "short" || !ok || string(by) != "\x00\x01\xff" || !dt.Equal(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)) ||
			!tsv.Equal(ts) || !tzv.Equal(ts) || uv != u || fmt.Sprint(j) != "map[a:[1 x]]" {
			t.Fatalf("%v round trip: %v %v %v %v %v %v %q %q %v %x %v %v %v %x %v", mode, s, i, b, r, d, nv, tx, v, ok, by, dt, tsv, tzv, uv, j)
		}
	}
}

// TestPortalSuspension: Execute with a row limit returns the rows in
// pieces (PortalSuspended between them).
func TestPortalSuspension(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, "CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p VALUES (1),(2),(3),(4),(5)"); err != nil {
		t.Fatal(err)
	}
	pc := c.PgConn()
	if _, err := pc.Prepare(ctx, "s", "SELECT id FROM p ORDER BY id", nil); err != nil {
		t.Fatal(err)
	}
	// Bind, then Execute with at most 2 rows, three times, on the raw
	// frontend.
	fe := pc.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: "s"})
	var got []string
	for round := 0; round < 3; round++ {
		fe.Send(&pgproto3.Execute{MaxRows: 2})
		fe.Send(&pgproto3.Flush{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		rows, suspended := readPortal(t, fe)
		got = append(got, rows...)
		if (round < 2) != suspended {
			t.Fatalf("round %d: suspended = %v after %v", round, suspended, got)
		}
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if strings.Join(got, ",") != "1,2,3,4,5" {
		t.Fatalf("rows %v", got)
	}
}

func readPortal(t *testing.T, fe *pgproto3.Frontend) (rows []string, suspended bool) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.BindComplete:
		case *pgproto3.DataRow:
			rows = append(rows, string(m.Values[0]))
		case *pgproto3.PortalSuspended:
			return rows, true
		case *pgproto3.CommandComplete:
			return rows, false
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s %s", m.Code, m.Message)
		default:
			t.Fatalf("unexpected %T", msg)
		}
	}
}

// TestConcurrentUpdateWaitsForTheRowLock: as in PostgreSQL, a second
// transaction updating a row another has updated waits for it to end, then
// updates the latest version; both commit.
func TestConcurrentUpdateWaitsForTheRowLock(t *testing.T) {
	_, url := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	b := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := a.Exec(ctx, "CREATE TABLE c (id int PRIMARY KEY, n int); INSERT INTO c VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	ta, _ := a.Begin(ctx)
	tb, _ := b.Begin(ctx)
	if _, err := ta.Exec(ctx, "UPDATE c SET n = n + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tb.Exec(ctx, "UPDATE c SET n = n + 10 WHERE id = 1")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the second UPDATE did not wait for the row lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := ta.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second UPDATE after the lock: %v", err)
	}
	if err := tb.Commit(ctx); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT n FROM c WHERE id = 1").Scan(&n); err != nil || n != 11 {
		t.Fatalf("n = %d (%v), want 11: an update was lost", n, err)
	}
}

// TestInsertRaceIs40001: two transactions insert the same new key; there
// is no row to lock, so the second committer gets 40001, and its retry
// finds the row (23505).
func TestInsertRaceIs40001(t *testing.T) {
	_, url := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	b := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := a.Exec(ctx, "CREATE TABLE r (id int PRIMARY KEY, who text)"); err != nil {
		t.Fatal(err)
	}
	ta, _ := a.Begin(ctx)
	tb, _ := b.Begin(ctx)
	if _, err := ta.Exec(ctx, "INSERT INTO r VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Exec(ctx, "INSERT INTO r VALUES (1, 'b')"); err != nil {
		t.Fatal(err)
	}
	if err := ta.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tb.Commit(ctx); sqlstate(err) != "40001" {
		t.Fatalf("second committer: %v, want 40001", err)
	}
	if _, err := b.Exec(ctx, "INSERT INTO r VALUES (1, 'b')"); sqlstate(err) != "23505" {
		t.Fatalf("retry: %v, want 23505", err)
	}
	if _, err := b.Exec(ctx, "INSERT INTO r VALUES (2, 'b')"); err != nil {
		t.Fatalf("retry with a free key: %v", err)
	}
}

// TestCancelRequest: a CancelRequest with the connection's key cancels its
// running statement (57014); one with a wrong key cancels nothing.
func TestCancelRequest(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, "CREATE TABLE big (id int PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	// Enough rows that a sorted full scan takes a while.
	for i := 0; i < 20; i++ {
		var sb strings.Builder
		sb.WriteString("INSERT INTO big VALUES ")
		for j := 0; j < 2000; j++ {
			if j > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, "(%d, repeat_me)", i*2000+j)
		}
		q := strings.ReplaceAll(sb.String(), "repeat_me", "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'")
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		// A cross product through repeated scans would be faster to write
		// with joins; instead, many aggregate rounds in one string.
		_, err := c.Exec(ctx, strings.Repeat("SELECT count(*), max(pad || id::text) FROM big WHERE pad <> 'y';", 200))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if sqlstate(err) != "57014" {
			t.Fatalf("cancelled statement returned %v, want 57014", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("statement was not cancelled")
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("connection after cancel: %v", err)
	}
}

// TestOversizedAndMalformedMessages: the offending connection gets an
// error and is closed; the server and other sessions carry on.
func TestOversizedAndMalformedMessages(t *testing.T) {
	n, url := startNode(t)
	ctx := context.Background()
	other := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	for name, payload := range map[string][]byte{
		"oversized query": append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, 1<<30)...),
		"unknown type":    {'~', 0, 0, 0, 4},
		"negative length": {'Q', 0xff, 0xff, 0xff, 0xff},
		"garbage startup": nil,
	} {
		t.Run(name, func(t *testing.T) {
			var nc net.Conn
			if payload == nil {
				var err error
				if nc, err = net.Dial("tcp", n.Addr().String()); err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				_, _ = nc.Write([]byte{0, 0, 0, 8, 1, 2, 3, 4})
			} else {
				pc, err := pgconn.Connect(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				nc = pc.Conn()
				defer nc.Close()
				_, _ = nc.Write(payload)
			}
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(bufio.NewReader(nc))
			if !strings.Contains(string(rest), "08P01") {
				t.Fatalf("no protocol-violation error before close; got %q", rest)
			}
		})
	}
	var one int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("another session after bad clients: %v", err)
	}
}

func TestPsqlBinary(t *testing.T) {
	needPsql(t)
	_, url := startNode(t)
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", url)
	cmd.Stdin = strings.NewReader(`CREATE TABLE ps (id serial PRIMARY KEY, name text);
INSERT INTO ps (name) VALUES ('a'), ('b');
SELECT * FROM ps ORDER BY id;
\x
SELECT name FROM ps WHERE id = 2;
`)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	for _, want := range []string{"CREATE TABLE", "INSERT 0 2", " 1 | a", "(2 rows)", "Expanded display is on.", "name | b"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
	bad := exec.Command("psql", "-X", strings.Replace(url, ":secret@", ":wrong@", 1), "-c", "SELECT 1")
	out, _ = bad.CombinedOutput()
	if !strings.Contains(string(out), `password authentication failed for user "admin"`) {
		t.Errorf("wrong password: %s", out)
	}
	bad = exec.Command("psql", "-X", strings.Replace(url, "/system", "/nosuchdb", 1), "-c", "SELECT 1")
	out, _ = bad.CombinedOutput()
	if !strings.Contains(string(out), `database "nosuchdb" does not exist`) {
		t.Errorf("unknown database: %s", out)
	}
}

// TestCopyInWaitsForCopyDone: COPY FROM STDIN data may end with the \.
// marker before the client's CopyDone; the server answers only after
// CopyDone, as PostgreSQL does, so a client still sending is not answered
// mid-copy (pgx's CopyFrom hung when it was).
func TestCopyInWaitsForCopyDone(t *testing.T) {
	_, url := startNode(t)
	ctx := context.Background()
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, "CREATE TABLE ci (id int PRIMARY KEY, t text)"); err != nil {
		t.Fatal(err)
	}
	pc := c.PgConn()
	fe := pc.Frontend()
	fe.Send(&pgproto3.Query{String: "COPY ci FROM STDIN"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
		t.Fatalf("got %T, want CopyInResponse", msg)
	}
	fe.Send(&pgproto3.CopyData{Data: []byte("1\tone\n\\.\n")})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// Before CopyDone the server must stay silent.
	if err := pc.Conn().SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if msg, err := fe.Receive(); err == nil {
		t.Fatalf("the server answered %T before CopyDone", msg)
	}
	if err := pc.Conn().SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	fe.Send(&pgproto3.CopyDone{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var tag string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if cc, ok := msg.(*pgproto3.CommandComplete); ok {
			tag = string(cc.CommandTag)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if tag != "COPY 1" {
		t.Fatalf("tag %q, want COPY 1", tag)
	}
}
