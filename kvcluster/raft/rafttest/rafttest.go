// Package rafttest starts throwaway ShaleDB clusters for tests: a real
// etcd (replication/etcdtest) and a number of kvcluster/raft nodes in the
// test's process, each with its own data directory and peer listener on a
// free loopback port. Everything is stopped when the test ends.
package rafttest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/replication/etcdtest"
)

// Options shape a test cluster.
type Options struct {
	Nodes             int // default 3
	ReplicationFactor int // default min(3, Nodes)
	// DeadReplicaAfter: see raft.Options. Default 1 s.
	DeadReplicaAfter time.Duration
	// ShardMaxBytes, SplitKey and LogKeep: see raft.Options.
	ShardMaxBytes int64
	SplitKey      func(start, end, mid []byte) []byte
	LogKeep       uint64
	// ElectionTicks: see raft.Options (default there: 50 ticks of 10 ms).
	ElectionTicks int
	// GCInterval: see raft.Options.
	GCInterval time.Duration
	// Regions are the nodes' regions, by index (default "r1").
	Regions []string
}

// Cluster is a running test cluster.
type Cluster struct {
	t      testing.TB
	Etcd   *clientv3.Client
	Name   string
	dirs   []string
	opts   Options
	mu     sync.Mutex
	nodes  []*raft.Node
	closed bool
}

// Start starts etcd and the nodes and waits until the first shard has a
// leader that serves writes.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = min(3, opts.Nodes)
	}
	if opts.DeadReplicaAfter == 0 {
		opts.DeadReplicaAfter = time.Second
	}
	endpoint := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("rafttest: etcd client: %v", err)
	}
	c := &Cluster{t: t, Etcd: cli, Name: "test", opts: opts}
	t.Cleanup(c.Close)
	for i := 0; i < opts.Nodes; i++ {
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i)))
		c.nodes = append(c.nodes, nil)
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kvcluster.Update(ctx, c.KV(0), 10, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, []byte("\xff/rafttest/ready"), nil)
	}); err != nil {
		t.Fatalf("rafttest: the cluster did not come up: %v", err)
	}
	return c
}

// StartNode starts (or restarts, on its data directory) node i.
func (c *Cluster) StartNode(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	level := slog.LevelWarn
	if os.Getenv("RAFTTEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	c.mu.Lock()
	dir, region := c.dirs[i], c.region(i)
	c.mu.Unlock()
	n, err := raft.Start(ctx, raft.Options{
		DataDir:           dir,
		Etcd:              c.Etcd,
		Cluster:           c.Name,
		Region:            region,
		ReplicationFactor: c.opts.ReplicationFactor,
		LeaseTTL:          3 * time.Second,
		DeadReplicaAfter:  c.opts.DeadReplicaAfter,
		ShardMaxBytes:     c.opts.ShardMaxBytes,
		SplitKey:          c.opts.SplitKey,
		LogKeep:           c.opts.LogKeep,
		ElectionTicks:     c.opts.ElectionTicks,
		GCInterval:        c.opts.GCInterval,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", c.t.Name(), "i", i),
	})
	if err != nil {
		return fmt.Errorf("rafttest: start node %d: %w", i, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return nil
}

func (c *Cluster) region(i int) string {
	if i < len(c.opts.Regions) && c.opts.Regions[i] != "" {
		return c.opts.Regions[i]
	}
	return "r1"
}

// AddNode starts a new node in region (default "r1") and returns its
// index.
func (c *Cluster) AddNode(region string) (int, error) {
	c.mu.Lock()
	i := len(c.nodes)
	c.dirs = append(c.dirs, filepath.Join(c.t.TempDir(), fmt.Sprintf("node%d", i)))
	c.nodes = append(c.nodes, nil)
	for len(c.opts.Regions) < i {
		c.opts.Regions = append(c.opts.Regions, "")
	}
	c.opts.Regions = append(c.opts.Regions, region)
	c.mu.Unlock()
	return i, c.StartNode(i)
}

// Nodes is how many nodes the cluster has (running or stopped).
func (c *Cluster) Nodes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// StopNode stops node i, as a crash would from the cluster's point of view
// (its data stays for a restart).
func (c *Cluster) StopNode(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		_ = n.Close()
	}
}

// Node returns node i (nil while stopped).
func (c *Cluster) Node(i int) *raft.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// KV returns node i's KvCluster.
func (c *Cluster) KV(i int) *raft.KV { return c.Node(i).KV() }

// Close stops every node and the etcd client.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	nodes := c.nodes
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = n.Close()
			}()
		}
	}
	wg.Wait()
	_ = c.Etcd.Close()
}

// Store is a KvCluster served through one node whose Close stops the
// whole cluster: what kvtest's Opener returns.
type Store struct {
	*raft.KV
	c *Cluster
}

// Store returns the cluster as a KvCluster through node i.
func (c *Cluster) Store(i int) *Store { return &Store{KV: c.KV(i), c: c} }

// Close closes the KvCluster and stops the cluster.
func (s *Store) Close() error {
	err := s.KV.Close()
	s.c.Close()
	return err
}
