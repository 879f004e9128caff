package session

import (
	"context"
	"slices"
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"

	"github.com/shaledb/shaledb/executor"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

type pgParseError = parser.Error

func (s *Session) builder(ctx context.Context, paramTypes []types.T) *planner.Builder {
	return &planner.Builder{Table: s.table(ctx), Params: append([]types.T(nil), paramTypes...)}
}

// plan plans a row statement.
func (s *Session) plan(ctx context.Context, stmt *pg.Node, paramTypes []types.T) (planner.Plan, *planner.Builder, error) {
	b := s.builder(ctx, paramTypes)
	p, err := s.planWith(b, stmt)
	return p, b, err
}

// planWith plans a row statement with b.
func (s *Session) planWith(b *planner.Builder, stmt *pg.Node) (planner.Plan, error) {
	var p planner.Plan
	var err error
	switch x := stmt.Node.(type) {
	case *pg.Node_SelectStmt:
		if p, err = b.Select(x.SelectStmt); err == nil {
			p = planner.NameRelations(p)
		}
	case *pg.Node_InsertStmt:
		p, err = b.Insert(x.InsertStmt)
	case *pg.Node_UpdateStmt:
		p, err = b.Update(x.UpdateStmt)
	case *pg.Node_DeleteStmt:
		p, err = b.Delete(x.DeleteStmt)
	default:
		err = pgerror.Unsupported("statement " + statementName(stmt))
	}
	return p, err
}

func columnsOf(p planner.Plan) []Column {
	pc := p.Columns()
	out := make([]Column, len(pc))
	for i, c := range pc {
		out[i] = Column{Name: c.Name, Type: c.Type}
	}
	return out
}

func (s *Session) runtime(ctx context.Context, params []value.Value) *executor.Runtime {
	return &executor.Runtime{
		Ctx: ctx, Txn: s.txn, Codec: s.codec, MemLimit: s.queryMemory(),
		Env: expr.Env{
			Params:  params,
			Now:     s.txnStart,
			Setting: s.setting,
			NextVal: func(seq string) (int64, error) { return s.e.seqs.next(ctx, s.cat, seq) },
			Admin:   s.adminCall(ctx),
			Catalog: func(name string, args []value.Value) (value.Value, error) {
				return s.catalogCall(ctx, name, args)
			},
		},
	}
}

// query plans and runs a SELECT/INSERT/UPDATE/DELETE.
func (s *Session) query(ctx context.Context, stmt *pg.Node, paramTypes []types.T, params []value.Value, w ResultWriter, maxRows int, portal *Portal) error {
	var p planner.Plan
	var err error
	if portal != nil {
		p, err = s.preparedPlan(ctx, portal.stmt)
	} else {
		p, _, err = s.plan(ctx, stmt, paramTypes)
	}
	if err != nil {
		return err
	}
	if err := s.checkPrivileges(p); err != nil {
		return err
	}
	cols := columnsOf(p)
	returnsRows := len(cols) > 0 || isSelect(stmt)
	if returnsRows {
		if err := w.Columns(cols); err != nil {
			return err
		}
	}
	rt := s.runtime(ctx, params)
	n, err := executor.Run(rt, p, func(row []value.Value) error { return w.Row(row) })
	s.stats.rowsRead += rt.RowsRead
	if err != nil {
		return err
	}
	return w.Complete(commandTag(p, n))
}

func isSelect(stmt *pg.Node) bool { return stmt.GetSelectStmt() != nil }

func commandTag(p planner.Plan, n int64) string {
	return planner.CommandTag(p) + " " + strconv.FormatInt(n, 10)
}

// Prepared is a parsed statement with its parameter and result types.
type Prepared struct {
	Query      string
	stmt       *pg.Node // nil for an empty query
	ParamTypes []types.T
	Columns    []Column
	// plan is the statement's last plan, and tables the descriptors it
	// was built from, in the order the planner asked for them.
	plan   planner.Plan
	tables []*catalog.Table
}

// preparedPlan returns ps's plan, built again only if a table it reads
// has another descriptor now. A plan depends on nothing but the statement,
// the parameter types and the descriptors (the planner sees no session
// state), and plans are never modified by running them, so one plan
// serves every execution. Descriptors come from the catalog's caches, which
// hand out one pointer per descriptor content: pointer equality means an
// unchanged table.
func (s *Session) preparedPlan(ctx context.Context, ps *Prepared) (planner.Plan, error) {
	if ps.plan != nil {
		same := true
		for _, used := range ps.tables {
			t, found, err := s.cat.Table(ctx, s.txn, used.Name)
			if err != nil {
				return nil, err
			}
			if !found || t != used {
				same = false
				break
			}
		}
		if same {
			return ps.plan, nil
		}
	}
	var tables []*catalog.Table
	resolve := s.table(ctx)
	b := &planner.Builder{
		Table: func(name string) (*catalog.Table, error) {
			t, err := resolve(name)
			if err == nil {
				tables = append(tables, t)
			}
			return t, err
		},
		Params: append([]types.T(nil), ps.ParamTypes...),
	}
	p, err := s.planWith(b, ps.stmt)
	if err != nil {
		ps.plan, ps.tables = nil, nil
		return nil, err
	}
	// The client decodes rows by the columns it was told at Describe.
	if cols := columnsOf(p); ps.Columns != nil && !slices.Equal(cols, ps.Columns) {
		ps.plan, ps.tables = nil, nil
		return nil, pgerror.New(pgerror.CodeFeatureNotSupported, "cached plan must not change result type")
	}
	ps.plan, ps.tables = p, tables
	return p, nil
}

// Portal is a prepared statement bound to parameter values, possibly
// partly executed.
type Portal struct {
	stmt   *Prepared
	params []value.Value
	// Formats are the result column format codes the client asked for.
	Formats []int16
	// pending holds rows of a suspended execution not yet sent.
	pending  [][]value.Value
	tag      string
	started  bool
	finished bool
}

// Stmt returns the portal's prepared statement.
func (p *Portal) Stmt() *Prepared { return p.stmt }

// Prepare parses and plans query under name ("" is the unnamed
// statement), with the parameter types the client declared (0 or unknown
// for "infer").
func (s *Session) Prepare(ctx context.Context, name, query string, paramOIDs []uint32) (*Prepared, error) {
	if _, exists := s.prepared[name]; exists && name != "" {
		return nil, pgerror.New(pgerror.CodeDuplicatePreparedStatement, "prepared statement %q already exists", name)
	}
	if s.mode == txnFailed {
		return nil, pgerror.New(pgerror.CodeInFailedSQLTransaction, "current transaction is aborted, commands ignored until end of transaction block")
	}
	tree, err := s.e.parse(query)
	if err != nil {
		return nil, err
	}
	if len(tree.Stmts) > 1 {
		return nil, pgerror.New(pgerror.CodeSyntaxError, "cannot insert multiple commands into a prepared statement")
	}
	ps := &Prepared{Query: query}
	for _, oid := range paramOIDs {
		t, ok := types.ByOID(oid)
		if oid == 0 {
			t, ok = types.Unknown, true
		}
		if !ok {
			return nil, pgerror.New(pgerror.CodeUndefinedObject, "type with OID %d is not supported", oid)
		}
		ps.ParamTypes = append(ps.ParamTypes, t)
	}
	if len(tree.Stmts) == 1 {
		ps.stmt = tree.Stmts[0].Stmt
		if err := s.describe(ctx, ps); err != nil {
			return nil, err
		}
	}
	s.prepared[name] = ps
	return ps, nil
}

// describe plans a row statement to learn its parameter and result types.
func (s *Session) describe(ctx context.Context, ps *Prepared) error {
	switch ps.stmt.Node.(type) {
	case *pg.Node_SelectStmt, *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt:
	case *pg.Node_VariableShowStmt:
		name := ps.stmt.GetVariableShowStmt().Name
		ps.Columns = []Column{{Name: name, Type: types.Text}}
		return nil
	case *pg.Node_ExplainStmt:
	default:
		return nil
	}
	return s.withReadTxn(ctx, func() error {
		stmt := ps.stmt
		if ex := stmt.GetExplainStmt(); ex != nil {
			stmt = ex.Query
		}
		p, b, err := s.plan(ctx, stmt, ps.ParamTypes)
		if err != nil {
			return err
		}
		for i, t := range b.Params {
			if t.OID == types.OIDUnknown {
				return pgerror.New(pgerror.CodeIndeterminateDatatype, "could not determine data type of parameter $%d", i+1)
			}
		}
		ps.ParamTypes = b.Params
		ps.Columns = columnsOf(p)
		if stmt != ps.stmt {
			ps.Columns = explainColumns
		}
		return nil
	})
}

// withReadTxn runs fn with s.txn set: the open transaction, or a
// read-only one for just this call.
func (s *Session) withReadTxn(ctx context.Context, fn func() error) error {
	if s.txn != nil {
		return fn()
	}
	txn, err := s.e.KV.Begin(ctx, s.txnOptions(true))
	if err != nil {
		return err
	}
	s.txn = txn
	defer func() {
		txn.Rollback()
		s.txn = nil
	}()
	return fn()
}

// Statement returns a prepared statement.
func (s *Session) Statement(name string) (*Prepared, error) {
	ps, ok := s.prepared[name]
	if !ok {
		return nil, pgerror.New(pgerror.CodeInvalidSQLStatementName, "prepared statement %q does not exist", name)
	}
	return ps, nil
}

// CloseStatement forgets a prepared statement (closing a missing one is
// not an error).
func (s *Session) CloseStatement(name string) { delete(s.prepared, name) }

// ClosePortal forgets a portal.
func (s *Session) ClosePortal(name string) { delete(s.portals, name) }

// Bind creates portal from statement with parameter values in the given
// formats (0 text, 1 binary; one code for all, or one per parameter).
func (s *Session) Bind(ctx context.Context, portal, stmt string, formats []int16, params [][]byte, resultFormats []int16) (*Portal, error) {
	if s.mode == txnFailed {
		return nil, pgerror.New(pgerror.CodeInFailedSQLTransaction, "current transaction is aborted, commands ignored until end of transaction block")
	}
	ps, err := s.Statement(stmt)
	if err != nil {
		return nil, err
	}
	if _, exists := s.portals[portal]; exists && portal != "" {
		return nil, pgerror.New("42P03", "portal %q already exists", portal)
	}
	if len(params) != len(ps.ParamTypes) {
		return nil, pgerror.New(pgerror.CodeProtocolViolation, "bind message supplies %d parameters, but prepared statement %q requires %d", len(params), stmt, len(ps.ParamTypes))
	}
	if len(formats) > 1 && len(formats) != len(params) {
		return nil, pgerror.New(pgerror.CodeProtocolViolation, "bind message has %d parameter formats but %d parameters", len(formats), len(params))
	}
	vals := make([]value.Value, len(params))
	for i, raw := range params {
		if raw == nil {
			vals[i] = value.Null{}
			continue
		}
		format := int16(0)
		if len(formats) == 1 {
			format = formats[0]
		} else if len(formats) > 1 {
			format = formats[i]
		}
		t := ps.ParamTypes[i]
		if t.OID == types.OIDUnknown {
			t = types.Text
		}
		var v value.Value
		switch format {
		case 0:
			v, err = types.ParseText(t, string(raw))
		case 1:
			v, err = types.ParseBinary(t, raw)
		default:
			err = pgerror.New(pgerror.CodeProtocolViolation, "unsupported format code: %d", format)
		}
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	if len(resultFormats) > 1 && len(resultFormats) != len(ps.Columns) {
		return nil, pgerror.New(pgerror.CodeProtocolViolation, "bind message has %d result formats but query has %d columns", len(resultFormats), len(ps.Columns))
	}
	p := &Portal{stmt: ps, params: vals, Formats: resultFormats}
	s.portals[portal] = p
	return p, nil
}

// Portal returns a bound portal.
func (s *Session) Portal(name string) (*Portal, error) {
	p, ok := s.portals[name]
	if !ok {
		return nil, pgerror.New(pgerror.CodeInvalidCursorName, "portal %q does not exist", name)
	}
	return p, nil
}

// Execute runs (or resumes) a portal, sending at most maxRows rows (0: all).
// suspended is true when rows remain for a later Execute.
func (s *Session) Execute(ctx context.Context, name string, maxRows int, w ResultWriter) (suspended bool, err error) {
	p, err := s.Portal(name)
	if err != nil {
		return false, err
	}
	if p.stmt.stmt == nil {
		return false, errEmptyQuery
	}
	if !p.started {
		p.started = true
		if s.mode == txnNone {
			if err := s.begin(ctx); err != nil {
				return false, err
			}
			s.mode = txnImplicit
		}
		if maxRows <= 0 {
			// All rows at once: stream them as the plan produces them, so
			// a result of any size needs no memory to hold it.
			sw := &countingWriter{ResultWriter: w}
			if err := s.execute(ctx, p.stmt.stmt, p.stmt.ParamTypes, p.params, sw, 0, p); err != nil {
				s.statementFails(ctx)
				return false, err
			}
			p.finished, p.tag = true, sw.tag
			return false, nil
		}
		col := &collectWriter{}
		if err := s.execute(ctx, p.stmt.stmt, p.stmt.ParamTypes, p.params, col, 0, p); err != nil {
			s.statementFails(ctx)
			return false, err
		}
		for _, n := range col.notices {
			if err := w.Notice(n[0], n[1], n[2]); err != nil {
				return false, err
			}
		}
		for _, ps := range col.params {
			if err := w.ParameterStatus(ps[0], ps[1]); err != nil {
				return false, err
			}
		}
		p.pending, p.tag = col.rows, col.tag
	}
	if p.finished {
		return false, w.Complete(p.tag)
	}
	if err := w.Columns(p.stmt.Columns); err != nil {
		return false, err
	}
	n := len(p.pending)
	if maxRows > 0 && maxRows < n {
		n = maxRows
	}
	for _, row := range p.pending[:n] {
		if err := w.Row(row); err != nil {
			return false, err
		}
	}
	p.pending = p.pending[n:]
	if len(p.pending) > 0 {
		return true, nil
	}
	p.finished = true
	return false, w.Complete(p.tag)
}

// Sync ends an extended-protocol batch: an implicit transaction commits
// (or, after an error, was already rolled back). The unnamed portal ends.
func (s *Session) Sync(ctx context.Context) error {
	delete(s.portals, "")
	if s.mode == txnImplicit {
		return s.endTxn(ctx, true)
	}
	return nil
}

// collectWriter keeps a statement's results for a portal to hand out.
type collectWriter struct {
	rows    [][]value.Value
	tag     string
	notices [][3]string
	params  [][2]string
}

func (c *collectWriter) Columns([]Column) error { return nil }
func (c *collectWriter) Row(row []value.Value) error {
	c.rows = append(c.rows, row)
	return nil
}
func (c *collectWriter) Complete(tag string) error { c.tag = tag; return nil }
func (c *collectWriter) Notice(sev, code, msg string) error {
	c.notices = append(c.notices, [3]string{sev, code, msg})
	return nil
}
func (c *collectWriter) ParameterStatus(name, value string) error {
	c.params = append(c.params, [2]string{name, value})
	return nil
}
