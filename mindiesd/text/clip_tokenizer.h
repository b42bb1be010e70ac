// CLIP's byte-level BPE tokenizer, giving the ids of HF transformers' CLIPTokenizer (the
// tokenizers-backed one of transformers 5) loaded from vocab.json + merges.txt:
//
//   added tokens  <|startoftext|>, <|endoftext|> (and tokenizer_config.json's) are cut out of the
//                 raw text and map to their ids
//   normalizer    NFC, every run of whitespace -> one space, lowercase (full Unicode mapping per
//                 code point, so U+0130 becomes "i" + U+0307 and a final sigma stays σ)
//   pre-tokenizer the CLIP regex <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
//                 [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ keeps its matches and drops the rest, then
//                 ByteLevel splits those with the GPT-2 regex and maps every byte to a character
//   model         BPE on each piece, "</w>" appended to its last character, merges applied by
//                 rank (lowest first, leftmost among equals) as tokenizers' Word::merge_all
//   post-process  <|startoftext|> ids <|endoftext|> (encode_padded only)
//
// Unicode properties (\p{L}, \p{N}, \s = White_Space, lowercase, NFC) come from ICU. tokenizers'
// NFC has Unicode 9.0 tables, which we follow (characters assigned later pass through unchanged);
// its regex and lowercase tables are newer than ICU 72's Unicode 15.0, so the ~5000 characters
// added in Unicode 15.1/16.0 (unassigned for ICU 72) classify as "other" here but as letters or
// numbers in HF. Every character assigned in Unicode 15.0 matches. Invalid UTF-8 is refused
// (InvalidArgument); HF takes Python str, which cannot hold it.
//
// Load errors: NotFound for a missing folder or file; Corrupt for a vocab.json that is not a JSON
// object of token -> non-negative integer id, a merges.txt line that is not two tokens separated
// by one space, a merge whose parts or result are not in the vocabulary, or a special token
// missing from the vocabulary; each message names the file (and line).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mindiesd/text/tokens.h"

namespace mindiesd::text {

class ClipTokenizer {
 public:
  // The special tokens take transformers' CLIPTokenizer defaults (bos <|startoftext|>, eos, pad
  // and unk <|endoftext|>).
  static ClipTokenizer from_files(const std::filesystem::path& vocab_json,
                                  const std::filesystem::path& merges_txt);
  // vocab.json + merges.txt in `dir`, and tokenizer_config.json when present: its bos_token,
  // eos_token, pad_token, unk_token and added tokens (added_tokens_decoder,
  // additional_special_tokens), which must all be in vocab.json (Unsupported otherwise: HF would
  // append them to the vocabulary).
  static ClipTokenizer from_folder(const std::filesystem::path& dir);

  // The ids of `text`, without special tokens, truncation or padding.
  std::vector<int64_t> encode(std::string_view text) const;
  // bos + ids + eos, the ids truncated so that max_length holds them with eos last, then padded
  // with pad_id() to exactly max_length (what diffusers asks for: padding="max_length",
  // truncation=True). InvalidArgument when max_length < 2 (HF would then silently return more than
  // max_length ids).
  std::vector<int64_t> encode_padded(std::string_view text, int64_t max_length = 77) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  // One more than the largest id in vocab.json (the number of entries for real vocabularies).
  int64_t vocab_size() const;

 private:
  struct Impl;
  explicit ClipTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  static ClipTokenizer from_parts(const std::filesystem::path& vocab_json,
                                  const std::filesystem::path& merges_txt,
                                  const nlohmann::json& config, const std::string& config_source);
  std::shared_ptr<const Impl> impl_;  // immutable: copies share it, encode is thread-safe
};

}  // namespace mindiesd::text
