package session

import (
	"context"
	"errors"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// Online NOT NULL (RFC 0010). SET NOT NULL and ADD COLUMN … NOT NULL on a
// table others may be writing check the rows in the statement's
// transaction, as PostgreSQL does, and commit the column as Validating:
// new writers refuse NULL from then on, but writers that began earlier
// still use the old descriptor. Once they are gone, one transaction scans
// the table again and sets NotNull, or, finding a NULL one of them
// wrote, takes the change back (an added column goes away again) and
// fails with 23502.

// validateNotNull finishes an online NOT NULL.
func (s *Session) validateNotNull(ctx context.Context, j schemaJob) error {
	if err := s.waitForOlderSnapshots(ctx); err != nil {
		return s.revertNotNull(ctx, j, err)
	}
	var violation error
	err := s.inOwnTxn(ctx, func() error {
		violation = nil
		t, err := s.tableByID(ctx, j.table)
		if err != nil || t == nil {
			return err
		}
		i := columnByID(t, j)
		if i < 0 || !t.Columns[i].Validating {
			return nil // dropped or changed since: nothing to finish
		}
		nt := *t
		nt.Columns = append([]catalog.Column(nil), t.Columns...)
		if err := s.checkNoNulls(ctx, t, i); err != nil {
			var pe *pgerror.Error
			if !errors.As(err, &pe) || pe.Code != pgerror.CodeNotNullViolation {
				return err
			}
			violation = err
			revert(&nt, i, j.added)
		} else {
			nt.Columns[i].NotNull, nt.Columns[i].Validating = true, false
		}
		return s.cat.UpdateTable(ctx, s.txn, &nt)
	})
	if err != nil {
		return s.revertNotNull(ctx, j, err)
	}
	return violation
}

// revertNotNull takes back a NOT NULL whose check could not finish, so
// no column is left refusing NULLs it was never declared to refuse.
func (s *Session) revertNotNull(ctx context.Context, j schemaJob, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := s.inOwnTxn(cctx, func() error {
		t, err := s.tableByID(cctx, j.table)
		if err != nil || t == nil {
			return err
		}
		i := columnByID(t, j)
		if i < 0 || !t.Columns[i].Validating {
			return nil
		}
		nt := *t
		nt.Columns = append([]catalog.Column(nil), t.Columns...)
		revert(&nt, i, j.added)
		return s.cat.UpdateTable(cctx, s.txn, &nt)
	})
	if kvcluster.IsRetryable(cause) {
		cause = pgerror.New(pgerror.CodeSerializationFailure, "could not validate NOT NULL on column %q: %v", j.name, cause)
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// revert undoes column i's pending NOT NULL: an added column goes away.
func revert(t *catalog.Table, i int, added bool) {
	if added {
		t.Columns = append(t.Columns[:i:i], t.Columns[i+1:]...)
		return
	}
	t.Columns[i].Validating = false
}

func columnByID(t *catalog.Table, j schemaJob) int {
	for i, c := range t.Columns {
		if c.ID == j.column {
			return i
		}
	}
	return -1
}
