package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Workloads lists the workload names, in the standard suite's order.
var Workloads = []string{"point-read", "point-write", "mixed", "tpcb", "scan"}

// op is one operation a workload runs on a tenant's connection.
type op struct {
	kind Kind
	run  func(ctx context.Context, c *pgxpool.Conn, key func(n int64) int64) error
}

// workload is a workload's tables and operations.
type workload struct {
	name  string
	setup []string // statements creating its tables
	load  func(ctx context.Context, c *pgx.Conn, rows int64) error
	// pick returns the next operation; rng is the caller's.
	pick func(rng *rand.Rand) op
	rows int64
}

const kvTable = "CREATE TABLE bench_kv (id bigint PRIMARY KEY, v bigint NOT NULL, pad text NOT NULL)"

var pad = strings.Repeat("x", 84)

// loadKV fills bench_kv with rows rows, in multi-row INSERTs.
func loadKV(ctx context.Context, c *pgx.Conn, rows int64) error {
	const batch = 500
	for start := int64(1); start <= rows; start += batch {
		var sb strings.Builder
		sb.WriteString("INSERT INTO bench_kv VALUES ")
		for i := start; i < start+batch && i <= rows; i++ {
			if i > start {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d, 0, '%s')", i, pad)
		}
		if _, err := c.Exec(ctx, sb.String()); err != nil {
			return fmt.Errorf("load bench_kv: %w", err)
		}
	}
	return nil
}

var (
	pointRead = op{kind: Read, run: func(ctx context.Context, c *pgxpool.Conn, key func(int64) int64) error {
		var v int64
		var p string
		return c.QueryRow(ctx, "SELECT v, pad FROM bench_kv WHERE id = $1", key(0)).Scan(&v, &p)
	}}
	pointWrite = op{kind: Write, run: func(ctx context.Context, c *pgxpool.Conn, key func(int64) int64) error {
		_, err := c.Exec(ctx, "UPDATE bench_kv SET v = v + 1 WHERE id = $1", key(0))
		return err
	}}
	scanOp = op{kind: Read, run: func(ctx context.Context, c *pgxpool.Conn, key func(int64) int64) error {
		k := key(10)
		rows, err := c.Query(ctx, "SELECT id, v FROM bench_kv WHERE id >= $1 AND id < $2", k, k+10)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	}}
)

