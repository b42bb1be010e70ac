#include "mindiesd/text/clip_tokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <string>
#include <unordered_map>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/io/file_util.h"
#include "mindiesd/io/json_util.h"

namespace mindiesd::text {

namespace {

constexpr int64_t kMaxVocabBytes = 256 << 20;
constexpr int64_t kMaxMergesBytes = 256 << 20;
// A guard against absurd lengths (a typo, an overflowed value) before allocating the padding.
constexpr int64_t kMaxPaddedLength = 1 << 20;

// transformers' CLIPTokenizer defaults.
constexpr std::string_view kBos = "<|startoftext|>";
constexpr std::string_view kEos = "<|endoftext|>";
constexpr std::string_view kEndOfWord = "</w>";

enum CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// \p{L}, \p{N} and \s (White_Space) as the tokenizers regexes (Oniguruma) see them.
CharClass char_class(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return kLetter;
    if (c >= '0' && c <= '9') return kNumber;
    if (c == ' ' || (c >= 0x09 && c <= 0x0d)) return kSpace;
    return kOther;
  }
  const auto u = static_cast<UChar32>(c);
  const uint32_t mask = U_MASK(u_charType(u));
  if (mask & U_GC_L_MASK) return kLetter;
  if (mask & U_GC_N_MASK) return kNumber;
  if (u_isUWhiteSpace(u)) return kSpace;
  return kOther;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others (controls,
// space, DEL, NBSP, soft hyphen) for U+0100 onwards in byte order.
std::array<char32_t, 256> byte_chars() {
  std::array<char32_t, 256> out{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    out[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Merge {
  int32_t rank;
  int32_t id;  // the merged token
};

// The contractions of the CLIP and GPT-2 regexes, in their order of alternation.
constexpr std::string_view kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

size_t contraction_at(std::string_view s, size_t pos) {
  if (s[pos] != '\'') return 0;
  for (std::string_view c : kContractions) {
    if (s.compare(pos, c.size(), c) == 0) return c.size();
  }
  return 0;
}

}  // namespace

struct ClipTokenizer::Impl {
  std::unordered_map<uint64_t, Merge> merges;
  std::array<int32_t, 256> byte_id{};      // the byte's character, -1 when not in the vocabulary
  std::array<int32_t, 256> byte_eow_id{};  // the same with "</w>", for a piece's last byte
  int64_t bos = 0, eos = 0, pad = 0, unk = 0, vocab_size = 0;
  AddedTokenMatcher raw_tokens;         // matched on the raw text
  AddedTokenMatcher normalized_tokens;  // matched on the normalized text

  std::string normalize(std::string_view text) const;
  void encode_normalized(std::string_view text, std::vector<int64_t>& out) const;
  void bpe(std::string_view word, std::vector<int64_t>& out) const;
};

// NFC, whitespace runs -> " ", lowercase: tokenizers' Sequence[NFC, Replace(\s+, " "), Lowercase].
std::string ClipTokenizer::Impl::normalize(std::string_view text) const {
  std::u32string cps;
  cps.reserve(text.size());
  const bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; });
  if (ascii) {
    for (char c : text) cps.push_back(static_cast<unsigned char>(c));
  } else {
    // tokenizers' NFC comes from the unicode-normalization-alignments crate, whose tables are
    // Unicode 9.0: a character assigned later is an unknown starter to it, with no combining
    // class, decomposition or composition. Since normalization data of assigned characters never
    // changes, NFC with ICU's newer tables on the runs between such characters, which stay as
    // they are, gives the same result.
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    MINDIESD_CHECK(U_SUCCESS(status), Internal,
                   "ICU NFC normalizer unavailable: ", u_errorName(status));
    auto nfc_run = [&](std::string_view run) {
      icu::UnicodeString u = icu::UnicodeString::fromUTF8(
          icu::StringPiece(run.data(), static_cast<int32_t>(run.size())));
      if (!nfc->isNormalized(u, status)) u = nfc->normalize(u, status);
      MINDIESD_CHECK(U_SUCCESS(status), Internal,
                     "ICU NFC normalization failed: ", u_errorName(status));
      for (int32_t i = 0; i < u.length();) {
        const UChar32 c = u.char32At(i);
        cps.push_back(static_cast<char32_t>(c));
        i += U16_LENGTH(c);
      }
    };
    size_t run = 0;
    for (size_t i = 0; i < text.size();) {
      const size_t at = i;
      const char32_t c = next_code_point(text, i);
      if (c < 0x300) continue;  // all assigned by Unicode 1.1
      UVersionInfo age;
      u_charAge(static_cast<UChar32>(c), age);
      if (age[0] <= 9) continue;
      if (run < at) nfc_run(text.substr(run, at - run));
      cps.push_back(c);
      run = i;
    }
    if (run < text.size()) nfc_run(text.substr(run));
  }
  std::string out;
  out.reserve(text.size() + 8);
  bool in_space = false;
  for (char32_t c : cps) {
    if (char_class(c) == kSpace) {
      if (!in_space) out.push_back(' ');
      in_space = true;
      continue;
    }
    in_space = false;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (c == 0x130) {
      // Rust's char::to_lowercase applies SpecialCasing's one unconditional lowercase mapping.
      out += "i\u0307";
    } else {
      append_utf8(out, static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))));
    }
  }
  return out;
}

