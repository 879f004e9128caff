package pgwire

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgproto3/v2"

	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/session"
)

// The fuzz targets feed arbitrary client bytes to a connection and check
// only that the server neither panics nor hangs: every input ends in a
// closed connection or a clean end of input.

func encode(msgs ...pgproto3.FrontendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

// runConn serves input on one side of a pipe and drains the other.
func runConn(t *testing.T, s *Server, sess *session.Session, input []byte, afterStartup bool) {
	client, srv := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if afterStartup {
			c := &conn{srv: s, sess: sess}
			c.reset(srv)
			_ = c.serve()
			srv.Close()
			return
		}
		s.handle(srv)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = client.Write(input)
	client.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection did not end on input %q", input)
	}
}

type refuseAll struct{}

func (refuseAll) Verifier(context.Context, string, string) (string, bool, error) {
	return "", false, nil
}
func (refuseAll) Connect(context.Context, string, string, map[string]string, func()) (*session.Session, error) {
	panic("unreachable: authentication always fails")
}

func FuzzStartup(f *testing.F) {
	f.Add(encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "u", "database": "d"}}))
	f.Add(encode(&pgproto3.SSLRequest{}))
	f.Add(encode(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: 2}))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<31))
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	s := NewServer(Config{MaxMessageBytes: 1 << 16}, refuseAll{})
	f.Fuzz(func(t *testing.T, input []byte) {
		runConn(t, s, nil, input, false)
	})
}

func FuzzMessages(f *testing.F) {
	store, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 8 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	engine := session.NewEngine(store, time.Now)
	s := NewServer(Config{MaxMessageBytes: 1 << 16}, refuseAll{})
	f.Add(encode(&pgproto3.Query{String: "CREATE TABLE IF NOT EXISTS f (a int PRIMARY KEY, b text); INSERT INTO f VALUES (1, 'x') ON CONFLICT DO NOTHING; SELECT * FROM f"}))
	f.Add(encode(
		&pgproto3.Parse{Name: "s", Query: "SELECT $1::int + 1"},
		&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("41")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{MaxRows: 1},
		&pgproto3.Sync{},
	))
	f.Add(encode(&pgproto3.Bind{PreparedStatement: "nope"}, &pgproto3.Sync{}, &pgproto3.Query{String: "BEGIN; SELECT 1/0; SELECT 1"}))
	f.Add([]byte{'Q', 0, 0, 0, 5, 0})
	f.Add([]byte{'P', 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, input []byte) {
		sess := engine.New(keys.SystemTenantID, "system", &catalog.Role{Name: "admin", Superuser: true}, nil, nil)
		defer sess.Close()
		runConn(t, s, sess, input, true)
	})
}
