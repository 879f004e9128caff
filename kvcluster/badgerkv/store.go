// Package badgerkv is the single-node KvCluster: one embedded Badger
// database, the default storage of a ShaleDB node.
//
// Badger runs in managed mode: this package, not Badger, hands out
// timestamps and detects conflicts. Every key is stored in versions, one per
// commit timestamp; a transaction reads the versions at or below its read
// timestamp (its snapshot).
//
// # The commit pipeline
//
// Badger syncs once per write request and has no group commit. Here every
// Commit goes through one committer goroutine, which takes every commit
// waiting in its queue, checks each for write-write conflicts
// (first-committer-wins against all commits newer than the transaction's
// snapshot and against those earlier in the same group), writes the
// survivors as one Badger transaction at one new commit timestamp, syncs
// once, then publishes the timestamp to readers and acknowledges each
// commit. One sync is shared by as many transactions as were waiting, so
// throughput grows with the number of concurrent committers while each
// acknowledgement still follows its fsync.
//
// A group is one Badger transaction, so after a crash it is replayed whole or
// not at all; transactions of one group write disjoint keys, so sharing a
// timestamp makes them neither more nor less visible than they are: readers
// only ever see published timestamps, which come after the sync.
package badgerkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/shaledb/shaledb/kvcluster"
)

// Store is a KvCluster on one Badger database.
type Store struct {
	opts Options
	db   *badger.DB

	// closeMu is held for reading by every operation that touches db and
	// for writing by Close, so db is never used after it is closed.
	closeMu sync.RWMutex
	closed  bool

	// visibleTs is the newest commit timestamp whose group is durable;
	// new transactions read at it.
	visibleTs atomic.Uint64

	// active counts open transactions per read timestamp, so the committer
	// knows which conflict history it may forget and Badger which versions
	// it may discard.
	activeMu sync.Mutex
	active   map[uint64]int

	locks lockTable
	// lockWaiters counts transactions waiting for a row lock: they cannot
	// commit until a lock holder does, so the committer does not wait for
	// them.
	lockWaiters atomic.Int64

	queue     chan *commitReq
	stop      chan struct{}
	committed chan struct{} // closed when the committer has exited
	committer committer
}

var (
	_ kvcluster.KvCluster  = (*Store)(nil)
	_ kvcluster.LockingTxn = (*txn)(nil)
)

// Open opens (creating if needed) the store described by opts.
func Open(opts Options) (*Store, error) {
	opts.ensureDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(!opts.InMemory).
		WithDetectConflicts(false).
		WithMemTableSize(opts.MemTableBytes).
		WithNumMemtables(opts.MemTables).
		WithBlockCacheSize(opts.BlockCacheBytes).
		WithCompression(options.None).
		WithNumVersionsToKeep(1).
		WithValueThreshold(valueThresholdBytes).
		WithNumCompactors(2).
		WithLogger(nil)
	if opts.Logger != nil {
		bopts = bopts.WithLogger(badgerLogger{opts.Logger})
	}
	db, err := badger.OpenManaged(bopts)
	if err != nil {
		return nil, fmt.Errorf("badgerkv: open %q: %w", opts.Dir, err)
	}
	s := &Store{
		opts:      opts,
		db:        db,
		active:    make(map[uint64]int),
		locks:     lockTable{locks: make(map[string]*rowLock)},
		queue:     make(chan *commitReq, opts.CommitQueueMax),
		stop:      make(chan struct{}),
		committed: make(chan struct{}),
	}
	if err := opts.removeStaleSpills(); err != nil {
		db.Close()
		return nil, fmt.Errorf("badgerkv: remove the spills of an earlier run: %w", err)
	}
	last, err := s.recoverIntent(db.MaxVersion())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("badgerkv: recover an interrupted large commit: %w", err)
	}
	s.visibleTs.Store(last)
	s.committer = committer{
		s:          s,
		lastTs:     last,
		seed:       maphash.MakeSeed(),
		recent:     make(map[uint64]uint64),
		batchBytes: int64(float64(db.MaxBatchSize()) * 0.9),
		batchCount: int64(float64(db.MaxBatchCount()) * 0.9),
	}
	go s.committer.run()
	return s, nil
}

