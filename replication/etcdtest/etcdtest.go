// Package etcdtest starts a throwaway etcd server for tests: the real
// etcd binary (Debian's etcd-server, which `make deps` installs) on free
// loopback ports, with a data directory the test removes, stopped by its
// PID when the test ends.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Start starts etcd and returns its client endpoint. The test is skipped
// when no etcd binary is installed and fails when etcd does not come up.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (make deps installs etcd-server)")
	}
	var lastErr error
	// A port found free may be taken before etcd binds it: try again.
	for attempt := 0; attempt < 3; attempt++ {
		endpoint, err := start(t, bin)
		if err == nil {
			return endpoint
		}
		lastErr = err
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, bin string) (string, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	dir := t.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command(bin,
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--initial-cluster-state", "new",
		"--heartbeat-interval", "10", "--election-timeout", "100")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test process dies without its cleanups (a panic, a timeout),
	// etcd goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", fmt.Errorf("start etcd: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
	}
	if err := waitReady(client, done, &waitErr); err != nil {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
		return "", fmt.Errorf("%w\n%s", err, tail(log, 2000))
	}
	t.Cleanup(stop)
	return client, nil
}

// waitReady waits up to 10 s for etcd to answer a read.
func waitReady(endpoint string, done <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("etcd exited: %v", *waitErr)
		default:
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.Get(ctx, "etcdtest-ready")
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("etcd at %s not ready in 10 s", endpoint)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
