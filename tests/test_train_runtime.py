"""The CPU speed-up of TRL's fused LM head: same loss, only label positions projected."""

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from conf_profile.train import runtime


def _tiny_model() -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64)
    return Qwen3ForCausalLM(cfg)


def test_compact_fused_head_scores_only_labelled_positions_with_the_same_loss(monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    assert runtime.compact_logprobs_on_cpu()
    assert runtime.compact_logprobs_on_cpu()  # idempotent: never wraps itself twice

    model = _tiny_model()
    ids = torch.randint(3, 97, (2, 20))
    labels = ids.clone()
    labels[:, :15] = -100  # a prompt of 15 tokens, an answer of 5
    labels[1, 19] = -100  # a padded position
    expected = model(input_ids=ids, labels=labels).loss  # transformers' own loss over full logits

    rows_scored = []
    original_apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        rows_scored.append(hidden.shape[0])
        return original_apply(hidden, *args)

    class Spy:
        apply = staticmethod(spy)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    add_fused_lm_head(model)
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    valid_next_tokens = int((labels[:, 1:] != -100).sum())
    assert rows_scored == [valid_next_tokens]  # 8 label positions scored, not 2 x 19
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
    out.loss.backward()
    assert model.lm_head.weight.grad is not None
