package raft_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/replication/etcdtest"
)

// Nodes as processes, for SIGKILL: the test binary re-executes itself as
// TestNodeChild, which runs one cluster node until it is killed. The
// parent runs a fourth node without replicas as the clients' gateway.

const (
	childDirEnv  = "SHALEDB_NODE_CHILD_DIR"
	childEtcdEnv = "SHALEDB_NODE_CHILD_ETCD"
)

func TestNodeChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("run by the SIGKILL tests")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{os.Getenv(childEtcdEnv)}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("etcd:", err)
		os.Exit(2)
	}
	n, err := raft.Start(context.Background(), raft.Options{DataDir: dir, Etcd: cli, Cluster: "kill", LeaseTTL: time.Second})
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}
	fmt.Printf("node %d\n", n.ID())
	select {} // until killed
}

type procCluster struct {
	tb      testing.TB
	etcd    string
	cli     *clientv3.Client
	gateway *raft.Node
	dirs    []string
	mu      sync.Mutex
	procs   map[uint64]*exec.Cmd // by node id
	dirOf   map[uint64]string
}

func startProcCluster(tb testing.TB) *procCluster {
	tb.Helper()
	c := &procCluster{tb: tb, etcd: etcdtest.Start(tb), procs: map[uint64]*exec.Cmd{}, dirOf: map[uint64]string{}}
	var err error
	if c.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{c.etcd}, DialTimeout: 5 * time.Second}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.mu.Lock()
		for _, p := range c.procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
		c.mu.Unlock()
		if c.gateway != nil {
			_ = c.gateway.Close()
		}
		_ = c.cli.Close()
	})
	// The three replicas register first, so they hold the first shard.
	for i := 0; i < 3; i++ {
		c.start(filepath.Join(tb.TempDir(), fmt.Sprintf("node%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.gateway, err = raft.Start(ctx, raft.Options{DataDir: tb.TempDir(), Etcd: c.cli, Cluster: "kill", LeaseTTL: time.Second}); err != nil {
		tb.Fatal(err)
	}
	if err := kvcluster.Update(ctx, c.gateway.KV(), 10, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, []byte("kill/ready"), nil)
	}); err != nil {
		tb.Fatalf("the cluster did not come up: %v", err)
	}
	return c
}

// start runs a node process on dir and returns its id.
func (c *procCluster) start(dir string) uint64 {
	c.tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeChild$", "-test.v")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childEtcdEnv+"="+c.etcd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test
	if err := cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "node "); ok {
			n, _ := strconv.ParseUint(id, 10, 64)
			go func() {
				for sc.Scan() {
				}
			}()
			c.mu.Lock()
			c.procs[n], c.dirOf[n] = cmd, dir
			c.mu.Unlock()
			return n
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	c.tb.Fatal("a node process did not start")
	return 0
}

// kill SIGKILLs node id's process.
func (c *procCluster) kill(id uint64) {
	c.mu.Lock()
	p := c.procs[id]
	delete(c.procs, id)
	c.mu.Unlock()
	_ = p.Process.Signal(syscall.SIGKILL)
	_ = p.Wait()
}

// leader asks the cluster which node leads shard 1.
func (c *procCluster) leader(ctx context.Context) uint64 {
	for ctx.Err() == nil {
		shards, err := c.gateway.KV().Shards(ctx)
		if err == nil && len(shards) > 0 && shards[0].Leader != 0 {
			return shards[0].Leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// failover runs writers through the gateway, SIGKILLs the shard's leader,
// and returns the time from the kill to the first acknowledged write that
// began after it, with every acknowledged write.
func (c *procCluster) failover(ctx context.Context) (uint64, time.Duration, map[string]string) {
	load := startWriteLoad(ctx, c.gateway.KV(), "kill", 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	leader := c.leader(ctx)
	load.fault()
	c.kill(leader)
	load.waitResumed(30*time.Second, 0)
	time.Sleep(300 * time.Millisecond)
	acked, took := load.finish()
	if took == 0 {
		c.tb.Fatalf("no write succeeded within 30 s of killing the leader")
	}
	return leader, took, acked
}

func (c *procCluster) checkAcked(ctx context.Context, acked map[string]string) {
	c.tb.Helper()
	if err := checkAcked(ctx, c.gateway.KV(), acked); err != nil {
		c.tb.Fatal(err)
	}
}

// TestKillLeader SIGKILLs the process of the shard's leader under a steady
// write load: writes resume, no acknowledged write is lost, the time to
// the first write after the kill is logged. The killed node restarts on
// its data, catches up (the shard then commits with it and one other
// node, the third killed too) and serves.
func TestKillLeader(t *testing.T) {
	c := startProcCluster(t)
	ctx := context.Background()
	killed, took, acked := c.failover(ctx)
	t.Logf("killed node %d (the leader) under 4 writers: first write %v later; %d writes acknowledged", killed, took.Round(time.Millisecond), len(acked))
	c.checkAcked(ctx, acked)

	restarted := c.start(c.dirOf[killed])
	if restarted != killed {
		t.Fatalf("the node restarted as %d, not %d", restarted, killed)
	}
	// Kill one of the others: the shard now needs the restarted node.
	c.mu.Lock()
	var other uint64
	for id := range c.procs {
		if id != restarted {
			other = id
			break
		}
	}
	c.mu.Unlock()
	c.kill(other)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kvcluster.Update(wctx, c.gateway.KV(), 20, func(txn kvcluster.Txn) error {
		return txn.Put(wctx, []byte("kill/after-restart"), []byte("x"))
	}); err != nil {
		t.Fatalf("no write with the restarted node and one other: %v", err)
	}
	c.checkAcked(ctx, acked)
}

// BenchmarkFailover measures the time from SIGKILL of a shard's leader
// (4 writers running) to the first acknowledged write after it.
func BenchmarkFailover(b *testing.B) {
	for range b.N {
		c := startProcCluster(b)
		_, took, _ := c.failover(context.Background())
		b.ReportMetric(float64(took.Milliseconds()), "failover-ms")
		b.Logf("leader SIGKILL to first acknowledged write: %v", took.Round(time.Millisecond))
		if out := os.Getenv("SHALEDB_BENCH_OUT"); out != "" {
			f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				fmt.Fprintf(f, "failover: leader SIGKILL to first acknowledged write %v (4 writers, 3 node processes)\n", took.Round(time.Millisecond))
				f.Close()
			}
		}
	}
}
