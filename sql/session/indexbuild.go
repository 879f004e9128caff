package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shaledb/shaledb/executor"
	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// Online index builds (RFC 0010). CREATE INDEX on a table that existed
// before the transaction does not fill the index in the statement's
// transaction, which would miss what concurrent writers commit after its
// snapshot. Instead:
//
//  1. The statement's transaction adds the index in its building state
//     (catalog.Index.Building). From its commit on, every new
//     transaction's writes maintain the index, locking its entries; no
//     read uses it, no catalog shows it. A marker key
//     (keys.MetaIndexBuild) names the build from before that commit until
//     the build has ended: it is written in a transaction of its own
//     first, since the cluster's metadata may live on another shard than
//     the tenant (RFC 0013), and removed by the same means once the index
//     is public or gone (or the statement's transaction did not commit).
//  2. After the commit, the build waits until every transaction that
//     began before it has ended (kvcluster.SnapshotWaiter): from then on,
//     every writer knows the index.
//  3. The backfill walks the table a page at a time, each page in a
//     transaction of its own. It locks each row and the entry it writes
//     and reads their latest values, as writers do, so a concurrent write
//     of the row is ordered before or after it by the locks, never lost,
//     and neither fails the other.
//  4. One transaction makes the index public; then the marker goes.
//
// If the build fails (a duplicate for a unique index, a cancel, a dropped
// table), the index is taken out of the descriptor with its marker, the
// build waits out older snapshots again (writers that still maintain it),
// then deletes its entries. A start abandons builds a crash interrupted
// (AbandonIndexBuilds). The CommandComplete of CREATE INDEX is sent before
// the commit; a build error is reported after it, as PostgreSQL reports a
// deferred constraint's violation at commit.

// schemaJob is the part of an online schema change that runs once the
// transaction that started it commits.
type schemaJob struct {
	kind  jobKind
	table keys.TableID
	// tableName is the table's name when the job was made: the way to
	// its descriptor through the cache, unless it was renamed since.
	tableName string
	name      string // the index's or the column's
	// index is the index a jobIndex builds.
	index keys.IndexID
	// column is the column a jobNotNull validates; added when the
	// statement added the column, which a failed check takes away again.
	column encoding.ColumnID
	added  bool
}

type jobKind uint8

const (
	jobIndex   jobKind = iota // build an index (this file)
	jobNotNull                // validate a NOT NULL (notnull.go)
)

// backfillPage is the rows one backfill transaction covers.
const backfillPage = 256

// ownTxnAttempts bounds the retries of one build step that lost a race.
const ownTxnAttempts = 50

// inOwnTxn runs fn in a transaction of the session's own, outside any
// the client sees, and commits it; a retryable failure runs it again.
func (s *Session) inOwnTxn(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		if err := s.begin(ctx); err != nil {
			return err
		}
		txn := s.txn
		err := fn()
		s.txn = nil
		if err == nil {
			err = txn.Commit(ctx)
		} else {
			txn.Rollback()
		}
		s.e.descs.Ended(txn)
		if err != nil && kvcluster.IsRetryable(err) && attempt < ownTxnAttempts && ctx.Err() == nil {
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		return err
	}
}

// tableIn reads j's table in the session's transaction, nil if it is
// gone: by name through the descriptor cache, or, renamed since, by a
// walk over every descriptor.
func (j *schemaJob) tableIn(ctx context.Context, s *Session) (*catalog.Table, error) {
	if j.tableName != "" {
		t, found, err := s.cat.Table(ctx, s.txn, j.tableName)
		if err != nil || found && t.ID == j.table {
			return t, err
		}
	}
	tables, err := s.cat.Tables(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.ID == j.table {
			return t, nil
		}
	}
	return nil, nil
}

// buildingIndex is j's index in t while it is being built, else nil.
func (j *schemaJob) buildingIndex(t *catalog.Table) *catalog.Index {
	for i := 0; t != nil && i < len(t.Indexes); i++ {
		if t.Indexes[i].ID == j.index && t.Indexes[i].Building {
			return &t.Indexes[i]
		}
	}
	return nil
}

