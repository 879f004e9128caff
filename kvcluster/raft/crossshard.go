package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// The leader's side of cross-shard transactions (intents.go, RFC 0014).

// PrewriteArgs asks a shard's leader to prewrite a cross-shard
// transaction's writes there.
type PrewriteArgs struct {
	Shard       uint64
	StartTs     uint64
	Primary     []byte
	Node        uint64
	Writes      []mutation
	Secondaries [][]byte
}

// PrewriteReply answers PrewriteArgs: StatusOK, or StatusConflict.
type PrewriteReply struct {
	Status Status
	Leader uint64
	Err    string
}

// ResolveArgs asks a shard's leader to commit (CommitTs > 0) or roll back
// a transaction's intents of Keys; with Decide, to decide the
// transaction (Keys then hold the primary).
type ResolveArgs struct {
	Shard    uint64
	StartTs  uint64
	CommitTs uint64
	Primary  []byte
	Decide   bool
	Keys     [][]byte
}

// ResolveReply answers ResolveArgs: StatusOK with the transaction's commit
// timestamp (0: rolled back), StatusConflict if a decision to commit found
// it rolled back, StatusRetryTs if CommitTs is at or below a read the
// primary served.
type ResolveReply struct {
	Status   Status
	Leader   uint64
	Err      string
	CommitTs uint64
}

// CheckTxnArgs asks the leader of a transaction's primary key for its
// state, for a reader at ReaderTs (0: none). The read raises the primary's
// floor to ReaderTs. With Rollback, a transaction whose coordinator is
// gone (Node is its node, if the primary's intent is not there to say) is
// rolled back; with Force, any undecided one is.
type CheckTxnArgs struct {
	Shard    uint64
	Primary  []byte
	StartTs  uint64
	ReaderTs uint64
	Node     uint64
	Rollback bool
	Force    bool
}

// Transaction states CheckTxn reports.
const (
	TxnPending    = 0 // undecided; if decided later, above ReaderTs
	TxnCommitted  = 1
	TxnRolledBack = 2
)

// CheckTxnReply answers CheckTxnArgs.
type CheckTxnReply struct {
	Status   Status
	Leader   uint64
	Err      string
	State    int
	CommitTs uint64
}

// TxnOpenArgs asks a node whether its transaction of snapshot StartTs is
// still open.
type TxnOpenArgs struct{ StartTs uint64 }

// TxnOpenReply answers TxnOpenArgs.
type TxnOpenReply struct{ Open bool }

func (r *PrewriteReply) result() (Status, uint64) { return r.Status, r.Leader }
func (r *ResolveReply) result() (Status, uint64)  { return r.Status, r.Leader }
func (r *CheckTxnReply) result() (Status, uint64) { return r.Status, r.Leader }

func (s *peerService) Prewrite(a *PrewriteArgs, r *PrewriteReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.servePrewrite(ctx, a)
	return nil
}

func (s *peerService) Resolve(a *ResolveArgs, r *ResolveReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveResolve(ctx, a)
	return nil
}

func (s *peerService) CheckTxn(a *CheckTxnArgs, r *CheckTxnReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveCheckTxn(ctx, a)
	return nil
}

func (s *peerService) TxnOpen(a *TxnOpenArgs, r *TxnOpenReply) error {
	r.Open = s.n.snaps.isOpen(a.StartTs)
	return nil
}

func (n *Node) servePrewrite(ctx context.Context, a *PrewriteArgs) PrewriteReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return PrewriteReply{Status: StatusNoReplica}
	}
	out, err := r.prewrite(ctx, a)
	if err == nil && out == conflict {
		return PrewriteReply{Status: StatusConflict, Err: "a key was written after the snapshot, or holds another transaction's intent"}
	}
	var reply PrewriteReply
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

