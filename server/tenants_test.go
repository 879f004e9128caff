package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/tenancy/scram"
)

// tenantEnv is a node with an admin connection to the system tenant.
type tenantEnv struct {
	t     *testing.T
	n     *Node
	sys   *pgx.Conn
	addr  string
	admin string // system URL
}

func newTenantEnv(t *testing.T, cfg Config) *tenantEnv {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.InMemory = true
	}
	cfg.AdminPassword = "secret"
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &tenantEnv{t: t, n: n, addr: n.Addr().String()}
	e.admin = e.url("admin", "secret", "system")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	e.sys = e.connect(e.admin)
	return e
}

func (e *tenantEnv) url(user, pw, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, pw, e.addr, db)
}

func (e *tenantEnv) connect(url string) *pgx.Conn {
	e.t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		e.t.Fatalf("connect %s: %v", url, err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (e *tenantEnv) exec(c *pgx.Conn, sql string, args ...any) {
	e.t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// createTenant creates a tenant and connects to it as its admin.
func (e *tenantEnv) createTenant(name string) *pgx.Conn {
	e.t.Helper()
	e.exec(e.sys, "SELECT shaledb.create_tenant($1, $2)", name, "pw-"+name)
	return e.connect(e.url("admin", "pw-"+name, name))
}

func (e *tenantEnv) expectCode(c *pgx.Conn, code, sql string, args ...any) {
	e.t.Helper()
	_, err := c.Exec(context.Background(), sql, args...)
	if sqlstate(err) != code {
		e.t.Fatalf("%s: got %v, want SQLSTATE %s", sql, err, code)
	}
}

func rowsOf(t *testing.T, c *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(fmt.Sprintln(vals...)))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(out, "|")
}

func TestTenantsWithTheSameTablesAreSeparate(t *testing.T) {
	e := newTenantEnv(t, Config{})
	acme, globex := e.createTenant("acme"), e.createTenant("globex")
	for i, c := range []*pgx.Conn{acme, globex} {
		e.exec(c, "CREATE TABLE t (id int PRIMARY KEY, v text)")
		e.exec(c, "INSERT INTO t VALUES (1, $1), (2, $2)", fmt.Sprint("a", i), fmt.Sprint("b", i))
	}
	e.exec(globex, "UPDATE t SET v = 'changed' WHERE id = 1")
	e.exec(globex, "INSERT INTO t VALUES (3, 'only globex')")
	if got := rowsOf(t, acme, "SELECT id, v FROM t ORDER BY id"); got != "1 a0|2 b0" {
		t.Fatalf("acme sees %q", got)
	}
	if got := rowsOf(t, globex, "SELECT id, v FROM t ORDER BY id"); got != "1 changed|2 b1|3 only globex" {
		t.Fatalf("globex sees %q", got)
	}
	// Unknown tenant: 3D000. Wrong password and unknown user: 28P01 with
	// one message.
	_, err := pgx.Connect(context.Background(), e.url("admin", "x", "nosuch"))
	if sqlstate(err) != "3D000" {
		t.Fatalf("unknown tenant: %v", err)
	}
	_, err1 := pgx.Connect(context.Background(), e.url("admin", "wrong", "acme"))
	_, err2 := pgx.Connect(context.Background(), e.url("nobody", "wrong", "acme"))
	var p1, p2 *pgconn.PgError
	if !asPg(err1, &p1) || !asPg(err2, &p2) || p1.Code != "28P01" || p1.Message != strings.Replace(p2.Message, "nobody", "admin", 1) {
		t.Fatalf("bad password %v / unknown user %v", err1, err2)
	}
	// Names: invalid, reserved, duplicate.
	e.expectCode(e.sys, "42602", "SELECT shaledb.create_tenant('Bad-Name', 'pw')")
	e.expectCode(e.sys, "42939", "SELECT shaledb.create_tenant('postgres', 'pw')")
	e.expectCode(e.sys, "42939", "SELECT shaledb.create_tenant('pg_x', 'pw')")
	e.expectCode(e.sys, "42P04", "SELECT shaledb.create_tenant('acme', 'pw')")
	e.expectCode(e.sys, "3D000", "SELECT shaledb.drop_tenant('nosuch')")
	e.expectCode(e.sys, "42501", "SELECT shaledb.drop_tenant('system')")
	e.expectCode(e.sys, "42501", "SELECT shaledb.set_tenant_limit('system', 'max_qps', 0)")
	e.expectCode(e.sys, "22023", "SELECT shaledb.set_tenant_limit('acme', 'max_bananas', 1)")
	e.expectCode(e.sys, "22023", "SELECT shaledb.set_tenant_limit('acme', 'max_qps', -5)")
	// One node alone has no regions to move a tenant to.
	e.expectCode(e.sys, "0A000", "SELECT shaledb.move_tenant('acme', 'r2')")
	e.exec(e.sys, "BEGIN")
	e.expectCode(e.sys, "25001", "SELECT shaledb.create_tenant('intxn', 'pw')")
	e.exec(e.sys, "ROLLBACK")
	if got := rowsOf(t, e.sys, "SELECT name, id, connections FROM shaledb.tenants ORDER BY name"); got != "acme 2 1|globex 3 1|system 1 1" {
		t.Fatalf("shaledb.tenants: %q", got)
	}
}

func asPg(err error, pe **pgconn.PgError) bool {
	var p *pgconn.PgError
	ok := err != nil && errorsAs(err, &p)
	*pe = p
	return ok
}

// TestTenantAttackSuite: from tenant globex (as its superuser admin and as
// a plain user) every way at tenant acme's data, catalog, usage and
// sessions fails or sees only globex's own; acme's data is unchanged.
func TestTenantAttackSuite(t *testing.T) {
	e := newTenantEnv(t, Config{})
	ctx := context.Background()
	acme := e.createTenant("acme")
	e.exec(acme, "CREATE TABLE secrets (id int PRIMARY KEY, s text)")
	e.exec(acme, "INSERT INTO secrets VALUES (1, 'acme-secret')")
	e.exec(acme, "CREATE USER alice PASSWORD 'alice-pw'")
	before := rowsOf(t, acme, "SELECT id, s FROM secrets")

	globex := e.createTenant("globex")
	e.exec(globex, "CREATE USER mallory PASSWORD 'm-pw'")
	mallory := e.connect(e.url("mallory", "m-pw", "globex"))
	for _, c := range []*pgx.Conn{globex, mallory} {
		// Tables: acme's do not exist here, whatever the spelling.
		for _, q := range []string{"SELECT * FROM secrets", "SELECT * FROM public.secrets", "SELECT * FROM acme.secrets",
			"INSERT INTO secrets VALUES (2, 'x')", "DELETE FROM secrets", "COPY secrets TO STDOUT"} {
			_, err := c.Exec(ctx, q)
			if code := sqlstate(err); code != "42P01" && code != "0A000" && code != "3F000" {
				t.Errorf("%s from globex: %v", q, err)
			}
			if err != nil && !strings.Contains(q, "acme") && strings.Contains(err.Error(), "acme") {
				t.Errorf("%s: error names the other tenant: %v", q, err)
			}
		}
		// Administration and the tenant registry: 42501.
		for _, q := range []string{"SELECT shaledb.create_tenant('evil', 'pw')", "SELECT shaledb.drop_tenant('acme')",
			"SELECT shaledb.set_tenant_limit('acme', 'max_qps', 0)", "SELECT shaledb.move_tenant('acme', 'r2')",
			"SELECT * FROM shaledb.tenants",
			"SELECT name FROM shaledb.tenants WHERE name = 'acme'"} {
			e.expectCode(c, "42501", q)
		}
		e.expectCode(c, "0A000", "SELECT * FROM pg_catalog.pg_stat_activity")
	}
	// Acme's users cannot log in to globex, nor globex's to acme.
	for _, u := range []string{e.url("alice", "alice-pw", "globex"), e.url("mallory", "m-pw", "acme"), e.url("admin", "pw-globex", "acme")} {
		if _, err := pgx.Connect(ctx, u); sqlstate(err) != "28P01" {
			t.Errorf("%s: %v", u, err)
		}
	}
	// Roles are per tenant: globex's admin cannot alter or drop acme's.
	e.expectCode(globex, "42704", "ALTER ROLE alice PASSWORD 'pwned'")
	e.expectCode(globex, "42704", "DROP ROLE alice")
	e.expectCode(globex, "42704", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO alice")
	// Prepared statements are the session's own.
	if _, err := globex.Prepare(ctx, "steal", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Exec(ctx, "steal"); err == nil {
		t.Error("acme ran globex's prepared statement")
	}
	// COPY in globex writes globex's table of the same name.
	e.exec(globex, "CREATE TABLE secrets (id int PRIMARY KEY, s text)")
	if _, err := globex.PgConn().CopyFrom(ctx, strings.NewReader("1\tglobex-row\n"), "COPY secrets FROM STDIN"); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, globex, "SELECT s FROM secrets"); got != "globex-row" {
		t.Fatalf("globex's table: %q", got)
	}
	// A duplicate key error names only globex's own row.
	_, err := globex.Exec(ctx, "INSERT INTO secrets VALUES (1, 'dup')")
	if sqlstate(err) != "23505" || strings.Contains(err.Error(), "acme") {
		t.Fatalf("duplicate: %v", err)
	}

	// Cancel requests: acme's statement waits on a row lock; a cancel
	// with its process id and any other secret (globex's) does nothing;
	// its own key does cancel (so this test can tell).
	holder := e.connect(e.url("admin", "pw-acme", "acme"))
	waiter := e.connect(e.url("admin", "pw-acme", "acme"))
	runBlocked := func() chan error {
		e.exec(holder, "BEGIN")
		e.exec(holder, "UPDATE secrets SET s = s WHERE id = 1")
		done := make(chan error, 1)
		go func() {
			_, err := waiter.Exec(ctx, "UPDATE secrets SET s = 'acme-secret' WHERE id = 1")
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		return done
	}
	done := runBlocked()
	for _, secret := range []uint32{key32(globex.PgConn().SecretKey()), key32(waiter.PgConn().SecretKey()) + 1, 0} {
		sendCancel(t, e.addr, waiter.PgConn().PID(), secret)
	}
	sendCancel(t, e.addr, globex.PgConn().PID(), key32(waiter.PgConn().SecretKey()))
	time.Sleep(200 * time.Millisecond)
	e.exec(holder, "COMMIT")
	if err := <-done; err != nil {
		t.Fatalf("a foreign cancel key cancelled acme's statement: %v", err)
	}
	done = runBlocked()
	// The right key cancels (resent until the statement is running: a
	// cancel that arrives before it starts has nothing to cancel).
	var cerr error
	for attempt := 0; attempt < 40; attempt++ {
		sendCancel(t, e.addr, waiter.PgConn().PID(), key32(waiter.PgConn().SecretKey()))
		select {
		case cerr = <-done:
			attempt = 40
		case <-time.After(500 * time.Millisecond):
		}
	}
	if sqlstate(cerr) != "57014" {
		t.Fatalf("the right cancel key did not cancel: %v", cerr)
	}
	e.exec(holder, "ROLLBACK")

	// Nothing of acme changed; globex's session still works.
	if after := rowsOf(t, acme, "SELECT id, s FROM secrets"); after != before {
		t.Fatalf("acme's data changed: %q -> %q", before, after)
	}
	if got := rowsOf(t, acme, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
}

// sendCancel sends a raw CancelRequest.
func sendCancel(t *testing.T, addr string, pid, secret uint32) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 0, 0, 0, 0, 0}
	putU32(msg[8:], pid)
	putU32(msg[12:], secret)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(c) // the server closes without answering
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func TestRolesAndGrants(t *testing.T) {
	e := newTenantEnv(t, Config{})
	acme := e.createTenant("acme")
	e.exec(acme, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	e.exec(acme, "INSERT INTO t VALUES (1, 'one')")
	e.exec(acme, "CREATE USER bob WITH PASSWORD 'bob-pw'")
	e.exec(acme, "CREATE ROLE nologin_role")
	e.expectCode(acme, "42710", "CREATE USER bob")
	e.expectCode(acme, "42939", "CREATE ROLE pg_monitor2")
	e.expectCode(acme, "22023", "CREATE USER m5 PASSWORD 'md5d41d8cd98f00b204e9800998ecf8427e'")
	if _, err := pgx.Connect(context.Background(), e.url("nologin_role", "x", "acme")); sqlstate(err) != "28P01" {
		t.Fatalf("role without password: %v", err)
	}
	bob := e.connect(e.url("bob", "bob-pw", "acme"))
	e.expectCode(bob, "42501", "SELECT * FROM t")
	e.expectCode(bob, "42501", "INSERT INTO t VALUES (2, 'two')")
	e.expectCode(bob, "42501", "CREATE TABLE mine (id int)")
	e.expectCode(bob, "42501", "DROP TABLE t")
	e.expectCode(bob, "42501", "CREATE ROLE sneaky")
	e.expectCode(bob, "42501", "GRANT SELECT ON t TO bob")
	e.exec(acme, "GRANT SELECT, INSERT ON t TO bob")
	if got := rowsOf(t, bob, "SELECT v FROM t"); got != "one" {
		t.Fatal(got)
	}
	e.exec(bob, "INSERT INTO t VALUES (2, 'two')")
	e.expectCode(bob, "42501", "UPDATE t SET v = 'x' WHERE id = 1")
	e.expectCode(bob, "42501", "DELETE FROM t")
	e.expectCode(bob, "42501", "TRUNCATE t")
	e.exec(acme, "REVOKE INSERT ON t FROM bob")
	e.expectCode(bob, "42501", "INSERT INTO t VALUES (3, 'three')")
	e.expectCode(acme, "2BP01", "DROP ROLE bob")
	// Anyone may change their own password.
	e.exec(bob, "ALTER ROLE bob PASSWORD 'new-pw'")
	if _, err := pgx.Connect(context.Background(), e.url("bob", "bob-pw", "acme")); sqlstate(err) != "28P01" {
		t.Fatalf("old password: %v", err)
	}
	e.connect(e.url("bob", "new-pw", "acme"))
	// psql's \password sends a SCRAM verifier, not the password.
	v, err := scram.NewVerifier("hashed-pw")
	if err != nil {
		t.Fatal(err)
	}
	e.exec(bob, "ALTER ROLE bob PASSWORD '"+v+"'")
	e.connect(e.url("bob", "hashed-pw", "acme"))
	e.expectCode(bob, "22023", "ALTER ROLE bob PASSWORD 'SCRAM-SHA-256$garbage'")
	e.expectCode(bob, "42501", "ALTER ROLE bob SUPERUSER")
	e.exec(acme, "REVOKE ALL ON t FROM bob")
	e.expectCode(bob, "42501", "SELECT * FROM t")
	e.expectCode(acme, "55006", "DROP ROLE admin")
	e.exec(acme, "DROP ROLE bob, nologin_role")
	e.exec(acme, "DROP ROLE IF EXISTS bob")
	e.expectCode(acme, "42704", "DROP ROLE bob")
}

func TestStorageLimit(t *testing.T) {
	dir := t.TempDir()
	e := newTenantEnv(t, Config{DataDir: dir})
	acme := e.createTenant("acme")
	e.exec(acme, "CREATE TABLE t (id int PRIMARY KEY, pad text)")
	used := func() int64 {
		var n int64
		if err := e.sys.QueryRow(context.Background(), "SELECT storage_bytes FROM shaledb.tenants WHERE name = 'acme'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := used()
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_storage_bytes', $1)", base+20_000)
	pad := strings.Repeat("x", 1000)
	i := 0
	var err error
	for ; i < 100; i++ {
		if _, err = acme.Exec(context.Background(), "INSERT INTO t VALUES ($1, $2)", i, pad); err != nil {
			break
		}
	}
	if sqlstate(err) != "53100" || !strings.Contains(err.Error(), "max_storage_bytes") || i < 10 || i > 20 {
		t.Fatalf("after %d rows: %v", i, err)
	}
	if u := used(); u > base+20_000 {
		t.Fatalf("using %d, over the limit %d", u, base+20_000)
	}
	// Reads and deletes work over the limit's edge; deleting frees quota.
	if got := rowsOf(t, acme, "SELECT count(*) FROM t"); got != fmt.Sprint(i) {
		t.Fatalf("count %s, want %d", got, i)
	}
	e.expectCode(acme, "53100", "UPDATE t SET pad = pad || pad WHERE id = 0")
	e.exec(acme, "DELETE FROM t WHERE id < 5")
	e.exec(acme, "INSERT INTO t VALUES (1000, $1)", pad)
	// Limits hold under concurrent writers of one tenant.
	e.exec(acme, "DELETE FROM t")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		c := e.connect(e.url("admin", "pw-acme", "acme"))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				_, _ = c.Exec(context.Background(), "INSERT INTO t VALUES ($1, $2)", 10_000+w*100+j, pad)
			}
		}(w)
	}
	wg.Wait()
	if u := used(); u > base+20_000 {
		t.Fatalf("concurrent writers: using %d, over the limit %d", u, base+20_000)
	}
	// Lifted.
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_storage_bytes', -1)")
	e.exec(acme, "INSERT INTO t VALUES (5000, $1)", strings.Repeat("y", 50000))
	// The accounting is exact: it equals the bytes stored, and survives
	// a restart.
	want := used()
	if got := tenantBytes(t, e.n, 2); got != want {
		t.Fatalf("accounted %d bytes, the tenant stores %d", want, got)
	}
	e.sys.Close(context.Background())
	acme.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := newTenantEnv(t, Config{DataDir: dir})
	e = e2
	if got := used(); got != want {
		t.Fatalf("after restart: %d bytes, before %d", got, want)
	}
}

// tenantBytes sums the keys and values a tenant stores, but its
// accounting records.
func tenantBytes(t *testing.T, n *Node, id keys.TenantID) int64 {
	t.Helper()
	codec := keys.MakeCodec(id)
	usage := codec.TablePrefix(4)
	start, end := codec.TenantSpan()
	var total int64
	err := kvcluster.View(context.Background(), n.store, func(txn kvcluster.Txn) error {
		return kvcluster.ScanAll(context.Background(), txn, start, end, 1000, func(kv kvcluster.KeyValue) error {
			if !bytes.HasPrefix(kv.Key, usage) {
				total += int64(len(kv.Key) + len(kv.Value))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestConnectionAndRateLimits(t *testing.T) {
	e := newTenantEnv(t, Config{MaxRateWait: 300 * time.Millisecond})
	ctx := context.Background()
	e.createTenant("acme")
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_connections', 2)")
	// The first connection (createTenant's) is still open.
	e.connect(e.url("admin", "pw-acme", "acme"))
	if _, err := pgx.Connect(ctx, e.url("admin", "pw-acme", "acme")); sqlstate(err) != "53300" {
		t.Fatalf("third connection: %v", err)
	}
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_connections', -1)")
	conns := make([]*pgx.Conn, 8)
	for i := range conns {
		conns[i] = e.connect(e.url("admin", "pw-acme", "acme"))
	}

	// 2 statements a second, a burst of 1, waits of at most 300ms: of 8
	// statements at once, one runs at once, none waits past 300ms, so
	// most fail with 53400.
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_qps', 2)")
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'qps_burst', 1)")
	run := func() (ok, limited int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func(c *pgx.Conn) {
				defer wg.Done()
				_, err := c.Exec(ctx, "SELECT 1")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case sqlstate(err) == "53400":
					limited++
				default:
					t.Errorf("rate limited statement: %v", err)
				}
			}(c)
		}
		wg.Wait()
		return ok, limited
	}
	ok, limited := run()
	// Arrivals spread by a loaded machine may let a second or third in.
	if ok < 1 || ok > 4 || limited < len(conns)-4 || ok+limited != len(conns) {
		t.Fatalf("at max_qps 2: %d ran, %d refused", ok, limited)
	}
	var throttledRejected string
	throttledRejected = rowsOf(t, e.sys, "SELECT rejected > 0 FROM shaledb.tenants WHERE name = 'acme'")
	if throttledRejected != "true" {
		t.Fatalf("rejected count not kept: %s", throttledRejected)
	}
	// The connection survives; after the limit is lifted all run.
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_qps', -1)")
	if ok, limited := run(); ok != len(conns) || limited != 0 {
		t.Fatalf("lifted: %d ran, %d refused", ok, limited)
	}
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_qps', 0)")
	e.expectCode(conns[0], "53400", "SELECT 1")
	// The system tenant is not limited by acme's limits.
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('acme', 'max_qps', -1)")
}

func TestDropTenantRemovesEveryKey(t *testing.T) {
	e := newTenantEnv(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	acme := e.createTenant("acme")
	other := e.createTenant("other")
	e.exec(other, "CREATE TABLE keep (id int PRIMARY KEY)")
	e.exec(other, "INSERT INTO keep VALUES (1)")
	e.exec(acme, "CREATE TABLE t (id serial PRIMARY KEY, pad text)")
	e.exec(acme, "INSERT INTO t (pad) SELECT 'x'")
	for i := 0; i < 20; i++ {
		e.exec(acme, "INSERT INTO t (pad) VALUES ($1), ($1), ($1)", strings.Repeat("p", 500))
	}
	count := func(id keys.TenantID) int {
		start, end := keys.MakeCodec(id).TenantSpan()
		n := 0
		err := kvcluster.View(ctx, e.n.store, func(txn kvcluster.Txn) error {
			return kvcluster.ScanAll(ctx, txn, start, end, 1000, func(kvcluster.KeyValue) error { n++; return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(2) < 60 {
		t.Fatalf("acme has only %d keys", count(2))
	}
	e.exec(e.sys, "SELECT shaledb.drop_tenant('acme')")
	if n := count(2); n != 0 {
		t.Fatalf("%d keys of the dropped tenant remain", n)
	}
	// Its session was closed with 57P01; the tenant is gone.
	if _, err := acme.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a session of the dropped tenant still runs statements")
	}
	if _, err := pgx.Connect(ctx, e.url("admin", "pw-acme", "acme")); sqlstate(err) != "3D000" {
		t.Fatalf("connect to dropped tenant: %v", err)
	}
	if got := rowsOf(t, other, "SELECT id FROM keep"); got != "1" {
		t.Fatalf("the other tenant lost data: %q", got)
	}
	// The name can be taken again, by a new, empty tenant.
	again := e.createTenant("acme")
	e.expectCode(again, "42P01", "SELECT * FROM t")
	if got := rowsOf(t, e.sys, "SELECT id FROM shaledb.tenants WHERE name = 'acme'"); got != "4" {
		t.Fatalf("new acme has id %s, want a fresh one", got)
	}
}

func TestMetricsAndSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := trace.NewTracerProvider(trace.WithSpanProcessor(rec))
	e := newTenantEnv(t, Config{HTTP: "127.0.0.1:0", MetricsTopTenants: 2, TracerProvider: tp})
	ctx := context.Background()
	for i, name := range []string{"busy", "medium", "quiet"} {
		c := e.createTenant(name)
		e.exec(c, "CREATE TABLE t (id int PRIMARY KEY)")
		for j := 0; j < 30-10*i; j++ {
			e.exec(c, "INSERT INTO t VALUES ($1)", j)
		}
		_ = rowsOf(t, c, "SELECT * FROM t")
	}
	resp, err := http.Get("http://" + e.n.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`shaledb_tenant_statements_total{`, `tenant="busy"`, `tenant="medium"`, `tenant="_other"`,
		`shaledb_tenant_rows_written_total{`, `shaledb_tenant_rows_read_total{`,
		`shaledb_tenant_statement_duration_seconds_bucket{`, `shaledb_tenant_storage_bytes{`,
		`shaledb_tenant_connections{`, `shaledb_tenant_throttled_total{`, `shaledb_tenant_rejected_total{`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, `tenant="quiet"`) {
		t.Error("the third-busiest tenant has its own series with MetricsTopTenants 2")
	}
	if !strings.Contains(text, `shaledb_tenant_rows_written_total{otel_scope_name="github.com/shaledb/shaledb/tenancy",otel_scope_schema_url="",otel_scope_version="",tenant="busy"} 30`) &&
		!strings.Contains(text, `tenant="busy"} 30`) {
		t.Errorf("busy's rows written is not 30:\n%s", grepLines(text, "rows_written"))
	}
	_ = ctx
	var found bool
	for _, s := range rec.Ended() {
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if s.Name() == "INSERT" && attrs["shaledb.tenant"] == "busy" && attrs["shaledb.rows_written"] == "1" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no INSERT span of tenant busy with rows_written 1 among %d spans", len(rec.Ended()))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func errorsAs(err error, target **pgconn.PgError) bool { return errors.As(err, target) }

func key32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestRateLimitIsPerTenant: while one tenant's statements queue behind
// its rate limit, another tenant's run without waiting.
func TestRateLimitIsPerTenant(t *testing.T) {
	e := newTenantEnv(t, Config{MaxRateWait: 5 * time.Second})
	ctx := context.Background()
	e.createTenant("noisy")
	quiet := e.createTenant("quiet")
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('noisy', 'max_qps', 20)")
	e.exec(e.sys, "SELECT shaledb.set_tenant_limit('noisy', 'qps_burst', 1)")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		c := e.connect(e.url("admin", "pw-noisy", "noisy"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 8; j++ {
				if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
					t.Errorf("noisy: %v", err)
					return
				}
			}
		}()
	}
	for j := 0; j < 50; j++ {
		e.exec(quiet, "SELECT 1")
	}
	wg.Wait()
	got := rowsOf(t, e.sys, "SELECT name, throttled > 0, rejected FROM shaledb.tenants WHERE name <> 'system' ORDER BY name")
	if got != "noisy true 0|quiet false 0" {
		t.Fatalf("throttled and rejected by tenant: %q", got)
	}
}

// TestSpansExportedOverOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, the
// node sends its statement spans to that endpoint (here a loopback HTTP
// server standing in for a collector) over OTLP/HTTP.
func TestSpansExportedOverOTLP(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	e := newTenantEnv(t, Config{})
	c := e.createTenant("traced")
	e.exec(c, "CREATE TABLE t (id int PRIMARY KEY)")
	e.exec(c, "INSERT INTO t VALUES (1)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Close(ctx)
	e.sys.Close(ctx)
	if err := e.n.Shutdown(ctx); err != nil { // flushes the span batcher
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := bytes.Join(bodies, nil)
	for _, want := range []string{"shaledb.tenant", "traced", "INSERT", "shaledb.rows_written"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("the exported spans (%d requests, %d bytes) lack %q", len(bodies), len(all), want)
		}
	}
}

// TestQueryMemoryLimit: a sort, group or DISTINCT over the statement's
// memory limit fails with 53200; the session goes on, and the limit can
// be raised.
func TestQueryMemoryLimit(t *testing.T) {
	e := newTenantEnv(t, Config{})
	c := e.createTenant("mem")
	e.exec(c, "CREATE TABLE t (id int PRIMARY KEY, pad text)")
	for i := 0; i < 20; i++ {
		var sb strings.Builder
		sb.WriteString("INSERT INTO t VALUES ")
		for j := 0; j < 500; j++ {
			if j > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, "(%d, '%s')", i*500+j, strings.Repeat("p", 200))
		}
		e.exec(c, sb.String())
	}
	e.expectCode(c, "22023", "SET shaledb.query_memory_limit = 'lots'")
	e.exec(c, "SET shaledb.query_memory_limit = '1MB'")
	for _, q := range []string{
		"SELECT * FROM t ORDER BY pad, id DESC",
		"SELECT DISTINCT pad || id FROM t",
		"SELECT s.k, count(*) FROM (SELECT pad || id AS k FROM t) s GROUP BY s.k",
		"SELECT pad || id FROM t UNION SELECT 'x'",
		// A recursion that never ends runs out of its memory, not the node's.
		"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
	} {
		e.expectCode(c, "53200", q)
	}
	if got := rowsOf(t, c, "SELECT count(*) FROM t"); got != "10000" {
		t.Fatalf("after 53200: %s", got)
	}
	e.exec(c, "RESET shaledb.query_memory_limit")
	if got := rowsOf(t, c, "SELECT count(*) FROM (SELECT DISTINCT pad || id FROM t) s"); got != "10000" {
		t.Fatalf("with the default limit: %s", got)
	}
}

// TestPsqlListsTheTenantsObjects runs psql's \dt, \di and \dn in two
// tenants: each lists its own tables and indexes only.
func TestPsqlListsTheTenantsObjects(t *testing.T) {
	needPsql(t)
	e := newTenantEnv(t, Config{})
	acme := e.createTenant("acme")
	e.exec(acme, "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE)")
	e.exec(acme, "CREATE TABLE events (at int, kind text)")
	e.exec(acme, "CREATE INDEX events_kind ON events (kind)")
	e.exec(e.sys, "CREATE TABLE sys_only (id int PRIMARY KEY)")
	out := runPsql(t, e.url("admin", "pw-acme", "acme"), `\dt`, `\di`, `\dn`, `\dt user*`)
	for _, want := range []string{
		" public | events | table | admin", " public | users  | table | admin",
		" public | events_kind     | index | admin | events", " public | users_email_key | index | admin | users", " public | users_pkey      | index | admin | users",
		"List of schemas", "(1 row)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sys_only") {
		t.Errorf("acme's psql lists the system tenant's table:\n%s", out)
	}
	if sys := runPsql(t, e.admin, `\dt`); !strings.Contains(sys, "sys_only") || strings.Contains(sys, "users") {
		t.Errorf("the system tenant's \\dt:\n%s", sys)
	}
}

// TestPsqlDescribesTables runs psql 15's \d, \d+, \l, \du, \dt+ and \x
// against a tenant, and psql's tab-completion queries, and checks they
// name the tenant's tables, columns, types, defaults, indexes, roles and
// database, and nothing of another tenant's.
func TestPsqlDescribesTables(t *testing.T) {
	needPsql(t)
	e := newTenantEnv(t, Config{})
	acme := e.createTenant("acme")
	e.exec(acme, "CREATE TABLE users (id int PRIMARY KEY, email varchar(80) UNIQUE, name text NOT NULL DEFAULT 'anon', tags text[], score numeric(6,2))")
	e.exec(acme, "CREATE INDEX users_name_score ON users (name DESC, score)")
	e.exec(acme, "INSERT INTO users VALUES (1, 'a@x', 'ann', '{a,b}', 1.5)")
	e.exec(acme, "CREATE ROLE reader LOGIN PASSWORD 'pw-reader'")
	e.exec(e.sys, "CREATE TABLE sys_only (id int PRIMARY KEY)")
	e.exec(e.sys, "CREATE ROLE sys_role")
	url := e.url("admin", "pw-acme", "acme")
	out := runPsql(t, url, `\d users`, `\d+ users`, `\d users_name_score`, `\d users_pkey`, `\l`, `\l+`, `\du`, `\dt+`, `\di+`, `\x`, `SELECT id, tags FROM users`)
	for _, want := range []string{
		`Table "public.users"`,
		" id     | integer               |           | not null | ",
		" email  | character varying(80) |           |          | ",
		" name   | text                  |           | not null | 'anon'",
		" tags   | text[]                |           |          | ",
		" score  | numeric(6,2)          |           |          | ",
		`"users_pkey" PRIMARY KEY, btree (id)`,
		`"users_email_key" UNIQUE CONSTRAINT, btree (email)`,
		`"users_name_score" btree (name DESC, score)`,
		"| extended |", "Access method: heap",
		`Index "public.users_name_score"`, " name   | text         | yes  | name",
		"primary key, btree, for table \"public.users\"",
		" acme | admin | UTF8     | C       | C     |",
		" reader    |",
		" public | users | table | admin | permanent   | heap          |",
		" public | users_pkey       | index | admin | users | permanent   | btree         |",
		"Expanded display is on.", "tags | {a,b}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
	for _, other := range []string{"sys_only", "sys_role", "system"} {
		if strings.Contains(out, other) {
			t.Errorf("acme's psql shows the system tenant's %s:\n%s", other, out)
		}
	}
	// psql 15's tab completion after "SELECT * FROM us" and
	// "SELECT * FROM users WHERE ".
	tables := runPsql(t, url, `SELECT c.relname, NULL::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'S', 'v', 'm', 'f', 'p') AND (c.relname) LIKE 'us%' AND pg_catalog.pg_table_is_visible(c.oid) AND c.relnamespace <> (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pg_catalog')
UNION ALL
SELECT NULL::pg_catalog.text, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname LIKE 'us%' AND n.nspname NOT LIKE E'pg\\_%'
LIMIT 1000`)
	columns := runPsql(t, url, `SELECT a.attname, NULL::pg_catalog.text FROM pg_catalog.pg_attribute a, pg_catalog.pg_class c WHERE c.oid = a.attrelid and a.attnum > 0 and not a.attisdropped AND (a.attname) LIKE '%' AND c.relname = 'users' AND pg_catalog.pg_table_is_visible(c.oid)
LIMIT 1000`)
	if !strings.Contains(tables, " users   |") || !strings.Contains(tables, "(1 row)") {
		t.Errorf("table completion:\n%s", tables)
	}
	for _, c := range []string{" id ", " email ", " name ", " tags ", " score "} {
		if !strings.Contains(columns, c) {
			t.Errorf("column completion lacks %q:\n%s", c, columns)
		}
	}
}

// needPsql skips a test that runs psql where it is not installed.
func needPsql(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed")
	}
}

// runPsql runs the real psql binary with each of cmds as a -c, stopping
// at the first error (which fails the test), and returns its output.
func runPsql(t *testing.T, url string, cmds ...string) string {
	t.Helper()
	args := []string{"-X", "-v", "ON_ERROR_STOP=1", url}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("psql", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %v: %v\n%s", cmds, err, out)
	}
	return string(out)
}
