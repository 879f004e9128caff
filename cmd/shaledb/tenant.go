package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const tenantUsage = `usage:
  shaledb tenant create NAME [--password P]   create tenant NAME with user admin
                                              (a password is generated and printed if not given;
                                               SHALEDB_TENANT_PASSWORD also works)
  shaledb tenant drop NAME                    drop tenant NAME and everything it stores
  shaledb tenant list                         list tenants with their usage and limits
  shaledb tenant set-limit NAME LIMIT VALUE   set max_storage_bytes (e.g. 10MiB), max_connections,
                                              max_qps or qps_burst; VALUE none lifts the limit
Every subcommand takes --url postgres://admin:PW@HOST:PORT/system; without it the
PG* environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...) are used,
with database system.
`

// tenantCmd runs `shaledb tenant ...` against a running node over the
// PostgreSQL protocol, as the system tenant's admin.
func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, tenantUsage)
		return errors.New("no tenant subcommand given")
	}
	sub := args[0]
	fs := flag.NewFlagSet("tenant "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "connection URL of the system tenant (default: PG* environment variables)")
	password := fs.String("password", os.Getenv("SHALEDB_TENANT_PASSWORD"), "admin password of the new tenant (create)")
	// Flags may come before or after the positional arguments.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	want := map[string]int{"create": 1, "drop": 1, "list": 0, "set-limit": 3}
	n, known := want[sub]
	if !known {
		fmt.Fprint(stderr, tenantUsage)
		return fmt.Errorf("unknown tenant subcommand %q", sub)
	}
	if len(pos) != n {
		fmt.Fprint(stderr, tenantUsage)
		return fmt.Errorf("tenant %s takes %d argument(s), got %d", sub, n, len(pos))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	conn, err := connectSystem(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	switch sub {
	case "create":
		pw := *password
		generated := pw == ""
		if generated {
			raw := make([]byte, 18)
			if _, err := rand.Read(raw); err != nil {
				return err
			}
			pw = base64.RawURLEncoding.EncodeToString(raw)
		}
		var id int64
		if err := conn.QueryRow(ctx, "SELECT shaledb.create_tenant($1, $2)", pos[0], pw).Scan(&id); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "created tenant %s (id %d) with user admin\n", pos[0], id)
		if generated {
			fmt.Fprintf(stdout, "admin password (shown once): %s\n", pw)
		}
		cc := conn.Config()
		fmt.Fprintf(stdout, "connect: psql \"postgres://admin:%s@%s:%d/%s\"\n", passwordShown(pw, generated), cc.Host, cc.Port, pos[0])
		return nil
	case "drop":
		if _, err := conn.Exec(ctx, "SELECT shaledb.drop_tenant($1)", pos[0]); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "dropped tenant %s\n", pos[0])
		return nil
	case "set-limit":
		v, err := parseLimit(pos[1], pos[2])
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT shaledb.set_tenant_limit($1, $2, $3::bigint)", pos[0], pos[1], v); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "tenant %s: %s = %s\n", pos[0], pos[1], showLimit(v))
		return nil
	}
	return listTenants(ctx, conn, stdout)
}

func passwordShown(pw string, generated bool) string {
	if generated {
		return pw
	}
	return "PASSWORD"
}

// connectSystem connects to url, or to what the PG* environment
// variables say, defaulting the database to system.
func connectSystem(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %w", err)
	}
	if url == "" && os.Getenv("PGDATABASE") == "" {
		cfg.Database = "system"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%d as %s: %w", cfg.Host, cfg.Port, cfg.User, explain(err))
	}
	return conn, nil
}

// explain turns a server error into "message (SQLSTATE code)".
func explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

// parseLimit reads a limit value: none (no limit), a size for
// max_storage_bytes (10MiB), or a count.
func parseLimit(limit, s string) (int64, error) {
	if s == "none" || s == "-1" {
		return -1, nil
	}
	if limit == "max_storage_bytes" {
		return parseBytes(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a count (or none)", limit, s)
	}
	return n, nil
}

func showLimit(v int64) string {
	if v < 0 {
		return "none"
	}
	return strconv.FormatInt(v, 10)
}

func listTenants(ctx context.Context, conn *pgx.Conn, stdout io.Writer) error {
	rows, err := conn.Query(ctx, `SELECT name, id, created_at, storage_bytes, connections,
		max_storage_bytes, max_connections, max_qps, qps_burst, throttled, rejected
		FROM shaledb.tenants`)
	if err != nil {
		return explain(err)
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tCREATED\tSTORAGE\tCONNS\tMAX STORAGE\tMAX CONNS\tMAX QPS\tBURST\tTHROTTLED\tREJECTED")
	count := 0
	for rows.Next() {
		var name string
		var id, storage, conns, throttled, rejected int64
		var created time.Time
		var maxStorage, maxConns, maxQPS, burst *int64
		if err := rows.Scan(&name, &id, &created, &storage, &conns, &maxStorage, &maxConns, &maxQPS, &burst, &throttled, &rejected); err != nil {
			return err
		}
		opt := func(p *int64, size bool) string {
			if p == nil {
				return "-"
			}
			if size {
				return humanBytes(*p)
			}
			return strconv.FormatInt(*p, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\n", name, id, created.UTC().Format("2006-01-02 15:04:05Z"),
			humanBytes(storage), conns, opt(maxStorage, true), opt(maxConns, false), opt(maxQPS, false), opt(burst, false), throttled, rejected)
		count++
	}
	if err := rows.Err(); err != nil {
		return explain(err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "(%d tenant%s)\n", count, map[bool]string{true: "", false: "s"}[count == 1])
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return strings.TrimSpace(fmt.Sprintf("%dB", n))
}
