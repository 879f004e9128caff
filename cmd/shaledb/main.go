// Command shaledb runs a ShaleDB node and administers it.
//
//	shaledb start --data-dir DIR [--http ADDR]
//	shaledb version
//
// start opens (creating if needed) the node's embedded Badger store in DIR,
// brings its format up to date, and serves until SIGINT or SIGTERM, then
// closes the store cleanly. With --http it serves /healthz on ADDR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/migrations"
	"github.com/shaledb/shaledb/tenancy"
)

const usage = `usage:
  shaledb start --data-dir DIR [--http ADDR]   run a single node on DIR
  shaledb version                              print the version
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
	// DataDir holds the node's store; created if missing. Required.
	DataDir string
	// HTTPAddr, if set, serves /healthz. Port 0 picks a free port.
	HTTPAddr string
}

func (c startConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
		}
	}
	return nil
}

func parseStart(args []string, stderr io.Writer) (startConfig, error) {
	var cfg startConfig
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of the node's store (created if missing)")
	fs.StringVar(&cfg.HTTPAddr, "http", "", "serve /healthz on this address, e.g. 127.0.0.1:8080")
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
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	store, err := badgerkv.Open(badgerkv.Options{Dir: cfg.DataDir, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	res, err := migrations.Run(ctx, store, migrations.Env{Now: time.Now})
	if err != nil {
		return err
	}
	for _, m := range res.Applied {
		log.Info("applied migration", "migration", m)
	}
	var tenants []string
	err = kvcluster.View(ctx, store, func(txn kvcluster.Txn) error {
		return tenancy.List(ctx, txn, func(t tenancy.Tenant) bool {
			tenants = append(tenants, fmt.Sprintf("%s (id %d)", t.Name, t.ID))
			return len(tenants) < 10
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ShaleDB node ready\n  data directory: %s\n  store format:   %d\n  tenants:        %v\n", cfg.DataDir, res.To, tenants)

	var srv *http.Server
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		srv = &http.Server{Handler: healthHandler(store), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
		fmt.Fprintf(stdout, "  health:         http://%s/healthz\n", ln.Addr())
	}
	fmt.Fprintln(stdout, "Serving until SIGINT or SIGTERM.")
	<-ctx.Done()
	log.Info("shutting down")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

// healthHandler answers /healthz with 200 when the store serves a read.
func healthHandler(store kvcluster.KvCluster) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		err := kvcluster.View(r.Context(), store, func(txn kvcluster.Txn) error {
			_, err := migrations.Version(r.Context(), txn)
			return err
		})
		if err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
