// Package tso is the cluster's timestamp oracle: one node at a time, elected
// in etcd, hands out strictly increasing 64-bit timestamps. Transactions
// take their snapshot and commit timestamps from it, so a timestamp taken
// after a commit returned is larger than the commit's, on every node.
//
// A timestamp is a physical part (milliseconds since the Unix epoch) shifted
// left by LogicalBits, plus a logical counter. The oracle persists a
// high-water mark in etcd — a physical time it has not reached — and never
// hands out a timestamp at or past it without first raising it. A new
// oracle starts above the mark its predecessor left, so timestamps never go
// backwards across restarts or a change of oracle, whatever the clocks say.
//
// Keys, under /shaledb/<cluster>/tso/:
//
//	election/…   etcd's election keys (concurrency.Election)
//	high-water   the persisted mark, physical milliseconds in decimal
package tso

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// LogicalBits is the width of a timestamp's logical part.
const LogicalBits = 18

// window is how far ahead of the clock the persisted high-water mark is
// kept: one etcd write per window, not per timestamp.
const window = 3 * time.Second

// ErrNotLeader means this node's oracle is not the elected one; ask the
// node Leader names.
var ErrNotLeader = errors.New("tso: not the elected timestamp oracle")

// Oracle is one node's candidacy for the cluster's timestamp oracle, and
// the oracle itself while it is elected.
type Oracle struct {
	c      *clientv3.Client
	prefix string
	nodeID uint64
	now    func() time.Time

	mu        sync.Mutex
	leading   bool
	guard     clientv3.Cmp // holds while this node is the leader
	highWater int64        // persisted physical mark (ms)
	last      uint64       // the last timestamp handed out
	epoch     uint64       // the schema epoch (AllocateEpoch); 0: none yet

	cancel context.CancelFunc
	done   chan struct{}
}

// Start enters nodeID into the election of cluster's oracle and returns at
// once; the oracle serves timestamps when it wins, until Close or until it
// loses its etcd session.
func Start(c *clientv3.Client, cluster string, nodeID uint64) *Oracle {
	return start(c, cluster, nodeID, time.Now)
}

func start(c *clientv3.Client, cluster string, nodeID uint64, now func() time.Time) *Oracle {
	ctx, cancel := context.WithCancel(context.Background())
	o := &Oracle{
		c:      c,
		prefix: "/shaledb/" + cluster + "/tso/",
		nodeID: nodeID,
		now:    now,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go o.run(ctx)
	return o
}

// Close withdraws from the election (resigning if elected) and stops.
func (o *Oracle) Close() {
	o.cancel()
	<-o.done
}

// run campaigns, serves while elected, and campaigns again after losing
// the session, until ctx ends.
func (o *Oracle) run(ctx context.Context) {
	defer close(o.done)
	for ctx.Err() == nil {
		if err := o.campaign(ctx); err != nil && ctx.Err() == nil {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (o *Oracle) campaign(ctx context.Context) error {
	sess, err := concurrency.NewSession(o.c, concurrency.WithTTL(2), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("tso: session: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = o.c.Revoke(rctx, sess.Lease())
		sess.Orphan()
	}()
	e := concurrency.NewElection(sess, o.prefix+"election")
	if err := e.Campaign(ctx, strconv.FormatUint(o.nodeID, 10)); err != nil {
		return fmt.Errorf("tso: campaign: %w", err)
	}
	guard := clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())
	if err := o.lead(ctx, guard); err != nil {
		return err
	}
	defer func() {
		o.mu.Lock()
		o.leading = false
		o.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
	case <-sess.Done():
	}
	return nil
}

// lead takes over as the oracle: it raises the persisted mark above both
// the clock and the previous oracle's mark.
func (o *Oracle) lead(ctx context.Context, guard clientv3.Cmp) error {
	key := o.prefix + "high-water"
	resp, err := o.c.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("tso: read high-water mark: %w", err)
	}
	var prev int64
	if len(resp.Kvs) == 1 {
		if prev, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err != nil {
			return fmt.Errorf("tso: corrupt high-water mark %q: %w", resp.Kvs[0].Value, err)
		}
	}
	start := max(o.now().UnixMilli(), prev)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.guard = guard
	o.last = uint64(start) << LogicalBits
	o.epoch = 0
	if err := o.raiseLocked(ctx, start); err != nil {
		return err
	}
	o.leading = true
	return nil
}

// raiseLocked persists a high-water mark a window past physical, if this
// node still leads.
func (o *Oracle) raiseLocked(ctx context.Context, physical int64) error {
	mark := physical + window.Milliseconds()
	resp, err := o.c.Txn(ctx).If(o.guard).
		Then(clientv3.OpPut(o.prefix+"high-water", strconv.FormatInt(mark, 10))).Commit()
	if err != nil {
		return fmt.Errorf("tso: persist high-water mark: %w", err)
	}
	if !resp.Succeeded {
		o.leading = false
		return fmt.Errorf("%w: lost the election", ErrNotLeader)
	}
	o.highWater = mark
	return nil
}

// Allocate hands out n consecutive timestamps and returns the first. It
// fails with ErrNotLeader unless this node is the elected oracle.
func (o *Oracle) Allocate(ctx context.Context, n int) (uint64, error) {
	first, _, err := o.AllocateEpoch(ctx, n, false)
	return first, err
}

// AllocateEpoch is Allocate that also returns the schema epoch the
// timestamps were handed out in. A schema timestamp (schema set; n must
// be 1) is the commit timestamp of a transaction that writes the schema,
// and starts a new epoch. So two timestamps handed out in the same epoch
// have no schema timestamp between them: what a transaction that read
// the schema at one of them saw, by a read that stops later commits below
// it (a raft leader's read floor), holds at the other.
//
// Epochs are timestamps: an oracle's first is the first timestamp it
// hands out, each schema timestamp is the next. Timestamps are never
// handed out twice, across oracles too, so neither are epochs.
func (o *Oracle) AllocateEpoch(ctx context.Context, n int, schema bool) (first, epoch uint64, err error) {
	if n < 1 || n > 1<<LogicalBits || schema && n != 1 {
		return 0, 0, fmt.Errorf("tso: cannot allocate %d timestamps", n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.leading {
		return 0, 0, ErrNotLeader
	}
	first = max(o.last+1, uint64(o.now().UnixMilli())<<LogicalBits)
	end := first + uint64(n) - 1
	if phys := int64(end >> LogicalBits); phys >= o.highWater {
		if err := o.raiseLocked(ctx, phys); err != nil {
			return 0, 0, err
		}
	}
	o.last = end
	if o.epoch == 0 || schema {
		o.epoch = first
	}
	return first, o.epoch, nil
}

// Leader returns the node id of the elected oracle.
func Leader(ctx context.Context, c *clientv3.Client, cluster string) (uint64, error) {
	resp, err := c.Get(ctx, "/shaledb/"+cluster+"/tso/election/", clientv3.WithFirstCreate()...)
	if err != nil {
		return 0, fmt.Errorf("tso: find leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%w: no oracle elected yet", ErrNotLeader)
	}
	id, err := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tso: corrupt election value %q: %w", resp.Kvs[0].Value, err)
	}
	return id, nil
}
