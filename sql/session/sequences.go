package session

import (
	"context"
	"strings"
	"sync"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
)

// Sequences are non-transactional, as in PostgreSQL: a value drawn is
// never given out again, even if the drawing transaction aborts (gaps are
// allowed). Values are reserved from the catalog counter in blocks, each
// reservation its own small transaction, so inserts into one table do not
// conflict on its counter.

// seqBlockSize is how many values one reservation takes.
const seqBlockSize = 64

type seqKey struct {
	tenant keys.TenantID
	name   string
}

type seqBlock struct {
	next, last int64 // next to hand out; last reserved
}

type sequences struct {
	kv     kvcluster.KvCluster
	mu     sync.Mutex
	cached map[seqKey]*seqBlock
}

// next returns the next value of the sequence kept in counter (a
// catalog.SequenceCounter) of the catalog's tenant.
func (q *sequences) next(ctx context.Context, cat *catalog.Catalog, counter string) (int64, error) {
	k := seqKey{cat.Codec().Tenant(), counter}
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.cached[k]
	if b == nil || b.next > b.last {
		var last int64
		err := kvcluster.Update(ctx, q.kv, 100, func(txn kvcluster.Txn) error {
			var err error
			last, err = cat.AdvanceCounter(ctx, txn, counter, seqBlockSize)
			return err
		})
		if err != nil {
			return 0, err
		}
		b = &seqBlock{next: last - seqBlockSize + 1, last: last}
		q.cached[k] = b
	}
	v := b.next
	b.next++
	return v, nil
}

// forget drops cached blocks of a table's sequences (after DROP, CREATE or
// TRUNCATE … RESTART IDENTITY).
func (q *sequences) forget(tenant keys.TenantID, table keys.TableID) {
	prefix := catalog.SequenceCountersOf(table)
	q.mu.Lock()
	defer q.mu.Unlock()
	for k := range q.cached {
		if k.tenant == tenant && strings.HasPrefix(k.name, prefix) {
			delete(q.cached, k)
		}
	}
}