func (n *Node) serveResolve(ctx context.Context, a *ResolveArgs) ResolveReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return ResolveReply{Status: StatusNoReplica}
	}
	res, err := r.resolveTxn(ctx, a)
	if err == nil && res.outcome == conflict {
		return ResolveReply{Status: StatusConflict, Err: "the transaction was rolled back"}
	}
	var reply ResolveReply
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	reply.CommitTs = res.commitTs
	return reply
}

func (n *Node) serveCheckTxn(ctx context.Context, a *CheckTxnArgs) CheckTxnReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return CheckTxnReply{Status: StatusNoReplica}
	}
	var reply CheckTxnReply
	var err error
	reply.State, reply.CommitTs, err = r.checkTxn(ctx, a)
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

// prewrite proposes a shard's part of a transaction's first phase and
// waits for it to be applied. Intents of other transactions on its keys
// are resolved first, where their transactions are decided.
func (r *replica) prewrite(ctx context.Context, a *PrewriteArgs) (outcome, error) {
	if err := r.spanCheck(a.Writes); err != nil {
		return 0, err
	}
	if err := r.clearIntents(ctx, a.StartTs, a.Writes); err != nil {
		return 0, err
	}
	e := prewriteEntry{ID: r.nextID.Add(1), StartTs: a.StartTs, Primary: a.Primary, Node: a.Node,
		Writes: a.Writes, Secondaries: a.Secondaries}
	data := encodeJSONEntry(entryPrewrite, &e)
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return 0, err
	}
	// It makes nothing visible: no read waits for it (MaxUint64).
	res, err := r.proposeLocked(e.ID, e.StartTs, math.MaxUint64, sortedKeys(a.Writes), data)
	if err == nil && res.outcome == wrongShard {
		return 0, fmt.Errorf("%w: the shard was split", errWrongShard)
	}
	return res.outcome, err
}

// spanCheck refuses writes outside the shard's span.
func (r *replica) spanCheck(writes []mutation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.leaderCheckLocked(); err != nil {
		return err
	}
	for _, w := range writes {
		if !r.inSpanLocked(w.Key) {
			return fmt.Errorf("%w: key %q", errWrongShard, w.Key)
		}
	}
	return nil
}

// clearIntents resolves the decided intents of other transactions on the
// keys a commit or prewrite at ts writes, so that they do not make it
// conflict. Undecided ones stay (and it will conflict).
func (r *replica) clearIntents(ctx context.Context, ts uint64, writes []mutation) error {
	if r.n.sm.intents.Load() == 0 {
		return nil
	}
	var found []keyedIntent
	for _, w := range writes {
		ins, err := r.n.sm.intentsIn(pointRead(w.Key))
		if err != nil {
			return err
		}
		found = append(found, ins...)
	}
	_, err := r.resolveFound(ctx, 0, ts, found)
	return err
}

func sortedKeys(writes []mutation) [][]byte {
	keys := make([][]byte, len(writes))
	for i, w := range writes {
		keys[i] = w.Key
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		slices.SortFunc(keys, bytes.Compare)
	}
	return keys
}

// resolveTxn proposes a resolve entry and waits for it to be applied. A
// decision to commit is checked against the primary key's read floor.
func (r *replica) resolveTxn(ctx context.Context, a *ResolveArgs) (proposalResult, error) {
	if err := ctx.Err(); err != nil {
		return proposalResult{}, err
	}
	keys := slices.Clone(a.Keys)
	slices.SortFunc(keys, bytes.Compare)
	e := resolveEntry{ID: r.nextID.Add(1), StartTs: a.StartTs, CommitTs: a.CommitTs, Primary: a.Primary,
		Decide: a.Decide, Keys: keys}
	data := encodeJSONEntry(entryResolve, &e)
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return proposalResult{}, err
	}
	if a.Decide && !r.inSpanLocked(a.Primary) {
		r.mu.Unlock()
		return proposalResult{}, fmt.Errorf("%w: key %q", errWrongShard, a.Primary)
	}
	for _, k := range keys {
		if !r.inSpanLocked(k) {
			r.mu.Unlock()
			return proposalResult{}, fmt.Errorf("%w: key %q", errWrongShard, k)
		}
	}
	waitTs := uint64(math.MaxUint64) // a rollback makes nothing visible
	if a.CommitTs != 0 {
		waitTs = a.CommitTs
		if a.Decide && (a.CommitTs <= a.StartTs || a.CommitTs <= r.floors.of(a.Primary)) {
			r.mu.Unlock()
			return proposalResult{}, errRetryTs
		}
		r.maxTs = max(r.maxTs, a.CommitTs)
	}
	res, err := r.proposeLocked(e.ID, e.StartTs, waitTs, keys, data)
	if err == nil && res.outcome == wrongShard {
		return proposalResult{}, fmt.Errorf("%w: the shard was split", errWrongShard)
	}
	return res, err
}

