# fimd — build, test and demo entry points. `make` installs missing Debian packages and builds
# build/fimd; `make test` runs every test program; `make SANITIZE=1 test` does it under ASan+UBSan.

CC      ?= cc
comma   := ,
SANITIZE ?=
ifeq ($(SANITIZE),1)
  SAN := address,undefined
else
  SAN := $(SANITIZE)
endif

ifneq ($(SAN),)
  BUILD   := $(if $(filter 1,$(SANITIZE)),build-san,build-$(subst $(comma),-,$(SAN)))
  OPT     := -O1 -fno-omit-frame-pointer -fsanitize=$(SAN) -fno-sanitize-recover=all
  LDSAN   := -fsanitize=$(SAN)
else
  BUILD   := build
  OPT     := -O2
  LDSAN   :=
endif

CFLAGS  += -std=c11 -g $(OPT) -Wall -Wextra -Werror -MMD -MP -I.
LDLIBS  += -ltree-sitter -lev -lopenblas -lcurl -lm -lpthread
LDFLAGS += $(LDSAN)

DEB_PACKAGES := libjsmn-dev libev-dev libtree-sitter-dev libopenblas-dev libcurl4-openssl-dev g++
# Real editors for the client tests (tests/editors.sh) and clang-format for tests/format.sh; Node
# comes from Debian only when absent.
EDITOR_PACKAGES := neovim emacs-nox elpa-eglot tmux clang-format
SHARED       ?= $(abspath ../shared)

