package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"reflect"
	"sync"
	"time"

	etcdraft "go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// A peer connection opens with one byte saying what it carries.
const (
	connRaft byte = 'R' // a one-way stream of raft messages, in order
	connRPC  byte = 'C' // net/rpc requests to the node's Peer service
)

// maxFrame bounds one raft message on the wire.
const maxFrame = 256 << 20

// transport carries raft messages and requests between nodes. Raft
// messages go over one stream per peer, in order, and are dropped when the
// peer is unreachable (raft retransmits); requests use net/rpc over a
// connection of their own.
type transport struct {
	n      *Node
	ln     net.Listener
	server *rpc.Server

	mu    sync.Mutex
	peers map[uint64]*peer
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	stop  chan struct{}
}

func newTransport(n *Node, ln net.Listener) (*transport, error) {
	t := &transport{n: n, ln: ln, server: rpc.NewServer(), peers: make(map[uint64]*peer),
		conns: make(map[net.Conn]struct{}), stop: make(chan struct{})}
	if err := t.server.RegisterName("Peer", &peerService{n: n}); err != nil {
		return nil, fmt.Errorf("raft: register peer service: %w", err)
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		select {
		case <-t.stop:
			t.mu.Unlock()
			c.Close()
			return
		default:
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			defer func() {
				t.mu.Lock()
				delete(t.conns, c)
				t.mu.Unlock()
				c.Close()
			}()
			t.serve(c)
		}()
	}
}

func (t *transport) serve(c net.Conn) {
	var kind [1]byte
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		return
	}
	switch kind[0] {
	case connRPC:
		t.server.ServeConn(c)
	case connRaft:
		r := bufio.NewReaderSize(c, 64<<10)
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			size := binary.BigEndian.Uint32(hdr[:])
			if size > maxFrame {
				return
			}
			buf := make([]byte, size)
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			var m raftEnvelope
			if err := m.unmarshal(buf); err != nil {
				return
			}
			t.n.step(m.shard, m.msg)
		}
	}
}

// close stops accepting, closes every connection and waits for handlers.
func (t *transport) close() {
	t.mu.Lock()
	close(t.stop)
	for c := range t.conns {
		c.Close()
	}
	peers := t.peers
	t.peers = nil
	t.mu.Unlock()
	t.ln.Close()
	for _, p := range peers {
		p.close()
	}
	t.wg.Wait()
}

// raftEnvelope is a raft message addressed to one shard's group.
type raftEnvelope struct {
	shard uint64
	msg   raftpb.Message
}

func (e *raftEnvelope) marshal() ([]byte, error) {
	body, err := e.msg.Marshal()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4, 4+8+len(body))
	binary.BigEndian.PutUint32(b, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint64(b, e.shard)
	return append(b, body...), nil
}

func (e *raftEnvelope) unmarshal(b []byte) error {
	if len(b) < 8 {
		return errors.New("raft: short message frame")
	}
	e.shard = binary.BigEndian.Uint64(b)
	return e.msg.Unmarshal(b[8:])
}

// peerFor returns the connection state for node id, creating it.
func (t *transport) peerFor(id uint64) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers == nil {
		return nil, errNodeClosed
	}
	p := t.peers[id]
	if p == nil {
		p = &peer{id: id, t: t, queue: make(chan raftEnvelope, 4096), done: make(chan struct{})}
		t.peers[id] = p
		go p.sendLoop()
	}
	return p, nil
}