// runSchemaJobs finishes the online schema changes of the committed
// transaction, in the order its statements made them.
func (s *Session) runSchemaJobs(ctx context.Context, jobs []schemaJob) error {
	for _, j := range jobs {
		var err error
		switch j.kind {
		case jobIndex:
			err = s.buildOnline(ctx, j)
		case jobNotNull:
			err = s.validateNotNull(ctx, j)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// waitForOlderSnapshots is step 2 (and the wait before a failed build's
// entries are deleted).
func (s *Session) waitForOlderSnapshots(ctx context.Context) error {
	sw, ok := s.e.KV.(kvcluster.SnapshotWaiter)
	if !ok {
		return pgerror.Unsupported("online index builds on this store")
	}
	return sw.WaitForOlderSnapshots(ctx)
}

// buildOnline runs steps 2 to 4 for one index, abandoning it on failure.
func (s *Session) buildOnline(ctx context.Context, j schemaJob) error {
	// The transaction may have dropped the index (or its table) again.
	gone := false
	err := s.inOwnTxn(ctx, func() error {
		t, err := j.tableIn(ctx, s)
		if err != nil {
			return err
		}
		gone = j.buildingIndex(t) == nil
		return nil
	})
	if err == nil && gone {
		err = s.setBuildMarker(ctx, j.table, j.index, false)
	}
	if err != nil || gone {
		return err
	}
	err = s.waitForOlderSnapshots(ctx)
	if err == nil {
		err = s.backfill(ctx, j)
	}
	if err == nil {
		err = s.inOwnTxn(ctx, func() error { return s.finishBuild(ctx, j, true) })
	}
	if err == nil {
		return s.setBuildMarker(ctx, j.table, j.index, false)
	}
	// Clean up even when the client went away or cancelled: bounded, on a
	// context of its own.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	if aerr := s.abandonBuild(cctx, j.table, j.index); aerr != nil {
		err = errors.Join(err, fmt.Errorf("abandon index %q: %w", j.name, aerr))
	}
	if kvcluster.IsRetryable(err) {
		// Never leave the caller to re-run the statement: the index is gone.
		err = pgerror.New(pgerror.CodeSerializationFailure, "could not create index %q: %v", j.name, err)
	}
	return err
}

// finishBuild makes the building index public (or, with public false,
// takes it out of the descriptor). Taking out an index that is public
// already does nothing: its marker outlived the build.
func (s *Session) finishBuild(ctx context.Context, j schemaJob, public bool) error {
	t, err := j.tableIn(ctx, s)
	if err != nil {
		return err
	}
	if t == nil {
		if public {
			return pgerror.New(pgerror.CodeUndefinedTable, "the table of index %q was dropped while the index was built", j.name)
		}
		return nil
	}
	nt := *t
	nt.Indexes = nil
	found := false
	for _, idx := range t.Indexes {
		if idx.ID != j.index {
			nt.Indexes = append(nt.Indexes, idx)
			continue
		}
		found = true
		switch {
		case !public && !idx.Building:
			return nil
		case public:
			idx.Building = false
			nt.Indexes = append(nt.Indexes, idx)
		}
	}
	if !found {
		if public {
			return pgerror.New(pgerror.CodeObjectNotInPrerequisiteState, "index %q was removed while it was built", j.name)
		}
		return nil
	}
	return s.cat.UpdateTable(ctx, s.txn, &nt)
}

// backfill is step 3: entries for every row, a page per transaction.
func (s *Session) backfill(ctx context.Context, j schemaJob) error {
	var from []byte
	for {
		var next []byte
		done := false
		err := s.inOwnTxn(ctx, func() error {
			var err error
			next, done, err = s.backfillPage(ctx, j, from)
			return err
		})
		if err != nil || done {
			return err
		}
		from = next
	}
}

// backfillPage writes the entries of up to backfillPage rows from the
// primary key from on, returning where the next page starts.
func (s *Session) backfillPage(ctx context.Context, j schemaJob, from []byte) (next []byte, done bool, err error) {
	t, err := j.tableIn(ctx, s)
	if err != nil {
		return nil, false, err
	}
	idx := j.buildingIndex(t)
	if idx == nil {
		return nil, false, pgerror.New(pgerror.CodeObjectNotInPrerequisiteState, "index %q or its table was changed while the index was built", j.name)
	}
	lt, ok := s.txn.(kvcluster.LockingTxn)
	if !ok {
		return nil, false, pgerror.Unsupported("online index builds without row locks")
	}
	rec, ri := t.Record(), idx.RecordIndex()
	start, end := s.codec.IndexSpan(t.ID, t.Primary.ID)
	if from != nil {
		start = from
	}
	page, err := s.txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: backfillPage})
	if err != nil {
		return nil, false, err
	}
	for _, e := range page {
		// The row's latest version, locked: a writer that changes it
		// now waits for this page, and one that changed it since the
		// snapshot is seen.
		val, found, err := lt.LockForUpdate(ctx, e.Key)
		if err != nil {
			return nil, false, err
		}
		if !found {
			continue
		}
		row, err := rec.DecodeRow(s.codec, e.Key, val)
		if err != nil {
			return nil, false, err
		}
		k, v, err := rec.EncodeIndexEntry(s.codec, ri, row)
		if err != nil {
			return nil, false, err
		}
		cur, found, err := lt.LockForUpdate(ctx, k)
		if err != nil {
			return nil, false, err
		}
		if found && bytes.Equal(cur, v) {
			continue // a writer got there first
		}
		if found && idx.Unique && len(v) > 0 {
			return nil, false, pgerror.New(pgerror.CodeUniqueViolation, "could not create unique index %q", idx.Name).
				WithDetail("Key %s is duplicated.", executor.KeyText(t, t.Positions(idx), row))
		}
		if err := s.txn.Put(ctx, k, v); err != nil {
			return nil, false, err
		}
	}
	if len(page) < backfillPage {
		return nil, true, nil
	}
	return append(bytes.Clone(page[len(page)-1].Key), 0), false, nil
}