// Begin implements kvcluster.KvCluster.
func (s *Store) Begin(ctx context.Context, opts kvcluster.TxnOptions) (kvcluster.Txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, kvcluster.ErrClosed
	}
	s.activeMu.Lock()
	readTs := s.visibleTs.Load()
	s.active[readTs]++
	s.activeMu.Unlock()
	return &txn{
		s:        s,
		readTs:   readTs,
		readOnly: opts.ReadOnly,
		snap:     s.db.NewTransactionAt(readTs, false),
	}, nil
}

// endTxn forgets a transaction's read timestamp.
func (s *Store) endTxn(readTs uint64) {
	s.activeMu.Lock()
	if n := s.active[readTs]; n <= 1 {
		delete(s.active, readTs)
	} else {
		s.active[readTs] = n - 1
	}
	s.activeMu.Unlock()
}

// oldestReadTs is the smallest read timestamp any open or future
// transaction can have.
func (s *Store) oldestReadTs() uint64 {
	s.activeMu.Lock()
	defer s.activeMu.Unlock()
	oldest := s.visibleTs.Load()
	for ts := range s.active {
		if ts < oldest {
			oldest = ts
		}
	}
	return oldest
}

// WaitForOlderSnapshots implements kvcluster.SnapshotWaiter: a commit
// that returned before the call is at or below the visible timestamp now,
// so it waits until no open transaction reads below that. It polls, from
// 1 ms up to 50 ms: schema changes are rare, and a hook in every Rollback
// would cost every transaction.
func (s *Store) WaitForOlderSnapshots(ctx context.Context) error {
	target := s.visibleTs.Load()
	wait := time.Millisecond
	for s.oldestReadTs() < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
	return nil
}

// Close implements kvcluster.KvCluster.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	// No operation holds closeMu now, and none will start: every commit
	// that was handed to the committer has been answered.
	close(s.stop)
	<-s.committed
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("badgerkv: close: %w", err)
	}
	return nil
}

// entryOverheadBytes is what Badger's Txn.checkSize adds to each entry: two
// meta bytes and the version suffix.
const entryOverheadBytes = 2 + 10

// valueThresholdBytes keeps every value inside the LSM tree: values are at
// most kvcluster.ValueSizeMax, below it, so there is no value log to
// garbage-collect (and in-memory mode, which has none, works).
const valueThresholdBytes = 1 << 20

// entryBytes is what Badger charges an entry against its batch limit.
func entryBytes(key, value []byte) int64 {
	return int64(len(key)) + int64(len(value)) + entryOverheadBytes
}

// commitReq is one transaction handed to the committer.
type commitReq struct {
	// state is reqPending until the committer takes it or Commit gives up
	// on it; whichever changes it first decides.
	state  atomic.Int32
	readTs uint64
	writes []*write
	// spill, when set, holds the writes instead (spill.go); lockedTs is
	// then the transaction's lock timestamps by key.
	spill    *spill
	lockedTs map[string]uint64
	bytes    int64
	// dropPrefix, when set, makes the request a DropPrefix rather than a
	// commit: the committer runs it between groups, as the only writer.
	dropPrefix []byte
	done       chan error // receives exactly one result
}

// count is an upper bound on the number of writes of req.
func (req *commitReq) count() int64 {
	if req.spill != nil {
		return req.spill.entries
	}
	return int64(len(req.writes))
}

// each calls fn for every write of req in key order, with its lockTs set.
func (req *commitReq) each(fn func(*write) error) error {
	if req.spill == nil {
		for _, w := range req.writes {
			if err := fn(w); err != nil {
				return err
			}
		}
		return nil
	}
	return req.spill.each(func(w *write) error {
		w.lockTs = req.lockedTs[string(w.key)]
		return fn(w)
	})
}

const (
	reqPending int32 = iota
	reqTaken
	reqCancelled
)

// committer is the state owned by the committer goroutine.
type committer struct {
	s      *Store
	lastTs uint64
	seed   maphash.Seed
	// recent maps the fingerprint of every key written by a commit that an
	// open transaction may not have seen to that commit's timestamp.
	recent map[uint64]uint64
	// history lists what recent holds, oldest first, to forget it in order.
	history []groupWrites
	// large lists the large commits an open transaction may not have
	// seen, oldest first.
	large []largeWrites
	// batchBytes and batchCount bound one Badger transaction.
	batchBytes, batchCount int64
	sinceGC                int
	// failed is the first write error. A failed group may have left part
	// of its entries in the memtable, which the next published timestamp
	// would expose, so every later commit fails too until a restart
	// replays the log (as PostgreSQL does after a failed fsync).
	failed error
	// writeFault, set only by tests, fails a group's write after part of
	// it reached Badger's memtable.
	writeFault func() error
}

