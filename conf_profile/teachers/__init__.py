"""Stage 1 teachers: prompt with confidence hints, the shared answer parser, backends (lexicon, openai,
vllm, hf) and resumable sharded labelling. See docs/teachers.md."""

from conf_profile.teachers.labelling import label_interval, label_shard, shard_of
from conf_profile.teachers.parse import ParsedAnswer, answer_to_rows, parse_answer
from conf_profile.teachers.prompt import PromptBuilder, build_messages

__all__ = ["ParsedAnswer", "PromptBuilder", "answer_to_rows", "build_messages", "label_interval", "label_shard",
           "parse_answer", "shard_of"]