// The pre-tokenizers and the BPE model on normalized text (no added tokens left in it).
void ClipTokenizer::Impl::encode_normalized(std::string_view s, std::vector<int64_t>& out) const {
  // Code point starts and classes, with a sentinel start at the end.
  std::vector<uint32_t> begin;
  std::vector<CharClass> cls;
  begin.reserve(s.size() + 1);
  cls.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    begin.push_back(static_cast<uint32_t>(i));
    cls.push_back(char_class(next_code_point(s, i)));
  }
  begin.push_back(static_cast<uint32_t>(s.size()));
  const size_t n = cls.size();

  // ByteLevel's GPT-2 split of one CLIP piece [a, b) (code point indices; no whitespace in it):
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ , then BPE on each part's bytes.
  auto byte_level = [&](size_t a, size_t b) {
    size_t i = a;
    while (i < b) {
      size_t j = i;
      if (const size_t c = contraction_at(s, begin[i]); c != 0 && begin[i] + c <= begin[b]) {
        j = i + c;  // contractions are ASCII: one code point per byte
      } else {
        const CharClass k = cls[i];
        j = i + 1;
        while (j < b && cls[j] == k) ++j;
      }
      bpe(s.substr(begin[i], begin[j] - begin[i]), out);
      i = j;
    }
  };

  // The CLIP Split regex, keeping the matches (behavior "removed", invert):
  // <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
  size_t i = 0;
  while (i < n) {
    const size_t at = begin[i];
    size_t len = 0;  // a literal match's length in bytes (= code points: all ASCII)
    if (s[at] == '<') {
      for (std::string_view lit : {kBos, kEos}) {
        if (s.compare(at, lit.size(), lit) == 0) {
          len = lit.size();
          break;
        }
      }
    } else {
      len = contraction_at(s, at);
    }
    size_t j;
    if (len != 0) {
      j = i + len;
    } else if (cls[i] == kLetter) {
      j = i + 1;
      while (j < n && cls[j] == kLetter) ++j;
    } else if (cls[i] == kNumber) {
      j = i + 1;
    } else if (cls[i] == kOther) {
      j = i + 1;
      while (j < n && cls[j] == kOther) ++j;
    } else {
      ++i;  // whitespace between matches is dropped
      continue;
    }
    byte_level(i, j);
    i = j;
  }
}

