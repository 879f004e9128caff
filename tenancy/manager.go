package tenancy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// Manager keeps the node's live tenants: those with at least one session.
// A live tenant has its limits, its storage use, its rate limiter and its
// statistics in memory; a tenant without sessions has nothing here (its
// statistics are folded into the node-wide "retired" totals), so idle
// tenants cost no memory. Safe for concurrent use.
type Manager struct {
	kv     kvcluster.KvCluster
	logger *slog.Logger
	// maxWait bounds how long a statement waits for its rate limiter.
	maxWait time.Duration
	// nonce and seq make storage-delta keys unique across restarts.
	nonce uint64
	seq   atomic.Uint64

	mu      sync.Mutex
	live    map[keys.TenantID]*Live
	retired Stats // statistics of tenants no longer live
	// dropping holds tenants being dropped: they admit no session.
	dropping map[keys.TenantID]bool
	// dropMu is held by DropTenant while it drops and by each fold, so a
	// fold never writes into a span being dropped.
	dropMu sync.RWMutex

	// idMu guards the block of tenant ids this node reserved.
	idMu            sync.Mutex
	nextID, idLimit keys.TenantID

	folds chan keys.TenantID
	// life ends when Close is called: the background goroutines stop,
	// and their work in progress is cancelled.
	life   context.Context
	end    context.CancelFunc
	done   chan struct{}
	closed bool
	// refreshed is closed when the limits refresher (if any) has stopped.
	refreshed chan struct{}
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// MaxRateWait bounds how long a statement may wait for its tenant's
	// rate limiter before it fails with 53400. Default 1s.
	MaxRateWait time.Duration
	// Logger receives background errors. Default: discarded.
	Logger *slog.Logger
	// RefreshLimits, when set, reloads the live tenants' limits from the
	// store this often. On a cluster another node may change them; a
	// change through this node applies at once either way (SetLimits).
	RefreshLimits time.Duration
}

// foldThreshold is how many storage deltas a tenant accumulates before
// they are folded into its base record.
const foldThreshold = 256

// NewManager returns a Manager over kv and starts its one background
// goroutine (folding storage deltas); Close stops it.
func NewManager(kv kvcluster.KvCluster, cfg ManagerConfig) *Manager {
	if cfg.MaxRateWait == 0 {
		cfg.MaxRateWait = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	m := &Manager{
		kv: kv, logger: cfg.Logger, maxWait: cfg.MaxRateWait,
		nonce: binary.BigEndian.Uint64(b[:]),
		live:  map[keys.TenantID]*Live{}, dropping: map[keys.TenantID]bool{},
		folds:     make(chan keys.TenantID, 1024),
		done:      make(chan struct{}),
		refreshed: make(chan struct{}),
	}
	m.life, m.end = context.WithCancel(context.Background())
	go m.foldLoop()
	if cfg.RefreshLimits > 0 {
		go m.refreshLoop(cfg.RefreshLimits)
	} else {
		close(m.refreshed)
	}
	return m
}

// refreshLoop reloads the live tenants' limits every period until Close.
func (m *Manager) refreshLoop(period time.Duration) {
	defer close(m.refreshed)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-m.life.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(m.life, period+5*time.Second)
		if err := m.refreshLimits(ctx); err != nil && ctx.Err() == nil {
			m.logger.Warn("refresh tenant limits", "err", err)
		}
		cancel()
	}
}

// refreshLimits reloads every live tenant's limits from the store. A
// tenant whose limits this node changed meanwhile keeps the newer ones.
func (m *Manager) refreshLimits(ctx context.Context) error {
	var lives []*Live
	m.EachLive(func(l *Live) { lives = append(lives, l) })
	if len(lives) == 0 {
		return nil
	}
	gens := make([]uint64, len(lives))
	for i, l := range lives {
		l.limitsMu.Lock()
		gens[i] = l.limitsGen
		l.limitsMu.Unlock()
	}
	return kvcluster.View(ctx, m.kv, func(txn kvcluster.Txn) error {
		for i, l := range lives {
			t, found, err := Get(ctx, txn, l.ID)
			if err != nil {
				return err
			}
			if found {
				l.setLimits(t.Limits, gens[i])
			}
		}
		return nil
	})
}

// setLimits stores lim unless limits were stored since generation gen
// (any generation if gen is ^0), and starts the next generation.
func (l *Live) setLimits(lim Limits, gen uint64) {
	l.limitsMu.Lock()
	defer l.limitsMu.Unlock()
	if gen != ^uint64(0) && gen != l.limitsGen {
		return
	}
	l.limitsGen++
	l.limits.Store(&lim)
}

// Close stops the background goroutine. Live tenants stay usable for
// reading; their deltas are folded at the next start's first use.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	m.end()
	<-m.done
	<-m.refreshed
}

// Live is a tenant with sessions on this node.
type Live struct {
	m     *Manager
	ID    keys.TenantID
	Name  string
	usage []byte // the prefix of its storage accounting records

	ready   chan struct{} // closed when loaded
	loadErr error
	refs    int           // under m.mu
	gone    chan struct{} // closed when the last session released it

	limits atomic.Pointer[Limits]
	// limitsGen counts stores of limits (under limitsMu): a refresh that
	// read the store before a newer store does not overwrite it.
	limitsMu  sync.Mutex
	limitsGen uint64
	storage   atomic.Int64 // bytes, committed and reserved
	unfolded  atomic.Int64 // storage deltas not yet folded
	conns     atomic.Int64

	rate rateLimiter

	sessMu   sync.Mutex
	sessions map[uint64]func() // closers of this node's sessions
	nextSess uint64

	Stats Stats
}

