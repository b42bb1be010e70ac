#include "mindiesd/text/t5_tokenizer.h"

#include <sentencepiece_processor.h>
#include <unicode/brkiter.h>
#include <unicode/uchar.h>
#include <unicode/utext.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::text {

namespace {

constexpr int64_t kMaxModelBytes = 256 << 20;
constexpr int64_t kMaxPaddedLength = 1 << 20;
constexpr int64_t kMaxExtraIds = 1 << 16;
// T5Tokenizer builds its Unigram model with unk_id=2, whatever the SentencePiece model says.
constexpr int32_t kUnigramUnkId = 2;
// tokenizers' Unigram: an unknown character scores this much below the lowest piece.
constexpr double kUnkPenalty = 10.0;
constexpr std::string_view kMeta = "\u2581";  // "▁", SentencePiece's whitespace mark

// SentencePiece's piece types (sentencepiece_model.proto).
constexpr uint64_t kTypeUserDefined = 4;

// ---- the two fields of ModelProto that libsentencepiece's public API does not expose ----

// A protobuf wire-format reader over one message.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  // The next field; false at the end of the message. Sets bad() on malformed input.
  bool next(uint32_t& field, uint32_t& wire, uint64_t& value, std::string_view& bytes) {
    if (p_ == end_ || bad_) return false;
    uint64_t key = 0;
    if (!varint(key)) return fail();
    field = static_cast<uint32_t>(key >> 3);
    wire = static_cast<uint32_t>(key & 7);
    switch (wire) {
      case 0:
        return varint(value) || fail();
      case 1:
        return skip(8);
      case 5:
        return skip(4);
      case 2: {
        uint64_t len = 0;
        if (!varint(len) || len > static_cast<uint64_t>(end_ - p_)) return fail();
        bytes = std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
        p_ += len;
        return true;
      }
      default:
        return fail();
    }
  }
  bool bad() const { return bad_; }

 private:
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && p_ < end_; shift += 7) {
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return fail();
    p_ += n;
    return true;
  }
  bool fail() {
    bad_ = true;
    return false;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool bad_ = false;
};

struct ProtoExtras {
  std::vector<uint64_t> piece_types;  // ModelProto.pieces[i].type (default NORMAL = 1)
  std::string charsmap;               // ModelProto.normalizer_spec.precompiled_charsmap
};

ProtoExtras read_proto_extras(std::string_view model, const std::string& source) {
  ProtoExtras out;
  ProtoReader r(model);
  uint32_t field = 0, wire = 0;
  uint64_t value = 0;
  std::string_view bytes;
  while (r.next(field, wire, value, bytes)) {
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      uint64_t type = 1;
      ProtoReader p(bytes);
      while (p.next(field, wire, value, bytes)) {
        if (field == 3 && wire == 0) type = value;
      }
      MINDIESD_CHECK(!p.bad(), Corrupt, source, ": malformed piece ", out.piece_types.size());
      out.piece_types.push_back(type);
    } else if (field == 3 && wire == 2) {  // NormalizerSpec normalizer_spec
      ProtoReader n(bytes);
      while (n.next(field, wire, value, bytes)) {
        if (field == 2 && wire == 2) out.charsmap.assign(bytes);
      }
      MINDIESD_CHECK(!n.bad(), Corrupt, source, ": malformed normalizer_spec");
    }
  }
  MINDIESD_CHECK(!r.bad(), Corrupt, source, ": malformed model protobuf");
  return out;
}

// ---- tokenizers' Precompiled normalizer (spm_precompiled) over the charsmap ----