// tokenizers' BPE::merge_word + Word::merge_all: one symbol per byte (its byte-level character,
// with "</w>" on the last), then repeatedly the pair with the lowest merge rank, leftmost first.
void ClipTokenizer::Impl::bpe(std::string_view word, std::vector<int64_t>& out) const {
  const size_t n = word.size();
  if (n == 0) return;
  auto initial = [&](size_t k) {
    const auto b = static_cast<unsigned char>(word[k]);
    const int32_t id = k + 1 == n ? byte_eow_id[b] : byte_id[b];
    return id >= 0 ? id : static_cast<int32_t>(unk);  // fuse_unk=False: one unk per character
  };
  if (n == 1) {
    out.push_back(initial(0));
    return;
  }
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> sym(n);
  for (size_t k = 0; k < n; ++k) {
    sym[k] = {initial(k), static_cast<int32_t>(k) - 1, k + 1 < n ? static_cast<int32_t>(k + 1) : -1,
              true};
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t id;
  };
  // A min-heap on (rank, pos).
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::vector<Candidate> heap;
  heap.reserve(2 * n);
  auto push = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (next < 0) return;
    auto it = merges.find(pair_key(sym[pos].id, sym[next].id));
    if (it == merges.end()) return;
    heap.push_back({it->second.rank, pos, it->second.id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (size_t k = 0; k + 1 < n; ++k) push(static_cast<int32_t>(k));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip entries made stale by an earlier merge: the pair there must still merge into top.id.
    Symbol& right = sym[left.next];
    auto it = merges.find(pair_key(left.id, right.id));
    if (it == merges.end() || it->second.id != top.id) continue;
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (int32_t k = 0; k >= 0; k = sym[k].next) out.push_back(sym[k].id);
}

ClipTokenizer ClipTokenizer::from_files(const std::filesystem::path& vocab_json,
                                        const std::filesystem::path& merges_txt) {
  return from_parts(vocab_json, merges_txt, nlohmann::json::object(), "");
}

ClipTokenizer ClipTokenizer::from_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  MINDIESD_CHECK(std::filesystem::is_directory(dir, ec), NotFound, dir.string(),
                 ": no such tokenizer folder (expected vocab.json and merges.txt in it)");
  return from_parts(dir / "vocab.json", dir / "merges.txt", read_tokenizer_config(dir),
                    (dir / "tokenizer_config.json").string());
}

ClipTokenizer ClipTokenizer::from_parts(const std::filesystem::path& vocab_json,
                                        const std::filesystem::path& merges_txt,
                                        const nlohmann::json& config,
                                        const std::string& config_source) {
  auto impl = std::make_shared<Impl>();
  const std::string vsrc = vocab_json.string();
  const std::string msrc = merges_txt.string();

  // vocab.json: {"token": id, ...}. The map only serves the loading; its keys view the JSON
  // document's strings.
  const std::string text = io::read_file(vocab_json, kMaxVocabBytes, "a vocab.json");
  const nlohmann::json j = io::parse_json_strict(text, vsrc);
  MINDIESD_CHECK(j.is_object(), Corrupt, vsrc,
                 ": expected a JSON object mapping tokens to ids, got ", io::json_type_word(j));
  MINDIESD_CHECK(!j.empty(), Corrupt, vsrc, ": the vocabulary is empty");
  std::unordered_map<std::string_view, int32_t> vocab;
  vocab.reserve(j.size());
  int64_t max_id = -1;
  for (const auto& [token, value] : j.get_ref<const nlohmann::json::object_t&>()) {
    const int64_t id = value.is_number_integer() ? value.get<int64_t>() : -1;
    MINDIESD_CHECK(id >= 0 && id <= INT32_MAX, Corrupt, vsrc, ": the id of token \"", token,
                   "\" must be a non-negative 32-bit integer, got ", io::json_excerpt(value));
    vocab.emplace(token, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  impl->vocab_size = max_id + 1;
  auto lookup = [&](std::string_view token) -> int32_t {
    auto it = vocab.find(token);
    return it == vocab.end() ? -1 : it->second;
  };

  // merges.txt: "#version..." lines are skipped, every other line is "left right"; the rank is
  // the line's position among the merges. tokenizers refuses blank lines; we skip them.
  {
    const std::string text = io::read_file(merges_txt, kMaxMergesBytes, "a merges.txt");
    const size_t bad = io::find_invalid_utf8(text);
    MINDIESD_CHECK(bad == std::string::npos, Corrupt, msrc, ": not valid UTF-8 (byte offset ", bad,
                   ")");
    int32_t rank = 0;
    size_t line_no = 0;
    std::string joined;
    impl->merges.reserve(vocab.size());
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.starts_with("#version")) continue;
      const size_t sp = line.find(' ');
      MINDIESD_CHECK(sp != std::string_view::npos && sp > 0 && sp + 1 < line.size() &&
                         line.find(' ', sp + 1) == std::string_view::npos,
                     Corrupt, msrc, " line ", line_no,
                     ": expected two tokens separated by one space, got \"",
                     line.substr(0, std::min<size_t>(line.size(), 60)), "\"");
      const std::string_view a = line.substr(0, sp);
      const std::string_view b = line.substr(sp + 1);
      joined.assign(a).append(b);
      const int32_t ia = lookup(a);
      const int32_t ib = lookup(b);
      const int32_t merged = lookup(joined);
      MINDIESD_CHECK(ia >= 0 && ib >= 0 && merged >= 0, Corrupt, msrc, " line ", line_no,
                     ": the merge \"", a, " ", b, "\" uses \"",
                     ia < 0   ? a
                     : ib < 0 ? b
                              : std::string_view(joined),
                     "\", which is not in ", vsrc);
      // tokenizers collects the merges into a map: a repeated pair takes the later rank.
      impl->merges.insert_or_assign(pair_key(ia, ib), Merge{rank, merged});
      ++rank;
    }
  }

  // The byte-level alphabet.
  const std::array<char32_t, 256> chars = byte_chars();
  for (int b = 0; b < 256; ++b) {
    std::string c;
    append_utf8(c, chars[b]);
    impl->byte_id[b] = lookup(c);
    impl->byte_eow_id[b] = lookup(c + std::string(kEndOfWord));
  }

  // Special and added tokens.
  const std::string src = config_source.empty() ? vsrc : config_source;
  // transformers' order of the special token fields: bos, eos, unk, pad.
  struct Special {
    const char* key;
    std::string_view fallback;
    int64_t* id;
  };
  std::vector<AddedToken> added;
  for (const Special& s :
       {Special{"bos_token", kBos, &impl->bos}, Special{"eos_token", kEos, &impl->eos},
        Special{"unk_token", kEos, &impl->unk}, Special{"pad_token", kEos, &impl->pad}}) {
    AddedToken t = config_special_token(config, s.key, s.fallback, src);
    t.id = lookup(t.content);
    MINDIESD_CHECK(t.id >= 0, Corrupt, s.key, " \"", t.content, "\" is not in ", vsrc);
    *s.id = t.id;
    added.push_back(std::move(t));
  }
  for (AddedToken& t : config_added_tokens(config, src)) {
    t.id = lookup(t.content);
    MINDIESD_CHECK(t.id >= 0, Unsupported, src, ": added token \"", t.content, "\" is not in ",
                   vsrc, " (tokens beyond the vocabulary are not supported)");
    added.push_back(std::move(t));
  }
  // One entry per content, the last one's flags winning (tokenizers' AddedVocabulary).
  std::vector<AddedToken> raw, normalized;
  for (size_t k = 0; k < added.size(); ++k) {
    bool later = false;
    for (size_t m = k + 1; m < added.size(); ++m) later |= added[m].content == added[k].content;
    if (later) continue;
    if (added[k].normalized) {
      // Matched against the normalized text, so the pattern is normalized too.
      added[k].content = impl->normalize(added[k].content);
      normalized.push_back(std::move(added[k]));
    } else {
      raw.push_back(std::move(added[k]));
    }
  }
  impl->raw_tokens = AddedTokenMatcher(std::move(raw));
  impl->normalized_tokens = AddedTokenMatcher(std::move(normalized));
  return ClipTokenizer(std::move(impl));
}

std::vector<int64_t> ClipTokenizer::encode(std::string_view text) const {
  check_text(text, "CLIP tokenizer");
  const Impl& m = *impl_;
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  for (const AddedTokenMatcher::Piece& p : m.raw_tokens.split(text)) {
    if (p.id >= 0) {
      out.push_back(p.id);
      continue;
    }
    const std::string norm = m.normalize(text.substr(p.begin, p.end - p.begin));
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
  return out;
}

std::vector<int64_t> ClipTokenizer::encode_padded(std::string_view text, int64_t max_length) const {
  MINDIESD_CHECK(max_length >= 2 && max_length <= kMaxPaddedLength, InvalidArgument,
                 "CLIP tokenizer: max_length must be in [2, ", kMaxPaddedLength,
                 "] (room for <|startoftext|> and <|endoftext|>), got ", max_length);
  const std::vector<int64_t> ids = encode(text);
  const size_t keep = std::min(ids.size(), static_cast<size_t>(max_length - 2));
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(max_length));
  out.push_back(impl_->bos);
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
  out.push_back(impl_->eos);
  out.resize(static_cast<size_t>(max_length), impl_->pad);
  return out;
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
int64_t ClipTokenizer::vocab_size() const { return impl_->vocab_size; }

}  // namespace mindiesd::text
