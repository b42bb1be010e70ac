// Parity of models::UMT5EncoderModel (T5EncoderModel with model_type "umt5": a relative position
// bias table per block, and transformers' attention mask) and of text::T5Tokenizer on a UMT5-style
// SentencePiece model with transformers 5.24 / diffusers 0.42.1, on the tiny golden written by
// tools/golden/make_umt5_golden.py (tests/data/golden/umt5: tokenizer/, text_encoder/,
// tokenizer_cases.json, io.safetensors).
//
// Bounds: f32 max |diff| <= 1e-5 with cosine >= 0.9999999; bf16 max |diff| <= 0.0625 with cosine
// >= 0.9999 (the same bound and reason as the T5 / CLIP tests: values reach |4| where a bf16 ulp
// is up to 0.031); f16 max |diff| <= 0.01 with cosine >= 0.99999. The position bias of every
// block is exact. Measured (x86-64 AVX-512, oneDNN): f32 <= 2.7e-6; bf16 <= 0.055 with cosine
// >= 0.99996; f16 0.0049 with cosine 0.9999997; the tokenizer's ids and masks are equal.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "mindiesd/core/backend.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/safetensors.h"
#include "mindiesd/models/encoders/t5_encoder_model.h"
#include "mindiesd/text/t5_tokenizer.h"
#include "parity/parity.h"
#include "test_util.h"

