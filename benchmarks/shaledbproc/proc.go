// Package shaledbproc runs a shaledb binary as a child process for the
// benchmarks: started on a data directory with a known admin password and
// a free loopback port, stopped cleanly with SIGTERM; or a cluster of
// them, with the etcd server (Debian's etcd-server, which `make deps`
// installs) holding its metadata.
package shaledbproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// AdminPassword is the system tenant admin's password in a started node.
const AdminPassword = "bench"

// Proc is a running shaledb node.
type Proc struct {
	Cmd  *exec.Cmd
	Port int
}

// Start runs `binary start --data-dir dir --listen 127.0.0.1:0` and waits
// until it reports its address.
func Start(ctx context.Context, binary, dir string) (*Proc, error) {
	return StartNode(ctx, binary, dir)
}

// StartNode is Start with further flags, e.g. a cluster node's.
func StartNode(ctx context.Context, binary, dir string, flags ...string) (*Proc, error) {
	args := append([]string{"start", "--data-dir", dir, "--listen", "127.0.0.1:0"}, flags...)
	cmd := exec.CommandContext(ctx, binary, args...)
	// The node goes with this process, should it die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "SHALEDB_ADMIN_PASSWORD="+AdminPassword)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`postgres:\s+127\.0\.0\.1:(\d+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			port, _ := strconv.Atoi(m[1])
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return &Proc{Cmd: cmd, Port: port}, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, errors.New("shaledb did not report its address")
}

// Pid is the node's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop shuts the node down cleanly (SIGTERM) and waits for it.
func (p *Proc) Stop() error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	return p.Cmd.Wait()
}

// URL is a connection URL for user of tenant db.
func (p *Proc) URL(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, password, p.Port, db)
}

// Cluster is a running cluster: an etcd and its nodes.
type Cluster struct {
	Nodes []*Proc
	etcd  *exec.Cmd
	done  chan struct{}
}

// StartCluster starts an etcd and n nodes of a cluster (one replica of
// every shard per node, up to 3) in dir, on free loopback ports, and
// waits until every node serves.
func StartCluster(ctx context.Context, binary, dir string, n int) (*Cluster, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not installed (make deps installs etcd-server): %w", err)
	}
	ports, err := freePorts(2 + n)
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	etcd := exec.CommandContext(ctx, bin,
		"--name", "bench", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer, "--initial-cluster-state", "new",
		"--heartbeat-interval", "10", "--election-timeout", "100")
	etcd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := etcd.Start(); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	c := &Cluster{etcd: etcd, done: make(chan struct{})}
	go func() { _ = etcd.Wait(); close(c.done) }()
	// The first shard is created once enough nodes have joined: start
	// them together. A node retries etcd until it answers.
	c.Nodes = make([]*Proc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Nodes[i], errs[i] = startWhenEtcdAnswers(ctx, binary, filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
				"--etcd", client, "--peer-listen", fmt.Sprintf("127.0.0.1:%d", ports[2+i]),
				"--region", fmt.Sprintf("r%d", i+1), "--replicas", strconv.Itoa(min(3, n)))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// startWhenEtcdAnswers starts a node, again while etcd is still coming up.
func startWhenEtcdAnswers(ctx context.Context, binary, dir string, flags ...string) (*Proc, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := StartNode(ctx, binary, dir, flags...)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return p, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the nodes (SIGTERM) and then etcd, by their PIDs.
func (c *Cluster) Stop() {
	for _, p := range c.Nodes {
		if p != nil {
			_ = p.Stop()
		}
	}
	_ = c.etcd.Process.Kill()
	<-c.done
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
