// Package session is one client's SQL session: its tenant, user and
// settings, its transaction state, its prepared statements and portals. It
// parses statements (with a cache keyed by the exact text), plans and runs
// them, and reports results through a ResultWriter that the wire protocol
// layer implements. It knows nothing of bytes on the wire.
//
// Transactions follow PostgreSQL's simple-protocol rules: the statements of
// one query string share an implicit transaction unless BEGIN makes it
// explicit; an error in an explicit transaction fails it, and every
// statement until ROLLBACK (or COMMIT, which then rolls back) gets 25P02.
// An implicit block that wrote and lost a write-write race at commit is run
// again (its results were held back until the commit), so autocommit
// statements see no 40001 from contention alone.
package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"
	"go.opentelemetry.io/otel/trace"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Column describes one result column.
type Column struct {
	Name string
	Type types.T
}

// ResultWriter receives a statement's results. Implementations encode
// them; a session calls, per statement, Columns (for row-returning
// statements), Row for each row, then Complete.
type ResultWriter interface {
	Columns(cols []Column) error
	Row(row []value.Value) error
	Complete(tag string) error
	// Notice sends a notice (severity NOTICE or WARNING) to the client.
	Notice(severity, code, message string) error
	// ParameterStatus reports a changed setting the client tracks.
	ParameterStatus(name, value string) error
}

// Engine is what all sessions of a node share.
type Engine struct {
	KV  kvcluster.KvCluster
	Now func() time.Time

	parseMu sync.Mutex
	parsed  map[string]*pg.ParseResult // bounded by parseCacheMax

	seqs  sequences
	descs *catalog.DescriptorCache

	// Admin, if set, serves the shaledb.* functions and views.
	Admin Admin
	// Tracer, if set, gets a span per statement.
	Tracer trace.Tracer
}

// parseCacheMax bounds the parse cache; past it the cache starts over.
const parseCacheMax = 4096

// NewEngine returns an engine over kv.
func NewEngine(kv kvcluster.KvCluster, now func() time.Time) *Engine {
	_, shared := kv.(kvcluster.SharedStore)
	e := &Engine{KV: kv, Now: now, parsed: map[string]*pg.ParseResult{}, descs: catalog.NewDescriptorCache(shared)}
	e.seqs.kv = kv
	e.seqs.cached = map[seqKey]*seqBlock{}
	return e
}

// parse parses query, from the cache when it was seen before. Trees are
// never modified after parsing, so sharing them is safe.
func (e *Engine) parse(query string) (*pg.ParseResult, error) {
	e.parseMu.Lock()
	tree, ok := e.parsed[query]
	e.parseMu.Unlock()
	if ok {
		return tree, nil
	}
	tree, err := pg.Parse(query)
	if err != nil {
		var pe *pgParseError
		if errors.As(err, &pe) {
			return nil, pgerror.New(pgerror.CodeSyntaxError, "%s", pe.Message).WithPosition(pe.Cursorpos)
		}
		return nil, pgerror.New(pgerror.CodeSyntaxError, "%s", err.Error())
	}
	e.parseMu.Lock()
	if len(e.parsed) >= parseCacheMax {
		e.parsed = map[string]*pg.ParseResult{}
	}
	e.parsed[query] = tree
	e.parseMu.Unlock()
	return tree, nil
}

type txnMode int

const (
	txnNone     txnMode = iota
	txnImplicit         // the statements of one query string, or of one extended-protocol batch
	txnExplicit         // BEGIN … COMMIT
	txnFailed           // an explicit transaction after an error
)

// Session is one connection's session. It is used by one goroutine.
type Session struct {
	e        *Engine
	tenant   keys.TenantID
	codec    keys.Codec
	cat      *catalog.Catalog
	user     string
	role     *catalog.Role
	gov      Governor
	database string
	settings map[string]string
	stats    statementStats
	counting countingWriter
	// views memoizes, for one statement, the descriptors the catalog
	// views and functions read (a correlated subquery over pg_attrdef
	// reads them once per outer row).
	views viewCache
	// memSetting is the query memory limit's text memLimit was parsed
	// from.
	memSetting string
	memLimit   int64

	mode     txnMode
	txn      kvcluster.Txn
	txnStart time.Time

	// createdInTxn are the tables the transaction created, which no one
	// else can write yet; jobs the online schema changes to finish once
	// it commits.
	createdInTxn map[keys.TableID]bool
	jobs         []schemaJob

	prepared map[string]*Prepared
	portals  map[string]*Portal
	onClose  []func()
}