namespace mindiesd {
namespace {

using models::UMT5Config;
using models::UMT5EncoderModel;
using test::expect_close;
using test::expect_error;
using Ids = std::vector<int64_t>;

const std::string kDir = MINDIESD_SOURCE_DIR "/tests/data/golden/umt5";
const std::string kEncoderDir = kDir + "/text_encoder";
const std::string kFluxT5Dir =
    MINDIESD_SOURCE_DIR "/tests/data/golden/flux/pipeline/text_encoder_2";

const io::WeightStore& gold() {
  static const io::WeightStore s = io::WeightStore::open(kDir + "/io.safetensors");
  return s;
}
const text::T5Tokenizer& tokenizer() {
  static const text::T5Tokenizer t = text::T5Tokenizer::from_folder(kDir + "/tokenizer");
  return t;
}
const io::Component& component() {
  static const io::DiffusersFolder f = io::DiffusersFolder::open(kEncoderDir);
  return f.component("text_encoder");
}
UMT5EncoderModel load(DType dt) { return UMT5EncoderModel::load(component(), dt); }
UMT5Config config() {
  io::ConfigReader r = io::ConfigReader::from_file(kEncoderDir + "/config.json");
  return UMT5Config::read(r);
}
nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}
Tensor ids_tensor(const std::vector<Ids>& rows) {
  const auto len = static_cast<int64_t>(rows.front().size());
  Tensor t = Tensor::empty({static_cast<int64_t>(rows.size()), len}, DType::i64);
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t j = 0; j < len; ++j) t.data<int64_t>()[r * len + j] = rows[r][j];
  return t;
}
Ids as_ids(const Tensor& t) {
  const Tensor c = t.to(DType::i64).contiguous();
  return Ids(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}

// ---- tokenizer ----

TEST(UMT5Parity, TokenizerMatchesHf) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // spiece.model: pad 0, </s> 1, <s> 2, <unk> 3, 700 pieces with byte fallback; 300 extra ids.
  EXPECT_EQ(tokenizer().vocab_size(), 1000);
  EXPECT_EQ(tokenizer().pad_id(), 0);
  EXPECT_EQ(tokenizer().eos_id(), 1);
  EXPECT_EQ(tokenizer().unk_id(), 2);  // T5Tokenizer's Unigram unk_id, whatever the model says
  const nlohmann::json cases = read_json(kDir + "/tokenizer_cases.json");
  const int64_t max_length = cases["max_length"].get<int64_t>();
  int n = 0;
  for (const auto& c : cases["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    SCOPED_TRACE(prompt);
    EXPECT_EQ(tokenizer().encode(prompt), c["raw"].get<Ids>());
    Ids mask;
    EXPECT_EQ(tokenizer().encode_padded(prompt, max_length, &mask), c["padded"].get<Ids>());
    EXPECT_EQ(mask, c["mask"].get<Ids>());
    ++n;
  }
  EXPECT_GE(n, 12);
}

TEST(UMT5Parity, TokenizerGivesThePipelineBatch) {
  MINDIESD_SKIP_WITHOUT_CPU_DEPS("ICU / sentencepiece (tokenizers)");
  // The prompts of b.ids, padded to max_sequence_length with their attention mask.
  const auto file = io::SafetensorsFile::open(kDir + "/io.safetensors");
  const auto& meta = file->metadata();
  const auto prompts =
      nlohmann::json::parse(meta.at("prompts")).template get<std::vector<std::string>>();
  const int64_t max_seq = std::stoll(meta.at("max_seq"));
  std::vector<Ids> ids, masks;
  for (const std::string& p : prompts) {
    Ids mask;
    ids.push_back(tokenizer().encode_padded(p, max_seq, &mask));
    masks.push_back(mask);
  }
  EXPECT_EQ(ids_tensor(ids).shape(), gold().get("b.ids").shape());
  EXPECT_EQ(as_ids(ids_tensor(ids)), as_ids(gold().get("b.ids")));
  EXPECT_EQ(as_ids(ids_tensor(masks)), as_ids(gold().get("b.mask")));
}

// ---- config ----

TEST(UMT5Parity, ConfigReadsUmt5) {
  io::ConfigReader r = io::ConfigReader::from_file(kEncoderDir + "/config.json");
  const UMT5Config c = UMT5Config::read(r);
  EXPECT_TRUE(r.unknown_keys().empty()) << r.unknown_keys().front();
  EXPECT_EQ(c.model_type, "umt5");
  EXPECT_TRUE(c.per_layer_bias());
  EXPECT_EQ(c.num_layers, 3);
  EXPECT_EQ(c.vocab_size, 1024);
  EXPECT_EQ(c.dense_act_fn, "gelu_new");

  // Wan2.1's text_encoder/config.json (google/umt5-xxl as transformers 4.41 wrote it).
  io::ConfigReader wan = io::ConfigReader::from_string(R"({
    "_name_or_path": "google/umt5-xxl", "architectures": ["UMT5EncoderModel"],
    "classifier_dropout": 0.0, "d_ff": 10240, "d_kv": 64, "d_model": 4096,
    "decoder_start_token_id": 0, "dense_act_fn": "gelu_new", "dropout_rate": 0.1,
    "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
    "is_encoder_decoder": true, "is_gated_act": true, "layer_norm_epsilon": 1e-06,
    "model_type": "umt5", "num_decoder_layers": 24, "num_heads": 64, "num_layers": 24,
    "output_past": true, "pad_token_id": 0, "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32, "scalable_attention": true,
    "tie_word_embeddings": false, "tokenizer_class": "T5Tokenizer", "torch_dtype": "float32",
    "transformers_version": "4.41.2", "use_cache": true, "vocab_size": 256384})",
                                                       "wan/text_encoder/config.json");
  const UMT5Config xxl = UMT5Config::read(wan);
  EXPECT_TRUE(wan.unknown_keys().empty()) << wan.unknown_keys().front();
  EXPECT_TRUE(xxl.per_layer_bias());
  EXPECT_EQ(xxl.vocab_size, 256384);
  EXPECT_EQ(xxl.d_ff, 10240);

  // Absent keys take UMT5Config's defaults, not T5Config's.
  io::ConfigReader bare = io::ConfigReader::from_string(R"({"model_type": "umt5"})", "c");
  const UMT5Config d = UMT5Config::read(bare);
  EXPECT_EQ(d.vocab_size, 250112);
  EXPECT_EQ(d.d_ff, 1024);
  EXPECT_EQ(d.num_layers, 8);
  EXPECT_EQ(d.num_heads, 6);
  EXPECT_TRUE(d.is_gated_act);
  io::ConfigReader none = io::ConfigReader::from_string("{}", "c");
  EXPECT_EQ(UMT5Config::read(none, "umt5").model_type, "umt5");

  io::ConfigReader mt5 = io::ConfigReader::from_string(R"({"model_type": "mt5"})", "m/config.json");
  expect_error([&] { UMT5Config::read(mt5); }, ErrorKind::InvalidArgument,
               {"m/config.json", "model_type", "mt5"});
}

// ---- model ----

TEST(UMT5Parity, EveryBlockHasItsOwnPositionBias) {
  const UMT5EncoderModel m = load(DType::f32);
  const int64_t len = gold().get("bias.0").size(2);
  for (int64_t i = 0; i < 3; ++i) {
    const Tensor got = m.position_bias(len, DType::f32, i);
    EXPECT_EQ(got.to_vector(), gold().get(str_cat("bias.", i)).to_vector()) << "block " << i;
  }
  EXPECT_NE(m.position_bias(len, DType::f32, 0).to_vector(),
            m.position_bias(len, DType::f32, 2).to_vector());
  expect_error([&] { m.position_bias(len, DType::f32, 3); }, ErrorKind::InvalidArgument,
               {"layer 3", "[0, 3)"});
}

