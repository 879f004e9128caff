// Package server assembles a single ShaleDB node: the Badger store, format
// migrations, the bootstrap admin user of the system tenant, the SQL
// engine, the PostgreSQL protocol listener and the HTTP health endpoint.
// cmd/shaledb runs it; tests start it in-process on loopback ports.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/migrations"
	"github.com/shaledb/shaledb/pgwire"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/session"
	"github.com/shaledb/shaledb/tenancy"
	"github.com/shaledb/shaledb/tenancy/scram"
	"go.opentelemetry.io/otel/trace"
)

// AdminUser is the bootstrap user of the system tenant.
const AdminUser = "admin"

// adminPasswordFile holds a generated admin password, mode 0600.
const adminPasswordFile = "admin-password"

// Config configures a node.
type Config struct {
	// DataDir holds the store; required unless InMemory.
	DataDir string
	// InMemory keeps the store in memory (tests).
	InMemory bool
	// Listen is the PostgreSQL protocol address; port 0 picks one.
	Listen string
	// HTTP, if set, serves /healthz.
	HTTP string
	// TLSCert and TLSKey, if set, enable TLS for clients that ask.
	TLSCert, TLSKey string
	// AdminPassword, if set, is (re)set as the admin password at start;
	// otherwise a generated one is kept in DataDir.
	AdminPassword string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// TxnMemoryBytes is how much of its writes a transaction keeps in
	// memory before spilling them to disk; 0 takes the store's default.
	TxnMemoryBytes int64
	// MetricsTopTenants is how many of the busiest tenants get their own
	// series at /metrics; the rest are summed. Default 100.
	MetricsTopTenants int
	// MaxRateWait bounds a statement's wait for its tenant's rate limit
	// (53400 past it). Default 1s.
	MaxRateWait time.Duration
	// Cluster, if set, makes the node a member of a replicated cluster
	// (kvcluster/raft) instead of running on the embedded single-node
	// store.
	Cluster *ClusterConfig
	// TracerProvider, if set, gets a span per statement; otherwise spans
	// are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set,
	// and off when it is not.
	TracerProvider trace.TracerProvider
}

// ClusterConfig places a node in a cluster.
type ClusterConfig struct {
	// PeerListen is where other nodes reach this one.
	PeerListen string
	// Etcd lists the endpoints of the etcd holding the cluster's metadata.
	Etcd []string
	// Name names the cluster in etcd. Default "default".
	Name string
	// Region is advertised in the node registry.
	Region string
	// ReplicationFactor is the number of replicas per shard. Default 3.
	ReplicationFactor int
	// ShardMaxBytes is the size past which a shard splits, at a tenant
	// boundary (keys.TenantSplitKey). Default 64 MiB; negative: never.
	ShardMaxBytes int64
}

