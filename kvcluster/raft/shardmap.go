package raft

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// shardDesc is one shard in the map: its key span [Start, End) (a nil End
// is the end of the key space) and the nodes holding its replicas.
type shardDesc struct {
	ID       uint64   `json:"id"`
	Start    []byte   `json:"start"`
	End      []byte   `json:"end"`
	Replicas []uint64 `json:"replicas"`
	// Initial are the members the group was bootstrapped with; a replica
	// added later starts empty and learns the log from the leader.
	Initial []uint64 `json:"initial,omitempty"`
	// Parent is the shard this one was split off (split.go).
	Parent uint64 `json:"parent,omitempty"`
}

func (d shardDesc) contains(key []byte) bool {
	return bytes.Compare(key, d.Start) >= 0 && (d.End == nil || bytes.Compare(key, d.End) < 0)
}

// shardMap is a node's cached copy of the cluster's shard map, kept fresh
// by an etcd watch. Keys, under /shaledb/<cluster>/:
//
//	shards/<id>   a shardDesc (JSON), id zero-padded to 20 digits
//	bootstrap     the id of the node that created the first shard
type shardMap struct {
	n      *Node
	prefix string

	mu      sync.Mutex
	shards  []shardDesc // by Start
	changed chan struct{}
	leaders map[uint64]uint64 // shard → last known leader

	cancel context.CancelFunc
	done   chan struct{}
}

// startShardMap loads the shard map into n.shards, starting the node's
// replicas, and keeps it fresh. n.shards is set before any replica starts
// (they look their split-off children up in it), so Close can stop the
// map even when loading it failed.
func startShardMap(ctx context.Context, n *Node) error {
	m := &shardMap{n: n, prefix: "/shaledb/" + n.opts.Cluster + "/", changed: make(chan struct{}),
		leaders: make(map[uint64]uint64), done: make(chan struct{})}
	resp, err := n.opts.Etcd.Get(ctx, m.prefix+"shards/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("raft: read the shard map: %w", err)
	}
	wctx, cancel := context.WithCancel(n.stopCtx)
	m.cancel = cancel
	n.shards = m
	for _, kv := range resp.Kvs {
		if err := m.put(kv.Value); err != nil {
			close(m.done) // no watch to wait for
			return err
		}
	}
	go m.watch(wctx, resp.Header.Revision+1)
	return nil
}

func (m *shardMap) close() {
	m.cancel()
	<-m.done
}

// put installs one shard's descriptor and starts this node's replica if
// it is listed.
func (m *shardMap) put(value []byte) error {
	var d shardDesc
	if err := json.Unmarshal(value, &d); err != nil {
		return fmt.Errorf("raft: corrupt shard descriptor %q: %w", value, err)
	}
	m.mu.Lock()
	i := slices.IndexFunc(m.shards, func(s shardDesc) bool { return s.ID == d.ID })
	if i >= 0 {
		m.shards[i] = d
	} else {
		m.shards = append(m.shards, d)
	}
	slices.SortFunc(m.shards, func(a, b shardDesc) int { return bytes.Compare(a.Start, b.Start) })
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	if slices.Contains(d.Replicas, m.n.id) {
		if m.n.splitPending(d) {
			return nil // applying the split starts the replica, on its data
		}
		return m.n.ensureReplica(d)
	}
	m.n.dropReplica(d.ID) // moved off this node (repair.go)
	return nil
}

// publish writes shards' descriptors to etcd, in one transaction.
func (m *shardMap) publish(ctx context.Context, descs ...shardDesc) error {
	ops := make([]clientv3.Op, len(descs))
	for i, d := range descs {
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		ops[i] = clientv3.OpPut(m.prefix+"shards/"+shardKey(d.ID), string(b))
	}
	if _, err := m.n.opts.Etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("raft: publish shards: %w", err)
	}
	return nil
}

