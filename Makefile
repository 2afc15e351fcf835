# proxy — make targets. Deno is used from PATH, or installed from the npm
# package `deno` into .tools/ when missing (no other download needed).

DENO_VERSION := 2.9.6
TOOLS := .tools
SYSTEM_DENO := $(shell command -v deno 2>/dev/null)
DENO := $(if $(SYSTEM_DENO),$(SYSTEM_DENO),$(TOOLS)/node_modules/.bin/deno)

.PHONY: run test bench build release check fmt deno clean

run: deno
	$(DENO) task start

test: deno
	$(DENO) task test

bench: deno
	$(DENO) task bench

build: deno
	$(DENO) task compile

release: deno
	$(DENO) run --allow-all scripts/release.ts

check: deno
	$(DENO) task check

fmt: deno
	$(DENO) fmt

deno: $(DENO)

$(TOOLS)/node_modules/.bin/deno:
	@command -v npm >/dev/null || { echo "make: npm is needed to install Deno $(DENO_VERSION) (install Node.js), or put deno on PATH"; exit 1; }
	npm install --prefix $(TOOLS) --no-audit --no-fund deno@$(DENO_VERSION)
	@# npm may skip the package's install script; the binary ships in a platform package either way.
	@test -x $@ || node $(TOOLS)/node_modules/deno/install.cjs
	@$@ --version | head -1

clean:
	rm -rf $(TOOLS) proxy proxy.exe dist