BASE_SRC  := $(wildcard base/*.c)
MODEL_SRC := $(wildcard model/*.c)
FIM_SRC   := $(wildcard fim/*.c)
LSP_SRC   := $(wildcard lsp/*.c)
PARSERS_SRC := $(wildcard parsers/*.c)
LIB_SRC   := $(BASE_SRC) $(MODEL_SRC) $(PARSERS_SRC) $(FIM_SRC) $(LSP_SRC)
CLI_SRC   := $(wildcard cli/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# The model's own tests link base/ and model/ only (libmodel.a): they need no grammars.
MODEL_OBJ := $(BASE_SRC:%.c=$(BUILD)/%.o) $(MODEL_SRC:%.c=$(BUILD)/%.o)
MODEL_TEST_BIN := $(filter $(addprefix $(BUILD)/tests/,test_base test_gguf test_tokenizer test_kernels test_ds2),$(TEST_BIN))
# `make check` and the test programs alone install nothing (no apt-get, editors or npm clients):
# a missing package is the compiler's error then, and `make` installs it.
INSTALLS  := $(if $(MAKECMDGOALS),$(filter-out check soak $(TEST_BIN) $(BUILD)/libmodel.a,$(MAKECMDGOALS)),all)

.PHONY: all deps editors-deps train-deps check test soak demo bench bench-context bench-context-run \
	bench-quality corpus \
	weights install vsix format format-check clean
.SECONDARY:
all: deps $(BUILD)/fimd

# Install what is missing (apt-get; sudo when not root). Recorded in a stamp so it runs once.
deps: $(BUILD)/.deps-ok
$(BUILD)/.deps-ok: tools/install-deps.sh Makefile
	@mkdir -p $(BUILD)
	@sh tools/install-deps.sh $(DEB_PACKAGES)
	@touch $@

$(BUILD)/%.o: %.c | $(if $(INSTALLS),$(BUILD)/.deps-ok)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# SIMD kernels: compiled for their instruction set, chosen at run time from the CPU's features.
ISA_AVX2   := -mavx2 -mfma -mf16c
ISA_AVX512 := $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512vnni
$(BUILD)/model/kernels_avx2.o $(BUILD)/model/kernels_avx2_k23.o $(BUILD)/model/kernels_avx2_iq.o: CFLAGS += $(ISA_AVX2)
$(BUILD)/model/kernels_avx512.o $(BUILD)/model/kernels_avx512_k23.o $(BUILD)/model/kernels_avx512_iq.o: CFLAGS += $(ISA_AVX512)

# Tests build fixture paths from runtime strings; truncation there would only fail a test.
$(BUILD)/tests/%.o: CFLAGS += -Wno-format-truncation

# Tree-sitter grammars: fetched from npm at the versions parsers/grammars.lock pins (sha256 and ABI
# checked), compiled once into build/grammars (shared by every build flavour), never committed.
GRAMMAR_DIR := build/grammars
GRAMMAR_OBJS :=
ifeq ($(filter clean format format-check,$(MAKECMDGOALS)),)
ifneq ($(if $(MAKECMDGOALS),$(filter-out $(MODEL_TEST_BIN) $(BUILD)/libmodel.a,$(MAKECMDGOALS)),all),)
-include $(GRAMMAR_DIR)/grammars.mk
endif
endif
$(GRAMMAR_DIR)/grammars.mk: parsers/grammars.lock parsers/fetch.sh
	@command -v npm >/dev/null 2>&1 || $(if $(INSTALLS),sh tools/install-deps.sh nodejs npm,\
		{ echo "npm fetches the grammars and is missing: run make" >&2; exit 1; })
	@sh parsers/fetch.sh parsers/grammars.lock $(GRAMMAR_DIR)
$(GRAMMAR_DIR)/grammars.inc: $(GRAMMAR_DIR)/grammars.mk
$(GRAMMAR_DIR)/libgrammars.a: $(GRAMMAR_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^
GRAMMAR_LIB := $(GRAMMAR_DIR)/libgrammars.a
ifeq ($(GRAMMAR_NEEDS_CXX),1)
  LDLIBS += -lstdc++
endif

# The language registry: parsers/languages.tsv as a C table.
$(BUILD)/gen/parsers/languages.inc: parsers/languages.tsv parsers/languages.awk
	@mkdir -p $(dir $@)
	awk -f parsers/languages.awk $< > $@.tmp && mv $@.tmp $@
$(BUILD)/parsers/registry.o: $(BUILD)/gen/parsers/languages.inc $(GRAMMAR_DIR)/grammars.inc
$(BUILD)/parsers/registry.o: CFLAGS += -I$(BUILD)/gen -I$(GRAMMAR_DIR)

# All modules in one archive; the one-way dependencies (lsp -> fim -> model) are kept by headers.
$(BUILD)/libfimd.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/fimd: $(CLI_OBJ) $(BUILD)/libfimd.a $(GRAMMAR_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/check.o $(BUILD)/tests/tjson.o $(BUILD)/libfimd.a $(GRAMMAR_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/libmodel.a: $(MODEL_OBJ)
	$(AR) rcs $@ $^
$(MODEL_TEST_BIN): $(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/check.o $(BUILD)/tests/tjson.o $(BUILD)/libmodel.a
	$(CC) $(LDFLAGS) -o $@ $^ $(filter-out -ltree-sitter -lev -lcurl -lstdc++,$(LDLIBS))

# The stand-in serving engine for the remote-backend tests (tests/test_remote.c runs it).
$(BUILD)/tests/test_remote: | $(BUILD)/tests/mock_engine
$(BUILD)/tests/mock_engine: $(BUILD)/tests/mock_engine.o $(BUILD)/libfimd.a $(GRAMMAR_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Editors and the Node client library. A failure here only warns: tests/editors.sh then reports
# the missing clients as skipped.
editors-deps: $(BUILD)/.editors-ok
$(BUILD)/.editors-ok: tests/editors/node/package-lock.json
	@mkdir -p $(BUILD)
	@sh tools/install-deps.sh $(EDITOR_PACKAGES) || echo "warning: editors not installed"
	@command -v node >/dev/null 2>&1 || sh tools/install-deps.sh nodejs npm || echo "warning: node not installed"
	@cd tests/editors/node && npm ci --no-audit --no-fund --silent || echo "warning: npm packages not installed"
	@touch $@

# The training tools run on Debian's PyTorch and numpy (the system python3).
TRAIN_PACKAGES := python3-torch python3-numpy
train-deps: $(BUILD)/.train-ok
$(BUILD)/.train-ok: | $(BUILD)/.deps-ok
	@sh tools/install-deps.sh $(TRAIN_PACKAGES)
	@touch $@

# The fast tier: the C test programs but the reliability one (no editors, no npm clients, no
# training tools). One program: build/tests/test_fim; one case: build/tests/test_fim sessions.
CHECK_BIN := $(filter-out $(BUILD)/tests/test_reliability,$(TEST_BIN))
check: $(BUILD)/fimd $(CHECK_BIN)
	@FIMD_BIN=$(BUILD)/fimd FIMD_SHARED=$(SHARED) FIMD_TMP=$(BUILD)/tmp LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
		sh tests/run.sh $(CHECK_BIN)

# Each test program runs as its own process with a timeout; the runner prints the totals.
test: all $(TEST_BIN) editors-deps train-deps
	@FIMD_FORMAT_SRC="$(FORMAT_SRC)" FIMD_BIN=$(BUILD)/fimd FIMD_SHARED=$(SHARED) FIMD_TMP=$(BUILD)/tmp LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
		sh tests/run.sh $(TEST_BIN) \
		tests/cli_errors.sh tests/context_cli.sh tests/bundled.sh tests/train.sh \
		tests/editors.sh tests/editors_tmux.sh tests/vsix.sh tests/format.sh

# The soak (not in CI): SOAK_REQUESTS completion requests over 8 open documents, with edits, cancels,
# supersessions, closes and reopens, on the bundled model (tests/test_reliability.c, case soak; make
# test runs 1,000). `make SANITIZE=1 soak` runs it under ASan/LSan from build-san/, with ASan's
# quarantine of freed memory bounded to 16 MB (by default it grows to 256 MB, which the RSS check
# would take for a leak).
SOAK_REQUESTS ?= 10000
soak: $(BUILD)/fimd $(BUILD)/tests/test_reliability
	@ASAN_OPTIONS=quarantine_size_mb=16:$$ASAN_OPTIONS \
		FIMD_BIN=$(BUILD)/fimd FIMD_TMP=$(BUILD)/tmp FIMD_SOAK_REQUESTS=$(SOAK_REQUESTS) \
		FIMD_SOAK_MODEL=$(BUNDLED) LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
		$(BUILD)/tests/test_reliability soak

# The README's first command: build and run a scripted LSP session with FIMD_MODEL, or else the
# bundled model fimd trained itself (weights/), which fimd finds on its own.
BUNDLED := weights/fimd-tiny-code.gguf
DEMO_MODEL := $(BUILD)/demo-model.gguf
demo: all
	@$(BUILD)/fimd demo $${FIMD_MODEL:+-m "$$FIMD_MODEL"}

# fimd's own small code model (tools/train/): the corpus from Debian's source packages as the
# committed manifest describes it, then about 85 minutes of training on 2 cores with a fixed seed
# (a 10M-token schedule, resumed and extended to 13.5M tokens, as the bundled file was made), then
# the GGUF. Interrupted, it resumes from its checkpoint. CI never trains. `make corpus` rewrites the
# manifest; `make weights` checks it.
TRAIN_DIR := $(BUILD)/train
corpus: all train-deps
	/usr/bin/python3 tools/train/prepare.py --out $(TRAIN_DIR)
weights: all train-deps
	/usr/bin/python3 tools/train/prepare.py --out $(TRAIN_DIR) --check
	/usr/bin/python3 tools/train/train.py --corpus $(TRAIN_DIR)/corpus.bin --out $(TRAIN_DIR)/run --tokens 10000000
	/usr/bin/python3 tools/train/train.py --corpus $(TRAIN_DIR)/corpus.bin --out $(TRAIN_DIR)/run --tokens 13500000 \
		--vocab $(TRAIN_DIR)/vocab.gguf
	cp $(TRAIN_DIR)/run/model.gguf $(BUNDLED)

# Completion quality end to end on code no training corpus holds (tools/quality/heldout: files of
# open-source projects not packaged in Debian), fimd's prompt against a plain window.
QUALITY_FILES := $(wildcard tools/quality/heldout/c/*.[ch] tools/quality/heldout/python/*.py tools/quality/heldout/go/*.go)
QUALITY_MODEL ?= $(BUNDLED)
bench-quality: all
	@for b in 512 1024; do for n in "" --naive; do echo "== budget $$b $${n:-fimd}"; \
		$(BUILD)/fimd bench-quality -m $(QUALITY_MODEL) --budget $$b $$n $(QUALITY_FILES); \
		done; done

# `make install PREFIX=...`: the binary, the bundled model (found by fimd under share/fimd/) and the
# editor plugins.
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/fimd/editors
	install -m 755 $(BUILD)/fimd $(DESTDIR)$(PREFIX)/bin/fimd
	install -m 644 $(BUNDLED) $(DESTDIR)$(PREFIX)/share/fimd/
	cp -R editors/nvim editors/emacs editors/vscode $(DESTDIR)$(PREFIX)/share/fimd/editors/
	rm -rf $(DESTDIR)$(PREFIX)/share/fimd/editors/vscode/node_modules

# The VS Code extension, packaged with @vscode/vsce (pinned in editors/vscode/package-lock.json;
# needs Node 20 or newer).
vsix: $(BUILD)/fimd.vsix
$(BUILD)/fimd.vsix: editors/vscode/package.json editors/vscode/package-lock.json editors/vscode/extension.js
	@mkdir -p $(BUILD)
	cd editors/vscode && npm ci --no-audit --no-fund --silent && \
		npx vsce package --allow-missing-repository --out $(abspath $@)

# Benchmarks on DeepSeek-Coder-V2-Lite's real dimensions with 4 layers (the first dense), as Q4_K_M,
# Q3_K_M, IQ4_XS and Q8_0, with the real 102400-token vocabulary when ../shared is beside the clone. Figures only:
# timings here are noisy, so nothing is asserted.
BENCH_DIR   := $(BUILD)/bench
BENCH_VOCAB := $(wildcard $(SHARED)/fixtures/vocab/deepseek-coder-v2-vocab.gguf)
BENCH_SYNTH := --like lite --layers 4 --seed 1 $(if $(BENCH_VOCAB),--vocab-from $(BENCH_VOCAB),--merges-from model/ds2.c)
$(BENCH_DIR)/lite4-%.gguf: | $(BUILD)/fimd
	@mkdir -p $(BENCH_DIR)
	$(BUILD)/fimd synth $(BENCH_SYNTH) --type $(subst lite4-,,$*) -o $@
$(BENCH_DIR)/typing.c: lsp/server.c
	@mkdir -p $(BENCH_DIR)
	head -n 300 lsp/server.c > $@
BENCH_TYPES := Q4_K_M Q3_K_M IQ4_XS Q8_0
bench: all $(BENCH_TYPES:%=$(BENCH_DIR)/lite4-%.gguf) $(BENCH_DIR)/typing.c
	@$(if $(BENCH_VOCAB),,echo "note: no ../shared vocabulary; the models use a small synthesized one, so the output head is far cheaper than the real one")
	@for t in $(BENCH_TYPES); do echo "== lite4 $$t: fimd bench -p 512 -n 64"; $(BUILD)/fimd bench -m $(BENCH_DIR)/lite4-$$t.gguf -p 512 -n 64; done
	@echo "== lite4 Q4_K_M: fimd bench-typing, 3 lines of a 300-line C file, 16 tokens per keystroke"
	@$(BUILD)/fimd bench-typing -m $(BENCH_DIR)/lite4-Q4_K_M.gguf $(BENCH_DIR)/typing.c --line 150
	@echo "== lite4 Q4_K_M: fimd bench-typing --accept, the user accepts every ghost text: features off, each alone (type-through, prefetch, drafts), all"
	@$(BUILD)/fimd bench-typing -m $(BENCH_DIR)/lite4-Q4_K_M.gguf $(BENCH_DIR)/typing.c --line 150 --accept
	@echo "== lite4 Q4_K_M: the same without drafts from the context"
	@$(BUILD)/fimd bench-typing -m $(BENCH_DIR)/lite4-Q4_K_M.gguf $(BENCH_DIR)/typing.c --line 150 --no-drafts
	@echo "== lite4 Q4_K_M: fimd bench --draft-oracle (decode again with its own tokens as drafts)"
	@$(BUILD)/fimd bench -m $(BENCH_DIR)/lite4-Q4_K_M.gguf -p 256 -n 64 --draft-oracle

# Identifier recall of the prompt at budgets 512, 1024 and 2048 over real multi-file trees (this
# repository, and Python, Lua and JavaScript sources installed on the machine when present), fimd's
# context against a naive window (3/4 prefix, 1/4 suffix). Needs only a vocabulary.
BENCH_CONTEXT_FILES := $(wildcard lsp/*.c fim/*.c model/*.c cli/*.c tests/*.c) \
	$(wildcard /usr/lib/python3*/email/*.py /usr/lib/python3*/json/*.py /usr/share/nvim/runtime/lua/vim/*.lua \
	/usr/lib/node_modules/npm/lib/commands/*.js)
# A second set, never used to choose anything: the held-out files of bench-quality, the C examples
# Debian's -dev packages install, other Python, JavaScript and Lua folders.
BENCH_CONTEXT_SECOND := $(wildcard tools/quality/heldout/c/* tools/quality/heldout/python/* \
	tools/quality/heldout/go/* /usr/share/doc/libxmlsec1-dev/examples/*.c \
	/usr/share/doc/zlib1g-dev/examples/*.c /usr/share/doc/nettle-dev/examples/*.c \
	$(foreach d,logging http urllib concurrent/futures,/usr/lib/python3*/$(d)/*.py) \
	/usr/lib/node_modules/npm/lib/utils/*.js /usr/share/nvim/runtime/lua/vim/lsp/*.lua \
	/usr/share/nvim/runtime/lua/vim/treesitter/*.lua)
BENCH_CONTEXT_VOCAB := $(or $(BENCH_VOCAB),$(DEMO_MODEL))
$(DEMO_MODEL): | $(BUILD)/fimd
	$(BUILD)/fimd synth --like tiny --layers 4 --embd 256 --ff 512 --ff-exp 256 --type Q8_0 \
		--merges-from model/ds2.c --merges-from model/tokenizer.c --merges-from lsp/server.c \
		--merges 800 --seed 4 -o $@
# editors-deps installs Neovim, whose Lua runtime both sets use; the file lists are expanded in a
# second make, after it.
bench-context: all editors-deps $(BENCH_CONTEXT_VOCAB)
	@$(MAKE) --no-print-directory bench-context-run
bench-context-run:
	@$(if $(BENCH_VOCAB),,echo "note: no ../shared vocabulary; token counts come from the demo model's small vocabulary")
	@echo "files: $(words $(BENCH_CONTEXT_FILES)); budget | fimd | naive"
	@for b in 512 1024 2048; do \
		f=$$($(BUILD)/fimd bench-context -m $(BENCH_CONTEXT_VOCAB) --budget $$b $(BENCH_CONTEXT_FILES)); \
		n=$$($(BUILD)/fimd bench-context -m $(BENCH_CONTEXT_VOCAB) --budget $$b --naive $(BENCH_CONTEXT_FILES)); \
		echo "$$b | $$f | $$n"; done
	@echo "second set, files: $(words $(BENCH_CONTEXT_SECOND)); budget | fimd | naive"
	@for b in 512 1024 2048; do \
		f=$$($(BUILD)/fimd bench-context -m $(BENCH_CONTEXT_VOCAB) --budget $$b $(BENCH_CONTEXT_SECOND)); \
		n=$$($(BUILD)/fimd bench-context -m $(BENCH_CONTEXT_VOCAB) --budget $$b --naive $(BENCH_CONTEXT_SECOND)); \
		echo "$$b | $$f | $$n"; done

# libFuzzer targets (clang): `make fuzz-lsp`, `make fuzz-gguf`, `make fuzz-tokenizer`; FUZZ_SECONDS
# per run (default 60), FUZZ_RUNS executions at most (default no limit), FUZZ_ARGS more libFuzzer
# flags (e.g. -max_len=65536). The last lines libFuzzer prints give the execution count.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_ARGS ?=
FUZZ_FLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -Wall -Wextra -I.
# the kernels need their instruction-set flags, so they are compiled on their own
FUZZ_KERNELS := $(patsubst model/%.c,build-fuzz/%.o,$(wildcard model/kernels_*.c))
FUZZ_AVX512 := $(filter build-fuzz/kernels_avx512%,$(FUZZ_KERNELS))
FUZZ_AVX2 := $(filter-out $(FUZZ_AVX512),$(FUZZ_KERNELS))
$(FUZZ_AVX2): build-fuzz/%.o: model/%.c model/model_internal.h model/model.h
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) $(ISA_AVX2) -c $< -o $@
$(FUZZ_AVX512): build-fuzz/%.o: model/%.c model/model_internal.h model/model.h
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) $(ISA_AVX512) -c $< -o $@
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(filter-out model/kernels_%,$(LIB_SRC)) $(FUZZ_KERNELS) $(GRAMMAR_LIB) | $(BUILD)/.deps-ok $(BUILD)/gen/parsers/languages.inc
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -I$(BUILD)/gen -I$(GRAMMAR_DIR) $^ $(LDLIBS) -o $@
fuzz-%: build-fuzz/fuzz_%
	@mkdir -p build-fuzz/corpus-$*
	@cp tests/fuzz/seeds/$*/* build-fuzz/corpus-$*/
	ASAN_OPTIONS=detect_leaks=1 $< -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) $(FUZZ_ARGS) -timeout=10 -rss_limit_mb=4096 build-fuzz/corpus-$*

# clang-format over fimd's own C (not tests/data/, which holds frozen inputs); CI runs format-check.
FORMAT_SRC := $(wildcard base/*.[ch] cli/*.[ch] fim/*.[ch] lsp/*.[ch] model/*.[ch] parsers/*.[ch] \
	tests/*.[ch] tests/fuzz/*.c)
format:
	clang-format -i $(FORMAT_SRC)
format-check:
	@clang-format --dry-run -Werror $(FORMAT_SRC) && echo "format-check: $(words $(FORMAT_SRC)) files formatted"

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -path $(GRAMMAR_DIR) -prune -o -type f -name '*.d' -print 2>/dev/null)
