# wschat — the two commands a newcomer needs:
#   make run    install what is missing, build, serve http://localhost:8000
#   make run-tls  the same plus https://localhost:8443 (self-signed cert in ./data, made once)
#   make test   install what is missing, build with ASan+UBSan, run every suite (and the .deb test)
# and the ones a developer needs:
#   make build | make fuzz [FUZZ_TIME=60] | make bench | make bench-transports | make deb | make test-deb | make clean
#   make cluster   redis-server + three nodes on ports 8001-8003 (Ctrl-C stops all)
#   make soak [SOAK_MIN=60]   the hour-long mixed workload (docs/RELIABILITY.md)
.PHONY: all deps deps-test build build-asan run run-tls test fuzz bench bench-transports cluster clean deb test-deb

JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
PORT     ?= 8000
TLS_PORT ?= 8443
TLS_CERT ?= data/tls-cert.pem
TLS_KEY  ?= data/tls-key.pem
DB       ?= data/wschat.db
FUZZ_TIME ?= 30
SOAK_MIN ?= 1
SOAK_OUT ?= build/soak.json
ARGS     ?=

all: build

deps:
	@bash scripts/install-deps.sh

deps-test:
	@bash scripts/install-deps.sh --test

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)

build-asan: deps-test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWSCHAT_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	@mkdir -p $(dir $(DB))
	./build/wschat --port $(PORT) --db $(DB) $(ARGS)

# A self-signed certificate for localhost, made once (the browser will warn:
# it is signed by nobody). Replace the two files with real ones and send
# SIGHUP to reload them without dropping connections.
$(TLS_CERT):
	@mkdir -p $(dir $(TLS_CERT)) $(dir $(TLS_KEY))
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	  -keyout $(TLS_KEY) -out $(TLS_CERT) -days 825 -subj /CN=localhost \
	  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"

run-tls: build $(TLS_CERT)
	@mkdir -p $(dir $(DB))
	./build/wschat --port $(PORT) --db $(DB) --tls-port $(TLS_PORT) --tls-cert $(TLS_CERT) --tls-key $(TLS_KEY) $(ARGS)

# The Debian package is built and installed into a fresh root first (about a
# minute), then every ctest suite runs.
test: build-asan
	$(MAKE) --no-print-directory test-deb
	cd build-asan && ctest --output-on-failure -j$(JOBS) --timeout 900

fuzz: deps-test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DWSCHAT_SANITIZE=ON -DWSCHAT_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@for t in build-fuzz/tests/fuzz_*; do \
	  case $$t in *_replay) continue;; esac; \
	  name=$$(basename $$t); mkdir -p tests/fuzz/artifacts/$$name build-fuzz/corpus/$$name; \
	  echo "== $$name for $(FUZZ_TIME)s"; \
	  $$t -max_total_time=$(FUZZ_TIME) -artifact_prefix=tests/fuzz/artifacts/$$name/ \
	      build-fuzz/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

# The soak (docs/RELIABILITY.md): a mixed, verified workload against the
# release build for SOAK_MIN minutes; samples RSS, fds and CPU every 10 s.
.PHONY: soak
soak: build deps-test
	nice -n 5 node tests/soak/soak.mjs --minutes $(SOAK_MIN) --bin build/wschat --out $(SOAK_OUT)

bench:
	@bash scripts/install-deps.sh --bench
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)
	bash bench/run.sh

cluster: build
	@bash scripts/install-deps.sh --cluster
	bash scripts/cluster.sh $(ARGS)
# The Debian package, from the working tree as it is (committed or not):
# build-deb/wschat_VERSION_amd64.deb, checked with lintian (errors fail).
deb: deps-test
	rm -rf build-deb && mkdir -p build-deb/src
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C build-deb/src
	git describe --always --dirty --abbrev=12 > build-deb/src/debian/commit
	cd build-deb/src && DEB_BUILD_OPTIONS="parallel=$(JOBS) nocheck" dpkg-buildpackage -b -us -uc
	lintian --fail-on error build-deb/wschat_*_amd64.deb
	@ls -l build-deb/*.deb

bench-transports:
	@bash scripts/install-deps.sh --bench
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)
	bash bench/transports.sh
# The package installed into a fresh root and run as its systemd unit would
# (tests/package/deb.test.mjs). Not in `make test`: building the package
# takes several minutes.
test-deb: deb
	cd tests && node --test --test-reporter=spec package/deb.test.mjs

clean:
	rm -rf build build-asan build-fuzz build-deb