// checkTxn reports the state of the transaction a (see CheckTxnArgs),
// on the leader of its primary key.
func (r *replica) checkTxn(ctx context.Context, a *CheckTxnArgs) (state int, commitTs uint64, err error) {
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return 0, 0, err
	}
	if !r.inSpanLocked(a.Primary) {
		r.mu.Unlock()
		return 0, 0, fmt.Errorf("%w: key %q", errWrongShard, a.Primary)
	}
	r.mu.Unlock()
	// A decision at or below the reader's timestamp in flight is waited
	// for; a later one is refused below it.
	if err := r.resolve(ctx, max(a.ReaderTs, a.StartTs), pointRead(a.Primary)); err != nil {
		return 0, 0, err
	}
	state, commitTs, node, err := r.n.sm.txnState(a.Primary, a.StartTs)
	if err != nil || state != TxnPending {
		return state, commitTs, err
	}
	if node == 0 {
		node = a.Node
	}
	if !a.Force && !(a.Rollback && r.n.abandoned(ctx, node, a.StartTs)) {
		return TxnPending, 0, nil
	}
	res, err := r.resolveTxn(ctx, &ResolveArgs{StartTs: a.StartTs, Primary: a.Primary, Decide: true,
		Keys: [][]byte{a.Primary}})
	if err != nil {
		return 0, 0, err
	}
	if res.commitTs != 0 {
		return TxnCommitted, res.commitTs, nil
	}
	return TxnRolledBack, 0, nil
}

// txnState reads a transaction's record and primary intent: its state,
// and, while pending with its primary's intent here, its node.
func (sm *stateMachine) txnState(primary []byte, startTs uint64) (state int, commitTs, node uint64, err error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	rec, err := getRecord(rtxn, primary, startTs)
	if err != nil {
		return 0, 0, 0, err
	}
	if rec != nil {
		if rec.Committed {
			return TxnCommitted, rec.CommitTs, 0, nil
		}
		return TxnRolledBack, 0, 0, nil
	}
	in, err := getIntent(rtxn, primary)
	if err != nil {
		return 0, 0, 0, err
	}
	if in != nil && in.StartTs == startTs {
		return TxnPending, 0, in.Node, nil
	}
	return TxnPending, 0, 0, nil
}

// abandoned reports whether the transaction of snapshot startTs on node
// is gone: the node is dead, or says it is not open. A node that cannot
// be asked is taken to be working on it still.
func (n *Node) abandoned(ctx context.Context, node, startTs uint64) bool {
	if node == 0 {
		return false
	}
	if node == n.id {
		return !n.snaps.isOpen(startTs)
	}
	if alive := n.alive.Load(); alive != nil {
		if ok, known := (*alive)[node]; known && !ok {
			return true
		}
	}
	p, err := n.transport.peerFor(node)
	if err != nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var reply TxnOpenReply
	if _, err := p.call(cctx, "TxnOpen", &TxnOpenArgs{StartTs: startTs}, &reply); err != nil {
		return false
	}
	return !reply.Open
}