// send queues raft messages for their destinations, dropping what cannot
// be queued: raft treats the network as lossy.
func (t *transport) send(shard uint64, msgs []raftpb.Message) {
	for _, m := range msgs {
		p, err := t.peerFor(m.To)
		if err != nil {
			return
		}
		// Marshalled by the peer's sender, off the raft loop.
		select {
		case p.queue <- raftEnvelope{shard: shard, msg: m}:
			if m.Type == raftpb.MsgSnap {
				// The message carries only the snapshot's metadata (the
				// follower fetches the data): sent is done. Raft then
				// probes; lost, the probe asks for a snapshot again.
				t.n.reportSnapshot(shard, m.To, etcdraft.SnapshotFinish)
			}
		default:
			t.n.reportUnreachable(shard, m.To)
			if m.Type == raftpb.MsgSnap {
				t.n.reportSnapshot(shard, m.To, etcdraft.SnapshotFailure)
			}
		}
	}
}

// peer is the outgoing side of the connections to one node.
type peer struct {
	id    uint64
	t     *transport
	queue chan raftEnvelope
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	rpc *rpc.Client
}

func (p *peer) close() {
	p.once.Do(func() { close(p.done) })
	p.mu.Lock()
	if p.rpc != nil {
		p.rpc.Close()
		p.rpc = nil
	}
	p.mu.Unlock()
}

func (p *peer) dial(kind byte) (net.Conn, error) {
	addr, err := p.t.n.peerAddr(p.id)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, fmt.Errorf("raft: dial node %d at %s: %w", p.id, addr, err)
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft: dial node %d: %w", p.id, err)
	}
	return c, nil
}

// sendLoop writes queued raft messages to the peer, reconnecting after a
// failure; frames queued while the peer is unreachable are dropped.
func (p *peer) sendLoop() {
	var c net.Conn
	var w *bufio.Writer
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		var env raftEnvelope
		select {
		case <-p.done:
			return
		case env = <-p.queue:
		}
		if c == nil {
			var err error
			if c, err = p.dial(connRaft); err != nil {
				c = nil
				p.t.n.forgetAddr(p.id) // it may have restarted elsewhere
				p.drain()
				select {
				case <-p.done:
					return
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			w = bufio.NewWriterSize(c, 64<<10)
		}
		err := writeEnvelope(w, &env)
		// Write out everything queued behind it before flushing once.
		for n := len(p.queue); err == nil && n > 0; n-- {
			env = <-p.queue
			err = writeEnvelope(w, &env)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			c.Close()
			c = nil
		}
	}
}

// writeEnvelope writes one framed message; a message that cannot be
// marshalled is dropped (raft retransmits).
func writeEnvelope(w *bufio.Writer, env *raftEnvelope) error {
	frame, err := env.marshal()
	if err != nil {
		return nil
	}
	_, err = w.Write(frame)
	return err
}

// drain drops every queued message.
func (p *peer) drain() {
	for {
		select {
		case <-p.queue:
		default:
			return
		}
	}
}

// call runs one request on the peer's RPC connection, bounded by ctx. A
// failed connection is dropped and redialled by the next call. sent
// reports whether the request may have reached the peer.
func (p *peer) call(ctx context.Context, method string, args, reply any) (sent bool, err error) {
	p.mu.Lock()
	client := p.rpc
	if client == nil {
		select {
		case <-p.done:
			p.mu.Unlock()
			return false, errNodeClosed
		default:
		}
		c, err := p.dial(connRPC)
		if err != nil {
			p.mu.Unlock()
			return false, err
		}
		client = rpc.NewClient(c)
		p.rpc = client
	}
	p.mu.Unlock()
	// gob leaves fields absent from the stream (zero values) untouched:
	// start from a zero reply.
	reflect.ValueOf(reply).Elem().SetZero()
	call := client.Go("Peer."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	if call.Error != nil {
		var serverErr rpc.ServerError
		if !errors.As(call.Error, &serverErr) {
			p.mu.Lock()
			if p.rpc == client {
				p.rpc.Close()
				p.rpc = nil
			}
			p.mu.Unlock()
			// rpc.ErrShutdown before the request was written means it
			// was never sent; net/rpc cannot tell, so assume it was.
		}
		return true, fmt.Errorf("raft: %s on node %d: %w", method, p.id, call.Error)
	}
	return true, nil
}
