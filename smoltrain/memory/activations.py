"""Activation memory: the bytes autograd keeps for backward, per token and per decoder layer.

The accounting follows Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
Models" (2022): sum the tensors each op saves for its backward. It is re-derived for what
smoltrain actually runs: frozen base weights (a frozen linear, 4-bit or 16-bit, saves no input),
LoRA adapters (each saves its dropout mask, the dropped input and its rank-r hidden), fused
attention (sdpa flash/mem-efficient: q, k, v, output and log-sum-exp, no seq x seq matrix; k and v
are repeated to all heads when a padding mask is present, as transformers does on CUDA), Liger's
RMSNorm (input + fp32 rstd) and SwiGLU/GeGLU (gate and up) kernels or the eager PyTorch ones
(RMSNorm upcasts to fp32; the activation keeps gate, act(gate) and up), and TRL's chunked LM head,
which never builds the (tokens x vocab) logits. Tests check these figures against the tensors
torch really saves for the tiny Llama (saved-tensor hooks).

Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from smoltrain.memory.shapes import ModelShape

# TRL 1.16's chunked log-prob head (trl/kernels/chunked_logprob.py) works on tiles of
# TOKEN_CHUNK tokens x VOCAB_CHUNK vocabulary entries.
TOKEN_CHUNK = 4096
VOCAB_CHUNK = 32768
FP32 = 4


@dataclass(frozen=True)
class ActivationModel:
    """How one forward/backward of a given model keeps its activations."""

    shape: ModelShape
    act_bytes: int  # compute dtype: 2 for bf16/fp16, 4 for fp32
    lora_rank: int | None  # None: full fine-tuning (every linear saves its input)
    lora_targets: tuple[str, ...]
    lora_dropout: float
    liger: bool  # Liger's RMSNorm and SwiGLU/GeGLU kernels instead of the eager ones
    kv_repeated: bool  # k, v repeated to every head before attention (a padding mask on CUDA)
    mask_bytes: int = 1  # a dropout mask element: bool on CUDA (CPU's dropout keeps a float mask)

    # One decoder layer, per token (the seq x seq part of eager attention is separate).
    def norm_bytes(self, width: int) -> int:
        """An RMSNorm saves its input (fp32 in the eager version, which upcasts) and a fp32 rstd."""
        return width * (self.act_bytes if self.liger else max(self.act_bytes, FP32)) + FP32

    def attention_bytes(self) -> int:
        s = self.shape
        kv_heads = s.num_heads if self.kv_repeated or s.eager_attention else s.num_kv_heads
        qkv_out = (2 * s.num_heads + 2 * kv_heads) * s.head_dim * self.act_bytes  # q, k, v, output
        lse = s.num_heads * FP32  # log-sum-exp per head (fused kernels only)
        qk_norm = 0
        if s.qk_norm:  # RMSNorm per head over head_dim, on q and k before RoPE
            qk_norm = (s.num_heads + s.num_kv_heads) * self.norm_bytes(s.head_dim)
        return qkv_out + (0 if s.eager_attention else lse) + qk_norm

    def mlp_bytes(self) -> int:
        # Liger's fused SwiGLU/GeGLU recomputes act(gate) in backward; eager keeps it.
        return (2 if self.liger else 3) * self.shape.intermediate_size * self.act_bytes

    def adapter_bytes(self) -> int:
        """What the trainable layers add: LoRA's saved inputs, or every linear's input in full fine-tuning."""
        s, e = self.shape, self.act_bytes
        # Which tensor feeds each linear layer: q/k/v share one, gate/up another.
        source = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in", "qkv_proj": "attn_in",
                  "o_proj": "attn_out", "gate_proj": "mlp_in", "up_proj": "mlp_in", "gate_up_proj": "mlp_in",
                  "down_proj": "mlp_act"}  # fmt: skip
        source = {name: where for name, where in source.items() if name in {lin.name for lin in s.linears}}
        width = {lin.name: lin.in_features for lin in s.linears}
        if self.lora_rank is None:
            # Full fine-tuning: each distinct input once, and each norm's output (its weight trains too).
            inputs = {source[name]: width[name] for name in source}
            return sum(inputs.values()) * e + s.norms_per_layer * s.hidden_size * e
        targets = [name for name in source if name in self.lora_targets]
        rank_part = len(targets) * self.lora_rank * e  # lora_A's output, saved by lora_B
        if self.lora_dropout > 0:
            # Each adapter draws its own dropout mask and keeps its own dropped copy of the input.
            return sum(width[n] * (e + self.mask_bytes) for n in targets) + rank_part
        shared = {source[n]: width[n] for n in targets}  # no dropout: adapters reading one tensor share it
        return sum(shared.values()) * e + rank_part

    def layer_bytes_per_token(self) -> int:
        s = self.shape
        return (
            s.norms_per_layer * self.norm_bytes(s.hidden_size)
            + self.attention_bytes()
            + self.mlp_bytes()
            + self.adapter_bytes()
        )

    def eager_attention_bytes(self, n_seq: int, seq: int) -> int:
        """Eager attention keeps seq x seq matrices per head: soft-capped scores, fp32 softmax, its cast."""
        if not self.shape.eager_attention:
            return 0
        return n_seq * self.shape.num_heads * seq * seq * (2 * self.act_bytes + FP32)

    # Whole forward passes.
    def saved_bytes(self, n_seq: int, seq: int, checkpointing: bool) -> int:
        """Bytes held for backward after the forward (the LM head excluded; see head_bytes).

        With (non-reentrant) checkpointing only each layer's input is kept; the backward then
        recomputes one layer at a time, which `recompute_bytes` adds at the peak."""
        s, tokens = self.shape, n_seq * seq
        per_layer = tokens * s.hidden_size * self.act_bytes if checkpointing else (
            tokens * self.layer_bytes_per_token() + self.eager_attention_bytes(n_seq, seq)
        )  # fmt: skip
        token_ids = tokens * 8  # int64 ids kept by the (frozen) embedding lookup
        rope = 2 * seq * s.head_dim * self.act_bytes  # cos and sin, shared by all layers
        return s.num_layers * per_layer + tokens * self.norm_bytes(s.hidden_size) + token_ids + rope

    def recompute_bytes(self, n_seq: int, seq: int, checkpointing: bool) -> int:
        """Held during backward on top of `saved_bytes`: a recomputed layer (with checkpointing) and
        the gradients flowing through one layer (grads of the hidden state and the MLP intermediates)."""
        s, tokens = self.shape, n_seq * seq
        grads = tokens * (3 * s.hidden_size + 3 * s.intermediate_size) * self.act_bytes
        if not checkpointing:
            return grads
        return grads + tokens * self.layer_bytes_per_token() + self.eager_attention_bytes(n_seq, seq)

    def forward_only_bytes(self, n_seq: int, seq: int) -> int:
        """Peak of a no-grad forward (a reference pass, a prefill): one layer's live intermediates."""
        s, tokens = self.shape, n_seq * seq
        live = tokens * (3 * s.hidden_size + 3 * s.intermediate_size) * self.act_bytes
        return live + self.eager_attention_bytes(n_seq, seq)

    def head_bytes(self, label_tokens: int, grad: bool = True) -> int:
        """TRL's chunked LM head: one (tokens x vocab) tile at a time, plus its saved inputs and the
        fp32 gradient of the hidden states in backward."""
        s = self.shape
        tile = min(label_tokens, TOKEN_CHUNK) * min(s.vocab_size, VOCAB_CHUNK) * self.act_bytes
        if not grad:
            return tile
        saved = label_tokens * (s.hidden_size * self.act_bytes + 2 * FP32)  # masked hidden copy, log_z, entropy
        return tile + saved + label_tokens * s.hidden_size * FP32

    def full_logits_bytes(self, label_tokens: int) -> int:
        """What materialized logits would cost (compute-dtype logits, their fp32 upcast and its gradient):
        the memory TRL's chunked head (like Liger's fused linear cross-entropy) saves."""
        return label_tokens * self.shape.vocab_size * (self.act_bytes + 2 * FP32)