// checkNotBuilding refuses a schema change that rebuilds or removes t's
// indexes while one is being built.
func checkNotBuilding(t *catalog.Table) error {
	for _, idx := range t.Indexes {
		if idx.Building {
			return pgerror.New(pgerror.CodeObjectInUse, "index %q of table %q is being built", idx.Name, t.Name).
				WithHint("Try again once CREATE INDEX has finished.")
		}
	}
	return nil
}

// AbandonIndexBuild takes out an index that a crash left half built, as
// a failed build does; the node calls it at start for every marker.
func (s *Session) AbandonIndexBuild(ctx context.Context, table keys.TableID, index keys.IndexID) error {
	return s.abandonBuild(ctx, table, index)
}

// abandonBuild takes a building index out of its table, deletes its
// entries once no writer can add more, then its marker.
func (s *Session) abandonBuild(ctx context.Context, table keys.TableID, index keys.IndexID) error {
	j := schemaJob{kind: jobIndex, table: table, index: index}
	public := false
	err := s.inOwnTxn(ctx, func() error {
		t, err := j.tableIn(ctx, s)
		if err != nil {
			return err
		}
		if t != nil {
			i := slices.IndexFunc(t.Indexes, func(idx catalog.Index) bool { return idx.ID == index })
			public = i >= 0 && !t.Indexes[i].Building
		}
		return s.finishBuild(ctx, j, false)
	})
	if err != nil {
		return err
	}
	if public {
		// Built, and then its marker outlived it (a crash).
		return s.setBuildMarker(ctx, table, index, false)
	}
	if err := s.waitForOlderSnapshots(ctx); err != nil {
		return err
	}
	start, end := s.codec.IndexSpan(table, index)
	for {
		n := 0
		err := s.inOwnTxn(ctx, func() error {
			page, err := s.txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 1024})
			n = len(page)
			for _, e := range page {
				if err == nil {
					err = s.txn.Delete(ctx, e.Key)
				}
			}
			return err
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return s.setBuildMarker(ctx, table, index, false)
		}
	}
}

// setBuildMarker writes (on) or removes an index build's marker, in a
// transaction of its own.
func (s *Session) setBuildMarker(ctx context.Context, table keys.TableID, index keys.IndexID, on bool) error {
	key := keys.MetaIndexBuild(s.tenant, table, index)
	return kvcluster.Update(ctx, s.e.KV, 10, func(txn kvcluster.Txn) error {
		if on {
			return txn.Put(ctx, key, nil)
		}
		return txn.Delete(ctx, key)
	})
}

// dropBuildMarkers removes the markers of the index builds a transaction
// that did not commit started.
func (s *Session) dropBuildMarkers(ctx context.Context, jobs []schemaJob) error {
	var errs []error
	for _, j := range jobs {
		if j.kind == jobIndex {
			// Even when the client went away: bounded, on a context of
			// its own.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			errs = append(errs, s.setBuildMarker(mctx, j.table, j.index, false))
			cancel()
		}
	}
	return errors.Join(errs...)
}
