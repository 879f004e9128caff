// Package registry keeps a cluster's node registry in etcd. Each node has
// a record (address, peer address, region, capacity) that stays, and a
// liveness key attached to a lease the node keeps alive: when the node
// stops renewing (it crashed, or is cut off), etcd expires the lease and
// the node is listed as dead; a node that leaves cleanly revokes it.
//
// Keys, under /shaledb/<cluster>/:
//
//	nodes/next-id    the last node id handed out
//	nodes/<id>       the node's record (JSON)
//	alive/<id>       present while the node's lease lives
package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Node is one node's record.
type Node struct {
	ID            uint64 `json:"id"`
	Addr          string `json:"addr"`      // PostgreSQL clients connect here
	PeerAddr      string `json:"peer_addr"` // other nodes connect here
	Region        string `json:"region"`
	CapacityBytes int64  `json:"capacity_bytes"`
	// Alive is set by Nodes: the node's lease is live.
	Alive bool `json:"-"`
}

// Registry reads and writes one cluster's registry.
type Registry struct {
	c      *clientv3.Client
	prefix string
}

// New returns the registry of cluster, through c.
func New(c *clientv3.Client, cluster string) *Registry {
	return &Registry{c: c, prefix: "/shaledb/" + cluster + "/"}
}

// AllocateID hands out a node id no other call of any node got: 1, 2, …
func (r *Registry) AllocateID(ctx context.Context) (uint64, error) {
	key := r.prefix + "nodes/next-id"
	for {
		resp, err := r.c.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("registry: read %s: %w", key, err)
		}
		var cur uint64
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) == 1 {
			if cur, err = strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("registry: %s holds %q: %w", key, resp.Kvs[0].Value, err)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		next := cur + 1
		txn, err := r.c.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, strconv.FormatUint(next, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("registry: allocate a node id: %w", err)
		}
		if txn.Succeeded {
			return next, nil
		}
		// Another node took it first: read again.
	}
}

// Membership is a node's registration; Close ends it.
type Membership struct {
	r      *Registry
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes n's record and its liveness key under a lease of ttl,
// kept alive until Close or ctx ends. ttl is how long the cluster takes
// to notice the node is gone.
func (r *Registry) Register(ctx context.Context, n Node, ttl time.Duration) (*Membership, error) {
	rec, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	secs := int64(ttl / time.Second)
	if secs < 1 {
		secs = 1
	}
	lease, err := r.c.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("registry: grant a lease: %w", err)
	}
	id := strconv.FormatUint(n.ID, 10)
	_, err = r.c.Txn(ctx).Then(
		clientv3.OpPut(r.prefix+"nodes/"+id, string(rec)),
		clientv3.OpPut(r.prefix+"alive/"+id, n.Addr, clientv3.WithLease(lease.ID)),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("registry: register node %d: %w", n.ID, err)
	}
	kctx, cancel := context.WithCancel(ctx)
	ka, err := r.c.KeepAlive(kctx, lease.ID)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registry: keep node %d's lease alive: %w", n.ID, err)
	}
	m := &Membership{r: r, lease: lease.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for range ka { // drain the renewals until the lease or ctx ends
		}
	}()
	return m, nil
}

// Close stops renewing the lease. With leave set it also revokes it, so
// the node is dead at once (a clean shutdown); without, it dies when the
// lease expires, as after a crash.
func (m *Membership) Close(ctx context.Context, leave bool) error {
	m.cancel()
	<-m.done
	if !leave {
		return nil
	}
	if _, err := m.r.c.Revoke(ctx, m.lease); err != nil {
		return fmt.Errorf("registry: revoke lease: %w", err)
	}
	return nil
}

// Nodes lists every registered node, in id order, with Alive set for
// those whose lease lives.
func (r *Registry) Nodes(ctx context.Context) ([]Node, error) {
	// One transaction: a consistent view of records and liveness.
	resp, err := r.c.Txn(ctx).Then(
		clientv3.OpGet(r.prefix+"nodes/", clientv3.WithPrefix()),
		clientv3.OpGet(r.prefix+"alive/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("registry: list nodes: %w", err)
	}
	alive := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		alive[strings.TrimPrefix(string(kv.Key), r.prefix+"alive/")] = true
	}
	var out []Node
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), r.prefix+"nodes/")
		if id == "next-id" {
			continue
		}
		var n Node
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, fmt.Errorf("registry: node record %s: %w", kv.Key, err)
		}
		n.Alive = alive[id]
		out = append(out, n)
	}
	// Keys sort as strings ("10" before "2"): order by id.
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
