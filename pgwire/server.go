// Package pgwire serves the PostgreSQL frontend/backend protocol (v3) over
// TCP with github.com/jackc/pgproto3/v2: startup (SSLRequest with optional
// TLS, GSSENCRequest refused), SCRAM-SHA-256 authentication, simple and
// extended query, cancel requests, ReadyForQuery transaction status. It
// turns bytes into calls on a sql/session.Session and results into bytes;
// it knows nothing of storage.
//
// Every message length is checked against Config.MaxMessageBytes before
// anything is allocated for it; an oversized or malformed message gets an
// error and the connection is closed, and the server carries on. Writes are
// buffered and flushed at ReadyForQuery and Flush.
package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaledb/shaledb/sql/session"
)

// Connector is what the server needs from the node: authentication data
// and sessions.
type Connector interface {
	// Verifier returns the SCRAM-SHA-256 verifier of user in database. An
	// unknown database is an error with SQLSTATE 3D000; an unknown user is
	// found == false (and fails authentication like a wrong password).
	Verifier(ctx context.Context, database, user string) (verifier string, found bool, err error)
	// Connect starts the session of an authenticated user. terminate
	// ends the connection from another goroutine (with 57P01, as
	// pg_terminate_backend does); the node calls it when the session's
	// tenant is dropped.
	Connect(ctx context.Context, database, user string, params map[string]string, terminate func()) (*session.Session, error)
}

// Config configures a Server.
type Config struct {
	// TLS, if set, is offered to clients that send SSLRequest.
	TLS *tls.Config
	// MaxMessageBytes bounds one protocol message (and so the memory one
	// message can make a connection allocate). Default 16 MiB.
	MaxMessageBytes int
	// MaxConnections bounds concurrent connections; past it a new one
	// gets 53300. Default 1000.
	MaxConnections int
	// ShutdownGrace is how long Shutdown lets running statements finish
	// before cancelling them. Default 10s.
	ShutdownGrace time.Duration
	// Logger receives connection-level errors. Default: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 16 << 20
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 1000
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server accepts connections and runs one session per connection.
type Server struct {
	cfg       Config
	connector Connector
	// mockSecret salts the mock SCRAM exchange for unknown users.
	mockSecret []byte

	mu       sync.Mutex
	conns    map[uint32]*conn // by backend process id
	closing  atomic.Bool
	wg       sync.WaitGroup
	listener net.Listener
}

// NewServer returns a server that gets sessions from connector.
func NewServer(cfg Config, connector Connector) *Server {
	cfg.ensureDefaults()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &Server{cfg: cfg, connector: connector, mockSecret: secret, conns: map[uint32]*conn{}}
}

// Serve accepts connections on ln until Shutdown; it returns nil after a
// shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		// Shutdown came first: it found no listener to close.
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listener = ln
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return fmt.Errorf("pgwire: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

// register gives a connection its process id and secret key; it fails
// when the server is full.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.cfg.MaxConnections {
		return false
	}
	// Process ids are random, not sequential: one tenant learns nothing
	// of how many connections others open, nor which ids they hold.
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if _, taken := s.conns[pid]; !taken && pid >= 1000 {
			c.pid = pid
			break
		}
	}
	c.secret = binary.BigEndian.Uint32(b[4:])
	s.conns[c.pid] = c
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.pid)
	s.mu.Unlock()
}

// cancel handles a CancelRequest: the statement running on the connection
// with that process id is cancelled if the secret matches. Nothing is
// answered either way, as in PostgreSQL.
func (s *Server) cancel(pid, secret uint32) {
	s.mu.Lock()
	c := s.conns[pid]
	s.mu.Unlock()
	if c != nil && c.secret == secret {
		c.cancelStatement()
	}
}

// Shutdown stops accepting, lets running statements finish for up to the
// grace period (or until ctx ends), then cancels what still runs and closes
// every connection.
func (s *Server) Shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.mu.Lock()
	if s.listener != nil {
		_ = s.listener.Close()
	}
	for _, c := range s.conns {
		c.wakeIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	for _, c := range s.conns {
		c.cancelStatement()
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	<-done
}
