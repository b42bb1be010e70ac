// The `mindiesd` command line.
//
//   mindiesd inspect DIR      what a diffusers folder holds: components, configs, weights
//   mindiesd quantize ...     a quantized copy of a model folder (mindiesd/quant)
//   mindiesd generate ...     text-to-image (FLUX.1) or text-to-video (Wan 2.1) from a diffusers
//   folder
//
// Exit codes: 0 success, 1 an error while running (message on stderr), 2 a usage error.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "generate.h"
#include "mindiesd/core/error.h"
#include "mindiesd/io/config.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/io/json_util.h"
#include "mindiesd/io/safetensors.h"

#ifndef MINDIESD_VERSION
#define MINDIESD_VERSION "0.1.0"  // keep in step with project(VERSION) in CMakeLists.txt
#endif

namespace {

namespace io = mindiesd::io;
using Args = std::vector<std::string>;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

struct Command {
  const char* name;
  const char* args;
  const char* summary;
  std::function<int(const Args&)> run;
};

const std::vector<Command>& commands();

void print_usage(std::ostream& os) {
  os << "usage: mindiesd <command> [args]\n"
        "       mindiesd --help | --version\n\ncommands:\n";
  for (const Command& c : commands()) {
    std::string head = std::string(c.name) + " " + c.args;
    head.resize(std::max<size_t>(head.size() + 2, 30), ' ');
    os << "  " << head << c.summary << "\n";
  }
  os << "\nRun 'mindiesd help <command>' for a command's options.\n";
}

// ---- formatting ------------------------------------------------------------------------------

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// 1234567 -> "1.23 M"; small counts stay exact.
std::string human_count(int64_t n) {
  const double v = static_cast<double>(n);
  if (n >= 1000000000) return fixed(v / 1e9, 2) + " B";
  if (n >= 1000000) return fixed(v / 1e6, 2) + " M";
  if (n >= 10000) return fixed(v / 1e3, 1) + " K";
  return std::to_string(n);
}

// "1 tensor", "3 tensors".
std::string count_of(int64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string human_bytes(int64_t n) {
  const double v = static_cast<double>(n);
  if (n >= (int64_t{1} << 30)) return fixed(v / (1 << 30), 2) + " GiB";
  if (n >= (int64_t{1} << 20)) return fixed(v / (1 << 20), 2) + " MiB";
  if (n >= (int64_t{1} << 10)) return fixed(v / (1 << 10), 1) + " KiB";
  return std::to_string(n) + " B";
}

template <typename T>
std::string list_text(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

template <typename T>
std::string opt_text(const std::optional<T>& v) {
  if (!v) return "null";
  std::ostringstream os;
  os << *v;
  return os.str();
}

std::string rel(const std::filesystem::path& p, const std::filesystem::path& base) {
  std::error_code ec;
  const std::filesystem::path r = std::filesystem::relative(p, base, ec);
  return ec || r.empty() ? p.string() : r.string();
}

// ---- inspect ---------------------------------------------------------------------------------

// A few key fields of a typed config, plus the config fields nobody read.
struct ConfigSummary {
  std::string line;
  std::vector<std::string> unknown;
};

std::optional<ConfigSummary> typed_summary(const io::Component& c) {
  if (c.config.is_null()) return std::nullopt;
  io::ConfigReader r = c.config_reader();
  std::ostringstream os;
  if (c.class_name == io::AutoencoderKLConfig::kClassName) {
    const auto k = io::AutoencoderKLConfig::read(r);
    os << "latent_channels=" << k.latent_channels
       << " block_out_channels=" << list_text(k.block_out_channels)
       << " scaling_factor=" << k.scaling_factor << " shift_factor=" << opt_text(k.shift_factor)
       << " sample_size=" << k.sample_size;
  } else if (c.class_name == io::FlowMatchEulerDiscreteSchedulerConfig::kClassName) {
    const auto k = io::FlowMatchEulerDiscreteSchedulerConfig::read(r);
    os << "num_train_timesteps=" << k.num_train_timesteps << " shift=" << k.shift
       << " use_dynamic_shifting=" << (k.use_dynamic_shifting ? "true" : "false");
    if (k.use_dynamic_shifting) {
      os << " base_shift=" << opt_text(k.base_shift) << " max_shift=" << opt_text(k.max_shift);
    }
    os << " time_shift_type=" << k.time_shift_type;
  } else if (c.class_name == io::FluxTransformer2DModelConfig::kClassName) {
    const auto k = io::FluxTransformer2DModelConfig::read(r);
    os << "num_layers=" << k.num_layers << " num_single_layers=" << k.num_single_layers
       << " heads=" << k.num_attention_heads << "x" << k.attention_head_dim
       << " in_channels=" << k.in_channels << " joint_attention_dim=" << k.joint_attention_dim
       << " guidance_embeds=" << (k.guidance_embeds ? "true" : "false");
  } else if (c.class_name == io::WanTransformer3DModelConfig::kClassName) {
    const auto k = io::WanTransformer3DModelConfig::read(r);
    os << "num_layers=" << k.num_layers << " heads=" << k.num_attention_heads << "x"
       << k.attention_head_dim << " ffn_dim=" << k.ffn_dim
       << " patch_size=" << list_text(k.patch_size) << " in_channels=" << k.in_channels
       << " out_channels=" << k.out_channels << " image_dim=" << opt_text(k.image_dim);
  } else {
    return std::nullopt;
  }
  return ConfigSummary{os.str(), r.unknown_keys()};
}

// For classes without a typed config: the usual size fields, as they appear.
std::string generic_summary(const nlohmann::json& config) {
  static const char* const kKeys[] = {
      "model_type",  "hidden_size",         "num_hidden_layers", "num_attention_heads",
      "d_model",     "num_layers",          "num_heads",         "vocab_size",
      "in_channels", "out_channels",        "latent_channels",   "block_out_channels",
      "sample_size", "num_train_timesteps", "prediction_type",   "torch_dtype"};
  std::string s;
  int shown = 0;
  for (const char* k : kKeys) {
    const auto it = config.find(k);
    if (it == config.end() || shown >= 6) continue;
    if (!s.empty()) s += ' ';
    s += k;
    s += '=';
    s += it->is_string() ? it->get<std::string>() : io::json_excerpt(*it, 40);
    ++shown;
  }
  return s;
}

struct Totals {
  int64_t tensors = 0;
  int64_t params = 0;
  int64_t bytes = 0;
  int errors = 0;
};

void inspect_component(const io::Component& c, const std::filesystem::path& root, Totals& totals) {
  std::cout << "\n[" << c.name << "] "
            << (c.class_name.empty() ? std::string("(unknown class)") : c.class_name);
  if (!c.enabled) {
    std::cout << "  (not included: [null, null] in model_index.json)\n";
    return;
  }
  std::cout << "  (" << (c.library.empty() ? std::string("?") : c.library) << ", "
            << io::component_kind_name(c.kind) << ")\n";
  auto error = [&](const std::string& what) {
    std::cerr << "mindiesd inspect: component '" << c.name << "': " << what << "\n";
    std::cout << "  error: " << what << "\n";
    ++totals.errors;
  };

  if (!c.config_path.empty()) {
    std::cout << "  config:  " << rel(c.config_path, root) << "\n";
    try {
      if (const auto summary = typed_summary(c)) {
        std::cout << "           " << summary->line << "\n";
        for (const std::string& k : summary->unknown) {
          std::cout << "  warning: unknown config field '" << k << "' (ignored)\n";
        }
      } else if (const std::string g = generic_summary(c.config); !g.empty()) {
        std::cout << "           " << g << "\n";
      }
    } catch (const mindiesd::Error& e) {
      error(e.what());
    }
  }

  if (c.weights) {
    const io::WeightFiles& w = *c.weights;
    std::cout << "  weights: "
              << (w.index.empty() ? rel(w.files.front(), root) : rel(w.index, root));
    if (!w.variant.empty()) std::cout << "  (variant " << w.variant << ")";
    std::cout << "\n";
    if (c.variants.size() > 1) {
      std::string vs;
      for (const std::string& v : c.variants) {
        if (!vs.empty()) vs += ", ";
        vs += v.empty() ? "default" : v;
      }
      std::cout << "  variants: " << vs << "\n";
    }
    try {
      const io::WeightStore store = c.open_weights();
      const int64_t params = store.num_params();
      const int64_t bytes = store.num_bytes();
      std::cout << "  tensors: " << store.size() << "   params: " << human_count(params) << " ("
                << params << ")   size: " << human_bytes(bytes) << "\n";
      for (const auto& [dtype, s] : store.dtype_stats()) {
        std::cout << "    " << dtype << ": " << count_of(s.tensors, "tensor") << ", "
                  << human_count(s.params) << " params, " << human_bytes(s.bytes) << "\n";
      }
      if (store.sharded()) {
        std::cout << "  shards:  " << store.files().size() << "\n";
        for (const auto& f : store.files()) {
          std::cout << "    " << rel(f->path(), root) << ": "
                    << count_of(static_cast<int64_t>(f->size()), "tensor") << ", "
                    << human_bytes(static_cast<int64_t>(f->header().data_bytes)) << "\n";
        }
      }
      totals.tensors += static_cast<int64_t>(store.size());
      totals.params += params;
      totals.bytes += bytes;
    } catch (const mindiesd::Error& e) {
      error(e.what());
    }
  } else if (c.kind == io::ComponentKind::Model) {
    std::cout << "  weights: none (no *.safetensors weights found)\n";
  }

  if (!c.tokenizer_files.empty()) {
    std::string names;
    for (const auto& f : c.tokenizer_files) {
      if (!names.empty()) names += ", ";
      names += f.filename().string();
    }
    std::cout << "  tokenizer files: " << names << "\n";
  }
}

int cmd_inspect(const Args& args) {
  std::string dir;
  io::DiffusersOpenOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--variant") {
      if (i + 1 >= args.size()) {
        std::cerr << "mindiesd inspect: --variant needs a value (fp16, bf16, ...)\n";
        return kExitUsage;
      }
      options.variant = args[++i];
    } else if (a.starts_with("-")) {
      std::cerr << "mindiesd inspect: unknown option '" << a << "'\n";
      return kExitUsage;
    } else if (dir.empty()) {
      dir = a;
    } else {
      std::cerr << "mindiesd inspect: one folder at a time (got '" << dir << "' and '" << a
                << "')\n";
      return kExitUsage;
    }
  }
  if (dir.empty()) {
    std::cerr << "mindiesd inspect: missing DIR\nusage: mindiesd inspect DIR [--variant V]\n";
    return kExitUsage;
  }

  const io::DiffusersFolder folder = io::DiffusersFolder::open(dir, options);
  std::cout << "folder:   " << folder.path().string() << "\n";
  if (folder.is_pipeline()) {
    std::cout << "pipeline: " << folder.class_name();
    if (!folder.diffusers_version().empty()) {
      std::cout << " (diffusers " << folder.diffusers_version() << ")";
    }
    std::cout << "\ncomponents: " << folder.components().size() << "\n";
  } else {
    std::cout << "component: " << (folder.class_name().empty() ? "?" : folder.class_name())
              << " (a single component folder)\n";
  }

  Totals totals;
  for (const io::Component& c : folder.components()) inspect_component(c, folder.path(), totals);
  std::cout << "\ntotal: " << count_of(totals.tensors, "tensor") << ", "
            << human_count(totals.params) << " params (" << totals.params << "), "
            << human_bytes(totals.bytes) << "\n";
  if (totals.errors > 0) {
    std::cerr << "mindiesd inspect: " << totals.errors << " error(s)\n";
    return kExitError;
  }
  return kExitOk;
}

// ---- generate: tools/cli/generate.cpp ----

int cmd_generate(const Args& args) { return mindiesd::cli::cmd_generate(args); }

int cmd_help(const Args& args);

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"inspect", "DIR [--variant V]",
       "show a diffusers folder: pipeline, components, configs, weights", cmd_inspect},
      {"generate", "--model DIR ...", "text-to-image (FLUX.1) / text-to-video (Wan 2.1 folders)",
       cmd_generate},
      {"quantize", "--model DIR --algo ALGO --out DIR ...",
       "write a quantized copy of a model folder (calibrated when the algorithm needs it)",
       [](const Args& a) { return mindiesd::cli::cmd_quantize(a); }},
      {"help", "[COMMAND]", "show help", cmd_help},
  };
  return kCommands;
}

