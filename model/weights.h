/* model/weights.h — the immutable half of a deepseek2 model (llama2.c's Config and
 * TransformerWeights): hyper-parameters, RoPE constants and every weight bound to the GGUF's
 * memory. Filled by weights.c at load, only read afterwards (by the forward pass in ds2.c). */
#ifndef FIMD_MODEL_WEIGHTS_H
#define FIMD_MODEL_WEIGHTS_H

#include "model_internal.h"

enum { MAX_EXPERTS = 1024, MAX_USED = 64 }; /* routing buffers live on the stack */

typedef struct layer {
    wt attn_norm;                     /* [D] */
    wt wq;                            /* Lite: [D -> H*Dk] */
    wt wq_a, q_a_norm, wq_b;          /* full: [D -> Q], [Q], [Q -> H*Dk] */
    wt wkv_a;                         /* [D -> R+Dr]: latent first, rope part last */
    wt kv_a_norm;                     /* [R] */
    wt wk_b;                          /* per head h: [Dn -> R] (W_UK_h^T) */
    wt wv_b;                          /* per head h: [R -> Dv] */
    wt wo;                            /* [H*Dv -> D] */
    wt ffn_norm;                      /* [D] */
    wt gate, up, down;                /* dense: [D -> F], [D -> F], [F -> D] */
    wt router;                        /* MoE: [D -> E], F32 */
    wt gate_exps, up_exps, down_exps; /* [D -> Fe] x E, [Fe -> D] x E */
    wt gate_sh, up_sh, down_sh;       /* [D -> Fe*S], [Fe*S -> D] */
} layer;

/* Owns the GGUF (whose memory the weights borrow), the vocabulary, the layers array and the
 * tensors derived from a legacy kv_b. */
typedef struct model_weights {
    model_gguf *g;
    model_vocab *vocab;
    model_hparams hp;
    float rope_mag; /* 1 for every DeepSeek file (the YaRN correction lives in kq_scale) */
    float yarn_low, yarn_high, freq_scale, ext_factor;
    wt tok_embd; /* [D] x V */
    wt out_norm; /* [D] */
    wt output;   /* [D -> V] (the embedding when the head is tied) */
    layer *layers;
    void **owned; /* buffers for derived legacy tensors */
    int n_owned;
    bool locked; /* the GGUF's memory is locked (mlock) */
} model_weights;

/* Open, check and bind the file at path into a zeroed *ws; on failure *ws holds what was done so
 * far, for model__weights_free. */
int model__weights_load(model_weights *ws, const char *path, const model_opts *o, model_err *err);
void model__weights_free(model_weights *ws);
/* See model_weight_bytes_per_token. */
size_t model__weights_bytes_per_token(const model_weights *ws);

#endif
