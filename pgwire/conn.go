package pgwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgproto3/v2"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/session"
	"github.com/shaledb/shaledb/tenancy/scram"
)

// boundedReader refuses any chunk longer than max before it is read or
// allocated: pgproto3 would allocate whatever length a header claims.
type boundedReader struct {
	cr  pgproto3.ChunkReader
	max int
}

var errTooLarge = errors.New("message too large")

func (b *boundedReader) Next(n int) ([]byte, error) {
	if n > b.max {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", errTooLarge, n, b.max)
	}
	return b.cr.Next(n)
}

// conn is one client connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	w      *bufio.Writer
	be     *pgproto3.Backend
	sess   *session.Session
	pid    uint32
	secret uint32
	buf    []byte // encode buffer, reused

	mu         sync.Mutex
	stmtCancel context.CancelFunc
	busy       bool
	terminated atomic.Bool
}

// terminate ends the connection from another goroutine: its statement is
// cancelled, and the session loop sends 57P01 and closes.
func (c *conn) terminate() {
	c.terminated.Store(true)
	c.cancelStatement()
	c.wakeIdle()
}

func (c *conn) cancelStatement() {
	c.mu.Lock()
	if c.stmtCancel != nil {
		c.stmtCancel()
	}
	c.mu.Unlock()
}

// wakeIdle makes a connection waiting for its next message notice a
// shutdown; a busy one notices when its statement ends.
func (c *conn) wakeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.nc.SetReadDeadline(time.Now())
}

func (c *conn) setBusy(cancel context.CancelFunc) {
	c.mu.Lock()
	c.stmtCancel, c.busy = cancel, cancel != nil
	c.mu.Unlock()
}

func (s *Server) handle(nc net.Conn) {
	defer nc.Close()
	defer func() {
		// A bug must cost one connection, never the server.
		if r := recover(); r != nil {
			s.cfg.Logger.Error("connection panicked", "remote", nc.RemoteAddr(), "panic", r)
		}
	}()
	c := &conn{srv: s, nc: nc}
	c.reset(nc)
	if err := c.startup(); err != nil {
		if !isDisconnect(err) {
			s.cfg.Logger.Debug("connection startup failed", "remote", nc.RemoteAddr(), "err", err)
		}
		return
	}
	defer func() {
		c.sess.Close()
		s.unregister(c)
	}()
	if err := c.serve(); err != nil && !isDisconnect(err) && !errors.Is(err, errFatalSent) {
		s.cfg.Logger.Debug("connection ended", "remote", nc.RemoteAddr(), "err", err)
	}
}

func (c *conn) reset(nc net.Conn) {
	c.nc = nc
	c.w = bufio.NewWriterSize(nc, 32<<10)
	c.be = pgproto3.NewBackend(&boundedReader{cr: pgproto3.NewChunkReader(nc), max: c.srv.cfg.MaxMessageBytes}, c.w)
}

func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded)
}

// errFatalSent ends a connection after a FATAL error was sent.
var errFatalSent = errors.New("pgwire: connection closed after a fatal error")

// fatal sends a FATAL error and flushes; it always returns an error, so
// the caller closes the connection.
func (c *conn) fatal(err *pgerror.Error) error {
	err.Severity = "FATAL"
	c.sendError(err)
	if ferr := c.w.Flush(); ferr != nil {
		return ferr
	}
	return fmt.Errorf("%w: %s %s", errFatalSent, err.Code, err.Message)
}

func (c *conn) startup() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		msg, err := c.be.ReceiveStartupMessage()
		if err != nil {
			if isDisconnect(err) {
				return err
			}
			return c.fatal(pgerror.New(pgerror.CodeProtocolViolation, "invalid startup packet: %v", err))
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if c.srv.cfg.TLS == nil {
				if _, err := c.nc.Write([]byte{'N'}); err != nil {
					return err
				}
				continue
			}
			if _, err := c.nc.Write([]byte{'S'}); err != nil {
				return err
			}
			tc := tls.Server(c.nc, c.srv.cfg.TLS)
			if err := tc.Handshake(); err != nil {
				return fmt.Errorf("tls handshake: %w", err)
			}
			c.reset(tc)
		case *pgproto3.GSSEncRequest:
			if _, err := c.nc.Write([]byte{'N'}); err != nil {
				return err
			}
		case *pgproto3.CancelRequest:
			c.srv.cancel(m.ProcessID, m.SecretKey)
			return io.EOF
		case *pgproto3.StartupMessage:
			return c.authenticate(m)
		}
	}
}

