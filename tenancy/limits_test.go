package tenancy

import "testing"

// TestRefreshLimits: a refresh reloads a live tenant's limits from the
// store (another node may have set them), but one that read the store
// before this node set newer limits does not overwrite them.
func TestRefreshLimits(t *testing.T) {
	kv, m, _, l := liveTenant(t)
	// Set in the store only, as another node would.
	other := NewManager(kv, ManagerConfig{})
	defer other.Close()
	if _, err := other.SetLimit(ctx, "acme", "max_qps", 7); err != nil {
		t.Fatal(err)
	}
	if got := l.Limits().MaxQPS; got == 7 {
		t.Fatal("the limit reached the live tenant without a refresh")
	}
	if err := m.refreshLimits(ctx); err != nil {
		t.Fatal(err)
	}
	if got := l.Limits().MaxQPS; got != 7 {
		t.Fatalf("after a refresh max_qps = %d, want 7", got)
	}
	// A refresh that read max_qps = 7 before this node set 9 keeps 9.
	l.limitsMu.Lock()
	gen := l.limitsGen
	l.limitsMu.Unlock()
	stale := l.Limits()
	if _, err := m.SetLimit(ctx, "acme", "max_qps", 9); err != nil {
		t.Fatal(err)
	}
	l.setLimits(stale, gen)
	if got := l.Limits().MaxQPS; got != 9 {
		t.Fatalf("a stale refresh overwrote max_qps: %d, want 9", got)
	}
}
