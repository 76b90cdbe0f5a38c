# berth: `make run` serves on embedded defaults, `make test` runs every test.
# Both install what is missing first (Debian packages; run as root).

GO      ?= go
BIN     := bin/berth
# git: gitRepo volumes. python3-azure: Debian's Azure SDK for Python, for
# test/e2e/python_test.go (/usr/bin/python3).
APT_PKGS := containerd runc containernetworking-plugins iptables iproute2 busybox-static skopeo ca-certificates git python3-azure
GOFLAGS_TEST ?= -count=1 -timeout 60m

.PHONY: run test build deps bench vet clean

build:
	$(GO) build -o $(BIN) ./cmd/berth

# deps installs the Debian packages berth and its tests need, if missing.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: deps build
	./$(BIN) serve $(ARGS)

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test $(GOFLAGS_TEST) ./...

bench: deps build
	$(GO) run ./bench/startup
	$(GO) run ./bench/registry
	$(GO) run ./bench/exec
	$(GO) run ./bench/authz

clean:
	rm -rf bin