// The charsmap is [u32 trie size in bytes][darts-clone double array of u32 units][rewrites, each
// NUL-terminated]; a trie value is the offset of a rewrite.
class CharsMap {
 public:
  CharsMap() = default;
  CharsMap(std::string_view blob, std::string source) : source_(std::move(source)) {
    if (blob.empty()) return;
    MINDIESD_CHECK(blob.size() >= 4, Corrupt, source_, ": precompiled_charsmap is truncated");
    uint32_t trie_bytes = 0;
    for (int k = 3; k >= 0; --k) trie_bytes = (trie_bytes << 8) | static_cast<uint8_t>(blob[k]);
    MINDIESD_CHECK(trie_bytes <= blob.size() - 4 && trie_bytes >= 4, Corrupt, source_,
                   ": precompiled_charsmap's trie (", trie_bytes, " bytes) does not fit in it (",
                   blob.size(), " bytes)");
    units_.resize(trie_bytes / 4);
    for (size_t u = 0; u < units_.size(); ++u) {
      uint32_t v = 0;
      for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(blob[4 + 4 * u + k]);
      units_[u] = v;
    }
    rewrites_.assign(blob.substr(4 + trie_bytes));
    const size_t bad = io::find_invalid_utf8(rewrites_);
    MINDIESD_CHECK(bad == std::string::npos, Corrupt, source_,
                   ": precompiled_charsmap's rewrites are not valid UTF-8");
  }

  bool empty() const { return units_.empty(); }

  // spm_precompiled's Precompiled::transform: the rewrite of the *shortest* prefix of `key`
  // found in the trie (the key ends at a NUL byte), or nullopt.
  std::optional<std::string_view> transform(std::string_view key) const {
    size_t node = 0;
    node ^= offset(units_[0]);
    for (char ch : key) {
      const auto c = static_cast<uint8_t>(ch);
      if (c == 0) break;
      node ^= c;
      if (node >= units_.size()) return std::nullopt;
      const uint32_t unit = units_[node];
      if ((unit & ((1u << 31) | 0xffu)) != c) return std::nullopt;
      node ^= offset(unit);
      if (node >= units_.size()) return std::nullopt;
      if ((unit >> 8) & 1) return rewrite_at(units_[node] & 0x7fffffffu);
    }
    return std::nullopt;
  }

  // Precompiled::normalize: each extended grapheme cluster of fewer than 6 bytes is replaced
  // whole by transform(cluster) when there is one; otherwise its code points are rewritten one by
  // one.
  std::string normalize(std::string_view s) const {
    if (empty()) return std::string(s);
    std::string out;
    out.reserve(s.size() + 8);
    for_each_grapheme(s, [&](size_t a, size_t b) {
      const std::string_view g = s.substr(a, b - a);
      if (g.size() < 6) {
        if (auto r = transform(g)) {
          out += *r;
          return;
        }
      }
      for (size_t i = 0; i < g.size();) {
        const size_t start = i;
        next_code_point(g, i);
        const std::string_view part = g.substr(start, i - start);
        auto r = transform(part);
        out += r ? *r : part;
      }
    });
    return out;
  }

 private:
  static size_t offset(uint32_t unit) {
    return static_cast<size_t>(unit >> 10) << ((unit & (1u << 9)) >> 6);
  }

  std::string_view rewrite_at(size_t index) const {
    MINDIESD_CHECK(index <= rewrites_.size(), Corrupt, source_,
                   ": precompiled_charsmap points past its rewrites");
    const size_t end = std::min(rewrites_.find('\0', index), rewrites_.size());
    const std::string_view r(rewrites_.data() + index, end - index);
    MINDIESD_CHECK(io::find_invalid_utf8(r) == std::string_view::npos, Corrupt, source_,
                   ": precompiled_charsmap points inside a character");
    return r;
  }

  // Extended grapheme clusters (UAX #29) as byte ranges [a, b).
  template <typename F>
  static void for_each_grapheme(std::string_view s, F&& f) {
    const bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return (c & 0x80) == 0; });
    if (ascii) {  // in ASCII only CR LF forms a cluster (GB3)
      for (size_t i = 0; i < s.size();) {
        const size_t n = s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n' ? 2 : 1;
        f(i, i + n);
        i += n;
      }
      return;
    }
    UErrorCode status = U_ZERO_ERROR;
    UText* text = utext_openUTF8(nullptr, s.data(), static_cast<int64_t>(s.size()), &status);
    std::unique_ptr<UText, decltype(&utext_close)> text_guard(text, &utext_close);
    std::unique_ptr<icu::BreakIterator> it(
        icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), status));
    if (U_SUCCESS(status)) it->setText(text, status);
    MINDIESD_CHECK(U_SUCCESS(status), Internal,
                   "ICU grapheme segmentation failed: ", u_errorName(status));
    int32_t a = it->first();
    for (int32_t b = it->next(); b != icu::BreakIterator::DONE; a = b, b = it->next()) {
      f(static_cast<size_t>(a), static_cast<size_t>(b));
    }
  }

  std::vector<uint32_t> units_;
  std::string rewrites_;
  std::string source_;
};

}  // namespace