// tpcb is pgbench's TPC-B transaction: accounts = rows, a branch per
// 100,000 accounts (at least one), ten tellers a branch.
func tpcbOp(rows int64) op {
	branches := max(1, rows/100000)
	return op{kind: Write, run: func(ctx context.Context, c *pgxpool.Conn, key func(int64) int64) error {
		aid := key(0)
		bid := 1 + (aid-1)%branches
		tid := 1 + (aid-1)%(branches*10)
		delta := aid%10000 - 5000
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var bal int64
		for _, s := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", []any{delta, aid}},
			{"", nil},
			{"UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", []any{delta, tid}},
			{"UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", []any{delta, bid}},
			{"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", []any{tid, bid, aid, delta}},
		} {
			if s.sql == "" {
				if err := tx.QueryRow(ctx, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", aid).Scan(&bal); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	}}
}

func loadTPCB(ctx context.Context, c *pgx.Conn, rows int64) error {
	branches := max(1, rows/100000)
	insert := func(table string, n int64, row func(i int64) string) error {
		const batch = 500
		for start := int64(1); start <= n; start += batch {
			var sb strings.Builder
			sb.WriteString("INSERT INTO " + table + " VALUES ")
			for i := start; i < start+batch && i <= n; i++ {
				if i > start {
					sb.WriteByte(',')
				}
				sb.WriteString(row(i))
			}
			if _, err := c.Exec(ctx, sb.String()); err != nil {
				return fmt.Errorf("load %s: %w", table, err)
			}
		}
		return nil
	}
	if err := insert("pgbench_branches", branches, func(i int64) string { return fmt.Sprintf("(%d, 0, '')", i) }); err != nil {
		return err
	}
	if err := insert("pgbench_tellers", branches*10, func(i int64) string { return fmt.Sprintf("(%d, %d, 0, '')", i, 1+(i-1)/10) }); err != nil {
		return err
	}
	return insert("pgbench_accounts", rows, func(i int64) string {
		return fmt.Sprintf("(%d, %d, 0, '%s')", i, 1+(i-1)/100000, pad)
	})
}

// newWorkload returns the workload called name; readPct is mixed's share
// of reads.
func newWorkload(name string, rows int64, readPct int) (*workload, error) {
	w := &workload{name: name, rows: rows, setup: []string{kvTable}, load: loadKV}
	switch name {
	case "point-read":
		w.pick = func(*rand.Rand) op { return pointRead }
	case "point-write":
		w.pick = func(*rand.Rand) op { return pointWrite }
	case "mixed":
		w.pick = func(rng *rand.Rand) op {
			if rng.IntN(100) < readPct {
				return pointRead
			}
			return pointWrite
		}
	case "scan":
		w.pick = func(*rand.Rand) op { return scanOp }
	case "tpcb":
		w.setup = []string{
			"CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int NOT NULL, filler char(88))",
			"CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance int NOT NULL, filler char(84))",
			"CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84))",
			"CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))",
		}
		w.load = loadTPCB
		t := tpcbOp(rows)
		w.pick = func(*rand.Rand) op { return t }
	default:
		return nil, fmt.Errorf("unknown workload %q (known: %s)", name, strings.Join(Workloads, ", "))
	}
	return w, nil
}

// Target is a server under test.
type Target struct {
	// Name is "ShaleDB" or "PostgreSQL".
	Name string
	// Admin is the admin URL: the system tenant of ShaleDB, a superuser
	// database of PostgreSQL.
	Admin string
	// Shale is set when the target is ShaleDB (detected from version()).
	Shale bool
	// Hosts, when set, are the host:port of every node of a cluster:
	// tenant i's sessions go to Hosts[i % len(Hosts)], and the result
	// says where the tenants' shard leaders and the oracle were.
	Hosts []string
}

// DetectTarget connects to url and tells ShaleDB from PostgreSQL.
func DetectTarget(ctx context.Context, u string) (Target, error) {
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return Target{}, fmt.Errorf("connect %s: %w", redact(u), err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return Target{}, err
	}
	t := Target{Name: "PostgreSQL", Admin: u}
	if strings.Contains(v, "ShaleDB") {
		t.Name, t.Shale = "ShaleDB", true
	}
	return t, nil
}

// redact hides a URL's password.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// tenantPassword is the admin password of the harness's tenants.
const tenantPassword = "bench-tenant-pw"

// provision (re)creates tenant name on the target and returns its URL: a
// ShaleDB tenant through shaledb.create_tenant, a PostgreSQL database.
func (t Target) provision(ctx context.Context, admin *pgx.Conn, name string) (string, error) {
	u, err := url.Parse(t.Admin)
	if err != nil {
		return "", err
	}
	if t.Shale {
		var exists bool
		if err := admin.QueryRow(ctx, "SELECT count(*) > 0 FROM shaledb.tenants WHERE name = $1", name).Scan(&exists); err != nil {
			return "", fmt.Errorf("list tenants: %w", err)
		}
		if exists {
			if _, err := admin.Exec(ctx, "SELECT shaledb.drop_tenant($1)", name); err != nil {
				return "", fmt.Errorf("drop tenant %s: %w", name, err)
			}
		}
		if _, err := admin.Exec(ctx, "SELECT shaledb.create_tenant($1, $2)", name, tenantPassword); err != nil {
			return "", fmt.Errorf("create tenant %s: %w", name, err)
		}
		u.User = url.UserPassword("admin", tenantPassword)
	} else {
		for _, q := range []string{"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name} {
			if _, err := admin.Exec(ctx, q); err != nil {
				return "", fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// setLimit sets a ShaleDB tenant limit (-1 lifts it); PostgreSQL has none.
func (t Target) setLimit(ctx context.Context, name, limit string, v int64) error {
	if !t.Shale {
		return nil
	}
	c, err := pgx.Connect(ctx, t.Admin)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "SELECT shaledb.set_tenant_limit($1, $2, $3::bigint)", name, limit, v)
	return err
}

// tenantSet is the provisioned tenants of a run, with a pool each.
type tenantSet struct {
	names []string
	pools []*pgxpool.Pool
}

func (ts *tenantSet) close() {
	for _, p := range ts.pools {
		p.Close()
	}
}

// prepare provisions n tenants named prefix0..n-1 and loads the workload's
// data into each; every pool holds up to conns connections.
func (t Target) prepare(ctx context.Context, w *workload, prefix string, n, conns int) (*tenantSet, error) {
	admin, err := pgx.Connect(ctx, t.Admin)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", redact(t.Admin), err)
	}
	defer admin.Close(ctx)
	ts := &tenantSet{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		u, err := t.provision(ctx, admin, name)
		if err != nil {
			ts.close()
			return nil, err
		}
		if len(t.Hosts) > 0 {
			pu, err := url.Parse(u)
			if err != nil {
				ts.close()
				return nil, err
			}
			pu.Host = t.Hosts[i%len(t.Hosts)]
			u = pu.String()
		}
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			ts.close()
			return nil, fmt.Errorf("connect to tenant %s: %w", name, err)
		}
		for _, q := range w.setup {
			if _, err = c.Exec(ctx, q); err != nil {
				break
			}
		}
		if err == nil {
			err = w.load(ctx, c, w.rows)
		}
		c.Close(ctx)
		if err != nil {
			ts.close()
			return nil, fmt.Errorf("tenant %s: %w", name, err)
		}
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			ts.close()
			return nil, err
		}
		cfg.MaxConns = int32(max(conns, 1))
		cfg.HealthCheckPeriod = time.Hour
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			ts.close()
			return nil, err
		}
		ts.names = append(ts.names, name)
		ts.pools = append(ts.pools, p)
	}
	return ts, nil
}