func (c *Config) validate() error {
	var errs []error
	if c.DataDir == "" && !c.InMemory {
		errs = append(errs, errors.New("a data directory is required"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("a listen address is required"))
	}
	if c.Cluster != nil && c.InMemory {
		errs = append(errs, errors.New("a cluster node keeps its data on disk: InMemory does not apply"))
	}
	if c.Cluster != nil && len(c.Cluster.Etcd) == 0 {
		errs = append(errs, errors.New("a cluster node needs --etcd"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	return errors.Join(errs...)
}

// Node is a running node.
type Node struct {
	cfg     Config
	store   kvcluster.KvCluster
	cluster *clusterMember // nil on the single-node store
	engine  *session.Engine
	tenants *tenancy.Manager
	tel     *telemetry
	pg      *pgwire.Server
	ln      net.Listener
	http    *http.Server
	httpLn  net.Listener
	served  chan error

	shutdownOnce sync.Once
	shutdownErr  error

	// AdminPassword is the admin password when it was generated at this
	// start (to print once); empty otherwise.
	AdminPassword string
	// Migrations lists what this start applied.
	Migrations []string
}

// limitsRefresh is how often a cluster node reloads its live tenants'
// limits, which another node may have changed.
const limitsRefresh = time.Second

// Start opens the store, prepares it and starts serving.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if !cfg.InMemory {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	// Bound first (served last): a cluster node registers the address
	// clients reach it at, port 0 resolved.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	var store kvcluster.KvCluster
	var member *clusterMember
	if cfg.Cluster != nil {
		if member, err = joinCluster(ctx, cfg, ln.Addr().String()); err != nil {
			ln.Close()
			return nil, err
		}
		store = member
	} else {
		opts := badgerkv.Options{Dir: cfg.DataDir, Logger: cfg.Logger}
		if cfg.InMemory {
			opts = badgerkv.Options{InMemory: true, MemTableBytes: 16 << 20}
		}
		opts.TxnMemoryBytes = cfg.TxnMemoryBytes
		bs, err := badgerkv.Open(opts)
		if err != nil {
			ln.Close()
			return nil, err
		}
		store = bs
	}
	if cfg.MetricsTopTenants == 0 {
		cfg.MetricsTopTenants = 100
	}
	n := &Node{cfg: cfg, store: store, cluster: member, served: make(chan error, 1), ln: ln}
	tcfg := tenancy.ManagerConfig{MaxRateWait: cfg.MaxRateWait, Logger: cfg.Logger}
	if member != nil {
		tcfg.RefreshLimits = limitsRefresh // other nodes change limits too
	}
	n.tenants = tenancy.NewManager(store, tcfg)
	fail := func(err error) (*Node, error) {
		n.tenants.Close()
		if n.tel != nil {
			n.tel.shutdown(ctx)
		}
		store.Close()
		ln.Close()
		return nil, err
	}
	if err := n.prepare(ctx); err != nil {
		return fail(err)
	}
	tel, err := newTelemetry(ctx, n.tenants, cfg.MetricsTopTenants, cfg.TracerProvider)
	if err != nil {
		return fail(fmt.Errorf("telemetry: %w", err))
	}
	n.tel = tel
	if err := n.listen(); err != nil {
		return fail(err)
	}
	return n, nil
}

func (n *Node) prepare(ctx context.Context) error {
	res, err := migrations.Run(ctx, n.store, migrations.Env{Now: n.cfg.Now})
	if err != nil {
		return err
	}
	n.Migrations = res.Applied
	if err := tenancy.FinishDrops(ctx, n.store); err != nil {
		return err
	}
	return n.bootstrapAdmin(ctx)
}

// bootstrapAdmin gives the system tenant its admin user: with the
// configured password when there is one (set at every start), else the
// stored verifier stands, else a generated password, saved in the data
// directory (mode 0600) and reported once through AdminPassword.
func (n *Node) bootstrapAdmin(ctx context.Context) error {
	sys := catalog.New(keys.MakeCodec(keys.SystemTenantID))
	var exists bool
	err := kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) error {
		_, found, err := sys.Role(ctx, txn, AdminUser)
		exists = found
		return err
	})
	if err != nil {
		return err
	}
	password := n.cfg.AdminPassword
	switch {
	case password != "":
	case exists:
		return nil
	default:
		raw := make([]byte, 18)
		if _, err := rand.Read(raw); err != nil {
			return err
		}
		password = base64.RawURLEncoding.EncodeToString(raw)
		if !n.cfg.InMemory {
			path := filepath.Join(n.cfg.DataDir, adminPasswordFile)
			if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
				return fmt.Errorf("save admin password: %w", err)
			}
		}
		n.AdminPassword = password
	}
	verifier, err := scram.NewVerifier(password)
	if err != nil {
		return err
	}
	// Of cluster nodes starting together, one creates the admin user; the
	// others keep it (and forget the password they generated).
	generated := n.AdminPassword != ""
	lost := false
	err = kvcluster.Update(ctx, n.store, 10, func(txn kvcluster.Txn) error {
		if generated {
			_, found, err := sys.Role(ctx, txn, AdminUser)
			if lost = found; err != nil || found {
				return err
			}
		}
		return sys.PutRole(ctx, txn, &catalog.Role{Name: AdminUser, Superuser: true, SCRAM: verifier})
	})
	if err == nil && lost {
		n.AdminPassword = ""
		if err := os.Remove(filepath.Join(n.cfg.DataDir, adminPasswordFile)); err != nil {
			return fmt.Errorf("remove the unused admin password: %w", err)
		}
	}
	return err
}

// AdminPasswordFile is where a generated admin password is kept.
func (n *Node) AdminPasswordFile() string { return filepath.Join(n.cfg.DataDir, adminPasswordFile) }

func (n *Node) listen() error {
	var tlsCfg *tls.Config
	if n.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	n.engine = session.NewEngine(n.store, n.cfg.Now)
	n.engine.Admin = admin{n}
	n.engine.Tracer = n.tel.tracer
	if n.cluster == nil {
		// In a cluster another node may be running the builds.
		if err := n.abandonIndexBuilds(context.Background()); err != nil {
			return err
		}
	}
	n.pg = pgwire.NewServer(pgwire.Config{TLS: tlsCfg, Logger: n.cfg.Logger}, n)
	ln := n.ln
	go func() { n.served <- n.pg.Serve(ln) }()
	if n.cfg.HTTP != "" {
		hl, err := net.Listen("tcp", n.cfg.HTTP)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", n.cfg.HTTP, err)
		}
		n.httpLn = hl
		n.http = &http.Server{Handler: n.healthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = n.http.Serve(hl) }()
	}
	return nil
}