func (c *conn) authenticate(m *pgproto3.StartupMessage) error {
	if c.srv.closing.Load() {
		return c.fatal(pgerror.New(pgerror.CodeAdminShutdown, "the database system is shutting down"))
	}
	params := map[string]string{}
	for k, v := range m.Parameters {
		params[k] = v
	}
	user := params["user"]
	if user == "" {
		return c.fatal(pgerror.New(pgerror.CodeInvalidAuthorization, "no PostgreSQL user name specified in startup packet"))
	}
	database := params["database"]
	if database == "" {
		database = user
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	verifier, found, err := c.srv.connector.Verifier(ctx, database, user)
	if err != nil {
		return c.fatal(pgerror.Classify(err))
	}
	var v scram.Verifier
	mock := !found
	if found {
		if v, err = scram.ParseVerifier(verifier); err != nil {
			mock = true
		}
	}
	if mock {
		v = scram.MockVerifier(user, c.srv.mockSecret)
	}
	authFailed := func() error {
		return c.fatal(pgerror.New(pgerror.CodeInvalidPassword, "password authentication failed for user %q", user))
	}
	ex := scram.NewExchange(v, mock)
	c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scram.Mechanism}})
	if err := c.w.Flush(); err != nil {
		return err
	}
	if err := c.be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return err
	}
	msg, err := c.receive()
	if err != nil {
		return err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != scram.Mechanism {
		return c.fatal(pgerror.New(pgerror.CodeProtocolViolation, "expected SASL initial response with mechanism %s", scram.Mechanism))
	}
	serverFirst, err := ex.First(string(init.Data))
	if err != nil {
		return authFailed()
	}
	c.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := c.w.Flush(); err != nil {
		return err
	}
	if err := c.be.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return err
	}
	if msg, err = c.receive(); err != nil {
		return err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return c.fatal(pgerror.New(pgerror.CodeProtocolViolation, "expected SASL response"))
	}
	serverFinal, err := ex.Final(string(resp.Data))
	if err != nil {
		return authFailed()
	}
	c.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(serverFinal)})
	c.send(&pgproto3.AuthenticationOk{})
	sess, err := c.srv.connector.Connect(ctx, database, user, params, c.terminate)
	if err != nil {
		return c.fatal(pgerror.Classify(err))
	}
	c.sess = sess
	if !c.srv.register(c) {
		c.sess.Close()
		return c.fatal(pgerror.New(pgerror.CodeTooManyConnections, "sorry, too many clients already"))
	}
	for _, kv := range sess.ReportedSettings() {
		c.send(&pgproto3.ParameterStatus{Name: kv[0], Value: kv[1]})
	}
	c.send(&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.secret})
	c.send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	_ = c.nc.SetReadDeadline(time.Time{})
	return c.w.Flush()
}

// send encodes msg into the write buffer.
func (c *conn) send(msg pgproto3.BackendMessage) {
	c.buf, _ = msg.Encode(c.buf[:0])
	_, _ = c.w.Write(c.buf)
}

func (c *conn) sendError(e *pgerror.Error) {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	c.send(&pgproto3.ErrorResponse{
		Severity: sev, SeverityUnlocalized: sev, Code: e.Code, Message: e.Message,
		Detail: e.Detail, Hint: e.Hint, Position: int32(e.Position),
	})
}

// receive reads one message. pgproto3's decoders can panic on hostile
// input (a negative length inside Bind); that is a malformed message, not a
// crash.
func (c *conn) receive() (msg pgproto3.FrontendMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed message: %v", r)
		}
	}()
	return c.be.Receive()
}

