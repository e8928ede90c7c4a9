# ngx_cost_cap_module: build, run and test on Debian 12.
#
#   make run    deps, module, then redis + nginx (conf/nginx.conf) in the
#               foreground on 127.0.0.1:8080
#   make test   deps, module, unit tests (cmocka), end-to-end tests (prove),
#               the same under AddressSanitizer/UBSan, a short fuzz run, the
#               ops files, the Debian package, and the smoke tests against
#               nginx built with the module in

NGX_SRC     ?= /usr/share/nginx/src
NGINX       ?= /usr/sbin/nginx
BUILD       := build
MODULE      := $(BUILD)/ngx_http_cost_cap_module.so
NGX_BUILD   := $(BUILD)/nginx
LUA         := $(wildcard ngx_cost_cap_module/scripts/*.lua)
SRCS        := config $(LUA) \
               $(wildcard ngx_cost_cap_module/*.c ngx_cost_cap_module/*.h)

DEB_PKGS    := make gcc perl nginx-core nginx-dev libhiredis-dev \
               libpcre2-dev zlib1g-dev libssl-dev redis-server \
               libcmocka-dev libtest-base-perl libio-socket-ssl-perl curl \
               gcovr clang \
               libclang-rt-14-dev dpkg-dev

SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export COST_CAP_MODULE := $(CURDIR)/$(MODULE)
export COST_CAP_NGINX  := $(NGINX)

.PHONY: all deps build run test unit e2e coverage clean test-asan fuzz \
        deb test-deb test-ops test-static static

all: build

deps:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi
	@sh tools/nginx-source.sh check || $(SUDO) sh tools/nginx-source.sh apt \
	    || echo "deps: no nginx source package: make test-static fails"

build: $(MODULE)

# configure writes the scripts into objs/ngx_http_cost_cap_lua.h
$(NGX_BUILD)/objs/Makefile: config $(LUA)
	rm -rf $(NGX_BUILD)
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && ./configure --with-compat --with-threads \
	    --with-http_ssl_module --with-cc-opt='-g -O2 -Werror' \
	    --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(MODULE): $(NGX_BUILD)/objs/Makefile $(SRCS)
	$(MAKE) -s -C $(NGX_BUILD) -f objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_cost_cap_module.so $@.tmp
	mv -f $@.tmp $@

run: deps build
	@exec sh conf/run.sh

FUZZ_TIME   ?= 15

test: deps build
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) test-asan
	$(MAKE) e2e
	$(MAKE) test-ops
	$(MAKE) test-deb
	$(MAKE) test-static

fuzz:
	$(MAKE) -C lua-free-tests fuzz FUZZ_TIME=$(FUZZ_TIME)

unit:
	$(MAKE) -C lua-free-tests test

e2e: build
	prove -r -j2 t/

# The Debian package libnginx-mod-http-cost-cap (debian/, dh-sequence-nginx
# against Debian 12's nginx-dev) into build/deb/: ops/build-deb.sh installs
# the build dependencies it needs.
DEB_OUT     := $(BUILD)/deb

deb:
	sh ops/build-deb.sh $(DEB_OUT)

# promtool and prometheus from Debian's prometheus package, unpacked into
# build/prometheus/ and not installed: its postinst would start a Prometheus
# listening on every address.
PROM_DIR    := $(BUILD)/prometheus
PROMTOOL    := $(CURDIR)/$(PROM_DIR)/usr/bin/promtool
PROMETHEUS  := $(CURDIR)/$(PROM_DIR)/usr/bin/prometheus

$(PROMTOOL):
	rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)
	cd $(PROM_DIR) && { apt-get download -qq -o APT::Sandbox::User=root \
	        prometheus 2>/dev/null \
	    || { $(SUDO) apt-get update -qq && apt-get download -qq \
	        -o APT::Sandbox::User=root prometheus; }; }
	dpkg-deb -x $(PROM_DIR)/prometheus_*.deb $(PROM_DIR)
	touch $@

# the rules (promtool check rules, test rules t/ops/alerts-test.yml) and the
# dashboard (shape; every query parsed by promtool and evaluated by a real
# Prometheus scraping nginx with the module)
test-ops: build $(PROMTOOL)
	PROMTOOL=$(PROMTOOL) PROMETHEUS=$(PROMETHEUS) prove t/ops/ops.pl

# the package from a clean clone (HEAD), installed with apt-get, nginx -t and
# a priced request through /usr/sbin/nginx with the packaged snippet, purged
test-deb:
	prove -v t/pkg/deb.pl

coverage:
	$(MAKE) -C lua-free-tests coverage

# The module built with AddressSanitizer and UBSan, loaded into the stock
# nginx with the ASan runtime preloaded; any report fails the run.
ASAN_BUILD  := $(BUILD)/asan
ASAN_MODULE := $(ASAN_BUILD)/ngx_http_cost_cap_module.so
ASAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer

$(ASAN_BUILD)/nginx/objs/Makefile: config $(LUA)
	rm -rf $(ASAN_BUILD)
	mkdir -p $(ASAN_BUILD)/logs
	cp -r $(NGX_SRC) $(ASAN_BUILD)/nginx
	cd $(ASAN_BUILD)/nginx && ./configure --with-compat --with-threads \
	    --with-http_ssl_module --with-cc-opt='-g -O1 -Werror $(ASAN_FLAGS)' \
	    --with-ld-opt='$(ASAN_FLAGS)' \
	    --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(ASAN_MODULE): $(ASAN_BUILD)/nginx/objs/Makefile $(SRCS)
	$(MAKE) -s -C $(ASAN_BUILD)/nginx -f objs/Makefile modules
	cp $(ASAN_BUILD)/nginx/objs/ngx_http_cost_cap_module.so $@.tmp
	mv -f $@.tmp $@

test-asan: deps $(ASAN_MODULE)
	rm -rf $(ASAN_BUILD)/logs && mkdir -p $(ASAN_BUILD)/logs
	COST_CAP_MODULE=$(CURDIR)/$(ASAN_MODULE) \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:intercept_memmem=0:log_path=$(CURDIR)/$(ASAN_BUILD)/logs/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(CURDIR)/$(ASAN_BUILD)/logs/ubsan \
	    prove -r -j2 t/
	@if ls $(ASAN_BUILD)/logs/* >/dev/null 2>&1; then \
	    cat $(ASAN_BUILD)/logs/*; echo "sanitizer reports: FAIL"; exit 1; \
	fi; echo "sanitizer reports: none"

# NGINX built from Debian's nginx source package (the installed version,
# debian/patches applied by dpkg-source) with the module compiled in
# (--add-module), configured as Debian's nginx-core is but with only the
# modules the tests use; the smoke tests run against it without
# load_module.  The source package is downloaded once into build/deb-src.
DEB_SRC     := $(BUILD)/deb-src
STATIC_SRC  := $(BUILD)/static/nginx
STATIC_BIN  := $(STATIC_SRC)/objs/nginx
STATIC_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
STATIC_T    := t/003-smoke.t t/002-inert.t t/099-debug-log.t
STATIC_CC   := -g -O2 -ffile-prefix-map=$(CURDIR)/$(STATIC_SRC)=. \
               -fstack-protector-strong -Wformat -Werror=format-security \
               -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
STATIC_FLAGS := --with-cc-opt='$(STATIC_CC)' \
    --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' \
    --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf \
    --http-log-path=/var/log/nginx/access.log --error-log-path=stderr \
    --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid \
    --modules-path=/usr/lib/nginx/modules \
    --http-client-body-temp-path=/var/lib/nginx/body \
    --http-fastcgi-temp-path=/var/lib/nginx/fastcgi \
    --http-proxy-temp-path=/var/lib/nginx/proxy \
    --http-scgi-temp-path=/var/lib/nginx/scgi \
    --http-uwsgi-temp-path=/var/lib/nginx/uwsgi \
    --with-compat --with-debug --with-pcre-jit --with-threads \
    --with-http_ssl_module --with-http_auth_request_module \
    --with-http_realip_module --with-http_stub_status_module

$(DEB_SRC)/nginx.dsc:
	sh tools/nginx-source.sh fetch $(DEB_SRC)

$(STATIC_SRC)/configure: $(DEB_SRC)/nginx.dsc
	rm -rf $(STATIC_SRC)
	mkdir -p $(dir $(STATIC_SRC))
	@# apt checked the files against the archive's signed index; the
	@# maintainer's signature needs debian-keyring, not installed
	dpkg-source -x $(DEB_SRC)/nginx.dsc $(STATIC_SRC) \
	    >$(BUILD)/static/dpkg-source.log 2>&1 \
	    || { cat $(BUILD)/static/dpkg-source.log; exit 1; }
	@test -s $(STATIC_SRC)/.pc/applied-patches \
	    || { echo "dpkg-source applied no debian/patches"; exit 1; }
	@echo "$$(wc -l <$(STATIC_SRC)/.pc/applied-patches) debian/patches" \
	    "applied to $$(readlink $(DEB_SRC)/nginx.dsc)"
	touch $@

$(STATIC_SRC)/objs/Makefile: $(STATIC_SRC)/configure config
	cd $(STATIC_SRC) && ./configure $(STATIC_FLAGS) \
	    --add-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(STATIC_BIN): $(STATIC_SRC)/objs/Makefile $(SRCS)
	$(MAKE) -s -j$(STATIC_JOBS) -C $(STATIC_SRC) -f objs/Makefile binary

static: deps $(STATIC_BIN)

test-static: static
	COST_CAP_NO_MODULE=1 COST_CAP_NGINX=$(CURDIR)/$(STATIC_BIN) \
	    prove $(STATIC_T)

# wrk benchmark (bench/run) and callgrind profile (bench/profile); not
# part of `make test`.  wrk, strace and valgrind are installed if missing.
.PHONY: bench profile

bench: deps build
	@command -v wrk >/dev/null 2>&1 && command -v strace >/dev/null 2>&1 || { \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends wrk strace; }
	perl bench/run

profile: deps build
	@command -v valgrind >/dev/null 2>&1 || { \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends valgrind; }
	perl bench/profile

clean:
	rm -rf $(BUILD)
	$(MAKE) -C lua-free-tests clean