// abandonIndexBuilds takes out the indexes a crash left half built
// (session's online CREATE INDEX), with their entries, in the tenant's
// own session so that its storage accounting sees the deletes.
func (n *Node) abandonIndexBuilds(ctx context.Context) error {
	type build struct {
		tenant keys.TenantID
		table  keys.TableID
		index  keys.IndexID
		marker []byte
	}
	var builds []build
	err := kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) error {
		start, end := keys.MetaIndexBuildSpan()
		return kvcluster.ScanAll(ctx, txn, start, end, 256, func(e kvcluster.KeyValue) error {
			tn, tb, ix, err := keys.DecodeMetaIndexBuild(e.Key)
			builds = append(builds, build{tn, tb, ix, e.Key})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("find interrupted index builds: %w", err)
	}
	for _, b := range builds {
		var t tenancy.Tenant
		var found bool
		err := kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) (err error) {
			t, found, err = tenancy.Get(ctx, txn, b.tenant)
			return err
		})
		if err == nil && !found {
			err = kvcluster.Update(ctx, n.store, 10, func(txn kvcluster.Txn) error { return txn.Delete(ctx, b.marker) })
		}
		if err == nil && found {
			err = n.abandonIndexBuild(ctx, t, b.table, b.index)
		}
		if err != nil {
			return fmt.Errorf("abandon index build of tenant %d: %w", b.tenant, err)
		}
		n.cfg.Logger.Warn("abandoned an index build a crash interrupted", "tenant", t.Name, "table", b.table, "index", b.index)
	}
	return nil
}

func (n *Node) abandonIndexBuild(ctx context.Context, t tenancy.Tenant, table keys.TableID, index keys.IndexID) error {
	live, release, err := n.tenants.Acquire(ctx, t, func() {})
	if err != nil {
		return err
	}
	s := n.engine.New(t.ID, t.Name, &catalog.Role{Name: AdminUser, Superuser: true}, nil, live)
	s.OnClose(release)
	defer s.Close()
	return s.AbandonIndexBuild(ctx, table, index)
}

// Addr is the PostgreSQL protocol address.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// HTTPAddr is the health endpoint's address, or nil.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpLn == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// Shutdown stops accepting, lets statements finish within the grace
// period, and closes the store. Later calls return the first's result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() { n.shutdownErr = n.shutdown(ctx) })
	return n.shutdownErr
}

func (n *Node) shutdown(ctx context.Context) error {
	if n.http != nil {
		_ = n.http.Shutdown(ctx)
	}
	n.pg.Shutdown(ctx)
	<-n.served
	n.tenants.Close()
	n.tel.shutdown(ctx)
	return n.store.Close()
}

// tenant looks up the tenant a connection names as its database; an
// unknown one is 3D000.
func tenant(ctx context.Context, txn kvcluster.Txn, database string) (tenancy.Tenant, error) {
	t, ok, err := tenancy.Lookup(ctx, txn, database)
	if err == nil && !ok {
		err = pgerror.New(pgerror.CodeInvalidCatalogName, "database %q does not exist", database)
	}
	return t, err
}

// Verifier implements pgwire.Connector.
func (n *Node) Verifier(ctx context.Context, database, user string) (string, bool, error) {
	var verifier string
	var found bool
	err := kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) error {
		t, err := tenant(ctx, txn, database)
		if err != nil {
			return err
		}
		r, ok, err := catalog.New(keys.MakeCodec(t.ID)).Role(ctx, txn, user)
		if err != nil || !ok || r.SCRAM == "" {
			// A role without a password cannot authenticate.
			return err
		}
		verifier, found = r.SCRAM, true
		return nil
	})
	return verifier, found, err
}

// Connect implements pgwire.Connector: the tenant admits the session
// under its max_connections, and governs its statements.
func (n *Node) Connect(ctx context.Context, database, user string, params map[string]string, terminate func()) (*session.Session, error) {
	var t tenancy.Tenant
	var role *catalog.Role
	err := kvcluster.View(ctx, n.store, func(txn kvcluster.Txn) (err error) {
		if t, err = tenant(ctx, txn, database); err != nil {
			return err
		}
		r, found, err := catalog.New(keys.MakeCodec(t.ID)).Role(ctx, txn, user)
		if err == nil && (!found || r.NoLogin) {
			err = pgerror.New(pgerror.CodeInvalidAuthorization, "role %q is not permitted to log in", user)
		}
		role = r
		return err
	})
	if err != nil {
		return nil, err
	}
	live, release, err := n.tenants.Acquire(ctx, t, terminate)
	if err != nil {
		return nil, err
	}
	s := n.engine.New(t.ID, database, role, params, live)
	s.OnClose(release)
	return s, nil
}

func (n *Node) healthHandler() http.Handler {
	mux := http.NewServeMux()
	// Profiles for operators, on the --http address only.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("GET /metrics", n.tel.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		err := kvcluster.View(r.Context(), n.store, func(txn kvcluster.Txn) error {
			_, err := migrations.Version(r.Context(), txn)
			return err
		})
		if err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}