// resolveIntents makes a read at ts of what rk covers safe from
// cross-shard intents (leader): for every intent there of a transaction
// that began before ts (other than owner's), it asks the primary's leader
// for the transaction's state, which raises the primary's floor to ts. An
// undecided transaction will commit above ts: the read reads below its
// intent. A decided one's intents here are resolved first. It reports
// whether it resolved any as committed.
func (r *replica) resolveIntents(ctx context.Context, ts, owner uint64, rk readKeys) (bool, error) {
	found, err := r.n.sm.intentsIn(rk)
	if err != nil || len(found) == 0 {
		return false, err
	}
	return r.resolveFound(ctx, owner, ts, found)
}

// resolveFound is resolveIntents for the intents found.
func (r *replica) resolveFound(ctx context.Context, owner, ts uint64, found []keyedIntent) (committed bool, err error) {
	byTxn := map[uint64][]keyedIntent{}
	var order []uint64
	for _, in := range found {
		if in.StartTs >= ts || in.StartTs == owner {
			continue // it commits above ts; or it is the reader's own
		}
		if _, ok := byTxn[in.StartTs]; !ok {
			order = append(order, in.StartTs)
		}
		byTxn[in.StartTs] = append(byTxn[in.StartTs], in)
	}
	for _, start := range order {
		ins := byTxn[start]
		st, err := r.n.checkTxn(ctx, &CheckTxnArgs{Primary: ins[0].Primary, StartTs: start, ReaderTs: ts,
			Node: ins[0].Node, Rollback: true})
		if err != nil {
			return committed, err
		}
		if st.State == TxnPending {
			continue
		}
		keys := make([][]byte, len(ins))
		for i, in := range ins {
			keys[i] = in.Key
		}
		if _, err := r.resolveTxn(ctx, &ResolveArgs{StartTs: start, CommitTs: st.CommitTs, Primary: ins[0].Primary, Keys: keys}); err != nil {
			return committed, err
		}
		committed = committed || st.State == TxnCommitted
	}
	return committed, nil
}

// checkTxn asks the leader of a's primary key (a.Shard is found here).
func (n *Node) checkTxn(ctx context.Context, a *CheckTxnArgs) (CheckTxnReply, error) {
	for {
		d, err := n.shards.lookup(ctx, a.Primary)
		if err != nil {
			return CheckTxnReply{}, err
		}
		args := *a
		args.Shard = d.ID
		var reply CheckTxnReply
		if err := n.onLeader(ctx, d, "CheckTxn", &args, &reply, func() { reply = n.serveCheckTxn(ctx, &args) }); err != nil {
			return CheckTxnReply{}, err
		}
		switch reply.Status {
		case StatusOK:
			return reply, nil
		case StatusWrongShard:
			if err := n.shards.stale(ctx); err != nil {
				return CheckTxnReply{}, err
			}
			continue
		}
		return CheckTxnReply{}, fmt.Errorf("raft: check transaction %d: %w", a.StartTs, statusError(ctx, reply.Status, reply.Err))
	}
}

