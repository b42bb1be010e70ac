// T5's SentencePiece Unigram tokenizer, giving the ids of HF transformers' T5Tokenizer (the
// tokenizers-backed one of transformers 5, which converts spiece.model at load time).
//
// spiece.model is loaded and validated by libsentencepiece, which also gives the pieces and their
// scores. Its own Encode() is not used, because HF's converted pipeline differs from it:
//   - added tokens (<pad>, </s>, <unk>, the control and user-defined pieces, <extra_id_N>,
//     tokenizer_config.json's tokens) are cut out of the raw text first and map to their ids;
//     SentencePiece reads "</s>" or "<extra_id_0>" in the text as plain characters.
//   - the model's precompiled_charsmap (nmt_nfkc) is applied as tokenizers' Precompiled
//     normalizer does: per extended grapheme cluster, a cluster under 6 bytes is replaced whole by
//     the rewrite of its *shortest* prefix in the charsmap (so "Ｂ" + U+0301 becomes "B"), longer
//     clusters code point by code point; SentencePiece rewrites the longest prefix instead.
//   - no add_dummy_prefix / remove_extra_whitespaces: the text is split on Unicode whitespace
//     (WhitespaceSplit) and every word gets its own "▁" prefix unless it starts with one
//     (Metaspace, prepend_scheme "always", split at every "▁"), and each piece is segmented alone.
//   - the Viterbi search is tokenizers' Unigram::encode_optimized: every piece of the vocabulary
//     (control pieces and <extra_id_N> included) can match, unknown characters score
//     min_score - 10 and consecutive unknowns fuse into one <unk> (id 2, as T5Tokenizer fixes it).
//   - the vocabulary is the SentencePiece pieces followed by <extra_id_{extra_ids-1}> ...
//     <extra_id_0> (extra_ids from tokenizer_config.json, default 100), and </s> is appended.
// Grapheme clusters and whitespace come from ICU 72 (Unicode 15.0); the tokenizers wheel has
// newer tables, so text with characters added in Unicode 15.1/16.0 (unassigned for ICU 72) may
// cluster differently. Invalid UTF-8 is refused (InvalidArgument).
//
// Load errors: NotFound for a missing folder or spiece.model; Corrupt (naming the file) when
// libsentencepiece rejects the model, its charsmap is malformed, or </s>, <pad> or <unk> are not
// pieces; InvalidArgument for a malformed tokenizer_config.json field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/text/tokens.h"

namespace mindiesd::text {

class T5Tokenizer {
 public:
  // spiece.model in `dir`, and tokenizer_config.json when present (extra_ids, eos_token,
  // pad_token, unk_token, added tokens).
  static T5Tokenizer from_folder(const std::filesystem::path& dir);

  // The ids of `text` followed by </s>; no truncation.
  std::vector<int64_t> encode(std::string_view text) const;
  // The ids truncated so that max_length holds them with </s> last, padded with pad_id() to
  // exactly max_length (diffusers' padding="max_length", truncation=True). max_length 1 gives
  // just </s>, as HF does; InvalidArgument when max_length < 1. When `attention_mask` is given it
  // receives HF's mask: max_length entries, 1 for the tokens and 0 for the padding.
  std::vector<int64_t> encode_padded(std::string_view text, int64_t max_length,
                                     std::vector<int64_t>* attention_mask = nullptr) const;

  int64_t pad_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;
  // SentencePiece pieces + extra_ids.
  int64_t vocab_size() const;

 private:
  struct Impl;
  explicit T5Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable: copies share it, encode is thread-safe
};

}  // namespace mindiesd::text