// serve is the session loop: one message at a time, a type switch, as
// pgproto3's examples do.
func (c *conn) serve() error {
	// ignoreTillSync is set after an error in the extended protocol:
	// PostgreSQL discards messages until the next Sync.
	ignoreTillSync := false
	for {
		if c.terminated.Load() || (c.srv.closing.Load() && !c.busy) {
			return c.fatal(pgerror.New(pgerror.CodeAdminShutdown, "terminating connection due to administrator command"))
		}
		msg, err := c.receive()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && (c.srv.closing.Load() || c.terminated.Load()) {
				return c.fatal(pgerror.New(pgerror.CodeAdminShutdown, "terminating connection due to administrator command"))
			}
			if isDisconnect(err) {
				return err
			}
			return c.fatal(pgerror.New(pgerror.CodeProtocolViolation, "invalid message: %v", err))
		}
		if ignoreTillSync {
			if _, ok := msg.(*pgproto3.Sync); !ok {
				if _, ok := msg.(*pgproto3.Terminate); !ok {
					continue
				}
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			c.simpleQuery(m.String)
		case *pgproto3.Parse:
			ignoreTillSync = !c.ok(c.parse(m))
		case *pgproto3.Bind:
			ignoreTillSync = !c.ok(c.bind(m))
		case *pgproto3.Describe:
			ignoreTillSync = !c.ok(c.describe(m))
		case *pgproto3.Execute:
			ignoreTillSync = !c.ok(c.execute(m))
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				c.sess.CloseStatement(m.Name)
			} else {
				c.sess.ClosePortal(m.Name)
			}
			c.send(&pgproto3.CloseComplete{})
		case *pgproto3.Sync:
			ignoreTillSync = false
			if err := c.sess.Sync(context.Background()); err != nil {
				c.sendError(pgerror.Classify(err))
			}
			c.send(&pgproto3.ReadyForQuery{TxStatus: c.sess.TxnStatus()})
			if err := c.w.Flush(); err != nil {
				return err
			}
		case *pgproto3.Flush:
			if err := c.w.Flush(); err != nil {
				return err
			}
		case *pgproto3.Terminate:
			return nil
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Outside COPY these are ignored, as PostgreSQL does.
		case *pgproto3.FunctionCall:
			c.sendError(pgerror.Unsupported("the fast-path function call interface"))
			c.send(&pgproto3.ReadyForQuery{TxStatus: c.sess.TxnStatus()})
			if err := c.w.Flush(); err != nil {
				return err
			}
		default:
			return c.fatal(pgerror.New(pgerror.CodeProtocolViolation, "unexpected message %T", msg))
		}
	}
}

// ok sends err, if any, and reports whether there was none.
func (c *conn) ok(err error) bool {
	if err == nil {
		return true
	}
	c.sendError(pgerror.Classify(err))
	return false
}

// statementContext returns a context the connection's CancelRequest can
// cancel, and marks the connection busy until done is called.
func (c *conn) statementContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	c.setBusy(cancel)
	return ctx, func() {
		c.setBusy(nil)
		cancel()
	}
}

func (c *conn) simpleQuery(query string) {
	ctx, done := c.statementContext()
	rw := &resultWriter{c: c, describe: true}
	err := c.sess.Simple(ctx, query, rw)
	done()
	switch {
	case session.IsEmptyQuery(err):
		c.send(&pgproto3.EmptyQueryResponse{})
	case err != nil:
		c.sendError(pgerror.Classify(err))
	}
	c.send(&pgproto3.ReadyForQuery{TxStatus: c.sess.TxnStatus()})
	_ = c.w.Flush()
}

func (c *conn) parse(m *pgproto3.Parse) error {
	ctx, done := c.statementContext()
	defer done()
	if _, err := c.sess.Prepare(ctx, m.Name, m.Query, m.ParameterOIDs); err != nil {
		return err
	}
	c.send(&pgproto3.ParseComplete{})
	return nil
}

func (c *conn) bind(m *pgproto3.Bind) error {
	ctx, done := c.statementContext()
	defer done()
	// Copy what the portal keeps: pgproto3 reuses the message's buffers.
	resultFormats := append([]int16(nil), m.ResultFormatCodes...)
	if _, err := c.sess.Bind(ctx, m.DestinationPortal, m.PreparedStatement, m.ParameterFormatCodes, m.Parameters, resultFormats); err != nil {
		return err
	}
	c.send(&pgproto3.BindComplete{})
	return nil
}

func (c *conn) describe(m *pgproto3.Describe) error {
	switch m.ObjectType {
	case 'S':
		ps, err := c.sess.Statement(m.Name)
		if err != nil {
			return err
		}
		oids := make([]uint32, len(ps.ParamTypes))
		for i, t := range ps.ParamTypes {
			oids[i] = t.OID
		}
		c.send(&pgproto3.ParameterDescription{ParameterOIDs: oids})
		c.sendRowDescription(ps.Columns, nil)
	case 'P':
		p, err := c.sess.Portal(m.Name)
		if err != nil {
			return err
		}
		c.sendRowDescription(p.Stmt().Columns, p.Formats)
	default:
		return pgerror.New(pgerror.CodeProtocolViolation, "invalid DESCRIBE message subtype %d", m.ObjectType)
	}
	return nil
}

func (c *conn) execute(m *pgproto3.Execute) error {
	p, err := c.sess.Portal(m.Portal)
	if err != nil {
		return err
	}
	ctx, done := c.statementContext()
	defer done()
	rw := &resultWriter{c: c, formats: p.Formats}
	suspended, err := c.sess.Execute(ctx, m.Portal, int(m.MaxRows), rw)
	if session.IsEmptyQuery(err) {
		c.send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	if err != nil {
		return err
	}
	if suspended {
		c.send(&pgproto3.PortalSuspended{})
	}
	return nil
}
