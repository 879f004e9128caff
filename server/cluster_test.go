package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shaledb/shaledb/server"
	"github.com/shaledb/shaledb/server/servertest"
)

// connector returns a function that connects to node i of a cluster as
// user (password pw) of tenant db, closing the connection when t ends.
func connector(t *testing.T, nodes []*server.Node) func(i int, user, pw, db string) *pgx.Conn {
	return func(i int, user, pw, db string) *pgx.Conn {
		t.Helper()
		ctx := context.Background()
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, pw, nodes[i].Addr(), db))
		if err != nil {
			t.Fatalf("connect to node %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
}

// TestClusterSQL runs SQL on a 3-node cluster: a tenant created through
// one node is served by every node, writes through one are read through
// the others, and shaledb.shards lists the shard with its tenants, size,
// leader and replicas.
func TestClusterSQL(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, "pw")
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	if _, err := sys.Exec(ctx, "SELECT shaledb.create_tenant('acme', 'acme-pw')"); err != nil {
		t.Fatal(err)
	}
	a1 := connect(1, "admin", "acme-pw", "acme")
	if _, err := a1.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Exec(ctx, "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 500) g"); err != nil {
		t.Fatal(err)
	}
	a2 := connect(2, "admin", "acme-pw", "acme")
	if _, err := a2.Exec(ctx, "CREATE INDEX t_v ON t (v)"); err != nil { // online build, cluster-wide wait
		t.Fatal(err)
	}
	var n, sum int64
	if err := a2.QueryRow(ctx, "SELECT count(*), sum(id) FROM t WHERE v LIKE 'x%'").Scan(&n, &sum); err != nil || n != 500 || sum != 500*501/2 {
		t.Fatalf("read through another node: %d rows, sum %d, %v", n, sum, err)
	}
	// Row locks across nodes: concurrent increments, none lost.
	if _, err := a1.Exec(ctx, "CREATE TABLE c (id int PRIMARY KEY, n int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Exec(ctx, "INSERT INTO c VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:acme-pw@%s/acme?sslmode=disable", nodes[i].Addr()))
			if err != nil {
				done <- err
				return
			}
			defer c.Close(ctx)
			for k := 0; k < 20; k++ {
				if _, err := c.Exec(ctx, "UPDATE c SET n = n + 1 WHERE id = 1"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := a2.QueryRow(ctx, "SELECT n FROM c").Scan(&n); err != nil || n != 60 {
		t.Fatalf("60 locked increments through 3 nodes left n = %d (%v)", n, err)
	}

	var id, size, leader, replicas int64
	var tenants []string
	var lastShard bool
	err := connect(2, "admin", "pw", "system").QueryRow(ctx,
		"SELECT id, tenants, size_bytes, leader, cardinality(replicas), end_key IS NULL FROM shaledb.shards").
		Scan(&id, &tenants, &size, &leader, &replicas, &lastShard)
	if err != nil {
		t.Fatal(err)
	}
	if id != 1 || size < 500*100 || leader < 1 || replicas != 3 || !lastShard || len(tenants) != 2 {
		t.Fatalf("shaledb.shards: id %d tenants %v size %d leader %d replicas %d last %v", id, tenants, size, leader, replicas, lastShard)
	}
	if _, err := a1.Exec(ctx, "SELECT * FROM shaledb.shards"); err == nil {
		t.Fatal("a tenant read shaledb.shards")
	}

	// shaledb.nodes: every node, alive, one of them the oracle, and the
	// one the session is on.
	rows, err := connect(1, "admin", "pw", "system").Query(ctx,
		"SELECT id, addr, region, alive, oracle, this_node FROM shaledb.nodes ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var oracles, selves int
	var listed int
	for rows.Next() {
		var nid int64
		var addr, region string
		var alive, oracle, self bool
		if err := rows.Scan(&nid, &addr, &region, &alive, &oracle, &self); err != nil {
			t.Fatal(err)
		}
		listed++
		if oracle {
			oracles++
		}
		if self {
			selves++
			if addr != nodes[1].Addr().String() || region != "r2" {
				t.Errorf("this_node is %s in %s, want %s in r2", addr, region, nodes[1].Addr())
			}
		}
		if !alive {
			t.Errorf("node %d (%s) listed dead", nid, addr)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if listed != 3 || oracles != 1 || selves != 1 {
		t.Fatalf("shaledb.nodes: %d nodes, %d oracles, %d marked this_node", listed, oracles, selves)
	}
}

// TestClusterPgbench runs pgbench on a 3-node cluster: initialised through
// one node, TPC-B and select-only through the others, with no failed
// transaction, and the four balance sums agree afterwards.
func TestClusterPgbench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pgbench for ~10s")
	}
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Skip("pgbench not installed")
	}
	nodes := servertest.StartCluster(t, 3, "pw")
	pgbench := func(node int, args ...string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(nodes[node].Addr().String())
		cmd := exec.Command("pgbench", append(args, "-h", host, "-p", port, "-U", "admin", "system")...)
		cmd.Env = append(os.Environ(), "PGPASSWORD=pw")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v on node %d: %v\n%s", args, node, err, out)
		}
		return string(out)
	}
	pgbench(0, "-i", "-s", "1", "-q")
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	for i, script := range [][]string{{}, {"-S"}} {
		args := append([]string{"-n", "-M", "prepared", "-c", "4", "-j", "2", "-T", "3"}, script...)
		out := pgbench(1+i, args...)
		if m := failed.FindStringSubmatch(out); m == nil || m[1] != "0" {
			t.Errorf("pgbench %v: failed transactions %v\n%s", args, m, out)
		}
		if m := processed.FindStringSubmatch(out); m == nil || m[1] == "0" {
			t.Errorf("pgbench %v: nothing processed\n%s", args, out)
		}
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:pw@%s/system?sslmode=disable", nodes[0].Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var sums []int64
	for _, q := range []string{"SELECT sum(abalance) FROM pgbench_accounts", "SELECT sum(delta) FROM pgbench_history",
		"SELECT sum(bbalance) FROM pgbench_branches", "SELECT sum(tbalance) FROM pgbench_tellers"} {
		var s *int64
		if err := c.QueryRow(ctx, q).Scan(&s); err != nil || s == nil {
			t.Fatalf("%s: %v %v", q, s, err)
		}
		sums = append(sums, *s)
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Fatalf("balances disagree: %v", sums)
		}
	}
}

// TestClusterSplitsAtTenants runs a 3-node cluster whose shards split past
// 32 KiB. Tenants filled with rows end up on shards of their own, split at
// tenant boundaries first (the metadata and the system tenant stay in the
// first shard); afterwards new tenants are still created, online index builds
// still run, and every tenant reads back all of its rows through every
// node.
func TestClusterSplitsAtTenants(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, "pw", func(cc *server.ClusterConfig) { cc.ShardMaxBytes = 32 << 10 })
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	fill := func(name string, via int) {
		t.Helper()
		if _, err := sys.Exec(ctx, fmt.Sprintf("SELECT shaledb.create_tenant('%s', 'pw-%s')", name, name)); err != nil {
			t.Fatalf("create tenant %s: %v", name, err)
		}
		c := connect(via, "admin", "pw-"+name, name)
		if _, err := c.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 4; k++ {
			if _, err := c.Exec(ctx, "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series($1::int, $1::int + 99) g", k*100+1); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		// An online index build: its marker and the descriptor are
		// written in separate transactions, on different shards.
		if _, err := c.Exec(ctx, "CREATE INDEX t_v ON t (v)"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	names := []string{"t1", "t2", "t3", "t4", "t5"}
	for i, name := range names {
		fill(name, i%3)
	}
	type shard struct {
		id      int64
		start   []byte
		tenants []string
	}
	var shards []shard
	for wait := time.Now().Add(60 * time.Second); ; {
		rows, err := sys.Query(ctx, "SELECT id, start_key, tenants FROM shaledb.shards ORDER BY start_key")
		if err != nil {
			t.Fatal(err)
		}
		shards = shards[:0]
		for rows.Next() {
			var s shard
			if err := rows.Scan(&s.id, &s.start, &s.tenants); err != nil {
				t.Fatal(err)
			}
			shards = append(shards, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(shards) >= 4 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d shards after a minute: %v", len(shards), shards)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, s := range shards {
		if i == 0 && !slices.Contains(s.tenants, "system") {
			t.Errorf("the first shard holds %v, not the system tenant", s.tenants)
		}
		// Only the last shard may be empty: split off at the end of the
		// last tenant, for the tenants to come.
		if i > 0 && (len(s.tenants) == 0 && i < len(shards)-1 || slices.Contains(s.tenants, "system")) {
			t.Errorf("shard %d holds %v", s.id, s.tenants)
		}
	}
	t.Logf("shards: %v", shards)

	// Tenants made after the splits, in a shard apart from the metadata.
	fill("t6", 1)
	for _, name := range append(names, "t6") {
		for i := range nodes {
			var n, sum int64
			err := connect(i, "admin", "pw-"+name, name).QueryRow(ctx, "SELECT count(*), sum(id) FROM t WHERE v LIKE 'x%'").Scan(&n, &sum)
			if err != nil || n != 400 || sum != 400*401/2 {
				t.Fatalf("%s through node %d: %d rows, sum %d, %v", name, i, n, sum, err)
			}
		}
	}
	if _, err := sys.Exec(ctx, "SELECT shaledb.drop_tenant('t2')"); err != nil {
		t.Fatal(err)
	}
}

// TestClusterSchemaCache checks the descriptor cache of a cluster
// (schema epochs, RFC 0013): a writer on one node replaces a table in a
// loop, each round with a column named after the round and one row
// holding the round's number. Readers on the other nodes race it and must
// never see a column and a value of different rounds, or no row; and
// after each round a reader on another node must see that round at once.
func TestClusterSchemaCache(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, "pw")
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	if _, err := sys.Exec(ctx, "SELECT shaledb.create_tenant('flip', 'flip-pw')"); err != nil {
		t.Fatal(err)
	}
	writer := connect(0, "admin", "flip-pw", "flip")
	if _, err := writer.Exec(ctx, "CREATE TABLE flip (c0 bigint); INSERT INTO flip VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	// readRound reads the table and returns the round it holds.
	readRound := func(c *pgx.Conn) (int64, error) {
		rows, err := c.Query(ctx, "SELECT * FROM flip", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		if len(rows.FieldDescriptions()) == 0 {
			rows.Close()
			return 0, fmt.Errorf("no columns: %w", rows.Err())
		}
		col := string(rows.FieldDescriptions()[0].Name)
		var vals []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return 0, err
			}
			vals = append(vals, v)
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if len(vals) != 1 || col != fmt.Sprintf("c%d", vals[0]) {
			return 0, fmt.Errorf("column %s holds %v", col, vals)
		}
		return vals[0], nil
	}
	const rounds = 40
	done := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for i := 1; i <= 2; i++ {
		reader := connect(i, "admin", "flip-pw", "flip")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := readRound(reader); err != nil {
					errs <- fmt.Errorf("reader on node %d: %w", i, err)
					return
				}
			}
		}()
	}
	checker := connect(2, "admin", "flip-pw", "flip")
	if _, err := readRound(checker); err != nil {
		t.Fatal(err)
	}
	for round := int64(1); round <= rounds; round++ {
		if _, err := writer.Exec(ctx, fmt.Sprintf("BEGIN; DROP TABLE flip; CREATE TABLE flip (c%d bigint); INSERT INTO flip VALUES (%d); COMMIT", round, round)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got, err := readRound(checker); err != nil || got != round {
			t.Fatalf("after round %d, another node read round %d (%v)", round, got, err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestClusterTenantLimitsReachEveryNode: a limit set through one node
// holds on another node where the tenant already has sessions (their
// limits were loaded when the first of them opened).
func TestClusterTenantLimitsReachEveryNode(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, "pw")
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	if _, err := sys.Exec(ctx, "SELECT shaledb.create_tenant('lim', 'lim-pw')"); err != nil {
		t.Fatal(err)
	}
	first := connect(1, "admin", "lim-pw", "lim")
	if _, err := first.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Exec(ctx, "SELECT shaledb.set_tenant_limit('lim', 'max_connections', 1::bigint)"); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("postgres://admin:lim-pw@%s/lim?sslmode=disable", nodes[1].Addr())
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
				t.Fatalf("second session: %v, want 53300", err)
			}
			return
		}
		c.Close(ctx)
		if time.Now().After(deadline) {
			t.Fatal("node 1 still admits a second session of a tenant limited to one through node 0")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterBankAcrossShards runs a bank in one tenant whose accounts
// table outgrows a 16 KiB shard and splits inside the tenant: clients on
// every node move money between random accounts in explicit transactions
// (most across shards) while others sum the balances in one snapshot. The
// total never changes.
func TestClusterBankAcrossShards(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, "pw", func(cc *server.ClusterConfig) { cc.ShardMaxBytes = 16 << 10 })
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	if _, err := sys.Exec(ctx, "SELECT shaledb.create_tenant('bank', 'pw-bank')"); err != nil {
		t.Fatal(err)
	}
	const accounts, initial = 200, 100
	c0 := connect(0, "admin", "pw-bank", "bank")
	if _, err := c0.Exec(ctx, "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL, pad text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c0.Exec(ctx, fmt.Sprintf("INSERT INTO acct SELECT g, %d, repeat('p', 300) FROM generate_series(1, %d) g", initial, accounts)); err != nil {
		t.Fatal(err)
	}
	for wait := time.Now().Add(60 * time.Second); ; {
		var n int
		if err := sys.QueryRow(ctx, "SELECT count(*) FROM shaledb.shards WHERE 'bank' = ANY(tenants)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= 3 {
			t.Logf("the tenant spans %d shards", n)
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the tenant spans %d shards after a minute", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var transfers, conflicts, sums atomic.Int64
	var bad atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for client := range 6 {
		c := connect(client%3, "admin", "pw-bank", "bank")
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), 1))
			for time.Now().Before(deadline) {
				if client >= 4 {
					var total int64
					if err := c.QueryRow(ctx, "SELECT sum(bal) FROM acct").Scan(&total); err != nil {
						bad.Store(fmt.Sprintf("sum: %v", err))
						return
					}
					if total != accounts*initial {
						bad.Store(fmt.Sprintf("a snapshot sums to %d", total))
					}
					sums.Add(1)
					continue
				}
				from, to := 1+rng.IntN(accounts), 1+rng.IntN(accounts)
				if from == to {
					continue
				}
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal - 3 WHERE id = $1", from); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE acct SET bal = bal + 3 WHERE id = $1", to)
					return err
				})
				var pe *pgconn.PgError
				switch {
				case err == nil:
					transfers.Add(1)
				case errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01"):
					conflicts.Add(1)
				default:
					bad.Store(fmt.Sprintf("transfer: %v", err))
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d transfers, %d conflicts, %d snapshot sums", transfers.Load(), conflicts.Load(), sums.Load())
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if transfers.Load() < 20 {
		t.Fatalf("only %d transfers", transfers.Load())
	}
	for i := range nodes {
		var total, n int64
		if err := connect(i, "admin", "pw-bank", "bank").QueryRow(ctx, "SELECT sum(bal), count(*) FROM acct").Scan(&total, &n); err != nil {
			t.Fatal(err)
		}
		if total != accounts*initial || n != accounts {
			t.Fatalf("through node %d: %d accounts, total %d", i, n, total)
		}
	}
}

// TestClusterMoveTenant moves a tenant to another region with
// shaledb.move_tenant while a client keeps writing to it: afterwards its
// shard's replica and leader are on the other region's node, every row
// written is there, and reads with shaledb.read_mode = 'follower' see
// them. A region without nodes, and a bad read mode, are refused.
func TestClusterMoveTenant(t *testing.T) {
	// One replica per shard, one node per region (r1, r2).
	nodes := servertest.StartCluster(t, 2, "pw", func(cc *server.ClusterConfig) { cc.ReplicationFactor = 1 })
	ctx := context.Background()
	connect := connector(t, nodes)
	sys := connect(0, "admin", "pw", "system")
	if _, err := sys.Exec(ctx, "SELECT shaledb.create_tenant('acme', 'pw-acme')"); err != nil {
		t.Fatal(err)
	}
	a := connect(0, "admin", "pw-acme", "acme")
	if _, err := a.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	var r2 int64
	if err := sys.QueryRow(ctx, "SELECT id FROM shaledb.nodes WHERE region = 'r2'").Scan(&r2); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	var worst atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		w := connect(1, "admin", "pw-acme", "acme")
		for i := 1; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			t0 := time.Now()
			if _, err := w.Exec(ctx, "INSERT INTO w VALUES ($1, 'x')", i); err != nil {
				writerDone <- fmt.Errorf("insert %d: %w", i, err)
				return
			}
			if d := int64(time.Since(t0)); d > worst.Load() {
				worst.Store(d)
			}
			written.Store(int64(i))
		}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	var moved bool
	if err := sys.QueryRow(ctx, "SELECT shaledb.move_tenant('acme', 'r2')").Scan(&moved); err != nil || !moved {
		t.Fatalf("move_tenant: %v, %v", moved, err)
	}
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("moved in %v; %d rows written meanwhile and around, slowest insert %v", took.Round(time.Millisecond),
		written.Load(), time.Duration(worst.Load()).Round(time.Millisecond))
	rows, err := sys.Query(ctx, "SELECT leader, replicas FROM shaledb.shards WHERE 'acme' = ANY(tenants)")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var leader int64
		var replicas []int64
		if err := rows.Scan(&leader, &replicas); err != nil {
			t.Fatal(err)
		}
		if leader != r2 || !slices.Equal(replicas, []int64{r2}) {
			t.Errorf("acme's shard: leader %d, replicas %v; want node %d", leader, replicas, r2)
		}
		n++
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("acme's shards: %d, %v", n, rows.Err())
	}
	for i := range nodes {
		c := connect(i, "admin", "pw-acme", "acme")
		if _, err := c.Exec(ctx, "SET shaledb.read_mode = 'follower'"); err != nil {
			t.Fatal(err)
		}
		var count, max int64
		if err := c.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM w").Scan(&count, &max); err != nil {
			t.Fatal(err)
		}
		if count != written.Load() || max != written.Load() {
			t.Fatalf("through node %d: %d rows up to %d, %d written", i, count, max, written.Load())
		}
	}
	var pe *pgconn.PgError
	if _, err := sys.Exec(ctx, "SELECT shaledb.move_tenant('acme', 'r9')"); !errors.As(err, &pe) || pe.Code != "22023" {
		t.Fatalf("a move to a region without nodes: %v", err)
	}
	if _, err := a.Exec(ctx, "SET shaledb.read_mode = 'nearest'"); !errors.As(err, &pe) || pe.Code != "22023" {
		t.Fatalf("a bad read mode: %v", err)
	}
}
