/* cli/synth_cmd.c — `fimd synth`: writes a seeded random deepseek2 GGUF of any shape and type,
 * for tests, the demo and benchmarks. Shape options start from a preset (--like). */
#include "cli/cli.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void synth_usage(FILE *f)
{
    fputs(
        "usage: fimd synth --like lite|full|tiny [options] -o OUT.gguf\n"
        "  --type TYPE        weights: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K "
        "Q6_K\n"
        "                     IQ4_NL IQ4_XS, or a mix as llama-quantize makes them: Q4_K_M Q5_K_M\n"
        "                     Q3_K_S Q3_K_M Q3_K_L Q2_K IQ4_XS (output in Q6_K; attn_output and\n"
        "                     down projections at more bits)\n"
        "  --seed S           random seed (default 1)\n"
        "  --vocab-from FILE  copy the tokenizer of this GGUF\n"
        "  --merges-from FILE learn BPE merges from FILE (repeatable; without --vocab-from)\n"
        "  --merges N         how many merges to learn (default 256)\n"
        "  --layers N --dense N --embd N --heads N --q-lora N --kv-lora N --qk-nope N\n"
        "  --qk-rope N --v-head N --ff N --experts N --experts-used N --groups N\n"
        "  --groups-used N --shared N --ff-exp N --ctx N --expert-scale X\n"
        "  --legacy-kvb       write the old unsplit attn_kv_b form\n",
        f);
}

static int set_type(model_synth_opts *o, const char *name)
{
    int base = model_synth_mix_base(name);
    if (base >= 0) {
        o->type = base;
        o->mix = name;
        return 0;
    }
    int t = model_type_from_name(name);
    if (t < 0 || !model_type_writable(t) || t == MODEL_TYPE_Q8_1 || t == MODEL_TYPE_Q8_K) return -1;
    o->type = t;
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    const char *like = "tiny", *out = NULL, *type = "F32", *vocab = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--like")) like = argv[i + 1];
    model_synth_opts o;
    if (model_synth_preset(&o, like))
        return cli_fail("synth: unknown --like '%s' (lite, full, tiny)", like);
    const char **files = calloc((size_t)argc, sizeof *files);
    struct {
        const char *flag;
        int *dst;
    } ints[] = {
        {"--layers", &o.hp.n_layer},     {"--dense", &o.hp.n_dense},
        {"--embd", &o.hp.n_embd},        {"--heads", &o.hp.n_head},
        {"--q-lora", &o.hp.q_lora_rank}, {"--kv-lora", &o.hp.kv_lora_rank},
        {"--qk-nope", &o.hp.qk_nope},    {"--qk-rope", &o.hp.qk_rope},
        {"--v-head", &o.hp.v_head},      {"--ff", &o.hp.n_ff},
        {"--experts", &o.hp.n_expert},   {"--experts-used", &o.hp.n_expert_used},
        {"--groups", &o.hp.n_group},     {"--groups-used", &o.hp.n_group_used},
        {"--shared", &o.hp.n_shared},    {"--ff-exp", &o.hp.n_ff_exp},
        {"--ctx", &o.hp.n_ctx_train},    {"--merges", &o.n_merges},
    };
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool done = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_usage(stdout);
            free(files);
            return 0;
        }
        if (!strcmp(a, "--legacy-kvb")) {
            o.hp.legacy_kvb = true;
            continue;
        }
        if (!val) {
            rc = cli_fail("synth: '%s' needs a value (or is unknown)", a);
            break;
        }
        for (size_t k = 0; k < sizeof ints / sizeof *ints && !done; k++) {
            if (strcmp(a, ints[k].flag)) continue;
            long v;
            if (cli_parse_int(val, 0, 1 << 24, &v)) rc = cli_fail("synth: %s needs a number", a);
            *ints[k].dst = (int)v;
            done = true;
        }
        if (done) {
        } else if (!strcmp(a, "--like")) {
        } else if (!strcmp(a, "-o")) {
            out = val;
        } else if (!strcmp(a, "--type")) {
            type = val;
        } else if (!strcmp(a, "--vocab-from")) {
            vocab = val;
        } else if (!strcmp(a, "--merges-from")) {
            files[o.n_merge_files++] = val;
        } else if (!strcmp(a, "--seed")) {
            long v;
            if (cli_parse_int(val, 0, 0x7fffffffL, &v))
                rc = cli_fail("synth: --seed needs a number");
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--expert-scale")) {
            o.hp.weights_scale = strtof(val, NULL);
        } else {
            rc = cli_fail("synth: unknown option '%s'", a);
        }
        i++;
    }
    if (!rc && !out) rc = cli_fail("synth: -o OUT.gguf is required");
    if (!rc && set_type(&o, type)) rc = cli_fail("synth: unknown or unusable --type '%s'", type);
    if (!rc && vocab && o.n_merge_files)
        rc = cli_fail("synth: --vocab-from and --merges-from exclude each other");
    o.vocab_from = vocab;
    o.merge_files = files;
    model_err err = {{0}};
    if (!rc && model_synth(&o, out, &err)) rc = cli_fail("%s", err.msg);
    free(files);
    return rc;
}