// New starts a session of role in tenant (whose database name is
// database), with the startup parameters the client sent, governed by gov
// (nil for none).
func (e *Engine) New(tenant keys.TenantID, database string, role *catalog.Role, params map[string]string, gov Governor) *Session {
	user := role.Name
	s := &Session{
		e: e, tenant: tenant, codec: keys.MakeCodec(tenant), user: user, role: role, gov: gov, database: database,
		settings: defaultSettings(), prepared: map[string]*Prepared{}, portals: map[string]*Portal{},
	}
	s.cat = catalog.New(s.codec).WithCache(e.descs)
	for k, v := range params {
		if _, known := s.settings[strings.ToLower(k)]; known {
			s.settings[strings.ToLower(k)] = v
		}
	}
	s.settings["session_authorization"] = user
	s.settings["is_superuser"] = "off"
	if role.Superuser {
		s.settings["is_superuser"] = "on"
	}
	s.settings["shaledb.database"] = database
	return s
}

// TxnStatus is ReadyForQuery's status byte: 'I' idle, 'T' in a
// transaction block, 'E' in a failed one.
func (s *Session) TxnStatus() byte {
	switch s.mode {
	case txnExplicit:
		return 'T'
	case txnFailed:
		return 'E'
	}
	return 'I'
}

// OnClose makes Close call fn (after rolling back), once.
func (s *Session) OnClose(fn func()) { s.onClose = append(s.onClose, fn) }

// Close ends the session, rolling back an open transaction.
func (s *Session) Close() {
	if s.txn != nil {
		s.txn.Rollback()
		s.e.descs.Ended(s.txn)
		s.txn = nil
	}
	s.mode = txnNone
	for _, fn := range s.onClose {
		fn()
	}
	s.onClose = nil
}

func (s *Session) begin(ctx context.Context) error {
	txn, snap, err := s.e.descs.Begin(func() (kvcluster.Txn, error) {
		txn, err := s.e.KV.Begin(ctx, s.txnOptions(false))
		if err == nil && s.gov != nil {
			txn = s.gov.Wrap(txn)
		}
		return txn, err
	})
	if err != nil {
		return err
	}
	s.cat.Bind(txn, snap)
	s.txn = txn
	s.txnStart = s.e.Now()
	return nil
}

func (s *Session) endTxn(ctx context.Context, commit bool) error {
	txn := s.txn
	s.txn = nil
	s.mode = txnNone
	jobs := s.jobs
	s.jobs = nil
	clear(s.createdInTxn)
	if txn == nil {
		return nil
	}
	if !commit {
		txn.Rollback()
		s.e.descs.Ended(txn)
		return s.dropBuildMarkers(ctx, jobs)
	}
	err := txn.Commit(ctx)
	s.e.descs.Ended(txn)
	if err != nil {
		return errors.Join(err, s.dropBuildMarkers(ctx, jobs))
	}
	if len(jobs) == 0 {
		return nil
	}
	return s.runSchemaJobs(ctx, jobs)
}

// statementFails moves the transaction state after a statement error.
func (s *Session) statementFails(ctx context.Context) {
	switch s.mode {
	case txnImplicit:
		_ = s.endTxn(ctx, false)
	case txnExplicit:
		s.mode = txnFailed
	}
}

// maxImplicitRetries bounds re-running an implicit block that lost a
// write-write race at commit.
const maxImplicitRetries = 10

