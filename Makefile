# ShaleDB. `make` alone lists the targets.
#
# Everything the targets need is installed here, idempotently (`make deps`):
# Go modules through the module proxy, gcc for cgo, and PostgreSQL 15 (the
# oracle and benchmark baseline) from Debian's packages when missing.

SHELL := /bin/bash
# A failing command in a pipe (go test | tee) fails the recipe.
.SHELLFLAGS := -eo pipefail -c
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 1

GO        ?= go
DATA_DIR  ?= ./data
HTTP_ADDR ?= 127.0.0.1:0
LISTEN    ?= 127.0.0.1:5433
FUZZTIME  ?= 60s
# make test's short fuzzing counts executions rather than time: with a
# time budget, Go 1.26's fuzz coordinator sometimes fails a target with a
# bare "context deadline exceeded" and no crasher at the deadline
# (golang/go#75804, fixed in Go 1.27). About 1-10 s a target here.
FUZZ_SHORT ?= 50000x
CRASH_CYCLES ?= 200
RESULTS   := benchmarks/results
PG_BIN    := /usr/lib/postgresql/15/bin

# Fuzz targets: package and function name.
FUZZ_TARGETS := \
	./sql/encoding:FuzzDecodeKey \
	./sql/encoding:FuzzDecodeRow \
	./sql/encoding:FuzzDecodeUvarint \
	./sql/keys:FuzzDecodeTenantKey \
	./sql/types:FuzzParseArray \
	./tenancy/scram:FuzzExchange \
	./pgwire:FuzzStartup \
	./pgwire:FuzzMessages

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## check the toolchain, install PostgreSQL 15 and etcd, fetch Go modules
	@command -v $(GO) >/dev/null || { echo "Go is missing: install Go 1.26 into /usr/local/go"; exit 1; }
	@command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }
	@# PostgreSQL 15 is the oracle and the benchmark baseline (server, psql, pgbench).
	@[ -x $(PG_BIN)/postgres ] && command -v psql >/dev/null && command -v pgbench >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15; }
	@# etcd holds the cluster's metadata; cluster tests start their own.
	@command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server; }
	@$(GO) mod download

.PHONY: build
build: deps ## build the binaries into bin/
	$(GO) build -o bin/ ./cmd/...

.PHONY: run
run: build ## start a single node on $(DATA_DIR) (embedded Badger)
	bin/shaledb start --data-dir $(DATA_DIR) --listen $(LISTEN) --http $(HTTP_ADDR)

CLUSTER_DIR ?= ./cluster-data

.PHONY: cluster
cluster: build ## start etcd and a 3-node cluster on loopback in $(CLUSTER_DIR), print how to connect
	scripts/cluster.sh start $(CLUSTER_DIR)

.PHONY: cluster-stop
cluster-stop: ## stop the cluster `make cluster` started (its data stays in $(CLUSTER_DIR))
	scripts/cluster.sh stop $(CLUSTER_DIR)

CHAOS_DURATION ?= 60s

.PHONY: chaos
chaos: deps ## linearizability (porcupine: single keys with follower reads, and transactions across shards), the bank and failover checks on a 3-node cluster for $(CHAOS_DURATION) each
	SHALEDB_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -timeout 30m -v -run 'TestLinearizable|TestCrossShardLinearizable|TestBank$$|TestFailover|TestKillLeader' ./kvcluster/raft

.PHONY: test
test: deps lint ## vet, format check, short fuzzing, all tests with -race
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn -fuzztime $(FUZZ_SHORT)"; \
		out=$$($(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_SHORT) 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
	done
	$(GO) test -race -count=1 ./...

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: fuzz
fuzz: deps ## run every fuzz target for $(FUZZTIME)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

.PHONY: crash
crash: deps ## kill -9 the store $(CRASH_CYCLES) times and check every acknowledged commit
	CRASH_CYCLES=$(CRASH_CYCLES) $(GO) test -count=1 -run '^TestCrashRecovery$$' -v ./kvcluster/badgerkv | grep -vE '^\s+crash_test.go:[0-9]+: cycle'

.PHONY: bench-kv
bench-kv: deps ## KvCluster benchmarks, then side by side with PostgreSQL; results in benchmarks/results/
	@mkdir -p $(RESULTS)
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 3 ./kvcluster/badgerkv | tee $(RESULTS)/$$(date -u +%Y-%m-%d)-kv.txt
	$(GO) run ./benchmarks/kvbaseline --duration 10s --out $(RESULTS)

.PHONY: bench-cluster
bench-cluster: deps build ## write latency and throughput, 3-node cluster vs single node in one run (KV, then SQL through shaledb-bench, closed loop and at 500 ops/s), leader-kill failover time, cross-shard vs single-shard transactions, and the write stall of a tenant move; results in benchmarks/results/
	@mkdir -p $(RESULTS)
	SHALEDB_BENCH_OUT=$(abspath $(RESULTS))/$$(date -u +%Y-%m-%d)-cluster.txt $(GO) test -run '^$$' -bench 'BenchmarkClusterVsSingleNode|BenchmarkFailover' -benchtime 1x ./kvcluster/raft
	SHALEDB_BENCH_OUT=$(abspath $(RESULTS))/$$(date -u +%Y-%m-%d)-cross-shard.txt $(GO) test -run '^$$' -bench 'BenchmarkCrossShard' -benchtime 1x ./kvcluster/raft
	SHALEDB_BENCH_OUT=$(abspath $(RESULTS))/$$(date -u +%Y-%m-%d)-move-tenant.txt $(GO) test -run '^$$' -bench 'BenchmarkMoveTenant' -benchtime 1x ./kvcluster/raft
	bin/shaledb-bench --start-shaledb bin/shaledb --start-cluster 3 --workload point-write --duration 10s --out $(RESULTS)
	bin/shaledb-bench --start-shaledb bin/shaledb --start-cluster 3 --workload point-write --duration 10s --rate 500 --out $(RESULTS)

.PHONY: bench-pgbench
bench-pgbench: build ## pgbench select-only and TPC-B, ShaleDB vs PostgreSQL 15 in one run
	@mkdir -p $(RESULTS)
	$(GO) run ./benchmarks/pgbenchcmp --shaledb bin/shaledb --scale 1 --clients 8 --duration 10s --out $(RESULTS)

.PHONY: test-large
test-large: deps ## a 5,000,000-row SELECT streams with the heap bounded (several minutes)
	SHALEDB_LARGE_ROWS=5000000 $(GO) test -run TestLargeResultsStream -count=1 -timeout 60m -v ./server

.PHONY: bench
bench: build ## the standard shaledb-bench suite (point-read, point-write, mixed, tpcb, noisy) beside PostgreSQL 15; fails over budget; refreshes README's table
	@mkdir -p $(RESULTS)
	bin/shaledb-bench --start-shaledb bin/shaledb --scenario suite --compare-postgres --tenants 4 --rows 10000 --clients 8 --duration 10s --out $(RESULTS) --readme README.md

.PHONY: bench-tenants
bench-tenants: build ## 100,000 tenants on one node: disk and memory per tenant, create_tenant latency, rate-limit accuracy
	@mkdir -p $(RESULTS)
	$(GO) run ./benchmarks/tenantdensity --shaledb bin/shaledb --tenants $(or $(TENANTS),100000) --out $(RESULTS)

.PHONY: clean
clean: ## remove build output (not $(DATA_DIR))
	rm -rf bin