func (m *shardMap) watch(ctx context.Context, rev int64) {
	defer close(m.done)
	bootstrapped := false
	for ctx.Err() == nil {
		if !bootstrapped {
			m.mu.Lock()
			bootstrapped = len(m.shards) > 0
			m.mu.Unlock()
			if !bootstrapped {
				go m.bootstrap(ctx)
				bootstrapped = true
			}
		}
		wc := m.n.opts.Etcd.Watch(ctx, m.prefix+"shards/", clientv3.WithPrefix(), clientv3.WithRev(rev))
		for resp := range wc {
			if err := resp.Err(); err != nil {
				m.n.log.Warn("shard map watch", "err", err)
				break
			}
			for _, ev := range resp.Events {
				rev = ev.Kv.ModRevision + 1
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if err := m.put(ev.Kv.Value); err != nil {
					m.n.log.Error("shard map", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bootstrap creates the first shard, spanning the whole key space, once
// enough nodes are alive to hold its replicas. Of all nodes, the first
// to claim the bootstrap key does it.
func (m *shardMap) bootstrap(ctx context.Context) {
	etcd := m.n.opts.Etcd
	key := m.prefix + "bootstrap"
	resp, err := etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.FormatUint(m.n.id, 10))).Commit()
	if err != nil || !resp.Succeeded {
		return
	}
	rf := m.n.opts.ReplicationFactor
	for ctx.Err() == nil {
		nodes, err := m.n.reg.Nodes(ctx)
		if err == nil {
			var alive []uint64
			for _, nd := range nodes {
				if nd.Alive {
					alive = append(alive, nd.ID)
				}
			}
			if len(alive) >= rf {
				d := shardDesc{ID: 1, Replicas: alive[:rf], Initial: alive[:rf]}
				if err = m.publish(ctx, d); err == nil {
					m.n.log.Info("bootstrapped the cluster", "replicas", d.Replicas)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func shardKey(id uint64) string { return fmt.Sprintf("%020d", id) }

// lookup returns the shard holding key, waiting for the map to cover it.
func (m *shardMap) lookup(ctx context.Context, key []byte) (shardDesc, error) {
	return m.find(ctx, func(d shardDesc) bool { return d.contains(key) }, func() string { return fmt.Sprintf("key %q", key) })
}

// lookupBefore returns the shard holding the keys just below key (the
// last shard if key is nil), for reverse scans, waiting for the map.
func (m *shardMap) lookupBefore(ctx context.Context, key []byte) (shardDesc, error) {
	return m.find(ctx, func(d shardDesc) bool {
		if key == nil {
			return d.End == nil
		}
		return bytes.Compare(d.Start, key) < 0 && (d.End == nil || bytes.Compare(key, d.End) <= 0)
	}, func() string { return fmt.Sprintf("keys below %q", key) })
}

// find returns the first shard matching, waiting for the map to change
// until one does or ctx ends.
func (m *shardMap) find(ctx context.Context, match func(shardDesc) bool, what func() string) (shardDesc, error) {
	for {
		m.mu.Lock()
		i := slices.IndexFunc(m.shards, match)
		var d shardDesc
		if i >= 0 {
			d = m.shards[i]
		}
		changed := m.changed
		m.mu.Unlock()
		if i >= 0 {
			return d, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return shardDesc{}, fmt.Errorf("raft: no shard holds %s yet: %w", what(), ctx.Err())
		}
	}
}

// stale is called when a replica said the cached map is out of date: it
// waits for the map to change (the watch brings the news), or a moment.
func (m *shardMap) stale(ctx context.Context) error {
	m.mu.Lock()
	changed := m.changed
	m.mu.Unlock()
	select {
	case <-changed:
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// byID returns the shard with id.
func (m *shardMap) byID(id uint64) (shardDesc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.shards {
		if d.ID == id {
			return d, nil
		}
	}
	return shardDesc{}, fmt.Errorf("raft: shard %d is not in the map", id)
}

// leader returns the last known leader of a shard (0 if none).
func (m *shardMap) leader(shard uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaders[shard]
}

func (m *shardMap) setLeader(shard, node uint64) {
	m.mu.Lock()
	m.leaders[shard] = node
	m.mu.Unlock()
}

// raftLogger sends etcd-raft's log to the node's logger: errors as
// warnings, everything else at debug level.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)               { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)            { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