// Simple runs a simple-protocol query string.
func (s *Session) Simple(ctx context.Context, query string, w ResultWriter) error {
	tree, err := s.e.parse(query)
	if err != nil {
		s.statementFails(ctx)
		return err
	}
	if len(tree.Stmts) == 0 {
		return errEmptyQuery
	}
	// A block with writes holds its results until it commits, so that a
	// lost write-write race can be retried unseen.
	if s.mode == txnNone && writes(tree) {
		for attempt := 1; ; attempt++ {
			buf := &bufferedWriter{}
			err := s.runStatements(ctx, query, tree, buf)
			if err != nil && kvcluster.IsRetryable(err) && attempt < maxImplicitRetries && !buf.sawTxnControl {
				time.Sleep(time.Duration(attempt*attempt) * 100 * time.Microsecond)
				continue
			}
			if ferr := buf.flush(w); ferr != nil {
				return ferr
			}
			return err
		}
	}
	return s.runStatements(ctx, query, tree, w)
}

// writes reports whether a parsed query string has any statement but
// SELECT/SHOW.
func writes(tree *pg.ParseResult) bool {
	for _, st := range tree.Stmts {
		switch st.Stmt.Node.(type) {
		case *pg.Node_SelectStmt, *pg.Node_VariableShowStmt:
		case *pg.Node_CopyStmt:
			// COPY talks to the client as it runs: it cannot be held back
			// and replayed.
			return false
		default:
			return true
		}
	}
	return false
}