struct T5Tokenizer::Impl {
  std::string source;  // spiece.model's path, for messages
  std::vector<double> scores;
  std::unordered_map<std::string, int32_t> ids;  // piece -> id; a repeated piece keeps the last
  // A byte trie over the pieces: node << 8 | byte -> child, and the piece ending at each node.
  std::unordered_map<uint64_t, int32_t> edges;
  std::vector<int32_t> node_piece{-1};
  CharsMap charsmap;
  double unk_score = 0;
  int64_t eos = 1, pad = 0, vocab_size = 0;
  AddedTokenMatcher raw_tokens, normalized_tokens;

  void add_piece(std::string_view piece, int32_t id) {
    int32_t node = 0;
    for (char c : piece) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
      auto [it, inserted] = edges.try_emplace(key, static_cast<int32_t>(node_piece.size()));
      if (inserted) node_piece.push_back(-1);
      node = it->second;
    }
    node_piece[node] = id;
  }

  int32_t child(int32_t node, uint8_t c) const {
    auto it = edges.find((static_cast<uint64_t>(node) << 8) | c);
    return it == edges.end() ? -1 : it->second;
  }

  void encode_normalized(std::string_view s, std::vector<int64_t>& out) const;
  void unigram(std::string_view s, std::vector<int64_t>& out) const;
};

// WhitespaceSplit, then Metaspace(replacement "▁", prepend_scheme "always", split): each word
// gets a leading "▁" unless it has one, and is cut before every "▁"; each piece is then
// segmented by the Unigram model on its own.
void T5Tokenizer::Impl::encode_normalized(std::string_view s, std::vector<int64_t>& out) const {
  auto is_space = [](char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); };
  std::string piece;
  size_t i = 0;
  while (i < s.size()) {
    size_t word_end = i;
    if (is_space(next_code_point(s, word_end))) {
      i = word_end;
      continue;
    }
    while (word_end < s.size()) {
      size_t k = word_end;
      if (is_space(next_code_point(s, k))) break;
      word_end = k;
    }
    const std::string_view word = s.substr(i, word_end - i);
    i = word_end;
    size_t start = 0;
    if (!word.starts_with(kMeta)) {
      const size_t cut = std::min(word.find(kMeta), word.size());
      piece.assign(kMeta);
      piece.append(word.substr(0, cut));
      unigram(piece, out);
      start = cut;
    }
    while (start < word.size()) {  // here word[start..] begins with "▁"
      const size_t cut = std::min(word.find(kMeta, start + kMeta.size()), word.size());
      unigram(word.substr(start, cut - start), out);
      start = cut;
    }
  }
}

// tokenizers' Unigram::encode_optimized: Viterbi over the code point boundaries, each piece of
// the vocabulary that starts at a boundary competing by summed score (a later candidate must be
// strictly better), an unknown character scoring unk_score when no single-character piece covers
// it; consecutive unknowns come out as one <unk>.
void T5Tokenizer::Impl::unigram(std::string_view s, std::vector<int64_t>& out) const {
  const size_t n = s.size();
  if (n == 0) return;
  struct Best {
    double score = 0;
    int32_t start = -1;  // -1: not reached yet
    int32_t id = 0;
  };
  std::vector<Best> best(n + 1);
  for (size_t pos = 0; pos < n;) {
    const double base = best[pos].score;
    size_t next = pos;
    next_code_point(s, next);
    const size_t char_len = next - pos;
    bool single = false;
    int32_t node = 0;
    for (size_t k = pos; k < n; ++k) {
      node = child(node, static_cast<uint8_t>(s[k]));
      if (node < 0) break;
      const int32_t id = node_piece[node];
      if (id < 0) continue;
      Best& target = best[k + 1];
      const double cand = base + scores[id];
      if (target.start < 0 || cand > target.score) {
        target = {cand, static_cast<int32_t>(pos), id};
      }
      single |= k + 1 - pos == char_len;
    }
    if (!single) {
      Best& target = best[next];
      const double cand = base + unk_score;
      if (target.start < 0 || cand > target.score) {
        target = {cand, static_cast<int32_t>(pos), kUnigramUnkId};
      }
    }
    pos = next;
  }
  const size_t first = out.size();
  bool last_unk = false;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    const bool is_unk = b.id == kUnigramUnkId;
    if (!(is_unk && last_unk)) out.push_back(b.id);
    last_unk = is_unk;
    end = static_cast<size_t>(b.start);
  }
  std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
}

