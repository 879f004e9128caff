package raft_test

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// checkHistory checks a history against model with porcupine, failing
// the test with what (such as "linearizable") it is not, and a
// visualization of it in the test's directory.
func checkHistory(t *testing.T, model porcupine.Model, history []porcupine.Operation, what string) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(model, history, time.Minute)
	if res == porcupine.Illegal {
		path := t.TempDir() + "/history.html"
		if err := porcupine.VisualizePath(model, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("the history is not %s", what)
	}
	if res != porcupine.Ok {
		t.Fatalf("porcupine: %s", res)
	}
}

// chaosDuration is how long a test that injects faults runs: 3 s, or
// SHALEDB_CHAOS_DURATION (make chaos).
func chaosDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("SHALEDB_CHAOS_DURATION")
	if v == "" {
		return 3 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("SHALEDB_CHAOS_DURATION: %v", err)
	}
	return d
}

// runClients runs n clients, each calling body over and over with its
// own random source (seeded by seed and its number) until the returned
// function is called, which waits for them to stop.
func runClients(n int, seed uint64, body func(client int, rng *rand.Rand)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for client := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), seed))
			for {
				select {
				case <-done:
					return
				default:
				}
				body(client, rng)
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// restartNodes stops one of the cluster's first nodes at random, lets the
// others carry on, and restarts it, over and over for d, and returns how
// many restarts it made. A node that fails to restart stops the clients
// and fails the test.
func restartNodes(t *testing.T, c *rafttest.Cluster, nodes int, d time.Duration, seed uint64, stopClients func()) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	restarts := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
		i := rng.IntN(nodes)
		c.StopNode(i)
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		if err := c.StartNode(i); err != nil {
			stopClients()
			t.Fatal(err)
		}
		restarts++
	}
	return restarts
}