TEST(UMT5Parity, MatchesTransformersInF32) {
  const UMT5EncoderModel m = load(DType::f32);
  for (const char* run : {"b", "edge", "long"}) {
    const std::string p = run;
    const Tensor out = m.forward(gold().get(p + ".ids"), gold().get(p + ".mask"));
    EXPECT_EQ(out.dtype(), DType::f32);
    expect_close(out, gold().get(p + ".f32"), 1e-5, 0.9999999, p + ".f32");
  }
  // Without a mask the padding is attended to, and the result differs.
  const Tensor ids = gold().get("b.ids");
  const Tensor nomask = m.forward(ids);
  expect_close(nomask, gold().get("b.nomask.f32"), 1e-5, 0.9999999, "b.nomask.f32");
  EXPECT_NE(nomask.to_vector(), m.forward(ids, gold().get("b.mask")).to_vector());
  // A mask with no zero is no mask; i32, bool and float masks read as .bool() reads them.
  EXPECT_EQ(m.forward(ids, ops::full(ids.shape(), 1.0, DType::i64)).to_vector(),
            nomask.to_vector());
  const Tensor mask = gold().get("b.mask");
  const std::vector<float> want = m.forward(ids, mask).to_vector();
  for (DType dt : {DType::i32, DType::boolean, DType::f32})
    EXPECT_EQ(m.forward(ids, mask.to(dt)).to_vector(), want) << dtype_name(dt);
  EXPECT_EQ(m.forward(ids, ops::affine(mask.to(DType::f32), 2.0f, 0.0f)).to_vector(), want);
}

TEST(UMT5Parity, RunsOnCudaLikeTransformers) {
  if (find_backend(DeviceType::CUDA) == nullptr) GTEST_SKIP() << "no CUDA device";
  const UMT5EncoderModel m = load(DType::f32).to(Device::cuda());
  for (const char* run : {"b", "edge", "long"}) {
    const std::string p = run;
    const Tensor out = m.forward(gold().get(p + ".ids"), gold().get(p + ".mask"));
    EXPECT_EQ(out.device(), Device::cuda());
    expect_close(out, gold().get(p + ".f32"), 1e-5, 0.9999999, p + ".f32 (cuda)");
  }
  const Tensor ids = gold().get("b.ids"), mask = gold().get("b.mask");
  expect_close(models::umt5_prompt_embeds(m, ids, mask, ids.size(1)), gold().get("wan.f32"), 1e-5,
               0.9999999, "wan prompt embeds (cuda)");
}

TEST(UMT5Parity, MatchesTransformersInBf16AndF16) {
  const UMT5EncoderModel m = load(DType::bf16);
  for (const char* run : {"b", "edge", "long"}) {
    const std::string p = run;
    const Tensor out = m.forward(gold().get(p + ".ids"), gold().get(p + ".mask"));
    EXPECT_EQ(out.dtype(), DType::bf16);
    expect_close(out, gold().get(p + ".bf16"), 0.0625, 0.9999, p + ".bf16");
  }
  // float16: wo stays f32 (_keep_in_fp32_modules applies to float16 only), finfo(f16).min masks.
  const UMT5EncoderModel h = load(DType::f16);
  const Tensor o16 = h.forward(gold().get("b.ids"), gold().get("b.mask"));
  EXPECT_EQ(o16.dtype(), DType::f16);
  expect_close(o16, gold().get("b.f16"), 0.01, 0.99999, "b.f16");
}

TEST(UMT5Parity, WanPromptEmbedsMatchDiffusers) {
  // WanPipeline._get_t5_prompt_embeds: encode with the mask, cut each row at its length, pad
  // back with zeros.
  const Tensor ids = gold().get("b.ids"), mask = gold().get("b.mask");
  const int64_t max_seq = ids.size(1);
  for (const auto& [dt, name, tol, cos] : {std::tuple{DType::f32, "f32", 1e-5, 0.9999999},
                                           std::tuple{DType::bf16, "bf16", 0.0625, 0.9999}}) {
    const UMT5EncoderModel m = load(dt);
    const Tensor out = models::umt5_prompt_embeds(m, ids, mask, max_seq);
    EXPECT_EQ(out.dtype(), dt);
    const Tensor want = gold().get(str_cat("wan.", name));
    ASSERT_EQ(out.shape(), want.shape());
    expect_close(out, want, tol, cos, str_cat("wan.", name));
    // The rows past each prompt's length are exactly zero, as diffusers' new_zeros.
    const Tensor m32 = mask.to(DType::f32);
    for (int64_t r = 0; r < ids.size(0); ++r) {
      int64_t n = 0;
      for (int64_t j = 0; j < max_seq; ++j) n += m32.data<float>()[r * max_seq + j] > 0;
      const std::vector<float> tail =
          out.select(0, r).narrow(0, n, max_seq - n).to(DType::f32).to_vector();
      for (float v : tail) ASSERT_EQ(v, 0.0f) << "row " << r;
    }
  }
  // A longer max_sequence_length pads further with zeros.
  const UMT5EncoderModel m = load(DType::f32);
  const Tensor wide = models::umt5_prompt_embeds(m, ids, mask, max_seq + 8);
  EXPECT_EQ(wide.shape(), (Shape{ids.size(0), max_seq + 8, 32}));
  expect_close(wide.narrow(1, 0, max_seq), gold().get("wan.f32"), 1e-5, 0.9999999, "wide");
}

