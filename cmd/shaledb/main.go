// Command shaledb runs a ShaleDB node and administers it.
//
//	shaledb start --data-dir DIR [--listen ADDR] [--http ADDR] [--tls-cert F --tls-key F]
//	shaledb tenant create|drop|list|set-limit ...
//	shaledb version
//
//	shaledb start --data-dir DIR --peer-listen ADDR --etcd URLS [--region R] ...
//
// start opens (creating if needed) the node's embedded Badger store in DIR,
// brings its format up to date, serves the PostgreSQL protocol on --listen
// (and /healthz on --http) until SIGINT or SIGTERM, then lets running
// statements finish and closes the store cleanly. The admin user of tenant
// system gets SHALEDB_ADMIN_PASSWORD, or a generated password printed once
// and kept in DIR/admin-password (mode 0600).
//
// With --etcd, start runs the node as a member of a replicated cluster
// (kvcluster/raft) whose metadata lives in that etcd: the first node
// bootstraps it once --replicas nodes have joined.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shaledb/shaledb/migrations"
	"github.com/shaledb/shaledb/server"
)

const usage = `usage:
  shaledb start --data-dir DIR [--listen ADDR] [--http ADDR] [--tls-cert F --tls-key F]
                                               run a single node on DIR
  shaledb tenant create|drop|list|set-limit    administer tenants (shaledb tenant help)
  shaledb version                              print the version
  shaledb free-ports N                         print N free loopback TCP ports (for scripts)
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shaledb:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "start":
		cfg, err := parseStart(args[1:], stderr)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return start(ctx, cfg, stdout, stderr)
	case "tenant":
		if len(args) > 1 && (args[1] == "help" || args[1] == "-h" || args[1] == "--help") {
			fmt.Fprint(stdout, tenantUsage)
			return nil
		}
		return tenantCmd(context.Background(), args[1:], stdout, stderr)
	case "free-ports":
		return freePorts(args[1:], stdout)
	case "version":
		fmt.Fprintf(stdout, "shaledb, store format %d\n", migrations.Latest())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// startConfig is the configuration of `shaledb start`.
type startConfig struct {
	// Etcd, when set, makes the node a member of the cluster whose
	// metadata that etcd holds (comma-separated endpoints); PeerListen,
	// Region, ClusterName and Replicas then apply.
	Etcd        string
	PeerListen  string
	Region      string
	ClusterName string
	Replicas    int
	ShardMax    int64
	// DataDir holds the node's store; created if missing. Required.
	DataDir string
	// Listen is the PostgreSQL protocol address. Default 127.0.0.1:5433.
	Listen string
	// HTTPAddr, if set, serves /healthz. Port 0 picks a free port.
	HTTPAddr string
	// TLSCert and TLSKey enable TLS for clients that ask.
	TLSCert, TLSKey string
	// MemoryLimit is the Go runtime's soft memory limit in bytes (the
	// garbage collector works harder near it); 0 leaves the runtime's
	// default. GOMEMLIMIT in the environment wins over it.
	MemoryLimit int64
	// MetricsTopTenants is how many of the busiest tenants get their own
	// /metrics series.
	MetricsTopTenants int
	// RateWait bounds a statement's wait for its tenant's rate limit.
	RateWait time.Duration
}

// defaultMemoryLimit keeps a node's heap, with the collector's headroom,
// near 384 MiB, the budget a node at pgbench scale 10 is measured against.
const defaultMemoryLimit = 384 << 20

// parseBytes reads a size such as 384MiB, 2GiB, 512KiB or 1048576.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size like 384MiB", s)
	}
	return n * mult, nil
}

func (c startConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if c.Etcd == "" && c.PeerListen != "" {
		return errors.New("--peer-listen needs --etcd (cluster mode)")
	}
	if c.Etcd != "" && c.PeerListen == "" {
		return errors.New("--etcd needs --peer-listen: the address other nodes reach this one at")
	}
	for flagName, addr := range map[string]string{"--listen": c.Listen, "--http": c.HTTPAddr, "--peer-listen": c.PeerListen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: %w", flagName, addr, err)
		}
	}
	return nil
}

func parseStart(args []string, stderr io.Writer) (startConfig, error) {
	var cfg startConfig
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of the node's store (created if missing)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:5433", "PostgreSQL protocol address (port 0 picks a free one)")
	fs.StringVar(&cfg.HTTPAddr, "http", "", "serve /healthz and /metrics on this address, e.g. 127.0.0.1:8080")
	fs.StringVar(&cfg.Etcd, "etcd", "", "cluster mode: etcd endpoints holding the cluster's metadata, comma-separated (e.g. http://127.0.0.1:2379)")
	fs.StringVar(&cfg.PeerListen, "peer-listen", "", "cluster mode: address other nodes reach this one at (raft and requests)")
	fs.StringVar(&cfg.Region, "region", "default", "cluster mode: the node's region, advertised in the registry")
	fs.StringVar(&cfg.ClusterName, "cluster-name", "default", "cluster mode: the cluster's name in etcd")
	fs.IntVar(&cfg.Replicas, "replicas", 3, "cluster mode: replicas per shard (the first node waits for this many nodes)")
	fs.Func("shard-max-bytes", "cluster mode: a shard past this size splits at a tenant boundary, e.g. 64MiB (default 64MiB; 0 never)", func(v string) error {
		n, err := parseBytes(v)
		cfg.ShardMax = n
		if err == nil && n == 0 {
			cfg.ShardMax = -1
		}
		return err
	})
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM) offered to clients that ask for TLS")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.IntVar(&cfg.MetricsTopTenants, "metrics-top-tenants", 100, "the busiest N tenants get their own /metrics series; the rest are summed as tenant=\"_other\"")
	fs.DurationVar(&cfg.RateWait, "rate-max-wait", time.Second, "longest a statement waits for its tenant's max_qps before failing with 53400")
	cfg.MemoryLimit = defaultMemoryLimit
	fs.Func("memory-limit", "soft limit of the node's memory, e.g. 384MiB or 2GiB; 0 for none (default 384MiB; GOMEMLIMIT wins)", func(v string) error {
		n, err := parseBytes(v)
		cfg.MemoryLimit = n
		return err
	})
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.validate()
}

func start(ctx context.Context, cfg startConfig, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	envPassword := os.Getenv("SHALEDB_ADMIN_PASSWORD")
	scfg := server.Config{
		DataDir: cfg.DataDir, Listen: cfg.Listen, HTTP: cfg.HTTPAddr,
		TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey, AdminPassword: envPassword, Logger: log,
		MetricsTopTenants: cfg.MetricsTopTenants, MaxRateWait: cfg.RateWait,
	}
	if cfg.Etcd != "" {
		scfg.Cluster = &server.ClusterConfig{PeerListen: cfg.PeerListen, Etcd: strings.Split(cfg.Etcd, ","),
			Name: cfg.ClusterName, Region: cfg.Region, ReplicationFactor: cfg.Replicas, ShardMaxBytes: cfg.ShardMax}
		fmt.Fprintf(stdout, "Joining cluster %q through etcd %s (waits for %d nodes on first start)\n", cfg.ClusterName, cfg.Etcd, cfg.Replicas)
	}
	node, err := server.Start(ctx, scfg)
	if err != nil {
		return err
	}
	for _, m := range node.Migrations {
		log.Info("applied migration", "migration", m)
	}
	host, port, _ := net.SplitHostPort(node.Addr().String())
	fmt.Fprintf(stdout, "ShaleDB node ready\n  data directory: %s\n  postgres:       %s\n", cfg.DataDir, node.Addr())
	if a := node.HTTPAddr(); a != nil {
		fmt.Fprintf(stdout, "  health:         http://%s/healthz\n  metrics:        http://%s/metrics\n", a, a)
	}
	switch {
	case envPassword != "":
		fmt.Fprintf(stdout, "Connect:\n  psql \"postgres://%s:$SHALEDB_ADMIN_PASSWORD@%s:%s/system\"\n", server.AdminUser, host, port)
	case node.AdminPassword != "":
		fmt.Fprintf(stdout, "Generated the admin password (shown once; kept in %s):\n  %s\nConnect:\n  psql \"postgres://%s:%s@%s:%s/system\"\n",
			node.AdminPasswordFile(), node.AdminPassword, server.AdminUser, node.AdminPassword, host, port)
	case cfg.Etcd != "" && !fileExists(node.AdminPasswordFile()):
		fmt.Fprintf(stdout, "Connect (another node created the admin user; its password is in that node's data directory, file %s):\n  psql \"postgres://%s@%s:%s/system\"\n",
			filepath.Base(node.AdminPasswordFile()), server.AdminUser, host, port)
	default:
		fmt.Fprintf(stdout, "Connect (the admin password is in %s):\n  psql \"postgres://%s:$(cat %s)@%s:%s/system\"\n",
			node.AdminPasswordFile(), server.AdminUser, node.AdminPasswordFile(), host, port)
	}
	fmt.Fprintln(stdout, "Serving until SIGINT or SIGTERM.")
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- node.Shutdown(sctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownMax):
		// The store could not close (say, its directory vanished): exit
		// anyway. Every acknowledged commit is in the write-ahead log.
		return fmt.Errorf("shutdown did not finish within %v; exiting without a clean close (no acknowledged commit is lost)", shutdownMax)
	}
}

// shutdownMax bounds a clean shutdown: statements' grace period, then
// closing the store.
const shutdownMax = 30 * time.Second

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// freePorts prints n loopback TCP ports that were free a moment ago,
// one per line: scripts that start servers on a shared machine use them.
func freePorts(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: shaledb free-ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 100 {
		return fmt.Errorf("free-ports: N must be 1..100, got %q", args[0])
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
