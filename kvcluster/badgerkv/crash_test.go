package badgerkv_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
)

// The crash test. A child process (this test binary, re-executed) commits
// transactions from several goroutines and prints "ack <txn>" after each
// Commit returns. The parent kills it with SIGKILL at a random moment,
// reopens the store and checks:
//
//   - every acknowledged transaction is there in full;
//   - every transaction that is there at all is there in full (no torn
//     commits), acknowledged or not;
//   - each writer's "last" key, overwritten by every one of its
//     transactions, names a transaction at least as new as its newest
//     acknowledged one.
//
// A transaction t writes keys crash/t/0 … crash/t/n-1 (n varies from 1 to
// 200, and one in 101 writes 30,000 keys, more than one Badger batch holds)
// with value t, and crash/last/<writer> = t.
// CRASH_CYCLES sets the number of kill cycles (default 20; `make crash`
// runs 200).

const (
	crashChildEnv  = "SHALEDB_CRASH_CHILD_DIR"
	crashBaseEnv   = "SHALEDB_CRASH_BASE"
	crashWriters   = 6
	txnsPerWriter  = 1_000_000 // per cycle; the kill comes long before
	crashKeyPrefix = "crash/"
)

// largeTxnKeys makes a transaction too large for one Badger batch (at the
// 8 MiB memtable the test uses), so it is committed in several batches
// behind an intent file: kills land in the middle of such commits too.
const largeTxnKeys = 30_000

func txnSize(txn int) int {
	if txn%101 == 50 {
		return largeTxnKeys
	}
	switch txn % 10 {
	case 0:
		return 200
	case 1, 2:
		return 20
	}
	return 1 + txn%5
}

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashRecovery")
	}
	base, _ := strconv.Atoi(os.Getenv(crashBaseEnv))
	// Every other cycle, the large transactions spill to disk before
	// their commit; in the others they commit from memory.
	memory := int64(0)
	if cycle := base / (crashWriters * txnsPerWriter); cycle%2 == 0 {
		memory = 256 << 10
	}
	s, err := badgerkv.Open(badgerkv.Options{Dir: dir, MemTableBytes: 8 << 20, TxnMemoryBytes: memory})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < crashWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < txnsPerWriter; i++ {
				id := base + w*txnsPerWriter + i
				err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
					val := []byte(strconv.Itoa(id))
					for k := 0; k < txnSize(id); k++ {
						if err := txn.Put(ctx, []byte(fmt.Sprintf("%s%d/%d", crashKeyPrefix, id, k)), val); err != nil {
							return err
						}
					}
					return txn.Put(ctx, []byte(fmt.Sprintf("%slast/%d", crashKeyPrefix, w)), val)
				})
				if err != nil {
					fmt.Println("commit error:", err)
					os.Exit(2)
				}
				outMu.Lock()
				fmt.Fprintf(out, "ack %d\n", id)
				out.Flush()
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; skipped with -short")
	}
	cycles := 20
	if s := os.Getenv("CRASH_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[int]bool{}
	lastAcked := map[int]int{} // writer -> newest acknowledged txn
	totalAcked := 0
	for cycle := 0; cycle < cycles; cycle++ {
		base := (cycle + 1) * crashWriters * txnsPerWriter
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashBaseEnv+"="+strconv.Itoa(base))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it commit for a while: wait for the first ack, then a random
		// further delay, then kill it mid-flight.
		first, ok := <-lines
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("cycle %d: child exited before committing: %s", cycle, stderr.String())
		}
		delay := time.Duration(5+rng.IntN(150)) * time.Millisecond
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var got []string
		got = append(got, first)
		for l := range lines {
			got = append(got, l)
		}
		_ = cmd.Wait()
		cycleAcks := 0
		for _, l := range got {
			id, err := strconv.Atoi(strings.TrimPrefix(l, "ack "))
			if err != nil || !strings.HasPrefix(l, "ack ") {
				t.Fatalf("cycle %d: child said %q", cycle, l)
			}
			acked[id] = true
			w := (id - base) / txnsPerWriter
			lastAcked[w] = max(lastAcked[w], id)
			cycleAcks++
		}
		totalAcked += cycleAcks
		verifyCrashStore(t, dir, cycle, acked, lastAcked)
		t.Logf("cycle %d: killed after %v, %d commits acknowledged", cycle, delay, cycleAcks)
	}
	t.Logf("%d cycles, %d acknowledged transactions, all recovered", cycles, totalAcked)
}

func verifyCrashStore(t *testing.T, dir string, cycle int, acked map[int]bool, lastAcked map[int]int) {
	t.Helper()
	s, err := badgerkv.Open(badgerkv.Options{Dir: dir, MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatalf("cycle %d: reopen after kill: %v", cycle, err)
	}
	defer s.Close()
	ctx := context.Background()
	present := map[int]int{} // txn -> keys found
	lasts := map[int]int{}
	err = kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
		start := []byte(crashKeyPrefix)
		end := []byte("crash0")
		for {
			page, err := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 4096})
			if err != nil {
				return err
			}
			for _, e := range page {
				parts := strings.Split(strings.TrimPrefix(string(e.Key), crashKeyPrefix), "/")
				v, _ := strconv.Atoi(string(e.Value))
				if parts[0] == "last" {
					w, _ := strconv.Atoi(parts[1])
					lasts[w] = v
					continue
				}
				id, _ := strconv.Atoi(parts[0])
				if v != id {
					t.Errorf("cycle %d: key %s holds %d", cycle, e.Key, v)
				}
				present[id]++
			}
			if len(page) < 4096 {
				return nil
			}
			start = append(page[len(page)-1].Key, 0)
		}
	})
	if err != nil {
		t.Fatalf("cycle %d: scan: %v", cycle, err)
	}
	for id := range acked {
		if present[id] != txnSize(id) {
			t.Fatalf("cycle %d: acknowledged transaction %d has %d of its %d keys", cycle, id, present[id], txnSize(id))
		}
	}
	for id, n := range present {
		if n != txnSize(id) {
			t.Fatalf("cycle %d: transaction %d is torn: %d of %d keys", cycle, id, n, txnSize(id))
		}
	}
	for w, id := range lastAcked {
		if lasts[w] < id {
			t.Fatalf("cycle %d: writer %d's last key is %d, older than its acknowledged %d", cycle, w, lasts[w], id)
		}
		if present[lasts[w]] == 0 {
			t.Fatalf("cycle %d: writer %d's last key names %d, which is absent", cycle, w, lasts[w])
		}
	}
}
