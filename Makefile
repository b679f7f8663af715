# The two commands a newcomer needs: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= var
PORT ?= 8080
# Debian packages the box needs at run time (prompts, audio conversion), and for tests.
DEB_PACKAGES := espeak-ng ffmpeg
# sipp (sip-tester) and baresip are the real SIP peers the tests call and answer with.
TEST_DEB_PACKAGES := chromium shellcheck systemd udev sip-tester baresip-core
NODE_STAMP := node_modules/.installed

.PHONY: run test bench pi-check setup system-packages node-packages clean

run: setup
	$(BIN)/hotline run --data $(DATA) --port $(PORT)

test: setup
	@$(MAKE) --no-print-directory system-packages DEB_PACKAGES="$(DEB_PACKAGES) $(TEST_DEB_PACKAGES)"
	@$(MAKE) --no-print-directory node-packages
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/test_api_fuzz.py
	$(BIN)/python -m pytest tests/test_api_fuzz.py  # serial: under xdist schemathesis folds its cases into one

SOAK_CALLS ?= 10000
REALTIME_MINUTES ?= 10
bench: setup
	@$(MAKE) --no-print-directory system-packages DEB_PACKAGES="$(DEB_PACKAGES) $(TEST_DEB_PACKAGES) strace"
	SOAK_CALLS=$(SOAK_CALLS) REALTIME_MINUTES=$(REALTIME_MINUTES) $(BIN)/python bench/run_all.py

# The real install.sh in an arm64 Debian root under qemu-user (systemd/pi-check.sh); the
# root is cached in build/pi-check. PI_ARCH=armhf checks the 32-bit root of older Pis.
PI_ARCH ?= arm64
pi-check:
	@$(MAKE) --no-print-directory system-packages DEB_PACKAGES="debootstrap qemu-user-static curl git"
	@sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; $$sudo systemd/pi-check.sh --arch $(PI_ARCH)

setup: $(STAMP)

# Installs only what is missing; uses sudo when not run as root.
system-packages:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q $$missing; \
	fi

$(STAMP): setup.py | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node-packages: $(NODE_STAMP)

# The test-only npm packages, exactly as package-lock.json pins them.
# npm installs axe-core, the accessibility checker the browser tests inject into every page.
# Debian's nodejs and npm only when there is no npm at all: a Node.js from elsewhere (NodeSource)
# brings its own npm, and Debian's npm package conflicts with it.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory system-packages DEB_PACKAGES="nodejs npm"
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info  # build/pi-check too: the next make pi-check makes its root again