// statusError turns a reply's status into an error the caller returns.
func statusError(ctx context.Context, st Status, msg string) error {
	switch st {
	case StatusConflict:
		return fmt.Errorf("%s: %w", msg, kvcluster.ErrWriteConflict)
	case StatusDeadlock:
		return fmt.Errorf("%s: %w", msg, kvcluster.ErrDeadlock)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New(msg)
}

// sweepAge is how old an intent or record must be (by its transaction's
// start timestamp) before its leader's sweep looks at it: coordinators
// resolve their own well within it.
const sweepAge = 5 * time.Second

// recordKeep is how long a record is kept after its transaction began:
// longer than a coordinator may still send it a prewrite.
const recordKeep = 45 * time.Second

// sweepInterval is how often a node's leaders sweep their intents and
// records.
const sweepInterval = time.Second

// sweepRound sweeps the intents and records of the shards this node
// leads (every sweepInterval, apart from the repair loop: resolving may
// wait for other shards' leaders).
func (n *Node) sweepRound() {
	for _, r := range n.replicaList() {
		ctx, cancel := context.WithTimeout(n.stopCtx, 10*time.Second)
		if err := r.sweep(ctx); err != nil && n.stopCtx.Err() == nil {
			n.log.Warn("intent sweep", "shard", r.id, "err", err)
		}
		cancel()
	}
}

// sweep resolves this leader's intents of transactions that began over
// sweepAge ago (rolling back those whose coordinator is gone), and
// finishes and then forgets old records: it resolves the intents their
// transactions left on other shards.
func (r *replica) sweep(ctx context.Context) error {
	r.mu.Lock()
	if !r.isLeader || !r.floorSet {
		r.mu.Unlock()
		return nil
	}
	sp := r.span
	r.mu.Unlock()
	found, err := r.n.sm.intentsIn(readKeys{start: sp.Start, end: sp.End})
	if err != nil {
		return err
	}
	recs, err := r.n.sm.records(sp)
	if err != nil || len(found)+len(recs) == 0 {
		return err
	}
	now, err := r.n.timestamp(ctx)
	if err != nil {
		return err
	}
	old := tsBefore(now, sweepAge)
	var stale []keyedIntent
	for _, in := range found {
		if in.StartTs < old {
			stale = append(stale, in)
		}
	}
	if len(stale) > 0 {
		// Read as of old: the primaries' floors rise to a timestamp
		// sweepAge old, which holds back no commit; live transactions
		// are left alone.
		if _, err := r.resolveFound(ctx, 0, old, stale); err != nil {
			return err
		}
	}
	forgetBefore := tsBefore(now, recordKeep)
	for _, rec := range recs {
		if rec.StartTs >= old {
			continue
		}
		if len(rec.Secondaries) > 0 {
			if err := r.n.resolveKeys(ctx, rec.StartTs, rec.CommitTs, rec.Primary, rec.Secondaries); err != nil {
				return err
			}
			// Resolved: none are left to ask for it.
			rec.Secondaries = nil
		}
		if rec.StartTs >= forgetBefore {
			continue
		}
		e := resolveEntry{ID: r.nextID.Add(1), StartTs: rec.StartTs, Primary: rec.Primary, Forget: true}
		r.mu.Lock()
		if err := r.leaderCheckLocked(); err != nil {
			r.mu.Unlock()
			return nil
		}
		if _, err := r.proposeLocked(e.ID, e.StartTs, math.MaxUint64, nil, encodeJSONEntry(entryResolve, &e)); err != nil {
			return err
		}
	}
	return nil
}

// tsBefore is the oracle timestamp d before ts.
func tsBefore(ts uint64, d time.Duration) uint64 {
	back := uint64(d.Milliseconds()) << 18
	if back >= ts {
		return 0
	}
	return ts - back
}

// resolveKeys commits (commitTs > 0) or rolls back a decided
// transaction's intents of keys, shard by shard.
func (n *Node) resolveKeys(ctx context.Context, startTs, commitTs uint64, primary []byte, keys [][]byte) error {
	groups, err := groupByShard(ctx, n, keys, sameKey)
	if err != nil {
		return err
	}
	for _, g := range groups {
		a := &ResolveArgs{Shard: g.d.ID, StartTs: startTs, CommitTs: commitTs, Primary: primary, Keys: g.items}
		var reply ResolveReply
		if err := n.onLeader(ctx, g.d, "Resolve", a, &reply, func() {
			reply = n.serveResolve(ctx, a)
		}); err != nil {
			return err
		}
		switch reply.Status {
		case StatusOK:
		case StatusWrongShard:
			// A split moved some of them: group them again.
			if err := n.shards.stale(ctx); err != nil {
				return err
			}
			if err := n.resolveKeys(ctx, startTs, commitTs, primary, g.items); err != nil {
				return err
			}
		default:
			return fmt.Errorf("raft: resolve transaction %d on shard %d: %w", startTs, g.d.ID, statusError(ctx, reply.Status, reply.Err))
		}
	}
	return nil
}
