package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// selfSigned writes a throwaway certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shaledb-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestTLS(t *testing.T) {
	cert, key := selfSigned(t)
	ctx := context.Background()
	n, err := Start(ctx, Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "secret", TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=require", n.Addr()))
	if err != nil {
		t.Fatalf("TLS connect: %v", err)
	}
	defer c.Close(ctx)
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, not TLS", c.PgConn().Conn())
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	// Without TLS configured, sslmode=require is refused by the server's 'N'.
	plain, _ := startNode(t)
	if _, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:secret@%s/system?sslmode=require", plain.Addr())); err == nil {
		t.Fatal("sslmode=require succeeded against a server without TLS")
	}
}

// TestPgbench: the real pgbench initialises scale 1, then select-only and
// TPC-B run in every query mode, without retries, with no failed
// transaction (every TPC-B transaction updates the one branch row: row
// locks make them wait rather than fail, RFC 0004), and the balances agree
// afterwards.
func TestPgbench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pgbench for ~20s")
	}
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Skip("pgbench not installed")
	}
	n, url := startNode(t)
	host, port, _ := net.SplitHostPort(n.Addr().String())
	pgbench := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("pgbench", append(args, "-h", host, "-p", port, "-U", "admin", "system")...)
		cmd.Env = append(os.Environ(), "PGPASSWORD=secret")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	pgbench("-i", "-s", "1", "-q")
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		for _, script := range [][]string{{"-S"}, {}} {
			args := append([]string{"-n", "-M", mode, "-c", "4", "-j", "2", "-T", "3"}, script...)
			out := pgbench(args...)
			if m := failed.FindStringSubmatch(out); m == nil || m[1] != "0" {
				t.Errorf("pgbench %v: failed transactions %v\n%s", args, m, out)
			}
			if m := processed.FindStringSubmatch(out); m == nil || m[1] == "0" {
				t.Errorf("pgbench %v: nothing processed\n%s", args, out)
			}
		}
	}
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	sums := map[string]int64{}
	for _, q := range []string{"SELECT sum(abalance) FROM pgbench_accounts", "SELECT sum(delta) FROM pgbench_history",
		"SELECT sum(bbalance) FROM pgbench_branches", "SELECT sum(tbalance) FROM pgbench_tellers"} {
		var s *int64
		if err := c.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			t.Fatalf("%s returned NULL", q)
		}
		sums[q] = *s
	}
	first, seen := int64(0), false
	for q, s := range sums {
		if !seen {
			first, seen = s, true
		}
		if s != first {
			t.Fatalf("balances disagree: %v (query %q)", sums, q)
		}
	}
	t.Logf("balances agree: %s", strconv.FormatInt(first, 10))
}