int cmd_help(const Args& args) {
  if (args.empty()) {
    print_usage(std::cout);
    return kExitOk;
  }
  for (const Command& c : commands()) {
    if (args[0] == c.name) {
      std::cout << "usage: mindiesd " << c.name << " " << c.args << "\n  " << c.summary << "\n";
      if (args[0] == "inspect") {
        std::cout << "\n  DIR          a pipeline folder (model_index.json) or one component's "
                     "folder\n"
                     "  --variant V  prefer weight variant V (fp16, bf16, ...)\n";
      }
      if (args[0] == "quantize") std::cout << "\n" << mindiesd::cli::quantize_help();
      if (args[0] == "generate") {
        std::cout << "\nFLUX.1 folders:\n"
                  << mindiesd::cli::generate_help() << "\nWanPipeline folders:\n"
                  << mindiesd::cli::generate_video_help();
      }
      return kExitOk;
    }
  }
  std::cerr << "mindiesd help: unknown command '" << args[0] << "'\n";
  print_usage(std::cerr);
  return kExitUsage;
}

int run(const Args& argv) {
  if (argv.empty()) {
    print_usage(std::cerr);
    return kExitUsage;
  }
  const std::string& cmd = argv[0];
  if (cmd == "--help" || cmd == "-h") {
    print_usage(std::cout);
    return kExitOk;
  }
  if (cmd == "--version" || cmd == "-V") {
    std::cout << "mindiesd " << MINDIESD_VERSION << "\n";
    return kExitOk;
  }
  const Args rest(argv.begin() + 1, argv.end());
  for (const Command& c : commands()) {
    if (cmd == c.name) {
      for (const std::string& a : rest) {
        if (a == "--help" || a == "-h") return cmd_help({cmd});
      }
      return c.run(rest);
    }
  }
  std::cerr << "mindiesd: unknown command '" << cmd << "'\n\n";
  print_usage(std::cerr);
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(Args(argv + 1, argv + argc));
  } catch (const mindiesd::Error& e) {
    std::cerr << "mindiesd: error: " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << "mindiesd: internal error: " << e.what() << "\n";
    return kExitError;
  }
}
