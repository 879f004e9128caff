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
	err := s.changeValidating(ctx, j, func(t, nt *catalog.Table, i int) error {
		violation = s.checkNoNulls(ctx, t, i)
		var pe *pgerror.Error
		switch {
		case violation == nil:
			nt.Columns[i].NotNull, nt.Columns[i].Validating = true, false
		case errors.As(violation, &pe) && pe.Code == pgerror.CodeNotNullViolation:
			revert(nt, i, j.added)
		default:
			err := violation
			violation = nil
			return err
		}
		return nil
	})
	if err != nil {
		return s.revertNotNull(ctx, j, err)
	}
	return violation
}

// changeValidating runs change in a transaction of its own on a copy of
// j's table whose column j.column is still Validating, and stores the
// copy; a column dropped or changed since is left alone.
func (s *Session) changeValidating(ctx context.Context, j schemaJob, change func(t, nt *catalog.Table, i int) error) error {
	return s.inOwnTxn(ctx, func() error {
		t, err := j.tableIn(ctx, s)
		if err != nil || t == nil {
			return err
		}
		i := t.ColumnPos(j.column)
		if i < 0 || !t.Columns[i].Validating {
			return nil
		}
		nt := *t
		nt.Columns = append([]catalog.Column(nil), t.Columns...)
		if err := change(t, &nt, i); err != nil {
			return err
		}
		return s.cat.UpdateTable(ctx, s.txn, &nt)
	})
}

// revertNotNull takes back a NOT NULL whose check could not finish, so
// no column is left refusing NULLs it was never declared to refuse.
func (s *Session) revertNotNull(ctx context.Context, j schemaJob, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := s.changeValidating(cctx, j, func(_, nt *catalog.Table, i int) error {
		revert(nt, i, j.added)
		return nil
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
