// lmstation info MODEL — architecture, hyper-parameters, tensor types, tokenizer and template.
// lmstation info --devices — the compute devices this build can use.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <algorithm>
#include <map>

#include "app/commands.h"
#include "app/model_cache.h"
#include "core/backend/registry.h"
#include "core/model/gguf.h"
#include "core/model/model_config.h"
#include "core/tokenizer/tokenizer.h"

namespace lms::app {
namespace {

int PrintDevices(bool json) {
  const std::vector<DeviceInfo> devices = ListDevices();
  const std::vector<std::string> kinds = RegisteredDeviceKinds();
  const bool cuda_built = std::find(kinds.begin(), kinds.end(), "cuda") != kinds.end();
  if (json) {
    nlohmann::json j;
    j["cuda_built"] = cuda_built;
    j["devices"] = nlohmann::json::array();
    for (const auto& d : devices) {
      nlohmann::json e{{"device", d.kind == "cpu" ? "cpu" : fmt::format("{}:{}", d.kind, d.index)}, {"name", d.name}};
      if (d.memory_bytes) e["memory_bytes"] = d.memory_bytes;
      if (d.kind == "cuda") e["compute_capability"] = fmt::format("{}.{}", d.cc_major, d.cc_minor);
      j["devices"].push_back(e);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  int gpus = 0;
  for (const auto& d : devices) {
    if (d.kind == "cpu") {
      std::printf("cpu      %s\n", d.name.c_str());
    } else {
      ++gpus;
      std::printf("%s:%-3d %s, %.1f GiB, compute capability %d.%d\n", d.kind.c_str(), d.index, d.name.c_str(),
                  d.memory_bytes / 1073741824.0, d.cc_major, d.cc_minor);
    }
  }
  if (!cuda_built) {
    std::printf("no CUDA devices: this lmstation was built without CUDA (configure with -DLMS_CUDA=ON)\n");
  } else if (gpus == 0) {
    std::printf("no CUDA devices found (no NVIDIA driver, or no GPU visible)\n");
  }
  return 0;
}

}  // namespace

CommandFn AddInfoCommand(CLI::App& cli) {
  struct Opts {
    std::string model;
    bool json = false, metadata = false, devices = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("info", "Describe a GGUF model, or list the compute devices");
  sub->add_option("model", o->model, "GGUF file or known model name");
  sub->add_flag("--devices", o->devices, "List the compute devices (CPU, CUDA GPUs) instead");
  sub->add_flag("--json", o->json, "Print JSON");
  sub->add_flag("--metadata", o->metadata, "Also list every metadata key");
  return [o]() {
    if (o->devices) return PrintDevices(o->json);
    if (o->model.empty()) return Fail(Status::InvalidArgument("info needs a MODEL (or --devices)"));
    auto path = ResolveModel(o->model);
    if (!path.ok()) return Fail(path.status());
    auto file = gguf::GgufFile::Open(*path);
    if (!file.ok()) return Fail(file.status().WithContext(*path));
    const gguf::GgufFile& f = **file;
    auto config = ReadModelConfig(f);
    auto tok = Tokenizer::FromGguf(f);
    std::map<std::string, std::pair<int, uint64_t>> types;
    uint64_t params = 0;
    for (const auto& t : f.tensors()) {
      auto& e = types[std::string(TensorTypeName(t.type))];
      e.first++;
      e.second += t.n_bytes;
      params += t.n_elements;
    }
    const std::string tmpl = f.GetString("tokenizer.chat_template").value_or("");
    nlohmann::json j;
    j["path"] = *path;
    j["gguf_version"] = f.version();
    j["file_bytes"] = f.file_size();
    j["parameters"] = params;
    j["tensors"] = f.tensors().size();
    for (const auto& [name, e] : types) j["tensor_types"][name] = {{"count", e.first}, {"bytes", e.second}};
    if (config.ok()) {
      const ModelConfig& c = *config;
      j["architecture"] = c.architecture;
      j["name"] = c.name;
      j["hparams"] = {{"n_layers", c.n_layers}, {"d_model", c.d_model}, {"d_ff", c.d_ff},
                      {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                      {"rope_dims", c.rope_dims}, {"rope_theta", c.rope_theta}, {"rope_neox", c.rope_neox},
                      {"rms_eps", c.rms_eps}, {"n_vocab", c.n_vocab}, {"context_length", c.n_ctx_train},
                      {"tied_output", c.tied_output}};
    } else {
      j["config_error"] = config.status().message();
    }
    if (tok.ok()) {
      const Tokenizer& t = **tok;
      j["tokenizer"] = {{"model", t.model_name()}, {"pre", t.pre_name()}, {"n_vocab", t.n_vocab()},
                        {"bos", t.bos_id()}, {"eos", t.eos_id()}};
    } else {
      j["tokenizer_error"] = tok.status().message();
    }
    j["chat_template"] = tmpl;
    if (o->metadata || o->json) {
      for (const auto& kv : f.metadata()) j["metadata"][kv.key] = kv.value.Describe(8);
    }
    if (o->json) {
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    std::printf("file:         %s (GGUF v%u, %.1f MB)\n", path->c_str(), f.version(), f.file_size() / 1e6);
    if (config.ok()) {
      std::printf("model:        %s\n", config->name.c_str());
      std::printf("architecture: %s\n", config->Summary().c_str());
    } else {
      std::printf("architecture: not runnable: %s\n", config.status().message().c_str());
    }
    std::printf("parameters:   %.1f M in %zu tensors\n", params / 1e6, f.tensors().size());
    for (const auto& [name, e] : types) std::printf("  %-6s %4d tensors, %8.1f MB\n", name.c_str(), e.first, e.second / 1e6);
    if (tok.ok()) {
      const Tokenizer& t = **tok;
      auto piece = [&](int32_t id) { return id >= 0 ? t.TokenToPiece(id) : std::string("none"); };
      std::printf("tokenizer:    %s (pre-tokenizer %s), %d tokens, bos %d %s, eos %d %s\n", t.model_name().c_str(),
                  t.pre_name().c_str(), t.n_vocab(), t.bos_id(), piece(t.bos_id()).c_str(), t.eos_id(),
                  piece(t.eos_id()).c_str());
    } else {
      std::printf("tokenizer:    error: %s\n", tok.status().message().c_str());
    }
    if (tmpl.empty()) {
      std::printf("chat template: none in the file (ChatML is used)\n");
    } else {
      std::printf("chat template (%zu chars):\n%s\n", tmpl.size(), tmpl.c_str());
    }
    if (o->metadata) {
      std::printf("metadata:\n");
      for (const auto& kv : f.metadata()) std::printf("  %-40s %s\n", kv.key.c_str(), kv.value.Describe(8).c_str());
    }
    return 0;
  };
}

}  // namespace lms::app
