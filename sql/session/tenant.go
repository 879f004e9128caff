package session

import (
	"context"
	"strconv"
	"strings"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Governor is what a session's tenant imposes on it. The node gives every
// session its tenant's governor (tenancy.Live); a session without one runs
// ungoverned (engine-level tests).
type Governor interface {
	// Admit is called before every statement and may wait (rate limits);
	// an error fails the statement.
	Admit(ctx context.Context) error
	// Wrap returns the transaction the session uses in place of txn
	// (storage accounting). The result must be a kvcluster.LockingTxn
	// when txn is.
	Wrap(txn kvcluster.Txn) kvcluster.Txn
	// Statement is told of every finished statement.
	Statement(rowsRead, rowsWritten int64, elapsed time.Duration)
}

// Admin runs the cluster administration functions and views, for
// superusers of the system tenant; the session checks who calls.
type Admin interface {
	// Call runs a shaledb.* function (planner's adminFuncs).
	Call(ctx context.Context, name string, args []value.Value) (value.Value, error)
	// View returns the system view shaledb.<name>, or false.
	View(name string) (*catalog.Table, bool)
}

// statementStats is what execute learns of one statement.
type statementStats struct {
	rowsRead int64
}

// execute runs one statement under the tenant's governor, with a span and
// statistics.
func (s *Session) execute(ctx context.Context, stmt *pg.Node, paramTypes []types.T, params []value.Value, w ResultWriter, maxRows int, portal *Portal) error {
	start := time.Now()
	var kind string
	var span trace.Span
	if s.e.Tracer != nil {
		kind = statementKind(stmt)
		ctx, span = s.e.Tracer.Start(ctx, kind, trace.WithSpanKind(trace.SpanKindServer))
	}
	if s.gov != nil {
		if err := s.gov.Admit(ctx); err != nil {
			endSpan(span, s, kind, 0, 0, err)
			return err
		}
	}
	// One countingWriter per session, reused: statements run one at a time.
	cw := &s.counting
	*cw = countingWriter{ResultWriter: w}
	s.stats = statementStats{}
	s.views = viewCache{}
	err := s.dispatch(ctx, stmt, paramTypes, params, cw, maxRows, portal)
	written := cw.written()
	if s.gov != nil {
		s.gov.Statement(s.stats.rowsRead, written, time.Since(start))
	}
	endSpan(span, s, kind, s.stats.rowsRead, written, err)
	return err
}

func endSpan(span trace.Span, s *Session, kind string, read, written int64, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(
		attribute.String("db.system", "shaledb"),
		attribute.String("shaledb.tenant", s.database),
		attribute.String("db.operation", kind),
		attribute.Int64("shaledb.rows_read", read),
		attribute.Int64("shaledb.rows_written", written),
	)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// statementKind names a statement for spans: "SELECT", "CREATE TABLE".
func statementKind(stmt *pg.Node) string {
	switch stmt.Node.(type) {
	case *pg.Node_SelectStmt:
		return "SELECT"
	case *pg.Node_InsertStmt:
		return "INSERT"
	case *pg.Node_UpdateStmt:
		return "UPDATE"
	case *pg.Node_DeleteStmt:
		return "DELETE"
	case *pg.Node_CopyStmt:
		return "COPY"
	}
	return strings.ToUpper(statementName(stmt))
}

// countingWriter counts a statement's rows and keeps its tag.
type countingWriter struct {
	ResultWriter
	tag string
}

func (c *countingWriter) Complete(tag string) error {
	c.tag = tag
	return c.ResultWriter.Complete(tag)
}

// unwrap returns the writer a countingWriter wraps, for the statements
// that need its other interfaces (COPY's CopyIO, the retry buffer).
func unwrap(w ResultWriter) ResultWriter {
	if c, ok := w.(*countingWriter); ok {
		return c.ResultWriter
	}
	return w
}

// written is the row count of a tag that reports writes (COPY FROM's
// included; COPY TO's too, which is rare enough not to matter).
func (c *countingWriter) written() int64 {
	for _, p := range []string{"INSERT 0 ", "UPDATE ", "DELETE ", "COPY "} {
		if strings.HasPrefix(c.tag, p) {
			n, _ := strconv.ParseInt(c.tag[len(p):], 10, 64)
			return n
		}
	}
	return 0
}

// systemAdmin reports whether the session may administer the cluster.
func (s *Session) systemAdmin() bool {
	return s.tenant == keys.SystemTenantID && s.role.Superuser
}

// adminCall is expr.Env's Admin for this session.
func (s *Session) adminCall(ctx context.Context) func(string, []value.Value) (value.Value, error) {
	return func(name string, args []value.Value) (value.Value, error) {
		if !s.systemAdmin() || s.e.Admin == nil {
			return nil, pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for function %s", name)
		}
		if s.mode == txnExplicit {
			return nil, pgerror.New(pgerror.CodeActiveSQLTransaction, "%s cannot run inside a transaction block", name)
		}
		return s.e.Admin.Call(ctx, name, args)
	}
}

// view resolves a shaledb.* system view.
func (s *Session) view(name string) (*catalog.Table, error) {
	short := strings.TrimPrefix(name, "shaledb.")
	var t *catalog.Table
	ok := false
	if s.e.Admin != nil {
		t, ok = s.e.Admin.View(short)
	}
	if !ok {
		return nil, pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", name)
	}
	if !s.systemAdmin() {
		return nil, pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for view %s", short)
	}
	return t, nil
}

// checkPrivileges fails with 42501 unless the session's role may run plan
// p: SELECT on every table read, INSERT/UPDATE/DELETE on the table
// written (and SELECT on it too when the statement reads its rows:
// WHERE, RETURNING).
func (s *Session) checkPrivileges(p planner.Plan) error {
	if s.role.Superuser {
		return nil
	}
	need := func(t *catalog.Table, priv catalog.Privileges) error {
		if t.Virtual != nil || t.Allows(s.role, priv) {
			return nil
		}
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for table %s", t.Name)
	}
	// subplans are the subqueries in a node's own expressions.
	subplans := func(p planner.Plan) []planner.Plan {
		var out []planner.Plan
		for _, e := range planner.Expressions(p) {
			expr.Subqueries(e, func(s *expr.Subquery) { out = append(out, s.Plan.(planner.Plan)) })
		}
		return out
	}
	var walk func(p planner.Plan) error
	walkAll := func(ps []planner.Plan) error {
		for _, c := range ps {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	walk = func(p planner.Plan) error {
		switch p := p.(type) {
		case *planner.Scan:
			if err := need(p.Table, catalog.PrivSelect); err != nil {
				return err
			}
		case *planner.Insert:
			priv := catalog.PrivInsert
			if p.Returning != nil {
				priv |= catalog.PrivSelect
			}
			if p.OnConflict != nil {
				// DO UPDATE updates, and reads the conflicting row.
				priv |= catalog.PrivUpdate | catalog.PrivSelect
			}
			if err := need(p.Table, priv); err != nil {
				return err
			}
		case *planner.Update, *planner.Delete:
			// The target's own scan needs SELECT only when the statement
			// reads its rows (WHERE, RETURNING); its subqueries always.
			var t *catalog.Table
			var scan *planner.Scan
			var source planner.Plan
			priv := catalog.PrivDelete
			reads := false
			if u, ok := p.(*planner.Update); ok {
				t, scan, source, priv, reads = u.Table, u.Scan, u.Source, catalog.PrivUpdate, u.Returning != nil
			} else {
				d := p.(*planner.Delete)
				t, scan, source, reads = d.Table, d.Scan, d.Source, d.Returning != nil
			}
			if source != nil {
				// UPDATE … FROM / DELETE … USING read the target in a
				// join: SELECT on it too, and on every other item.
				if err := need(t, priv|catalog.PrivSelect); err != nil {
					return err
				}
				return walkAll(append([]planner.Plan{source}, subplans(p)...))
			}
			if scan.Filter != nil || reads {
				priv |= catalog.PrivSelect
			}
			if err := need(t, priv); err != nil {
				return err
			}
			return walkAll(append(subplans(scan), subplans(p)...))
		case *planner.Filter, *planner.Project, *planner.Sort, *planner.Limit, *planner.Aggregate,
			*planner.Distinct, *planner.SetOp, *planner.Values, *planner.RowSource, *planner.Join,
			*planner.RecursiveCTE, *planner.WorkTable, *planner.Series:
		default:
			// A plan node this walk does not know could read a table:
			// refuse rather than skip its privilege check.
			return pgerror.New(pgerror.CodeInternalError, "privilege check: unknown plan node %T", p)
		}
		return walkAll(planner.Inputs(p))
	}
	return walk(p)
}

// mustOwn fails with 42501 unless the session's role owns t.
func (s *Session) mustOwn(t *catalog.Table) error {
	if t.OwnedBy(s.role) {
		return nil
	}
	return pgerror.New(pgerror.CodeInsufficientPrivilege, "must be owner of table %s", t.Name)
}