T5Tokenizer T5Tokenizer::from_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  MINDIESD_CHECK(std::filesystem::is_directory(dir, ec), NotFound, dir.string(),
                 ": no such tokenizer folder (expected spiece.model in it)");
  const std::filesystem::path path = dir / "spiece.model";
  auto impl = std::make_shared<Impl>();
  impl->source = path.string();
  const std::string& src = impl->source;
  const std::string model = io::read_file(path, kMaxModelBytes, "a SentencePiece model");

  sentencepiece::SentencePieceProcessor sp;
  const sentencepiece::util::Status status = sp.LoadFromSerializedProto(model);
  MINDIESD_CHECK(status.ok(), Corrupt, src,
                 ": not a SentencePiece model libsentencepiece can load: ", status.ToString());
  const int n = sp.GetPieceSize();
  const ProtoExtras extras = read_proto_extras(model, src);
  MINDIESD_CHECK(extras.piece_types.size() == static_cast<size_t>(n), Corrupt, src, ": ",
                 extras.piece_types.size(), " pieces in the protobuf, libsentencepiece reads ", n);
  MINDIESD_CHECK(n > kUnigramUnkId, Corrupt, src, ": ", n,
                 " pieces; T5 needs at least <pad>, </s> and <unk>");
  impl->charsmap = CharsMap(extras.charsmap, src);

  const nlohmann::json config = read_tokenizer_config(dir);
  const std::string csrc = (dir / "tokenizer_config.json").string();
  int64_t extra_ids = 100;
  if (auto it = config.find("extra_ids"); it != config.end() && !it->is_null()) {
    MINDIESD_CHECK(
        it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() <= kMaxExtraIds,
        InvalidArgument, csrc, ": \"extra_ids\" must be an integer in [0, ", kMaxExtraIds,
        "], got ", io::json_excerpt(*it));
    extra_ids = it->get<int64_t>();
  }

  // The vocabulary: the pieces, then <extra_id_{extra_ids-1}> ... <extra_id_0> (T5Converter).
  std::vector<AddedToken> added;
  double min_score = std::numeric_limits<double>::infinity();
  impl->scores.reserve(static_cast<size_t>(n + extra_ids));
  auto add = [&](const std::string& piece, double score) {
    const auto id = static_cast<int32_t>(impl->scores.size());
    impl->scores.push_back(score);
    impl->ids.insert_or_assign(piece, id);
    impl->add_piece(piece, id);
    min_score = std::min(min_score, score);
  };
  for (int id = 0; id < n; ++id) {
    const std::string& piece = sp.IdToPiece(id);
    const double score = sp.GetScore(id);
    MINDIESD_CHECK(std::isfinite(score), Corrupt, src, ": piece ", id, " has score ", score);
    add(piece, score);
    // SentencePieceExtractor: control pieces become special added tokens, user-defined ones
    // plain added tokens; both are matched on the raw text.
    if (sp.IsControl(id)) added.push_back(AddedToken{piece, -1});
    if (extras.piece_types[id] == kTypeUserDefined) {
      AddedToken t{piece, -1};
      t.special = false;
      added.push_back(std::move(t));
    }
  }
  for (int64_t k = extra_ids - 1; k >= 0; --k) add(str_cat("<extra_id_", k, ">"), 0.0);
  impl->vocab_size = static_cast<int64_t>(impl->scores.size());
  impl->unk_score = min_score - kUnkPenalty;

  auto lookup = [&](const std::string& token) -> int64_t {
    auto it = impl->ids.find(token);
    return it == impl->ids.end() ? -1 : it->second;
  };
  // transformers' order of the special token fields: eos, unk, pad. (<unk> only needs to exist:
  // the Unigram model's unknown id is 2 whatever the field says, as in T5Tokenizer.)
  struct Special {
    const char* key;
    std::string_view fallback;
    int64_t* id;
  };
  int64_t unk_token_id = 0;
  for (const Special& s :
       {Special{"eos_token", "</s>", &impl->eos}, Special{"unk_token", "<unk>", &unk_token_id},
        Special{"pad_token", "<pad>", &impl->pad}}) {
    AddedToken t = config_special_token(config, s.key, s.fallback, csrc);
    *s.id = lookup(t.content);
    MINDIESD_CHECK(*s.id >= 0, Corrupt, s.key, " \"", t.content, "\" is not a piece of ", src);
    added.push_back(std::move(t));
  }
  for (int64_t k = 0; k < extra_ids; ++k)
    added.push_back(AddedToken{str_cat("<extra_id_", k, ">")});
  for (AddedToken& t : config_added_tokens(config, csrc)) added.push_back(std::move(t));

  // Resolve ids; one entry per content, the last one's flags winning.
  std::vector<AddedToken> raw, normalized;
  for (size_t k = 0; k < added.size(); ++k) {
    bool later = false;
    for (size_t m = k + 1; m < added.size() && !later; ++m) {
      later = added[m].content == added[k].content;
    }
    if (later) continue;
    AddedToken& t = added[k];
    t.id = lookup(t.content);
    MINDIESD_CHECK(t.id >= 0, Unsupported, csrc, ": added token \"", t.content,
                   "\" is not in the vocabulary of ", src,
                   " (tokens beyond the vocabulary are not supported)");
    if (t.normalized) {
      t.content = impl->charsmap.normalize(t.content);
      normalized.push_back(std::move(t));
    } else {
      raw.push_back(std::move(t));
    }
  }
  impl->raw_tokens = AddedTokenMatcher(std::move(raw));
  impl->normalized_tokens = AddedTokenMatcher(std::move(normalized));
  return T5Tokenizer(std::move(impl));
}