TEST(UMT5Parity, WeightsOfTheOtherFlavourAreNamed) {
  // A T5 config over UMT5 weights: blocks 1 and 2's tables are unexpected; a UMT5 config over
  // T5 weights: they are missing.
  UMT5Config t5 = config();
  t5.model_type = "t5";
  expect_error(
      [&] {
        UMT5EncoderModel::from_weights(
            t5, io::WeightStore::open(kEncoderDir + "/model.safetensors"), DType::f32);
      },
      ErrorKind::InvalidArgument,
      {"unexpected", "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
       "encoder.block.2.layer.0.SelfAttention.relative_attention_bias.weight"});
  io::ConfigReader r = io::ConfigReader::from_file(kFluxT5Dir + "/config.json");
  models::T5Config umt5 = models::T5Config::read(r);
  umt5.model_type = "umt5";
  expect_error(
      [&] {
        UMT5EncoderModel::from_weights(
            umt5, io::WeightStore::open(kFluxT5Dir + "/model.safetensors"), DType::f32);
      },
      ErrorKind::InvalidArgument,
      {"missing", "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"});
  // The component's class must agree with the config's model_type.
  io::Component c = component();
  c.class_name = "T5EncoderModel";
  expect_error([&] { UMT5EncoderModel::load(c, DType::f32); }, ErrorKind::InvalidArgument,
               {"T5EncoderModel", "model_type \"umt5\""});
  c.class_name = "UMT5EncoderModel";
  EXPECT_TRUE(UMT5EncoderModel::load(c, DType::f32).config().per_layer_bias());
  c.class_name = "CLIPTextModel";
  expect_error([&] { UMT5EncoderModel::load(c, DType::f32); }, ErrorKind::InvalidArgument,
               {"CLIPTextModel", "UMT5EncoderModel"});
}

TEST(UMT5Parity, BadInputsAreClearErrors) {
  const UMT5EncoderModel m = load(DType::f32);
  const Tensor ids = gold().get("b.ids"), mask = gold().get("b.mask");
  expect_error([&] { m.forward(ids, mask.narrow(0, 0, 2)); }, ErrorKind::InvalidArgument,
               {"UMT5EncoderModel", "attention_mask (2, 24)", "input_ids (3, 24)"});
  expect_error([&] { m.forward(ids, mask.narrow(1, 0, 20)); }, ErrorKind::InvalidArgument,
               {"attention_mask (3, 20)"});
  expect_error([&] { m.forward(ids, mask.view({72})); }, ErrorKind::InvalidArgument,
               {"attention_mask (72,)"});
  Tensor bad = ids.clone();
  bad.data<int64_t>()[24 + 3] = 1024;
  expect_error([&] { m.forward(bad, mask); }, ErrorKind::InvalidArgument,
               {"UMT5EncoderModel", "input_ids[1, 3] = 1024", "[0, 1024)"});
  bad.data<int64_t>()[24 + 3] = -5;
  expect_error([&] { m.forward(bad, mask); }, ErrorKind::InvalidArgument, {"input_ids[1, 3] = -5"});
  expect_error([&] { models::umt5_prompt_embeds(m, ids, Tensor(), 24); },
               ErrorKind::InvalidArgument, {"attention_mask is required"});
  expect_error([&] { models::umt5_prompt_embeds(m, ids, mask, 20); }, ErrorKind::InvalidArgument,
               {"prompt 2", "24 tokens", "max_sequence_length 20"});
  expect_error([&] { models::umt5_prompt_embeds(m, ids, mask, 0); }, ErrorKind::InvalidArgument,
               {"max_sequence_length 0"});
}

}  // namespace
}  // namespace mindiesd