// Acquire makes tenant t live (loading it on first use) for one new
// session, admitting it under max_connections (53300 past it). closer
// ends the session; DropTenant calls it. The returned release must be
// called when the session ends.
func (m *Manager) Acquire(ctx context.Context, t Tenant, closer func()) (*Live, func(), error) {
	m.mu.Lock()
	if m.dropping[t.ID] {
		m.mu.Unlock()
		return nil, nil, pgerror.New(pgerror.CodeInvalidCatalogName, "database %q does not exist", t.Name)
	}
	l := m.live[t.ID]
	first := l == nil
	if first {
		l = &Live{m: m, ID: t.ID, Name: t.Name, usage: usagePrefix(t.ID), ready: make(chan struct{}), gone: make(chan struct{}), sessions: map[uint64]func(){}}
		m.live[t.ID] = l
	}
	l.refs++
	m.mu.Unlock()
	if first {
		l.loadErr = l.load(ctx, t)
		close(l.ready)
	} else {
		select {
		case <-l.ready:
		case <-ctx.Done():
			m.unref(l)
			return nil, nil, ctx.Err()
		}
	}
	if l.loadErr != nil {
		m.unref(l)
		return nil, nil, l.loadErr
	}
	n := l.conns.Add(1)
	if max := l.limits.Load().MaxConnections; max != NoLimit && n > max {
		l.conns.Add(-1)
		l.Stats.Rejected.Add(1)
		m.unref(l)
		return nil, nil, pgerror.New(pgerror.CodeTooManyConnections,
			"too many connections for tenant %q (max_connections = %d)", t.Name, max)
	}
	l.sessMu.Lock()
	id := l.nextSess
	l.nextSess++
	l.sessions[id] = closer
	l.sessMu.Unlock()
	var once sync.Once
	release := func() {
		once.Do(func() {
			l.sessMu.Lock()
			delete(l.sessions, id)
			l.sessMu.Unlock()
			l.conns.Add(-1)
			m.unref(l)
		})
	}
	return l, release, nil
}

func (m *Manager) unref(l *Live) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.refs--
	if l.refs > 0 || m.live[l.ID] != l {
		return
	}
	delete(m.live, l.ID)
	close(l.gone)
	m.retired.add(&l.Stats)
	if l.unfolded.Load() > 0 {
		m.queueFold(l.ID)
	}
}

// queueFold asks the background goroutine to fold a tenant's deltas; a
// full queue drops the request (the next one, or the next load, folds).
func (m *Manager) queueFold(id keys.TenantID) {
	select {
	case m.folds <- id:
	default:
	}
}

func (l *Live) load(ctx context.Context, t Tenant) error {
	lim := t.Limits
	l.limits.Store(&lim)
	var used int64
	err := kvcluster.View(ctx, l.m.kv, func(txn kvcluster.Txn) (err error) {
		used, _, err = readUsage(ctx, txn, t.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("tenancy: load tenant %q: %w", t.Name, err)
	}
	l.storage.Store(used)
	return nil
}

// Limits are the tenant's current limits.
func (l *Live) Limits() Limits { return *l.limits.Load() }

// StorageBytes is the tenant's storage use, including commits in flight.
func (l *Live) StorageBytes() int64 { return l.storage.Load() }

// Connections is the tenant's session count on this node.
func (l *Live) Connections() int64 { return l.conns.Load() }

// Lookup returns the live tenant id, if it is live.
func (m *Manager) Lookup(id keys.TenantID) (*Live, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.live[id]
	if ok {
		select {
		case <-l.ready:
		default:
			return nil, false
		}
		ok = l.loadErr == nil
	}
	return l, ok
}

// SetLimits applies changed limits to a live tenant at once; its next
// statement, connection and write are held to them.
func (m *Manager) SetLimits(id keys.TenantID, lim Limits) {
	if l, ok := m.Lookup(id); ok {
		l.setLimits(lim, ^uint64(0))
	}
}

// Statement records a finished statement (session.Governor).
func (l *Live) Statement(rowsRead, rowsWritten int64, elapsed time.Duration) {
	l.Stats.Statement(rowsRead, rowsWritten, elapsed)
}

// disconnect closes every session of tenant id on this node and waits
// until they have all ended (DropTenant calls it with the tenant marked
// dropping, so no new session can start).
func (m *Manager) disconnect(ctx context.Context, id keys.TenantID) error {
	m.mu.Lock()
	l, ok := m.live[id]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	l.sessMu.Lock()
	closers := make([]func(), 0, len(l.sessions))
	for _, c := range l.sessions {
		closers = append(closers, c)
	}
	l.sessMu.Unlock()
	for _, c := range closers {
		c()
	}
	select {
	case <-l.gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tenancy: waiting for the sessions of tenant %q to end: %w", l.Name, ctx.Err())
	}
}

// EachLive calls fn for every live tenant.
func (m *Manager) EachLive(fn func(*Live)) {
	m.mu.Lock()
	ls := make([]*Live, 0, len(m.live))
	for _, l := range m.live {
		ls = append(ls, l)
	}
	m.mu.Unlock()
	for _, l := range ls {
		select {
		case <-l.ready:
			if l.loadErr == nil {
				fn(l)
			}
		default:
		}
	}
}

// Retired returns the summed statistics of tenants no longer live.
func (m *Manager) Retired() *Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Stats
	s.add(&m.retired)
	return &s
}