std::vector<int64_t> T5Tokenizer::encode(std::string_view text) const {
  check_text(text, "T5 tokenizer");
  const Impl& m = *impl_;
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  for (const AddedTokenMatcher::Piece& p : m.raw_tokens.split(text)) {
    if (p.id >= 0) {
      out.push_back(p.id);
      continue;
    }
    const std::string norm = m.charsmap.normalize(text.substr(p.begin, p.end - p.begin));
    if (m.normalized_tokens.empty()) {
      m.encode_normalized(norm, out);
      continue;
    }
    for (const AddedTokenMatcher::Piece& q : m.normalized_tokens.split(norm)) {
      if (q.id >= 0) {
        out.push_back(q.id);
      } else {
        m.encode_normalized(std::string_view(norm).substr(q.begin, q.end - q.begin), out);
      }
    }
  }
  out.push_back(m.eos);
  return out;
}

std::vector<int64_t> T5Tokenizer::encode_padded(std::string_view text, int64_t max_length,
                                                std::vector<int64_t>* attention_mask) const {
  MINDIESD_CHECK(max_length >= 1 && max_length <= kMaxPaddedLength, InvalidArgument,
                 "T5 tokenizer: max_length must be in [1, ", kMaxPaddedLength,
                 "] (room for </s>), got ", max_length);
  std::vector<int64_t> ids = encode(text);
  if (static_cast<int64_t>(ids.size()) > max_length) {
    ids.resize(static_cast<size_t>(max_length));
    ids.back() = impl_->eos;
  }
  if (attention_mask != nullptr) {
    attention_mask->assign(static_cast<size_t>(max_length), 0);
    std::fill_n(attention_mask->begin(), ids.size(), 1);
  }
  ids.resize(static_cast<size_t>(max_length), impl_->pad);
  return ids;
}

int64_t T5Tokenizer::pad_id() const { return impl_->pad; }
int64_t T5Tokenizer::eos_id() const { return impl_->eos; }
int64_t T5Tokenizer::unk_id() const { return kUnigramUnkId; }
int64_t T5Tokenizer::vocab_size() const { return impl_->vocab_size; }

}  // namespace mindiesd::text