func (s *Session) runStatements(ctx context.Context, query string, tree *pg.ParseResult, w ResultWriter) error {
	for _, raw := range tree.Stmts {
		if s.mode == txnNone {
			if err := s.begin(ctx); err != nil {
				return err
			}
			s.mode = txnImplicit
		}
		if err := s.execute(ctx, raw.Stmt, nil, nil, w, 0, nil); err != nil {
			s.statementFails(ctx)
			return err
		}
	}
	if s.mode == txnImplicit {
		if err := s.endTxn(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

var errEmptyQuery = errors.New("empty query")

// IsEmptyQuery reports the error of a query string with no statements.
func IsEmptyQuery(err error) bool { return errors.Is(err, errEmptyQuery) }

// dispatch runs one statement in the current transaction. params are the
// bound parameter values (extended protocol); maxRows and portal support
// Execute's row limit.
func (s *Session) dispatch(ctx context.Context, stmt *pg.Node, paramTypes []types.T, params []value.Value, w ResultWriter, maxRows int, portal *Portal) error {
	if s.mode == txnFailed {
		if t := stmt.GetTransactionStmt(); t == nil || (t.Kind != pg.TransactionStmtKind_TRANS_STMT_ROLLBACK && t.Kind != pg.TransactionStmtKind_TRANS_STMT_COMMIT) {
			return pgerror.New(pgerror.CodeInFailedSQLTransaction, "current transaction is aborted, commands ignored until end of transaction block")
		}
	}
	switch x := stmt.Node.(type) {
	case *pg.Node_TransactionStmt:
		if bw, ok := unwrap(w).(*bufferedWriter); ok {
			bw.sawTxnControl = true
		}
		return s.transaction(ctx, x.TransactionStmt, w)
	case *pg.Node_VariableSetStmt:
		return s.set(x.VariableSetStmt, w)
	case *pg.Node_VariableShowStmt:
		return s.show(x.VariableShowStmt, w)
	case *pg.Node_VacuumStmt:
		if x.VacuumStmt.IsVacuumcmd {
			return w.Complete("VACUUM")
		}
		return w.Complete("ANALYZE")
	case *pg.Node_CreateStmt:
		return s.createTable(ctx, x.CreateStmt, w)
	case *pg.Node_DropStmt:
		return s.drop(ctx, x.DropStmt, w)
	case *pg.Node_TruncateStmt:
		return s.truncate(ctx, x.TruncateStmt, w)
	case *pg.Node_SelectStmt, *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt:
		return s.query(ctx, stmt, paramTypes, params, w, maxRows, portal)
	case *pg.Node_DiscardStmt:
		return w.Complete("DISCARD ALL")
	case *pg.Node_CopyStmt:
		return s.copy(ctx, x.CopyStmt, w)
	case *pg.Node_AlterTableStmt:
		return s.alterTable(ctx, x.AlterTableStmt, w)
	case *pg.Node_CreateRoleStmt:
		return s.createRole(ctx, x.CreateRoleStmt, w)
	case *pg.Node_AlterRoleStmt:
		return s.alterRole(ctx, x.AlterRoleStmt, w)
	case *pg.Node_DropRoleStmt:
		return s.dropRole(ctx, x.DropRoleStmt, w)
	case *pg.Node_GrantStmt:
		return s.grant(ctx, x.GrantStmt, w)
	case *pg.Node_ExplainStmt:
		return s.explain(ctx, x.ExplainStmt, paramTypes, w)
	case *pg.Node_IndexStmt:
		return s.createIndex(ctx, x.IndexStmt, w)
	case *pg.Node_RenameStmt:
		return s.renameStmt(ctx, x.RenameStmt, w)
	}
	return pgerror.Unsupported("statement " + statementName(stmt))
}

// statementName names a statement kind for errors: "CREATE INDEX".
func statementName(stmt *pg.Node) string {
	name := fmt.Sprintf("%T", stmt.Node)
	name = strings.TrimSuffix(strings.TrimPrefix(name, "*pg_query.Node_"), "Stmt")
	return name
}

func (s *Session) transaction(ctx context.Context, t *pg.TransactionStmt, w ResultWriter) error {
	switch t.Kind {
	case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
		if s.mode == txnExplicit {
			if err := w.Notice("WARNING", pgerror.CodeActiveSQLTransaction, "there is already a transaction in progress"); err != nil {
				return err
			}
			return w.Complete("BEGIN")
		}
		if err := transactionOptions(t.Options); err != nil {
			return err
		}
		s.mode = txnExplicit
		if t.Kind == pg.TransactionStmtKind_TRANS_STMT_START {
			return w.Complete("START TRANSACTION")
		}
		return w.Complete("BEGIN")
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT:
		switch s.mode {
		case txnFailed:
			_ = s.endTxn(ctx, false)
			return w.Complete("ROLLBACK")
		case txnImplicit:
			if err := w.Notice("WARNING", pgerror.CodeNoActiveSQLTransaction, "there is no transaction in progress"); err != nil {
				return err
			}
		}
		if err := s.endTxn(ctx, true); err != nil {
			return err
		}
		return w.Complete("COMMIT")
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		if s.mode == txnImplicit {
			if err := w.Notice("WARNING", pgerror.CodeNoActiveSQLTransaction, "there is no transaction in progress"); err != nil {
				return err
			}
		}
		_ = s.endTxn(ctx, false)
		return w.Complete("ROLLBACK")
	}
	return pgerror.Unsupported(strings.ToLower(strings.TrimPrefix(t.Kind.String(), "TRANS_STMT_")))
}

// transactionOptions accepts BEGIN's isolation levels: ShaleDB runs every
// transaction under snapshot isolation, PostgreSQL's REPEATABLE READ, which
// is at least as strong as READ COMMITTED; SERIALIZABLE is refused rather
// than silently weakened.
func transactionOptions(opts []*pg.Node) error {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.Defname != "transaction_isolation" {
			continue
		}
		if c := d.Arg.GetAConst(); c != nil && c.GetSval() != nil && c.GetSval().Sval == "serializable" {
			return pgerror.Unsupported("SERIALIZABLE isolation")
		}
	}
	return nil
}

// table reads a table descriptor in the current transaction.
func (s *Session) table(ctx context.Context) func(string) (*catalog.Table, error) {
	return func(name string) (*catalog.Table, error) {
		if strings.HasPrefix(name, "shaledb.") {
			return s.view(name)
		}
		if strings.HasPrefix(name, "pg_catalog.") {
			return s.catalogView(name)
		}
		if strings.HasPrefix(name, "information_schema.") {
			return s.infoSchemaView(name)
		}
		if strings.HasPrefix(name, "pg_") {
			// pg_catalog is searched first, as in PostgreSQL.
			if v, err := s.catalogView(name); err == nil {
				return v, nil
			}
		}
		return s.cat.MustTable(ctx, s.txn, name)
	}
}