type groupWrites struct {
	ts  uint64
	fps []uint64
}

// largeWrites is what the conflict check keeps of a large commit: the
// sorted fingerprints of its keys rather than a map entry per key, so a
// million-row commit costs 8 MiB.
type largeWrites struct {
	ts   uint64
	keys keySet
}

// group is the commits that will share one timestamp and one sync.
type group struct {
	ts    uint64
	reqs  []*commitReq
	fps   []uint64
	bytes int64
	count int64
}

func (c *committer) run() {
	defer close(c.s.committed)
	batch := make([]*commitReq, 0, c.s.opts.GroupCommitsMax)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lastGroup := 0
	for {
		select {
		case <-c.s.stop:
			c.failQueued()
			return
		case req := <-c.s.queue:
			batch = append(batch[:0], req)
		}
	drain:
		for len(batch) < c.s.opts.GroupCommitsMax {
			select {
			case req := <-c.s.queue:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		// The committers of the last group are likely on their way back
		// with their next commit: wait briefly for them rather than spend a
		// whole sync on a partial group (Postgres's commit_delay, adaptive)
		// — but not for those queued on a row lock, which may be held by
		// this very group.
		if expect := lastGroup - int(c.s.lockWaiters.Load()); len(batch) < expect && c.s.opts.GroupLinger > 0 {
			linger.Reset(c.s.opts.GroupLinger)
		wait:
			for len(batch) < expect {
				select {
				case req := <-c.s.queue:
					batch = append(batch, req)
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		lastGroup = len(batch)
		c.commitBatch(batch)
		clear(batch)
	}
}

// failQueued answers commits still queued at Close. Close holds off new
// ones, so the queue is empty in practice; this is belt and braces.
func (c *committer) failQueued() {
	for {
		select {
		case req := <-c.s.queue:
			if req.state.CompareAndSwap(reqPending, reqTaken) {
				req.done <- kvcluster.ErrClosed
			}
		default:
			return
		}
	}
}

func (c *committer) commitBatch(batch []*commitReq) {
	g := &group{ts: c.lastTs + 1}
	for _, req := range batch {
		if !req.state.CompareAndSwap(reqPending, reqTaken) {
			continue // its Commit gave up before we got to it
		}
		if c.failed != nil {
			req.done <- c.failed
			continue
		}
		if req.dropPrefix != nil {
			if len(g.reqs) > 0 {
				c.flush(g)
			}
			c.drop(req)
			g = &group{ts: c.lastTs + 1}
			continue
		}
		if conflict, err := c.conflicts(req); err != nil || conflict {
			if err == nil {
				err = kvcluster.ErrWriteConflict
			}
			req.done <- fmt.Errorf("badgerkv: commit: %w", err)
			continue
		}
		if req.spill != nil || req.bytes > c.batchBytes || int64(len(req.writes)) > c.batchCount {
			// Too large for one batch: committed alone, after the group
			// so far.
			if len(g.reqs) > 0 {
				c.flush(g)
			}
			c.flushLarge(req)
			g = &group{ts: c.lastTs + 1}
			continue
		}
		if len(g.reqs) > 0 && (g.bytes+req.bytes > c.batchBytes || g.count+int64(len(req.writes)) > c.batchCount) {
			c.flush(g)
			g = &group{ts: c.lastTs + 1}
			if c.failed != nil {
				req.done <- c.failed
				continue
			}
		}
		g.reqs = append(g.reqs, req)
		g.bytes += req.bytes
		g.count += int64(len(req.writes))
		for _, w := range req.writes {
			fp := maphash.Bytes(c.seed, w.key)
			c.recent[fp] = g.ts
			g.fps = append(g.fps, fp)
		}
	}
	if len(g.reqs) > 0 {
		c.flush(g)
	}
	c.sinceGC++
	if c.sinceGC >= 64 || len(c.recent) > 1<<20 || len(c.large) > 0 {
		c.sinceGC = 0
		c.forget()
	}
}

// conflicts reports whether a key req wrote was written by a commit newer
// than req's snapshot.
func (c *committer) conflicts(req *commitReq) (bool, error) {
	conflict := false
	err := req.each(func(w *write) error {
		since := max(req.readTs, w.lockTs)
		fp := maphash.Bytes(c.seed, w.key)
		if ts, ok := c.recent[fp]; ok && ts > since {
			conflict = true
			return errStop
		}
		for _, l := range c.large {
			if l.ts > since && l.keys.has(fp) {
				conflict = true
				return errStop
			}
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return conflict, err
}

// errStop ends an iteration early.
var errStop = errors.New("stop")

// drop runs a DropPrefix request. Badger blocks its own writes while it
// drops; the committer is the only writer, so nothing else sees that.
func (c *committer) drop(req *commitReq) {
	if c.failed != nil {
		req.done <- c.failed
		return
	}
	if err := c.s.db.DropPrefix(req.dropPrefix); err != nil {
		req.done <- fmt.Errorf("badgerkv: drop prefix: %w", err)
		return
	}
	req.done <- nil
}

// DropPrefix implements kvcluster.PrefixDropper.
func (s *Store) DropPrefix(ctx context.Context, prefix []byte) error {
	if len(prefix) == 0 {
		return fmt.Errorf("badgerkv: drop prefix: %w: empty prefix", kvcluster.ErrInvalidArgument)
	}
	req := &commitReq{dropPrefix: bytes.Clone(prefix), done: make(chan error, 1)}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return kvcluster.ErrClosed
	}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued it runs to the end: dropping is idempotent, but a caller
	// told "cancelled" must be able to trust that it may retry.
	return <-req.done
}

// flushLarge commits one request too large for a batch (large.go).
func (c *committer) flushLarge(req *commitReq) {
	if c.failed != nil {
		req.done <- c.failed
		return
	}
	ts := c.lastTs + 1
	keys, err := c.writeLarge(ts, req)
	c.lastTs = ts
	if err != nil {
		err = fmt.Errorf("badgerkv: commit: %w: %w", ErrStoreFailed, err)
		c.failed = err
		req.done <- err
		return
	}
	c.s.visibleTs.Store(ts)
	c.large = append(c.large, largeWrites{ts: ts, keys: keys})
	req.done <- nil
}

// flush writes and syncs one group, publishes its timestamp and answers its
// commits.
func (c *committer) flush(g *group) {
	err := c.write(g)
	if err == nil {
		c.lastTs = g.ts
		c.s.visibleTs.Store(g.ts)
		c.history = append(c.history, groupWrites{ts: g.ts, fps: g.fps})
	} else {
		err = fmt.Errorf("badgerkv: commit: %w: %w", ErrStoreFailed, err)
		c.failed = err
	}
	for _, req := range g.reqs {
		req.done <- err
	}
}

func (c *committer) write(g *group) error {
	btxn := c.s.db.NewTransactionAt(math.MaxUint64, true)
	defer btxn.Discard()
	for i, req := range g.reqs {
		if i == 1 && c.writeFault != nil {
			if err := c.writeFault(); err != nil {
				return err
			}
		}
		for _, w := range req.writes {
			if err := w.applyTo(btxn); err != nil {
				return err
			}
		}
	}
	// With SyncWrites, Badger syncs its write-ahead log before this returns.
	return btxn.CommitAt(g.ts, nil)
}

// applyTo adds w to a Badger transaction.
func (w *write) applyTo(btxn *badger.Txn) error {
	if w.deleted {
		return btxn.Delete(w.key)
	}
	return btxn.Set(w.key, w.value)
}

// forget drops conflict history that no open or future transaction can
// conflict with, and lets Badger discard versions no snapshot can read.
func (c *committer) forget() {
	oldest := c.s.oldestReadTs()
	i := 0
	for ; i < len(c.history) && c.history[i].ts <= oldest; i++ {
		for _, fp := range c.history[i].fps {
			if c.recent[fp] == c.history[i].ts {
				delete(c.recent, fp)
			}
		}
	}
	c.history = append(c.history[:0], c.history[i:]...)
	i = 0
	for ; i < len(c.large) && c.large[i].ts <= oldest; i++ {
	}
	c.large = append(c.large[:0], c.large[i:]...)
	if len(c.recent) == 0 {
		c.recent = make(map[uint64]uint64) // give a grown map's memory back
	}
	c.s.db.SetDiscardTs(oldest)
}

// ErrStoreFailed wraps the write error after which a store accepts no more
// commits: reads go on, commits fail until the process reopens the store.
var ErrStoreFailed = errors.New("store failed after a write error; restart the node")

// errClosedOrNil maps Badger's closed-DB error to ours.
func errClosedOrNil(err error) error {
	if errors.Is(err, badger.ErrDBClosed) {
		return kvcluster.ErrClosed
	}
	return err
}
